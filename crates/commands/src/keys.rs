//! Which arguments of a command are keys, read from the command's key specs.
//!
//! This follows Redis's `getKeysUsingKeySpecs` (db.c): for each key spec, find where the keys
//! begin (a fixed index, or after a keyword such as `STREAMS` searched forwards or backwards),
//! then which arguments are keys (a range, possibly a fraction of the remaining arguments as
//! for `XREAD`, or a count argument as for `EVAL`, `ZUNIONSTORE`, `LMPOP`, `SINTERCARD`).
//!
//! Two commands have key specs that the server itself marks as unable to find every key, and
//! for which Redis runs a key procedure instead; the same procedures are here:
//! - `SORT … STORE dst` (the STORE spec is `unknown`: the keyword may appear anywhere, and
//!   `BY`/`GET`/`LIMIT` take arguments that must be skipped): `sortGetKeys`;
//! - `MIGRATE … KEYS k1 k2` (the KEYS spec is `incomplete`: a key could be called `KEYS`, and
//!   the key argument is then empty): `migrateGetKeys`.
//!
//! The `BY`/`GET` patterns of `SORT` are not keys of the command (their spec is `unknown`
//! too) and are not returned. A unit test fails if the table ever gains another command
//! with an `unknown` or `incomplete` spec, so a new quirk cannot slip in unnoticed.

use crate::error::{Error, show};
use crate::table::{BeginSearch, CommandDef, FindKeys, Flags, KeySpec, KeySpecFlags};

/// One key argument of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPos {
    /// Index into the arguments (the name is 0).
    pub index: usize,
    /// The flags of the key spec that found it (`RW`, `OW`, `not_key`, …).
    pub flags: KeySpecFlags,
}

impl KeyPos {
    /// False for a `not_key` argument: a name that only decides the slot (e.g. the shard
    /// channel of `SPUBLISH`), not a key of the keyspace.
    pub fn is_key(&self) -> bool {
        !self.flags.contains(KeySpecFlags::NOT_KEY)
    }
}

/// A non-negative decimal count of at most 9 digits (the server's own limit is an `int`).
fn parse_count(arg: &[u8]) -> Option<usize> {
    if arg.is_empty() || arg.len() > 9 {
        return None;
    }
    arg.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
    })
}

/// Appends the key positions of `args` (a command `def` resolves to, `args[0]` its name) to
/// `out`, in key-spec order. `out` is cleared first.
///
/// Never panics, whatever `args` hold. Malformed key counts are errors; a spec whose keyword is
/// absent or whose keys lie beyond the arguments yields no keys (as on the server).
#[inline]
pub fn key_positions<A: AsRef<[u8]>>(
    def: &CommandDef,
    args: &[A],
    out: &mut Vec<KeyPos>,
) -> Result<(), Error> {
    KeyPlan::of(def).run(def, args, out)
}

/// How to find a command's keys, worked out once from its key specs: the shapes almost every
/// replicated write has get a few integers each, so finding their keys is a comparison or a
/// short loop instead of an interpretation of the specs. Everything else is `General`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyPlan {
    /// No key specs (`MULTI`, `PING`, `FUNCTION LOAD`, …).
    None,
    /// One key at a fixed index (`GET`, `SET`, `HSET`, `LPUSH`, `XADD`, `INCR`, …).
    One { index: u32, flags: KeySpecFlags },
    /// Keys from `first` to `argc + last_key` (negative), every `step` (`DEL`, `MSET`, …).
    Tail {
        first: u32,
        last_key: i32,
        step: u32,
        flags: KeySpecFlags,
    },
    /// A key count at `count_at`, keys from `count_at + first_key` every `step` (`EVAL`,
    /// `EVALSHA`, `FCALL`, …). A bad or zero count takes the general path, which reports it.
    Counted {
        count_at: u32,
        first_key: u32,
        step: u32,
        flags: KeySpecFlags,
    },
    /// Anything else: keyword searches, several specs, key procedures.
    General,
}

