//! The command table: every command and subcommand of the servers it was generated from.
//!
//! The data lives in `generated.rs`, written by `redis-sync-commands-gen` from the `COMMAND`
//! and `COMMAND DOCS` replies of live servers (see the crate README). This module holds its
//! types and the name lookup.

mod bits;
mod generated;

use std::sync::OnceLock;

use crate::plan::Plan;

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
    #[inline]
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
    #[inline]
    pub fn arity(&self) -> i32 {
        self.form().arity
    }
    /// Flags of the primary form.
    #[inline]
    pub fn flags(&self) -> Flags {
        self.form().flags
    }
    /// ACL categories of the primary form.
    #[inline]
    pub fn acl(&self) -> AclCategories {
        self.form().acl
    }
    /// Key specs of the primary form.
    #[inline]
    pub fn key_specs(&self) -> &'static [KeySpec] {
        self.form().key_specs
    }
    /// `since` of the primary form.
    pub fn since(&self) -> &'static str {
        self.form().since
    }
    /// Command tips of the primary form.
    #[inline]
    pub fn tips(&self) -> &'static [&'static str] {
        self.form().tips
    }
    /// True for a command learned at run time from a server's `COMMAND` reply
    /// ([`crate::learn_commands`], a module's command) rather than read from the generated
    /// table: no table source has it.
    #[inline]
    pub fn is_learned(&self) -> bool {
        self.servers.0 == 0
    }
    /// True for a `write` command.
    #[inline]
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
    #[inline]
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
#[inline]
pub fn commands() -> &'static [CommandDef] {
    generated::COMMANDS
}

/// Slots of the name index: a power of two, at least twice the number of commands.
const INDEX_SIZE: usize = 1024;

#[inline(always)]
fn le_word(data: &[u8], at: usize) -> [u8; 8] {
    let c = &data[at..at + 8];
    [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]
}

