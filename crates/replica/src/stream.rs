//! The command stream after the payload (sans-IO): commands with their exact wire size, the
//! replication offset, and the selected database.
//!
//! The offset is counted as the master counts it (`feedReplicationBacklog` adds every byte it
//! sends after the snapshot point): every byte of the stream counts, `SELECT`, `PING`,
//! `REPLCONF GETACK` and keep-alive newlines included. It starts at the `+FULLRESYNC` offset,
//! or at the offset asked for in `PSYNC` minus one after `+CONTINUE`.

use bytes::{Bytes, BytesMut};
use redis_sync_resp::Decoder;

/// Largest single argument accepted (Redis's `proto-max-bulk-len` maximum is 512 MB by
/// default; the limit keeps a corrupt length from asking for a huge allocation).
const MAX_BULK: u64 = 1 << 32;
/// Most arguments in one command.
const MAX_ARGS: u64 = 1 << 26;

/// One frame of the stream, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamItem {
    /// A command to hand to the consumer.
    Command {
        /// The database it applies to.
        db: u32,
        /// Arguments, name first.
        args: Vec<Bytes>,
        /// The replication offset after this command.
        offset: u64,
        /// Bytes it took on the wire.
        wire_len: u64,
    },
    /// `REPLCONF GETACK *`: the source wants an ACK now.
    GetAck,
    /// A frame that only moves the offset (`SELECT`, `PING`, other `REPLCONF`, newlines).
    Control,
}

/// Why the stream cannot be decoded.
#[derive(Debug)]
pub(crate) enum StreamError {
    Resp(redis_sync_resp::Error),
    BadSelect(String),
}

/// The stream decoder.
#[derive(Debug)]
pub(crate) struct CommandStream {
    decoder: Decoder,
    offset: u64,
    db: u32,
}

impl CommandStream {
    /// A stream whose next byte has replication offset `offset + 1`, with `db` selected.
    pub(crate) fn new(offset: u64, db: u32) -> Self {
        let decoder = Decoder::builder()
            .max_bulk_len(MAX_BULK)
            .max_aggregate_len(MAX_ARGS)
            .build();
        CommandStream {
            decoder,
            offset,
            db,
        }
    }

    /// The replication offset of the last byte decoded.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The database selected at [`offset`](Self::offset).
    pub(crate) fn db(&self) -> u32 {
        self.db
    }

    /// The next frame, consuming it from `buf`; `Ok(None)` when `buf` holds no whole frame.
    pub(crate) fn poll(&mut self, buf: &mut BytesMut) -> Result<Option<StreamItem>, StreamError> {
        let Some(cmd) = self
            .decoder
            .decode_command(buf)
            .map_err(StreamError::Resp)?
        else {
            return Ok(None);
        };
        let wire_len = cmd.wire_len() as u64;
        self.offset += wire_len;
        let args = cmd.into_args();
        let Some(name) = args.first() else {
            return Ok(Some(StreamItem::Control));
        };
        if name.eq_ignore_ascii_case(b"SELECT") {
            let db = args
                .get(1)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    StreamError::BadSelect(format!(
                        "SELECT with a bad argument: {:?}",
                        args.get(1).map(|a| String::from_utf8_lossy(a).into_owned())
                    ))
                })?;
            self.db = db;
            return Ok(Some(StreamItem::Control));
        }
        if name.eq_ignore_ascii_case(b"PING") {
            return Ok(Some(StreamItem::Control));
        }
        if name.eq_ignore_ascii_case(b"REPLCONF") {
            let getack = args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"GETACK"));
            return Ok(Some(if getack {
                StreamItem::GetAck
            } else {
                StreamItem::Control
            }));
        }
        Ok(Some(StreamItem::Command {
            db: self.db,
            args,
            offset: self.offset,
            wire_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(args: &[&str]) -> Vec<u8> {
        crate::handshake::encode_command(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>())
            .to_vec()
    }

    #[test]
    fn offsets_select_and_control_frames_every_split() {
        let mut input = Vec::new();
        input.extend(wire(&["SELECT", "3"]));
        input.extend(wire(&["SET", "k", "v"]));
        input.extend(b"\n");
        input.extend(wire(&["PING"]));
        input.extend(wire(&["REPLCONF", "GETACK", "*"]));
        input.extend(wire(&["select", "0"]));
        input.extend(wire(&["DEL", "k"]));
        for split in 0..=input.len() {
            let mut s = CommandStream::new(100, 0);
            let mut buf = BytesMut::new();
            let mut items = Vec::new();
            for chunk in [&input[..split], &input[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(i) = s.poll(&mut buf).expect("valid stream") {
                    items.push(i);
                }
            }
            assert_eq!(s.offset(), 100 + input.len() as u64, "split {split}");
            let cmds: Vec<_> = items
                .iter()
                .filter_map(|i| match i {
                    StreamItem::Command {
                        db,
                        args,
                        offset,
                        wire_len,
                    } => Some((*db, args[0].clone(), *offset, *wire_len)),
                    _ => None,
                })
                .collect();
            let set_end =
                100 + (wire(&["SELECT", "3"]).len() + wire(&["SET", "k", "v"]).len()) as u64;
            assert_eq!(cmds.len(), 2);
            assert_eq!(cmds[0], (3, Bytes::from_static(b"SET"), set_end, 27));
            assert_eq!(cmds[1].0, 0);
            assert_eq!(cmds[1].2, 100 + input.len() as u64);
            assert!(items.contains(&StreamItem::GetAck));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut s = CommandStream::new(0, 0);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nfoo\r\n:12\r\n"[..]);
        assert!(s.poll(&mut buf).is_err());
        let mut s = CommandStream::new(0, 0);
        let mut buf = BytesMut::from(&b"*2\r\n$6\r\nSELECT\r\n$1\r\nx\r\n"[..]);
        assert!(matches!(s.poll(&mut buf), Err(StreamError::BadSelect(_))));
    }
}
