//! Classifying one command: what it is, its keys, its slot and what a replica does with it.

use crate::error::{Error, show};
use crate::keys::{KeyPlan, KeyPos, key_positions};
use crate::slot::hash_slot;
use crate::sync::{SyncAction, SyncOptions, sync_action};
use crate::table::{self, CommandDef, KeySpecFlags, sources};

/// Where a command must run on a cluster target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// No keys: any node will do (e.g. `MULTI`, `SELECT 0`, `PING`).
    Any,
    /// Every master (the server's `request_policy:all_shards` / `all_nodes` tip, e.g.
    /// `FLUSHALL`, `FUNCTION LOAD`, `SCRIPT LOAD`).
    AllMasters,
    /// The master owning this slot (keys and `not_key` names such as `SPUBLISH`'s channel).
    Slot(u16),
    /// Keys in different slots: see [`crate::split_for_cluster`].
    CrossSlot,
}

/// A classified command; `keys` borrows from the [`Classifier`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Classified<'c> {
    /// The command (the subcommand for containers such as `FUNCTION LOAD`).
    pub command: &'static CommandDef,
    /// Key arguments, in key-spec order (may include `not_key` names; see [`KeyPos::is_key`]).
    pub keys: &'c [KeyPos],
    /// Where it runs on a cluster.
    pub route: Route,
    /// What a replica does with it.
    pub sync: SyncAction,
}

/// Classifies commands, reusing one key buffer (no allocation per command once warm).
///
/// ```
/// use redis_sync_commands::{Classifier, Route, SyncAction, SyncOptions, hash_slot};
///
/// let mut c = Classifier::new(SyncOptions::default());
/// let got = c.classify(&["SET", "user:{42}:name", "ada"]).expect("a known command");
/// assert_eq!(got.command.name, "set");
/// assert_eq!(got.keys[0].index, 1);
/// assert_eq!(got.route, Route::Slot(hash_slot(b"42")));
/// assert_eq!(got.sync, SyncAction::Apply);
/// ```
#[derive(Debug, Clone)]
pub struct Classifier {
    options: SyncOptions,
    keys: Vec<KeyPos>,
    /// The key of a one-key command (most writes): kept here rather than in `keys`, so the
    /// common case does not touch the vector at all.
    one: KeyPos,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(SyncOptions::default())
    }
}

impl Classifier {
    /// A classifier with these sync options.
    pub fn new(options: SyncOptions) -> Self {
        Classifier {
            options,
            keys: Vec::with_capacity(16),
            one: KeyPos {
                index: 0,
                flags: KeySpecFlags::EMPTY,
            },
        }
    }

    /// The sync options in use.
    pub fn options(&self) -> SyncOptions {
        self.options
    }

