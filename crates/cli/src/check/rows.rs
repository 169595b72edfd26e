//! The checks themselves, one function per concern, each returning rows.

use std::time::Duration;

use redis_sync_resp::Frame;

use super::estimate::{
    Estimate, Inputs, RdbSize, estimate, link_rate, measure_decode, pipelined_rate, usec_per_call,
};
use super::keys::{self, KeySizes, Origin};
use super::{CheckArgs, Level, Row};
use crate::client::{self, Client, field, server_version, text};
use crate::url::Endpoint;

const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn row(check: &'static str, level: Level, detail: impl Into<String>) -> Row {
    Row {
        check,
        level,
        detail: detail.into(),
    }
}

/// What one side told us.
struct Side {
    client: Client,
    info: Vec<(String, String)>,
    flavor: &'static str,
    version: (u32, u32, u32),
}

impl Side {
    fn get(&self, name: &str) -> Option<&str> {
        field(&self.info, name)
    }
    fn num(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.parse().ok())
    }
    fn label(&self) -> String {
        let (a, b, c) = self.version;
        format!("{} {a}.{b}.{c}", self.flavor)
    }
    /// Keys per db from `INFO keyspace` (`db0:keys=3,expires=0,...`).
    fn keyspace(&self) -> Vec<(u32, u64)> {
        self.info
            .iter()
            .filter_map(|(k, v)| {
                let db = k.strip_prefix("db")?.parse().ok()?;
                let keys = v
                    .split(',')
                    .find_map(|p| p.strip_prefix("keys="))?
                    .parse()
                    .ok()?;
                Some((db, keys))
            })
            .collect()
    }
}

async fn open(ep: &Endpoint) -> anyhow::Result<Side> {
    let mut client = Client::connect(ep, TIMEOUT).await?;
    let info = client.info("all").await?;
    let (flavor, version) = server_version(&info);
    Ok(Side {
        client,
        info,
        flavor,
        version,
    })
}

