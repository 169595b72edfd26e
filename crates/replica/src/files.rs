//! A replica whose "source" is a backup on disk: an RDB file, an AOF, or both (an RDB and the
//! AOF of the writes after it, as `redis-sync sync --tee-rdb --tee-aof` writes them; or one
//! AOF with an RDB preamble). It hands out the same events as a live source, so a consumer
//! restores a backup with the code that syncs a server, checkpoints included.
//!
//! Offsets: the snapshot is at offset 0 of its own history when it is a separate RDB file,
//! and every command of the AOF ends at its byte position in that file (an RDB preamble's
//! bytes included), so a resume point is a place in the AOF and a restore stopped half-way
//! continues where it stopped. The history's replication ID is made from the files' contents
//! (lengths, and the RDB's first and last bytes: its checksum), so a checkpoint of another
//! backup is never taken for this one's. AOF annotation lines (`#TS:…`, Redis 7.0+) are
//! skipped.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use redis_sync_rdb::DecoderBuilder;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::Config;
use crate::error::Error;
use crate::event::ReplicaEvent;
use crate::replica::{End, Out, Shared, drain_rdb, send};
use crate::stream::{CommandStream, StreamError, StreamItem};

/// The files a file replica reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Files {
    pub(crate) rdb: Option<PathBuf>,
    /// An AOF file, or a directory of Redis 7's multi-part AOF (its manifest says the parts).
    pub(crate) aof: Option<PathBuf>,
    /// Stop at the first `#TS:` annotation later than this (Unix seconds).
    pub(crate) until: Option<u64>,
}

/// What the files are once a multi-part directory is read: the snapshot RDB, and the AOF as
/// its parts in order (their concatenation is the command stream; offsets count across them).
#[derive(Debug, Clone)]
struct Layout {
    /// The snapshot: one RDB, or several (a directory of per-shard RDBs), loaded one after
    /// the other as one snapshot.
    rdb: Vec<PathBuf>,
    parts: Vec<PathBuf>,
}

