//! The crate's error type.

/// A key and its hash slot, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlot {
    /// The key, as lossy UTF-8 with quotes, backslashes and non-printable bytes escaped.
    pub key: String,
    /// Its hash slot.
    pub slot: u16,
}

impl std::fmt::Display for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' (slot {})", self.key, self.slot)
    }
}

fn list(keys: &[KeySlot]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything that can go wrong when classifying, splitting or filtering a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An empty argument list.
    #[error("empty command: a command needs at least its name")]
    Empty,
    /// The name is in no table this crate knows.
    #[error(
        "unknown command {name:?}: not in the command table of {sources}; if it is a module command, \
         load the module on the target and allow unknown commands, else filter it out"
    )]
    UnknownCommand {
        /// The name as received (lossy UTF-8).
        name: String,
        /// The servers the table was generated from.
        sources: String,
    },
    /// The argument count does not match the command's arity.
    #[error(
        "wrong number of arguments for {command}: got {got} (name included), the command takes {expected}; \
         the stream is corrupt or comes from a server whose {command} differs"
    )]
    Arity {
        /// The command.
        command: String,
        /// Arguments received, name included.
        got: usize,
        /// `exactly N` or `at least N`.
        expected: String,
    },
    /// A key count (`numkeys` of EVAL, FCALL, ZUNIONSTORE, …) is not a number or exceeds the arguments.
    #[error(
        "bad key count in {command}: argument {index} is {value:?}, which is not a count of keys that fits \
         the {argc} arguments; the command is malformed"
    )]
    BadKeyCount {
        /// The command.
        command: String,
        /// Index of the count argument.
        index: usize,
        /// The argument (lossy UTF-8).
        value: String,
        /// The argument count.
        argc: usize,
    },
    /// A multi-key command whose keys live in different slots and cannot be split safely.
    #[error(
        "CROSSSLOT: {command} touches keys in different hash slots: {}; a cluster target cannot run it \
         atomically and it cannot be split without changing its meaning. {hint}",
        list(.keys)
    )]
    CrossSlot {
        /// The command.
        command: String,
        /// Every key with its slot.
        keys: Vec<KeySlot>,
        /// What the user can do.
        hint: &'static str,
    },
    /// A command for a database a cluster target does not have.
    #[error(
        "{command} uses database {db}, but a cluster target only has database 0; map it \
         (e.g. --db-map {db}=0) or exclude it"
    )]
    ClusterDb {
        /// The command (`SELECT`, `MOVE`, `SWAPDB`, `COPY … DB`, or the command run in that db).
        command: String,
        /// The source database.
        db: u32,
    },
    /// A database argument (SELECT, MOVE, SWAPDB, COPY … DB) that is not a number.
    #[error("{command}: database argument {value:?} is not a number; the command is malformed")]
    BadDb {
        /// The command.
        command: String,
        /// The argument (lossy UTF-8).
        value: String,
    },
    /// A command whose databases are partly excluded or mapped where that cannot be expressed.
    #[error(
        "{command} moves data between database {from} and {to}, but {why}; include both databases or neither"
    )]
    DbFilterConflict {
        /// The command.
        command: String,
        /// The source-side database.
        from: u32,
        /// The other database.
        to: u32,
        /// Why it cannot be expressed.
        why: &'static str,
    },
    /// A multi-key command where the key filter keeps some keys and drops others, and the
    /// command cannot be split.
    #[error(
        "{command} touches keys the filter keeps ({}) and keys it drops ({}); the command cannot be split \
         without changing its meaning: widen or narrow the key filter so both sides agree",
        names(.kept), names(.dropped)
    )]
    MixedKeys {
        /// The command.
        command: String,
        /// Keys the filter keeps.
        kept: Vec<String>,
        /// Keys the filter drops.
        dropped: Vec<String>,
    },
    /// A command in a MULTI/EXEC block that cannot go to a cluster.
    #[error("in the MULTI/EXEC block at command {index} ({command}): {source}")]
    InTransaction {
        /// Index of the command inside the block.
        index: usize,
        /// The command.
        command: String,
        /// What was wrong with it.
        source: Box<Error>,
    },
    /// A filter pattern that does not compile.
    #[error("bad {what} pattern {pattern:?}: {reason}")]
    BadPattern {
        /// `regex` or `glob`.
        what: &'static str,
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// A `COMMAND` / `COMMAND INFO` reply without the shape servers send
    /// ([`CommandSpecs::parse`](crate::CommandSpecs::parse)).
    #[error("unexpected COMMAND reply: {detail}")]
    BadCommandReply {
        /// What was wrong, naming the command when known.
        detail: String,
    },
    /// A name in a filter that is not a known command, data type or ACL category.
    #[error("unknown {what} {name:?} in a filter; valid: {valid}")]
    BadFilterName {
        /// `command`, `type`.
        what: &'static str,
        /// The name.
        name: String,
        /// Valid names, or a hint.
        valid: String,
    },
}

/// Argument bytes for a message: lossy UTF-8, control bytes escaped, long values cut.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s: String = String::from_utf8_lossy(cut)
        .chars()
        .flat_map(char::escape_default)
        .collect();
    if bytes.len() > MAX {
        s.push_str(&format!("…({} bytes)", bytes.len()));
    }
    s
}
