//! The buffer between the socket reader and the decoder: memory first, then a file.
//!
//! A replica that reads slowly makes the source buffer the stream and cut the link when its
//! `client-output-buffer-limit replica` is reached. So the reader task pushes every chunk it
//! reads here and never waits for the consumer: chunks queue in memory up to a limit, then go
//! to an anonymous temporary file (up to its own limit). The decoder takes chunks back in
//! order. While the file holds data every new chunk goes to the file too, so order is kept;
//! once the file is drained it is truncated and memory is used again.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::SpoolConfig;
use crate::error::Error;
use crate::metrics::Metrics;

/// Size of the pieces read back from the file.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
struct Inner {
    mem: VecDeque<Bytes>,
    mem_bytes: usize,
    file: Option<File>,
    /// Bytes written to the file since it was last emptied.
    written: u64,
    /// Bytes of the file already handed out.
    read: u64,
    /// Set by the reader when it stops: why (after the queued data has been consumed).
    closed: Option<Error>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    notify: Notify,
    config: SpoolConfig,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` inconsistent in a way that
        // matters more than losing the link; keep going with the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self) -> PathBuf {
        self.config.dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// The reader's end.
#[derive(Debug)]
pub(crate) struct SpoolWriter {
    shared: Arc<Shared>,
}

/// The decoder's end.
#[derive(Debug)]
pub(crate) struct SpoolReader {
    shared: Arc<Shared>,
}

/// A new spool.
pub(crate) fn spool(config: SpoolConfig, metrics: Arc<Metrics>) -> (SpoolWriter, SpoolReader) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            mem: VecDeque::new(),
            mem_bytes: 0,
            file: None,
            written: 0,
            read: 0,
            closed: None,
        }),
        notify: Notify::new(),
        config,
        metrics,
    });
    (
        SpoolWriter {
            shared: shared.clone(),
        },
        SpoolReader { shared },
    )
}

impl SpoolWriter {
    /// Queues a chunk; never waits for the consumer. Fails when the spool file cannot be
    /// written or is full.
    pub(crate) fn push(&self, chunk: Bytes) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        let s = &self.shared;
        let mut inner = s.lock();
        let spilling = inner.written > inner.read;
        if !spilling && inner.mem_bytes + chunk.len() <= s.config.memory_limit {
            inner.mem_bytes += chunk.len();
            inner.mem.push_back(chunk);
            s.metrics.set_queued(inner.mem_bytes as u64);
        } else {
            let backlog = inner.written - inner.read;
            if backlog + chunk.len() as u64 > s.config.file_limit {
                return Err(Error::SpoolFull {
                    dir: s.dir(),
                    limit: s.config.file_limit,
                });
            }
            let dir = s.dir();
            if inner.file.is_none() {
                let f = tempfile::tempfile_in(&dir).map_err(|source| Error::Spool {
                    dir: dir.clone(),
                    source,
                })?;
                inner.file = Some(f);
            }
            let at = inner.written;
            if let Some(f) = inner.file.as_mut() {
                f.seek(SeekFrom::Start(at))
                    .and_then(|_| f.write_all(&chunk))
                    .map_err(|source| Error::Spool { dir, source })?;
            }
            inner.written += chunk.len() as u64;
            s.metrics.set_spooled(inner.written - inner.read);
        }
        drop(inner);
        s.notify.notify_one();
        Ok(())
    }

    /// The reader stopped: the decoder gets `reason` after the queued bytes.
    pub(crate) fn close(&self, reason: Error) {
        let mut inner = self.shared.lock();
        if inner.closed.is_none() {
            inner.closed = Some(reason);
        }
        drop(inner);
        self.shared.notify.notify_one();
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        if inner.closed.is_none() {
            inner.closed = Some(Error::Closed {
                addr: String::new(),
                during: "the replication link (reader stopped)".into(),
                hint: String::new(),
            });
        }
        drop(inner);
        self.shared.notify.notify_one();
    }
}

impl SpoolReader {
    /// The next chunk in order; after the reader closed and everything was taken, the reason
    /// it closed.
    pub(crate) async fn next(&mut self) -> Result<Bytes, Error> {
        loop {
            let notified = self.shared.notify.notified();
            if let Some(r) = self.try_next() {
                return r;
            }
            notified.await;
        }
    }

    fn try_next(&self) -> Option<Result<Bytes, Error>> {
        let s = &self.shared;
        let mut inner = s.lock();
        if let Some(chunk) = inner.mem.pop_front() {
            inner.mem_bytes -= chunk.len();
            s.metrics.set_queued(inner.mem_bytes as u64);
            return Some(Ok(chunk));
        }
        if inner.written > inner.read {
            let n = (inner.written - inner.read).min(READ_CHUNK as u64) as usize;
            let at = inner.read;
            let mut buf = vec![0u8; n];
            let r = match inner.file.as_mut() {
                Some(f) => f
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| f.read_exact(&mut buf)),
                None => Err(std::io::Error::other("spool file missing")),
            };
            if let Err(source) = r {
                return Some(Err(Error::Spool {
                    dir: s.dir(),
                    source,
                }));
            }
            inner.read += n as u64;
            if inner.read == inner.written {
                // Drained: start over at the beginning, and let memory take chunks again.
                inner.read = 0;
                inner.written = 0;
                if let Some(f) = inner.file.as_mut() {
                    let _ = f.set_len(0);
                }
            }
            s.metrics.set_spooled(inner.written - inner.read);
            return Some(Ok(Bytes::from(buf)));
        }
        inner.closed.take().map(Err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(mem: usize, file: u64) -> SpoolConfig {
        SpoolConfig {
            memory_limit: mem,
            dir: None,
            file_limit: file,
        }
    }

    #[tokio::test]
    async fn keeps_order_across_memory_and_file() {
        // 10 bytes of memory: most chunks go to the file, and taking some back in the middle
        // drains the file so memory is used again.
        let (w, mut r) = spool(config(10, 1 << 20), Arc::new(Metrics::default()));
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..200u32 {
            let chunk = Bytes::from(format!("chunk-{i};"));
            expected.extend_from_slice(&chunk);
            w.push(chunk).unwrap();
            if i % 7 == 0 {
                got.extend_from_slice(&r.next().await.unwrap());
            }
            if i % 50 == 0 {
                while let Some(Ok(b)) = r.try_next() {
                    got.extend_from_slice(&b);
                }
            }
        }
        drop(w);
        while let Ok(b) = r.next().await {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn limit_is_a_clear_error() {
        let (w, _r) = spool(config(4, 8), Arc::new(Metrics::default()));
        w.push(Bytes::from_static(b"1234")).unwrap();
        w.push(Bytes::from_static(b"5678")).unwrap();
        w.push(Bytes::from_static(b"9abc")).unwrap();
        let e = w.push(Bytes::from_static(b"d")).unwrap_err();
        assert!(matches!(e, Error::SpoolFull { limit: 8, .. }), "{e}");
        assert!(e.to_string().contains("raise the spool limit"));
    }

    #[tokio::test]
    async fn bad_dir_is_a_clear_error() {
        let cfg = SpoolConfig {
            memory_limit: 1,
            dir: Some(PathBuf::from("/nonexistent/redis-sync-spool")),
            file_limit: 100,
        };
        let (w, _r) = spool(cfg, Arc::new(Metrics::default()));
        let e = w.push(Bytes::from_static(b"12")).unwrap_err();
        assert!(matches!(e, Error::Spool { .. }), "{e}");
    }
}
