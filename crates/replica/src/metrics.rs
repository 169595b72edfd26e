//! [`Metrics`]: every figure the replica counts, as atomics readable at any time from any
//! thread (a status line, a Prometheus exporter).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters and gauges of one [`Replica`](crate::Replica). Read them through the methods.
#[derive(Debug, Default)]
pub struct Metrics {
    bytes_read: AtomicU64,
    conn_bytes: AtomicU64,
    rdb_size: AtomicU64,
    rdb_size_known: AtomicBool,
    rdb_bytes: AtomicU64,
    rdb_keys: AtomicU64,
    in_rdb: AtomicBool,
    offset: AtomicU64,
    streaming: AtomicBool,
    stream_base_raw: AtomicU64,
    stream_base_offset: AtomicU64,
    applied: AtomicU64,
    commands: AtomicU64,
    queued: AtomicU64,
    spooled: AtomicU64,
    full_syncs: AtomicU64,
    partial_syncs: AtomicU64,
    link_losses: AtomicU64,
    getacks: AtomicU64,
}

impl Metrics {
    /// Bytes read from the source's sockets, all connections together.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Relaxed)
    }
    /// The RDB payload's size, when the source said it (disk-based sync); `None` for diskless.
    pub fn rdb_size(&self) -> Option<u64> {
        self.rdb_size_known
            .load(Relaxed)
            .then(|| self.rdb_size.load(Relaxed))
    }
    /// RDB payload bytes decoded so far in the current (or last) full sync.
    pub fn rdb_bytes(&self) -> u64 {
        self.rdb_bytes.load(Relaxed)
    }
    /// Keys decoded from the current (or last) RDB payload.
    pub fn rdb_keys(&self) -> u64 {
        self.rdb_keys.load(Relaxed)
    }
    /// True while an RDB payload is being received.
    pub fn in_rdb(&self) -> bool {
        self.in_rdb.load(Relaxed)
    }
    /// Replication offset decoded so far (the master's offset of the last byte decoded).
    pub fn offset(&self) -> u64 {
        self.offset.load(Relaxed)
    }
    /// Replication offset of the last byte read from the socket (some may still be queued
    /// or spooled, not yet decoded).
    pub fn received_offset(&self) -> u64 {
        if self.streaming.load(Relaxed) {
            let raw = self
                .conn_bytes
                .load(Relaxed)
                .saturating_sub(self.stream_base_raw.load(Relaxed));
            self.stream_base_offset.load(Relaxed) + raw
        } else {
            self.offset()
        }
    }
    /// The offset the consumer has applied (see [`AppliedOffset`](crate::AppliedOffset)).
    pub fn applied_offset(&self) -> u64 {
        self.applied.load(Relaxed)
    }
    /// Bytes received but not applied: the received offset minus the applied one.
    pub fn lag_bytes(&self) -> u64 {
        self.received_offset().saturating_sub(self.applied_offset())
    }
    /// Commands decoded from the stream.
    pub fn commands(&self) -> u64 {
        self.commands.load(Relaxed)
    }
    /// Bytes waiting in the in-memory queue.
    pub fn queued_bytes(&self) -> u64 {
        self.queued.load(Relaxed)
    }
    /// Bytes waiting in the spool file.
    pub fn spooled_bytes(&self) -> u64 {
        self.spooled.load(Relaxed)
    }
    /// Full synchronisations started.
    pub fn full_syncs(&self) -> u64 {
        self.full_syncs.load(Relaxed)
    }
    /// Partial resynchronisations accepted (`+CONTINUE`).
    pub fn partial_syncs(&self) -> u64 {
        self.partial_syncs.load(Relaxed)
    }
    /// `REPLCONF GETACK` requests received from the source (each answered with an ACK).
    pub fn getacks(&self) -> u64 {
        self.getacks.load(Relaxed)
    }
    /// Times the link was lost.
    pub fn link_losses(&self) -> u64 {
        self.link_losses.load(Relaxed)
    }

    // Updates, crate-internal.
    pub(crate) fn add_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Relaxed);
        self.conn_bytes.fetch_add(n, Relaxed);
    }
    pub(crate) fn new_connection(&self, handshake_bytes: u64) {
        self.streaming.store(false, Relaxed);
        // A payload cut off with the last link is not in progress on this one.
        self.in_rdb.store(false, Relaxed);
        self.conn_bytes.store(0, Relaxed);
        self.add_read(handshake_bytes);
    }
    pub(crate) fn rdb_start(&self, size: Option<u64>) {
        self.rdb_size.store(size.unwrap_or(0), Relaxed);
        self.rdb_size_known.store(size.is_some(), Relaxed);
        self.rdb_bytes.store(0, Relaxed);
        self.rdb_keys.store(0, Relaxed);
        self.in_rdb.store(true, Relaxed);
    }
    pub(crate) fn set_rdb_bytes(&self, n: u64) {
        self.rdb_bytes.store(n, Relaxed);
    }
    pub(crate) fn add_rdb_key(&self) {
        self.rdb_keys.fetch_add(1, Relaxed);
    }
    pub(crate) fn rdb_end(&self) {
        self.in_rdb.store(false, Relaxed);
    }
    pub(crate) fn stream_start(&self, raw_consumed: u64, offset: u64) {
        self.stream_base_raw.store(raw_consumed, Relaxed);
        self.stream_base_offset.store(offset, Relaxed);
        self.offset.store(offset, Relaxed);
        self.streaming.store(true, Relaxed);
    }
    pub(crate) fn set_offset(&self, offset: u64) {
        self.offset.store(offset, Relaxed);
    }
    pub(crate) fn set_applied(&self, offset: u64) {
        self.applied.store(offset, Relaxed);
    }
    pub(crate) fn add_command(&self) {
        self.commands.fetch_add(1, Relaxed);
    }
    pub(crate) fn set_queued(&self, n: u64) {
        self.queued.store(n, Relaxed);
    }
    pub(crate) fn set_spooled(&self, n: u64) {
        self.spooled.store(n, Relaxed);
    }
    pub(crate) fn add_full_sync(&self) {
        self.full_syncs.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_partial_sync(&self) {
        self.partial_syncs.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_getack(&self) {
        self.getacks.fetch_add(1, Relaxed);
    }
    pub(crate) fn add_link_loss(&self) {
        self.link_losses.fetch_add(1, Relaxed);
    }
}
