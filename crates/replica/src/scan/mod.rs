//! The SCAN source: for servers that refuse `SYNC`/`PSYNC` (several managed services), the
//! keyspace is read with ordinary commands and handed out as the same events a replication
//! source gives, so everything after the replica (filters, the RESTORE-or-native loader,
//! progress, sweep, verify) is unchanged.
//!
//! - **Copy.** Per db of `INFO keyspace`: `SCAN cursor COUNT n`, and for each key `PTTL key`
//!   and `DUMP key`, pipelined (at most [`ScanOptions::pipeline`] keys in flight, the next
//!   `SCAN` page asked while the last page's keys are read). Each payload is framed as a key
//!   record of a synthetic RDB ([`record`]) and decoded by the same streaming decoder as a
//!   snapshot: `FullResync`, `Rdb` events, `RdbDone`. A payload streams through in pieces, so
//!   memory does not follow the value (until the RDB version is known from a first payload,
//!   which is read whole). A payload over [`ScanOptions::max_value`] stops the run and names
//!   the key.
//! - **Changes** ([`ScanOptions::notify`]). Keyspace notifications ([`notify`]) are subscribed
//!   to *before* the first `SCAN`; each notified key is read again (`PTTL`, `DUMP`) after the
//!   copy and handed out as a `Command`: `RESTORE key <abs ms> payload REPLACE ABSTTL`, or
//!   `DEL key` when it is gone (deleted, expired, evicted), with a synthetic offset that grows
//!   by each command's size. Without notifications the stream ends after the copy.
//!
//! What this cannot give, and the CLI says so: no replication offset, so no resume (each run is
//! a full copy) and no exactly-once stream; no point-in-time snapshot (a key is copied as it is
//! when read; one changed during the SCAN is right only once its notification is handled);
//! key level, not command level (a key written ten times is read once, at its latest value);
//! notifications are pub/sub, so a dropped subscription ends the run with an error.

mod conn;
mod notify;
mod record;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use redis_sync_rdb::{Decoder, DecoderBuilder};
use redis_sync_resp::Frame;

use crate::config::Config;
use crate::error::Error;
use crate::event::ReplicaEvent;
use crate::replica::{End, Out, Shared, drain_rdb, send};
use conn::{BulkHead, Conn, error_text, text};
use notify::{Previous, Watch};
use record::Payload;

/// How the SCAN source reads the source. Start from [`ScanOptions::default`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanOptions {
    /// `SCAN … COUNT` (a hint to the server: keys per page). Default 1000.
    pub count: u32,
    /// Keys whose `PTTL`/`DUMP` are in flight at once. Default 64: enough to hide the round
    /// trip, few enough that the source's output buffer for this client stays small.
    pub pipeline: usize,
    /// Largest `DUMP` payload accepted, in bytes (default 512 MiB, Redis's
    /// `proto-max-bulk-len`): a bigger one stops the run, naming the key. It bounds what is
    /// held in memory for one key (the first payload, and each key read again after a change).
    pub max_value: u64,
    /// Follow changes with keyspace notifications (else: one copy, then the stream ends).
    pub notify: bool,
    /// With `notify`: turn `notify-keyspace-events` on (`KA` added to what it holds) with
    /// `CONFIG SET` when it is not, and set it back when the run ends.
    pub enable_notify: bool,
    /// With `notify`: end the stream once no changed key has waited for
    /// [`IDLE_GRACE`] after the copy (`--until-caught-up`).
    pub until_idle: bool,
    /// With `notify`: most distinct changed keys waiting to be read again; past it the run
    /// stops (the source changes faster than it is read). Default 1,000,000.
    pub max_pending: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            count: 1000,
            pipeline: 64,
            max_value: 512 << 20,
            notify: false,
            enable_notify: false,
            until_idle: false,
            max_pending: 1_000_000,
        }
    }
}

/// With [`ScanOptions::until_idle`]: how long nothing must be waiting before the stream ends.
pub const IDLE_GRACE: Duration = Duration::from_millis(500);

