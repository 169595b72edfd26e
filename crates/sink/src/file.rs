//! [`FileSink`]: the commands the sink would send, written to a file instead.
//!
//! - [`FileFormat::Resp`]: the commands as RESP, `SELECT` included, exactly what an AOF holds
//!   (Redis's AOF is RESP commands with `SELECT` when the db changes): load it with
//!   `redis-cli --pipe < file.resp`, or place it as an appendonly file.
//! - [`FileFormat::JsonLines`]: one object per command,
//!   `{"db":0,"offset":1234,"command":["SET","k","v"]}` (arguments as in the
//!   [dead-letter file](crate::deadletter): a string when UTF-8, else `{"hex":"…"}`; `offset`
//!   is `null` when not given). `SELECT` is not written; it sets the `db` of what follows.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use redis_sync_resp::encode_command;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::deadletter::json_arg;
use crate::error::Error;

/// The format of a [`FileSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// RESP commands (an AOF; `redis-cli --pipe`).
    Resp,
    /// One JSON object per command.
    JsonLines,
}

/// Writes commands to a file.
///
/// - [`FileFormat::Resp`]: the commands as RESP, `SELECT` included, exactly what an AOF holds:
///   load it with `redis-cli --pipe < file.resp`, or place it as an appendonly file.
/// - [`FileFormat::JsonLines`]: one object per command,
///   `{"db":0,"offset":1234,"command":["SET","k","v"]}` (arguments as strings when UTF-8, else
///   `{"hex":"…"}`; `offset` is `null` when not given); `SELECT` only sets the `db` of what
///   follows.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    format: FileFormat,
    out: BufWriter<tokio::fs::File>,
    buf: BytesMut,
    db: u32,
    written: u64,
}

impl FileSink {
    /// Creates (or truncates) `path`.
    pub async fn create(path: impl AsRef<Path>, format: FileFormat) -> Result<FileSink, Error> {
        let path = path.as_ref().to_path_buf();
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::file(&path, e))?;
        Ok(FileSink {
            path,
            format,
            out: BufWriter::with_capacity(256 * 1024, file),
            buf: BytesMut::new(),
            db: 0,
            written: 0,
        })
    }

    /// Appends a command; `offset` is recorded in JSON lines.
    pub async fn write(&mut self, args: &[Bytes], offset: Option<u64>) -> Result<(), Error> {
        let is_select = args
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case(b"SELECT"));
        if is_select
            && let Some(db) = args
                .get(1)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
        {
            self.db = db;
        }
        self.buf.clear();
        match self.format {
            FileFormat::Resp => encode_command(args, &mut self.buf),
            FileFormat::JsonLines => {
                if is_select || args.is_empty() {
                    return Ok(());
                }
                let obj = serde_json::json!({
                    "db": self.db,
                    "offset": offset,
                    "command": args.iter().map(|a| json_arg(a)).collect::<Vec<_>>(),
                });
                self.buf.extend_from_slice(obj.to_string().as_bytes());
                self.buf.extend_from_slice(b"\n");
            }
        }
        self.out
            .write_all(&self.buf)
            .await
            .map_err(|e| Error::file(&self.path, e))?;
        self.written += 1;
        Ok(())
    }

    /// Commands written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes buffered bytes to the file.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.out
            .flush()
            .await
            .map_err(|e| Error::file(&self.path, e))
    }

    /// Flushes and closes the file (and syncs it to disk).
    pub async fn finish(mut self) -> Result<u64, Error> {
        self.flush().await?;
        self.out
            .get_mut()
            .sync_all()
            .await
            .map_err(|e| Error::file(&self.path, e))?;
        Ok(self.written)
    }
}
