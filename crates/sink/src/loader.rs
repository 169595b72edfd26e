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
    /// The current key's `KeyBegin`, held until its commands show whether it joins an `MSET`.
    begin: Option<Input>,
    /// Merge runs of small strings into `MSET` (see [`Sink::merges_strings`]).
    merge: bool,
    /// The `MSET` being gathered (name, then key and value pairs).
    mset: Vec<bytes::Bytes>,
    mset_bytes: usize,
}

/// Most keys and bytes of one merged `MSET`: the target runs it in one go, so keep it short.
const MSET_KEYS: usize = 128;
const MSET_BYTES: usize = 64 << 10;
/// Largest value merged (bigger strings go on their own).
const MSET_VALUE: usize = 4 << 10;

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
            begin: None,
            merge: false,
            mset: Vec::new(),
            mset_bytes: 0,
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
            self.merge = sink.merges_strings() && mode == Mode::Restore;
            self.rewriter = Some(
                Rewriter::builder()
                    .target(Self::target_version(sink))
                    .mode(mode)
                    .plain_strings(self.merge)
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
            self.begin = Some(Input::KeyBegin {
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
        let key_end = matches!(event, Event::KeyEnd { .. });
        let out = std::mem::take(&mut self.out);
        // A key that is one plain `SET key value` joins the `MSET` being gathered, as long as
        // nothing of it has gone out yet (its `KeyBegin` is still held).
        let mergeable = self.merge
            && key_end
            && self.begin.is_some()
            && out.len() == 1
            && out[0].len() == 3
            && out[0][2].len() <= MSET_VALUE
            && out[0][0].eq_ignore_ascii_case(b"SET");
        if mergeable {
            self.begin = None;
            self.key = None;
            let [_, key, value]: [bytes::Bytes; 3] = out
                .into_iter()
                .next()
                .and_then(|c| c.try_into().ok())
                .ok_or_else(|| Error::Convert("a SET of three arguments".into()))?;
            if self.mset.is_empty() {
                self.mset.push(bytes::Bytes::from_static(b"MSET"));
            }
            self.mset_bytes += key.len() + value.len();
            self.mset.push(key);
            self.mset.push(value);
            if self.mset.len() / 2 >= MSET_KEYS || self.mset_bytes >= MSET_BYTES {
                self.end_mset();
            }
        } else if !out.is_empty() || key_end {
            // Order: the gathered MSET (keys before this one, or a SELECT), then this key.
            self.end_mset();
            if let Some(begin) = self.begin.take() {
                self.push(begin);
            }
            for args in out {
                self.push(Input::Command { args, offset: None });
            }
            if key_end {
                self.key = None;
                self.push(Input::KeyEnd { offset: None });
            }
        }
        if matches!(event, Event::End(_)) {
            self.end_mset();
        }
        if self.pending.len() >= PENDING_INPUTS
            || self.pending_bytes >= PENDING_BYTES
            || matches!(event, Event::End(_))
        {
            self.flush(sink).await?;
        }
        Ok(())
    }

    fn end_mset(&mut self) {
        if !self.mset.is_empty() {
            self.mset_bytes = 0;
            let args = std::mem::take(&mut self.mset);
            self.push(Input::Command { args, offset: None });
        }
    }

    fn push(&mut self, input: Input) {
        self.pending_bytes += input.bytes();
        self.pending.push(input);
    }

    /// Hands what this loader holds to the sink. The RDB's `End` event does it; call it
    /// before [`Sink::flush`] when the events stop before the end (a stopped copy).
    pub async fn flush(&mut self, sink: &Sink) -> Result<(), Error> {
        self.end_mset();
        let bytes = std::mem::take(&mut self.pending_bytes);
        let inputs = std::mem::replace(&mut self.pending, Vec::with_capacity(PENDING_INPUTS));
        sink.send_many(inputs, bytes).await
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