    /// Classifies `args` (`args[0]` is the command name).
    ///
    /// Errors: [`Error::Empty`], [`Error::UnknownCommand`], [`Error::Arity`],
    /// [`Error::BadKeyCount`].
    pub fn classify<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Classified<'_>, Error> {
        let Some(name) = args.first() else {
            return Err(Error::Empty);
        };
        let Some(plan) = table::plan(name.as_ref()) else {
            return Err(unknown_error(name.as_ref()));
        };
        if plan.container {
            return self.classify_subcommand(plan.def, args);
        }
        if !plan.arity_ok(args.len()) {
            return Err(arity_error(plan.def, args.len()));
        }
        let sync = plan.sync.action(self.options);
        if let KeyPlan::One { index, flags } = plan.keys {
            let index = index as usize;
            let Some(key) = args.get(index) else {
                return Ok(Classified {
                    command: plan.def,
                    keys: &[],
                    route: plan.keyless_route,
                    sync,
                });
            };
            self.one = KeyPos { index, flags };
            return Ok(Classified {
                command: plan.def,
                keys: std::slice::from_ref(&self.one),
                route: Route::Slot(hash_slot(key.as_ref())),
                sync,
            });
        }
        plan.keys.run(plan.def, args, &mut self.keys)?;
        // No key and one key (a `DEL k`) without the slot comparison loop: measured faster.
        let route = match self.keys.as_slice() {
            [] => plan.keyless_route,
            [k] => match args.get(k.index) {
                Some(key) => Route::Slot(hash_slot(key.as_ref())),
                None => plan.keyless_route,
            },
            keys => keys_route(args, keys).unwrap_or(plan.keyless_route),
        };
        Ok(Classified {
            command: plan.def,
            keys: &self.keys,
            route,
            sync,
        })
    }

    /// [`classify`](Self::classify) for a container (`FUNCTION LOAD`, `XGROUP CREATE`, …),
    /// from the subcommand's table entry: rare in a stream, so kept out of line.
    #[inline(never)]
    fn classify_subcommand<A: AsRef<[u8]>>(
        &mut self,
        container: &'static CommandDef,
        args: &[A],
    ) -> Result<Classified<'_>, Error> {
        let def = args
            .get(1)
            .and_then(|s| container.subcommand(s.as_ref()))
            .unwrap_or(container);
        if !def.arity_ok(args.len()) {
            return Err(arity_error(def, args.len()));
        }
        key_positions(def, args, &mut self.keys)?;
        let route = route_of(def, args, &self.keys);
        Ok(Classified {
            command: def,
            keys: &self.keys,
            route,
            sync: sync_action(def, self.options),
        })
    }
}

#[cold]
#[inline(never)]
fn unknown_error(name: &[u8]) -> Error {
    Error::UnknownCommand {
        name: show(name),
        sources: source_names(),
    }
}

#[cold]
#[inline(never)]
fn arity_error(def: &CommandDef, got: usize) -> Error {
    let a = def.arity();
    let expected = if a >= 0 {
        format!("exactly {a}")
    } else {
        format!("at least {}", a.unsigned_abs())
    };
    Error::Arity {
        command: def.display_name(),
        got,
        expected,
    }
}

/// An owned [`Classified`], from [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Classification {
    /// The command (the subcommand for containers).
    pub command: &'static CommandDef,
    /// Key arguments, in key-spec order.
    pub keys: Vec<KeyPos>,
    /// Where it runs on a cluster.
    pub route: Route,
    /// What a replica does with it (default [`SyncOptions`]).
    pub sync: SyncAction,
}

/// Classifies one command with default [`SyncOptions`], allocating its key list; use a
/// [`Classifier`] in a hot loop.
pub fn classify<A: AsRef<[u8]>>(args: &[A]) -> Result<Classification, Error> {
    let mut c = Classifier::new(SyncOptions::default());
    let got = c.classify(args)?;
    Ok(Classification {
        command: got.command,
        // Not the classifier's vector: a one-key command's key is kept beside it.
        keys: got.keys.to_vec(),
        route: got.route,
        sync: got.sync,
    })
}

pub(crate) fn source_names() -> String {
    sources()
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn route_of<A: AsRef<[u8]>>(def: &CommandDef, args: &[A], keys: &[KeyPos]) -> Route {
    keys_route(args, keys).unwrap_or_else(|| keyless_route(def))
}

/// The route of `keys` (positions into `args`): `None` when there are none.
#[inline]
fn keys_route<A: AsRef<[u8]>>(args: &[A], keys: &[KeyPos]) -> Option<Route> {
    let mut slot = None;
    for k in keys {
        let Some(key) = args.get(k.index) else {
            continue;
        };
        let s = hash_slot(key.as_ref());
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Some(Route::CrossSlot),
            Some(_) => {}
        }
    }
    slot.map(Route::Slot)
}

