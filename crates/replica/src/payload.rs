//! Framing of the full-sync payload that follows `+FULLRESYNC` (sans-IO).
//!
//! From Redis's `readSyncBulkPayload`: first, bare newlines (keep-alives the source sends while
//! it produces the RDB) or an error line (the source aborted); then either
//! - `$<len>\r\n` and exactly `len` RDB bytes, with no trailing CRLF (disk-based sync), or
//! - `$EOF:<40 bytes>\r\n`, the RDB, and the same 40 bytes again (diskless sync). The end is
//!   found, as Redis does, when the last 40 bytes received equal the mark; the mark is held
//!   back so the RDB decoder only ever sees RDB bytes.
//!
//! Call [`PayloadFramer::poll`] with the bytes received; it consumes what it used from the
//! buffer. After [`PayloadItem::End`] the buffer's remaining bytes are the command stream.

use bytes::{Bytes, BytesMut};

/// Length of the diskless end mark (`RDB_EOF_MARK_SIZE`).
pub(crate) const EOF_MARK_LEN: usize = 40;
/// Longest preamble line accepted.
const MAX_PREAMBLE: usize = 1024;

/// One step of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadItem {
    /// The preamble was read: the size for a disk payload, `None` for diskless.
    Start { size: Option<u64> },
    /// RDB bytes, in order.
    Data(Bytes),
    /// The payload is complete.
    End,
}

/// Why the payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// The source sent an error line instead of the payload.
    Aborted(String),
    /// Not a payload preamble.
    Protocol(String),
}

#[derive(Debug)]
enum State {
    Preamble,
    Disk {
        remaining: u64,
    },
    Eof {
        mark: [u8; EOF_MARK_LEN],
        tail: BytesMut,
    },
    EndPending,
    Done,
}

/// The payload state machine.
#[derive(Debug)]
pub(crate) struct PayloadFramer {
    state: State,
    /// Bytes consumed from the input (keep-alives, preamble, RDB, mark).
    consumed: u64,
    /// RDB bytes emitted.
    rdb_bytes: u64,
}

impl PayloadFramer {
    pub(crate) fn new() -> Self {
        PayloadFramer {
            state: State::Preamble,
            consumed: 0,
            rdb_bytes: 0,
        }
    }

    /// Bytes consumed from the input so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// RDB bytes handed out so far.
    pub(crate) fn rdb_bytes(&self) -> u64 {
        self.rdb_bytes
    }

    /// True once [`PayloadItem::End`] was returned.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next item, consuming from `buf`; `Ok(None)` when more bytes are needed.
    pub(crate) fn poll(&mut self, buf: &mut BytesMut) -> Result<Option<PayloadItem>, PayloadError> {
        loop {
            match &mut self.state {
                State::Preamble => {
                    let Some(i) = buf.iter().position(|&b| b == b'\n') else {
                        if buf.len() > MAX_PREAMBLE {
                            return Err(PayloadError::Protocol(format!(
                                "expected the payload preamble ($<len> or $EOF:<mark>), got {} bytes without a line end",
                                buf.len()
                            )));
                        }
                        return Ok(None);
                    };
                    let line = buf.split_to(i + 1);
                    self.consumed += line.len() as u64;
                    let mut line = &line[..i];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    if line.is_empty() {
                        continue; // a keep-alive newline
                    }
                    let text = String::from_utf8_lossy(line).into_owned();
                    if let Some(e) = text.strip_prefix('-') {
                        return Err(PayloadError::Aborted(e.to_string()));
                    }
                    let Some(rest) = text.strip_prefix('$') else {
                        return Err(PayloadError::Protocol(format!(
                            "expected the payload preamble ($<len> or $EOF:<mark>), got {:?}",
                            text.chars().take(80).collect::<String>()
                        )));
                    };
                    if let Some(mark) = rest.strip_prefix("EOF:") {
                        let mark: [u8; EOF_MARK_LEN] =
                            mark.as_bytes().try_into().map_err(|_| {
                                PayloadError::Protocol(format!(
                                    "the diskless EOF mark must be {EOF_MARK_LEN} bytes, got {:?}",
                                    mark
                                ))
                            })?;
                        self.state = State::Eof {
                            mark,
                            tail: BytesMut::new(),
                        };
                        return Ok(Some(PayloadItem::Start { size: None }));
                    }
                    let size: u64 = rest.parse().map_err(|_| {
                        PayloadError::Protocol(format!("bad payload length {text:?}"))
                    })?;
                    self.state = State::Disk { remaining: size };
                    return Ok(Some(PayloadItem::Start { size: Some(size) }));
                }
                State::Disk { remaining } => {
                    if *remaining == 0 {
                        self.state = State::Done;
                        return Ok(Some(PayloadItem::End));
                    }
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (*remaining).min(buf.len() as u64);
                    *remaining -= n;
                    let data = buf.split_to(n as usize).freeze();
                    self.consumed += n;
                    self.rdb_bytes += n;
                    return Ok(Some(PayloadItem::Data(data)));
                }
                State::Eof { mark, tail } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let data;
                    let ended;
                    if buf.len() >= EOF_MARK_LEN {
                        if !tail.is_empty() {
                            // The held-back bytes are not part of the last 40: hand them out.
                            let t = tail.split().freeze();
                            self.rdb_bytes += t.len() as u64;
                            return Ok(Some(PayloadItem::Data(t)));
                        }
                        let len = buf.len();
                        ended = buf[len - EOF_MARK_LEN..] == mark[..];
                        data = buf.split_to(len - EOF_MARK_LEN).freeze();
                        let rest = buf.split_to(EOF_MARK_LEN);
                        self.consumed += len as u64;
                        if !ended {
                            *tail = rest;
                        }
                    } else {
                        let n = buf.len();
                        tail.extend_from_slice(&buf.split_to(n));
                        self.consumed += n as u64;
                        if tail.len() < EOF_MARK_LEN {
                            return Ok(None);
                        }
                        let len = tail.len();
                        ended = tail[len - EOF_MARK_LEN..] == mark[..];
                        data = tail.split_to(len - EOF_MARK_LEN).freeze();
                        if ended {
                            tail.clear();
                        }
                    }
                    if ended {
                        self.state = State::EndPending;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    self.rdb_bytes += data.len() as u64;
                    return Ok(Some(PayloadItem::Data(data)));
                }
                State::EndPending => {
                    self.state = State::Done;
                    return Ok(Some(PayloadItem::End));
                }
                State::Done => return Ok(None),
            }
        }
    }
}

