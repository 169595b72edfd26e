//! Offsets: what the consumer has applied ([`AppliedOffset`]) and the session it belongs to
//! (`Progress`), and from those the offset to acknowledge and to resume from.
//!
//! The rule, from Redis's replica (`replicationSendAck` sends the processed offset;
//! `slaveTryPartialResynchronization` asks for `reploff + 1`): the offset acknowledged and
//! checkpointed is the last byte applied. Frames that carry no data for the consumer (`PING`,
//! `SELECT`, `REPLCONF GETACK`) reach it as [`ReplicaEvent::Position`](crate::ReplicaEvent)
//! and count as applied once everything before them is (in the consumer's
//! [`Ledger`](crate::Ledger), or here in [`AckMode::Delivered`](crate::AckMode::Delivered)),
//! so a caught-up consumer acknowledges exactly the master's `master_repl_offset`. Nothing
//! here works the position out a second time.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::ResumePoint;
use crate::metrics::Metrics;

/// The consumer's report of what it has applied; cheap to clone and share.
///
/// With [`AckMode::Delivered`](crate::AckMode::Delivered) (the default) the replica updates it
/// itself as it hands out events. With [`AckMode::Manual`](crate::AckMode::Manual) call
/// [`set`](Self::set) with a command's `offset` and `db` once the command is applied (and with
/// [`ReplicaEvent::RdbDone`](crate::ReplicaEvent::RdbDone)'s offset and db 0 once the snapshot is).
#[derive(Debug, Clone)]
pub struct AppliedOffset {
    inner: Arc<Mutex<Option<(u64, u32)>>>,
    metrics: Arc<Metrics>,
}

impl AppliedOffset {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        AppliedOffset {
            inner: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<(u64, u32)>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything up to replication offset `offset` is applied; `db` is the database selected
    /// at that point (the `db` of the command whose `offset` this is).
    pub fn set(&self, offset: u64, db: u32) {
        *self.lock() = Some((offset, db));
        self.metrics.set_applied(offset);
    }

    /// The last value set, if any since the current full sync began.
    pub fn get(&self) -> Option<(u64, u32)> {
        *self.lock()
    }

    /// A new full sync: nothing of the new data set is applied yet.
    pub(crate) fn reset(&self) {
        *self.lock() = None;
    }
}

/// The session's replication ID and where it began; shared with the task that sends ACKs.
#[derive(Debug, Default, Clone)]
pub(crate) struct ProgressState {
    /// The replication ID of the stream (`None` after a `SYNC`: it cannot be resumed).
    pub(crate) replid: Option<String>,
    /// True once the payload is done (or after `+CONTINUE`): the offsets below are valid.
    pub(crate) streaming: bool,
    /// The offset at which the snapshot was taken (`+FULLRESYNC`), or where we continued.
    pub(crate) base_offset: u64,
    /// Database selected at `base_offset`.
    pub(crate) base_db: u32,
    /// A `REPLCONF GETACK` is waiting for the consumer to apply up to this offset (the
    /// offset before the GETACK, as a Redis replica answers).
    pub(crate) getack_target: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    inner: Arc<Mutex<ProgressState>>,
}

impl Progress {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ProgressState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A full synchronisation of history `replid` (`None`: not resumable, after `SYNC`) from
    /// the snapshot at `offset`: nothing is acknowledged until its payload is done.
    pub(crate) fn full_sync(&self, replid: Option<String>, offset: u64) {
        let mut p = self.lock();
        p.replid = replid;
        p.streaming = false;
        p.base_offset = offset;
        p.base_db = 0;
    }

    /// The snapshot's payload is done; the stream begins at `offset` (after `SYNC`, learned
    /// from the RDB).
    pub(crate) fn snapshot_done(&self, offset: u64) {
        let mut p = self.lock();
        p.streaming = true;
        p.base_offset = offset;
    }

    /// A partial resynchronisation: history `replid` continues at `offset` with `db`.
    pub(crate) fn continued(&self, replid: String, offset: u64, db: u32) {
        let mut p = self.lock();
        p.replid = Some(replid);
        p.streaming = true;
        p.base_offset = offset;
        p.base_db = db;
    }

    /// The offset to acknowledge: what the consumer applied (control frames included: they
    /// come to it as [`ReplicaEvent::Position`](crate::ReplicaEvent::Position)); the
    /// snapshot's offset while it has applied nothing of this history, so that a source
    /// waiting for a first ACK after a diskless payload gets one.
    pub(crate) fn ack_offset(&self, applied: Option<(u64, u32)>) -> Option<u64> {
        let p = self.lock();
        if !p.streaming {
            return None;
        }
        Some(applied.map_or(p.base_offset, |(a, _)| a))
    }

    /// Where a restarted replica should continue: what the consumer applied.
    pub(crate) fn resume_point(&self, applied: Option<(u64, u32)>) -> Option<ResumePoint> {
        let p = self.lock();
        let replid = p.replid.clone()?;
        if !p.streaming {
            return None;
        }
        let (offset, db) = applied?;
        Some(ResumePoint { replid, offset, db })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_what_is_applied_and_the_snapshot_before_anything() {
        let progress = Progress::default();
        assert_eq!(progress.ack_offset(None), None);
        {
            let mut p = progress.lock();
            p.replid = Some("r".into());
            p.streaming = true;
            p.base_offset = 100;
        }
        assert_eq!(progress.ack_offset(None), Some(100));
        assert_eq!(progress.ack_offset(Some((120, 2))), Some(120));
        assert_eq!(progress.resume_point(None), None);
        assert_eq!(
            progress.resume_point(Some((180, 1))),
            Some(ResumePoint {
                replid: "r".into(),
                offset: 180,
                db: 1
            })
        );
        progress.lock().replid = None; // after SYNC
        assert_eq!(progress.resume_point(Some((180, 1))), None);
        assert_eq!(progress.ack_offset(Some((180, 1))), Some(180));
    }
}
