//! Writing a node's encoded commands without ever waiting on its socket.
//!
//! A slow or stalled node used to hold the whole engine inside `write_all`: no replies from
//! the other nodes were handled and nothing else was placed. Now the engine writes what the
//! socket takes at once (`try_write`, the common case: no task hop, which matters for the
//! latency of a transaction's `EXEC`) and hands the rest to the connection's writer task,
//! which waits for the socket to be writable. Once something waits in the task, later buffers
//! queue behind it, so the bytes keep their order. What a node has not written yet counts
//! against its in-flight window (`window_bytes`), which bounds the task's queue.
//!
//! A TLS connection cannot be written that way: its record layer buffers and encrypts, and
//! its write half (`tokio::io::split`) shares a lock with the read half. There every buffer
//! goes through the task, which writes and flushes it; the plain TCP path is unchanged.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes};
use redis_sync_resp::Stream;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::metrics::Counters;
use crate::reader::Event;

/// The write side of a node connection, as [`NodeWriter::spawn`] takes it.
#[derive(Debug)]
pub(crate) enum WriteSide {
    /// Plain TCP: written at once with `try_write` when the socket takes it.
    Tcp(OwnedWriteHalf),
    /// Any other stream (TLS): written by the task only.
    Stream(WriteHalf<Stream>),
}

/// What the writer task writes to.
enum TaskSide {
    Tcp(Arc<OwnedWriteHalf>),
    Stream(WriteHalf<Stream>),
}

/// The write side of one node connection. Dropping it ends the writer task once its queue is
/// written, and then the connection's write side.
#[derive(Debug)]
pub(crate) struct NodeWriter {
    /// The TCP write half for the direct `try_write`; `None` on TLS.
    half: Option<Arc<OwnedWriteHalf>>,
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
        side: WriteSide,
        events: UnboundedSender<Event>,
        counters: Arc<Counters>,
    ) -> NodeWriter {
        let (half, task_side) = match side {
            WriteSide::Tcp(h) => {
                let h = Arc::new(h);
                (Some(h.clone()), TaskSide::Tcp(h))
            }
            WriteSide::Stream(h) => (None, TaskSide::Stream(h)),
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            node,
            generation,
            task_side,
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
        if let Some(half) = &self.half
            && self.queued.load(Ordering::Acquire) == 0
        {
            while !buf.is_empty() {
                match half.try_write(&buf) {
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
    side: TaskSide,
    queued: Arc<AtomicUsize>,
    buffers: UnboundedReceiver<Bytes>,
    events: UnboundedSender<Event>,
    counters: Arc<Counters>,
) {
    let result = match side {
        TaskSide::Tcp(half) => run_tcp(&half, &queued, buffers, &counters).await,
        TaskSide::Stream(half) => run_stream(half, &queued, buffers, &counters).await,
    };
    if let Err(e) = result {
        let _ = events.send(Event::Closed {
            node,
            generation,
            message: e.to_string(),
        });
    }
}

/// Writes each buffer with `write_all` and flushes it (a TLS record may sit in the session
/// otherwise). When the [`NodeWriter`] is dropped, shuts the stream down (TLS `close_notify`
/// and the TCP write side), as dropping a TCP write half does, so the server closes the
/// connection and the reader task ends; bounded, as a server that stopped reading would
/// otherwise hold the task.
async fn run_stream(
    mut half: WriteHalf<Stream>,
    queued: &AtomicUsize,
    mut buffers: UnboundedReceiver<Bytes>,
    counters: &Counters,
) -> io::Result<()> {
    while let Some(buf) = buffers.recv().await {
        half.write_all(&buf).await?;
        half.flush().await?;
        Counters::add(&counters.bytes_sent, buf.len() as u64);
        queued.fetch_sub(1, Ordering::AcqRel);
    }
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, half.shutdown()).await;
    Ok(())
}

/// How long a TLS connection's orderly close may take once its writer is dropped.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn run_tcp(
    half: &OwnedWriteHalf,
    queued: &AtomicUsize,
    mut buffers: UnboundedReceiver<Bytes>,
    counters: &Counters,
) -> io::Result<()> {
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
            let n = written?;
            Counters::add(&counters.bytes_sent, n as u64);
            buf.advance(n);
        }
        queued.fetch_sub(1, Ordering::AcqRel);
    }
    Ok(())
}
