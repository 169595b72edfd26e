//! The command classifier on a realistic replication stream mix of 1,000,000 commands.
//!
//! Goal: classify (look up, extract keys, hash slots, route, sync action) at ≥ 20 M commands/s,
//! so it is never the bottleneck of a sync. Also measured: `hash_slot` alone, the cluster
//! splitter and the filter on the same mix.
//!
//! ```text
//! cargo bench -p redis-sync-benches --bench commands
//! ```

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redis_sync_commands::{
    Classified, Classifier, ClusterPlan, FilterBuilder, Route, SyncAction, SyncOptions, hash_slot,
    split_for_cluster,
};

const COMMANDS: usize = 1_000_000;

/// A deterministic mix like a busy application's replication stream (7.0+ style: absolute
/// expiries, scripts as effects, some EVAL from older masters).
fn mix() -> Vec<Vec<Bytes>> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let b = |s: String| Bytes::from(s);
    let s = |s: &'static str| Bytes::from_static(s.as_bytes());
    let mut out: Vec<Vec<Bytes>> = Vec::with_capacity(COMMANDS);
    while out.len() < COMMANDS {
        let r = next();
        let user = r % 100_000;
        let key = b(format!("user:{{{user}}}:profile"));
        let cmd = match r % 100 {
            0..=29 => vec![s("SET"), key, b(format!("value-{r}"))],
            30..=39 => vec![
                s("SET"),
                key,
                s("some-session-data"),
                s("PXAT"),
                s("1767225600000"),
            ],
            40..=54 => vec![
                s("HSET"),
                b(format!("h:{user}")),
                s("name"),
                s("ada"),
                s("visits"),
                b(r.to_string()),
            ],
            55..=64 => vec![
                s("LPUSH"),
                b(format!("queue:{}", user % 64)),
                b(format!("job-{r}")),
            ],
            65..=69 => vec![
                s("DEL"),
                key,
                b(format!("cache:{user}")),
                b(format!("tmp:{}", user + 1)),
            ],
            70..=79 => vec![
                s("XADD"),
                b(format!("events:{}", user % 16)),
                s("*"),
                s("type"),
                s("click"),
                s("id"),
                b(user.to_string()),
            ],
            80..=81 => vec![
                s("EVALSHA"),
                s("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"),
                s("2"),
                b(format!("{{u{user}}}:a")),
                b(format!("{{u{user}}}:b")),
                s("1"),
            ],
            82..=89 => vec![s("INCR"), b(format!("counter:{}", user % 1000))],
            90..=94 => vec![
                s("ZADD"),
                s("leaderboard"),
                b((r % 10_000).to_string()),
                b(format!("player:{user}")),
            ],
            95..=97 => vec![s("PEXPIREAT"), key, s("1767225600000")],
            98 => vec![s("SELECT"), b((r % 4).to_string())],
            _ => vec![s("MULTI")],
        };
        out.push(cmd);
    }
    contiguous(out)
}

/// The same commands with every argument a slice of one buffer, as a zero-copy RESP decoder
/// hands them over (arguments of one command side by side in memory).
fn contiguous(cmds: Vec<Vec<Bytes>>) -> Vec<Vec<Bytes>> {
    let total: usize = cmds.iter().flatten().map(Bytes::len).sum();
    let mut buf = Vec::with_capacity(total);
    for a in cmds.iter().flatten() {
        buf.extend_from_slice(a);
    }
    let buf = Bytes::from(buf);
    let mut at = 0;
    cmds.iter()
        .map(|c| {
            c.iter()
                .map(|a| {
                    let s = buf.slice(at..at + a.len());
                    at += a.len();
                    s
                })
                .collect()
        })
        .collect()
}

