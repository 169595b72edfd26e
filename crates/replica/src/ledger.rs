//! [`Ledger`]: the one owner of a consumer's replication position.
//!
//! A consumer of the stream (redis-sync's sync loop, or any tool built on this crate in
//! [`AckMode::Manual`](crate::AckMode::Manual)) hands each event somewhere: to a target that
//! acknowledges it later, or nowhere (a filter dropped it, it was applied before a restart).
//! The applied position is the end of the longest prefix of the stream that is done. The
//! ledger is told each of those facts and answers where the consumer is; it owns no socket and
//! no clock (times come in as arguments), so its rules are tested without a server.
//!
//! Call order: one of [`handle_full_resync`](Ledger::handle_full_resync) /
//! [`handle_continued`](Ledger::handle_continued) when a session starts; then, in stream order,
//! [`handle_written`](Ledger::handle_written) or [`handle_settled`](Ledger::handle_settled) per
//! command and [`handle_position`](Ledger::handle_position) per
//! [`ReplicaEvent::Position`](crate::ReplicaEvent::Position) (the frames with nothing to apply:
//! the source's `PING`s, `SELECT`, `GETACK`),
//! [`handle_snapshot_applied`](Ledger::handle_snapshot_applied) once the snapshot is on the
//! target; [`handle_acked`](Ledger::handle_acked) whenever the target acknowledges. Read
//! [`applied`](Ledger::applied) and give it to [`AppliedOffset::set`](crate::AppliedOffset::set):
//! the replica acknowledges to the source exactly that, and works out no position of its own.
//!
//! ```
//! use redis_sync_replica::Ledger;
//!
//! let mut l = Ledger::new();
//! l.handle_continued("r1".into(), 100, 0);
//! assert_eq!(l.applied().map(|p| p.offset), Some(100)); // resumed: nothing new yet
//! let now = std::time::Instant::now();
//! l.handle_written(130, 0, now); // SET, sent to the target
//! l.handle_settled(150, 0); // a filtered command
//! assert_eq!(l.applied().map(|p| p.offset), Some(100)); // the SET is not acknowledged yet
//! l.handle_acked(130);
//! assert_eq!(l.applied().map(|p| p.offset), Some(150));
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::ResumePoint;

/// An event handed out and not yet part of the applied prefix.
#[derive(Debug, Clone, Copy)]
struct Item {
    offset: u64,
    db: u32,
    /// Sent to the target at this instant: waits for its acknowledgement.
    written: Option<Instant>,
}

/// Commands of a replayed range that the target already holds (from a checkpoint written
/// after a transaction that committed although some of its commands failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// Commands ending at or before this offset are on the target already...
    pub through: u64,
    /// ...except those ending at these offsets: they failed and are applied again.
    pub retry: Vec<u64>,
}

/// The replication position of a consumer, told what was handed out, written, settled and
/// acknowledged (see the call order in the [crate docs](crate)).
#[derive(Debug, Default)]
pub struct Ledger {
    replid: Option<String>,
    applied: Option<(u64, u32)>,
    items: VecDeque<Item>,
    acked: u64,
    replay: Option<Replay>,
    applied_commands: u64,
    settled_commands: u64,
}

impl Ledger {
    /// An empty ledger: no position until a session starts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands up to `replay.through` are on the target already, except `replay.retry`:
    /// [`is_replayed`](Self::is_replayed) says which to skip after the next resume.
    pub fn with_replay(mut self, replay: Replay) -> Self {
        self.replay = Some(replay);
        self
    }

    /// A full resynchronisation started (snapshot at `offset`): nothing of the new history
    /// is applied; everything pending belonged to the old one.
    pub fn handle_full_resync(&mut self, replid: Option<String>, _offset: u64) {
        self.replid = replid;
        self.applied = None;
        self.items.clear();
        self.acked = 0;
        self.replay = None;
    }

    /// The snapshot of the current full resync, at `offset`, is entirely on the target.
    pub fn handle_snapshot_applied(&mut self, offset: u64) {
        self.items.clear();
        self.set_applied(offset, 0);
    }

    /// A partial resynchronisation continues after `offset`, where `db` was selected.
    ///
    /// At the start of a run (resuming from a checkpoint) everything up to `offset` is
    /// applied. After a lost link the replica continues from what it had *received*: the
    /// commands handed out before still settle as the target acknowledges them, and only
    /// when none is waiting is the position moved over `offset` (the control frames up to
    /// there).
    pub fn handle_continued(&mut self, replid: String, offset: u64, db: u32) {
        self.replid = Some(replid);
        if self.items.is_empty() {
            // After a reconnect the db in force is the last one the stream selected.
            let db = self.applied.map_or(db, |(_, d)| d);
            self.set_applied(offset, db);
        }
    }