impl KeyPlan {
    /// The plan for `def`'s primary key specs.
    pub(crate) fn of(def: &CommandDef) -> KeyPlan {
        let specs = def.key_specs();
        let movable = def.flags().contains(Flags::MOVABLEKEYS);
        let [spec] = specs else {
            return if specs.is_empty() && !movable {
                KeyPlan::None
            } else {
                KeyPlan::General
            };
        };
        let BeginSearch::Index(i) = spec.begin else {
            return KeyPlan::General;
        };
        let Ok(first @ 1..) = u32::try_from(i) else {
            return KeyPlan::General;
        };
        let flags = spec.flags;
        match spec.find {
            FindKeys::Range { last_key: 0, .. } if !movable => KeyPlan::One {
                index: first,
                flags,
            },
            FindKeys::Range {
                last_key,
                step,
                limit,
            } if last_key < 0 && limit <= 0 && !movable => KeyPlan::Tail {
                first,
                last_key,
                step: step.max(1).unsigned_abs(),
                flags,
            },
            FindKeys::KeyNum {
                key_num_index,
                first_key,
                step,
            } if def.name != "migrate" && def.name != "sort" => {
                match (
                    u32::try_from(i64::from(i) + i64::from(key_num_index)),
                    u32::try_from(i64::from(i) + i64::from(first_key)),
                ) {
                    (Ok(count_at), Ok(first_key)) if first_key >= 1 => KeyPlan::Counted {
                        count_at,
                        first_key,
                        step: step.max(1).unsigned_abs(),
                        flags,
                    },
                    _ => KeyPlan::General,
                }
            }
            _ => KeyPlan::General,
        }
    }

    /// Appends the key positions of `args` to `out` (cleared first), as [`key_positions`].
    /// Always inlined: in the classifier the call and its register saves cost more than the
    /// work of the common plans; the rare ones are out of line.
    #[inline(always)]
    pub(crate) fn run<A: AsRef<[u8]>>(
        self,
        def: &CommandDef,
        args: &[A],
        out: &mut Vec<KeyPos>,
    ) -> Result<(), Error> {
        out.clear();
        let argc = args.len();
        match self {
            KeyPlan::None => Ok(()),
            KeyPlan::One { index, flags } => {
                let index = index as usize;
                if index < argc {
                    out.push(KeyPos { index, flags });
                }
                Ok(())
            }
            KeyPlan::Tail {
                first,
                last_key,
                step,
                flags,
            } => {
                let first = first as usize;
                // `last_key` is negative: the last key is `argc + last_key`.
                if let Some(last) = argc.checked_sub(last_key.unsigned_abs() as usize)
                    && first <= last
                {
                    let step = step as usize;
                    let mut index = first;
                    while index <= last {
                        out.push(KeyPos { index, flags });
                        index += step;
                    }
                }
                Ok(())
            }
            KeyPlan::Counted {
                count_at,
                first_key,
                step,
                flags,
            } => {
                if let Some(n) = args
                    .get(count_at as usize)
                    .and_then(|a| parse_count(a.as_ref()))
                    && n > 0
                {
                    let (first, step) = (first_key as usize, step as usize);
                    if let Some(last) = (n - 1).checked_mul(step).and_then(|d| d.checked_add(first))
                        && last < argc
                    {
                        let mut index = first;
                        while index <= last {
                            out.push(KeyPos { index, flags });
                            index += step;
                        }
                        return Ok(());
                    }
                }
                general(def, args, out)
            }
            KeyPlan::General => general(def, args, out),
        }
    }
}

/// [`key_positions`] for every plan but the common ones, and for their error cases.
#[inline(never)]
fn general<A: AsRef<[u8]>>(
    def: &CommandDef,
    args: &[A],
    out: &mut Vec<KeyPos>,
) -> Result<(), Error> {
    out.clear();
    key_positions_slow(def, def.key_specs(), args, out)
}

