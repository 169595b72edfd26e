//! The command table: every command and subcommand of the servers it was generated from.
//!
//! The data lives in `generated.rs`, written by `redis-sync-commands-gen` from the `COMMAND`
//! and `COMMAND DOCS` replies of live servers (see the crate README). This module holds its
//! types and the name lookup.

mod bits;
mod generated;

use std::sync::OnceLock;

pub use bits::{AclCategories, Flags, KeySpecFlags};
#[allow(unused_imports)]
use bits::{acl, flags, ksf};

/// Redis or Valkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerFlavor {
    /// Redis.
    Redis,
    /// Valkey.
    Valkey,
}

/// One server the table was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Source {
    /// Install name, e.g. `redis-8.0.6`.
    pub name: &'static str,
    /// Redis or Valkey.
    pub flavor: ServerFlavor,
    /// `(major, minor, patch)`.
    pub version: (u32, u32, u32),
    /// A legacy source: only the commands that no newer source has (e.g. `STRALGO` of Redis
    /// 6.x) were taken from it, so every command an older server lists is known.
    pub legacy: bool,
}

/// The table's sources, in generation order (bit `i` of a [`ServerSet`] is `sources()[i]`).
pub fn sources() -> &'static [Source] {
    generated::SOURCES
}

/// A set of [`Source`]s: which of the servers the table was read from have a command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServerSet(pub(crate) u8);

impl ServerSet {
    /// True when source `index` (into [`sources`]) is in the set.
    pub fn contains_index(self, index: usize) -> bool {
        index < 8 && self.0 & (1 << index) != 0
    }
    /// True when the source called `name` (e.g. `redis-8.0.6`) is in the set.
    pub fn contains_name(self, name: &str) -> bool {
        sources()
            .iter()
            .position(|s| s.name == name)
            .is_some_and(|i| self.contains_index(i))
    }
    /// The sources in the set.
    pub fn iter(self) -> impl Iterator<Item = &'static Source> {
        sources()
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.contains_index(*i))
            .map(|(_, s)| s)
    }
}

impl std::fmt::Debug for ServerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|s| s.name)).finish()
    }
}

/// Where the search for a key spec's first key begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeginSearch {
    /// The first key is argument `index` (the command name is argument 0).
    Index(i32),
    /// After the first `keyword` found searching from `start_from` (negative: counted from the
    /// end, searching backwards).
    Keyword {
        /// The keyword, e.g. `STREAMS`.
        keyword: &'static str,
        /// Where to start searching.
        start_from: i32,
    },
    /// The server cannot say (the command has its own key procedure, e.g. `SORT … STORE`).
    Unknown,
}

/// How a key spec finds its keys once the search has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindKeys {
    /// Keys from the first up to `last_key` (relative to the first; negative: counted from the
    /// end; with `limit` > 0, only `1/limit` of the remaining arguments), every `step`.
    Range {
        /// Index of the last key relative to the first (negative: from the end).
        last_key: i32,
        /// Distance between keys (2 for `MSET`'s key/value pairs).
        step: i32,
        /// When `last_key` is -1: the remaining arguments divided by `limit` are keys.
        limit: i32,
    },
    /// A count of keys at `key_num_index` (relative to the first), keys from `first_key`.
    KeyNum {
        /// Index of the number of keys, relative to the begin-search position.
        key_num_index: i32,
        /// Index of the first key, relative to the begin-search position.
        first_key: i32,
        /// Distance between keys.
        step: i32,
    },
    /// The server cannot say.
    Unknown,
}

/// One key spec of a command (Redis 7+ `COMMAND INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySpec {
    /// How the keys are used.
    pub flags: KeySpecFlags,
    /// Where the search begins.
    pub begin: BeginSearch,
    /// How the keys are found.
    pub find: FindKeys,
}

