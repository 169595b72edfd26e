//! The checkpoint kept in a standalone target: a hash `redis-sync:checkpoint:<source>` in db 0,
//! written inside the same `MULTI … EXEC` as each batch of the stream (so data and position
//! commit together), and trusted over the local state file on a restart.
//!
//! Fields: `offset`, `replid`, `db` (where `PSYNC` continues), `state` (`copying` while a full
//! copy is under way: a restart redoes the copy and sweeps; `streaming` after), `replay`
//! (`through:o1,o2`, after a stop on a command that failed inside a transaction that committed:
//! the commands up to `through` are on the target except those ending at `o1,o2`), `repairs`
//! (`db:hexkey:offset;…`, keys copied afresh from the source by `--on-error repair`), `txn` (which
//! transaction wrote it; see `redis_sync_sink::CheckpointWrite`), `updated_ms`, `source`.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::future::join_all;
use redis_sync_replica::{Replay, ResumePoint};
use redis_sync_resp::Frame;
use redis_sync_sink::{CLUSTER_SLOTS, CheckpointWrite, Sink, slot_checkpoint_key};

use crate::client::Client;
use crate::config::Settings;

/// Where a full copy stands in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// A full copy started and did not complete.
    Copying,
    /// The copy completed; the stream is applied up to `offset`.
    Streaming,
}

/// The checkpoint as read from (or written to) the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCheckpoint {
    pub state: CopyState,
    pub replid: String,
    pub offset: u64,
    pub db: u32,
    pub replay: Option<Replay>,
    /// Keys copied afresh from the source by `--on-error repair` (see `super::repair`).
    pub repairs: super::repair::Repairs,
}

impl TargetCheckpoint {
    /// Where `PSYNC` continues, when the copy completed.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        (self.state == CopyState::Streaming && !self.replid.is_empty()).then(|| ResumePoint {
            replid: self.replid.clone(),
            offset: self.offset,
            db: self.db,
        })
    }

    /// The write of this checkpoint into key `key`.
    pub fn write(&self, key: &str, source: &str) -> CheckpointWrite {
        let replay = self.replay.as_ref().map_or(String::new(), |r| {
            let retry: Vec<String> = r.retry.iter().map(u64::to_string).collect();
            format!("{}:{}", r.through, retry.join(","))
        });
        let state = match self.state {
            CopyState::Copying => "copying",
            CopyState::Streaming => "streaming",
        };
        let f = |k: &'static str, v: String| (Bytes::from_static(k.as_bytes()), Bytes::from(v));
        CheckpointWrite {
            key: Bytes::from(key.to_string()),
            offset: self.offset,
            fields: vec![
                f("replid", self.replid.clone()),
                f("db", self.db.to_string()),
                f("state", state.to_string()),
                f("replay", replay),
                f("repairs", self.repairs.encode()),
                f("updated_ms", super::unix_ms().to_string()),
                f("source", source.to_string()),
            ],
        }
    }

    /// Parses the fields of the hash (`HGETALL` pairs).
    fn parse(pairs: &[(String, String)]) -> anyhow::Result<TargetCheckpoint> {
        let get = |k: &str| pairs.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let num = |k: &str| -> anyhow::Result<u64> {
            get(k)
                .unwrap_or("0")
                .parse()
                .with_context(|| format!("field {k} is not a number"))
        };
        let state = match get("state") {
            Some("copying") => CopyState::Copying,
            Some("streaming") => CopyState::Streaming,
            other => anyhow::bail!("unknown state {other:?}"),
        };
        let replay = match get("replay").filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => {
                let (through, retry) = r.split_once(':').context("field replay")?;
                Some(Replay {
                    through: through.parse().context("field replay")?,
                    retry: retry
                        .split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("field replay")?,
                })
            }
        };
        Ok(TargetCheckpoint {
            state,
            replid: get("replid").unwrap_or_default().to_string(),
            offset: num("offset")?,
            db: u32::try_from(num("db")?).context("field db")?,
            replay,
            repairs: super::repair::Repairs::decode(get("repairs").unwrap_or_default())?,
        })
    }
}

/// The key of the checkpoint of this source in the target.
pub fn key(s: &Settings) -> String {
    super::target_checkpoint_key(s)
}

/// Most checkpoint keys of other source addresses looked at (see [`adopt`]).
const MAX_OTHERS: usize = 1000;

