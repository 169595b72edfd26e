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
    pub(crate) aof: Option<PathBuf>,
}

const CHUNK: usize = 256 << 10;

fn io_error(path: &Path, during: &str, e: std::io::Error) -> Error {
    Error::Protocol {
        addr: path.display().to_string(),
        during: during.into(),
        message: e.to_string(),
    }
}

/// A replication ID for the files: 40 hex digits from their lengths and the RDB's ends.
async fn history_id(files: &Files) -> Result<String, Error> {
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
    let snapshot = files.rdb.as_ref().or(files.aof.as_ref());
    if let Some(path) = snapshot {
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
        if files.rdb.is_some() && len >= 8 {
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
    let replid = history_id(files).await?;
    let metrics = &shared.metrics;
    let resume = config
        .resume
        .clone()
        .filter(|p| p.replid == replid && files.aof.is_some());
    let (mut file, base, db) = match resume {
        Some(point) => {
            // Continue in the AOF where the consumer stopped.
            let path = files.aof.as_ref().ok_or_else(|| Error::Protocol {
                addr: "file".into(),
                during: "resuming".into(),
                message: "no AOF".into(),
            })?;
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| io_error(path, "opening the AOF", e))?;
            f.seek(std::io::SeekFrom::Start(point.offset))
                .await
                .map_err(|e| io_error(path, "seeking in the AOF", e))?;
            metrics.add_partial_sync();
            {
                let mut p = shared.progress.lock();
                p.replid = Some(replid.clone());
                p.streaming = true;
                p.base_offset = point.offset;
                p.base_db = point.db;
            }
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
            (Some((f, path.clone())), point.offset, point.db)
        }
        None => match snapshot(config, files, &replid, tx, shared).await {
            Ok(r) => r,
            Err(End::Gone) => return Ok(()),
            Err(End::Failed(e)) => return Err(e),
        },
    };
    let Some((f, path)) = file.as_mut() else {
        return Ok(());
    };
    match commands(f, path, base, db, tx, shared).await {
        Ok(()) | Err(End::Gone) => Ok(()),
        Err(End::Failed(e)) => Err(e),
    }
}

type Opened = (Option<(tokio::fs::File, PathBuf)>, u64, u32);

/// The snapshot: the RDB file, or the AOF's RDB preamble. Returns the AOF positioned after
/// it, the offset there and the db.
async fn snapshot(
    config: &Config,
    files: &Files,
    replid: &str,
    tx: &Out,
    shared: &Shared,
) -> Result<Opened, End> {
    let metrics = &shared.metrics;
    metrics.add_full_sync();
    {
        let mut p = shared.progress.lock();
        p.replid = Some(replid.to_owned());
        p.streaming = false;
        p.base_offset = 0;
        p.base_db = 0;
    }
    let mut aof = match &files.aof {
        Some(path) => Some((
            tokio::fs::File::open(path)
                .await
                .map_err(|e| io_error(path, "opening the AOF", e))?,
            path.clone(),
        )),
        None => None,
    };
    // The AOF starts with an RDB (a preamble) when it begins with "REDIS".
    let mut preamble = false;
    if files.rdb.is_none()
        && let Some((f, path)) = aof.as_mut()
    {
        let mut magic = [0u8; 5];
        let n = f
            .read(&mut magic)
            .await
            .map_err(|e| io_error(path, "reading the AOF", e))?;
        preamble = n == 5 && &magic == b"REDIS";
        f.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| io_error(path, "reading the AOF", e))?;
    }
    let rdb_len = match (&files.rdb, preamble) {
        (Some(path), _) => tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, "reading the RDB's size", e))?
            .len(),
        _ => 0,
    };
    send(
        tx,
        ReplicaEvent::FullResync {
            replid: replid.to_owned(),
            offset: 0,
            rdb_size: (files.rdb.is_some()).then_some(rdb_len),
            forced: false,
        },
    )
    .await?;
    metrics.rdb_start(files.rdb.is_some().then_some(rdb_len));
    let mut decoded = 0u64;
    if files.rdb.is_some() || preamble {
        let mut builder = DecoderBuilder::new();
        if config.rdb_restore_payloads {
            builder = builder.restore_payloads(config.rdb_restore_limit);
        }
        let mut rdb = builder.build();
        let (mut f, path) = match &files.rdb {
            Some(path) => (
                tokio::fs::File::open(path)
                    .await
                    .map_err(|e| io_error(path, "opening the RDB", e))?,
                path.clone(),
            ),
            None => {
                let Some((f, path)) = aof.as_mut() else {
                    return Err(End::Gone);
                };
                (
                    f.try_clone()
                        .await
                        .map_err(|e| io_error(path, "reading the AOF", e))?,
                    path.clone(),
                )
            }
        };
        let rdb_error = |rdb: &redis_sync_rdb::Decoder, source| Error::Rdb {
            addr: path.display().to_string(),
            payload_offset: rdb.offset(),
            source,
        };
        let mut buf = vec![0u8; CHUNK];
        while !rdb.is_done() {
            // A preamble: hand the decoder no byte past the RDB's end, so that the AOF's
            // commands start right after it.
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| io_error(&path, "reading the RDB", e))?;
            if n == 0 {
                rdb.handle_eof();
            } else {
                rdb.handle_bytes(&buf[..n]);
            }
            metrics.set_rdb_bytes(rdb.offset());
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
    }
    metrics.rdb_end();
    // With a preamble the commands start after the RDB's bytes.
    let base = if preamble { decoded } else { 0 };
    if let Some((f, path)) = aof.as_mut() {
        f.seek(std::io::SeekFrom::Start(base))
            .await
            .map_err(|e| io_error(path, "seeking in the AOF", e))?;
    }
    {
        let mut p = shared.progress.lock();
        p.streaming = true;
        p.base_offset = base;
    }
    metrics.stream_start(0, base);
    send(
        tx,
        ReplicaEvent::RdbDone {
            offset: base,
            rdb_bytes: decoded,
        },
    )
    .await?;
    Ok((aof, base, 0))
}

/// The AOF's commands from offset `base` (its byte position) to its end.
async fn commands(
    f: &mut tokio::fs::File,
    path: &Path,
    base: u64,
    db: u32,
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
    loop {
        loop {
            // `#TS:…` and other annotations: one line, not a command.
            if buf.first() == Some(&b'#') {
                match buf.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        let _ = buf.split_to(nl + 1);
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
            let item = match stream.poll(&mut buf) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(StreamError::Resp(source)) => {
                    return Err(Error::Resp {
                        addr: path.display().to_string(),
                        offset: stream.offset() + skipped,
                        source: Box::new(source),
                    }
                    .into());
                }
                Err(StreamError::BadSelect(message)) => {
                    return Err(Error::BadCommand {
                        addr: path.display().to_string(),
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
        if eof {
            if !buf.is_empty() {
                // A command cut short by the end of the file (a crash while it was appended):
                // Redis ignores such a tail too (`aof-load-truncated`).
                tracing::warn!(
                    file = %path.display(),
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
        let n = f
            .read_buf(&mut buf)
            .await
            .map_err(|e| io_error(path, "reading the AOF", e))?;
        metrics.add_read(n as u64);
        eof = n == 0;
    }
}
