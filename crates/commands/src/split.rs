//! Rewriting commands for a cluster target, where every command's keys must share a slot.
//!
//! A command whose keys span slots gets `-CROSSSLOT` from a cluster. Where the meaning
//! survives, it is split into one command per slot (order of first appearance kept):
//!
//! | command | split |
//! |---|---|
//! | `DEL`, `UNLINK`, `EXISTS`, `TOUCH` | one command per slot with that slot's keys (the replies would add up) |
//! | `MSET` | one `MSET` per slot with that slot's key/value pairs (last value of a repeated key wins in each) |
//! | `MULTI` … `EXEC` | [`split_transaction`]: one transaction per slot, with a warning |
//!
//! Everything else that spans slots is refused with [`Error::CrossSlot`], naming the command,
//! each key and its slot, and what to do: `MSETNX` (all-or-nothing over keys), `RENAME`,
//! `RENAMENX`, `COPY` (see [`cross_slot_move`] for the optional DUMP/RESTORE emulation),
//! `SMOVE`, `LMOVE`, `BLMOVE`, `RPOPLPUSH`, `BRPOPLPUSH`, the `*STORE` commands
//! (`SINTERSTORE`, `SUNIONSTORE`, `ZUNIONSTORE`, …), `PFMERGE`, `BITOP`, and multi-key
//! `EVAL`/`EVALSHA`/`FCALL`.

use bytes::Bytes;

use crate::classify::source_names;
use crate::classify::{Route, route_of};
use crate::error::{Error, KeySlot, show};
use crate::keys::{KeyPos, key_positions};
use crate::slot::hash_slot;
use crate::table::{CommandDef, lookup};

/// One command bound to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotCommand<A> {
    /// The slot all its keys hash to.
    pub slot: u16,
    /// The command's arguments (name first).
    pub args: Vec<A>,
}

/// How to send one command to a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterPlan<A> {
    /// Send it unchanged to this route ([`Route::Slot`], [`Route::Any`] or [`Route::AllMasters`]).
    Single(Route),
    /// Send these instead, each to its slot's master; together they mean the same.
    Split(Vec<SlotCommand<A>>),
}

fn resolve<A: AsRef<[u8]>>(args: &[A]) -> Result<&'static CommandDef, Error> {
    let Some(name) = args.first() else {
        return Err(Error::Empty);
    };
    lookup(args).ok_or_else(|| Error::UnknownCommand {
        name: show(name.as_ref()),
        sources: source_names(),
    })
}

/// The keys (with slots) of a command, for messages.
fn key_slots<A: AsRef<[u8]>>(args: &[A], keys: &[KeyPos]) -> Vec<KeySlot> {
    keys.iter()
        .map(|k| {
            let key = args[k.index].as_ref();
            KeySlot {
                key: show(key),
                slot: hash_slot(key),
            }
        })
        .collect()
}

fn hint(name: &str) -> &'static str {
    match name {
        "msetnx" => {
            "MSETNX sets all keys or none, which a cluster cannot do across slots: put the keys \
             in one slot with a hash tag ({tag}) on the source, or exclude them with a key filter."
        }
        "rename" | "renamenx" | "copy" => {
            "Enable the cross-slot RENAME/COPY emulation (DUMP on the source \
             key's node, RESTORE on the destination's, then DEL; not atomic), use hash tags, or exclude the keys."
        }
        "smove" | "lmove" | "blmove" | "rpoplpush" | "brpoplpush" => {
            "it moves an element between keys \
             atomically: put both keys in one slot with a hash tag ({tag}), or exclude them with a key filter."
        }
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            "a script's keys must share \
             a slot on a cluster: use hash tags ({tag}) in the keys the script is given, or exclude them."
        }
        _ => {
            "the command reads and writes its keys together: put them in one slot with a hash tag ({tag}) \
             on the source, or exclude them with a key filter."
        }
    }
}

/// Splits `args` into per-slot commands where that keeps its meaning; see the module docs.
///
/// ```
/// use redis_sync_commands::{ClusterPlan, hash_slot, split_for_cluster};
///
/// let plan = split_for_cluster(&["MSET", "a", "1", "b", "2", "{a}x", "3"]).expect("MSET splits");
/// let ClusterPlan::Split(parts) = plan else { panic!("a and b are in different slots") };
/// assert_eq!(parts[0].slot, hash_slot(b"a"));
/// assert_eq!(parts[0].args, ["MSET", "a", "1", "{a}x", "3"]);
/// assert_eq!(parts[1].args, ["MSET", "b", "2"]);
///
/// let err = split_for_cluster(&["RENAME", "a", "b"]).unwrap_err();
/// assert!(err.to_string().contains("'a' (slot 15495), 'b' (slot 3300)"));
/// ```
pub fn split_for_cluster<A: AsRef<[u8]> + Clone>(args: &[A]) -> Result<ClusterPlan<A>, Error> {
    let def = resolve(args)?;
    let mut keys = Vec::new();
    key_positions(def, args, &mut keys)?;
    split_with_keys(def, args, &keys)
}