    /// The position just before the command ending at `offset`: the applied position, or
    /// the end of the command handed out before it. `None` when `offset` is not waiting.
    pub fn position_before(&self, offset: u64) -> Option<(u64, u32)> {
        let mut before = self.applied?;
        for item in &self.items {
            if item.offset == offset {
                return Some(before);
            }
            before = (item.offset, item.db);
        }
        None
    }

    /// The command ending at `offset` (in `db`) was sent to the target at `now`; it is
    /// applied once [`handle_acked`](Self::handle_acked) reaches `offset`.
    pub fn handle_written(&mut self, offset: u64, db: u32, now: Instant) {
        self.items.push_back(Item {
            offset,
            db,
            written: Some(now),
        });
    }

    /// The command ending at `offset` needs nothing from the target (filtered, skipped, or
    /// held by the target already): applied once everything before it is.
    pub fn handle_settled(&mut self, offset: u64, db: u32) {
        self.settled_commands += 1;
        self.items.push_back(Item {
            offset,
            db,
            written: None,
        });
        self.advance();
    }

    /// The stream reached `offset` (with `db` selected) through frames that carry nothing to
    /// apply ([`ReplicaEvent::Position`](crate::ReplicaEvent::Position)): applied once
    /// everything before it is. Not counted as a command.
    pub fn handle_position(&mut self, offset: u64, db: u32) {
        self.items.push_back(Item {
            offset,
            db,
            written: None,
        });
        self.advance();
    }

    /// The target acknowledged every command written up to `offset`.
    pub fn handle_acked(&mut self, offset: u64) {
        if offset > self.acked {
            self.acked = offset;
        }
        self.advance();
    }

    /// True when the command ending at `offset` is on the target already (see
    /// [`with_replay`](Self::with_replay)) and must not be applied again.
    pub fn is_replayed(&self, offset: u64) -> bool {
        self.replay
            .as_ref()
            .is_some_and(|r| offset <= r.through && !r.retry.contains(&offset))
    }

    /// The replay still in force, if any: what a checkpoint written now must carry so that
    /// a restart from it does not apply those commands again either.
    pub fn replay(&self) -> Option<&Replay> {
        self.replay.as_ref()
    }

    fn advance(&mut self) {
        let mut last = None;
        while let Some(item) = self.items.front() {
            if item.written.is_some() {
                if item.offset > self.acked {
                    break;
                }
                self.applied_commands += 1;
            }
            last = Some((item.offset, item.db));
            self.items.pop_front();
        }
        if let Some((offset, db)) = last {
            self.set_applied(offset, db);
        }
    }

    fn set_applied(&mut self, offset: u64, db: u32) {
        // Monotonic within one history: an acknowledgement never moves the position back.
        if self.applied.is_none_or(|(o, _)| offset >= o) {
            self.applied = Some((offset, db));
        }
        if let Some(r) = &self.replay
            && offset >= r.through
        {
            self.replay = None;
        }
    }

    /// The applied position: where a restart continues and what to acknowledge to the source.
    /// `None` before a snapshot is applied or a partial resync accepted.
    pub fn applied(&self) -> Option<ResumePoint> {
        let (offset, db) = self.applied?;
        Some(ResumePoint {
            replid: self.replid.clone().unwrap_or_default(),
            offset,
            db,
        })
    }

    /// Offset and db of the applied position, without the replication ID.
    pub fn applied_offset(&self) -> Option<(u64, u32)> {
        self.applied
    }

    /// When the oldest command still waiting for the target was sent (for lag in seconds).
    pub fn oldest_unacked(&self) -> Option<Instant> {
        self.items.iter().find_map(|i| i.written)
    }

    /// Commands handed out and not yet applied.
    pub fn in_flight(&self) -> usize {
        self.items.len()
    }

    /// Commands written and acknowledged so far.
    pub fn applied_commands(&self) -> u64 {
        self.applied_commands
    }

