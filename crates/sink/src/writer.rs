//! The socket writer: one task per node connection that writes out the buffers the engine
//! hands it, so the engine never waits on a socket.
//!
//! A slow or stalled node used to hold the whole engine inside `write_all`: no replies from
//! the other nodes were processed and nothing else was placed. Now the engine only moves an
//! encoded buffer into this task's channel; what a node has not written yet counts against its
//! in-flight window (`window_bytes`), which bounds this channel's bytes.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::metrics::Counters;
use crate::reader::Event;

/// Writes each buffer received in order until the engine drops the sender (the connection is
/// given up: dropping the write half ends it) or a write fails (reported as
/// [`Event::Closed`]).
pub(crate) async fn run(
    node: usize,
    generation: u64,
    mut stream: OwnedWriteHalf,
    mut buffers: UnboundedReceiver<Bytes>,
    events: UnboundedSender<Event>,
    counters: Arc<Counters>,
) {
    while let Some(buf) = buffers.recv().await {
        if let Err(e) = stream.write_all(&buf).await {
            let _ = events.send(Event::Closed {
                node,
                generation,
                message: e.to_string(),
            });
            return;
        }
        Counters::add(&counters.bytes_sent, buf.len() as u64);
    }
}