/// [`split_for_cluster`] for a command already classified (its definition and key positions).
pub fn split_with_keys<A: AsRef<[u8]> + Clone>(
    def: &CommandDef,
    args: &[A],
    keys: &[KeyPos],
) -> Result<ClusterPlan<A>, Error> {
    let route = route_of(def, args, keys);
    if route != Route::CrossSlot {
        return Ok(ClusterPlan::Single(route));
    }
    let per_key = match def.name {
        "del" | "unlink" | "exists" | "touch" => 1,
        "mset" => 2,
        _ => {
            return Err(Error::CrossSlot {
                command: def.display_name(),
                keys: key_slots(args, keys),
                hint: hint(def.name),
            });
        }
    };
    // A key without its value (`MSET a 1 b`): the server answers "wrong number of
    // arguments"; splitting it would turn that into a valid `MSET a 1` and a broken `MSET b`.
    if !(args.len() - 1).is_multiple_of(per_key) {
        return Err(Error::Arity {
            command: def.display_name(),
            got: args.len(),
            expected: "the name and whole key/value pairs".to_string(),
        });
    }
    Ok(ClusterPlan::Split(group_by_slot(args, keys, per_key)))
}

/// Groups `keys` (each followed by `per_key - 1` value arguments) by slot, in order of first
/// appearance, each group a command named `args[0]`.
pub(crate) fn group_by_slot<A: AsRef<[u8]> + Clone>(
    args: &[A],
    keys: &[KeyPos],
    per_key: usize,
) -> Vec<SlotCommand<A>> {
    let mut parts: Vec<SlotCommand<A>> = Vec::new();
    for k in keys {
        let slot = hash_slot(args[k.index].as_ref());
        let at = match parts.iter().position(|p| p.slot == slot) {
            Some(at) => at,
            None => {
                parts.push(SlotCommand {
                    slot,
                    args: vec![args[0].clone()],
                });
                parts.len() - 1
            }
        };
        let end = (k.index + per_key).min(args.len());
        parts[at].args.extend_from_slice(&args[k.index..end]);
    }
    parts
}

/// Which command a [`MovePlan`] emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MoveKind {
    /// `RENAME src dst`: overwrite `dst`, delete `src`.
    Rename,
    /// `RENAMENX src dst`: only when `dst` does not exist; delete `src`.
    RenameNx,
    /// `COPY src dst [REPLACE]`: keep `src`.
    Copy {
        /// `REPLACE` was given: overwrite `dst`.
        replace: bool,
    },
}

/// What a sink needs to emulate a cross-slot `RENAME`/`RENAMENX`/`COPY` on a cluster target.
///
/// Not atomic; do it only when the user asks. Steps, on the target cluster:
/// 1. on the master of `source_slot`: [`dump_args`](Self::dump_args) (`DUMP src`) and
///    [`pttl_args`](Self::pttl_args) (`PTTL src`), or on 7.0+ targets
///    [`pexpiretime_args`](Self::pexpiretime_args) for an exact expiry; a nil DUMP means
///    there is nothing to move (the master's command failed or the key is gone): stop;
/// 2. if [`only_if_absent`](Self::only_if_absent): on the master of `destination_slot`,
///    `EXISTS dst`; when 1, stop (RENAMENX / COPY without REPLACE do nothing then);
/// 3. on the master of `destination_slot`: [`restore_args`](Self::restore_args)
///    (`RESTORE dst ttl payload REPLACE`, ttl 0 when PTTL was -1) or
///    [`restore_abs_args`](Self::restore_abs_args) (`… ABSTTL`);
/// 4. if [`deletes_source`](Self::deletes_source): [`del_args`](Self::del_args) (`DEL src`)
///    on the master of `source_slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MovePlan {
    /// Which command.
    pub kind: MoveKind,
    /// The source key.
    pub source: Bytes,
    /// The destination key.
    pub destination: Bytes,
    /// Slot of the source key.
    pub source_slot: u16,
    /// Slot of the destination key.
    pub destination_slot: u16,
}