/// The RDB version a server writes (what its `DUMP` payloads carry).
fn rdb_version(flavor: &str, v: (u32, u32, u32)) -> u32 {
    match (flavor, v.0, v.1) {
        ("valkey", 9.., _) => 80,
        ("valkey", _, _) => 11,
        (_, 8, 2..) | (_, 9.., _) => 13,
        (_, 8, _) | (_, 7, 4..) => 12,
        (_, 7, 2..) => 11,
        (_, 7, _) => 10,
        _ => 9,
    }
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// Every row, in order.
pub async fn all(source: &Endpoint, target: &Endpoint, args: &CheckArgs) -> Vec<Row> {
    let mut rows = Vec::new();
    let src = match open(source).await {
        Ok(s) => {
            rows.push(row(
                "source connection",
                Level::Ok,
                format!("{} ({})", source.addr(), s.label()),
            ));
            Some(s)
        }
        Err(e) => {
            rows.push(row(
                "source connection",
                Level::Fail,
                format!("{e:#}; check the address, the password and that the server runs"),
            ));
            None
        }
    };
    let dst = match open(target).await {
        Ok(s) => {
            rows.push(row(
                "target connection",
                Level::Ok,
                format!("{} ({})", target.addr(), s.label()),
            ));
            Some(s)
        }
        Err(e) => {
            rows.push(row(
                "target connection",
                Level::Fail,
                format!("{e:#}; check the address, the password and that the server runs"),
            ));
            None
        }
    };
    let (Some(mut src), Some(mut dst)) = (src, dst) else {
        rows.push(row(
            "remaining checks",
            Level::Skip,
            "need both connections first",
        ));
        return rows;
    };
    rows.push(psync_permission(&mut src, source).await);
    rows.extend(versions(&mut src, &mut dst).await);
    rows.push(target_empty(&dst, args.allow_nonempty));
    let m = measure(source, &mut src, &mut dst, args).await;
    let (est, est_row) = estimate(&m.inputs);
    rows.push(est_row);
    rows.extend(memory(&mut src, &mut dst, m.inputs.keys, m.write_rate, est.secs).await);
    rows.extend(replication_settings(&mut src, m.write_rate, est).await);
    rows.push(bulk_len(&mut src, &mut dst).await);
    let target_bulk = max_bulk(&mut dst.client).await;
    rows.push(keys::row_for(&m.sizes, target_bulk, args.value_budget));
    rows.extend(cluster(&mut src, &mut dst).await);
    if dst.get("cluster_enabled") == Some("1") {
        rows.push(
            super::stream_sample::cross_slot_sample(
                source,
                src.get("master_replid"),
                src.num("master_repl_offset"),
                src.get("repl_backlog_active") == Some("1"),
                args.sample_secs,
            )
            .await,
        );
    }
    let dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    rows.push(spool_space(&dir).await);
    rows
}

/// What `check` measures rather than reads.
struct Measured {
    /// The source's replication offset growth, bytes per second.
    write_rate: f64,
    sizes: KeySizes,
    inputs: Inputs,
}

/// The measurements: the write rate over `--sample-secs` (meanwhile, on blocking threads,
/// this machine's decode rate and the `--rdb` file's biggest keys), then the source's keys
/// (on a connection of their own, which `SELECT`s each db) and the pipelined rates of both
/// links.
async fn measure(ep: &Endpoint, src: &mut Side, dst: &mut Side, args: &CheckArgs) -> Measured {
    let budget = usize::try_from(args.value_budget)
        .unwrap_or(usize::MAX)
        .max(4096);
    let rdb = args.rdb.clone();
    let (write_rate, decode, from_rdb) = tokio::join!(
        write_rate(src, args.sample_secs),
        tokio::task::spawn_blocking(move || measure_decode(budget)),
        tokio::task::spawn_blocking(move || rdb.map(|p| (keys::from_rdb(&p), p))),
    );
    let mut sampler = Client::connect(ep, TIMEOUT).await;
    let sizes = match (from_rdb, &mut sampler) {
        (Ok(Some((Ok(sizes), _))), _) => sizes,
        (Ok(Some((Err(e), p))), _) => KeySizes::none(format!(
            "cannot read {}: {e:#}; give a readable RDB of the source, or leave --rdb out to \
             sample the live source",
            p.display()
        )),
        (Err(e), _) => KeySizes::none(format!("reading --rdb failed: {e}")),
        (Ok(None), Ok(c)) => keys::sample(c, &src.keyspace(), args.sample_keys).await,
        (Ok(None), Err(e)) => KeySizes::none(format!("cannot connect to sample keys: {e:#}")),
    };
    let source_bytes = match &mut sampler {
        Ok(c) => link_rate(c).await,
        Err(_) => None,
    };
    let cluster = dst.get("cluster_enabled") == Some("1");
    let target_ops = pipelined_rate(&mut dst.client, cluster).await;
    let target_bytes = link_rate(&mut dst.client).await;
    let dataset = src
        .num("used_memory_dataset")
        .or_else(|| src.num("used_memory"))
        .unwrap_or(0);
    let rdb = match (&sizes.origin, sizes.rdb_per_memory) {
        (Origin::Rdb { path, size, .. }, _) => RdbSize::File {
            path: path.clone(),
            bytes: *size,
        },
        (_, Some(ratio)) => RdbSize::Ratio { dataset, ratio },
        (_, None) => RdbSize::Dataset { dataset },
    };
    let diskless = src
        .client
        .config_get("repl-diskless-sync")
        .await
        .ok()
        .flatten();
    let delay = src
        .client
        .config_get("repl-diskless-sync-delay")
        .await
        .ok()
        .flatten()
        .and_then(|d| d.parse::<f64>().ok());
    let inputs = Inputs {
        keys: src.keyspace().iter().map(|(_, n)| n).sum(),
        rdb,
        decode: decode.ok().flatten(),
        target_ops,
        target_bytes,
        source_bytes,
        restore_usec: dst.get("cmdstat_restore").and_then(usec_per_call),
        fork_secs: src
            .num("latest_fork_usec")
            .filter(|u| *u > 0)
            .map(|u| u as f64 / 1e6),
        diskless_delay: match diskless.as_deref() {
            Some("no") => None,
            _ => Some(delay.unwrap_or(0.0)),
        },
    };
    Measured {
        write_rate,
        sizes,
        inputs,
    }
}

/// The source's write rate: its replication offset's growth over `secs` (bytes per second;
/// 0 when `INFO` does not say).
async fn write_rate(src: &mut Side, secs: f64) -> f64 {
    let o1 = src
        .client
        .info("replication")
        .await
        .ok()
        .and_then(|i| field(&i, "master_repl_offset").and_then(|v| v.parse::<u64>().ok()));
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 60.0))).await;
    let o2 = src
        .client
        .info("replication")
        .await
        .ok()
        .and_then(|i| field(&i, "master_repl_offset").and_then(|v| v.parse::<u64>().ok()));
    match (o1, o2) {
        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / t.elapsed().as_secs_f64().max(0.001),
        _ => 0.0,
    }
}