/// `--source-rdb`: a file, or a directory whose `*.rdb` files (by name) make the snapshot.
fn rdb_files(rdb: Option<&PathBuf>) -> Result<Vec<PathBuf>, Error> {
    let Some(path) = rdb else {
        return Ok(Vec::new());
    };
    if !path.is_dir() {
        return Ok(vec![path.clone()]);
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| io_error(path, "listing the RDB directory", e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rdb"))
        .collect();
    all.sort();
    if all.is_empty() {
        return Err(Error::Protocol {
            addr: path.display().to_string(),
            during: "listing the RDB directory".into(),
            message: "no *.rdb file in it".into(),
        });
    }
    Ok(all)
}

/// Reads a multi-part AOF directory's manifest (Redis 7.0+, `aof.c`): lines `file <name> seq
/// <n> type <b|h|i>`; the base (`b`) and the increments (`i`) in order, history (`h`) skipped.
fn layout(files: &Files) -> Result<Layout, Error> {
    let Some(aof) = &files.aof else {
        return Ok(Layout {
            rdb: rdb_files(files.rdb.as_ref())?,
            parts: Vec::new(),
        });
    };
    if !aof.is_dir() {
        return Ok(Layout {
            rdb: rdb_files(files.rdb.as_ref())?,
            parts: vec![aof.clone()],
        });
    }
    let bad = |message: String| Error::Protocol {
        addr: aof.display().to_string(),
        during: "reading the AOF manifest".into(),
        message,
    };
    let manifest = std::fs::read_dir(aof)
        .map_err(|e| io_error(aof, "listing the AOF directory", e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "manifest"))
        .ok_or_else(|| bad("no *.manifest in the directory".into()))?;
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| io_error(&manifest, "reading the AOF manifest", e))?;
    let (mut base, mut incr) = (None, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |k: &str| words.windows(2).find(|w| w[0] == k).map(|w| w[1]);
        let (Some(name), Some(kind)) = (field("file"), field("type")) else {
            return Err(bad(format!("a line without file and type: {line:?}")));
        };
        // A name with a path in it would read outside the directory.
        if name.contains('/') || name.contains('"') {
            return Err(bad(format!("an unsupported file name {name:?}")));
        }
        let path = aof.join(name);
        match kind {
            "b" => base = Some(path),
            "i" => incr.push(path),
            "h" => {}
            other => return Err(bad(format!("an unknown type {other:?} in {line:?}"))),
        }
    }
    let mut parts = Vec::new();
    let mut rdb = rdb_files(files.rdb.as_ref())?;
    match base {
        Some(b) if b.extension().is_some_and(|x| x == "rdb") && rdb.is_empty() => rdb = vec![b],
        Some(b) => parts.push(b),
        None => {}
    }
    parts.extend(incr);
    Ok(Layout { rdb, parts })
}

/// The AOF's parts read as one stream: a position counts across them.
#[derive(Debug)]
struct Chain {
    parts: Vec<(PathBuf, u64)>,
    /// The part being read and its file.
    at: usize,
    file: Option<tokio::fs::File>,
}

impl Chain {
    async fn open(parts: &[PathBuf]) -> Result<Chain, Error> {
        let mut with_len = Vec::new();
        for p in parts {
            let len = tokio::fs::metadata(p)
                .await
                .map_err(|e| io_error(p, "reading the AOF's size", e))?
                .len();
            with_len.push((p.clone(), len));
        }
        let mut c = Chain {
            parts: with_len,
            at: 0,
            file: None,
        };
        c.seek(0).await?;
        Ok(c)
    }

    fn path(&self) -> &Path {
        self.parts
            .get(self.at)
            .or(self.parts.last())
            .map_or(Path::new("AOF"), |(p, _)| p.as_path())
    }

    /// To position `pos` of the whole.
    async fn seek(&mut self, mut pos: u64) -> Result<(), Error> {
        self.at = 0;
        while self.at + 1 < self.parts.len() && pos >= self.parts[self.at].1 {
            pos -= self.parts[self.at].1;
            self.at += 1;
        }
        self.file = None;
        if let Some((path, _)) = self.parts.get(self.at) {
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| io_error(path, "opening the AOF", e))?;
            f.seek(std::io::SeekFrom::Start(pos))
                .await
                .map_err(|e| io_error(path, "seeking in the AOF", e))?;
            self.file = Some(f);
        }
        Ok(())
    }

    /// Reads into `buf`; 0 only at the end of the last part.
    async fn read_buf(&mut self, buf: &mut BytesMut) -> Result<usize, Error> {
        loop {
            let Some(f) = self.file.as_mut() else {
                return Ok(0);
            };
            let n = f
                .read_buf(buf)
                .await
                .map_err(|e| io_error(&self.parts[self.at].0, "reading the AOF", e))?;
            if n > 0 || self.at + 1 >= self.parts.len() {
                return Ok(n);
            }
            self.at += 1;
            let path = self.parts[self.at].0.clone();
            self.file = Some(
                tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| io_error(&path, "opening the AOF", e))?,
            );
        }
    }
}

const CHUNK: usize = 256 << 10;

fn io_error(path: &Path, during: &str, e: std::io::Error) -> Error {
    Error::Protocol {
        addr: path.display().to_string(),
        during: during.into(),
        message: e.to_string(),
    }
}

