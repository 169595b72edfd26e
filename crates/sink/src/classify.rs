//! Sorting a target's error reply into an [`ErrorClass`], and parsing redirections.
//!
//! The class decides what the writer does (see the crate docs): retry after a pause, follow a
//! redirection, apply the error policy, or stop. The first word of an error reply is its code
//! (`WRONGTYPE`, `MOVED`, …; Redis's `addReplyErrorFormat` prefixes `ERR` when a message has
//! none), so classification is by that word, plus a few `ERR …` messages that are about the
//! data rather than the command.

use std::fmt;

/// What kind of failure a target's error reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The target cannot serve now but will: `LOADING`, `BUSY`, `TRYAGAIN`, `CLUSTERDOWN`,
    /// `MASTERDOWN`, `NOREPLICAS`, or the connection was reset. Retried after a pause.
    Retryable,
    /// The key lives elsewhere: `MOVED`, `ASK` (and `READONLY` from a cluster node that became
    /// a replica). Resent to the right node.
    Routing,
    /// The command does not fit the data already on the target: `WRONGTYPE`, "value is not an
    /// integer", `BUSYKEY`, a key that exists under conflict mode `block`, an unknown command,
    /// any other `ERR`. The error policy applies.
    Data,
    /// The target is full: `OOM command not allowed`. The error policy applies.
    Capacity,
    /// Nothing later can succeed: `NOAUTH`, `WRONGPASS`, `NOPERM`, `READONLY` on a standalone
    /// target, `MISCONF`. Always stops the sink.
    Fatal,
}

impl ErrorClass {
    /// Every class, for iterating over counters.
    pub const ALL: [ErrorClass; 5] = [
        ErrorClass::Retryable,
        ErrorClass::Routing,
        ErrorClass::Data,
        ErrorClass::Capacity,
        ErrorClass::Fatal,
    ];

    /// Lower-case name: `retryable`, `routing`, `data`, `capacity`, `fatal`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Routing => "routing",
            ErrorClass::Data => "data",
            ErrorClass::Capacity => "capacity",
            ErrorClass::Fatal => "fatal",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of an error reply's text (without the leading `-`). `cluster` says whether the
/// target is a cluster, where `READONLY` means "this node is a replica now" (a routing matter)
/// rather than "you pointed the sink at a replica".
pub fn classify(message: &[u8], cluster: bool) -> ErrorClass {
    let code = code(message);
    match code {
        b"MOVED" | b"ASK" => ErrorClass::Routing,
        b"READONLY" if cluster => ErrorClass::Routing,
        b"LOADING" | b"BUSY" | b"TRYAGAIN" | b"CLUSTERDOWN" | b"MASTERDOWN" | b"NOREPLICAS" => {
            ErrorClass::Retryable
        }
        b"OOM" => ErrorClass::Capacity,
        b"NOAUTH" | b"WRONGPASS" | b"NOPERM" | b"READONLY" | b"MISCONF" => ErrorClass::Fatal,
        _ => ErrorClass::Data,
    }
}

/// The first word of an error message.
fn code(message: &[u8]) -> &[u8] {
    let end = message
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(message.len());
    &message[..end]
}

/// What to tell the user about an error reply: how to fix the cause.
pub(crate) fn advice(message: &[u8]) -> &'static str {
    let lower = String::from_utf8_lossy(message).to_ascii_lowercase();
    match code(message) {
        b"OOM" => {
            "the target is out of memory: raise its maxmemory (CONFIG SET maxmemory) or free \
             memory; keep maxmemory-policy noeviction so synced keys are never evicted silently"
        }
        b"WRONGTYPE" => {
            "the target already holds this key with another type: delete it on the target, run \
             the full sync with conflict mode overwrite, or use error policy skip to dead-letter it"
        }
        b"BUSYKEY" => {
            "the key already exists on the target: use conflict mode overwrite or delete the key"
        }
        b"NOAUTH" | b"WRONGPASS" => {
            "the target needs other credentials: set the target's password (and user) in the \
             sink configuration"
        }
        b"NOPERM" => {
            "the target's user may not run this command or touch this key: grant it, e.g. \
             ACL SETUSER <user> +@all ~* &*"
        }
        b"READONLY" => "the target is a read-only replica: point the sink at its master (see ROLE)",
        b"MISCONF" => {
            "the target cannot persist to disk and refuses writes: fix its disk or set \
             stop-writes-on-bgsave-error no"
        }
        b"LOADING" | b"BUSY" | b"TRYAGAIN" | b"CLUSTERDOWN" | b"MASTERDOWN" => {
            "the target stayed unavailable through every retry: check its state and run again"
        }
        b"CROSSSLOT" => {
            "the command spans several cluster slots and cannot be split safely: use hash tags \
             on the source or a standalone target"
        }
        _ if lower.contains("not an integer") || lower.contains("not a valid float") => {
            "the target's value differs from the source's (was the target written by someone \
             else?): compare the key on both sides, or use error policy skip"
        }
        _ if lower.contains("unknown command") => {
            "the target does not know this command (older version, module not loaded, or a \
             renamed command): upgrade the target or load the module"
        }
        _ if lower.contains("payload version") => {
            "the target cannot load the source's DUMP payload: let the sink write native \
             commands (it does when it knows the target's RDB version)"
        }
        _ => "check the command against the target's version and data",
    }
}