impl MovePlan {
    /// `DUMP source`.
    pub fn dump_args(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"DUMP"), self.source.clone()]
    }
    /// `PTTL source`.
    pub fn pttl_args(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"PTTL"), self.source.clone()]
    }
    /// True when the destination must not exist (RENAMENX, COPY without REPLACE).
    pub fn only_if_absent(&self) -> bool {
        matches!(
            self.kind,
            MoveKind::RenameNx | MoveKind::Copy { replace: false }
        )
    }
    /// `RESTORE destination ttl payload REPLACE` (`pttl_ms` as `PTTL` returned it; -1 or any
    /// negative value means no expiry).
    pub fn restore_args(&self, pttl_ms: i64, payload: Bytes) -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"RESTORE"),
            self.destination.clone(),
            Bytes::from(pttl_ms.max(0).to_string()),
            payload,
            Bytes::from_static(b"REPLACE"),
        ]
    }
    /// `PEXPIRETIME source` (Redis 7.0+): the absolute expiry for
    /// [`restore_abs_args`](Self::restore_abs_args), exact to the millisecond.
    pub fn pexpiretime_args(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"PEXPIRETIME"), self.source.clone()]
    }
    /// `RESTORE destination at payload REPLACE ABSTTL` with `expire_at_ms` as `PEXPIRETIME`
    /// returned it (negative: no expiry, sent as 0, which means no expiry with `ABSTTL` too).
    pub fn restore_abs_args(&self, expire_at_ms: i64, payload: Bytes) -> Vec<Bytes> {
        let mut v = self.restore_args(expire_at_ms, payload);
        v.push(Bytes::from_static(b"ABSTTL"));
        v
    }
    /// True for RENAME / RENAMENX: the source is deleted afterwards.
    pub fn deletes_source(&self) -> bool {
        matches!(self.kind, MoveKind::Rename | MoveKind::RenameNx)
    }
    /// `DEL source`.
    pub fn del_args(&self) -> Vec<Bytes> {
        vec![Bytes::from_static(b"DEL"), self.source.clone()]
    }
}

/// The emulation plan for a `RENAME`, `RENAMENX` or `COPY` (without `DB`) whose two keys are in
/// different slots; `None` for any other command, for same-slot keys, and for `COPY … DB n`.
pub fn cross_slot_move<A: AsRef<[u8]>>(args: &[A]) -> Option<MovePlan> {
    let name = args.first()?.as_ref();
    let kind = if name.eq_ignore_ascii_case(b"rename") && args.len() == 3 {
        MoveKind::Rename
    } else if name.eq_ignore_ascii_case(b"renamenx") && args.len() == 3 {
        MoveKind::RenameNx
    } else if name.eq_ignore_ascii_case(b"copy") && args.len() >= 3 {
        let mut replace = false;
        let mut i = 3;
        while i < args.len() {
            let a = args[i].as_ref();
            if a.eq_ignore_ascii_case(b"replace") {
                replace = true;
            } else {
                // `DB n` (another database) or an unknown option: not emulated.
                return None;
            }
            i += 1;
        }
        MoveKind::Copy { replace }
    } else {
        return None;
    };
    let (src, dst) = (args[1].as_ref(), args[2].as_ref());
    let (source_slot, destination_slot) = (hash_slot(src), hash_slot(dst));
    (source_slot != destination_slot).then(|| MovePlan {
        kind,
        source: Bytes::copy_from_slice(src),
        destination: Bytes::copy_from_slice(dst),
        source_slot,
        destination_slot,
    })
}

/// One transaction of a split `MULTI`/`EXEC` block: the sink wraps `commands` in
/// `MULTI` … `EXEC` and sends them to `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPart<A> {
    /// [`Route::Slot`], [`Route::AllMasters`] (a keyless command such as `FLUSHALL` or
    /// `FUNCTION LOAD`), or [`Route::Any`] (keyless commands only).
    pub route: Route,
    /// The commands, in their original order.
    pub commands: Vec<Vec<A>>,
}

/// A `MULTI`/`EXEC` block rewritten for a cluster target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransactionPlan<A> {
    /// The transactions to run, in order.
    pub parts: Vec<TxPart<A>>,
    /// Set when the block was split: cross-slot atomicity is lost (log it).
    pub warning: Option<String>,
}