/// Payload bytes handed to the decoder at a time.
const PIECE: u64 = 64 << 10;
/// RDB version of the synthetic file when the source has no key to learn it from: any
/// version reads an empty file.
const EMPTY_VERSION: u16 = 9;
/// A `PING` on the idle data connection this often, so a source's `timeout` does not close it.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Runs the SCAN source until it ends, fails or `shutdown` completes; then sets
/// `notify-keyspace-events` back if it was changed, and only then reports a failure.
pub(crate) async fn run(
    config: &Config,
    opts: &ScanOptions,
    tx: &Out,
    shared: &Shared,
    shutdown: impl Future<Output = ()>,
) {
    let previous = Mutex::new(None);
    let result = tokio::select! {
        r = drive(config, opts, tx, shared, &previous) => r,
        () = shutdown => Ok(()),
    };
    let previous = previous.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = previous {
        restore(config, &p).await;
    }
    if let Err(End::Failed(e)) = result {
        let _ = tx.push(Err(e)).await;
    }
    let _ = tx.flush().await;
}

/// Sets `notify-keyspace-events` back to what it was, on a connection of its own (the
/// subscription's may be the one that failed).
async fn restore(config: &Config, previous: &Previous) {
    let addr = &config.addr;
    let set = async {
        let mut c = Conn::open(config, "redis-sync-scan-restore", 1 << 20).await?;
        let r = c
            .call(
                &[
                    "CONFIG",
                    "SET",
                    "notify-keyspace-events",
                    previous.0.as_str(),
                ],
                "CONFIG SET",
            )
            .await?;
        match error_text(&r) {
            Some(e) => Err(Error::Refused {
                addr: addr.clone(),
                command: "CONFIG SET notify-keyspace-events".into(),
                message: e,
            }),
            None => Ok(()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), set).await {
        Ok(Ok(())) => tracing::info!(
            %addr,
            "notify-keyspace-events set back to {:?}",
            previous.0
        ),
        Ok(Err(e)) => tracing::warn!(
            %addr,
            "could not set notify-keyspace-events back to {:?} ({e}): run `CONFIG SET \
             notify-keyspace-events \"{}\"` on the source",
            previous.0,
            previous.0
        ),
        Err(_) => tracing::warn!(
            %addr,
            "no answer setting notify-keyspace-events back: run `CONFIG SET \
             notify-keyspace-events \"{}\"` on the source",
            previous.0
        ),
    }
}

async fn drive(
    config: &Config,
    opts: &ScanOptions,
    tx: &Out,
    shared: &Shared,
    previous: &Mutex<Option<Previous>>,
) -> Result<(), End> {
    let metrics = &shared.metrics;
    // Whole replies (a SCAN page, a key name in a notification) are bounded like values.
    let max_frame = opts.max_value.max(1 << 20);
    let mut conn = Conn::open(config, "redis-sync-scan", max_frame).await?;
    metrics.new_connection(0);
    let server = server_name(&mut conn).await?;
    send(
        tx,
        ReplicaEvent::Connected {
            addr: config.addr.clone(),
            server,
        },
    )
    .await?;
    // Subscribed before the first SCAN: every write from here on is named at least once.
    let watch = if opts.notify {
        Some(
            notify::start(
                config,
                opts.enable_notify,
                opts.max_pending,
                max_frame,
                previous,
            )
            .await?,
        )
    } else {
        None
    };
    let dbs = keyspace_dbs(&mut conn).await?;
    tracing::info!(
        addr = %config.addr,
        "SCAN source: copying db {dbs:?} with SCAN + DUMP ({}; no replication offset: this run is a \
         full copy)",
        if opts.notify {
            "then the keys keyspace notifications name"
        } else {
            "one-shot: changes during and after the copy are not followed"
        }
    );
    metrics.add_full_sync();
    shared.progress.full_sync(None, 0);
    send(
        tx,
        ReplicaEvent::FullResync {
            replid: run_id(&config.addr),
            offset: 0,
            rdb_size: None,
            forced: false,
        },
    )
    .await?;
    metrics.rdb_start(None);
    let mut copy = Copy::new(config);
    copy.functions = functions(&mut conn).await?;
    for db in dbs {
        copy.db(&mut conn, db, opts, tx, shared, watch.as_ref())
            .await?;
    }
    copy.finish(tx, shared).await?;
    metrics.rdb_end();
    shared.progress.snapshot_done(0);
    // No `stream_start`: its received offset counts socket bytes, and this stream's offsets
    // are the synthetic commands' sizes (`set_offset`).
    metrics.set_offset(0);
    send(
        tx,
        ReplicaEvent::RdbDone {
            offset: 0,
            rdb_bytes: copy.bytes,
        },
    )
    .await?;
    tx.flush().await?;
    let Some(watch) = watch else {
        return Ok(());
    };
    tracing::info!(
        "SCAN source: copy read ({} keys); {} notifications so far, {} changed keys to read again",
        copy.keys,
        watch.dirty.received(),
        watch.dirty.len()
    );
    changes(&mut conn, copy.conn_db, &watch, opts, tx, shared).await
}

/// `redis 7.2.4` / `valkey 9.1.2` from `INFO server`, when allowed.
async fn server_name(conn: &mut Conn) -> Result<Option<String>, Error> {
    let info = conn.call(&["INFO", "server"], "INFO server").await?;
    let Some(info) = text(&info) else {
        return Ok(None);
    };
    let field = |k: &str| redis_sync_resp::info_field(&info, k).map(str::to_string);
    Ok(match (field("valkey_version"), field("redis_version")) {
        (Some(v), _) => Some(format!("valkey {v}")),
        (None, Some(v)) => Some(format!("redis {v}")),
        _ => None,
    })
}

/// The dbs `INFO keyspace` lists (`db3:keys=…`); db 0 alone when it cannot be read.
async fn keyspace_dbs(conn: &mut Conn) -> Result<Vec<u32>, Error> {
    let info = conn.call(&["INFO", "keyspace"], "INFO keyspace").await?;
    let Some(info) = text(&info) else {
        tracing::warn!("INFO keyspace refused: copying db 0 only");
        return Ok(vec![0]);
    };
    let mut dbs: Vec<u32> = info
        .lines()
        .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect();
    dbs.sort_unstable();
    Ok(dbs)
}

/// The code of each function library (`FUNCTION LIST WITHCODE`, 7.0+; none before, or when
/// refused). Libraries loaded after this are not followed.
async fn functions(conn: &mut Conn) -> Result<Vec<Bytes>, Error> {
    let r = conn
        .call(&["FUNCTION", "LIST", "WITHCODE"], "FUNCTION LIST")
        .await?;
    let Frame::Array(libs) = r else {
        return Ok(Vec::new());
    };
    let mut codes = Vec::new();
    for lib in libs {
        let code = match &lib {
            Frame::Array(kv) => kv
                .chunks(2)
                .find(|p| p[0].as_bytes().is_some_and(|k| &k[..] == b"library_code"))
                .and_then(|p| p.get(1)?.as_bytes().cloned()),
            Frame::Map(kv) => kv
                .iter()
                .find(|(k, _)| k.as_bytes().is_some_and(|k| &k[..] == b"library_code"))
                .and_then(|(_, v)| v.as_bytes().cloned()),
            _ => None,
        };
        codes.extend(code);
    }
    Ok(codes)
}

/// A replication ID for this run: every run is a new history (nothing can resume it).
fn run_id(addr: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in addr.bytes().chain(nanos.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:016x}{nanos:024x}", h)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the pipeline waits for, in the order the replies come.
#[derive(Debug)]
enum Expect {
    Select(u32),
    Scan,
    /// `PTTL key` then `DUMP key`.
    Key(Bytes),
}

/// The copy: the synthetic RDB fed to one decoder, and the data connection's selected db.
struct Copy {
    decoder: Option<Decoder>,
    builder: DecoderBuilder,
    /// The RDB version of the payloads (from the first one).
    version: Option<u16>,
    /// The db of the last `SELECTDB` in the synthetic RDB.
    rdb_db: Option<u32>,
    /// The db selected on the data connection.
    conn_db: u32,
    bytes: u64,
    keys: u64,
    addr: String,
    /// Function libraries (7.0+), written right after the header.
    functions: Vec<Bytes>,
}

impl Copy {
    fn new(config: &Config) -> Copy {
        let mut builder = DecoderBuilder::new();
        if config.rdb_restore_payloads {
            builder = builder.restore_payloads(config.rdb_restore_limit);
        }
        Copy {
            decoder: None,
            builder,
            version: None,
            rdb_db: None,
            conn_db: 0,
            bytes: 0,
            keys: 0,
            addr: config.addr.clone(),
            functions: Vec::new(),
        }
    }

    /// Feeds synthetic RDB bytes and hands out the events they complete.
    async fn feed(&mut self, bytes: &[u8], tx: &Out, shared: &Shared) -> Result<(), End> {
        let version = self.version.unwrap_or(EMPTY_VERSION);
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => {
                let mut d = self.builder.clone().build();
                let mut header = record::header(version);
                for code in &self.functions {
                    record::function(code, &mut header);
                }
                d.handle_bytes(&header);
                self.bytes += header.len() as u64;
                self.decoder.insert(d)
            }
        };
        decoder.handle_bytes(bytes);
        self.bytes += bytes.len() as u64;
        shared.metrics.set_rdb_bytes(self.bytes);
        let at = decoder.offset();
        drain_rdb(decoder, tx, &shared.metrics, None)
            .await
            .map_err(|e| match e {
                End::Failed(Error::Rdb { source, .. }) => End::Failed(Error::Rdb {
                    addr: self.addr.clone(),
                    payload_offset: at,
                    source,
                }),
                other => other,
            })
    }

    /// Copies one db: SCAN pages and each key's PTTL and DUMP, pipelined.
    async fn db(
        &mut self,
        conn: &mut Conn,
        db: u32,
        opts: &ScanOptions,
        tx: &Out,
        shared: &Shared,
        watch: Option<&Watch>,
    ) -> Result<(), End> {
        let mut expect = VecDeque::new();
        if self.conn_db != db {
            conn.queue(&[b"SELECT".as_slice(), db.to_string().as_bytes()]);
            expect.push_back(Expect::Select(db));
            self.conn_db = db;
        }
        let count = opts.count.max(1).to_string();
        let depth = opts.pipeline.max(1);
        let mut cursor: Option<Bytes> = Some(Bytes::from_static(b"0"));
        let mut scan_out = false;
        let mut keys: VecDeque<Bytes> = VecDeque::new();
        let mut in_flight = 0usize;
        loop {
            if !scan_out
                && keys.len() < depth
                && let Some(c) = cursor.take()
            {
                conn.queue(&[b"SCAN".as_slice(), &c, b"COUNT", count.as_bytes()]);
                expect.push_back(Expect::Scan);
                scan_out = true;
            }
            // Refill by halves: one write for many keys.
            if in_flight <= depth / 2 {
                while in_flight < depth
                    && let Some(k) = keys.pop_front()
                {
                    conn.queue(&[b"PTTL".as_slice(), &k]);
                    conn.queue(&[b"DUMP".as_slice(), &k]);
                    expect.push_back(Expect::Key(k));
                    in_flight += 1;
                }
            }
            conn.flush().await?;
            let Some(next) = expect.pop_front() else {
                break;
            };
            if conn.buffered() == 0 {
                // The next reply means a wait: let the consumer have what is decoded.
                tx.flush().await?;
            }
            match next {
                Expect::Select(db) => select_reply(conn, db).await?,
                Expect::Scan => {
                    scan_out = false;
                    let (next, page) = scan_reply(conn).await?;
                    cursor = next;
                    keys.extend(page);
                    if let Some(e) = watch.and_then(|w| w.dirty.failure()) {
                        return Err(e.into());
                    }
                }
                Expect::Key(key) => {
                    in_flight -= 1;
                    self.key(conn, db, &key, opts, tx, shared).await?;
                    shared.metrics.add_read(conn.take_read());
                }
            }
        }
        Ok(())
    }

    /// One key's `PTTL` and `DUMP` replies, into a record of the synthetic RDB.
    async fn key(
        &mut self,
        conn: &mut Conn,
        db: u32,
        key: &Bytes,
        opts: &ScanOptions,
        tx: &Out,
        shared: &Shared,
    ) -> Result<(), End> {
        let pttl = pttl_reply(conn, key).await?;
        let Some(len) = dump_head(conn, key, opts.max_value).await? else {
            // Gone since the SCAN page (deleted or expired): nothing to copy.
            return Ok(());
        };
        let addr = conn.addr.clone();
        let bad = |message: String| Error::Protocol {
            addr: addr.clone(),
            during: format!("DUMP {}", show(key)),
            message,
        };
        let mut payload = Payload::new(len).ok_or_else(|| bad(format!("a {len}-byte payload")))?;
        let expire_ms = (pttl >= 0).then(|| now_ms().saturating_add(pttl));
        // Until the version is known the payload is held (its trailer says the version the
        // file header must carry); after that, it streams through.
        let mut held: Option<Vec<u8>> = self.version.is_none().then(Vec::new);
        let mut start = Vec::new();
        while payload.remaining() > 0 {
            let piece = conn
                .read_payload(payload.remaining().min(PIECE), "a DUMP reply")
                .await?;
            let split = payload.handle(&piece);
            if let Some(t) = split.type_byte {
                if self.rdb_db != Some(db) {
                    record::select_db(db, &mut start);
                    self.rdb_db = Some(db);
                }
                record::key_start(key, t, expire_ms, &mut start);
            }
            match &mut held {
                Some(h) => {
                    h.append(&mut start);
                    h.extend_from_slice(split.value);
                }
                None => {
                    if !start.is_empty() {
                        self.feed(&std::mem::take(&mut start), tx, shared).await?;
                    }
                    self.feed(split.value, tx, shared).await?;
                }
            }
        }
        conn.end_bulk("a DUMP reply").await?;
        let version = payload
            .finish()
            .map_err(|e| bad(format!("a damaged payload: {e}")))?;
        match self.version {
            None => self.version = Some(version),
            Some(v) if v != version => {
                return Err(bad(format!(
                    "RDB version {version}, after payloads of version {v}"
                ))
                .into());
            }
            Some(_) => {}
        }
        if let Some(h) = held {
            self.feed(&h, tx, shared).await?;
        }
        self.keys += 1;
        Ok(())
    }

    /// The end of the synthetic RDB (after a header, when no key gave one).
    async fn finish(&mut self, tx: &Out, shared: &Shared) -> Result<(), End> {
        let mut end = Vec::new();
        record::end(&mut end);
        self.feed(&end, tx, shared).await?;
        if self.decoder.as_ref().is_some_and(|d| !d.is_done()) {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                during: "the SCAN copy".into(),
                message: "the synthetic RDB did not end where expected".into(),
            }
            .into());
        }
        tx.flush().await?;
        Ok(())
    }
}

