//! [`Batch`]: the stream commands of the next transaction (exactly-once mode).
//!
//! Commands gather until the batch is full or nothing more is ready from the source, then go
//! to the target in one `MULTI … EXEC` with the checkpoint of the batch's last offset. A source
//! transaction (`MULTI … EXEC` in the stream) stays whole inside one batch: the batch is not
//! committed between its `MULTI` and `EXEC` unless it outgrows the hard limits.

use redis_sync_sink::TxCommand;

/// A batch is committed once it holds this many commands (outside a source transaction)...
const COMMANDS: usize = 10_000;
/// ...or this many bytes.
const BYTES: usize = 8 << 20;
/// A source transaction larger than this is committed in parts (memory stays bounded).
const HARD_COMMANDS: usize = 100_000;
/// See [`HARD_COMMANDS`].
const HARD_BYTES: usize = 64 << 20;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct Batch {
    commands: Vec<TxCommand>,
    bytes: usize,
    /// Offset and db after the last stream item the batch covers.
    end: Option<(u64, u32)>,
    in_source_transaction: bool,
}

impl Batch {
    /// Adds a command.
    pub fn push(&mut self, c: TxCommand) {
        self.bytes += redis_sync_resp::command_len(&c.args);
        self.commands.push(c);
    }

    /// The batch covers the stream up to `offset` (where `db` is selected).
    pub fn mark(&mut self, offset: u64, db: u32) {
        self.end = Some((offset, db));
    }

    /// A `MULTI` from the source.
    pub fn begin_source_transaction(&mut self) {
        self.in_source_transaction = true;
    }

    /// An `EXEC` from the source.
    pub fn end_source_transaction(&mut self) {
        self.in_source_transaction = false;
    }

    /// Between a source `MULTI` and its `EXEC`.
    pub fn in_source_transaction(&self) -> bool {
        self.in_source_transaction
    }

    /// Something to commit, and not in the middle of a source transaction.
    pub fn ready(&self) -> bool {
        self.end.is_some() && !self.in_source_transaction
    }

    /// Nothing taken in since the last commit, and not inside a source transaction.
    pub fn is_empty(&self) -> bool {
        self.end.is_none() && !self.in_source_transaction
    }

    /// Large enough to commit now.
    pub fn full(&self) -> bool {
        let n = self.commands.len();
        (!self.in_source_transaction && (n >= COMMANDS || self.bytes >= BYTES))
            || n >= HARD_COMMANDS
            || self.bytes >= HARD_BYTES
    }

    /// Takes the commands and the end position, leaving the batch empty.
    pub fn take(&mut self) -> Option<(Vec<TxCommand>, (u64, u32))> {
        let end = self.end.take()?;
        self.bytes = 0;
        Some((std::mem::take(&mut self.commands), end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cmd(offset: u64) -> TxCommand {
        TxCommand {
            db: 0,
            args: vec![Bytes::from_static(b"INCR"), Bytes::from_static(b"k")],
            offset,
        }
    }

    #[test]
    fn a_source_transaction_is_not_cut() {
        let mut b = Batch::default();
        assert!(!b.ready());
        b.begin_source_transaction();
        b.mark(10, 0);
        for i in 0..COMMANDS as u64 {
            b.push(cmd(20 + i));
            b.mark(20 + i, 0);
        }
        assert!(!b.ready() && !b.full());
        b.end_source_transaction();
        b.mark(5000, 0);
        assert!(b.ready() && b.full());
        let (cmds, end) = b.take().expect("batch");
        assert_eq!((cmds.len(), end), (COMMANDS, (5000, 0)));
        assert!(b.take().is_none());
    }
}