/// Free space where the spool would go (`df -Pk`: no libc here).
async fn spool_space(dir: &std::path::Path) -> Row {
    const NAME: &str = "spool disk space";
    // A one-off, short child process: blocking is fine here.
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output();
    let free_kb = out.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .nth(1)?
            .split_whitespace()
            .nth(3)?
            .parse::<u64>()
            .ok()
    });
    match free_kb {
        None => row(
            NAME,
            Level::Skip,
            format!("cannot read the free space of {}", dir.display()),
        ),
        Some(kb) if kb < 1 << 20 => row(
            NAME,
            Level::Warn,
            format!(
                "{} has {} free: a slow target makes the stream spool there; use --spool-dir \
                 on a bigger disk (and --spool-limit)",
                dir.display(),
                mb(kb * 1024)
            ),
        ),
        Some(kb) => row(
            NAME,
            Level::Ok,
            format!("{} free in {}", mb(kb * 1024), dir.display()),
        ),
    }
}

async fn psync_permission(src: &mut Side, ep: &Endpoint) -> Row {
    const NAME: &str = "source allows PSYNC";
    if src.version.0 < 7 && src.flavor == "redis" || ep.user.is_none() && ep.password.is_none() {
        // No ACL DRYRUN before 7.0; without a user the default user replicates.
        let level = if ep.user.is_some() {
            Level::Warn
        } else {
            Level::Ok
        };
        let detail = if ep.user.is_some() {
            "cannot ask this version (no ACL DRYRUN): make sure the user has +psync +replconf"
        } else {
            "the default user (no ACL restriction checked)"
        };
        return row(NAME, level, detail);
    }
    let user = ep.user.clone().unwrap_or_else(|| "default".into());
    let mut problems = Vec::new();
    for cmd in [&["PSYNC", "?", "-1"][..], &["REPLCONF", "capa", "eof"][..]] {
        let mut args = vec!["ACL", "DRYRUN", user.as_str()];
        args.extend_from_slice(cmd);
        match src.client.call(&args).await {
            Ok(Frame::SimpleString(_)) => {}
            Ok(Frame::BulkString(b)) => problems.push(String::from_utf8_lossy(&b).into_owned()),
            Ok(Frame::Error(e)) => {
                return row(
                    NAME,
                    Level::Warn,
                    format!(
                        "cannot ask (ACL DRYRUN: {}); make sure user {user} has +psync +replconf",
                        String::from_utf8_lossy(&e)
                    ),
                );
            }
            Ok(_) | Err(_) => {}
        }
    }
    if problems.is_empty() {
        row(
            NAME,
            Level::Ok,
            format!("user {user} may run PSYNC and REPLCONF"),
        )
    } else {
        row(
            NAME,
            Level::Fail,
            format!(
                "{}; grant it: ACL SETUSER {user} +psync +replconf",
                problems.join("; ")
            ),
        )
    }
}