/// A key name for messages: its text, cut at 100 bytes.
fn show(key: &[u8]) -> String {
    let cut = &key[..key.len().min(100)];
    let more = if key.len() > 100 { "…" } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

async fn select_reply(conn: &mut Conn, db: u32) -> Result<(), Error> {
    let r = conn.read_frame("SELECT").await?;
    match error_text(&r) {
        Some(e) => Err(Error::Refused {
            addr: conn.addr.clone(),
            command: format!("SELECT {db}"),
            message: e,
        }),
        None => Ok(()),
    }
}

/// A `SCAN` reply: the next cursor (`None` at the end) and the page's keys.
async fn scan_reply(conn: &mut Conn) -> Result<(Option<Bytes>, Vec<Bytes>), Error> {
    let r = conn.read_frame("SCAN").await?;
    let bad = |message: String| Error::Refused {
        addr: conn.addr.clone(),
        command: "SCAN".into(),
        message,
    };
    if let Some(e) = error_text(&r) {
        return Err(bad(e));
    }
    let Some([cursor, page]) = r.as_slice().and_then(|s| <&[Frame; 2]>::try_from(s).ok()) else {
        return Err(bad(format!("unexpected reply {r:?}")));
    };
    let cursor = cursor
        .as_bytes()
        .ok_or_else(|| bad(format!("a cursor {cursor:?}")))?
        .clone();
    let keys = page
        .as_slice()
        .ok_or_else(|| bad(format!("a page {page:?}")))?
        .iter()
        .filter_map(|k| k.as_bytes().cloned())
        .collect();
    Ok(((&cursor[..] != b"0").then_some(cursor), keys))
}

/// `PTTL`: milliseconds left, -1 for no expiry, -2 for no key.
async fn pttl_reply(conn: &mut Conn, key: &[u8]) -> Result<i64, Error> {
    let r = conn.read_frame("PTTL").await?;
    match r {
        Frame::Integer(ms) => Ok(ms),
        other => Err(Error::Refused {
            addr: conn.addr.clone(),
            command: format!("PTTL {}", show(key)),
            message: error_text(&other).unwrap_or_else(|| format!("unexpected reply {other:?}")),
        }),
    }
}

/// The start of a `DUMP` reply: the payload's length, or `None` for no such key.
async fn dump_head(conn: &mut Conn, key: &[u8], max: u64) -> Result<Option<u64>, Error> {
    match conn.read_bulk_head("a DUMP reply").await? {
        BulkHead::Null => Ok(None),
        BulkHead::Len(n) if n > max => Err(Error::Protocol {
            addr: conn.addr.clone(),
            during: format!("DUMP {}", show(key)),
            message: format!(
                "the key's payload is {n} bytes, over --scan-max-value ({max} bytes): raise \
                 the limit, or leave the key out (--exclude-key-glob)"
            ),
        }),
        BulkHead::Len(n) => Ok(Some(n)),
        BulkHead::Error(e) => Err(Error::Refused {
            addr: conn.addr.clone(),
            command: format!("DUMP {}", show(key)),
            message: e,
        }),
    }
}

/// One whole `DUMP` reply (at most `max` bytes), for a key read again after a change.
async fn dump_whole(conn: &mut Conn, key: &[u8], max: u64) -> Result<Option<Bytes>, Error> {
    let Some(len) = dump_head(conn, key, max).await? else {
        return Ok(None);
    };
    let mut payload = Payload::new(len).ok_or_else(|| Error::Protocol {
        addr: conn.addr.clone(),
        during: format!("DUMP {}", show(key)),
        message: format!("a {len}-byte payload"),
    })?;
    // Grown as the bytes come, never sized by the announced length alone.
    let mut whole = Vec::new();
    while payload.remaining() > 0 {
        let piece = conn
            .read_payload(payload.remaining().min(PIECE), "a DUMP reply")
            .await?;
        payload.handle(&piece);
        whole.extend_from_slice(&piece);
    }
    conn.end_bulk("a DUMP reply").await?;
    payload.finish().map_err(|e| Error::Protocol {
        addr: conn.addr.clone(),
        during: format!("DUMP {}", show(key)),
        message: format!("a damaged payload: {e}"),
    })?;
    Ok(Some(Bytes::from(whole)))
}

/// After the copy: each key the notifications name, read again and handed out as a
/// `RESTORE … REPLACE ABSTTL` (or `DEL`) command, until the run stops (or, with
/// `until_idle`, until nothing waits).
async fn changes(
    conn: &mut Conn,
    mut conn_db: u32,
    watch: &Watch,
    opts: &ScanOptions,
    tx: &Out,
    shared: &Shared,
) -> Result<(), End> {
    let metrics = &shared.metrics;
    let mut offset = 0u64;
    loop {
        if let Some(e) = watch.dirty.failure() {
            return Err(e.into());
        }
        let batch = watch.dirty.take(opts.pipeline.max(1));
        if batch.is_empty() {
            tx.flush().await?;
            let wait = if opts.until_idle {
                IDLE_GRACE
            } else {
                KEEPALIVE
            };
            if tokio::time::timeout(wait, watch.dirty.wake.notified())
                .await
                .is_err()
            {
                if opts.until_idle {
                    tracing::info!(
                        "SCAN source: no changed key waited for {IDLE_GRACE:?}: caught up"
                    );
                    return Ok(());
                }
                let pong = conn.call(&["PING"], "PING").await?;
                if let Some(e) = error_text(&pong) {
                    tracing::debug!("PING on the SCAN connection: {e}");
                }
            }
            continue;
        }
        let mut selects = Vec::new();
        for (db, key) in &batch {
            let select = *db != conn_db;
            if select {
                conn.queue(&[b"SELECT".as_slice(), db.to_string().as_bytes()]);
                conn_db = *db;
            }
            selects.push(select);
            conn.queue(&[b"PTTL".as_slice(), key]);
            conn.queue(&[b"DUMP".as_slice(), key]);
        }
        conn.flush().await?;
        for ((db, key), select) in batch.into_iter().zip(selects) {
            if select {
                select_reply(conn, db).await?;
            }
            let pttl = pttl_reply(conn, &key).await?;
            let args = match dump_whole(conn, &key, opts.max_value).await? {
                None => vec![Bytes::from_static(b"DEL"), key],
                Some(payload) => {
                    let at = if pttl >= 0 {
                        now_ms().saturating_add(pttl)
                    } else {
                        0
                    };
                    vec![
                        Bytes::from_static(b"RESTORE"),
                        key,
                        Bytes::from(at.to_string()),
                        payload,
                        Bytes::from_static(b"REPLACE"),
                        Bytes::from_static(b"ABSTTL"),
                    ]
                }
            };
            metrics.add_read(conn.take_read());
            let wire_len = redis_sync_resp::command_len(&args) as u64;
            offset += wire_len;
            metrics.set_offset(offset);
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
        tx.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_and_look_like_replication_ids() {
        let a = run_id("127.0.0.1:6379");
        std::thread::sleep(Duration::from_millis(2));
        let b = run_id("127.0.0.1:6379");
        assert_ne!(a, b);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