/// Reads the checkpoint from the target; `None` when there is none. A checkpoint of the
/// earlier format (a JSON string written by `--checkpoint-in-target`) is read too.
///
/// The key is named after the source's address. When there is none under this address but
/// another source's checkpoint names a replication ID this source continues (it is the
/// replica that took over after a failover: its `master_replid2`), that one is taken over
/// and renamed, so the sync continues with a partial resync instead of a new copy.
pub async fn read(s: &Settings) -> anyhow::Result<Option<TargetCheckpoint>> {
    let key = key(s);
    let mut c = Client::connect(&s.target, Duration::from_secs(10)).await?;
    c.ok(&["SELECT", "0"]).await?;
    let kind = c.ok(&["TYPE", key.as_str()]).await?;
    let kind = crate::client::text(&kind).unwrap_or_default();
    if kind == "none" {
        adopt(s, &mut c, &key).await?;
    }
    let kind = c.ok(&["TYPE", key.as_str()]).await?;
    let kind = crate::client::text(&kind).unwrap_or_default();
    match kind.as_str() {
        "none" => Ok(None),
        "hash" => {
            let reply = c.ok(&["HGETALL", key.as_str()]).await?;
            let pairs = crate::client::pairs(&reply);
            TargetCheckpoint::parse(&pairs)
                .map(Some)
                .with_context(|| format!("the target's {key} is not a redis-sync checkpoint (delete it to start with a full copy)"))
        }
        "string" => {
            let reply = c.ok(&["GET", key.as_str()]).await?;
            let Some(body) = reply.as_bytes() else {
                return Ok(None);
            };
            let old: super::Checkpoint = serde_json::from_slice(body).with_context(|| {
                format!("the target's {key} is not a redis-sync checkpoint (delete it)")
            })?;
            // The transactions write a hash: the old string goes.
            c.ok(&["DEL", key.as_str()]).await?;
            Ok(old.resume_point().map(|p| TargetCheckpoint {
                state: CopyState::Streaming,
                replid: p.replid,
                offset: p.offset,
                db: p.db,
                replay: None,
                repairs: Default::default(),
            }))
        }
        other => anyhow::bail!(
            "the target's {key} is a {other}, not a redis-sync checkpoint (delete it to start with a full copy)"
        ),
    }
}