async fn versions(src: &mut Side, dst: &mut Side) -> Vec<Row> {
    let mut rows = Vec::new();
    let (rs, rt) = (
        rdb_version(src.flavor, src.version),
        rdb_version(dst.flavor, dst.version),
    );
    let loadable = if rt >= 80 {
        rs <= 11 || rs >= 80 && rs <= rt
    } else {
        rs <= rt
    };
    rows.push(if loadable {
        row(
            "versions",
            Level::Ok,
            format!(
                "{} -> {}: the target loads the source's RDB {rs} payloads (RESTORE)",
                src.label(),
                dst.label()
            ),
        )
    } else {
        row(
            "versions",
            Level::Warn,
            format!(
                "{} -> {}: the target cannot load RDB {rs}; the command-rewrite path will be \
                 used (slower; values re-encoded as commands)",
                src.label(),
                dst.label()
            ),
        )
    });
    // Functions (7.0+).
    if src.version.0 >= 7 || src.flavor == "valkey" {
        let n = match src.client.call(&["FUNCTION", "LIST"]).await {
            Ok(Frame::Array(libs)) => libs.len(),
            _ => 0,
        };
        let target_has = dst.version.0 >= 7 || dst.flavor == "valkey";
        if n > 0 && !target_has {
            rows.push(row(
                "functions",
                Level::Fail,
                format!(
                    "the source has {n} function libraries and {} has no functions: upgrade the \
                     target to 7.0+ or drop the functions",
                    dst.label()
                ),
            ));
        } else {
            rows.push(row(
                "functions",
                Level::Ok,
                format!("{n} function libraries"),
            ));
        }
    }
    // Modules.
    let src_mods = modules(&mut src.client).await;
    let dst_mods = modules(&mut dst.client).await;
    let missing: Vec<&String> = src_mods.iter().filter(|m| !dst_mods.contains(m)).collect();
    rows.push(if missing.is_empty() {
        row(
            "modules",
            Level::Ok,
            if src_mods.is_empty() {
                "none on the source".to_string()
            } else {
                format!("target has {}", src_mods.join(", "))
            },
        )
    } else {
        row(
            "modules",
            Level::Fail,
            format!(
                "the target lacks module(s) {}: load them on the target (--loadmodule) or \
                 exclude their keys",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    });
    // Hash field TTLs (Redis 7.4+, Valkey 9+): INFO keyspace's subexpiry on Redis 8.
    let src_ttls = src
        .info
        .iter()
        .filter(|(k, _)| k.starts_with("db"))
        .any(|(_, v)| {
            v.split(',')
                .find_map(|p| p.strip_prefix("subexpiry="))
                .is_some_and(|n| n != "0")
        });
    let dst_has_ttls = match dst.flavor {
        "valkey" => dst.version.0 >= 9,
        _ => dst.version >= (7, 4, 0),
    };
    if src_ttls && !dst_has_ttls {
        rows.push(row(
            "hash field TTLs",
            Level::Fail,
            format!(
                "the source has hashes with field TTLs and {} cannot store them: upgrade the \
                 target (Redis 7.4+, Valkey 9+)",
                dst.label()
            ),
        ));
    }
    rows
}

async fn modules(c: &mut Client) -> Vec<String> {
    let Ok(Frame::Array(mods)) = c.call(&["MODULE", "LIST"]).await else {
        return Vec::new();
    };
    let mut names: Vec<String> = mods
        .iter()
        .filter_map(|m| {
            let items: Vec<(Frame, Frame)> = match m {
                Frame::Array(a) => a
                    .chunks(2)
                    .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
                    .collect(),
                Frame::Map(m) => m.clone(),
                _ => return None,
            };
            items
                .iter()
                .find(|(k, _)| text(k).as_deref() == Some("name"))
                .and_then(|(_, v)| text(v))
        })
        .filter(|n| n != "vectorset")
        .collect();
    names.sort();
    names
}

fn target_empty(dst: &Side, allow: bool) -> Row {
    let ks = dst.keyspace();
    let total: u64 = ks.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return row("target empty", Level::Ok, "no keys");
    }
    let dbs: Vec<String> = ks.iter().map(|(db, n)| format!("db{db}={n}")).collect();
    row(
        "target empty",
        if allow { Level::Warn } else { Level::Fail },
        format!(
            "the target holds {total} keys ({}): empty it (FLUSHALL), or sync with \
             --flush-target, or accept overwriting keys of the same name (--allow-nonempty \
             here; sync --conflict overwrite, the default)",
            dbs.join(" ")
        ),
    )
}

/// The target's `maxmemory` against what the copy needs: the source's data
/// (`used_memory_dataset`, not `used_memory`, which counts the source's own buffers and
/// overhead) plus 10 % for encoding and allocator differences between the two servers, what
/// the target already uses (its start-up memory and any keys it holds), and the stream's
/// writes during the copy (`write_rate` × `copy_secs`: an upper bound, as if every written
/// byte were kept). A cluster target's masters share the data and the writes: each needs its
/// share (as if the keys spread evenly over the slots) beside what it holds itself.
async fn memory(
    src: &mut Side,
    dst: &mut Side,
    keys: u64,
    write_rate: f64,
    copy_secs: f64,
) -> Vec<Row> {
    const NAME: &str = "target memory";
    let mut rows = Vec::new();
    let (dataset, what) = match src.num("used_memory_dataset") {
        Some(d) => (d, "used_memory_dataset"),
        None => (src.num("used_memory").unwrap_or(0), "used_memory"),
    };
    let masters = if dst.get("cluster_enabled") == Some("1") {
        client::cluster_masters(&mut dst.client)
            .await
            .map_or(1, |m| m.len().max(1) as u64)
    } else {
        1
    };
    let target_now = dst.num("used_memory").unwrap_or(0);
    let stream = (write_rate * copy_secs) as u64 / masters;
    let share = dataset / masters;
    let need = share + share / 10 + target_now + stream;
    let parts = format!(
        "the source's {keys} keys ({what} {}{}) + 10 % for encoding differences + the target's \
         own {} (used_memory now) + {} of stream headroom (the writes of the ~{copy_secs:.0} s \
         copy at {write_rate:.0} B/s)",
        mb(dataset),
        if masters > 1 {
            format!(", / {masters} masters: {} per master", mb(share))
        } else {
            String::new()
        },
        mb(target_now),
        mb(stream)
    );
    let max = dst
        .client
        .config_get("maxmemory")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    rows.push(match max {
        None => row(NAME, Level::Skip, "CONFIG GET maxmemory refused"),
        Some(0) => row(
            NAME,
            Level::Ok,
            format!(
                "no maxmemory limit; the copy needs ~{}: {parts}; make sure the host has it",
                mb(need)
            ),
        ),
        Some(m) if m >= need => row(
            NAME,
            Level::Ok,
            format!("maxmemory {} >= ~{} needed: {parts}", mb(m), mb(need)),
        ),
        Some(m) => row(
            NAME,
            Level::Fail,
            format!(
                "maxmemory {} < ~{} needed: {parts}; raise it, e.g. CONFIG SET maxmemory {need}",
                mb(m),
                mb(need)
            ),
        ),
    });
    let policy = dst
        .client
        .config_get("maxmemory-policy")
        .await
        .ok()
        .flatten();
    rows.push(match policy.as_deref() {
        None => row("eviction policy", Level::Skip, "CONFIG GET refused"),
        Some("noeviction") => row("eviction policy", Level::Ok, "noeviction"),
        Some(p) => row(
            "eviction policy",
            if max.unwrap_or(0) > 0 {
                Level::Fail
            } else {
                Level::Warn
            },
            format!(
                "{p}: the target may evict synced keys silently; set CONFIG SET \
                 maxmemory-policy noeviction"
            ),
        ),
    });
    rows
}

/// `client-output-buffer-limit` → the replica class's (hard, soft, soft seconds).
fn replica_limit(v: &str) -> Option<(u64, u64, u64)> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let i = parts
        .iter()
        .position(|p| *p == "slave" || *p == "replica")?;
    let n = |s: &str| parse_size(s);
    Some((
        n(parts.get(i + 1)?)?,
        n(parts.get(i + 2)?)?,
        parts.get(i + 3)?.parse().ok()?,
    ))
}

