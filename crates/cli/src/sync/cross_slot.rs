//! Cross-slot moves on a cluster target: `RENAME`, `RENAMENX` and `COPY` whose two keys hash to
//! different slots, which a cluster refuses (`CROSSSLOT`) although the source ran them.
//!
//! Their effect is applied instead, as the classifier plans it
//! ([`MovePlan`](redis_sync_commands::MovePlan)): once everything before the command is on the
//! target, the source key's value and expiry are read there (`DUMP`, and `PEXPIRETIME` on 7.0+
//! or `PTTL`), `RESTORE … REPLACE` writes the destination, then a rename deletes the source
//! key. Nothing else is sent between those steps.
//!
//! Exactly-once: the destination's write commits with its slot's checkpoint at the command's
//! offset, and only once that is acknowledged does the deletion commit with the source slot's
//! checkpoint. After a crash between the two, the restart finds the destination's slot past
//! the command (its part is skipped) and the source's slot before it: the replay reads the
//! source key again (still there, unchanged) and deletes it. The destination's new value
//! depends on the source key and the source key's on nothing else, which is what makes that
//! order safe. Which parts a slot already holds is read from the slots' checkpoints, as the
//! sink does for every other command of a replay.

use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use redis_sync_commands::MovePlan;
use redis_sync_resp::Frame;
use redis_sync_sink::{TxCommand, slot_checkpoint_key};

use super::target_checkpoint::{CopyState, TargetCheckpoint};
use super::{Run, target_checkpoint_key};

impl Run<'_> {
    /// Applies the move `plan`, the command of source db `db` ending at `offset` (see the
    /// module docs).
    pub(super) async fn emulate_move(
        &mut self,
        plan: MovePlan,
        db: u32,
        offset: u64,
    ) -> anyhow::Result<()> {
        // Everything before it on the target first: its value is read there.
        if self.batch.in_source_transaction() && !self.warned_split_transaction {
            self.warned_split_transaction = true;
            tracing::warn!(
                "a source transaction holds a cross-slot RENAME/COPY: on a cluster target it is \
                 applied in parts, each atomic"
            );
        }
        self.flush_batch().await?;
        self.sink.flush().await.context("writing to the target")?;
        self.ledger.handle_written(offset, db, Instant::now());

        // A replay after a restart: the parts whose slot is past this command are there.
        let (dest_held, source_held) = if self.exactly_once {
            (
                self.slot_holds(plan.destination_slot, offset).await?,
                self.slot_holds(plan.source_slot, offset).await?,
            )
        } else {
            (false, false)
        };
        if dest_held {
            if plan.deletes_source() && !source_held {
                self.apply_part(plan.del_args(), db, offset).await?;
            }
            self.stats.cross_slot_emulated += 1;
            return Ok(());
        }

        let key = String::from_utf8_lossy(&plan.source).into_owned();
        let payload = match self.sink.query(0, plan.dump_args()).await? {
            Frame::BulkString(b) => b,
            Frame::Null | Frame::NullBulkString => bail!(
                "a cross-slot {kind} at source offset {offset}: the target has no key {key:?}, \
                 which the source had: the target differs from the source (was it written to?). \
                 Repair it (`redis-sync verify --repair`) and start the sync again",
                kind = kind(&plan)
            ),
            other => bail!("DUMP {key:?} on the target answered {other:?}"),
        };
        let exact = self.sink.target().version >= (7, 0, 0);
        let expiry_args = if exact {
            plan.pexpiretime_args()
        } else {
            plan.pttl_args()
        };
        let expiry = match self.sink.query(0, expiry_args).await? {
            Frame::Integer(n) => n,
            other => bail!("reading the expiry of {key:?} on the target answered {other:?}"),
        };
        let restore = if exact {
            plan.restore_abs_args(expiry, payload)
        } else {
            plan.restore_args(expiry, payload)
        };
        self.apply_part(restore, db, offset).await?;
        if plan.deletes_source() {
            self.apply_part(plan.del_args(), db, offset).await?;
        }
        self.stats.cross_slot_emulated += 1;
        Ok(())
    }

    /// True when `slot`'s checkpoint on the target is at `offset` or past it: the slot holds
    /// everything of the stream up to there.
    async fn slot_holds(&mut self, slot: u16, offset: u64) -> anyhow::Result<bool> {
        let key = slot_checkpoint_key(target_checkpoint_key(self.s).as_bytes(), slot);
        let reply = self
            .sink
            .query(
                0,
                vec![
                    Bytes::from_static(b"HGET"),
                    key,
                    Bytes::from_static(b"offset"),
                ],
            )
            .await
            .context("reading a slot's checkpoint on the target")?;
        let at = match &reply {
            Frame::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            _ => None,
        };
        Ok(at.is_some_and(|at: u64| at >= offset))
    }

    /// One step of an emulation, on the target and acknowledged: with its slot's checkpoint
    /// at `offset` (exactly-once), or alone.
    async fn apply_part(&mut self, args: Vec<Bytes>, db: u32, offset: u64) -> anyhow::Result<()> {
        if self.exactly_once {
            let cp = TargetCheckpoint {
                state: CopyState::Streaming,
                replid: self.stats.master_replid.clone().unwrap_or_default(),
                offset,
                db,
                replay: None,
            };
            let part = TxCommand {
                db: 0,
                args,
                offset,
            };
            self.commit(vec![part], &cp).await?;
        } else {
            self.sink
                .write(args, Some(offset))
                .await
                .context("writing to the target")?;
        }
        self.sink.flush().await.context("writing to the target")
    }
}

fn kind(plan: &MovePlan) -> &'static str {
    match plan.kind {
        redis_sync_commands::MoveKind::Rename => "RENAME",
        redis_sync_commands::MoveKind::RenameNx => "RENAMENX",
        _ => "COPY",
    }
}
