//! Keyspace notifications for the SCAN source: which keys changed since the watch began.
//!
//! Redis publishes `__keyspace@<db>__:<key>` with the event's name (`set`, `lpush`, `del`,
//! `expired`, `evicted`, …) for every key a command touches, when `notify-keyspace-events`
//! holds `K` and the event's class (`A` is every class but key-miss and new-key). The watch
//! subscribes with `PSUBSCRIBE __keyspace@*__:*` on a connection of its own before the SCAN
//! starts, so a key written during or after the copy is named here at least once after the
//! write; the copy reads it again afterwards. The events are only names: what a key holds is
//! read from the source when its turn comes (key level, not command level).
//!
//! Pub/sub is fire-and-forget: a message sent while the connection is down is lost. So a
//! dropped connection (or a subscriber the source disconnects for its `client-output-buffer-
//! limit pubsub`) ends the sync with an error instead of going on with a gap.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use redis_sync_resp::Frame;
use tokio::sync::Notify;

use super::conn::{Conn, error_text, text};
use crate::config::Config;
use crate::error::Error;

/// The classes the watch needs: `K` (keyspace channel) and every key-event class (`A`).
const NEEDED: &str = "KA";
/// What `A` stands for (Redis `notify.c`): generic, string, list, set, hash, zset, expired,
/// evicted, stream (5.0+). A value spelled out with these letters and `K` is enough too.
const A_CLASSES: &str = "g$lshzxet";

/// The keys notified and not yet read again, in arrival order, each once.
#[derive(Debug)]
pub(crate) struct Dirty {
    inner: Mutex<Inner>,
    /// Woken on each new key and on failure.
    pub(crate) wake: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<(u32, Bytes)>,
    set: HashSet<(u32, Bytes)>,
    /// Set when the watch failed: what the driver returns.
    failed: Option<Error>,
    /// Notifications received (for the log).
    received: u64,
}