/// A replication ID for the files: 40 hex digits from their lengths and the snapshot's ends.
async fn history_id(layout: &Layout) -> Result<String, Error> {
    // FNV-1a, twice with different seeds: stable across builds (unlike std's hasher).
    let mut h = [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4u64];
    let mut feed = |bytes: &[u8]| {
        for (i, hash) in h.iter_mut().enumerate() {
            for b in bytes {
                *hash ^= u64::from(*b) ^ (i as u64);
                *hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    };
    let snapshots: Vec<&PathBuf> = if layout.rdb.is_empty() {
        layout.parts.first().into_iter().collect()
    } else {
        layout.rdb.iter().collect()
    };
    for path in snapshots {
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error(path, "opening the file", e))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| io_error(path, "reading the file's size", e))?
            .len();
        feed(&len.to_le_bytes());
        let mut head = vec![0u8; 4096.min(len as usize)];
        f.read_exact(&mut head)
            .await
            .map_err(|e| io_error(path, "reading the file", e))?;
        feed(&head);
        if !layout.rdb.is_empty() && len >= 8 {
            // An RDB's last 8 bytes are its CRC-64.
            let mut tail = [0u8; 8];
            f.seek(std::io::SeekFrom::End(-8))
                .await
                .map_err(|e| io_error(path, "reading the file", e))?;
            f.read_exact(&mut tail)
                .await
                .map_err(|e| io_error(path, "reading the file", e))?;
            feed(&tail);
        }
    }
    let a = h[0];
    let b = h[1];
    Ok(format!("{a:016x}{b:016x}{:08x}", (a ^ b) as u32))
}

/// Hands out the files' events; `Ok` at their end.
pub(crate) async fn drive(
    config: &Config,
    files: &Files,
    tx: &Out,
    shared: &Shared,
) -> Result<(), Error> {
    let layout = layout(files)?;
    let replid = history_id(&layout).await?;
    let metrics = &shared.metrics;
    let resume = config
        .resume
        .clone()
        .filter(|p| p.replid == replid && !layout.parts.is_empty());
    let (mut aof, base, db) = match resume {
        Some(point) => {
            // Continue in the AOF where the consumer stopped.
            let mut chain = Chain::open(&layout.parts).await?;
            chain.seek(point.offset).await?;
            metrics.add_partial_sync();
            shared
                .progress
                .continued(replid.clone(), point.offset, point.db);
            metrics.stream_start(0, point.offset);
            if send(
                tx,
                ReplicaEvent::Continued {
                    replid,
                    offset: point.offset,
                },
            )
            .await
            .is_err()
            {
                return Ok(());
            }
            (Some(chain), point.offset, point.db)
        }
        None => match snapshot(config, &layout, &replid, tx, shared).await {
            Ok(r) => r,
            Err(End::Gone) => return Ok(()),
            Err(End::Failed(e)) => return Err(e),
        },
    };
    let Some(chain) = aof.as_mut() else {
        return Ok(());
    };
    match commands(chain, base, db, files.until, tx, shared).await {
        Ok(()) | Err(End::Gone) => Ok(()),
        Err(End::Failed(e)) => Err(e),
    }
}

type Opened = (Option<Chain>, u64, u32);

