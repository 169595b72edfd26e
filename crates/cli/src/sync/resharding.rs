//! Keys and slots on their way from one shard of a cluster source to another, as the shards'
//! streams tell it, shared by the shards of one process (see [`super::shards`]).
//!
//! A merged target holds every shard's keys in one keyspace, while the source moves them
//! between separate servers whose streams this process reads apart. Two kinds of resharding:
//!
//! - **Classic** (`MIGRATE`, as `redis-cli --cluster reshard` does): per key, the importing
//!   shard's stream has `RESTORE-ASKING key …` and the exporting shard's then has `DEL key`.
//!   Nothing is kept here for it: the importer waits for the other links before its `RESTORE`
//!   and the exporter asks the importing node about its `DEL` (see `ShardLink::restored` and
//!   `ShardLink::review_delete`).
//! - **Atomic** (Valkey 9 `CLUSTER MIGRATESLOTS`, Redis 8.4 `CLUSTER MIGRATION IMPORT`): the
//!   importing shard's stream carries the slots' whole content between two markers
//!   (`CLUSTER SYNCSLOTS ESTABLISH … FINISH`, or `ASM-TASK …:import:…` states) while the
//!   exporter's stream still carries its own writes to them; then the exporter drops the slots
//!   (`TRIMSLOTS`, or an `UNLINK` per key). The import is not applied ([`Import`]): the target
//!   has those keys from the exporter already. At the end, the importer waits until the
//!   exporter's link has applied everything the exporter wrote before the hand-over (its
//!   replication offset once its copy of the slots is gone), so the two shards' writes to a
//!   moved key reach the target in the source's order.
//!
//! Every import is also written to the target in the same transaction as the command that
//! began or ended it (a key `redis-sync:checkpoint:import:{name}`), and read back on a restart:
//! a crash in the middle of a migration loses nothing and applies nothing twice.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use redis_sync_commands::hash_slot;
use redis_sync_resp::Frame;

use super::shards::ShardLink;
use crate::client::{Client, text};
use crate::config::Settings;

/// The prefix of the records of an atomic slot migration into a shard (under the checkpoints'
/// prefix, so sweeps and comparisons leave them alone).
const IMPORTS_PREFIX: &str = "redis-sync:checkpoint:import:";
/// How long a connection to the target may take while reading the records back.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An atomic slot migration into a shard of this process, as its stream announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Import {
    /// The migration's name (Valkey) or task ID (Redis).
    pub(super) name: String,
    /// The importing shard (its name in this process).
    pub(super) importer: String,
    /// The exporting master's node ID.
    pub(super) exporter: String,
    pub(super) ranges: Vec<(u16, u16)>,
    /// It failed: the importer removes what it imported, and those removals are not applied.
    pub(super) failed: bool,
}

impl Import {
    fn covers(&self, slot: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= slot && slot <= hi)
    }
}

/// What a `CLUSTER SYNCSLOTS …` (or `TRIMSLOTS`) entry of a stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Asm {
    /// An import into this shard starts.
    Start {
        name: String,
        exporter: String,
        ranges: Vec<(u16, u16)>,
    },
    /// An import into this shard ends (`ok`: the slots are this shard's now).
    Done { name: String, ok: bool },
    /// The rest: the migration's own bookkeeping, or the exporter's trim of slots it gave away.
    Other,
}

/// Parses the entries atomic slot migrations put in a stream; `None` for other commands.
pub(super) fn parse_asm(args: &[Bytes]) -> Option<Asm> {
    let word = |i: usize| -> String {
        args.get(i)
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .unwrap_or_default()
    };
    match word(0).as_str() {
        "trimslots" => return Some(Asm::Other),
        "cluster" => {}
        _ => return None,
    }
    if word(1) != "syncslots" {
        return Some(Asm::Other);
    }
    let text = |i: usize| -> String {
        args.get(i)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default()
    };
    let after =
        |name: &str| -> Option<usize> { (2..args.len()).find(|&i| word(i) == name).map(|i| i + 1) };
    match word(2).as_str() {
        // Valkey 9: ESTABLISH SOURCE <id> NAME <name> SLOTSRANGE <lo> <hi> [<lo> <hi> …]
        "establish" => {
            let exporter = after("source").map(text).unwrap_or_default();
            let name = after("name").map(text).unwrap_or_default();
            let mut ranges = Vec::new();
            if let Some(mut i) = after("slotsrange") {
                while let (Ok(lo), Ok(hi)) = (text(i).parse::<u16>(), text(i + 1).parse::<u16>()) {
                    ranges.push((lo, hi));
                    i += 2;
                }
            }
            Some(Asm::Start {
                name,
                exporter,
                ranges,
            })
        }
        // Valkey 9: FINISH STATE <SUCCESS|…> NAME <name> …
        "finish" => Some(Asm::Done {
            name: after("name").map(text).unwrap_or_default(),
            ok: after("state").map(word).as_deref() == Some("success"),
        }),
        // Redis 8.4+: CONF ASM-TASK <task>:<source id>:<destination id>:<import|migrate>:<state>:<lo-hi,…>
        "conf" if word(3) == "asm-task" => {
            let task = text(4);
            let parts: Vec<&str> = task.split(':').collect();
            let (Some(name), Some(exporter), Some(op), Some(state)) =
                (parts.first(), parts.get(1), parts.get(3), parts.get(4))
            else {
                return Some(Asm::Other);
            };
            if *op != "import" {
                return Some(Asm::Other);
            }
            match *state {
                "completed" => Some(Asm::Done {
                    name: name.to_string(),
                    ok: true,
                }),
                "failed" | "canceled" | "cancelled" => Some(Asm::Done {
                    name: name.to_string(),
                    ok: false,
                }),
                _ => Some(Asm::Start {
                    name: name.to_string(),
                    exporter: exporter.to_string(),
                    ranges: parse_ranges(parts.get(5).copied().unwrap_or_default()),
                }),
            }
        }
        _ => Some(Asm::Other),
    }
}

