//! [`SnapshotKeys`]: the set of keys a full copy wrote, kept on disk so that the sweep after
//! a copy redone over an earlier one needs no memory per key (100 M keys would otherwise
//! cost gigabytes).
//!
//! Each key is a 128-bit hash of `(target db, key)` (two SipHash rounds; a false "present"
//! needs a 128-bit collision). Hashes gather in memory in runs of [`RUN`] (8 MiB), each run is
//! sorted and appended to an anonymous temporary file; [`finish`](SnapshotKeys::finish) merges
//! the runs into one sorted file and keeps the first hash of every block of [`BLOCK`] hashes in
//! memory (1/256 of the set), so a look-up reads one 4 KiB block.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Hashes per sorted run held in memory (16 bytes each: 8 MiB).
const RUN: usize = 1 << 19;
/// Hashes per block of the merged file (one look-up reads one block: 4 KiB).
const BLOCK: usize = 256;
/// Hashes read ahead per run while merging.
const MERGE_BUF: usize = 4096;

const ENTRY: usize = 16;

/// See the [module docs](self).
#[derive(Debug)]
pub struct SnapshotKeys {
    run: Vec<u128>,
    runs_file: File,
    /// `(first entry, entries)` of each sorted run in `runs_file`.
    runs: Vec<(u64, u64)>,
    merged: Option<Merged>,
    inserted: u64,
}

#[derive(Debug)]
struct Merged {
    file: File,
    len: u64,
    /// The first hash of each block.
    index: Vec<u128>,
}

fn hash(db: u32, key: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    (db, key).hash(&mut a);
    let mut b = DefaultHasher::new();
    (key, db, 0x5eed_u16).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

fn read_entries(file: &mut File, at: u64, n: usize, out: &mut Vec<u128>) -> io::Result<()> {
    let mut buf = vec![0u8; n * ENTRY];
    file.seek(SeekFrom::Start(at * ENTRY as u64))?;
    file.read_exact(&mut buf)?;
    out.clear();
    out.extend(buf.chunks_exact(ENTRY).map(|c| {
        let mut b = [0u8; ENTRY];
        b.copy_from_slice(c);
        u128::from_le_bytes(b)
    }));
    Ok(())
}

impl SnapshotKeys {
    /// An empty set whose file lives in `dir` (the system's temporary directory by default).
    pub fn new(dir: Option<&Path>) -> io::Result<SnapshotKeys> {
        let runs_file = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(SnapshotKeys {
            run: Vec::new(),
            runs_file,
            runs: Vec::new(),
            merged: None,
            inserted: 0,
        })
    }

    /// Adds `key` of target db `db`.
    pub fn insert(&mut self, db: u32, key: &[u8]) -> io::Result<()> {
        self.run.push(hash(db, key));
        self.inserted += 1;
        if self.run.len() >= RUN {
            self.spill()?;
        }
        Ok(())
    }

    /// Keys inserted.
    pub fn len(&self) -> u64 {
        self.inserted
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        self.run.sort_unstable();
        let start = self.runs.last().map_or(0, |(s, n)| s + n);
        self.runs_file.seek(SeekFrom::Start(start * ENTRY as u64))?;
        let mut w = BufWriter::new(&mut self.runs_file);
        for h in &self.run {
            w.write_all(&h.to_le_bytes())?;
        }
        w.flush()?;
        drop(w);
        self.runs.push((start, self.run.len() as u64));
        self.run = Vec::new();
        Ok(())
    }

    /// Sorts everything inserted into one file; call once, after the last insert.
    pub fn finish(&mut self) -> io::Result<()> {
        self.spill()?;
        let mut out = tempfile::tempfile()?;
        let mut index = Vec::new();
        let mut len = 0u64;
        {
            let mut w = BufWriter::new(&mut out);
            // Per run: its next position, what is left, and a read-ahead buffer.
            let mut cursors: Vec<(u64, u64, Vec<u128>, usize)> = self
                .runs
                .iter()
                .map(|&(s, n)| (s, n, Vec::new(), 0))
                .collect();
            let mut heap = BinaryHeap::new();
            for (i, c) in cursors.iter_mut().enumerate() {
                if let Some(h) = next(&mut self.runs_file, c)? {
                    heap.push(Reverse((h, i)));
                }
            }
            let mut last = None;
            while let Some(Reverse((h, i))) = heap.pop() {
                if last != Some(h) {
                    if len.is_multiple_of(BLOCK as u64) {
                        index.push(h);
                    }
                    w.write_all(&h.to_le_bytes())?;
                    len += 1;
                    last = Some(h);
                }
                if let Some(n) = next(&mut self.runs_file, &mut cursors[i])? {
                    heap.push(Reverse((n, i)));
                }
            }
            w.flush()?;
        }
        self.runs_file.set_len(0)?;
        self.runs.clear();
        self.merged = Some(Merged {
            file: out,
            len,
            index,
        });
        Ok(())
    }

    /// True when `key` of db `db` was inserted. Call after [`finish`](Self::finish).
    pub fn contains(&mut self, db: u32, key: &[u8]) -> io::Result<bool> {
        let Some(m) = &mut self.merged else {
            return Err(io::Error::other("SnapshotKeys::contains before finish"));
        };
        let h = hash(db, key);
        let block = m.index.partition_point(|&f| f <= h);
        if block == 0 {
            return Ok(false);
        }
        let start = (block - 1) as u64 * BLOCK as u64;
        let n = (m.len - start).min(BLOCK as u64) as usize;
        let mut entries = Vec::with_capacity(n);
        read_entries(&mut m.file, start, n, &mut entries)?;
        Ok(entries.binary_search(&h).is_ok())
    }
}

/// The next hash of a run while merging (`cursor` = position, left, buffer, buffer index).
fn next(file: &mut File, cursor: &mut (u64, u64, Vec<u128>, usize)) -> io::Result<Option<u128>> {
    let (pos, left, buf, i) = cursor;
    if *i >= buf.len() {
        if *left == 0 {
            return Ok(None);
        }
        let n = (*left).min(MERGE_BUF as u64) as usize;
        read_entries(file, *pos, n, buf)?;
        *pos += n as u64;
        *left -= n as u64;
        *i = 0;
    }
    let h = buf[*i];
    *i += 1;
    Ok(Some(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_across_runs_and_blocks() {
        let mut s = SnapshotKeys::new(None).expect("temp file");
        // More than one run and many blocks; the same key in another db is another key.
        let n = RUN as u64 + 3 * BLOCK as u64 + 7;
        for i in 0..n {
            s.insert((i % 3) as u32, format!("key:{i}").as_bytes())
                .expect("insert");
        }
        s.insert(0, b"key:0").expect("a duplicate");
        s.finish().expect("finish");
        assert_eq!(s.len(), n + 1);
        for i in (0..n).step_by(997) {
            let db = (i % 3) as u32;
            let key = format!("key:{i}");
            assert!(s.contains(db, key.as_bytes()).expect("read"), "{key}");
            assert!(
                !s.contains(db + 1, key.as_bytes()).expect("read"),
                "{key} db"
            );
        }
        assert!(!s.contains(0, b"absent").expect("read"));
        assert!(
            s.contains(0, format!("key:{}", n - 1 - (n - 1) % 3).as_bytes())
                .expect("read")
        );
    }

    #[test]
    fn empty() {
        let mut s = SnapshotKeys::new(None).expect("temp file");
        s.finish().expect("finish");
        assert!(!s.contains(0, b"k").expect("read"));
    }
}