/// Feeds `input` in two pieces split at `split`; returns the items and the bytes left over.
#[cfg(test)]
fn drain(framer: &mut PayloadFramer, input: &[u8], split: usize) -> (Vec<PayloadItem>, Vec<u8>) {
    let mut items = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = Vec::new();
    for (i, chunk) in [&input[..split], &input[split..]].into_iter().enumerate() {
        buf.extend_from_slice(chunk);
        while let Some(item) = framer.poll(&mut buf).expect("valid payload") {
            items.push(item);
        }
        if i == 1 {
            rest = buf.to_vec();
            buf.clear();
        }
    }
    (items, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdb_of(items: &[PayloadItem]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in items {
            if let PayloadItem::Data(d) = i {
                out.extend_from_slice(d);
            }
        }
        out
    }

    #[test]
    fn disk_payload_every_split() {
        let rdb: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let mut input = b"\n\n$200\r\n".to_vec();
        input.extend_from_slice(&rdb);
        input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        for split in 0..=input.len() {
            let mut f = PayloadFramer::new();
            let (items, rest) = drain(&mut f, &input, split);
            assert_eq!(items.first(), Some(&PayloadItem::Start { size: Some(200) }));
            assert_eq!(items.last(), Some(&PayloadItem::End), "split {split}");
            assert_eq!(rdb_of(&items), rdb, "split {split}");
            assert_eq!(rest, b"*1\r\n$4\r\nPING\r\n", "split {split}");
            assert_eq!(f.rdb_bytes(), 200);
        }
    }

    #[test]
    fn diskless_payload_every_split() {
        let mark = b"0123456789abcdef0123456789abcdef01234567";
        let rdb: Vec<u8> = (0..150u32).map(|i| (i * 13) as u8).collect();
        let mut input = b"\n$EOF:".to_vec();
        input.extend_from_slice(mark);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&rdb);
        input.extend_from_slice(mark);
        for split in 0..=input.len() {
            let mut f = PayloadFramer::new();
            let (items, rest) = drain(&mut f, &input, split);
            assert_eq!(items.first(), Some(&PayloadItem::Start { size: None }));
            assert_eq!(items.last(), Some(&PayloadItem::End), "split {split}");
            assert_eq!(rdb_of(&items), rdb, "split {split}");
            assert!(rest.is_empty());
            assert_eq!(f.consumed(), input.len() as u64);
        }
    }

    #[test]
    fn diskless_tiny_chunks() {
        let mark = b"zyxwvutsrqponmlkjihgfedcba9876543210ZYXW";
        let rdb = b"REDIS0009\xff12345678".to_vec();
        let mut input = b"$EOF:".to_vec();
        input.extend_from_slice(mark);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&rdb);
        input.extend_from_slice(mark);
        for step in 1..50 {
            let mut f = PayloadFramer::new();
            let mut buf = BytesMut::new();
            let mut items = Vec::new();
            for chunk in input.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Some(i) = f.poll(&mut buf).expect("valid") {
                    items.push(i);
                }
            }
            assert_eq!(items.last(), Some(&PayloadItem::End), "step {step}");
            assert_eq!(rdb_of(&items), rdb, "step {step}");
        }
    }

    #[test]
    fn errors() {
        let mut f = PayloadFramer::new();
        let mut buf = BytesMut::from(&b"-ERR BGSAVE failed\r\n"[..]);
        assert_eq!(
            f.poll(&mut buf),
            Err(PayloadError::Aborted("ERR BGSAVE failed".into()))
        );
        let mut f = PayloadFramer::new();
        let mut buf = BytesMut::from(&b"garbage\r\n"[..]);
        assert!(matches!(f.poll(&mut buf), Err(PayloadError::Protocol(_))));
        let mut f = PayloadFramer::new();
        let mut buf = BytesMut::from(&b"$EOF:short\r\n"[..]);
        assert!(matches!(f.poll(&mut buf), Err(PayloadError::Protocol(_))));
        let mut f = PayloadFramer::new();
        let mut buf = BytesMut::from(&vec![b'x'; 5000][..]);
        assert!(matches!(f.poll(&mut buf), Err(PayloadError::Protocol(_))));
    }
}
