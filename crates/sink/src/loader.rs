//! [`RdbLoader`]: RDB decoder events into a [`Sink`], with `RESTORE` when the target can load
//! the source's payloads and native commands otherwise.

use redis_sync_rdb::Event;
use redis_sync_rdb::rewrite::{Mode, Rewriter, TargetVersion};

use crate::Sink;
use crate::engine::Input;
use crate::error::{Error, show_bytes};

/// Feeds a full sync into a [`Sink`]: for each key, [`Sink::key_begin`], the commands that
/// `redis_sync_rdb::rewrite` makes of it, [`Sink::key_end`].
///
/// At the file header it picks the rewriter's mode: [`Mode::Restore`] (the decoder's `DUMP`
/// payloads, sent as `RESTORE … REPLACE ABSTTL`) when the target can load the file's RDB
/// version ([`TargetInfo::can_load`](crate::TargetInfo::can_load)), [`Mode::Commands`]
/// otherwise. Build the decoder with restore payloads on and a payload limit no larger than
/// [`Sink::max_value_bytes`], and a chunk budget below it: bigger values then come as chunked
/// commands, through a temporary key.
#[derive(Debug)]
pub struct RdbLoader {
    rewriter: Option<Rewriter>,
    out: Vec<Vec<bytes::Bytes>>,
    force: Option<Mode>,
    key: Option<(u64, bytes::Bytes)>,
    skipped: u64,
    hold_limit: Option<usize>,
    /// Keys' inputs not yet handed to the sink: a full copy of small keys would otherwise
    /// cost three channel operations (and engine wake-ups) per key.
    pending: Vec<Input>,
    pending_bytes: usize,
}

/// Inputs held before one hand-over, and their most bytes (a big key's chunks go on their way
/// at once, so memory stays bounded by the sink's queue).
const PENDING_INPUTS: usize = 384;
const PENDING_BYTES: usize = 256 << 10;

impl Default for RdbLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl RdbLoader {
    /// A loader that chooses `RESTORE` or commands by version.
    pub fn new() -> Self {
        RdbLoader {
            rewriter: None,
            out: Vec::new(),
            force: None,
            key: None,
            skipped: 0,
            hold_limit: None,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// Most bytes of one key's native commands held while waiting to learn whether its
    /// `RESTORE` payload comes (default: the target's largest argument, at most 64 MiB). Keep
    /// it at the decoder's payload limit so a big key costs no more memory than that.
    pub fn hold_limit(mut self, bytes: usize) -> Self {
        self.hold_limit = Some(bytes);
        self
    }

    /// Always use native commands (`restore = false`) or always `RESTORE`.
    pub fn force_restore(mut self, restore: bool) -> Self {
        self.force = Some(if restore {
            Mode::Restore
        } else {
            Mode::Commands
        });
        self
    }

    /// The mode chosen at the header (`None` before it).
    pub fn uses_restore(&self) -> Option<bool> {
        self.rewriter
            .as_ref()
            .map(|_| self.force == Some(Mode::Restore))
    }

    fn target_version(sink: &Sink) -> TargetVersion {
        let t = sink.target();
        let (major, minor) = (
            u16::try_from(t.version.0).unwrap_or(u16::MAX),
            u16::try_from(t.version.1).unwrap_or(u16::MAX),
        );
        if t.flavor == "valkey" {
            TargetVersion::valkey(major, minor)
        } else {
            TargetVersion::redis(major, minor)
        }
    }

    /// Handles one decoder event. `now_ms` (Unix milliseconds) decides which keys are
    /// already expired (they are skipped).
    pub async fn handle_event(
        &mut self,
        sink: &Sink,
        event: &Event,
        now_ms: i64,
    ) -> Result<(), Error> {
        if let Event::Header(h) = event {
            let version = h.version;
            let loadable = sink
                .target()
                .can_load(u16::try_from(version).unwrap_or(u16::MAX));
            let mode = self.force.unwrap_or(if loadable {
                Mode::Restore
            } else {
                Mode::Commands
            });
            self.force = Some(mode);
            self.rewriter = Some(
                Rewriter::builder()
                    .target(Self::target_version(sink))
                    .mode(mode)
                    .restore_hold_limit(
                        usize::try_from(sink.max_value_bytes())
                            .unwrap_or(usize::MAX)
                            .min(self.hold_limit.unwrap_or(64 << 20)),
                    )
                    .build(),
            );
            return Ok(());
        }
        if self.rewriter.is_none() {
            return Err(Error::Convert("RDB events before the header".into()));
        }
        if let Event::Key(k) = event {
            self.key = Some((k.db, k.key.clone()));
            let db = u32::try_from(k.db).unwrap_or(u32::MAX);
            self.push(Input::KeyBegin {
                db,
                key: k.key.clone(),
            });
        }
        let Some(rw) = &mut self.rewriter else {
            return Err(Error::Convert("RDB events before the header".into()));
        };
        if let Err(e) = rw.handle_event(event, now_ms, &mut self.out) {
            let key = self
                .key
                .as_ref()
                .map(|(db, k)| format!("{} (db {db})", show_bytes(k, 100)))
                .unwrap_or_default();
            return Err(Error::Convert(format!("key {key}: {e}")));
        }
        for args in std::mem::take(&mut self.out) {
            self.push(Input::Command { args, offset: None });
        }
        if let Event::KeyEnd { .. } = event {
            self.key = None;
            self.push(Input::KeyEnd { offset: None });
        }
        if self.pending.len() >= PENDING_INPUTS
            || self.pending_bytes >= PENDING_BYTES
            || matches!(event, Event::End(_))
        {
            self.flush(sink).await?;
        }
        Ok(())
    }

    fn push(&mut self, input: Input) {
        self.pending_bytes += input.bytes();
        self.pending.push(input);
    }

    /// Hands what this loader holds to the sink. The RDB's `End` event does it; call it
    /// before [`Sink::flush`] when the events stop before the end (a stopped copy).
    pub async fn flush(&mut self, sink: &Sink) -> Result<(), Error> {
        self.pending_bytes = 0;
        sink.send_many(std::mem::take(&mut self.pending)).await
    }

    /// Keys the rewriter skipped so far (expired).
    pub fn skipped(&self) -> u64 {
        self.skipped
            + self
                .rewriter
                .as_ref()
                .map_or(0, |r| r.stats().expired_skipped)
    }
}