/// A parsed `MOVED <slot> <host:port>` or `ASK <slot> <host:port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub(crate) ask: bool,
    pub(crate) slot: u16,
    pub(crate) addr: String,
}

pub(crate) fn parse_redirect(message: &[u8]) -> Option<Redirect> {
    let text = std::str::from_utf8(message).ok()?;
    let mut words = text.split(' ');
    let ask = match words.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let slot: u16 = words.next()?.parse().ok()?;
    let mut addr = words.next()?.to_string();
    // A node that does not know its own address announces `:port`.
    if addr.starts_with(':') {
        addr.insert_str(0, "127.0.0.1");
    }
    (slot < 16384).then_some(Redirect { ask, slot, addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let cases: &[(&str, ErrorClass)] = &[
            (
                "LOADING Redis is loading the dataset in memory",
                ErrorClass::Retryable,
            ),
            (
                "BUSY Redis is busy running a script.",
                ErrorClass::Retryable,
            ),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                ErrorClass::Retryable,
            ),
            ("CLUSTERDOWN The cluster is down", ErrorClass::Retryable),
            ("MOVED 3999 127.0.0.1:6381", ErrorClass::Routing),
            ("ASK 3999 127.0.0.1:6381", ErrorClass::Routing),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                ErrorClass::Data,
            ),
            (
                "ERR value is not an integer or out of range",
                ErrorClass::Data,
            ),
            ("BUSYKEY Target key name already exists.", ErrorClass::Data),
            (
                "OOM command not allowed when used memory > 'maxmemory'.",
                ErrorClass::Capacity,
            ),
            ("NOAUTH Authentication required.", ErrorClass::Fatal),
            ("NOPERM User x has no permissions", ErrorClass::Fatal),
            (
                "READONLY You can't write against a read only replica.",
                ErrorClass::Fatal,
            ),
        ];
        for (msg, class) in cases {
            assert_eq!(classify(msg.as_bytes(), false), *class, "{msg}");
        }
        assert_eq!(
            classify(b"READONLY You can't write", true),
            ErrorClass::Routing
        );
        assert!(advice(b"OOM command not allowed").contains("maxmemory"));
        assert!(advice(b"ERR value is not an integer or out of range").contains("differs"));
    }

    #[test]
    fn redirects() {
        assert_eq!(
            parse_redirect(b"MOVED 3999 127.0.0.1:6381"),
            Some(Redirect {
                ask: false,
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            parse_redirect(b"ASK 1 :7000"),
            Some(Redirect {
                ask: true,
                slot: 1,
                addr: "127.0.0.1:7000".into()
            })
        );
        assert_eq!(parse_redirect(b"MOVED 99999 x:1"), None);
        assert_eq!(parse_redirect(b"MOVED"), None);
        assert_eq!(parse_redirect(b"ERR x"), None);
    }
}
