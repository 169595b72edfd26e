//! When to look again at the differences of the first pass: a sync running from the source into
//! the target may still have been applying them.
//!
//! If the target holds a redis-sync checkpoint of this source (a sync runs, exactly-once), the
//! source's `master_repl_offset` is read once the first pass is over: every write that pass
//! could have seen ends at or before it. The re-check waits until the target's checkpoint has
//! reached that offset (see [`crate::lag`]), at most `--recheck-timeout` seconds, so a key in
//! flight is re-read after it landed, however slow the sync, and no sooner than needed.
//! Without a usable checkpoint (none, a full copy under way, another history, a cluster
//! source), it pauses `--recheck-after` seconds instead. The report says which was done.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::side::Side;
use crate::lag;

/// How often the checkpoint is read while waiting.
const POLL: Duration = Duration::from_millis(20);

/// How the re-check was timed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Recheck {
    /// `checkpoint` (the target's checkpoint reached the source's offset), `checkpoint-timeout`
    /// (it did not within `--recheck-timeout`; re-checked anyway) or `pause` (no usable
    /// checkpoint: `--recheck-after` seconds).
    pub way: &'static str,
    /// Milliseconds waited before re-checking.
    pub waited_ms: u64,
    /// The same in words, with the offsets or the reason for the pause.
    pub detail: String,
}

/// Waits before the re-check of `differences` differences, the way the module doc says.
pub async fn wait(
    src: &mut Side,
    dst: &Side,
    differences: usize,
    recheck_after: f64,
    recheck_timeout: f64,
) -> Recheck {
    let start = Instant::now();
    let why = match until_applied(src, dst, differences, recheck_timeout, start).await {
        Ok(r) => return r,
        Err(why) => why,
    };
    tokio::time::sleep(secs(recheck_after)).await;
    Recheck {
        way: "pause",
        waited_ms: ms(start),
        detail: format!("re-checked after a pause of {recheck_after} s (--recheck-after): {why}"),
    }
}

/// The checkpoint way; `Err(why)` when the target's checkpoint cannot be used.
async fn until_applied(
    src: &mut Side,
    dst: &Side,
    differences: usize,
    timeout: f64,
    start: Instant,
) -> Result<Recheck, String> {
    let pos = match src.position().await {
        Ok(Some(p)) => p,
        Ok(None) => return Err("the source is a cluster (one stream per master)".into()),
        Err(e) => return Err(format!("reading the source's replication offset: {e:#}")),
    };
    let key = lag::checkpoint_key(src.endpoint());
    let read = || async {
        match lag::applied_offset(dst.endpoint(), &key, &pos).await {
            Ok(Ok(at)) => Ok(at),
            Ok(Err(unusable)) => Err(unusable.to_string()),
            Err(e) => Err(format!("reading the target's checkpoint: {e:#}")),
        }
    };
    let mut at = read().await?;
    if at < pos.offset {
        eprintln!(
            "verify: {differences} difference{} on the first pass; waiting for the target's \
             checkpoint to reach the source's offset {} (it is at {at}), at most {timeout} s",
            if differences == 1 { "" } else { "s" },
            pos.offset
        );
    }
    let deadline = start + secs(timeout);
    while at < pos.offset {
        if Instant::now() >= deadline {
            return Ok(Recheck {
                way: "checkpoint-timeout",
                waited_ms: ms(start),
                detail: format!(
                    "the target's checkpoint stayed at offset {at}, behind the source's {}, \
                     for {timeout} s (--recheck-timeout): re-checked anyway",
                    pos.offset
                ),
            });
        }
        tokio::time::sleep(POLL).await;
        at = read().await?;
    }
    Ok(Recheck {
        way: "checkpoint",
        waited_ms: ms(start),
        detail: format!(
            "re-checked once the target's checkpoint reached the source's offset {} after \
             the first pass (waited {} ms)",
            pos.offset,
            ms(start)
        ),
    })
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.clamp(0.0, 600.0)).unwrap_or(Duration::ZERO)
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
