//! `tokio_util::codec` adapters (feature `codec`), for `FramedRead`/`FramedWrite`/`Framed`.
//!
//! They only forward to [`Decoder`] and the encoders: the sans-IO core stays the single
//! implementation, and the async crates get a `Stream`/`Sink` for free. To count wire bytes
//! (replication offsets), read [`Decoder::position`] through [`FrameCodec::decoder`] or use
//! [`Command::wire_len`].

use bytes::BytesMut;

use crate::command::Command;
use crate::decoder::Decoder;
use crate::encode::encode;
use crate::error::Error;
use crate::frame::Frame;

/// Decodes [`Frame`]s and encodes frames (RESP3 syntax, see [`encode`]) or commands.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    decoder: Decoder,
}

impl FrameCodec {
    /// A codec around `decoder` (built with the limits you want).
    pub fn new(decoder: Decoder) -> Self {
        FrameCodec { decoder }
    }

    /// The decoder, e.g. for [`Decoder::position`].
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }
}

impl tokio_util::codec::Decoder for FrameCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        Ok(self.decoder.decode(src)?.map(|(frame, _)| frame))
    }
}

impl tokio_util::codec::Encoder<&Frame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        encode(item, dst);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Frame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        encode(&item, dst);
        Ok(())
    }
}

/// Decodes [`Command`]s (the fast path: arrays of bulk strings and inline commands) and
/// encodes commands.
#[derive(Debug, Clone, Default)]
pub struct CommandCodec {
    decoder: Decoder,
}

impl CommandCodec {
    /// A codec around `decoder` (built with the limits you want).
    pub fn new(decoder: Decoder) -> Self {
        CommandCodec { decoder }
    }

    /// The decoder, e.g. for [`Decoder::position`].
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }
}

impl tokio_util::codec::Decoder for CommandCodec {
    type Item = Command;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Command>, Error> {
        self.decoder.decode_command(src)
    }
}

impl tokio_util::codec::Encoder<&Command> for CommandCodec {
    type Error = Error;

    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), Error> {
        item.encode(dst);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Command> for CommandCodec {
    type Error = Error;

    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), Error> {
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio_util::codec::{Decoder as _, Encoder as _};

    #[test]
    fn codecs_round_trip() {
        let mut codec = CommandCodec::default();
        let mut buf = BytesMut::new();
        codec
            .encode(Command::new(["SET", "k", "v"]), &mut buf)
            .unwrap();
        let cmd = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(cmd.clone().into_args(), ["SET", "k", "v"]);
        assert_eq!(codec.decoder().position(), cmd.wire_len() as u64);

        let mut codec = FrameCodec::default();
        codec.encode(Frame::Boolean(true), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::Boolean(true)));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
}
