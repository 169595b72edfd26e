//! The dead-letter file: every command skipped under error policy `skip`, with why.
//!
//! Two formats ([`DeadLetterFormat`]):
//!
//! - **RESP** (default): each skipped command is three RESP commands, so the file can be
//!   replayed as is with `redis-cli --pipe < dead.resp` once the cause is fixed:
//!   ```text
//!   ECHO "redis-sync dead-letter {"db":0,"offset":1234,"class":"data","error":"WRONGTYPE …"}"
//!   SELECT 0
//!   <the command>
//!   ```
//!   The `ECHO` line is the comment: harmless when replayed, and `grep -a 'redis-sync
//!   dead-letter'` lists every record's metadata (offset is `null` when the command had none).
//! - **JSON lines**: one object per skipped command,
//!   `{"db":0,"offset":1234,"class":"data","error":"WRONGTYPE …","command":["SET","k","v"]}`,
//!   where each argument is a JSON string when it is UTF-8 and `{"hex":"00ff…"}` otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use redis_sync_resp::encode_command;

use crate::classify::ErrorClass;
use crate::error::Error;

/// How the dead-letter file is written; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterFormat {
    /// `ECHO <metadata>`, `SELECT db`, the command: replayable with `redis-cli --pipe`.
    #[default]
    Resp,
    /// One JSON object per line.
    JsonLines,
}

/// A JSON value for one argument: a string when UTF-8, else `{"hex": "…"}`.
pub(crate) fn json_arg(arg: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(arg) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => {
            let hex: String = arg.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "hex": hex })
        }
    }
}

#[derive(Debug)]
pub(crate) struct DeadLetter {
    path: PathBuf,
    format: DeadLetterFormat,
    file: std::io::BufWriter<std::fs::File>,
}

impl DeadLetter {
    pub(crate) fn create(path: &Path, format: DeadLetterFormat) -> Result<DeadLetter, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::file(path, e))?;
        Ok(DeadLetter {
            path: path.to_path_buf(),
            format,
            file: std::io::BufWriter::new(file),
        })
    }

    pub(crate) fn record(
        &mut self,
        db: u32,
        offset: Option<u64>,
        class: ErrorClass,
        error: &str,
        args: &[Bytes],
    ) -> Result<(), Error> {
        let meta = serde_json::json!({
            "db": db,
            "offset": offset,
            "class": class.name(),
            "error": error,
        });
        let result = match self.format {
            DeadLetterFormat::Resp => {
                let mut out = BytesMut::new();
                let echo = format!("redis-sync dead-letter {meta}");
                encode_command(&[b"ECHO".as_slice(), echo.as_bytes()], &mut out);
                encode_command(&[b"SELECT".as_slice(), db.to_string().as_bytes()], &mut out);
                encode_command(args, &mut out);
                self.file.write_all(&out)
            }
            DeadLetterFormat::JsonLines => {
                let mut obj = meta;
                obj["command"] = args.iter().map(|a| json_arg(a)).collect();
                writeln!(self.file, "{obj}")
            }
        };
        // Out of the buffer at once: a record still in memory when the process is killed is
        // a command lost silently. Refused commands are rare, so this costs nothing.
        result
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::file(&self.path, e))
    }

    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(|e| Error::file(&self.path, e))
    }
}
