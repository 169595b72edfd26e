//! What a replica does with each command the master sends it.
//!
//! A master's replication stream holds the writes it executed (as effects: 7.0+ rewrite
//! relative expiries to absolute ones, scripts to their effects wrapped in `MULTI`/`EXEC`),
//! plus `SELECT` before commands of another database, `PING` keep-alives, `REPLCONF GETACK`,
//! and `PUBLISH`/`SPUBLISH` (Pub/Sub messages are propagated to replicas). The rules:
//!
//! | commands | action |
//! |---|---|
//! | every `write` command (flag from `COMMAND INFO`), module writes included | [`SyncAction::Apply`] |
//! | every module command learned from the source ([`crate::learn_commands`]), whatever its flags | apply |
//! | `SELECT`, `MULTI`, `EXEC`, `DISCARD`, `SWAPDB`, `FLUSHDB`, `FLUSHALL` | apply |
//! | `FUNCTION LOAD/DELETE/FLUSH/RESTORE`, `SCRIPT LOAD/FLUSH`, `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`, `FCALL`, `FCALL_RO` | apply (older masters and `lua-replicate-commands no` send scripts verbatim) |
//! | `PFCOUNT` (it may rewrite the HLL's cached cardinality, and is then propagated) | apply |
//! | `PING` | skip: keep-alive ([`SkipReason::KeepAlive`]) |
//! | `REPLCONF` (`GETACK`) | skip: the replica protocol answers it ([`SkipReason::ReplicationProtocol`]) |
//! | `PUBLISH`, `SPUBLISH` | skip unless [`SyncOptions::forward_pubsub`] ([`SkipReason::PubSub`]) |
//! | anything else (reads, admin, connection commands) | [`SyncAction::Refuse`] with a message |
//!
//! `may_replicate`, the server's own flag for "not a write but propagated", is hidden from
//! `COMMAND INFO`, so those commands are named here rather than read from the table.

use crate::table::{CommandDef, Flags};

/// Why a command is skipped by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// `PING` sent by the master as a keep-alive (`repl-ping-replica-period`).
    KeepAlive,
    /// `REPLCONF GETACK` and friends: answered by the replica protocol, not applied.
    ReplicationProtocol,
    /// A Pub/Sub message (`PUBLISH`, `SPUBLISH`); forwarded only when asked.
    PubSub,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::KeepAlive => "a keep-alive PING from the master",
            SkipReason::ReplicationProtocol => {
                "part of the replication protocol (answered by the replica)"
            }
            SkipReason::PubSub => {
                "a Pub/Sub message (enable Pub/Sub forwarding to send it to the target)"
            }
        })
    }
}

/// What to do with a command received from the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncAction {
    /// Apply it to the target.
    Apply,
    /// Do not apply it; it is expected in a replication stream.
    Skip(SkipReason),
    /// A master never sends this; the reason's text says why and what to do.
    Refuse(RefuseReason),
}

/// Why a command is refused (its `Display` is the message for the user). A small enum rather
/// than the text itself, so a [`SyncAction`] is two bytes and a classification stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefuseReason {
    /// A read, admin or connection command: not part of any replication stream.
    NotReplicated,
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefuseReason::NotReplicated => REFUSE,
        })
    }
}

/// Options of the sync-support rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncOptions {
    /// Apply `PUBLISH` / `SPUBLISH` to the target instead of skipping them.
    pub forward_pubsub: bool,
}

impl SyncOptions {
    /// Options with Pub/Sub forwarding on or off.
    pub fn forward_pubsub(mut self, on: bool) -> Self {
        self.forward_pubsub = on;
        self
    }
}

/// Non-write commands that a master propagates and a replica applies.
const APPLY: &[&str] = &[
    "select",
    "multi",
    "exec",
    "discard",
    "swapdb",
    "flushdb",
    "flushall",
    "function|load",
    "function|delete",
    "function|flush",
    "function|restore",
    "script|load",
    "script|flush",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "pfcount",
];

const REFUSE: &str = "not a replicated command: a master does not send it to its replicas \
     (a read, admin or connection command); the stream is corrupt or not a replication stream";

/// The sync action for a command `def`.
#[inline]
pub fn sync_action(def: &CommandDef, options: SyncOptions) -> SyncAction {
    SyncRule::of(def).action(options)
}

/// The part of a command's sync action that does not depend on [`SyncOptions`]: worked out
/// once per command for the classifier's plans, and the one place the rules are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncRule {
    Apply,
    KeepAlive,
    Protocol,
    PubSub,
    Refuse,
}