/// Up to eight bytes as a little-endian word, zero-padded, in at most three loads.
#[inline(always)]
fn load_le(chunk: &[u8]) -> u64 {
    let n = chunk.len();
    if n >= 8 {
        u64::from_le_bytes(le_word(chunk, 0))
    } else if n >= 4 {
        // Two overlapping 4-byte loads; the overlap holds the same bytes, so OR is exact.
        let lo = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let hi = u32::from_le_bytes([chunk[n - 4], chunk[n - 3], chunk[n - 2], chunk[n - 1]]);
        u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
    } else if n > 0 {
        // Bytes 0, n/2 and n-1 cover every byte of a 1..=3 byte chunk (overlaps are equal).
        let m = n / 2;
        u64::from(chunk[0])
            | (u64::from(chunk[m]) << (8 * m))
            | (u64::from(chunk[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

/// Up to eight bytes as a little-endian word (zero-padded), ASCII upper case lowered: a SWAR
/// `to_ascii_lowercase` that leaves every other byte (non-letters, bytes >= 0x80) alone.
#[inline]
fn lower_word(chunk: &[u8]) -> u64 {
    lower(load_le(chunk))
}

/// [`lower_word`] of a loaded word.
#[inline]
fn lower(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low7 = w & (ONES * 0x7f);
    // High bit of each byte: set when the byte's low 7 bits are >= 'A', resp. > 'Z'.
    let ge_a = low7.wrapping_add(ONES * (0x80 - u64::from(b'A')));
    let gt_z = low7.wrapping_add(ONES * (0x7f - u64::from(b'Z')));
    let upper = ge_a & !gt_z & !w & (ONES * 0x80);
    w | (upper >> 2)
}

/// The slot a name starts its search at, from its first word and length. Case-insensitive
/// without lowering: bit 0x20 of every byte is set first (one OR, where lowering takes eight
/// operations), so the slot load can start while the exact lower-cased word is still being
/// computed for the comparison. Names that differ only in that bit of a non-letter share a
/// slot and are told apart by the comparison.
#[inline]
fn name_hash(word: u64, len: usize) -> usize {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let h = ((word | CASE) ^ (len as u64).rotate_left(59)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top bits of the product are the best mixed; exactly enough of them for an index.
    (h >> (64 - INDEX_SIZE.trailing_zeros())) as usize
}

/// Open-addressing index of `commands()`: each slot holds a command's lower-cased first word,
/// its name length and its [`Plan`] (so a look-up touches one slot and nothing else when the
/// name is at most eight bytes long, as almost every write's is).
struct Index {
    /// Inline, not boxed: the static's address is known, so a look-up loads no pointer first.
    slots: [Slot; INDEX_SIZE],
}

#[derive(Clone, Copy)]
struct Slot {
    word: u64,
    len: usize,
    plan: Option<Plan>,
}

#[inline]
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let empty = Slot {
            word: 0,
            len: 0,
            plan: None,
        };
        let mut slots = [empty; INDEX_SIZE];
        for c in commands().iter().take(INDEX_SIZE / 2) {
            let (word, len) = (lower_word(c.name.as_bytes()), c.name.len());
            let mut at = name_hash(load_le(c.name.as_bytes()), len);
            while slots[at].plan.is_some() {
                at = (at + 1) % INDEX_SIZE;
            }
            slots[at] = Slot {
                word,
                len,
                plan: Some(Plan::of(c)),
            };
        }
        Index { slots }
    })
}

/// True when `name` lower-cased equals `lower` beyond the first eight bytes (already equal).
/// Out of line: only names longer than eight bytes get here, and inlining it would make the
/// whole look-up save and restore registers.
#[inline(never)]
fn rest_equal(lower: &[u8], name: &[u8]) -> bool {
    let n = name.len();
    if lower.len() != n || n < 8 {
        return lower.eq_ignore_ascii_case(name);
    }
    // Eight bytes at a time from byte 8; the last block is the (overlapping) final 8 bytes.
    let mut at = 8;
    while at < n {
        let end = (at + 8).min(n);
        let (x, y) = (&lower[end - 8..end], &name[end - 8..end]);
        if lower_word(x) != lower_word(y) {
            return false;
        }
        at += 8;
    }
    true
}

/// The top-level command called `name` (ASCII case-insensitive), e.g. `b"set"` or `b"FUNCTION"`;
/// commands learned at run time ([`crate::learn_commands`]) included.
#[inline]
pub fn command(name: &[u8]) -> Option<&'static CommandDef> {
    plan(name).map(|p| p.def)
}

/// The [`Plan`] of the top-level command called `name` (ASCII case-insensitive): from the
/// generated table, else from the commands learned at run time ([`crate::learn_commands`]).
#[inline]
pub(crate) fn plan(name: &[u8]) -> Option<&'static Plan> {
    match static_plan(name) {
        Some(p) => Some(p),
        None => crate::learn::plan(name),
    }
}

/// The [`Plan`] of the generated table's top-level command called `name` (ASCII
/// case-insensitive).
#[inline]
pub(crate) fn static_plan(name: &[u8]) -> Option<&'static Plan> {
    // An empty name has word 0 and length 0, which no slot holds: it is not found.
    let slots = &index().slots;
    let raw = load_le(name);
    let mut at = name_hash(raw, name.len());
    let w = lower(raw);
    // At most half the slots are used, so an empty slot is always reached.
    for _ in 0..INDEX_SIZE {
        let slot = &slots[at];
        let p = slot.plan.as_ref()?;
        // Table names are lower case; the first word matched exactly.
        if slot.word == w
            && slot.len == name.len()
            && (name.len() <= 8 || rest_equal(p.def.name.as_bytes(), name))
        {
            return Some(p);
        }
        at = (at + 1) & (INDEX_SIZE - 1);
    }
    None
}

/// The command (or, for a container with a known subcommand, the subcommand) that `args` invoke.
///
/// `args[0]` is the command name. A container with a missing or unknown subcommand resolves
/// to the container itself.
#[inline]
pub fn lookup<A: AsRef<[u8]>>(args: &[A]) -> Option<&'static CommandDef> {
    let c = command(args.first()?.as_ref())?;
    if c.subcommands.is_empty() {
        return Some(c);
    }
    Some(container_lookup(c, args))
}

/// The subcommand of container `c` that `args` name, else `c` (out of line: rare).
#[inline(never)]
fn container_lookup<A: AsRef<[u8]>>(c: &'static CommandDef, args: &[A]) -> &'static CommandDef {
    args.get(1)
        .and_then(|s| c.subcommand(s.as_ref()))
        .unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_word_lowers_only_letters() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(8) {
            let want: Vec<u8> = chunk.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(lower_word(chunk), lower_word_ref(&want), "{chunk:?}");
        }
        assert_eq!(lower_word(b"SET"), u64::from_le_bytes(*b"set\0\0\0\0\0"));
    }

    fn lower_word_ref(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    }

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
            assert!(!c.is_learned(), "{} has no table source", c.name);
        }
        assert!(commands().windows(2).all(|w| w[0].name < w[1].name));
        assert!(command(b"nosuchcommand").is_none());
        assert!(command(b"").is_none());
        assert!(command(&[0xff; 100]).is_none());
        // Bytes that differ from a name only in bit 0x20 but are not letters do not match.
        assert!(command(b"restore\x0dasking").is_none());
        assert!(command(b"RESTORE-ASKING").is_some());
        assert!(command(b"s\xc5t").is_none());
        assert!(command(b"SeT").is_some());
        assert!(command(b"georadius_r\x0f").is_none());
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
