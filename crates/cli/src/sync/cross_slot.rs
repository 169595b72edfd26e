//! Multi-key writes whose keys hash to different slots of a cluster target, which the cluster
//! refuses (`CROSSSLOT`) although the source ran them. The stream is the truth and redis-sync
//! the only writer, so each is applied by its effect, as one ordered unit: nothing else is
//! sent between its steps.
//!
//! ## Moves
//!
//! `RENAME`, `RENAMENX` and `COPY`.
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
use redis_sync_commands::table::KeySpecFlags;
use redis_sync_commands::{Classifier, MovePlan, Route, hash_slot};
use redis_sync_resp::Frame;
use redis_sync_sink::{slot_checkpoint_key, slot_tag};

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
        // Everything before it on the target first: its value is read there. (Inside a source
        // transaction that splits it: counted as `transactions_split`.)
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
        self.apply_parts(vec![args], db, offset).await
    }
}

/// How a write whose keys span slots is applied on a cluster target.
#[derive(Debug)]
pub enum Way {
    /// Split per slot by the sink (`DEL`, `UNLINK`, `MSET`): each part means the same.
    Split,
    /// A move: `DUMP`/`RESTORE`, then the deletion ([`Run::emulate_move`]).
    Move(MovePlan),
    /// Run on copies of its keys in one slot ([`Run::emulate_cross_slot`]); the key positions
    /// and their key-spec flags.
    OnCopies(Vec<(usize, KeySpecFlags)>),
    /// Not applicable across slots (a script, or no key it writes): the cluster's
    /// `CROSSSLOT` stops the sync, with the advice to use hash tags.
    Refused,
}

/// How `args` is applied on a cluster target; `None` when its keys share a slot (or it has
/// none), so it goes as it is. `sync` and `check` both decide here.
pub fn way(classifier: &mut Classifier, args: &[Bytes]) -> Option<Way> {
    let c = classifier.classify(args).ok()?;
    if c.route != Route::CrossSlot {
        return None;
    }
    if !c.command.is_write() {
        return Some(Way::Refused);
    }
    let keys: Vec<(usize, KeySpecFlags)> = c
        .keys
        .iter()
        .filter(|k| k.is_key())
        .map(|k| (k.index, k.flags))
        .collect();
    if let Some(plan) = redis_sync_commands::cross_slot_move(args) {
        return Some(Way::Move(plan));
    }
    Some(match redis_sync_commands::split_for_cluster(args) {
        Ok(_) => Way::Split,
        Err(redis_sync_commands::Error::CrossSlot { .. })
            if keys.iter().any(|(_, f)| f.intersects(WRITTEN)) =>
        {
            Way::OnCopies(keys)
        }
        Err(_) => Way::Refused,
    })
}

/// The key-spec flags of a key the command writes.
const WRITTEN: KeySpecFlags = KeySpecFlags::RW
    .union(KeySpecFlags::OW)
    .union(KeySpecFlags::RM);