/// Splits the commands of one `MULTI` … `EXEC` block (without `MULTI` and `EXEC`) into one
/// transaction per slot, each kept atomic.
///
/// Commands whose keys span slots are split first by [`split_for_cluster`] (so a `DEL a b`
/// goes half to each slot's transaction); one that cannot be split fails the whole block with
/// [`Error::InTransaction`]. Keyless commands with [`Route::Any`] join the first transaction
/// of their segment. A command routed to every master (`FLUSHALL`, `FUNCTION LOAD`, …) ends
/// the current segment and becomes a transaction of its own, so it keeps its place in the
/// order relative to the others.
pub fn split_transaction<A: AsRef<[u8]> + Clone>(
    commands: &[Vec<A>],
) -> Result<TransactionPlan<A>, Error> {
    let mut parts: Vec<TxPart<A>> = Vec::new();
    let mut segment_start = 0;
    let mut keys = Vec::new();
    for (index, cmd) in commands.iter().enumerate() {
        let wrap = |e: Error| Error::InTransaction {
            index,
            command: cmd.first().map(|n| show(n.as_ref())).unwrap_or_default(),
            source: Box::new(e),
        };
        let def = resolve(cmd).map_err(wrap)?;
        key_positions(def, cmd, &mut keys).map_err(wrap)?;
        let pieces: Vec<(Route, Vec<A>)> = match split_with_keys(def, cmd, &keys).map_err(wrap)? {
            ClusterPlan::Single(route) => vec![(route, cmd.clone())],
            ClusterPlan::Split(ps) => ps
                .into_iter()
                .map(|p| (Route::Slot(p.slot), p.args))
                .collect(),
        };
        for (route, args) in pieces {
            match route {
                Route::AllMasters => {
                    parts.push(TxPart {
                        route,
                        commands: vec![args],
                    });
                    segment_start = parts.len();
                }
                Route::Any => {
                    if parts.len() == segment_start {
                        parts.push(TxPart {
                            route: Route::Any,
                            commands: Vec::new(),
                        });
                    }
                    parts[segment_start].commands.push(args);
                }
                _ => {
                    let seg = &mut parts[segment_start..];
                    if let Some(p) = seg.iter_mut().find(|p| p.route == route) {
                        p.commands.push(args);
                    } else if let Some(p) = seg.iter_mut().find(|p| p.route == Route::Any) {
                        // A transaction holding only keyless commands so far takes this slot.
                        p.route = route;
                        p.commands.push(args);
                    } else {
                        parts.push(TxPart {
                            route,
                            commands: vec![args],
                        });
                    }
                }
            }
        }
    }
    let warning = (parts.len() > 1).then(|| {
        let routes: Vec<String> = parts
            .iter()
            .map(|p| match p.route {
                Route::Slot(s) => format!("slot {s}"),
                Route::AllMasters => "all masters".to_string(),
                _ => "any node".to_string(),
            })
            .collect();
        format!(
            "a MULTI/EXEC block of {} commands spans {} on the cluster target; it is applied as {} \
             transactions (one per slot), so atomicity across slots is lost",
            commands.len(),
            routes.join(", "),
            parts.len()
        )
    });
    Ok(TransactionPlan { parts, warning })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(args: &[&'static str]) -> Vec<&'static str> {
        args.to_vec()
    }

    /// Found by the `classify` fuzz target: a key without its value is refused, not split
    /// into a valid `MSET` and a broken one.
    #[test]
    fn incomplete_pairs_are_refused() {
        let e = split_for_cluster(&["MSET", "a", "1", "b"]).unwrap_err();
        assert!(
            matches!(&e, Error::Arity { got: 4, .. }) && e.to_string().contains("key/value pairs"),
            "{e}"
        );
    }

    #[test]
    fn same_slot_is_not_split() {
        assert_eq!(
            split_for_cluster(&["DEL", "{x}a", "{x}b"]).unwrap(),
            ClusterPlan::Single(Route::Slot(hash_slot(b"x")))
        );
        assert_eq!(
            split_for_cluster(&["FLUSHALL"]).unwrap(),
            ClusterPlan::Single(Route::AllMasters)
        );
        assert_eq!(
            split_for_cluster(&["MULTI"]).unwrap(),
            ClusterPlan::Single(Route::Any)
        );
    }

    #[test]
    fn splits_keep_order_and_values() {
        let ClusterPlan::Split(p) = split_for_cluster(&["DEL", "a", "b", "{a}c", "{b}d"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].slot, p[0].args.clone()),
            (hash_slot(b"a"), v(&["DEL", "a", "{a}c"]))
        );
        assert_eq!(
            (p[1].slot, p[1].args.clone()),
            (hash_slot(b"b"), v(&["DEL", "b", "{b}d"]))
        );
        let ClusterPlan::Split(p) = split_for_cluster(&["UNLINK", "a", "b"]).unwrap() else {
            panic!()
        };
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn refusals_name_command_keys_and_slots() {
        for args in [
            &["MSETNX", "a", "1", "b", "2"][..],
            &["RENAME", "a", "b"],
            &["RENAMENX", "a", "b"],
            &["SMOVE", "a", "b", "m"],
            &["LMOVE", "a", "b", "LEFT", "RIGHT"],
            &["RPOPLPUSH", "a", "b"],
            &["BLMOVE", "a", "b", "LEFT", "LEFT", "0"],
            &["COPY", "a", "b"],
            &["SINTERSTORE", "a", "b"],
            &["SUNIONSTORE", "a", "b"],
            &["ZUNIONSTORE", "a", "1", "b"],
            &["EVAL", "return 1", "2", "a", "b"],
            &["FCALL", "f", "2", "a", "b"],
        ] {
            let e = split_for_cluster(args).unwrap_err();
            let Error::CrossSlot { command, keys, .. } = &e else {
                panic!("{args:?}: {e}")
            };
            assert_eq!(command, &args[0].to_string());
            assert!(
                keys.iter()
                    .any(|k| k.key == "a" && k.slot == hash_slot(b"a")),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(args[0]) && msg.contains("'b' (slot 3300)"),
                "{msg}"
            );
        }
    }

    #[test]
    fn move_plans() {
        let p = cross_slot_move(&["RENAME", "a", "b"]).unwrap();
        assert_eq!(
            (p.kind, p.source_slot, p.destination_slot),
            (MoveKind::Rename, 15495, 3300)
        );
        assert!(p.deletes_source() && !p.only_if_absent());
        assert_eq!(p.restore_args(-1, Bytes::from_static(b"P"))[2], "0");
        assert!(
            cross_slot_move(&["RENAMENX", "a", "b"])
                .unwrap()
                .only_if_absent()
        );
        let c = cross_slot_move(&["copy", "a", "b", "REPLACE"]).unwrap();
        assert_eq!(c.kind, MoveKind::Copy { replace: true });
        assert!(!c.deletes_source() && !c.only_if_absent());
        assert!(cross_slot_move(&["COPY", "a", "b", "DB", "1"]).is_none());
        assert!(cross_slot_move(&["RENAME", "{a}1", "{a}2"]).is_none());
        assert!(cross_slot_move(&["SET", "a", "b"]).is_none());
    }

    #[test]
    fn transactions() {
        let block = vec![
            v(&["SET", "a", "1"]),
            v(&["SET", "b", "1"]),
            v(&["INCR", "{a}n"]),
            v(&["DEL", "a", "b"]),
        ];
        let plan = split_transaction(&block).unwrap();
        assert_eq!(plan.parts.len(), 2);
        assert_eq!(plan.parts[0].route, Route::Slot(hash_slot(b"a")));
        assert_eq!(
            plan.parts[0].commands,
            [
                v(&["SET", "a", "1"]),
                v(&["INCR", "{a}n"]),
                v(&["DEL", "a"])
            ]
        );
        assert_eq!(
            plan.parts[1].commands,
            [v(&["SET", "b", "1"]), v(&["DEL", "b"])]
        );
        assert!(
            plan.warning
                .as_deref()
                .unwrap()
                .contains("atomicity across slots is lost")
        );

        let one = split_transaction(&[
            v(&["SELECT", "0"]),
            v(&["SET", "a", "1"]),
            v(&["INCR", "{a}x"]),
        ])
        .unwrap();
        assert_eq!(one.parts.len(), 1);
        assert_eq!(one.parts[0].route, Route::Slot(hash_slot(b"a")));
        assert!(one.warning.is_none());

        let flush = split_transaction(&[
            v(&["SET", "a", "1"]),
            v(&["FLUSHALL"]),
            v(&["SET", "a", "2"]),
        ])
        .unwrap();
        let routes: Vec<Route> = flush.parts.iter().map(|p| p.route).collect();
        assert_eq!(
            routes,
            [Route::Slot(15495), Route::AllMasters, Route::Slot(15495)]
        );

        let e = split_transaction(&[v(&["SET", "a", "1"]), v(&["RENAME", "a", "b"])]).unwrap_err();
        assert!(matches!(e, Error::InTransaction { index: 1, .. }));
        assert!(e.to_string().contains("command 1 (RENAME)"), "{e}");
    }
}