/// CPU time of this thread in nanoseconds (`/proc/thread-self/schedstat`), so the figure does
/// not depend on how busy the machine is; `None` where that file does not exist.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Folds every output of a classification into a number, so none of the work behind them
/// (the hash slots of the route, above all) can be optimised away, the way a sync that uses
/// each field would not let it be.
#[inline(always)]
fn consume(got: Result<Classified<'_>, redis_sync_commands::Error>) -> usize {
    match got {
        Ok(c) => {
            let route = match c.route {
                Route::Slot(s) => usize::from(s),
                Route::CrossSlot => 1 << 16,
                Route::AllMasters => 1 << 17,
                _ => 1 << 18,
            };
            let sync = match c.sync {
                SyncAction::Apply => 1,
                SyncAction::Skip(_) => 2,
                _ => 3,
            };
            c.keys.len()
                + c.keys.first().map_or(0, |k| k.index)
                + c.command.name.len()
                + route
                + sync
        }
        Err(_) => 1 << 19,
    }
}

/// Feeds `wire` to a RESP decoder in 16 KiB pieces (as socket reads arrive), turns each
/// command into its arguments and hands them to `each`; returns the sum of what it returned.
fn decode_all(wire: &Bytes, mut each: impl FnMut(&[Bytes]) -> usize) -> usize {
    let mut decoder = redis_sync_resp::Decoder::new();
    let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
    let mut acc = 0usize;
    for piece in wire.chunks(16 * 1024) {
        buf.extend_from_slice(piece);
        while let Some(cmd) = decoder.decode_command(&mut buf).expect("valid RESP") {
            acc = acc.wrapping_add(each(&cmd.into_args()));
        }
    }
    acc
}

/// What the baseline reads of a command: the first byte of its name and of its first argument.
#[inline(always)]
fn touch(cmd: &[Bytes]) -> usize {
    let first = |i: usize| {
        cmd.get(i)
            .and_then(|a| a.first())
            .map_or(0, |b| usize::from(*b))
    };
    first(0) + first(1)
}

/// Classifies `cmds` `rounds` times and prints commands per second of CPU time.
fn cpu_time_report(what: &str, cmds: &[Vec<Bytes>], rounds: usize) {
    let mut classifier = Classifier::new(SyncOptions::default());
    let (Some(start), wall) = (thread_cpu_ns(), std::time::Instant::now()) else {
        return;
    };
    let mut acc = 0usize;
    for _ in 0..rounds {
        for cmd in cmds {
            acc = acc.wrapping_add(consume(classifier.classify(cmd)));
        }
    }
    let Some(end) = thread_cpu_ns() else { return };
    black_box(acc);
    let n = (rounds * cmds.len()) as f64;
    let cpu = (end - start) as f64 / 1e9;
    println!(
        "classify, {what}: {:.1} M commands/s of CPU time ({:.1} ns each; wall {:.1} M/s on this machine's load)",
        n / cpu / 1e6,
        cpu * 1e9 / n,
        n / wall.elapsed().as_secs_f64() / 1e6
    );
}

/// How much classifying adds to the stage before it: decoding alone and decoding plus
/// classifying, alternated for `rounds` rounds of the whole wire, so both see the same machine
/// (criterion runs its benchmarks one after the other, and this machine's speed drifts).
/// Prints the median time ratio and both rates in that round.
fn pipeline_report(wire: &Bytes, rounds: usize) {
    let mut classifier = Classifier::new(SyncOptions::default());
    let mut rows = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        let n = black_box(decode_all(wire, |_| 1));
        let plain = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        black_box(decode_all(wire, |args| consume(classifier.classify(args))));
        let with = t.elapsed().as_secs_f64();
        rows.push((with / plain, n as f64 / plain, n as f64 / with));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, plain, with) = rows[rows.len() / 2];
    println!(
        "pipeline: read + decode {:.2} M/s, + classify {:.2} M/s: classifying adds {:.0} % (median of {rounds} alternating rounds)",
        plain / 1e6,
        with / 1e6,
        (ratio - 1.0) * 100.0
    );
}

