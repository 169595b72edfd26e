//! `--tee-aof FILE`: the source's command stream appended to an AOF as it arrives, so that
//! with `--tee-rdb` a migration leaves a restorable backup: the snapshot, then every write
//! after it. Redis loads the pair natively (7.0+: a multi-part AOF directory whose base is
//! the RDB and whose increment is this file; earlier: the two concatenated, an RDB-preamble
//! AOF), and `redis-sync sync --source-rdb` replays it.
//!
//! The file holds each command once, across stops and crashes. A restart resumes the stream at
//! the applied position `X` and everything after `X` comes again, so the file is first cut
//! back to where `X` is in it. To know that, a small index beside it (`FILE.idx`) maps stream
//! offsets to file lengths: a header line `redis-sync-tee-aof 1 <replid> <offset>` (the
//! snapshot's offset is byte 0), then a line `<offset> <length>` whenever the mapping shifts.
//! Most frames are re-encoded byte for byte (the replication stream is RESP arrays of bulk
//! strings), so it shifts only where the file and the stream differ: the source's `PING`s and
//! `REPLCONF GETACK`s are not written, and `SELECT`s are written where this file needs them.
//!
//! Both files are written before the target commits what they cover (the flush in
//! [`Run::commit`](super::event_loop::Run)), so the position a restart finds in the target is
//! always in the file. They are fsynced once a second and at exit, like `appendfsync
//! everysec`. Every command of the source is written, whatever the filters keep: it is a
//! backup of the source.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};

const HEADER: &str = "redis-sync-tee-aof 1";

/// The AOF being written and its index.
#[derive(Debug)]
pub(super) struct TeeAof {
    path: PathBuf,
    aof: BufWriter<File>,
    idx: BufWriter<File>,
    /// Bytes in the AOF (written or buffered).
    len: u64,
    /// The stream offset the file has reached (the end of the last frame seen).
    end: u64,
    /// The db the file's commands run in (`None`: a `SELECT` goes before the next).
    db: Option<u32>,
    buf: BytesMut,
}

fn index_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".idx");
    PathBuf::from(p)
}

impl TeeAof {
    /// A new, empty AOF for the stream after a snapshot at `offset` (a full copy starts).
    pub(super) fn create(path: &Path, replid: &str, offset: u64) -> anyhow::Result<TeeAof> {
        let aof = File::create(path)
            .with_context(|| format!("--tee-aof: cannot create {}", path.display()))?;
        let idx_path = index_path(path);
        let mut idx = File::create(&idx_path)
            .with_context(|| format!("--tee-aof: cannot create {}", idx_path.display()))?;
        writeln!(idx, "{HEADER} {replid} {offset}")
            .with_context(|| format!("--tee-aof: writing {}", idx_path.display()))?;
        Ok(TeeAof {
            path: path.to_owned(),
            aof: BufWriter::with_capacity(256 << 10, aof),
            idx: BufWriter::new(idx),
            len: 0,
            end: offset,
            db: None,
            buf: BytesMut::new(),
        })
    }

    /// The AOF of an earlier run, cut back to stream offset `offset` (where the stream
    /// resumes). An error when the file cannot be continued exactly there (no index, an
    /// offset outside it): the caller then starts anew.
    pub(super) fn resume(path: &Path, offset: u64) -> anyhow::Result<TeeAof> {
        let idx_path = index_path(path);
        let file = File::open(&idx_path)
            .with_context(|| format!("no index {} beside it", idx_path.display()))?;
        let (start, marks) = read_index(BufReader::new(file))
            .with_context(|| format!("reading {}", idx_path.display()))?;
        if offset < start {
            bail!("it begins at offset {start}, after the resume point {offset}");
        }
        // The last mark at or before the offset; from there the file follows the stream byte
        // for byte.
        let (o, f) = marks
            .iter()
            .rev()
            .find(|(o, _)| *o <= offset)
            .copied()
            .unwrap_or((start, 0));
        let cut = f + (offset - o);
        let aof = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let have = aof.metadata()?.len();
        if cut > have {
            bail!(
                "it holds the stream up to offset {} only, before the resume point {offset}",
                o + have.saturating_sub(f)
            );
        }
        aof.set_len(cut)?;
        let mut aof = BufWriter::with_capacity(256 << 10, aof);
        std::io::Seek::seek(&mut aof, std::io::SeekFrom::End(0))?;
        // The index keeps its lines up to the cut, and says where the file now is.
        let kept: Vec<(u64, u64)> = marks.into_iter().filter(|(o, _)| *o <= offset).collect();
        let header = {
            let text = std::fs::read_to_string(&idx_path)?;
            text.lines().next().unwrap_or_default().to_owned()
        };
        // Rewritten beside and renamed over: a crash here leaves the old index or the new
        // one, never a torn one (which would make the next restart start the file anew).
        let mut tmp = idx_path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            writeln!(w, "{header}")?;
            for (o, f) in kept {
                writeln!(w, "{o} {f}")?;
            }
            writeln!(w, "{offset} {cut}")?;
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        std::fs::rename(&tmp, &idx_path)?;
        let idx = BufWriter::new(OpenOptions::new().append(true).open(&idx_path)?);
        Ok(TeeAof {
            path: path.to_owned(),
            aof,
            idx,
            len: cut,
            end: offset,
            // The file's db at the cut is not known here: select before the next command.
            db: None,
            buf: BytesMut::new(),
        })
    }

