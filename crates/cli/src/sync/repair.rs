//! `--on-error repair`: a target that disagrees with the source heals itself.
//!
//! When the target refuses a command because its copy of the key differs (someone wrote to
//! it: a string where the source has a counter, a hash where it has a list), the sink skips
//! the command into the dead-letter file and hands it here. The key is read afresh from the
//! source, atomically with the source's replication offset (`MULTI`, `DUMP`, `PTTL`,
//! `INFO replication`, `EXEC`), written to the target (`RESTORE … REPLACE`, or `DEL` when the
//! source has no such key), and the stream's commands on that key up to that offset are then
//! skipped: the copy already holds their effect.
//!
//! Exactly-once: the target's write commits together with the checkpoint, which carries the
//! repaired keys and their offsets (field `repairs`) until the stream has passed them, so a
//! restart skips the same commands. On a cluster target, whose checkpoints are per slot, the
//! copy commits with a marker key in the repaired key's slot
//! (`<checkpoint key>:repair:{tag}:<hex key>`, value `db:offset`), read back on a restart and
//! deleted once passed. Commands already on their way to the target when the repair is made
//! are applied before the copy overwrites the key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use redis_sync_commands::hash_slot;
use redis_sync_resp::Frame;
use redis_sync_sink::{Repair, slot_tag};

use super::Run;
use crate::client::{Client, text};

/// Keys copied afresh from the source: `(source db, key)` → the source offset at which the copy
/// was read. A command on the key ending at or before that offset is in the copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repairs(BTreeMap<(u32, Bytes), u64>);

impl Repairs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the command ending at `offset` on `key` of `db` is in a copy.
    pub fn covers(&self, db: u32, key: &[u8], offset: u64) -> bool {
        self.0
            .get(&(db, Bytes::copy_from_slice(key)))
            .is_some_and(|&at| offset <= at)
    }

    pub fn insert(&mut self, db: u32, key: Bytes, at: u64) {
        let e = self.0.entry((db, key)).or_insert(at);
        *e = (*e).max(at);
    }

    /// Forgets the copies the stream has passed (applied up to `offset`); returns them.
    pub fn retire(&mut self, offset: u64) -> Vec<(u32, Bytes)> {
        let passed: Vec<(u32, Bytes)> = self
            .0
            .iter()
            .filter(|(_, at)| **at <= offset)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &passed {
            self.0.remove(k);
        }
        passed
    }

    /// The checkpoint field: `db:hexkey:offset` joined by `;`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for ((db, key), at) in &self.0 {
            if !out.is_empty() {
                out.push(';');
            }
            let _ = write!(out, "{db}:");
            for b in key.iter() {
                let _ = write!(out, "{b:02x}");
            }
            let _ = write!(out, ":{at}");
        }
        out
    }

    /// Cluster: the marker key of `key`'s copy (in `key`'s slot), under checkpoint key `base`.
    pub fn marker(base: &str, key: &[u8]) -> Bytes {
        let tag = slot_tag(hash_slot(key));
        let mut m = format!("{base}:repair:{{{tag}}}:");
        for b in key {
            let _ = write!(m, "{b:02x}");
        }
        Bytes::from(m)
    }

    /// Cluster: the copies recorded in marker keys on the masters of the target.
    pub async fn read_markers(s: &crate::config::Settings) -> anyhow::Result<Repairs> {
        let base = super::target_checkpoint_key(s);
        let mut first = Client::connect(&s.target, Duration::from_secs(10)).await?;
        let masters = crate::client::cluster_masters(&mut first).await?;
        let pattern = format!("{base}:repair:*");
        let mut r = Repairs::default();
        for addr in masters {
            let mut c = Client::connect_addr(&s.target, &addr, Duration::from_secs(10)).await?;
            let mut cursor = "0".to_string();
            for _ in 0..100_000 {
                let page = c
                    .ok(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
                    .await?;
                let parts = page.as_slice().unwrap_or(&[]);
                for k in parts.get(1).and_then(Frame::as_slice).unwrap_or(&[]) {
                    let Some(name) = k.as_bytes() else { continue };
                    let name = String::from_utf8_lossy(name).into_owned();
                    let Some(hex) = name.rsplit(':').next() else {
                        continue;
                    };
                    let value = c.call(&["GET", name.as_str()]).await?;
                    let value = text(&value).unwrap_or_default();
                    let item = format!(
                        "{}:{hex}:{}",
                        value.split(':').next().unwrap_or("0"),
                        value.split(':').nth(1).unwrap_or("0")
                    );
                    for ((db, key), at) in Repairs::decode(&item)?.0 {
                        r.insert(db, key, at);
                    }
                }
                cursor = parts.first().and_then(text).unwrap_or_else(|| "0".into());
                if cursor == "0" {
                    break;
                }
            }
        }
        Ok(r)
    }

    pub fn decode(text: &str) -> anyhow::Result<Repairs> {
        let mut r = Repairs::default();
        for item in text.split(';').filter(|s| !s.is_empty()) {
            let mut parts = item.split(':');
            let (Some(db), Some(hex), Some(at), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                bail!("field repairs: {item:?} is not db:hexkey:offset");
            };
            if hex.len() % 2 != 0 {
                bail!("field repairs: odd hex key in {item:?}");
            }
            let key = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .with_context(|| format!("field repairs: {item:?}"))?;
            r.insert(
                db.parse().context("field repairs: db")?,
                Bytes::from(key),
                at.parse().context("field repairs: offset")?,
            );
        }
        Ok(r)
    }
}

