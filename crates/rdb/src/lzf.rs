//! LZF decompression (liblzf's `lzf_decompress`, RDB-FORMAT.md §4), one-shot and streaming.
//!
//! The format is a sequence of instructions. A control byte `ctrl < 32` starts a literal run of
//! `ctrl + 1` bytes; otherwise `len = ctrl >> 5` (`7` means "add the next byte"), the back
//! reference is `((ctrl & 0x1f) << 8) + next byte + 1` bytes behind the output end, and
//! `len + 2` bytes are copied from there byte by byte (the source may overlap the destination).
//! A back reference reaches at most 8 KiB back, which is what lets [`LzfStream`] keep only a
//! small window of output.

/// Largest distance of a back reference: `(0x1f << 8) + 0xff + 1`.
const MAX_DISTANCE: usize = 8192;

/// Decompresses `input` (complete) into a vector that must have exactly `ulen` bytes.
pub(crate) fn decompress(input: &[u8], ulen: usize) -> Result<Vec<u8>, String> {
    // One instruction of at most 3 bytes yields at most 264 bytes: never reserve more than
    // the input can produce, whatever `ulen` claims.
    let cap = ulen.min(input.len().saturating_mul(88).saturating_add(32));
    let mut out = Vec::with_capacity(cap);
    let mut ip = 0usize;
    while ip < input.len() {
        match step(input, &mut ip, &mut out, ulen, 0, 0)? {
            Step::Done => {}
            Step::NeedMore => {
                return Err(format!(
                    "instruction at compressed byte {ip} runs past the end of the input"
                ));
            }
        }
    }
    if out.len() != ulen {
        return Err(format!(
            "decompressed to {} bytes but the header declares {ulen}",
            out.len()
        ));
    }
    Ok(out)
}

enum Step {
    Done,
    NeedMore,
}

/// Runs one instruction starting at `input[*ip]`, appending to `out` (whose length must stay
/// within `limit`). Leaves `ip` unchanged and returns `NeedMore` if the instruction is cut.
/// `in_base` / `out_base` are the stream positions of `input[0]` and `out[0]`, for messages
/// that do not depend on how the input was split.
fn step(
    input: &[u8],
    ip: &mut usize,
    out: &mut Vec<u8>,
    limit: usize,
    in_base: u64,
    out_base: u64,
) -> Result<Step, String> {
    let start = *ip;
    let pos = in_base + start as u64;
    let Some(&ctrl) = input.get(start) else {
        return Ok(Step::NeedMore);
    };
    if ctrl < 32 {
        let n = ctrl as usize + 1;
        let Some(lit) = input.get(start + 1..start + 1 + n) else {
            return Ok(Step::NeedMore);
        };
        if out.len() + n > limit {
            return Err(format!(
                "output would exceed the declared length (literal at compressed byte {pos})"
            ));
        }
        out.extend_from_slice(lit);
        *ip = start + 1 + n;
        return Ok(Step::Done);
    }
    let mut len = (ctrl >> 5) as usize;
    let mut p = start + 1;
    if len == 7 {
        let Some(&extra) = input.get(p) else {
            return Ok(Step::NeedMore);
        };
        len += extra as usize;
        p += 1;
    }
    let Some(&lo) = input.get(p) else {
        return Ok(Step::NeedMore);
    };
    p += 1;
    let dist = (((ctrl & 0x1f) as usize) << 8) + lo as usize + 1;
    let n = len + 2;
    if dist > out.len() {
        return Err(format!(
            "back reference {dist} bytes behind an output of {} (compressed byte {pos})",
            out_base + out.len() as u64
        ));
    }
    if out.len() + n > limit {
        return Err(format!(
            "output would exceed the declared length (back reference at compressed byte {pos})"
        ));
    }
    let from = out.len() - dist;
    if dist >= n {
        out.extend_from_within(from..from + n);
    } else {
        for i in 0..n {
            let b = out[from + i];
            out.push(b);
        }
    }
    *ip = p;
    Ok(Step::Done)
}