fn parse_size(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    for (suffix, mul) in [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ] {
        if let Some(n) = l.strip_suffix(suffix) {
            return n.parse::<u64>().ok().map(|n| n * mul);
        }
    }
    l.parse().ok()
}

/// The output buffer and the backlog against the write rate (`rate`, bytes/s), and diskless
/// sync. The source buffers its writes for the replica while the RDB streams, that is for the
/// whole copy (the estimate): the RDB goes only as fast as redis-sync and the target take it.
async fn replication_settings(src: &mut Side, rate: f64, copy: Estimate) -> Vec<Row> {
    let mut rows = Vec::new();
    let rdb_secs = copy.secs;
    let buffered = rate * rdb_secs;
    let limit = src
        .client
        .config_get("client-output-buffer-limit")
        .await
        .ok()
        .flatten();
    rows.push(match limit.as_deref().and_then(replica_limit) {
        None => row(
            "replica output buffer",
            Level::Skip,
            "CONFIG GET client-output-buffer-limit refused",
        ),
        Some((0, 0, _)) => row("replica output buffer", Level::Ok, "no limit"),
        Some((hard, soft, secs)) => {
            let hard_hit = hard > 0 && buffered > hard as f64 / 2.0;
            let soft_hit = soft > 0 && buffered > soft as f64 && rdb_secs > secs as f64;
            if hard_hit || soft_hit || (hard > 0 && hard < 64 << 20) {
                row(
                    "replica output buffer",
                    Level::Warn,
                    format!(
                        "client-output-buffer-limit replica {hard} {soft} {secs}: at {:.0} B/s of \
                         writes for the ~{rdb_secs:.0} s full copy (the estimate) the source \
                         buffers ~{}; the source cuts the replica past the limit. Raise it: \
                         CONFIG SET client-output-buffer-limit \"replica 1gb 512mb 120\"",
                        rate,
                        mb(buffered as u64)
                    ),
                )
            } else {
                row(
                    "replica output buffer",
                    Level::Ok,
                    format!(
                        "replica {hard} {soft} {secs}; ~{} buffered during the RDB at {rate:.0} B/s",
                        mb(buffered as u64)
                    ),
                )
            }
        }
    });
    let backlog = src
        .client
        .config_get("repl-backlog-size")
        .await
        .ok()
        .flatten()
        .and_then(|v| parse_size(&v));
    rows.push(match backlog {
        None => row("replication backlog", Level::Skip, "CONFIG GET refused"),
        Some(b) => {
            let secs = if rate > 0.0 {
                b as f64 / rate
            } else {
                f64::INFINITY
            };
            if secs < 60.0 {
                row(
                    "replication backlog",
                    Level::Warn,
                    format!(
                        "repl-backlog-size {} covers only {secs:.0}s of writes: a sync stopped \
                         longer than that needs a new full copy. Raise it: CONFIG SET \
                         repl-backlog-size {}",
                        mb(b),
                        (rate * 600.0) as u64
                    ),
                )
            } else {
                row(
                    "replication backlog",
                    Level::Ok,
                    if secs.is_finite() {
                        format!("{} covers {secs:.0}s of writes", mb(b))
                    } else {
                        format!("{} (no writes measured)", mb(b))
                    },
                )
            }
        }
    });
    let diskless = src
        .client
        .config_get("repl-diskless-sync")
        .await
        .ok()
        .flatten();
    let dir = src.client.config_get("dir").await.ok().flatten();
    rows.push(match diskless.as_deref() {
        Some("yes") => row(
            "diskless sync",
            Level::Ok,
            "the source streams its RDB without writing it to disk",
        ),
        Some(_) => row(
            "diskless sync",
            Level::Warn,
            format!(
                "the source writes the RDB (~{}, the estimate) to disk first (in {}); if that \
                 disk is full or slow the sync fails: CONFIG SET repl-diskless-sync yes",
                mb(copy.rdb_bytes),
                dir.as_deref().unwrap_or("its dir")
            ),
        ),
        None => row("diskless sync", Level::Skip, "CONFIG GET refused"),
    });
    rows
}