/// The general interpreter of key specs (`out` already cleared).
fn key_positions_slow<A: AsRef<[u8]>>(
    def: &CommandDef,
    specs: &[KeySpec],
    args: &[A],
    out: &mut Vec<KeyPos>,
) -> Result<(), Error> {
    // Only commands with movable keys can need a key procedure (checked first: it is cheap).
    if def.flags().contains(Flags::MOVABLEKEYS) {
        match def.name {
            "migrate" => {
                migrate_keys(args, out);
                return Ok(());
            }
            "sort" => {
                sort_keys(args, out);
                return Ok(());
            }
            _ => {}
        }
    }
    let argc = args.len() as i64;
    for spec in specs {
        let first: i64 = match spec.begin {
            BeginSearch::Index(i) => i64::from(i),
            BeginSearch::Keyword {
                keyword,
                start_from,
            } => match find_keyword(args, keyword, i64::from(start_from)) {
                Some(i) => i + 1,
                None => continue,
            },
            BeginSearch::Unknown => continue,
        };
        if first < 1 {
            continue;
        }
        let (first, last, step) = match spec.find {
            FindKeys::Range {
                last_key,
                step,
                limit,
            } => {
                let (last_key, limit) = (i64::from(last_key), i64::from(limit));
                let last = if last_key >= 0 {
                    first + last_key
                } else if limit <= 0 {
                    argc + last_key
                } else {
                    first + ((argc - first).max(0) / limit + last_key)
                };
                (first, last, i64::from(step))
            }
            FindKeys::KeyNum {
                key_num_index,
                first_key,
                step,
            } => {
                let at = first + i64::from(key_num_index);
                let bad = || Error::BadKeyCount {
                    command: def.display_name(),
                    index: at.max(0) as usize,
                    value: args
                        .get(at.max(0) as usize)
                        .map(|a| show(a.as_ref()))
                        .unwrap_or_default(),
                    argc: args.len(),
                };
                let Some(arg) = usize::try_from(at).ok().and_then(|i| args.get(i)) else {
                    return Err(bad());
                };
                let n = parse_count(arg.as_ref()).ok_or_else(bad)? as i64;
                let step = i64::from(step).max(1);
                let first = first + i64::from(first_key);
                let last = first + (n - 1) * step;
                if n > 0 && last >= argc {
                    return Err(bad());
                }
                (first, last, step)
            }
            FindKeys::Unknown => continue,
        };
        // `first < 1`: a key-count spec's negative `firstkey` (no server table has one, but a
        // learned module spec could) would name the command itself.
        if first < 1 || last < first || first >= argc || last >= argc {
            continue;
        }
        let step = step.max(1) as usize;
        for i in (first as usize..=last as usize).step_by(step) {
            out.push(KeyPos {
                index: i,
                flags: spec.flags,
            });
        }
    }
    Ok(())
}

/// The index of `keyword` searched as Redis does: from `start_from` forwards up to the
/// argument before the last, or (negative) from `argc + start_from` backwards down to 1.
fn find_keyword<A: AsRef<[u8]>>(args: &[A], keyword: &str, start_from: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let hit = |i: i64| {
        args[i as usize]
            .as_ref()
            .eq_ignore_ascii_case(keyword.as_bytes())
    };
    if start_from > 0 {
        (start_from..argc - 1).find(|&i| hit(i))
    } else {
        let start = (argc + start_from).min(argc - 1);
        (1..=start).rev().find(|&i| hit(i))
    }
}

/// `sortGetKeys`: the key, then the destination of the last `STORE`, skipping the arguments
/// of `LIMIT` (2), `GET` (1) and `BY` (1).
fn sort_keys<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<KeyPos>) {
    if args.len() < 2 {
        return;
    }
    out.push(KeyPos {
        index: 1,
        flags: KeySpecFlags::RO | KeySpecFlags::ACCESS,
    });
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = args[i].as_ref();
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(index) = store {
        out.push(KeyPos {
            index,
            flags: KeySpecFlags::OW | KeySpecFlags::UPDATE,
        });
    }
}