impl Dirty {
    fn new() -> Arc<Dirty> {
        Arc::new(Dirty {
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a key unless it is waiting already; `false` once `max` keys wait (the caller
    /// fails the watch: the copy cannot keep up).
    fn push(&self, db: u32, key: Bytes, max: usize) -> bool {
        let mut g = self.lock();
        g.received += 1;
        let entry = (db, key);
        if g.set.contains(&entry) {
            return true;
        }
        if g.set.len() >= max {
            return false;
        }
        g.set.insert(entry.clone());
        g.order.push_back(entry);
        drop(g);
        self.wake.notify_one();
        true
    }

    /// Up to `n` keys, oldest first. A key taken is no longer waiting, so a notification
    /// that comes while it is being read puts it back: it is read again after that write.
    pub(crate) fn take(&self, n: usize) -> Vec<(u32, Bytes)> {
        let mut g = self.lock();
        let n = n.min(g.order.len());
        let taken: Vec<_> = g.order.drain(..n).collect();
        for k in &taken {
            g.set.remove(k);
        }
        taken
    }

    /// Keys waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Notifications received so far.
    pub(crate) fn received(&self) -> u64 {
        self.lock().received
    }

    /// The watch's failure, once (later calls give `None`).
    pub(crate) fn failure(&self) -> Option<Error> {
        self.lock().failed.take()
    }

    fn fail(&self, e: Error) {
        self.lock().failed = Some(e);
        self.wake.notify_one();
    }
}

/// The running watch: the waiting keys and the task that reads the subscription.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) dirty: Arc<Dirty>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `notify-keyspace-events` was before the watch changed it: written back at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Previous(pub(crate) String);

/// Whether `flags` (a `notify-keyspace-events` value) already gives every keyspace event.
pub(crate) fn covers(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('A') || A_CLASSES.chars().all(|c| flags.contains(c)))
}

/// `flags` with `K` and `A` added (the other letters kept: someone else may rely on them).
pub(crate) fn with_needed(flags: &str) -> String {
    let mut out: String = flags.to_string();
    for c in NEEDED.chars() {
        if !out.contains(c) {
            out.push(c);
        }
    }
    out
}

/// `__keyspace@<db>__:<key>` → (db, key).
pub(crate) fn parse_channel(channel: &Bytes) -> Option<(u32, Bytes)> {
    let rest = channel.strip_prefix(b"__keyspace@")?;
    let end = rest.iter().position(|&b| b == b'_')?;
    let db = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let after = rest[end..].strip_prefix(b"__:")?;
    let start = channel.len() - after.len();
    Some((db, channel.slice(start..)))
}

/// Checks `notify-keyspace-events` and, when allowed, turns on what is missing (recording
/// the old value in `previous` before the change, so it is restored however the run ends);
/// then subscribes and starts reading. Returns once the subscription is confirmed: a write
/// after that is seen.
pub(crate) async fn start(
    config: &Config,
    enable: bool,
    max_pending: usize,
    max_frame: u64,
    previous: &Mutex<Option<Previous>>,
) -> Result<Watch, Error> {
    let mut conn = Conn::open(config, "redis-sync-scan-notify", max_frame).await?;
    let addr = conn.addr.clone();
    let got = conn
        .call(&["CONFIG", "GET", "notify-keyspace-events"], "CONFIG GET")
        .await?;
    let current = match &got {
        Frame::Array(items) if items.len() == 2 => text(&items[1]),
        Frame::Map(items) if items.len() == 1 => text(&items[0].1),
        _ => None,
    };
    match current {
        Some(flags) if covers(&flags) => {
            tracing::info!(%addr, "notify-keyspace-events is {flags:?}: every key event is published");
        }
        Some(flags) if enable => {
            let new = with_needed(&flags);
            *previous.lock().unwrap_or_else(|e| e.into_inner()) = Some(Previous(flags.clone()));
            let set = conn
                .call(
                    &["CONFIG", "SET", "notify-keyspace-events", new.as_str()],
                    "CONFIG SET",
                )
                .await?;
            if let Some(e) = error_text(&set) {
                *previous.lock().unwrap_or_else(|e| e.into_inner()) = None;
                return Err(Error::Refused {
                    addr,
                    command: format!("CONFIG SET notify-keyspace-events {new}"),
                    message: format!(
                        "{e}; enable keyspace notifications (`{NEEDED}`) in the service's \
                         settings (a parameter group), or run without --scan-notify for a \
                         one-shot copy"
                    ),
                });
            }
            tracing::warn!(
                %addr,
                "notify-keyspace-events was {flags:?}: set to {new:?} for this run (restored at \
                 the end; if redis-sync is killed, run `CONFIG SET notify-keyspace-events \
                 \"{flags}\"` on the source)"
            );
        }
        Some(flags) => {
            return Err(Error::Refused {
                addr,
                command: "CONFIG GET notify-keyspace-events".into(),
                message: format!(
                    "it is {flags:?}, without every key event (`{NEEDED}`): let redis-sync set \
                     it (--scan-notify enables it for the run) or set it on the source"
                ),
            });
        }
        None => {
            // Managed services often rename or forbid CONFIG; their settings page sets it.
            let why = error_text(&got).unwrap_or_else(|| format!("{got:?}"));
            tracing::warn!(
                %addr,
                "cannot read notify-keyspace-events ({why}): make sure it includes `{NEEDED}` \
                 (in the service's settings), or changes on the source are not seen"
            );
        }
    }
    let sub = conn
        .call(&["PSUBSCRIBE", "__keyspace@*__:*"], "PSUBSCRIBE")
        .await?;
    let confirmed = match &sub {
        Frame::Array(items) | Frame::Push(items) => {
            items.first().and_then(text).as_deref() == Some("psubscribe")
        }
        _ => false,
    };
    if !confirmed {
        return Err(Error::Refused {
            addr,
            command: "PSUBSCRIBE __keyspace@*__:*".into(),
            message: error_text(&sub).unwrap_or_else(|| format!("unexpected reply {sub:?}")),
        });
    }
    conn.untimed();
    let dirty = Dirty::new();
    let task = tokio::spawn(read(conn, dirty.clone(), max_pending));
    Ok(Watch { dirty, task })
}

/// Reads `pmessage`s until the connection fails, then records why.
async fn read(mut conn: Conn, dirty: Arc<Dirty>, max_pending: usize) {
    let lost = "keyspace notifications (pub/sub is fire-and-forget: changes published while the \
                connection is down are lost, so the sync stops; run it again, which copies \
                everything again)";
    loop {
        let frame = match conn.read_frame(lost).await {
            Ok(f) => f,
            Err(e) => return dirty.fail(e),
        };
        let items = match &frame {
            Frame::Array(items) | Frame::Push(items) => items,
            _ => continue,
        };
        // pmessage <pattern> <channel> <event>
        if items.len() != 4 || items[0].as_bytes().map(|b| &b[..]) != Some(b"pmessage") {
            continue;
        }
        let Some((db, key)) = items[2].as_bytes().and_then(parse_channel) else {
            continue;
        };
        if !dirty.push(db, key, max_pending) {
            return dirty.fail(Error::Protocol {
                addr: conn.addr.clone(),
                during: "keyspace notifications".into(),
                message: format!(
                    "{max_pending} changed keys wait to be read again: the source changes \
                     faster than they are copied (raise --scan-max-pending, or use a \
                     replication source)"
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_the_db_and_the_key() {
        let c = Bytes::from_static(b"__keyspace@12__:user:{1}:__x");
        assert_eq!(
            parse_channel(&c),
            Some((12, Bytes::from_static(b"user:{1}:__x")))
        );
        let c = Bytes::from_static(b"__keyspace@0__:");
        assert_eq!(parse_channel(&c), Some((0, Bytes::new())));
        assert_eq!(
            parse_channel(&Bytes::from_static(b"__keyevent@0__:set")),
            None
        );
        assert_eq!(
            parse_channel(&Bytes::from_static(b"__keyspace@x__:k")),
            None
        );
    }

    #[test]
    fn flags_are_completed_not_replaced() {
        assert!(covers("AK"));
        assert!(covers("Kg$lshzxet"));
        assert!(!covers("Ex"));
        assert!(!covers("A"));
        assert_eq!(with_needed(""), "KA");
        assert_eq!(with_needed("xE"), "xEKA");
        assert_eq!(with_needed("AK"), "AK");
    }

    #[test]
    fn a_key_waits_once_and_comes_back_after_it_is_taken() {
        let d = Dirty::new();
        assert!(d.push(0, "a".into(), 2));
        assert!(d.push(0, "a".into(), 2));
        assert!(d.push(1, "a".into(), 2));
        assert!(!d.push(0, "b".into(), 2));
        assert_eq!(d.take(10), [(0, "a".into()), (1, "a".into())]);
        assert!(d.push(0, "a".into(), 2));
        assert_eq!(d.len(), 1);
        assert_eq!(d.received(), 5);
    }
}