/// One description of a command, as given by some of the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Form {
    /// The sources that describe the command this way.
    pub servers: ServerSet,
    /// Arity: exactly `arity` arguments (name included), or at least `-arity` when negative.
    pub arity: i32,
    /// Command flags.
    pub flags: Flags,
    /// ACL categories.
    pub acl: AclCategories,
    /// The legacy `(first key, last key, step)` triple.
    pub legacy_keys: (i32, i32, i32),
    /// Command tips, e.g. `request_policy:all_shards`, `nondeterministic_output`.
    pub tips: &'static [&'static str],
    /// The version that introduced the command (`since` in `COMMAND DOCS`; empty for some
    /// module commands).
    pub since: &'static str,
    /// Key specs, in the server's order.
    pub key_specs: &'static [KeySpec],
}

/// A command or subcommand.
///
/// A command may be described differently by different servers; [`forms`](Self::forms) has
/// each distinct description, the first from the newest Redis that has the command. The
/// accessors ([`arity`](Self::arity), [`flags`](Self::flags), …) read that first form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandDef {
    /// Lower-case name; a subcommand is `container|sub` (e.g. `function|load`).
    pub name: &'static str,
    /// The docs group (`string`, `generic`, `scripting`, `module`, …).
    pub group: &'static str,
    /// The sources that have this command.
    pub servers: ServerSet,
    /// Distinct descriptions (never empty).
    pub forms: &'static [Form],
    /// Subcommands (for containers such as `FUNCTION`, `CONFIG`, `XGROUP`), sorted by name.
    pub subcommands: &'static [CommandDef],
}

impl CommandDef {
    /// The primary description (from the newest Redis that has the command).
    pub fn form(&self) -> &'static Form {
        // Never empty by construction; the fallback only guards against a broken table.
        static EMPTY: Form = Form {
            servers: ServerSet(0),
            arity: -1,
            flags: Flags::EMPTY,
            acl: AclCategories::EMPTY,
            legacy_keys: (0, 0, 0),
            tips: &[],
            since: "",
            key_specs: &[],
        };
        self.forms.first().unwrap_or(&EMPTY)
    }
    /// Arity of the primary form.
    pub fn arity(&self) -> i32 {
        self.form().arity
    }
    /// Flags of the primary form.
    pub fn flags(&self) -> Flags {
        self.form().flags
    }
    /// ACL categories of the primary form.
    pub fn acl(&self) -> AclCategories {
        self.form().acl
    }
    /// Key specs of the primary form.
    pub fn key_specs(&self) -> &'static [KeySpec] {
        self.form().key_specs
    }
    /// `since` of the primary form.
    pub fn since(&self) -> &'static str {
        self.form().since
    }
    /// Command tips of the primary form.
    pub fn tips(&self) -> &'static [&'static str] {
        self.form().tips
    }
    /// True for a `write` command.
    pub fn is_write(&self) -> bool {
        self.flags().contains(Flags::WRITE)
    }
    /// The name as the user types it: `FUNCTION LOAD` for `function|load`, upper case.
    pub fn display_name(&self) -> String {
        self.name.replace('|', " ").to_ascii_uppercase()
    }
    /// The subcommand called `sub` (ASCII case-insensitive), if this is a container.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&'static CommandDef> {
        self.subcommands.iter().find(|s| {
            s.name
                .rsplit_once('|')
                .is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub))
        })
    }
    /// The form a given source uses, if that source has the command.
    pub fn form_for(&self, source_name: &str) -> Option<&'static Form> {
        self.forms
            .iter()
            .find(|f| f.servers.contains_name(source_name))
    }
    /// Checks the argument count against the arity (the name counts as an argument).
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity();
        if a >= 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }
}

/// Every top-level command, sorted by name.
pub fn commands() -> &'static [CommandDef] {
    generated::COMMANDS
}

const INDEX_SIZE: usize = 1024;
const EMPTY_SLOT: u16 = u16::MAX;