/// `migrateGetKeys`: argument 3, or with `KEYS` (searched from argument 6, skipping the
/// arguments of `AUTH` (1) and `AUTH2` (2)) every argument after it.
fn migrate_keys<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<KeyPos>) {
    let flags = KeySpecFlags::RW | KeySpecFlags::ACCESS | KeySpecFlags::DELETE;
    let mut i = 6;
    while i < args.len() {
        let a = args[i].as_ref();
        if a.eq_ignore_ascii_case(b"keys") {
            out.extend((i + 1..args.len()).map(|index| KeyPos { index, flags }));
            return;
        } else if a.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    if args.len() > 3 {
        out.push(KeyPos { index: 3, flags });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::table::{commands, lookup};

    /// The key plans (`KeyPlan::run`, which `key_positions` uses) give exactly what the
    /// general interpreter (`key_positions_slow`) gives, errors included, for every command and
    /// subcommand and argument lists of 1..=9 arguments mixing names, counts, zero, negatives
    /// and junk.
    #[test]
    fn fast_paths_match_the_general_path() {
        let tokens = ["k", "2", "0", "1", "-1", "x9", "3", "STORE", "KEYS"];
        let mut defs = Vec::new();
        for c in commands() {
            defs.push(c);
            defs.extend(c.subcommands.iter());
        }
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let mut checked = 0;
        for def in defs {
            for argc in 1..=9usize {
                for seed in 0..tokens.len() {
                    let args: Vec<&str> = (0..argc)
                        .map(|i| {
                            if i == 0 {
                                def.name
                            } else {
                                tokens[(seed + i * i) % tokens.len()]
                            }
                        })
                        .collect();
                    let a = key_positions(def, &args, &mut fast);
                    slow.clear();
                    let b = key_positions_slow(def, def.key_specs(), &args, &mut slow);
                    assert_eq!(a, b, "{} {args:?}", def.name);
                    if a.is_ok() {
                        assert_eq!(fast, slow, "{} {args:?}", def.name);
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// The common writes get a plan that is not `General`, so a regeneration of the table that
    /// changes their key specs cannot quietly send them down the slow path.
    #[test]
    fn common_writes_have_fast_plans() {
        let plan = |name: &str| KeyPlan::of(lookup(&[name]).unwrap());
        for name in [
            "set",
            "get",
            "hset",
            "lpush",
            "xadd",
            "incr",
            "zadd",
            "pexpireat",
            "sadd",
        ] {
            assert!(
                matches!(plan(name), KeyPlan::One { index: 1, .. }),
                "{name}"
            );
        }
        for name in ["del", "unlink", "exists", "touch", "mget"] {
            assert!(
                matches!(
                    plan(name),
                    KeyPlan::Tail {
                        first: 1,
                        step: 1,
                        ..
                    }
                ),
                "{name}"
            );
        }
        assert!(matches!(
            plan("mset"),
            KeyPlan::Tail {
                first: 1,
                step: 2,
                ..
            }
        ));
        for name in ["eval", "evalsha", "fcall"] {
            assert!(
                matches!(
                    plan(name),
                    KeyPlan::Counted {
                        count_at: 2,
                        first_key: 3,
                        ..
                    }
                ),
                "{name}"
            );
        }
        for name in ["multi", "exec", "select", "ping", "swapdb", "flushall"] {
            assert_eq!(plan(name), KeyPlan::None, "{name}");
        }
        for name in ["xread", "sort", "migrate", "georadius"] {
            assert_eq!(plan(name), KeyPlan::General, "{name}");
        }
    }

    fn keys(args: &[&str]) -> Vec<String> {
        let def = lookup(args).unwrap();
        let mut out = Vec::new();
        key_positions(def, args, &mut out).unwrap();
        out.iter().map(|k| args[k.index].to_string()).collect()
    }

    fn err(args: &[&str]) -> Error {
        let mut out = Vec::new();
        key_positions(lookup(args).unwrap(), args, &mut out).unwrap_err()
    }

    #[test]
    fn quirks_are_exactly_the_known_ones() {
        let mut odd = Vec::new();
        let mut visit = |c: &CommandDef| {
            for f in c.forms {
                for s in f.key_specs {
                    if s.flags.contains(KeySpecFlags::INCOMPLETE) || s.begin == BeginSearch::Unknown
                    {
                        odd.push(c.name);
                    }
                }
            }
        };
        for c in commands() {
            visit(c);
            c.subcommands.iter().for_each(&mut visit);
        }
        odd.dedup();
        // sort_ro's unknown specs are its BY/GET patterns only, which are not keys.
        assert_eq!(
            odd,
            ["migrate", "sort", "sort_ro"],
            "a new command needs a key procedure"
        );
    }

    #[test]
    fn table_driven() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["GET", "k"], &["k"]),
            (&["set", "k", "v", "PX", "10"], &["k"]),
            (&["DEL", "a", "b", "c"], &["a", "b", "c"]),
            (&["MSET", "a", "1", "b", "2"], &["a", "b"]),
            (&["MSETNX", "a", "1", "b", "2"], &["a", "b"]),
            (&["EVAL", "return 1", "2", "k1", "k2", "arg"], &["k1", "k2"]),
            (&["EVAL", "return 1", "0", "arg"], &[]),
            (&["EVALSHA", "abc", "1", "k1"], &["k1"]),
            (&["FCALL", "f", "2", "k1", "k2", "a", "b"], &["k1", "k2"]),
            (
                &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
                &["s1", "s2"],
            ),
            (&["XREAD", "STREAMS", "streams", "0"], &["streams"]),
            (
                &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s1", ">"],
                &["s1"],
            ),
            (
                &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"],
                &["dst", "a", "b"],
            ),
            (&["ZINTERSTORE", "dst", "1", "a"], &["dst", "a"]),
            (&["ZUNION", "2", "a", "b"], &["a", "b"]),
            (
                &["LMPOP", "2", "l1", "l2", "LEFT", "COUNT", "3"],
                &["l1", "l2"],
            ),
            (&["BLMPOP", "0", "2", "l1", "l2", "LEFT"], &["l1", "l2"]),
            (&["SINTERCARD", "2", "a", "b", "LIMIT", "1"], &["a", "b"]),
            (
                &["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "dst"],
                &["g", "dst"],
            ),
            (
                &["GEORADIUS", "g", "0", "0", "1", "km", "STOREDIST", "dst"],
                &["g", "dst"],
            ),
            (
                &["GEORADIUSBYMEMBER", "g", "m", "1", "km", "STORE", "dst"],
                &["g", "dst"],
            ),
            (
                &[
                    "GEOSEARCHSTORE",
                    "dst",
                    "src",
                    "FROMMEMBER",
                    "m",
                    "BYRADIUS",
                    "1",
                    "km",
                ],
                &["dst", "src"],
            ),
            (&["SORT", "k"], &["k"]),
            (
                &["SORT", "k", "BY", "w_*", "GET", "store", "STORE", "dst"],
                &["k", "dst"],
            ),
            (
                &["SORT", "k", "LIMIT", "0", "10", "STORE", "a", "STORE", "b"],
                &["k", "b"],
            ),
            (&["SORT", "k", "GET", "STORE"], &["k"]),
            (&["SORT_RO", "k", "BY", "x"], &["k"]),
            (&["MIGRATE", "h", "1", "k", "0", "100"], &["k"]),
            (
                &[
                    "MIGRATE", "h", "1", "", "0", "100", "COPY", "AUTH", "keys", "KEYS", "a",
                    "keys",
                ],
                &["a", "keys"],
            ),
            (
                &[
                    "MIGRATE", "h", "1", "", "0", "100", "AUTH2", "u", "KEYS", "KEYS", "b",
                ],
                &["b"],
            ),
            (&["RENAME", "a", "b"], &["a", "b"]),
            (&["COPY", "a", "b", "DB", "1", "REPLACE"], &["a", "b"]),
            (&["LMOVE", "a", "b", "LEFT", "RIGHT"], &["a", "b"]),
            (&["BITOP", "AND", "dst", "a", "b"], &["dst", "a", "b"]),
            (&["XGROUP", "CREATE", "s", "g", "$"], &["s"]),
            (&["OBJECT", "ENCODING", "k"], &["k"]),
            (&["FUNCTION", "LOAD", "code"], &[]),
            (&["SPUBLISH", "ch", "msg"], &["ch"]),
            (&["PFMERGE", "dst", "a", "b"], &["dst", "a", "b"]),
            (&["BLPOP", "a", "b", "0"], &["a", "b"]),
            (
                &["MSETEX", "2", "a", "1", "b", "2", "EX", "10"],
                &["a", "b"],
            ),
            (&["PING"], &[]),
        ];
        for (args, want) in cases {
            assert_eq!(&keys(args), want, "{args:?}");
        }
    }

    #[test]
    fn not_key_is_marked() {
        let args = ["SPUBLISH", "ch", "m"];
        let mut out = Vec::new();
        key_positions(lookup(&args).unwrap(), &args, &mut out).unwrap();
        assert!(!out[0].is_key());
        let args = ["SET", "k", "v"];
        key_positions(lookup(&args).unwrap(), &args, &mut out).unwrap();
        assert!(out[0].is_key());
    }

    #[test]
    fn bad_counts() {
        assert!(matches!(
            err(&["EVAL", "s", "x", "k"]),
            Error::BadKeyCount { index: 2, .. }
        ));
        assert!(matches!(
            err(&["EVAL", "s", "3", "k"]),
            Error::BadKeyCount { .. }
        ));
        assert!(matches!(
            err(&["EVAL", "s", "-1", "k"]),
            Error::BadKeyCount { .. }
        ));
        assert!(matches!(
            err(&["ZUNIONSTORE", "d", "99999999999", "a"]),
            Error::BadKeyCount { .. }
        ));
        let msg = err(&["LMPOP", "5", "a", "LEFT"]).to_string();
        assert!(msg.contains("LMPOP") && msg.contains("\"5\""), "{msg}");
    }

    #[test]
    fn never_panics_on_short_or_odd_arguments() {
        let noise: [&str; 6] = ["STREAMS", "KEYS", "STORE", "2", "-1", ""];
        let mut out = Vec::new();
        for c in commands()
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        {
            let mut args: Vec<&str> = c.name.split('|').collect();
            for n in 0..7 {
                for start in 0..noise.len() {
                    let _ = key_positions(c, &args, &mut out);
                    for k in &out {
                        assert!(k.index < args.len() && k.index > 0, "{} {args:?}", c.name);
                    }
                    args.push(noise[(start + n) % noise.len()]);
                }
                args.truncate(c.name.split('|').count() + n);
            }
        }
    }
}
