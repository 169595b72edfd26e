//! Checkpointed transactions on a cluster: a cluster runs `MULTI … EXEC` only when every key
//! of it is in one slot, so a batch is committed as one transaction per slot, each with a
//! checkpoint hash of its own slot (`<key>:{<tag>}`, where `<tag>` hashes to that slot). A
//! slot's checkpoint lives on the node that serves the slot, moves with the slot in a
//! resharding and is on the replica that takes over in a failover, always with the data it
//! describes.
//!
//! Order: commands of different slots touch different keys, so grouping a batch by slot keeps
//! every key's order. A command without keys that goes to every master (`FLUSHALL`,
//! `FUNCTION LOAD`, …) affects every slot: the batch is cut there, so what came before it is
//! committed before it and what came after, after.

use std::sync::OnceLock;

use bytes::Bytes;
use redis_sync_commands::hash_slot;

use crate::TxCommand;
use crate::route::{self, Plan};

/// Slots of a Redis cluster.
pub(crate) const SLOTS: usize = 16384;

/// A short string whose hash slot is `slot`: the hash tag of that slot's checkpoint key.
pub(crate) fn tag(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); SLOTS];
        let mut left = SLOTS;
        // Every slot is reached after about 170,000 tries (coupon collector over 16384).
        for n in 0u32..10_000_000 {
            let t = n.to_string();
            let s = usize::from(hash_slot(t.as_bytes()));
            if tags[s].is_empty() {
                tags[s] = t;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        tags
    });
    tags.get(usize::from(slot)).map_or("", String::as_str)
}

/// The checkpoint key of `slot` for the checkpoint `base`.
pub(crate) fn key(base: &[u8], slot: u16) -> Bytes {
    let mut k = Vec::with_capacity(base.len() + 8);
    k.extend_from_slice(base);
    k.extend_from_slice(b":{");
    k.extend_from_slice(tag(slot).as_bytes());
    k.push(b'}');
    Bytes::from(k)
}

/// The commands of one slot in a batch, committed together with that slot's checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) slot: u16,
    /// `(db, args, end offset)`.
    pub(crate) commands: Vec<(u32, Vec<Bytes>, u64)>,
    /// The checkpoint's offset: the end of the part of the batch this group belongs to.
    pub(crate) end: u64,
    /// The source db at `end`.
    pub(crate) db: u32,
}

/// Splits a batch into per-slot groups, in the order they must be committed. Parts of
/// commands at or below their slot's `floors` entry are dropped (the target holds them: a
/// restart replays from the smallest slot position); `master_slots` gives, for a command for
/// every master, one slot per master to carry it. Returns the groups and how many command
/// parts were dropped.
pub(crate) fn group(
    commands: Vec<TxCommand>,
    floors: Option<&[u64]>,
    master_slots: impl Fn() -> Vec<u16>,
) -> (Vec<Group>, u64) {
    let held = |slot: u16, offset: u64| {
        floors
            .and_then(|f| f.get(usize::from(slot)))
            .is_some_and(|&f| offset <= f)
    };
    let mut out = Vec::new();
    let mut part: Vec<Group> = Vec::new();
    let mut dropped = 0;
    let close = |part: &mut Vec<Group>, out: &mut Vec<Group>, end: u64, db: u32| {
        for mut g in part.drain(..) {
            g.end = end;
            g.db = db;
            out.push(g);
        }
    };
    let mut last = (0, 0);
    for c in commands {
        last = (c.offset, c.db);
        let parts = match route::plan(&c.args) {
            Plan::Slot(s) => vec![(s.unwrap_or(0), c.args)],
            Plan::Split(parts) => parts,
            Plan::AllMasters => {
                close(&mut part, &mut out, c.offset, c.db);
                for s in master_slots() {
                    if held(s, c.offset) {
                        dropped += 1;
                        continue;
                    }
                    out.push(Group {
                        slot: s,
                        commands: vec![(c.db, c.args.clone(), c.offset)],
                        end: c.offset,
                        db: c.db,
                    });
                }
                continue;
            }
        };
        for (slot, args) in parts {
            if held(slot, c.offset) {
                dropped += 1;
                continue;
            }
            match part.iter_mut().find(|g| g.slot == slot) {
                Some(g) => g.commands.push((c.db, args, c.offset)),
                None => part.push(Group {
                    slot,
                    commands: vec![(c.db, args, c.offset)],
                    end: 0,
                    db: 0,
                }),
            }
        }
    }
    close(&mut part, &mut out, last.0, last.1);
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str], offset: u64) -> TxCommand {
        TxCommand {
            db: 0,
            args: args.iter().map(|a| Bytes::from(a.to_string())).collect(),
            offset,
        }
    }

    #[test]
    fn every_slot_has_a_tag_in_that_slot() {
        for s in (0..SLOTS as u16).step_by(7) {
            assert_eq!(hash_slot(tag(s).as_bytes()), s);
            assert_eq!(hash_slot(&key(b"redis-sync:checkpoint:x", s)), s);
        }
    }

    #[test]
    fn groups_by_slot_and_cuts_at_commands_for_every_master() {
        let a = hash_slot(b"a");
        let b = hash_slot(b"b");
        let batch = vec![
            cmd(&["SET", "a", "1"], 10),
            cmd(&["SET", "b", "1"], 20),
            cmd(&["INCR", "a"], 30),
            cmd(&["FLUSHALL"], 40),
            cmd(&["DEL", "a", "b"], 50),
        ];
        let (groups, dropped) = group(batch, None, || vec![0, 9000]);
        assert_eq!(dropped, 0);
        let shape: Vec<(u16, usize, u64)> = groups
            .iter()
            .map(|g| (g.slot, g.commands.len(), g.end))
            .collect();
        assert_eq!(
            shape,
            vec![
                (a, 2, 40),
                (b, 1, 40),
                (0, 1, 40),
                (9000, 1, 40),
                (a, 1, 50),
                (b, 1, 50)
            ]
        );
    }

    #[test]
    fn parts_the_target_holds_are_dropped() {
        let mut floors = vec![0u64; SLOTS];
        floors[usize::from(hash_slot(b"a"))] = 30;
        let batch = vec![
            cmd(&["SET", "a", "1"], 10),
            cmd(&["DEL", "a", "b"], 30),
            cmd(&["INCR", "a"], 40),
        ];
        let (groups, dropped) = group(batch, Some(&floors), Vec::new);
        assert_eq!(dropped, 2);
        let cmds: Vec<String> = groups
            .iter()
            .flat_map(|g| g.commands.iter())
            .map(|(_, a, o)| format!("{} {o}", String::from_utf8_lossy(&a[0])))
            .collect();
        assert_eq!(cmds, ["DEL 30", "INCR 40"]);
    }
}