    /// Commands that needed nothing from the target so far.
    pub fn settled_commands(&self) -> u64 {
        self.settled_commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn continue_with_nothing_new_is_applied() {
        let mut l = Ledger::new();
        assert!(l.applied().is_none());
        l.handle_continued("r".into(), 500, 3);
        let p = l.applied().expect("position");
        assert_eq!((p.replid.as_str(), p.offset, p.db), ("r", 500, 3));
    }

    #[test]
    fn positions_count_once_everything_before_is_applied_and_are_not_commands() {
        let now = Instant::now();
        let mut l = Ledger::new();
        l.handle_continued("r".into(), 100, 0);
        l.handle_written(130, 0, now);
        l.handle_position(144, 0); // a PING after the SET
        assert_eq!(l.applied_offset(), Some((100, 0)));
        l.handle_acked(130);
        assert_eq!(l.applied_offset(), Some((144, 0)));
        l.handle_position(158, 4); // PING, SELECT 4: nothing waits before it
        assert_eq!(l.applied_offset(), Some((158, 4)));
        assert_eq!((l.applied_commands(), l.settled_commands()), (1, 0));
    }

    #[test]
    fn snapshot_then_commands() {
        let now = Instant::now();
        let mut l = Ledger::new();
        l.handle_full_resync(Some("r".into()), 100);
        assert!(l.applied().is_none());
        l.handle_snapshot_applied(100);
        assert_eq!(l.applied_offset(), Some((100, 0)));
        l.handle_written(120, 2, now);
        l.handle_settled(140, 2);
        l.handle_written(160, 1, now);
        assert_eq!(l.oldest_unacked(), Some(now));
        l.handle_acked(120);
        assert_eq!(l.applied_offset(), Some((140, 2)));
        l.handle_acked(160);
        assert_eq!(l.applied_offset(), Some((160, 1)));
        assert_eq!(l.applied_commands(), 2);
        assert_eq!(l.settled_commands(), 1);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn a_full_resync_forgets_the_old_history() {
        let now = Instant::now();
        let mut l = Ledger::new();
        l.handle_continued("a".into(), 1000, 0);
        l.handle_written(1100, 0, now);
        l.handle_full_resync(Some("b".into()), 50);
        assert!(l.applied().is_none());
        l.handle_acked(1100); // a late acknowledgement of the old history
        assert!(l.applied().is_none());
        l.handle_snapshot_applied(50);
        assert_eq!(
            l.applied().map(|p| (p.replid, p.offset)),
            Some(("b".into(), 50))
        );
    }

    #[test]
    fn a_reconnect_keeps_what_waits_for_the_target() {
        let now = Instant::now();
        let mut l = Ledger::new();
        l.handle_continued("r".into(), 100, 0);
        l.handle_written(150, 0, now);
        l.handle_continued("r".into(), 180, 0); // link lost and resumed after 180
        assert_eq!(l.applied_offset(), Some((100, 0)));
        assert_eq!(l.position_before(150), Some((100, 0)));
        l.handle_acked(150);
        assert_eq!(l.applied_offset(), Some((150, 0)));
        l.handle_continued("r".into(), 180, 7);
        assert_eq!(
            l.applied_offset(),
            Some((180, 0)),
            "the db the stream selected stays"
        );
    }

    #[test]
    fn replayed_commands_are_known() {
        let mut l = Ledger::new().with_replay(Replay {
            through: 300,
            retry: vec![200],
        });
        l.handle_continued("r".into(), 150, 0);
        assert!(!l.is_replayed(200));
        assert!(l.is_replayed(250));
        assert!(l.is_replayed(300));
        assert!(!l.is_replayed(301));
        l.handle_settled(250, 0); // nothing before it waits: applied moves to 250
        assert!(l.is_replayed(300));
        l.handle_settled(300, 0);
        assert!(!l.is_replayed(300)); // the replay is over once passed
    }

    proptest! {
        /// Whatever the order of acknowledgements, the applied offset never goes back, never
        /// passes a written command that is not acknowledged, and reaches the last command
        /// once everything is acknowledged.
        #[test]
        fn applied_is_the_done_prefix(
            ops in proptest::collection::vec((1u64..50, any::<bool>()), 1..60),
            acks in proptest::collection::vec(0usize..60, 0..30),
        ) {
            let now = Instant::now();
            let mut l = Ledger::new();
            l.handle_continued("r".into(), 0, 0);
            let mut offsets = Vec::new();
            let mut off = 0;
            for (step, written) in &ops {
                off += step;
                offsets.push((off, *written));
                if *written {
                    l.handle_written(off, 0, now);
                } else {
                    l.handle_settled(off, 0);
                }
            }
            let mut acked = 0;
            let mut last = 0;
            for a in acks {
                let (o, _) = offsets[a % offsets.len()];
                acked = acked.max(o);
                l.handle_acked(o);
                let applied = l.applied_offset().map_or(0, |p| p.0);
                prop_assert!(applied >= last);
                last = applied;
                // No written command beyond the acknowledged offset is inside the prefix.
                for &(o, w) in &offsets {
                    if w && o > acked {
                        prop_assert!(applied < o);
                    }
                }
            }
            l.handle_acked(off);
            prop_assert_eq!(l.applied_offset(), Some((off, 0)));
            prop_assert_eq!(l.in_flight(), 0);
        }
    }
}