/// The snapshot: the RDB file, or the AOF's RDB preamble. Returns the AOF positioned after
/// it, the offset there and the db.
async fn snapshot(
    config: &Config,
    layout: &Layout,
    replid: &str,
    tx: &Out,
    shared: &Shared,
) -> Result<Opened, End> {
    let metrics = &shared.metrics;
    metrics.add_full_sync();
    shared.progress.full_sync(Some(replid.to_owned()), 0);
    // The AOF starts with an RDB (a preamble) when its first part begins with "REDIS".
    let preamble_in = match (layout.rdb.is_empty(), layout.parts.first()) {
        (true, Some(first)) => {
            let mut f = tokio::fs::File::open(first)
                .await
                .map_err(|e| io_error(first, "opening the AOF", e))?;
            let mut magic = [0u8; 5];
            let n = f
                .read(&mut magic)
                .await
                .map_err(|e| io_error(first, "reading the AOF", e))?;
            (n == 5 && &magic == b"REDIS").then(|| first.clone())
        }
        _ => None,
    };
    let mut rdb_len = None;
    for path in &layout.rdb {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, "reading the RDB's size", e))?
            .len();
        rdb_len = Some(rdb_len.unwrap_or(0) + len);
    }
    send(
        tx,
        ReplicaEvent::FullResync {
            replid: replid.to_owned(),
            offset: 0,
            rdb_size: rdb_len,
            forced: false,
        },
    )
    .await?;
    metrics.rdb_start(rdb_len);
    let mut decoded = 0u64;
    let mut total = 0u64;
    let snapshot_files: Vec<&PathBuf> = layout.rdb.iter().chain(preamble_in.as_ref()).collect();
    for path in snapshot_files {
        let mut builder = DecoderBuilder::new();
        if config.rdb_restore_payloads {
            builder = builder.restore_payloads(config.rdb_restore_limit);
        }
        let mut rdb = builder.build();
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error(path, "opening the RDB", e))?;
        let rdb_error = |rdb: &redis_sync_rdb::Decoder, source| Error::Rdb {
            addr: path.display().to_string(),
            payload_offset: rdb.offset(),
            source,
        };
        let mut buf = vec![0u8; CHUNK];
        while !rdb.is_done() {
            // With a preamble the decoder may be handed bytes past the RDB's end: it stops at
            // its end marker, and the commands are read from there.
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| io_error(path, "reading the RDB", e))?;
            if n == 0 {
                rdb.handle_eof();
            } else {
                rdb.handle_bytes(&buf[..n]);
            }
            metrics.set_rdb_bytes(total + rdb.offset());
            drain_rdb(&mut rdb, tx, metrics, None)
                .await
                .map_err(|e| match e {
                    End::Failed(Error::Rdb { source, .. }) => rdb_error(&rdb, source).into(),
                    other => other,
                })?;
            if n == 0 && !rdb.is_done() {
                return Err(Error::Protocol {
                    addr: path.display().to_string(),
                    during: "the RDB".into(),
                    message: format!(
                        "the file ended at byte offset {} before the RDB's end marker",
                        rdb.offset()
                    ),
                }
                .into());
            }
            tx.flush().await?;
        }
        decoded = rdb.offset();
        total += decoded;
    }
    metrics.rdb_end();
    // With a preamble the commands start after the RDB's bytes.
    let base = if preamble_in.is_some() { decoded } else { 0 };
    let aof = if layout.parts.is_empty() {
        None
    } else {
        let mut chain = Chain::open(&layout.parts).await?;
        chain.seek(base).await?;
        Some(chain)
    };
    shared.progress.snapshot_done(base);
    metrics.stream_start(0, base);
    send(
        tx,
        ReplicaEvent::RdbDone {
            offset: base,
            rdb_bytes: total,
        },
    )
    .await?;
    Ok((aof, base, 0))
}

