//! How far a target is in its source's replication stream, read from the target itself.
//!
//! `redis-sync sync` (exactly-once, the default) commits the hash
//! `redis-sync:checkpoint:<source>` with the data: its `offset` is the source's replication
//! offset up to which the target holds every write (written also when the source only sends
//! `PING`s, so an idle sync reaches the source's offset). Whoever can read the source's
//! `master_repl_offset` and that hash knows whether a write made at some moment is on the target
//! yet, whichever machine runs the sync. `cutover` waits on it before and during its pause;
//! `verify` waits on it before re-checking a difference that may have been in flight.

use anyhow::{Context, bail};
use redis_sync_resp::Frame;

use crate::client::Client;
use crate::url::Endpoint;

/// Timeout of each request made here.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The source's replication position (`INFO replication`).
#[derive(Debug, Clone)]
pub struct SourcePosition {
    /// `master` or `slave`.
    pub role: String,
    /// The replication ID of the source's history.
    pub replid: String,
    /// The ID of the history it continues (after a failover).
    pub replid2: String,
    /// `master_repl_offset`: every write made so far ends at or before it.
    pub offset: u64,
}

/// Reads the replication position of the server `c` is connected to.
pub async fn source_position(c: &mut Client) -> anyhow::Result<SourcePosition> {
    let info = c.info("replication").await?;
    let field = |name: &str| crate::client::field(&info, name).map(str::to_string);
    Ok(SourcePosition {
        role: field("role").unwrap_or_default(),
        replid: field("master_replid").unwrap_or_default(),
        replid2: field("master_replid2").unwrap_or_default(),
        offset: field("master_repl_offset")
            .and_then(|v| v.parse().ok())
            .context("the source's INFO has no master_repl_offset")?,
    })
}

/// The key of the checkpoint of `source` in a target (the sync names it after the source's
/// address as given).
pub fn checkpoint_key(source: &Endpoint) -> String {
    format!(
        "{}{}",
        crate::sync::TARGET_CHECKPOINT_PREFIX,
        crate::sentinel::checkpoint_name(source)
    )
}

/// Why a target's checkpoint does not say how far it is in the source's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The target holds no checkpoint of this source.
    Missing,
    /// The sync is still in its full copy (the `state` field).
    Copying(String),
    /// The checkpoint is of another replication history (`replid`).
    OtherHistory(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => write!(f, "no redis-sync checkpoint of this source in the target"),
            Unusable::Copying(state) => {
                write!(
                    f,
                    "the sync is still in its full copy (checkpoint state {state})"
                )
            }
            Unusable::OtherHistory(id) => {
                write!(
                    f,
                    "the target's checkpoint is of another history (replication ID {id})"
                )
            }
        }
    }
}

/// The target's checkpoint hash `key`: `(state, replid, offset)`, `None` when absent. On a
/// cluster target the node that owns the key's slot answers (one `MOVED` is followed).
async fn target_checkpoint(
    target: &Endpoint,
    key: &str,
) -> anyhow::Result<Option<(String, String, u64)>> {
    let mut c = Client::connect(target, TIMEOUT).await?;
    c.ok(&["SELECT", "0"]).await.ok();
    let mut reply = c.call(&["HGETALL", key]).await?;
    if let Frame::Error(e) = &reply
        && let Some(addr) = String::from_utf8_lossy(e)
            .strip_prefix("MOVED ")
            .and_then(|r| r.split_whitespace().nth(1))
            .map(str::to_string)
    {
        c = Client::connect_addr(target, &addr, TIMEOUT).await?;
        reply = c.call(&["HGETALL", key]).await?;
    }
    let pairs = match &reply {
        Frame::Error(e) => bail!(
            "{}: reading the checkpoint {key}: {}",
            c.addr(),
            String::from_utf8_lossy(e)
        ),
        other => crate::client::pairs(other),
    };
    if pairs.is_empty() {
        return Ok(None);
    }
    let get = |k: &str| pairs.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    let offset = get("offset")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("the checkpoint {key} has no valid offset"))?;
    Ok(Some((
        get("state").unwrap_or_default(),
        get("replid").unwrap_or_default(),
        offset,
    )))
}

/// The offset up to which the target holds the stream of the source at `src`, from the
/// checkpoint `key`; `Ok(Err(why))` when the checkpoint cannot say (none, still copying, another
/// history). Errors are I/O or a checkpoint that is not one.
pub async fn applied_offset(
    target: &Endpoint,
    key: &str,
    src: &SourcePosition,
) -> anyhow::Result<Result<u64, Unusable>> {
    let Some((state, replid, offset)) = target_checkpoint(target, key).await? else {
        return Ok(Err(Unusable::Missing));
    };
    if state != "streaming" {
        return Ok(Err(Unusable::Copying(state)));
    }
    if replid != src.replid && replid != src.replid2 {
        return Ok(Err(Unusable::OtherHistory(replid)));
    }
    Ok(Ok(offset))
}