async fn bulk_len(src: &mut Side, dst: &mut Side) -> Row {
    let s = max_bulk(&mut src.client).await;
    let t = max_bulk(&mut dst.client).await;
    match (s, t) {
        (Some(s), Some(t)) if t < s => row(
            "proto-max-bulk-len",
            Level::Warn,
            format!(
                "target {t} < source {s}: a value bigger than {t} bytes is refused; raise it: \
                 CONFIG SET proto-max-bulk-len {s}"
            ),
        ),
        (_, Some(t)) => row("proto-max-bulk-len", Level::Ok, format!("target {t}")),
        _ => row("proto-max-bulk-len", Level::Skip, "CONFIG GET refused"),
    }
}

async fn max_bulk(c: &mut Client) -> Option<u64> {
    let v = c.config_get("proto-max-bulk-len").await.ok().flatten()?;
    parse_size(&v)
}

async fn cluster(src: &mut Side, dst: &mut Side) -> Vec<Row> {
    if dst.get("cluster_enabled") != Some("1") {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let info = dst.client.ok(&["CLUSTER", "INFO"]).await.ok();
    let text_info = info.as_ref().and_then(text).unwrap_or_default();
    let get = |name: &str| redis_sync_resp::info_field(&text_info, name);
    let assigned: u64 = get("cluster_slots_assigned")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let state = get("cluster_state").unwrap_or_default();
    let masters = client::cluster_masters(&mut dst.client)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    rows.push(if assigned == 16384 && state == "ok" {
        row(
            "cluster slots",
            Level::Ok,
            format!("all 16384 slots served by {masters} masters"),
        )
    } else {
        row(
            "cluster slots",
            Level::Fail,
            format!(
                "cluster_state {state}, {assigned} of 16384 slots assigned: assign every slot \
                 (redis-cli --cluster fix) before syncing"
            ),
        )
    });
    let other: Vec<String> = src
        .keyspace()
        .iter()
        .filter(|(db, n)| *db != 0 && *n > 0)
        .map(|(db, n)| format!("db{db}={n}"))
        .collect();
    if !other.is_empty() {
        rows.push(row(
            "cluster dbs",
            Level::Fail,
            format!(
                "the source uses {} but a cluster has only db 0: sync with --db 0, or map them \
                 (--db-map N:0)",
                other.join(" ")
            ),
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_versions() {
        assert_eq!(
            replica_limit("normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
            Some((268435456, 67108864, 60))
        );
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(rdb_version("redis", (7, 0, 15)), 10);
        assert_eq!(rdb_version("redis", (8, 6, 3)), 13);
        assert_eq!(rdb_version("valkey", (9, 1, 2)), 80);
        assert_eq!(rdb_version("redis", (5, 0, 6)), 9);
    }
}