/// `#TS:<unix seconds>` (Redis 7.0+ with `aof-timestamp-enabled`), else `None`.
fn annotation_time(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line.strip_prefix(b"#TS:")?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The AOF's commands from offset `base` (its byte position) to its end, or to the first
/// `#TS:` annotation after `until`.
async fn commands(
    chain: &mut Chain,
    base: u64,
    db: u32,
    until: Option<u64>,
    tx: &Out,
    shared: &Shared,
) -> Result<(), End> {
    let metrics = &shared.metrics;
    let mut stream = CommandStream::new(base, db);
    // Annotation bytes skipped so far: a command's offset is its stream offset plus these.
    let mut skipped = 0u64;
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut told = base;
    let mut eof = false;
    let mut stop = false;
    loop {
        loop {
            // `#TS:…` and other annotations: one line, not a command.
            if buf.first() == Some(&b'#') {
                match buf.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        let line = buf.split_to(nl + 1);
                        if let (Some(t), Some(limit)) = (annotation_time(&line), until)
                            && t > limit
                        {
                            // The point in time is reached: the stream ends before this line
                            // (a restart with the same limit ends here again).
                            tracing::info!(
                                "AOF: stopping at the annotation #TS:{t}, after --until-time \
                                 {limit}, at byte offset {}",
                                stream.offset() + skipped
                            );
                            stop = true;
                            break;
                        }
                        skipped += nl as u64 + 1;
                        continue;
                    }
                    None if eof => {
                        buf.clear();
                        break;
                    }
                    None => break,
                }
            }
            let path = chain.path().display().to_string();
            let item = match stream.poll(&mut buf) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(StreamError::Resp(source)) => {
                    return Err(Error::Resp {
                        addr: path,
                        offset: stream.offset() + skipped,
                        source: Box::new(source),
                    }
                    .into());
                }
                Err(StreamError::BadSelect(message)) => {
                    return Err(Error::BadCommand {
                        addr: path,
                        offset: stream.offset() + skipped,
                        message,
                    }
                    .into());
                }
            };
            let offset = stream.offset() + skipped;
            metrics.set_offset(offset);
            if let StreamItem::Command {
                db, args, wire_len, ..
            } = item
            {
                told = offset;
                metrics.add_command();
                send(
                    tx,
                    ReplicaEvent::Command {
                        db,
                        args,
                        offset,
                        wire_len,
                    },
                )
                .await?;
            }
        }
        if eof || stop {
            if !buf.is_empty() && !stop {
                // A command cut short by the end of the file (a crash while it was appended):
                // Redis ignores such a tail too (`aof-load-truncated`).
                tracing::warn!(
                    file = %chain.path().display(),
                    "the AOF ends inside a command at byte offset {}: its last {} bytes are \
                     not applied",
                    stream.offset() + skipped,
                    buf.len()
                );
            }
            let end = stream.offset() + skipped;
            if end > told {
                send(
                    tx,
                    ReplicaEvent::Position {
                        offset: end,
                        db: stream.db(),
                    },
                )
                .await?;
            }
            tx.flush().await?;
            return Ok(());
        }
        tx.flush().await?;
        buf.reserve(CHUNK);
        let n = chain.read_buf(&mut buf).await?;
        metrics.add_read(n as u64);
        eof = n == 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn a_manifest_gives_the_base_and_the_increments_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "a.aof.manifest",
            b"file a.aof.1.base.rdb seq 1 type b\nfile a.aof.1.incr.aof seq 1 type h\n\
              file a.aof.2.incr.aof seq 2 type i\nfile a.aof.3.incr.aof seq 3 type i\n",
        );
        let files = Files {
            rdb: None,
            aof: Some(d.to_path_buf()),
            until: None,
        };
        let l = layout(&files).expect("layout");
        assert_eq!(l.rdb, [d.join("a.aof.1.base.rdb")]);
        assert_eq!(
            l.parts,
            [d.join("a.aof.2.incr.aof"), d.join("a.aof.3.incr.aof")]
        );
        // An AOF base (no RDB preamble setting) is the first part.
        write(
            d,
            "a.aof.manifest",
            b"file a.aof.1.base.aof seq 1 type b\nfile a.aof.2.incr.aof seq 2 type i\n",
        );
        let l = layout(&files).expect("layout");
        assert!(l.rdb.is_empty());
        assert_eq!(
            l.parts,
            [d.join("a.aof.1.base.aof"), d.join("a.aof.2.incr.aof")]
        );
        // Names that leave the directory are refused.
        write(d, "a.aof.manifest", b"file ../x seq 1 type i\n");
        assert!(layout(&files).is_err());
    }

    #[tokio::test]
    async fn a_chain_reads_its_parts_as_one_and_seeks_across_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = [
            write(dir.path(), "1", b"abc"),
            write(dir.path(), "2", b""),
            write(dir.path(), "3", b"defg"),
        ];
        for start in 0..=7u64 {
            let mut c = Chain::open(&parts).await.expect("open");
            c.seek(start).await.expect("seek");
            let mut buf = BytesMut::new();
            while c.read_buf(&mut buf).await.expect("read") > 0 {}
            assert_eq!(&buf[..], &b"abcdefg"[start as usize..], "from {start}");
        }
    }
}
