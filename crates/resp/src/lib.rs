//! A sans-IO RESP2/RESP3 codec for Redis and Valkey: incremental, zero-copy, with exact byte
//! counts and limits.
//!
//! - [`Decoder`] takes bytes from a growing [`BytesMut`](bytes::BytesMut) and returns a
//!   [`Frame`] and the number of bytes it took, or `Ok(None)` when more bytes are needed —
//!   which is not an error. Strings in frames are [`Bytes`](bytes::Bytes) slices of the input:
//!   no payload is copied. A partly received frame is not rescanned from its start on every
//!   read; the decoder resumes where it stopped.
//! - [`Decoder::decode_command`] is the fast path for what a server or replica mostly reads:
//!   an array of bulk strings (or an inline command), returned as a [`Command`] with its
//!   arguments and [`Command::wire_len`]. A `Command` holds its bytes as one `Bytes` and its
//!   argument positions inline, so decoding one costs one reference count and no allocation;
//!   [`Command::into_args`] gives a `Vec<Bytes>` when an owner needs one.
//! - [`encode`], [`encode_resp2`] and [`encode_command`] append to a `BytesMut`.
//! - [`info_fields`] and [`info_field`] read the text of an `INFO` reply.
//! - [`DecoderBuilder`] sets the limits (bulk length, aggregate length, nesting depth, line
//!   length). Nothing is allocated from a length read off the wire before the bytes it
//!   announces are there.
//! - With the `codec` feature, [`FrameCodec`] and [`CommandCodec`] implement
//!   `tokio_util::codec::{Decoder, Encoder}`.
//! - With the `client` feature, [`Client`] is a small request/reply connection over tokio's
//!   TCP, every wait bounded by a timeout; [`Stream`] is its connection, for callers that
//!   take it over.
//! - With the `tls` feature, [`TlsConnector`] (made from a [`TlsConfig`]) opens the same
//!   connections over TLS (rustls, ring provider): [`Client::connect_tls`],
//!   [`Stream::connect_tls`].
//!
//! Every RESP3 type is supported: simple string, error, integer, bulk string, array, the RESP2
//! nulls and RESP3's `_`, boolean, double (`inf`, `-inf`, `nan` too), big number, bulk error,
//! verbatim string, map, set, attribute and push.
//!
//! Without its optional features the crate holds no sockets and no async runtime: the caller
//! reads, the decoder decodes.
//! That keeps it fuzzable (see `fuzz/fuzz_targets/resp_decode.rs` in the repository) and
//! usable from any I/O model.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use redis_sync_resp::{encode_command, Decoder, Frame};
//!
//! let mut decoder = Decoder::new();
//!
//! // A reply arrives in two reads.
//! let mut buf = BytesMut::from(&b"*2\r\n$5\r\nhello\r\n"[..]);
//! assert_eq!(decoder.decode(&mut buf)?, None);
//! buf.extend_from_slice(b"%1\r\n+k\r\n#t\r\n");
//! let (frame, len) = decoder.decode(&mut buf)?.expect("a whole frame");
//! assert_eq!(len, 27);
//! assert_eq!(
//!     frame,
//!     Frame::Array(vec![
//!         Frame::BulkString("hello".into()),
//!         Frame::Map(vec![(Frame::SimpleString("k".into()), Frame::Boolean(true))]),
//!     ])
//! );
//!
//! // Commands: encode, then decode with the fast path.
//! let mut wire = BytesMut::new();
//! encode_command(&["SET", "key", "value"], &mut wire);
//! let command = decoder.decode_command(&mut wire)?.expect("a whole command");
//! assert_eq!(command.wire_len(), 33);
//! assert_eq!(command.name(), Some(&b"SET"[..]));
//! assert_eq!(command.into_args(), ["SET", "key", "value"]);
//! assert_eq!(decoder.position(), 27 + 33);
//! # Ok::<(), redis_sync_resp::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "codec")]
mod codec;
mod command;
mod decoder;
mod encode;
mod error;
mod frame;
mod info;
mod parse;
mod quick;
#[cfg(feature = "client")]
mod stream;
#[cfg(feature = "tls")]
mod tls;

#[cfg(test)]
mod tests;

#[cfg(feature = "client")]
pub use client::{Client, ClientError};
#[cfg(feature = "codec")]
pub use codec::{CommandCodec, FrameCodec};
pub use command::{Args, Command};
pub use decoder::{Decoder, DecoderBuilder, MAX_DEPTH_LIMIT, decode_all};
pub use encode::{command_len, encode, encode_command, encode_resp2};
pub use error::{Error, Text};
pub use frame::Frame;
pub use info::{info_field, info_fields};
#[cfg(feature = "client")]
pub use stream::Stream;
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsConnector};