/// A streaming decompressor for one large LZF string: feed compressed bytes as they arrive, take
/// decompressed output in pieces. Memory: the pending output plus an 8 KiB window.
#[derive(Debug)]
pub(crate) struct LzfStream {
    /// Recent output: `window[..emitted]` is history kept for back references, the rest is
    /// output not yet taken.
    window: Vec<u8>,
    emitted: usize,
    /// Total output produced so far.
    produced: u64,
    /// Total compressed input used so far.
    used: u64,
    ulen: u64,
}

impl LzfStream {
    pub(crate) fn new(ulen: u64) -> Self {
        LzfStream {
            window: Vec::new(),
            emitted: 0,
            produced: 0,
            used: 0,
            ulen,
        }
    }

    /// Bytes produced and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.window.len() - self.emitted
    }

    /// Runs whole instructions from `input` while less than `want` bytes are pending; returns how
    /// many input bytes were used (an instruction cut by the end of `input` is left for later).
    pub(crate) fn feed(&mut self, input: &[u8], want: usize) -> Result<usize, String> {
        let mut ip = 0usize;
        while ip < input.len() && self.pending() < want {
            let before = self.window.len();
            let room = usize::try_from(self.ulen - self.produced).unwrap_or(usize::MAX);
            let limit = before.saturating_add(room);
            let out_base = self.produced - before as u64;
            match step(input, &mut ip, &mut self.window, limit, self.used, out_base)? {
                Step::Done => self.produced += (self.window.len() - before) as u64,
                Step::NeedMore => break,
            }
        }
        self.used += ip as u64;
        Ok(ip)
    }

    /// Takes up to `max` pending bytes, and trims history the back references can no longer
    /// reach.
    pub(crate) fn take(&mut self, max: usize) -> Vec<u8> {
        let n = self.pending().min(max);
        let out = self.window[self.emitted..self.emitted + n].to_vec();
        self.emitted += n;
        if self.emitted > 4 * MAX_DISTANCE {
            let cut = self.emitted - MAX_DISTANCE;
            self.window.drain(..cut);
            self.emitted -= cut;
        }
        out
    }

    /// The declared decompressed length.
    pub(crate) fn ulen(&self) -> u64 {
        self.ulen
    }

    /// Total bytes produced.
    pub(crate) fn produced(&self) -> u64 {
        self.produced
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literal_and_backref() {
        // "abcabcabc": literal "abc" (ctrl 2), then back ref len 6 (ctrl>>5 = 4), dist 3.
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(decompress(&input, 9).unwrap(), b"abcabcabc");
        assert!(decompress(&input, 8).is_err());
        assert!(decompress(&input, 10).is_err());
    }

    #[test]
    fn long_backref_and_errors() {
        // literal "x", then len 7 + 10 = 17 → copy 19 bytes at distance 1.
        let input = [0, b'x', (7 << 5), 10, 0];
        assert_eq!(decompress(&input, 20).unwrap(), vec![b'x'; 20]);
        // Back reference before the start of output.
        assert!(decompress(&[(1 << 5), 5], 3).is_err());
        // Cut instruction.
        assert!(decompress(&[5, b'a'], 6).is_err());
        // Hostile ulen does not allocate: capacity is bounded by input.
        assert!(decompress(&[0, b'a'], usize::MAX).is_err());
    }

    #[test]
    fn streaming_matches_one_shot() {
        let input = [2, b'a', b'b', b'c', (4 << 5), 2, 0, b'z', (7 << 5), 200, 0];
        let whole = decompress(&input, 9 + 1 + 209).unwrap();
        for piece in 1..input.len() {
            let mut s = LzfStream::new(whole.len() as u64);
            let mut got = Vec::new();
            let mut pos = 0;
            let mut avail = 0;
            while got.len() < whole.len() {
                avail = (avail + piece).min(input.len());
                let used = s.feed(&input[pos..avail], 7).unwrap();
                pos += used;
                got.extend(s.take(7));
            }
            assert_eq!(got, whole);
            assert_eq!(s.produced(), whole.len() as u64);
        }
    }
}