fn bench(c: &mut Criterion) {
    let cmds = mix();
    // The stage before the classifier in a sync: the same 1M commands as RESP on the wire,
    // read in 16 KiB pieces and decoded into argument vectors, as the replica hands them over;
    // then the same with each command classified. The difference is what classification adds.
    let mut wire = bytes::BytesMut::new();
    for c in &cmds {
        redis_sync_resp::encode_command(c, &mut wire);
    }
    let wire = wire.freeze();
    pipeline_report(&wire, 9);
    cpu_time_report("1M distinct commands", &cmds, 5);
    cpu_time_report("4096-command window", &cmds[..4096], 1000);
    let mut g = c.benchmark_group("commands");
    g.throughput(Throughput::Elements(COMMANDS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));

    // The floor for any consumer of the same commands: read the first byte of the name and of
    // the first argument. Over 1M distinct commands (hundreds of MB) this is memory bound, and
    // the classifier's figure is best read as a ratio to it.
    g.bench_function("baseline: touch name and first argument, 1M", |bch| {
        bch.iter(|| {
            let mut acc = 0usize;
            for cmd in &cmds {
                acc = acc.wrapping_add(touch(cmd));
            }
            black_box(acc)
        });
    });

    g.bench_function("classify 1M (lookup, keys, slot, route, sync)", |bch| {
        let mut classifier = Classifier::new(SyncOptions::default());
        bch.iter(|| {
            let mut acc = 0usize;
            for cmd in &cmds {
                acc = acc.wrapping_add(consume(classifier.classify(cmd)));
            }
            black_box(acc)
        });
    });

    // The same count, as a sync sees them: each command classified right after the decoder
    // produced it, so it is in cache. Modelled by cycling over a 4,096-command window.
    let window = &cmds[..4096];
    g.bench_function(
        "classify 1M, 4096-command window (in cache, as after decoding)",
        |bch| {
            let mut classifier = Classifier::new(SyncOptions::default());
            bch.iter(|| {
                let mut acc = 0usize;
                for cmd in window.iter().cycle().take(COMMANDS) {
                    acc = acc.wrapping_add(consume(classifier.classify(cmd)));
                }
                black_box(acc)
            });
        },
    );

    // The stage before the classifier in a sync (see `pipeline_report`), for criterion.
    g.bench_function(
        "stage before: read + RESP decode 1M into argument vectors",
        |bch| {
            bch.iter(|| black_box(decode_all(&wire, |_| 1)));
        },
    );
    g.bench_function("read + RESP decode + classify 1M", |bch| {
        let mut classifier = Classifier::new(SyncOptions::default());
        bch.iter(|| black_box(decode_all(&wire, |args| consume(classifier.classify(args)))));
    });

    let keys: Vec<&Bytes> = cmds.iter().filter_map(|c| c.get(1)).collect();
    g.bench_function("hash_slot 1M keys", |bch| {
        bch.iter(|| {
            keys.iter()
                .fold(0u32, |a, k| a.wrapping_add(u32::from(hash_slot(k))))
        });
    });

    g.bench_function("split_for_cluster 1M", |bch| {
        bch.iter(|| {
            let mut parts = 0usize;
            for cmd in &cmds {
                match split_for_cluster(cmd) {
                    Ok(ClusterPlan::Split(p)) => parts += p.len(),
                    Ok(_) => parts += 1,
                    Err(_) => {}
                }
            }
            black_box(parts)
        });
    });

    let filter = FilterBuilder::default()
        .exclude_key_prefix("tmp:")
        .exclude_key_glob("cache:*")
        .exclude_db(3)
        .build()
        .expect("filter");
    g.bench_function("filter decide 1M (prefix + glob + db)", |bch| {
        bch.iter(|| {
            let mut kept = 0usize;
            for cmd in &cmds {
                if let Ok(redis_sync_commands::Decision::Keep { .. }) = filter.decide(0, cmd) {
                    kept += 1;
                }
            }
            black_box(kept)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