impl SyncRule {
    pub(crate) fn of(def: &CommandDef) -> SyncRule {
        // The common case first: a replicated write. A learned (module) command is applied
        // whatever its flags: a master sends one only because the module replicated it.
        if def.flags().contains(Flags::WRITE) || def.is_learned() {
            return SyncRule::Apply;
        }
        match def.name {
            "ping" => SyncRule::KeepAlive,
            "replconf" => SyncRule::Protocol,
            "publish" | "spublish" => SyncRule::PubSub,
            n if APPLY.contains(&n) => SyncRule::Apply,
            _ => SyncRule::Refuse,
        }
    }

    #[inline]
    pub(crate) fn action(self, options: SyncOptions) -> SyncAction {
        match self {
            SyncRule::Apply => SyncAction::Apply,
            SyncRule::KeepAlive => SyncAction::Skip(SkipReason::KeepAlive),
            SyncRule::Protocol => SyncAction::Skip(SkipReason::ReplicationProtocol),
            SyncRule::PubSub if options.forward_pubsub => SyncAction::Apply,
            SyncRule::PubSub => SyncAction::Skip(SkipReason::PubSub),
            SyncRule::Refuse => SyncAction::Refuse(RefuseReason::NotReplicated),
        }
    }
}

/// The whole sync-support table: every command and subcommand with its action, in table
/// order (for documentation, `redis-sync check`, and reviewing the rules after a regeneration).
pub fn sync_table(options: SyncOptions) -> Vec<(&'static CommandDef, SyncAction)> {
    crate::table::commands()
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        .map(|c| (c, sync_action(c, options)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::lookup;

    fn action(args: &[&str]) -> SyncAction {
        sync_action(lookup(args).unwrap(), SyncOptions::default())
    }

    #[test]
    fn table_driven() {
        use SyncAction::*;
        let cases: &[(&[&str], SyncAction)] = &[
            (&["SET", "k", "v"], Apply),
            (&["HSET", "h", "f", "v"], Apply),
            (&["DEL", "a"], Apply),
            (&["PEXPIREAT", "k", "1"], Apply),
            (&["XADD", "s", "*", "f", "v"], Apply),
            (&["SELECT", "1"], Apply),
            (&["MULTI"], Apply),
            (&["EXEC"], Apply),
            (&["SWAPDB", "0", "1"], Apply),
            (&["FLUSHALL"], Apply),
            (&["FLUSHDB", "ASYNC"], Apply),
            (&["FUNCTION", "LOAD", "x"], Apply),
            (&["FUNCTION", "DELETE", "x"], Apply),
            (&["FUNCTION", "FLUSH"], Apply),
            (&["FUNCTION", "RESTORE", "x"], Apply),
            (&["SCRIPT", "LOAD", "x"], Apply),
            (&["EVAL", "x", "0"], Apply),
            (&["EVALSHA", "x", "0"], Apply),
            (&["FCALL", "f", "0"], Apply),
            (&["PFCOUNT", "h"], Apply),
            (&["PING"], Skip(SkipReason::KeepAlive)),
            (
                &["REPLCONF", "GETACK", "*"],
                Skip(SkipReason::ReplicationProtocol),
            ),
            (&["PUBLISH", "c", "m"], Skip(SkipReason::PubSub)),
            (&["SPUBLISH", "c", "m"], Skip(SkipReason::PubSub)),
        ];
        for (args, want) in cases {
            assert_eq!(action(args), *want, "{args:?}");
        }
        for refused in [
            &["GET", "k"][..],
            &["CONFIG", "SET", "a", "b"],
            &["DEBUG", "SLEEP", "0"],
            &["KEYS", "*"],
        ] {
            assert!(matches!(action(refused), Refuse(_)), "{refused:?}");
        }
        // Every name in the apply list exists in the table (a typo would silently refuse).
        for name in APPLY {
            let (top, sub) = name
                .split_once('|')
                .map_or((*name, None), |(t, s)| (t, Some(s)));
            let c = crate::table::command(top.as_bytes()).unwrap();
            assert!(
                sub.is_none_or(|s| c.subcommand(s.as_bytes()).is_some()),
                "{name}"
            );
        }
        let table = sync_table(SyncOptions::default());
        let applied = table.iter().filter(|(_, a)| *a == Apply).count();
        assert!(
            applied > 120 && applied < table.len() / 2,
            "{applied} of {}",
            table.len()
        );
        let fwd = SyncOptions::default().forward_pubsub(true);
        assert_eq!(sync_action(lookup(&["PUBLISH"]).unwrap(), fwd), Apply);
    }
}