impl Run<'_> {
    /// True when every key of the command ending at `offset` in source db `db` was copied
    /// afresh past it: the copy holds its effect, so it is not applied again.
    pub(super) fn repaired(&mut self, db: u32, args: &[Bytes], offset: u64) -> bool {
        let Ok(c) = self.classifier.classify(args) else {
            return false;
        };
        let mut keys = c.keys.iter().filter(|k| k.is_key()).peekable();
        keys.peek().is_some()
            && keys.all(|k| {
                args.get(k.index)
                    .is_some_and(|key| self.repairs.covers(db, key, offset))
            })
    }

    /// Copies the keys of the refused command `r` afresh from the source (see the module
    /// docs).
    pub(super) async fn repair(&mut self, r: Repair) -> anyhow::Result<()> {
        let Ok(c) = self.classifier.classify(&r.args) else {
            return Ok(()); // an unknown command: in the dead-letter file, nothing to copy
        };
        let keys: Vec<Bytes> = c
            .keys
            .iter()
            .filter(|k| k.is_key())
            .filter_map(|k| r.args.get(k.index).cloned())
            .collect();
        let name = String::from_utf8_lossy(r.args.first().map_or(&b""[..], |a| a)).to_uppercase();
        if name == "RESTORE" {
            // Possibly a repair's own copy refused: copying again would loop.
            tracing::error!(
                "the target refused a RESTORE ({}): not repaired; the command is in the \
                 dead-letter file (`redis-sync verify --repair` can fix the key)",
                r.error
            );
            return Ok(());
        }
        // The source db whose keys go to target db `r.db` (keys keep their names).
        let sdb = (0..256)
            .find(|&d| self.filter.target_db(d).ok().flatten() == Some(r.db))
            .unwrap_or(r.db);
        for key in keys {
            if r.offset.is_some_and(|o| self.repairs.covers(sdb, &key, o)) {
                continue; // copied afresh after this command already
            }
            let (value, at) = self.read_from_source(sdb, &key).await?;
            // Everything before on the target first: the copy overwrites it.
            self.flush_batch().await?;
            let write = match value {
                Some((payload, pttl)) => vec![
                    Bytes::from_static(b"RESTORE"),
                    key.clone(),
                    Bytes::from(pttl.max(0).to_string()),
                    payload,
                    Bytes::from_static(b"REPLACE"),
                ],
                None => vec![Bytes::from_static(b"DEL"), key.clone()],
            };
            self.repairs.insert(sdb, key.clone(), at);
            if self.exactly_once {
                // With the checkpoint, which carries the repairs (standalone); on a cluster,
                // whose checkpoints are per slot, with a marker in the key's slot.
                let mut parts = vec![write];
                if self.cluster {
                    parts.push(vec![
                        Bytes::from_static(b"SET"),
                        Repairs::marker(&super::target_checkpoint_key(self.s), &key),
                        Bytes::from(format!("{sdb}:{at}")),
                    ]);
                }
                let position = self
                    .last_commit
                    .or(self.ledger.applied_offset())
                    .unwrap_or((0, 0));
                self.commit_step(parts, r.db, position).await?;
            } else {
                let select = vec![Bytes::from_static(b"SELECT"), Bytes::from(r.db.to_string())];
                self.sink.write(select, None).await?;
                self.sink.write(write, None).await?;
                self.sink_db = None;
            }
            self.stats.keys_repaired += 1;
            tracing::warn!(
                "repaired key {:?} (db {sdb}): the target refused {name} with {:?}; copied \
                 afresh from the source at its offset {at}, and the stream's commands on it up \
                 to there are skipped (the command is in the dead-letter file)",
                String::from_utf8_lossy(&key),
                r.error
            );
        }
        Ok(())
    }

    /// The key's value (`DUMP` payload and `PTTL`; `None` when the source has no such key)
    /// and the source's replication offset at that instant, read in one transaction.
    async fn read_from_source(
        &mut self,
        db: u32,
        key: &Bytes,
    ) -> anyhow::Result<(Option<(Bytes, i64)>, u64)> {
        if self.source_client.is_none() {
            let c = Client::connect(&self.s.source, Duration::from_secs(10))
                .await
                .context("connecting to the source to repair a key")?;
            self.source_client = Some(c);
        }
        let Some(c) = self.source_client.as_mut() else {
            bail!("no connection to the source");
        };
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let replies = c
            .pipeline(&[
                vec![b("SELECT"), Bytes::from(db.to_string())],
                vec![b("MULTI")],
                vec![b("DUMP"), key.clone()],
                vec![b("PTTL"), key.clone()],
                vec![b("INFO"), b("replication")],
                vec![b("EXEC")],
            ])
            .await;
        let replies = match replies {
            Ok(r) => r,
            Err(e) => {
                self.source_client = None;
                return Err(e).context("reading a key to repair from the source");
            }
        };
        let Some(Frame::Array(items)) = replies.last() else {
            bail!("repairing {key:?}: the source's EXEC answered {replies:?}");
        };
        let value = match (items.first(), items.get(1)) {
            (Some(Frame::BulkString(p)), Some(Frame::Integer(ttl))) => Some((p.clone(), *ttl)),
            (Some(Frame::Null | Frame::NullBulkString), _) => None,
            other => bail!("repairing {key:?}: the source answered {other:?}"),
        };
        let info = items.get(2).and_then(text).unwrap_or_default();
        let at = redis_sync_resp::info_field(&info, "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .context("repairing a key: the source's INFO has no master_repl_offset")?;
        Ok((value, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_round_trip_cover_and_retire() {
        let mut r = Repairs::default();
        r.insert(0, Bytes::from_static(b"counter"), 500);
        r.insert(3, Bytes::from_static(b"a:b;c\xff"), 900);
        let back = Repairs::decode(&r.encode()).expect("decode");
        assert_eq!(back, r);
        assert!(r.covers(0, b"counter", 500));
        assert!(!r.covers(0, b"counter", 501));
        assert!(!r.covers(1, b"counter", 10));
        r.retire(600);
        assert!(!r.covers(0, b"counter", 400));
        assert!(r.covers(3, b"a:b;c\xff", 900));
        assert!(Repairs::decode("0:zz:5").is_err());
        assert_eq!(Repairs::decode("").expect("empty"), Repairs::default());
    }
}
