//! Writing a node's encoded commands without ever waiting on its socket.
//!
//! A slow or stalled node used to hold the whole engine inside `write_all`: no replies from
//! the other nodes were handled and nothing else was placed. Now the engine writes what the
//! socket takes at once (`try_write`, the common case: no task hop, which matters for the
//! latency of a transaction's `EXEC`) and hands the rest to the connection's writer task,
//! which waits for the socket to be writable. Once something waits in the task, later buffers
//! queue behind it, so the bytes keep their order. What a node has not written yet counts
//! against its in-flight window (`window_bytes`), which bounds the task's queue.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::metrics::Counters;
use crate::reader::Event;

/// The write side of one node connection. Dropping it ends the writer task once its queue is
/// written, and then the connection's write side.
#[derive(Debug)]
pub(crate) struct NodeWriter {
    half: Arc<OwnedWriteHalf>,
    /// Buffers handed to the task and not fully written yet.
    queued: Arc<AtomicUsize>,
    tx: UnboundedSender<Bytes>,
    counters: Arc<Counters>,
}

impl NodeWriter {
    /// Starts the writer task of connection `generation` of `node`; a failed write is
    /// reported as [`Event::Closed`].
    pub(crate) fn spawn(
        node: usize,
        generation: u64,
        half: OwnedWriteHalf,
        events: UnboundedSender<Event>,
        counters: Arc<Counters>,
    ) -> NodeWriter {
        let half = Arc::new(half);
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            node,
            generation,
            half.clone(),
            queued.clone(),
            rx,
            events,
            counters.clone(),
        ));
        NodeWriter {
            half,
            queued,
            tx,
            counters,
        }
    }

    /// Writes `buf`: now, as far as the socket takes it, and the rest through the task.
    /// An error means the connection is broken (or its task gone).
    pub(crate) fn write(&self, mut buf: Bytes) -> io::Result<()> {
        if self.queued.load(Ordering::Acquire) == 0 {
            while !buf.is_empty() {
                match self.half.try_write(&buf) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        Counters::add(&self.counters.bytes_sent, n as u64);
                        buf.advance(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if buf.is_empty() {
                return Ok(());
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.tx
            .send(buf)
            .map_err(|_| io::Error::other("the connection's writer stopped"))
    }
}

/// Writes each queued buffer in order, waiting for the socket, until the [`NodeWriter`] is
/// dropped or a write fails.
async fn run(
    node: usize,
    generation: u64,
    half: Arc<OwnedWriteHalf>,
    queued: Arc<AtomicUsize>,
    mut buffers: UnboundedReceiver<Bytes>,
    events: UnboundedSender<Event>,
    counters: Arc<Counters>,
) {
    while let Some(mut buf) = buffers.recv().await {
        while !buf.is_empty() {
            let written = match half.writable().await {
                Ok(()) => match half.try_write(&buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                    other => other,
                },
                Err(e) => Err(e),
            };
            match written {
                Ok(n) => {
                    Counters::add(&counters.bytes_sent, n as u64);
                    buf.advance(n);
                }
                Err(e) => {
                    let _ = events.send(Event::Closed {
                        node,
                        generation,
                        message: e.to_string(),
                    });
                    return;
                }
            }
        }
        queued.fetch_sub(1, Ordering::AcqRel);
    }
}
