//! Counters of everything the sink does, kept in one place and read as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::classify::ErrorClass;

/// A snapshot of the sink's counters (see [`Sink::metrics`](crate::Sink::metrics)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Commands handed to the sink (full-sync keys count once per command they became).
    pub commands_queued: u64,
    /// Commands written to a target socket (a resend counts again).
    pub commands_sent: u64,
    /// Commands the target answered without error (or skipped by policy: see `skipped`).
    pub commands_acked: u64,
    /// Bytes written to target sockets or files.
    pub bytes_sent: u64,
    /// Error replies by class, indexed like [`ErrorClass::ALL`].
    pub errors: [u64; 5],
    /// Commands skipped under error policy `skip` (each written to the dead-letter file).
    pub skipped: u64,
    /// Commands sent again (after a retryable error, a redirection or a lost connection).
    pub resent: u64,
    /// `MOVED` and `ASK` redirections followed.
    pub redirects: u64,
    /// Connections made after the first one to a node.
    pub reconnects: u64,
    /// Full-sync keys written with `RESTORE`.
    pub keys_restored: u64,
    /// Full-sync keys written with native commands.
    pub keys_rebuilt: u64,
    /// Command parts not sent because the target's checkpoints show it holds them (a cluster
    /// target after a restart: see [`Sink::set_slot_floors`](crate::Sink::set_slot_floors)).
    pub replayed: u64,
}

impl Metrics {
    /// Error replies of one class.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors[class.index()]
    }
}

/// The live counters behind [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commands_queued: AtomicU64,
    pub(crate) commands_sent: AtomicU64,
    pub(crate) commands_acked: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) errors: [AtomicU64; 5],
    pub(crate) skipped: AtomicU64,
    pub(crate) resent: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) keys_restored: AtomicU64,
    pub(crate) keys_rebuilt: AtomicU64,
    pub(crate) replayed: AtomicU64,
    /// Checkpointed transactions queued and not answered yet (a level, not a count).
    pub(crate) txns_open: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn error(&self, class: ErrorClass) {
        self.errors[class.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            commands_queued: self.commands_queued.load(Relaxed),
            commands_sent: self.commands_sent.load(Relaxed),
            commands_acked: self.commands_acked.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            errors: std::array::from_fn(|i| self.errors[i].load(Relaxed)),
            skipped: self.skipped.load(Relaxed),
            resent: self.resent.load(Relaxed),
            redirects: self.redirects.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            keys_restored: self.keys_restored.load(Relaxed),
            keys_rebuilt: self.keys_rebuilt.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
        }
    }
}
