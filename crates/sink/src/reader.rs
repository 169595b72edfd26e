//! The reply reader: one task per node connection that decodes replies and reports them to
//! the engine in batches.
//!
//! It knows nothing about the commands. Replies are numbered from 0 in arrival order; the
//! engine task numbers the commands it sends the same way, so reply `i` answers command `i`
//! (RESP replies come back in request order). The reader reports how many replies arrived
//! in each read, with the frames of only those the writer must look at: every error, and the
//! replies whose numbers the writer announced on the `want` channel (queries, `RENAMENX`
//! under conflict mode `block`, `EXEC`). A `+OK` costs nothing more than decoding it.

use bytes::{Buf, BytesMut};
use redis_sync_resp::{Decoder, Frame};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// What a reader tells the engine task.
#[derive(Debug)]
pub(crate) enum Event {
    /// `count` more replies arrived on `node`'s connection number `generation`.
    Replies {
        node: usize,
        generation: u64,
        count: u64,
        /// `(reply number, frame)` for errors and wanted replies, ascending.
        frames: Vec<(u64, Frame)>,
    },
    /// The connection ended (EOF, reset, an invalid reply, or a failed write).
    Closed {
        node: usize,
        generation: u64,
        message: String,
    },
    /// A connection attempt to `node` ended (see `Engine::connect`).
    Connected {
        node: usize,
        result: Result<Box<crate::conn::Conn>, crate::error::Error>,
    },
}

const READ_CHUNK: usize = 64 * 1024;

fn has_error(frame: &Frame) -> bool {
    match frame {
        Frame::Error(_) | Frame::BulkError(_) => true,
        Frame::Array(items) => items.iter().any(has_error),
        _ => false,
    }
}

/// Reads `stream` (a TCP read half, or one half of a TLS stream: generic, so the plain path
/// stays a direct socket read) until it ends.
pub(crate) async fn run<R: AsyncRead + Unpin>(
    node: usize,
    generation: u64,
    mut stream: R,
    mut buf: BytesMut,
    mut want: UnboundedReceiver<u64>,
    events: UnboundedSender<Event>,
) {
    let mut decoder = Decoder::new();
    let mut index: u64 = 0;
    let mut next_want: Option<u64> = None;
    // True while the decoder holds a partly received frame (it resumes it, so the fast path
    // below must not run).
    let mut partial = false;
    loop {
        let mut count = 0;
        let mut frames = Vec::new();
        loop {
            // Fast path: `+OK` (most writes' reply) that nobody asked to see.
            if !partial && buf.starts_with(b"+OK\r\n") {
                while next_want.is_none_or(|w| w < index) {
                    match want.try_recv() {
                        Ok(w) => next_want = Some(w),
                        Err(_) => break,
                    }
                }
                if next_want != Some(index) {
                    buf.advance(5);
                    index += 1;
                    count += 1;
                    continue;
                }
            }
            let decoded = decoder.decode(&mut buf);
            partial = matches!(decoded, Ok(None));
            match decoded {
                Ok(Some((frame, _))) => {
                    // The writer announces a wanted number before it sends the command, so it
                    // is on the channel by the time its reply arrives.
                    while next_want.is_none_or(|w| w < index) {
                        match want.try_recv() {
                            Ok(w) => next_want = Some(w),
                            Err(_) => break,
                        }
                    }
                    let wanted = next_want == Some(index);
                    if wanted {
                        next_want = None;
                    }
                    if wanted || has_error(&frame) {
                        frames.push((index, frame));
                    }
                    index += 1;
                    count += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    if count > 0 {
                        let _ = events.send(Event::Replies {
                            node,
                            generation,
                            count,
                            frames,
                        });
                    }
                    let _ = events.send(Event::Closed {
                        node,
                        generation,
                        message: format!("invalid reply: {e}"),
                    });
                    return;
                }
            }
        }
        if count > 0 {
            let sent = events.send(Event::Replies {
                node,
                generation,
                count,
                frames,
            });
            if sent.is_err() {
                return; // the engine task is gone
            }
        }
        buf.reserve(READ_CHUNK);
        let message = match stream.read_buf(&mut buf).await {
            Ok(0) => "the server closed the connection".to_string(),
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        let _ = events.send(Event::Closed {
            node,
            generation,
            message,
        });
        return;
    }
}
