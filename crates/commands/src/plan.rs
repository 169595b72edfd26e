//! Per-command plans: what [`Classifier::classify`](crate::Classifier::classify) needs of a
//! command that does not depend on its arguments, worked out once when the name index is
//! built.
//!
//! Classifying a command from a replication stream is then one look-up that lands on
//! everything at once: the arity, how to find the keys ([`KeyPlan`]), the route of a command
//! without keys, and the sync rule. Reading those from the table instead means following the
//! command's forms, key specs and tips, and interpreting the specs each time; the plans make
//! the classifier several times cheaper than the RESP decoding that precedes it.

use crate::classify::{Route, keyless_route};
use crate::keys::KeyPlan;
use crate::sync::SyncRule;
use crate::table::CommandDef;

/// The plan of one top-level command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) def: &'static CommandDef,
    /// The fewest and most arguments (the name included), from the arity: exactly `arity`,
    /// or at least `-arity` when it is negative. Two comparisons, no branch on the sign.
    pub(crate) min_args: u32,
    pub(crate) max_args: u32,
    pub(crate) keys: KeyPlan,
    /// The route when the arguments hold no key.
    pub(crate) keyless_route: Route,
    pub(crate) sync: SyncRule,
    /// A container (`FUNCTION`, `XGROUP`, …): the subcommand decides, so classify the slow way.
    pub(crate) container: bool,
}

impl Plan {
    pub(crate) fn of(def: &'static CommandDef) -> Plan {
        Plan {
            def,
            min_args: def.arity().unsigned_abs(),
            max_args: if def.arity() >= 0 {
                def.arity().unsigned_abs()
            } else {
                u32::MAX
            },
            keys: KeyPlan::of(def),
            keyless_route: keyless_route(def),
            sync: SyncRule::of(def),
            container: !def.subcommands.is_empty(),
        }
    }

    #[inline]
    pub(crate) fn arity_ok(&self, argc: usize) -> bool {
        (self.min_args as usize..=self.max_args as usize).contains(&argc)
    }
}