/// `lo-hi,lo-hi` (or single slots).
fn parse_ranges(s: &str) -> Vec<(u16, u16)> {
    s.split([',', ' '])
        .filter_map(|r| {
            let (lo, hi) = r.split_once('-').unwrap_or((r, r));
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// Renders ranges for the log: `100-199, 300`.
pub(super) fn show_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reshardings under way between the shards of this process.
#[derive(Debug, Default)]
pub struct Resharding {
    imports: Mutex<Vec<Import>>,
    /// Every shard's link, to find the exporter of an import.
    links: Mutex<Vec<Weak<ShardLink>>>,
}

impl Resharding {
    fn imports(&self) -> std::sync::MutexGuard<'_, Vec<Import>> {
        self.imports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Some slots are on their way: the loop then gives the shards the keys of every command.
    pub(super) fn needs_keys(&self) -> bool {
        !self.imports().is_empty()
    }

    pub(super) fn register(&self, link: &Arc<ShardLink>) {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(link));
    }

    /// The links of the other shards of this process.
    pub(super) fn others(&self, me: &ShardLink) -> Vec<Arc<ShardLink>> {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| !std::ptr::eq(l.as_ref(), me))
            .collect()
    }

    /// The link of the shard that has (or had) node `id`.
    pub(super) fn link_of(&self, id: &str) -> Option<Arc<ShardLink>> {
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .find(|l| l.has_node(id))
    }

    /// An import into `importer` starts: the record to write (none when it is known already,
    /// as after a restart that replays its start).
    pub(super) fn import_started(&self, import: Import) -> Option<Vec<Bytes>> {
        let mut all = self.imports();
        if all
            .iter()
            .any(|i| i.name == import.name && i.importer == import.importer && !i.failed)
        {
            return None;
        }
        // A new attempt over the slots of a failed one replaces it.
        all.retain(|i| {
            !(i.importer == import.importer && i.ranges.iter().any(|r| import.ranges.contains(r)))
        });
        let record = set(&import_record(&import.name)?, &import_value(&import));
        all.push(import);
        record
    }

    /// The running import named `name` into `importer` (or its only one).
    pub(super) fn import_of(&self, importer: &str, name: &str) -> Option<Import> {
        let all = self.imports();
        let mine: Vec<&Import> = all
            .iter()
            .filter(|i| i.importer == importer && !i.failed)
            .collect();
        mine.iter()
            .find(|i| i.name == name)
            .or_else(|| (mine.len() == 1).then(|| &mine[0]))
            .map(|i| (*i).clone())
    }

    /// The import ended: it is forgotten (succeeded) or kept as failed. The record to write.
    pub(super) fn import_ended(&self, import: &Import, ok: bool) -> Option<Vec<Bytes>> {
        let mut all = self.imports();
        all.retain(|i| i.name != import.name || i.importer != import.importer);
        let key = import_record(&import.name)?;
        if ok {
            clear(&key)
        } else {
            let failed = Import {
                failed: true,
                ..import.clone()
            };
            let record = set(&key, &import_value(&failed));
            all.push(failed);
            record
        }
    }

    /// Every key of a command of `importer` is in a slot it is importing: the command is part
    /// of the import, which the target has from the exporter already.
    pub(super) fn is_import(&self, importer: &str, keys: &[Bytes]) -> bool {
        let all = self.imports();
        !keys.is_empty()
            && keys.iter().all(|k| {
                let slot = hash_slot(k);
                all.iter()
                    .any(|i| i.importer == importer && !i.failed && i.covers(slot))
            })
    }

    /// `importer` removes a key of a failed import of its own (the exporter still has it).
    pub(super) fn is_failed_import(&self, importer: &str, key: &[u8]) -> bool {
        let slot = hash_slot(key);
        self.imports()
            .iter()
            .any(|i| i.importer == importer && i.failed && i.covers(slot))
    }

    /// Reads the records an earlier run left in the target; returns how many.
    pub(super) async fn load(&self, s: &Settings) -> anyhow::Result<usize> {
        let mut c = Client::connect(&s.target, TIMEOUT).await?;
        let info = c.info("cluster").await?;
        let nodes = if crate::client::field(&info, "cluster_enabled") == Some("1") {
            crate::client::cluster_masters(&mut c).await?
        } else {
            vec![c.addr().to_string()]
        };
        let mut found = Vec::new();
        for node in nodes {
            let mut c = Client::connect_addr(&s.target, &node, TIMEOUT).await?;
            c.ok(&["SELECT", "0"]).await?;
            {
                let pattern = format!("{IMPORTS_PREFIX}*");
                let mut cursor = "0".to_string();
                for _ in 0..1_000_000 {
                    let page = c
                        .ok(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
                        .await?;
                    let parts = page.as_slice().unwrap_or(&[]);
                    cursor = parts.first().and_then(text).unwrap_or_else(|| "0".into());
                    for k in parts.get(1).and_then(Frame::as_slice).unwrap_or(&[]) {
                        if let Some(k) = k.as_bytes() {
                            let v = c.call(&[&b"GET"[..], k]).await?;
                            found.push((k.clone(), text(&v).unwrap_or_default()));
                        }
                    }
                    if cursor == "0" {
                        break;
                    }
                }
            }
        }
        for (_, value) in &found {
            if let Some(import) = parse_import(value) {
                self.imports().push(import);
            }
        }
        Ok(found.len())
    }
}

fn import_record(name: &str) -> Option<Bytes> {
    Some(Bytes::from(format!("{IMPORTS_PREFIX}{{{name}}}")))
}

/// `running|failed <importer> <exporter id> <name> <ranges>`.
fn import_value(i: &Import) -> String {
    let ranges: Vec<String> = i.ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    format!(
        "{} {} {} {} {}",
        if i.failed { "failed" } else { "running" },
        i.importer,
        i.exporter,
        i.name,
        ranges.join(",")
    )
}

fn parse_import(v: &str) -> Option<Import> {
    let mut w = v.split(' ');
    let failed = w.next()? == "failed";
    Some(Import {
        importer: w.next()?.to_string(),
        exporter: w.next()?.to_string(),
        name: w.next()?.to_string(),
        ranges: parse_ranges(w.next().unwrap_or_default()),
        failed,
    })
}

fn set(key: &Bytes, value: &str) -> Option<Vec<Bytes>> {
    Some(vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        Bytes::from(value.to_string()),
    ])
}

fn clear(key: &Bytes) -> Option<Vec<Bytes>> {
    Some(vec![Bytes::from_static(b"DEL"), key.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn valkey_and_redis_migration_entries_are_read() {
        let start = args(&[
            "CLUSTER",
            "SYNCSLOTS",
            "ESTABLISH",
            "SOURCE",
            "abc",
            "NAME",
            "job1",
            "SLOTSRANGE",
            "10",
            "20",
            "30",
            "30",
        ]);
        assert_eq!(
            parse_asm(&start),
            Some(Asm::Start {
                name: "job1".into(),
                exporter: "abc".into(),
                ranges: vec![(10, 20), (30, 30)],
            })
        );
        let finish = args(&[
            "CLUSTER",
            "SYNCSLOTS",
            "FINISH",
            "STATE",
            "SUCCESS",
            "NAME",
            "job1",
            "MESSAGE",
            "",
        ]);
        assert_eq!(
            parse_asm(&finish),
            Some(Asm::Done {
                name: "job1".into(),
                ok: true
            })
        );
        let conf = |state: &str| {
            args(&[
                "CLUSTER",
                "SYNCSLOTS",
                "CONF",
                "ASM-TASK",
                &format!("t1:src:dst:import:{state}:3348-3348,4000-4010"),
            ])
        };
        assert_eq!(
            parse_asm(&conf("connecting")),
            Some(Asm::Start {
                name: "t1".into(),
                exporter: "src".into(),
                ranges: vec![(3348, 3348), (4000, 4010)],
            })
        );
        assert_eq!(
            parse_asm(&conf("completed")),
            Some(Asm::Done {
                name: "t1".into(),
                ok: true
            })
        );
        assert_eq!(
            parse_asm(&conf("failed")),
            Some(Asm::Done {
                name: "t1".into(),
                ok: false
            })
        );
        assert_eq!(
            parse_asm(&args(&["TRIMSLOTS", "RANGES", "1", "5", "6"])),
            Some(Asm::Other)
        );
        assert_eq!(parse_asm(&args(&["SET", "k", "v"])), None);
    }

    #[test]
    fn import_records_round_trip() {
        let i = Import {
            name: "n".into(),
            importer: "127.0.0.1:7000".into(),
            exporter: "abc".into(),
            ranges: vec![(1, 2), (5, 5)],
            failed: true,
        };
        assert_eq!(parse_import(&import_value(&i)), Some(i));
    }
}