/// FNV-1a over the ASCII-lower-cased name.
fn name_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= u32::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn index() -> &'static [u16; INDEX_SIZE] {
    static INDEX: OnceLock<Box<[u16; INDEX_SIZE]>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut t = Box::new([EMPTY_SLOT; INDEX_SIZE]);
        for (i, c) in commands().iter().enumerate().take(INDEX_SIZE / 2) {
            let mut at = name_hash(c.name.as_bytes()) as usize % INDEX_SIZE;
            while t[at] != EMPTY_SLOT {
                at = (at + 1) % INDEX_SIZE;
            }
            t[at] = i as u16;
        }
        t
    })
}

/// The top-level command called `name` (ASCII case-insensitive), e.g. `b"set"` or `b"FUNCTION"`.
pub fn command(name: &[u8]) -> Option<&'static CommandDef> {
    if name.len() > 64 {
        return None;
    }
    let table = index();
    let cmds = commands();
    let mut at = name_hash(name) as usize % INDEX_SIZE;
    // At most half the slots are used, so an empty slot is always reached.
    for _ in 0..INDEX_SIZE {
        let i = table[at];
        if i == EMPTY_SLOT {
            return None;
        }
        let c = &cmds[i as usize];
        if c.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(c);
        }
        at = (at + 1) % INDEX_SIZE;
    }
    None
}

/// The command (or, for a container with a known subcommand, the subcommand) that `args` invoke.
///
/// `args[0]` is the command name. A container with a missing or unknown subcommand resolves
/// to the container itself.
pub fn lookup<A: AsRef<[u8]>>(args: &[A]) -> Option<&'static CommandDef> {
    let c = command(args.first()?.as_ref())?;
    if !c.subcommands.is_empty() {
        if let Some(sub) = args.get(1).and_then(|s| c.subcommand(s.as_ref())) {
            return Some(sub);
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_by_name() {
        assert!(commands().len() > 200, "only {} commands", commands().len());
        assert!(commands().len() < INDEX_SIZE / 2);
        for c in commands() {
            assert_eq!(command(c.name.as_bytes()).map(|d| d.name), Some(c.name));
            assert_eq!(
                command(c.name.to_ascii_uppercase().as_bytes()).map(|d| d.name),
                Some(c.name)
            );
            assert!(!c.forms.is_empty(), "{} has no form", c.name);
        }
        assert!(commands().windows(2).all(|w| w[0].name < w[1].name));
        assert!(command(b"nosuchcommand").is_none());
        assert!(command(b"").is_none());
        assert!(command(&[0xff; 100]).is_none());
    }

    #[test]
    fn subcommands_resolve() {
        let d = lookup(&["function", "LOAD", "#!lua name=x\n"]).expect("function load");
        assert_eq!(d.name, "function|load");
        assert_eq!(d.display_name(), "FUNCTION LOAD");
        assert_eq!(lookup(&["FUNCTION"]).map(|d| d.name), Some("function"));
        assert_eq!(
            lookup(&["function", "nope"]).map(|d| d.name),
            Some("function")
        );
        assert_eq!(lookup(&["get", "k"]).map(|d| d.name), Some("get"));
        assert!(lookup::<&str>(&[]).is_none());
    }

    #[test]
    fn facts_from_the_servers() {
        let set = command(b"set").expect("set");
        assert!(set.is_write());
        assert_eq!(set.arity(), -3);
        assert_eq!(set.since(), "1.0.0");
        assert!(
            set.acl()
                .contains(AclCategories::STRING | AclCategories::WRITE)
        );
        let get = command(b"get").expect("get");
        assert!(get.flags().contains(Flags::READONLY | Flags::FAST));
        assert_eq!(get.group, "string");
        assert!(
            command(b"flushall")
                .expect("flushall")
                .tips()
                .contains(&"request_policy:all_shards")
        );
        assert!(sources().len() >= 2);
    }
}