/// After a failover the source has a new address: finds a checkpoint of an earlier address
/// whose replication ID is one this source continues, and renames it to `key`.
async fn adopt(s: &Settings, target: &mut Client, key: &str) -> anyhow::Result<()> {
    if s.files.is_some() {
        return Ok(()); // a backup has no other address
    }
    let pattern = format!("{}*", super::TARGET_CHECKPOINT_PREFIX);
    let mut cursor = "0".to_string();
    let mut others = Vec::new();
    for _ in 0..MAX_OTHERS {
        let page = target
            .ok(&[
                "SCAN",
                cursor.as_str(),
                "MATCH",
                pattern.as_str(),
                "COUNT",
                "1000",
            ])
            .await?;
        let parts = page.as_slice().unwrap_or(&[]);
        let next = parts
            .first()
            .and_then(crate::client::text)
            .unwrap_or_else(|| "0".into());
        for k in parts.get(1).and_then(Frame::as_slice).unwrap_or(&[]) {
            if let Some(k) = k.as_bytes() {
                others.push(String::from_utf8_lossy(k).into_owned());
            }
        }
        if next == "0" || others.len() >= MAX_OTHERS {
            break;
        }
        cursor = next;
    }
    if others.is_empty() {
        return Ok(());
    }
    let ids = {
        let mut src = Client::connect(&s.source, Duration::from_secs(10)).await?;
        let info = src.info("replication").await?;
        ["master_replid", "master_replid2"]
            .iter()
            .filter_map(|f| crate::client::field(&info, f))
            .filter(|id| !id.chars().all(|c| c == '0'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for other in others {
        let reply = target.call(&["HGET", other.as_str(), "replid"]).await?;
        let Some(replid) = reply.as_bytes() else {
            continue;
        };
        if ids.iter().any(|id| id.as_bytes() == replid.as_ref()) {
            target.ok(&["RENAME", other.as_str(), key]).await?;
            tracing::info!(
                "the target's checkpoint {other} is of replication ID {}, which this source \
                 continues (a failover?): taken over as {key}",
                String::from_utf8_lossy(replid)
            );
            return Ok(());
        }
    }
    Ok(())
}

/// Slot checkpoints read at once (each is one `HMGET`, pipelined through the sink).
const SLOTS_AT_ONCE: usize = 1024;

/// Reads the checkpoints of a cluster target, through the sink (which knows where each slot
/// is): the cluster-wide hash at `key` (state, replication ID, and an offset every slot had
/// reached when it was written), and the checkpoint of each slot. Returns the checkpoint with
/// the position to resume from (the smallest over the slots) and, per slot, the offset up to
/// which the target holds the stream.
pub async fn read_cluster(
    s: &Settings,
    sink: &Sink,
) -> anyhow::Result<Option<(TargetCheckpoint, Vec<u64>)>> {
    let key = key(s);
    let q = |args: Vec<&[u8]>| {
        let args: Vec<Bytes> = args.into_iter().map(Bytes::copy_from_slice).collect();
        sink.query(0, args)
    };
    let reply = q(vec![b"HGETALL", key.as_bytes()])
        .await
        .with_context(|| format!("reading {key} from the target"))?;
    if let Frame::Error(e) = &reply {
        anyhow::bail!(
            "reading {key} from the target: {} (delete it to start with a full copy)",
            String::from_utf8_lossy(e)
        );
    }
    let pairs = crate::client::pairs(&reply);
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut cp = TargetCheckpoint::parse(&pairs).with_context(|| {
        format!("the target's {key} is not a redis-sync checkpoint (delete it to start with a full copy)")
    })?;
    if cp.state != CopyState::Streaming {
        return Ok(Some((cp, Vec::new())));
    }
    // Per slot: the offset it holds the stream to, and the source db there.
    let mut floors = vec![cp.offset; usize::from(CLUSTER_SLOTS)];
    let mut dbs = vec![cp.db; usize::from(CLUSTER_SLOTS)];
    for start in (0..CLUSTER_SLOTS).step_by(SLOTS_AT_ONCE) {
        let end = (start + SLOTS_AT_ONCE as u16).min(CLUSTER_SLOTS);
        let keys: Vec<Bytes> = (start..end)
            .map(|slot| slot_checkpoint_key(key.as_bytes(), slot))
            .collect();
        let replies = join_all(keys.iter().map(|k| {
            sink.query(
                0,
                vec![
                    Bytes::from_static(b"HMGET"),
                    k.clone(),
                    Bytes::from_static(b"offset"),
                    Bytes::from_static(b"db"),
                ],
            )
        }))
        .await;
        for (slot, reply) in (start..end).zip(replies) {
            let reply = reply.context("reading the slots' checkpoints")?;
            let fields = reply.as_slice().unwrap_or(&[]);
            let num = |i: usize| -> Option<u64> {
                let b = fields.get(i)?.as_bytes()?;
                std::str::from_utf8(b).ok()?.parse().ok()
            };
            let i = usize::from(slot);
            if let Some(o) = num(0)
                && o > floors[i]
            {
                floors[i] = o;
                dbs[i] = num(1).and_then(|d| u32::try_from(d).ok()).unwrap_or(0);
            }
        }
    }
    // Resume where the slot that is furthest behind is; the others skip what they hold.
    if let Some((i, &o)) = floors.iter().enumerate().min_by_key(|(_, o)| **o) {
        cp.offset = o;
        cp.db = dbs[i];
    }
    Ok(Some((cp, floors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(w: &CheckpointWrite) -> Vec<(String, String)> {
        let mut out = vec![("offset".to_string(), w.offset.to_string())];
        for (k, v) in &w.fields {
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        out
    }

    #[test]
    fn round_trip() {
        let cp = TargetCheckpoint {
            state: CopyState::Streaming,
            replid: "abc".into(),
            offset: 1234,
            db: 5,
            replay: Some(Replay {
                through: 2000,
                retry: vec![1300, 1500],
            }),
            repairs: super::super::repair::Repairs::decode("0:6b6579:1500").expect("repairs"),
        };
        let back = TargetCheckpoint::parse(&pairs(&cp.write("k", "src"))).expect("parse");
        assert_eq!(back, cp);
        let copying = TargetCheckpoint {
            state: CopyState::Copying,
            replay: None,
            ..cp
        };
        let back = TargetCheckpoint::parse(&pairs(&copying.write("k", "src"))).expect("parse");
        assert_eq!(back, copying);
        assert_eq!(back.resume_point(), None);
        assert!(TargetCheckpoint::parse(&[("state".into(), "x".into())]).is_err());
    }
}