impl Run<'_> {
    /// Any other write across slots (`SMOVE`, `LMOVE`, `SUNIONSTORE`, `ZUNIONSTORE`, `BITOP`,
    /// `PFMERGE`, `MSETNX`, …), one way for all, so a new multi-key command needs no new code:
    ///
    /// 1. every key of it is copied (`DUMP`, expiry, `RESTORE`) into a temporary key, all of
    ///    them sharing one hash tag: the slot of the first key it writes;
    /// 2. the command runs there on the temporary names (the server does the work);
    /// 3. each key it writes gets the result (`RESTORE … REPLACE`, or `DEL` when the result is
    ///    no key), one transaction per slot with that slot's checkpoint, the slots of keys it
    ///    inserts into (`OW`, or `insert`) first, those it takes from last;
    /// 4. the temporary keys go.
    ///
    /// A replay after a crash skips the slots past the command and computes the others again
    /// from what the target holds: the keys taken from are unchanged until their own part
    /// commits, and the results of the keys inserted into do not depend on their own old
    /// value once their part is in (the part is skipped then).
    pub(super) async fn emulate_cross_slot(
        &mut self,
        args: Vec<Bytes>,
        keys: Vec<(usize, KeySpecFlags)>,
        db: u32,
        offset: u64,
    ) -> anyhow::Result<()> {
        let name = String::from_utf8_lossy(args.first().map_or(&b""[..], |a| a)).to_uppercase();
        self.flush_batch().await?;
        self.sink.flush().await.context("writing to the target")?;
        self.ledger.handle_written(offset, db, Instant::now());

        // The distinct keys, and which of them it writes, the receiving ones first.
        let mut names: Vec<Bytes> = Vec::new();
        let mut written: Vec<(Bytes, bool)> = Vec::new();
        for (index, flags) in &keys {
            let Some(key) = args.get(*index) else {
                continue;
            };
            if !names.contains(key) {
                names.push(key.clone());
            }
            if flags.intersects(WRITTEN) && !written.iter().any(|(k, _)| k == key) {
                let receives = flags.intersects(KeySpecFlags::OW.union(KeySpecFlags::INSERT));
                written.push((key.clone(), receives));
            }
        }
        written.sort_by_key(|(_, receives)| !receives); // stable: receiving keys first
        let Some((first, _)) = written.first() else {
            bail!(
                "{name} at source offset {offset} spans slots of the cluster target and writes \
                 no key the command table names: it cannot be applied there; use hash tags on \
                 the source or exclude its keys"
            );
        };
        // One part per slot, in that order.
        let mut parts: Vec<(u16, Vec<Bytes>)> = Vec::new();
        for (key, _) in &written {
            let slot = hash_slot(key);
            match parts.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, ks)) => ks.push(key.clone()),
                None => parts.push((slot, vec![key.clone()])),
            }
        }
        let tag = slot_tag(hash_slot(first));
        let temp = |i: usize| Bytes::from(format!("redis-sync:tmp:{{{tag}}}:{offset}:{i}"));
        let temps: Vec<Bytes> = (0..names.len()).map(temp).collect();
        let mut pending = Vec::new();
        for (slot, ks) in parts {
            if !(self.exactly_once && self.slot_holds(slot, offset).await?) {
                pending.push(ks);
            }
        }
        if !pending.is_empty() {
            // 1. The keys, copied next to each other.
            for (key, t) in names.iter().zip(&temps) {
                self.copy_key(key, t).await?;
            }
            // 2. The command, on the copies.
            let mut on_temps = args.clone();
            for (index, _) in &keys {
                if let Some(at) = args
                    .get(*index)
                    .and_then(|k| names.iter().position(|n| n == k))
                {
                    on_temps[*index] = temps[at].clone();
                }
            }
            if let Frame::Error(e) | Frame::BulkError(e) = self.sink.query(0, on_temps).await? {
                bail!(
                    "{name} at source offset {offset}, applied on copies of its keys because \
                     they span slots of the cluster target, failed there: {}: the target \
                     differs from the source for these keys (was it written to?); repair them \
                     (`redis-sync verify --repair`) and start the sync again",
                    String::from_utf8_lossy(&e)
                );
            }
            // 3. The results, slot by slot.
            for ks in pending {
                let mut part = Vec::new();
                for key in ks {
                    let at = names.iter().position(|n| *n == key).unwrap_or_default();
                    part.push(self.result_of(&temps[at], &key).await?);
                }
                self.apply_parts(part, db, offset).await?;
            }
        }
        // 4. No copy left behind (also after a replay that found every part in).
        let mut del = vec![Bytes::from_static(b"DEL")];
        del.extend(temps);
        self.sink
            .query(0, del)
            .await
            .context("writing to the target")?;
        self.stats.cross_slot_emulated += 1;
        Ok(())
    }

    /// `RESTORE to` with `from`'s value and expiry, or no `to` when there is no `from`.
    async fn copy_key(&mut self, from: &Bytes, to: &Bytes) -> anyhow::Result<()> {
        let args = match self.dump(from).await? {
            Some((payload, expiry)) => self.restore_args(to, expiry, payload),
            None => vec![Bytes::from_static(b"DEL"), to.clone()],
        };
        if let Frame::Error(e) = self.sink.query(0, args).await? {
            bail!(
                "copying {from:?} on the target: {}",
                String::from_utf8_lossy(&e)
            );
        }
        Ok(())
    }

    /// The command that gives `key` what `temp` holds.
    async fn result_of(&mut self, temp: &Bytes, key: &Bytes) -> anyhow::Result<Vec<Bytes>> {
        Ok(match self.dump(temp).await? {
            Some((payload, expiry)) => self.restore_args(key, expiry, payload),
            None => vec![Bytes::from_static(b"DEL"), key.clone()],
        })
    }

    /// `DUMP` and the expiry (absolute on 7.0+, else relative) of `key`; `None` when missing.
    async fn dump(&mut self, key: &Bytes) -> anyhow::Result<Option<(Bytes, i64)>> {
        let payload = match self
            .sink
            .query(0, vec![Bytes::from_static(b"DUMP"), key.clone()])
            .await?
        {
            Frame::BulkString(b) => b,
            Frame::Null | Frame::NullBulkString => return Ok(None),
            other => bail!("DUMP {key:?} on the target answered {other:?}"),
        };
        let ask: &'static [u8] = if self.absolute_expiry() {
            b"PEXPIRETIME"
        } else {
            b"PTTL"
        };
        match self
            .sink
            .query(0, vec![Bytes::from_static(ask), key.clone()])
            .await?
        {
            Frame::Integer(n) => Ok(Some((payload, n))),
            other => bail!("reading the expiry of {key:?} on the target answered {other:?}"),
        }
    }

    fn absolute_expiry(&self) -> bool {
        self.sink.target().version >= (7, 0, 0)
    }

    fn restore_args(&self, key: &Bytes, expiry: i64, payload: Bytes) -> Vec<Bytes> {
        let mut v = vec![
            Bytes::from_static(b"RESTORE"),
            key.clone(),
            Bytes::from(expiry.max(0).to_string()),
            payload,
            Bytes::from_static(b"REPLACE"),
        ];
        if self.absolute_expiry() {
            v.push(Bytes::from_static(b"ABSTTL"));
        }
        v
    }

    /// Several commands of one slot as one step (see [`apply_part`](Self::apply_part)).
    async fn apply_parts(
        &mut self,
        parts: Vec<Vec<Bytes>>,
        db: u32,
        offset: u64,
    ) -> anyhow::Result<()> {
        if self.exactly_once {
            self.commit_step(parts, 0, (offset, db)).await?;
        } else {
            for args in parts {
                self.sink
                    .write(args, Some(offset))
                    .await
                    .context("writing to the target")?;
            }
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