/// The route of a command whose arguments hold no key: every master for the server's
/// `request_policy:all_shards` / `all_nodes` tip, else any node.
pub(crate) fn keyless_route(def: &CommandDef) -> Route {
    if def
        .tips()
        .iter()
        .any(|t| *t == "request_policy:all_shards" || *t == "request_policy:all_nodes")
    {
        Route::AllMasters
    } else {
        Route::Any
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes() {
        let mut c = Classifier::default();
        assert_eq!(
            c.classify(&["MSET", "{a}1", "x", "{a}2", "y"])
                .unwrap()
                .route,
            Route::Slot(hash_slot(b"a"))
        );
        assert_eq!(
            c.classify(&["MSET", "a", "x", "b", "y"]).unwrap().route,
            Route::CrossSlot
        );
        assert_eq!(c.classify(&["FLUSHALL"]).unwrap().route, Route::AllMasters);
        assert_eq!(
            c.classify(&["FUNCTION", "LOAD", "x"]).unwrap().route,
            Route::AllMasters
        );
        assert_eq!(
            c.classify(&["SCRIPT", "LOAD", "x"]).unwrap().route,
            Route::AllMasters
        );
        assert_eq!(c.classify(&["MULTI"]).unwrap().route, Route::Any);
        assert_eq!(
            c.classify(&["SPUBLISH", "ch", "m"]).unwrap().route,
            Route::Slot(hash_slot(b"ch"))
        );
    }

    /// The planned fast path of `Classifier::classify` gives what the table-reading pieces give
    /// one by one (look-up, arity, `key_positions`, `route_of`, `sync_action`), errors
    /// included, for every command and subcommand and argument lists mixing keys with and
    /// without tags, counts, keywords and junk.
    #[test]
    fn plans_agree_with_the_table() {
        use crate::table::{commands, lookup};
        let tokens = [
            "k", "{t}a", "{t}b", "2", "0", "1", "x{", "STORE", "STREAMS", "",
        ];
        let mut c = Classifier::default();
        let mut keys = Vec::new();
        let mut checked = 0;
        for def in commands()
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        {
            let name: Vec<&str> = def.name.split('|').collect();
            for extra in 0..7usize {
                for seed in 0..tokens.len() {
                    let mut args = name.clone();
                    args.extend((0..extra).map(|i| tokens[(seed + i * 3) % tokens.len()]));
                    let got = c
                        .classify(&args)
                        .map(|g| (g.command.name, g.keys.to_vec(), g.route, g.sync));
                    let want = (|| {
                        let d = lookup(&args).ok_or(Error::Empty)?;
                        if !d.arity_ok(args.len()) {
                            return Err(arity_error(d, args.len()));
                        }
                        key_positions(d, &args, &mut keys)?;
                        let route = route_of(d, &args, &keys);
                        Ok((
                            d.name,
                            keys.clone(),
                            route,
                            sync_action(d, SyncOptions::default()),
                        ))
                    })();
                    assert_eq!(got, want, "{args:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20_000, "{checked}");
    }

    #[test]
    fn errors_say_what() {
        let mut c = Classifier::default();
        let e = c.classify(&["NOPE", "x"]).unwrap_err().to_string();
        assert!(e.contains("\"NOPE\"") && e.contains("module"), "{e}");
        let e = c.classify(&["GET"]).unwrap_err().to_string();
        assert!(
            e.contains("GET") && e.contains("got 1") && e.contains("exactly 2"),
            "{e}"
        );
        let e = c.classify(&["SET", "k"]).unwrap_err().to_string();
        assert!(e.contains("at least 3"), "{e}");
        assert_eq!(c.classify::<&[u8]>(&[]).unwrap_err(), Error::Empty);
        let got = classify(&[&b"del"[..], b"a", b"b"]).unwrap();
        assert_eq!(got.command.name, "del");
        assert_eq!(got.keys.len(), 2);
        // The one-key plan (the key is not in the classifier's vector) as well.
        let got = classify(&["RPUSH", "s", "x"]).unwrap();
        assert_eq!(got.keys.iter().map(|k| k.index).collect::<Vec<_>>(), [1]);
    }
}