    /// The stream offset the file has reached.
    pub(super) fn end(&self) -> u64 {
        self.end
    }

    /// A command of the stream, in `db`, ending at stream offset `offset`.
    pub(super) fn command(&mut self, db: u32, args: &[Bytes], offset: u64) -> anyhow::Result<()> {
        if offset <= self.end {
            return Ok(()); // seen already (a replayed frame)
        }
        self.buf.clear();
        if self.db != Some(db) {
            redis_sync_resp::encode_command(
                &[&b"SELECT"[..], db.to_string().as_bytes()],
                &mut self.buf,
            );
            self.db = Some(db);
        }
        redis_sync_resp::encode_command(args, &mut self.buf);
        self.aof.write_all(&self.buf).context(self.failed())?;
        let written = self.buf.len() as u64;
        let shifted = written != offset - self.end;
        self.len += written;
        self.end = offset;
        if shifted {
            self.mark()?;
        }
        Ok(())
    }

    /// Frames with nothing to apply (`PING`, `REPLCONF GETACK`, `SELECT`) up to `offset`:
    /// not written, the index notes the shift.
    pub(super) fn position(&mut self, offset: u64) -> anyhow::Result<()> {
        if offset > self.end {
            self.end = offset;
            self.mark()?;
        }
        Ok(())
    }

    fn mark(&mut self) -> anyhow::Result<()> {
        writeln!(self.idx, "{} {}", self.end, self.len).context(self.failed())
    }

    /// Hands what is buffered to the OS: before the target commits a position, the file must
    /// hold the stream up to it.
    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        self.aof.flush().context(self.failed())?;
        self.idx.flush().context(self.failed())
    }

    /// [`flush`](Self::flush), then onto the disk.
    pub(super) fn sync(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.aof.get_ref().sync_data().context(self.failed())?;
        self.idx.get_ref().sync_data().context(self.failed())
    }

    fn failed(&self) -> String {
        format!("--tee-aof: writing {}", self.path.display())
    }
}

/// The index: the snapshot's offset and the marks `(offset, length)` in order.
fn read_index(r: impl BufRead) -> anyhow::Result<(u64, Vec<(u64, u64)>)> {
    let mut lines = r.lines();
    let header = lines.next().context("empty")??;
    let start = header
        .strip_prefix(HEADER)
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|o| o.parse::<u64>().ok())
        .with_context(|| format!("not a redis-sync AOF index (first line {header:?})"))?;
    let mut marks = Vec::new();
    for line in lines {
        let line = line?;
        let mut it = line.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(o)), Some(Ok(f))) => marks.push((o, f)),
            // A line torn by a crash ends the index: what follows is not known.
            _ => break,
        }
    }
    Ok((start, marks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn enc(a: &[&str]) -> u64 {
        let mut b = BytesMut::new();
        redis_sync_resp::encode_command(a, &mut b);
        b.len() as u64
    }

    /// The keys of the `INCR`s in an AOF (a test reads its own writes: RESP arrays of bulks).
    fn incr_keys(aof: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(aof);
        let mut lines = text.split("\r\n");
        let mut keys = Vec::new();
        while let Some(head) = lines.next() {
            let Some(n) = head.strip_prefix('*') else {
                break;
            };
            let n: usize = n.parse().expect("count");
            let words: Vec<&str> = (0..n).filter_map(|_| lines.nth(1)).collect();
            if words.first() == Some(&"INCR") {
                keys.push(words[1].to_owned());
            }
        }
        keys
    }

    /// A stream of commands with PINGs between, cut back at every frame end: the file then
    /// holds exactly the commands up to that point (and a SELECT before the next one).
    #[test]
    fn a_resume_cuts_the_file_at_the_resume_point_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.aof");
        let start = 1000;
        let mut t = TeeAof::create(&path, "r", start).expect("create");
        let mut off = start;
        let mut ends = vec![(off, Vec::<String>::new())];
        let mut written: Vec<String> = Vec::new();
        for i in 0..20 {
            let cmd = ["INCR", &format!("k{i}")];
            off += enc(&cmd);
            t.command(0, &args(&cmd), off).expect("cmd");
            written.push(format!("k{i}"));
            ends.push((off, written.clone()));
            if i % 3 == 0 {
                off += enc(&["PING"]);
                t.position(off).expect("ping");
                ends.push((off, written.clone()));
            }
        }
        t.sync().expect("sync");
        drop(t);
        let full = std::fs::read(&path).expect("read");
        for (cut_at, expected) in ends.iter().rev() {
            // Restore the whole file and index each time, then cut.
            std::fs::write(&path, &full).expect("write");
            let mut t = TeeAof::resume(&path, *cut_at).expect("resume");
            t.flush().expect("flush");
            let text = std::fs::read(&path).expect("read");
            let keys: Vec<String> = incr_keys(&text);
            assert_eq!(&keys, expected, "cut at {cut_at}");
        }
        // Outside the file: refused (the caller starts anew).
        assert!(TeeAof::resume(&path, start - 1).is_err());
    }
}
