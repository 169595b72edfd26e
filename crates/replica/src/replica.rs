//! [`Replica`]: the driver. One task runs sessions (connect, handshake, payload, stream) and
//! reconnects; per session a reader task moves socket bytes into the spool as fast as they
//! come, and a writer task sends `REPLCONF ACK` every second and on `GETACK`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use redis_sync_rdb::{DecoderBuilder, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::{AckMode, Config, ResumePoint};
use crate::error::Error;
use crate::event::ReplicaEvent;
use crate::handshake::{Link, SyncStart, encode_command, handshake};
use crate::metrics::Metrics;
use crate::offset::{AppliedOffset, Progress};
use crate::payload::{PayloadError, PayloadFramer, PayloadItem};
use crate::spool::{SpoolReader, SpoolWriter, spool};
use crate::stream::{CommandStream, StreamError, StreamItem};
use crate::transport::{Transport, connect};

type Item = Result<ReplicaEvent, Error>;

/// A running replica: an async stream of [`ReplicaEvent`]s, the [`AppliedOffset`] handle and
/// the [`Metrics`].
///
/// Created by [`ReplicaBuilder::start`](crate::ReplicaBuilder::start); needs a Tokio runtime.
/// The stream ends (`None`) after the shutdown future completes, or after a fatal error, which
/// is yielded once as `Err` first. Dropping the `Replica` stops its tasks.
#[derive(Debug)]
pub struct Replica {
    rx: mpsc::Receiver<Vec<Item>>,
    buffered: std::collections::VecDeque<Item>,
    applied: AppliedOffset,
    metrics: Arc<Metrics>,
    progress: Progress,
    mode: AckMode,
    task: JoinHandle<()>,
    /// Dropped by [`close`](Replica::close): ends the task as the shutdown future does.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) progress: Progress,
    applied: AppliedOffset,
}

impl Replica {
    /// Starts replicating from `config`'s source until `shutdown` completes.
    pub fn start(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Replica {
        let metrics = Arc::new(Metrics::default());
        let applied = AppliedOffset::new(metrics.clone());
        let progress = Progress::default();
        let (tx, rx) = mpsc::channel(config.event_capacity.div_ceil(BATCH).max(1));
        let tx = Out {
            tx,
            batch: std::sync::Mutex::new(Vec::new()),
        };
        let shared = Shared {
            metrics: metrics.clone(),
            progress: progress.clone(),
            applied: applied.clone(),
        };
        let mode = config.ack_mode;
        // `close` ends the task as the shutdown future does, and waits for it.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                _ = stop_rx => {}
            }
        };
        let task = tokio::spawn(async move {
            if let Some(scan) = config.scan.clone() {
                // The SCAN source has cleanup to do after a stop (set
                // `notify-keyspace-events` back), so it races the shutdown itself.
                crate::scan::run(&config, &scan, &tx, &shared, shutdown).await;
                return;
            }
            tokio::select! {
                r = drive(&config, &tx, &shared) => {
                    if let Err(e) = r {
                        let _ = tx.push(Err(e)).await;
                    }
                    let _ = tx.flush().await;
                }
                () = shutdown => {}
            }
        });
        Replica {
            rx,
            buffered: Default::default(),
            applied,
            metrics,
            progress,
            mode,
            task,
            stop: Some(stop_tx),
        }
    }

    /// Stops the source's tasks and waits, at most `timeout`, until they have ended (the
    /// SCAN source sets `notify-keyspace-events` back first). Dropping the `Replica` instead
    /// aborts them at once. Events not yet taken are dropped.
    pub async fn close(&mut self, timeout: Duration) {
        drop(self.stop.take());
        // The task may wait for room in the event channel: empty it.
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        if tokio::time::timeout(timeout, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }

    /// The next event; `None` once the replica has stopped.
    pub async fn next_event(&mut self) -> Option<Item> {
        if self.buffered.is_empty() {
            match self.rx.recv().await {
                Some(batch) => self.buffered.extend(batch),
                None => return None,
            }
        }
        let item = self.buffered.pop_front();
        self.delivered(item.as_ref());
        item
    }

    /// The next event if one is ready now, without waiting: a consumer that handles events
    /// in a `select!` loop can take the ones already there in one go.
    pub fn try_next_event(&mut self) -> Option<Item> {
        if self.buffered.is_empty() {
            let batch = self.rx.try_recv().ok()?;
            self.buffered.extend(batch);
        }
        let item = self.buffered.pop_front();
        self.delivered(item.as_ref());
        item
    }

    /// The handle through which the consumer reports what it has applied.
    pub fn applied(&self) -> AppliedOffset {
        self.applied.clone()
    }

    /// The figures, readable at any time.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Where a restarted replica should continue (`None` until a snapshot is applied): store
    /// it as a checkpoint and pass it to
    /// [`ReplicaBuilder::resume_from`](crate::ReplicaBuilder::resume_from).
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.progress.resume_point(self.applied.get())
    }

    /// The offset acknowledged to the source: the applied offset, extended over the frames
    /// after it that carry no data. `None` until a snapshot is applied. Unlike
    /// [`resume_point`](Self::resume_point) it is known after a `SYNC` too (whose stream cannot
    /// be resumed), so "caught up with the source" can be told for every kind of source.
    pub fn acked_offset(&self) -> Option<u64> {
        self.applied.get()?;
        self.progress.ack_offset(self.applied.get())
    }

    fn delivered(&self, item: Option<&Item>) {
        match item {
            Some(Ok(ReplicaEvent::FullResync { .. })) => self.applied.reset(),
            // Everything handed out is applied in this mode, so the frames up to where the
            // link continues are too.
            Some(Ok(ReplicaEvent::Continued { offset, .. }))
                if self.mode == AckMode::Delivered
                    && self.applied.get().is_none_or(|(o, _)| o < *offset) =>
            {
                let db = self.progress.lock().base_db;
                self.applied.set(*offset, db);
            }
            Some(Ok(ReplicaEvent::RdbDone { offset, .. })) if self.mode == AckMode::Delivered => {
                self.applied.set(*offset, 0);
            }
            Some(Ok(
                ReplicaEvent::Command { offset, db, .. } | ReplicaEvent::Position { offset, db },
            )) if self.mode == AckMode::Delivered => {
                self.applied.set(*offset, *db);
            }
            _ => {}
        }
    }
}

impl futures_util::Stream for Replica {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.buffered.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.buffered.extend(batch),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let item = self.buffered.pop_front();
        self.delivered(item.as_ref());
        Poll::Ready(item)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Aborts a session's tasks when the session ends, however it ends.
struct TaskGuard(Vec<JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The consumer dropped the replica: stop quietly.
pub(crate) struct Gone;

pub(crate) async fn send(tx: &Out, event: ReplicaEvent) -> Result<(), Gone> {
    tx.push(Ok(event)).await
}

/// Events per batch on the channel: one channel operation per event would cost more than
/// decoding a small key.
const BATCH: usize = 256;

/// The sending side of the event channel, batching events.
#[derive(Debug)]
pub(crate) struct Out {
    tx: mpsc::Sender<Vec<Item>>,
    batch: std::sync::Mutex<Vec<Item>>,
}

impl Out {
    fn take(&self) -> Vec<Item> {
        std::mem::take(&mut *self.batch.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) async fn push(&self, item: Item) -> Result<(), Gone> {
        let full = {
            let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            b.push(item);
            b.len() >= BATCH
        };
        if full { self.flush().await } else { Ok(()) }
    }

    /// Hands the pending events to the consumer; called before every wait for input.
    pub(crate) async fn flush(&self) -> Result<(), Gone> {
        let batch = self.take();
        if batch.is_empty() {
            return Ok(());
        }
        self.tx.send(batch).await.map_err(|_| Gone)
    }
}

/// Why a session ended.
pub(crate) enum End {
    Gone,
    Failed(Error),
}

impl From<Error> for End {
    fn from(e: Error) -> Self {
        End::Failed(e)
    }
}

impl From<Gone> for End {
    fn from(_: Gone) -> Self {
        End::Gone
    }
}

/// Sessions with reconnection and backoff.
async fn drive(config: &Config, tx: &Out, shared: &Shared) -> Result<(), Error> {
    if let Some(files) = &config.files {
        return crate::files::drive(config, files, tx, shared).await;
    }
    let mut resume = config.resume.clone();
    // The address may change between sessions (`locate`): a copy of the configuration
    // carries the current one.
    let mut current = config.clone();
    let config = &mut current;
    let mut connected_once = false;
    let mut attempts = 0u32;
    let mut backoff = config.reconnect.initial_backoff;
    loop {
        let mut handshaken = false;
        let mut streamed = false;
        let end = session(
            config,
            tx,
            shared,
            &mut resume,
            (&mut handshaken, &mut streamed),
        )
        .await;
        let e = match end {
            End::Gone => return Ok(()),
            End::Failed(e) => e,
        };
        connected_once |= handshaken;
        // Only a link that got as far as the command stream resets the retry budget, so a
        // source that fails every full sync (say its BGSAVE fails) is not retried for ever.
        if streamed {
            attempts = 0;
            backoff = config.reconnect.initial_backoff;
        }
        // Bad configuration, refused credentials and undecodable data do not get better by
        // retrying; nor does a first connection that fails outright (wrong address or port).
        let decode_error = matches!(
            e,
            Error::Rdb { .. }
                | Error::Resp { .. }
                | Error::BadCommand { .. }
                | Error::Protocol { .. }
        );
        let transient = matches!(e, Error::Refused { .. });
        if e.is_fatal() || decode_error || (!connected_once && !transient) {
            return Err(e);
        }
        if handshaken {
            // One LinkLost per link; failed reconnection attempts are only logged.
            shared.metrics.add_link_loss();
            tracing::warn!(addr = %config.addr, "replication link lost: {e}");
            let lost = ReplicaEvent::LinkLost {
                reason: e.to_string(),
            };
            if send(tx, lost).await.is_err() || tx.flush().await.is_err() {
                return Ok(());
            }
        } else {
            tracing::warn!(addr = %config.addr, attempt = attempts + 1, "reconnection failed: {e}");
        }
        attempts += 1;
        if config
            .reconnect
            .max_attempts
            .is_some_and(|max| attempts > max)
        {
            return Err(Error::GaveUp {
                attempts: attempts - 1,
                last: Box::new(e),
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.reconnect.max_backoff);
        relocate(config).await;
    }
}

/// Asks the configured `locate` where the source is now and, when it moved, points the next
/// session there (the `PSYNC` position is kept: a promoted replica continues it).
async fn relocate(config: &mut Config) {
    let Some(locate) = config.locate.clone() else {
        return;
    };
    match tokio::time::timeout(config.timeouts.connect, (locate.0)()).await {
        Ok(Some(addr)) if addr != config.addr => {
            tracing::warn!(from = %config.addr, to = %addr, "the source moved: following it");
            config.addr = addr;
        }
        Ok(_) => {}
        Err(_) => tracing::warn!(addr = %config.addr, "finding the source's address timed out"),
    }
}

/// One connection: handshake, then payload and/or stream until the link fails.
async fn session(
    config: &Config,
    tx: &Out,
    shared: &Shared,
    resume: &mut Option<ResumePoint>,
    (handshaken, streamed): (&mut bool, &mut bool),
) -> End {
    let addr = config.addr.clone();
    let io = match connect(config).await {
        Ok(io) => io,
        Err(e) => return End::Failed(e),
    };
    let mut link = Link::new(io, addr.clone());
    let asked = resume.clone();
    let hs = match handshake(&mut link, config, asked.as_ref()).await {
        Ok(hs) => hs,
        Err(e) => return End::Failed(e),
    };
    *handshaken = true;
    let metrics = &shared.metrics;
    metrics.new_connection(link.bytes_read);
    let handshake_consumed = link.bytes_read - link.buf.len() as u64;
    if let Err(g) = send(
        tx,
        ReplicaEvent::Connected {
            addr: addr.clone(),
            server: hs.server,
        },
    )
    .await
    {
        return g.into();
    }

    let Link {
        io, buf: leftover, ..
    } = link;
    let (rd, wr) = tokio::io::split(io);
    let (spool_w, mut spool_r) = spool(config.spool.clone(), metrics.clone());
    let online = Arc::new(AtomicBool::new(false));
    let ack_now = Arc::new(Notify::new());
    let reader_task = tokio::spawn(reader(
        rd,
        spool_w,
        leftover,
        config.timeouts.idle,
        metrics.clone(),
        addr.clone(),
    ));
    let writer_task = tokio::spawn(writer(
        wr,
        online.clone(),
        ack_now.clone(),
        config.ack_interval,
        config.timeouts.handshake,
        shared.clone(),
    ));
    let _guard = TaskGuard(vec![reader_task, writer_task]);

    let mut buf = BytesMut::new();
    let (base, db) = match hs.start {
        SyncStart::Full { .. } | SyncStart::Sync => {
            let (replid, offset, resumable) = match &hs.start {
                SyncStart::Full { replid, offset } => (replid.clone(), *offset, true),
                _ => ("?".to_string(), 0, false),
            };
            let forced = asked.is_some();
            if forced {
                tracing::warn!(%addr, "partial resynchronisation refused: full resync");
            }
            metrics.add_full_sync();
            *resume = None;
            shared
                .progress
                .full_sync(resumable.then(|| replid.clone()), offset);
            metrics.set_offset(offset);
            let (consumed, offset) = match payload(
                config,
                tx,
                shared,
                &mut spool_r,
                &mut buf,
                (replid.clone(), offset, forced, !resumable),
            )
            .await
            {
                Ok(c) => c,
                Err(e) => return e,
            };
            // After `SYNC` the offset is the snapshot's, learned from its RDB.
            shared.progress.snapshot_done(offset);
            metrics.stream_start(handshake_consumed + consumed, offset);
            if resumable {
                *resume = Some(ResumePoint {
                    replid,
                    offset,
                    db: 0,
                });
            }
            // 7.0+ and Valkey send nothing after a diskless payload until the first ACK.
            online.store(true, Ordering::Relaxed);
            ack_now.notify_one();
            (offset, 0)
        }
        SyncStart::Continue { new_replid } => {
            // `asked` is set: CONTINUE only answers PSYNC with an ID.
            let Some(point) = asked else {
                return Error::Protocol {
                    addr,
                    during: "the PSYNC reply".into(),
                    message: "+CONTINUE to PSYNC ? -1".into(),
                }
                .into();
            };
            let replid = new_replid.unwrap_or(point.replid.clone());
            metrics.add_partial_sync();
            shared
                .progress
                .continued(replid.clone(), point.offset, point.db);
            metrics.stream_start(handshake_consumed, point.offset);
            *resume = Some(ResumePoint {
                replid: replid.clone(),
                ..point.clone()
            });
            online.store(true, Ordering::Relaxed);
            ack_now.notify_one();
            if let Err(g) = send(
                tx,
                ReplicaEvent::Continued {
                    replid,
                    offset: point.offset,
                },
            )
            .await
            {
                return g.into();
            }
            (point.offset, point.db)
        }
    };

    // The command stream.
    *streamed = true;
    let mut stream = CommandStream::new(base, db);
    // The end of the last event handed out: frames after it carry nothing to apply, and a
    // `Position` tells the consumer once no command follows them in what has arrived.
    let mut told = base;
    loop {
        loop {
            let before = stream.offset();
            let item = match stream.poll(&mut buf) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(StreamError::Resp(source)) => {
                    return Error::Resp {
                        addr,
                        offset: stream.offset(),
                        source: Box::new(source),
                    }
                    .into();
                }
                Err(StreamError::BadSelect(message)) => {
                    return Error::BadCommand {
                        addr,
                        offset: stream.offset(),
                        message,
                    }
                    .into();
                }
            };
            let (offset, db) = (stream.offset(), stream.db());
            match item {
                StreamItem::Command { .. } => told = offset,
                StreamItem::GetAck => shared.progress.lock().getack_target = Some(before),
                StreamItem::Control => {}
            }
            metrics.set_offset(offset);
            if let Some(r) = resume.as_mut() {
                r.offset = offset;
                r.db = db;
            }
            match item {
                StreamItem::Command {
                    db,
                    args,
                    offset,
                    wire_len,
                } => {
                    metrics.add_command();
                    if let Err(g) = send(
                        tx,
                        ReplicaEvent::Command {
                            db,
                            args,
                            offset,
                            wire_len,
                        },
                    )
                    .await
                    {
                        return g.into();
                    }
                }
                StreamItem::GetAck => {
                    metrics.add_getack();
                    ack_now.notify_one();
                }
                StreamItem::Control => {}
            }
        }
        if stream.offset() > told {
            told = stream.offset();
            let position = ReplicaEvent::Position {
                offset: told,
                db: stream.db(),
            };
            if let Err(g) = send(tx, position).await {
                return g.into();
            }
        }
        if let Err(g) = tx.flush().await {
            return g.into();
        }
        match spool_r.next().await {
            Ok(chunk) => buf.extend_from_slice(&chunk),
            Err(e) => return e.into(),
        }
    }
}

/// Reads the payload, feeding the RDB decoder as bytes arrive. Returns the bytes consumed
/// from the link (keep-alives, preamble, payload, mark).
async fn payload(
    config: &Config,
    tx: &Out,
    shared: &Shared,
    spool_r: &mut SpoolReader,
    buf: &mut BytesMut,
    (replid, mut offset, forced, learn_offset): (String, u64, bool, bool),
) -> Result<(u64, u64), End> {
    let addr = config.addr.clone();
    let metrics = &shared.metrics;
    let mut framer = PayloadFramer::new();
    let mut builder = DecoderBuilder::new();
    if config.rdb_restore_payloads {
        builder = builder.restore_payloads(config.rdb_restore_limit);
    }
    let mut rdb = builder.build();
    let rdb_error = |rdb: &redis_sync_rdb::Decoder, source| Error::Rdb {
        addr: addr.clone(),
        payload_offset: rdb.offset(),
        source,
    };
    let mut replid = Some(replid);
    let mut tee = None;
    loop {
        loop {
            let item = match framer.poll(buf) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(PayloadError::Aborted(message)) => {
                    // After a fallback to SYNC, "unknown command" means no replication at all.
                    if message.to_ascii_lowercase().contains("unknown command") {
                        return Err(Error::Unsupported { addr, message }.into());
                    }
                    return Err(Error::Aborted { addr, message }.into());
                }
                Err(PayloadError::Protocol(message)) => {
                    return Err(Error::Protocol {
                        addr,
                        during: "the RDB payload".into(),
                        message,
                    }
                    .into());
                }
            };
            match item {
                PayloadItem::Start { size } => {
                    metrics.rdb_start(size);
                    tee = config.rdb_tee.as_deref().and_then(RdbTee::create);
                    let replid = replid.take().unwrap_or_default();
                    send(
                        tx,
                        ReplicaEvent::FullResync {
                            replid,
                            offset,
                            rdb_size: size,
                            forced,
                        },
                    )
                    .await?;
                }
                PayloadItem::Data(data) => {
                    if let Some(t) = &mut tee
                        && !t.write(&data)
                    {
                        tee = None;
                    }
                    rdb.handle_bytes(&data);
                    metrics.set_rdb_bytes(framer.rdb_bytes());
                    drain_rdb(&mut rdb, tx, metrics, learn_offset.then_some(&mut offset))
                        .await
                        .map_err(|e| match e {
                            End::Failed(Error::Rdb { source, .. }) => {
                                rdb_error(&rdb, source).into()
                            }
                            other => other,
                        })?;
                }
                PayloadItem::End => {
                    rdb.handle_eof();
                    drain_rdb(&mut rdb, tx, metrics, learn_offset.then_some(&mut offset))
                        .await
                        .map_err(|e| match e {
                            End::Failed(Error::Rdb { source, .. }) => {
                                rdb_error(&rdb, source).into()
                            }
                            other => other,
                        })?;
                    if !rdb.is_done() {
                        return Err(Error::Protocol {
                            addr,
                            during: "the RDB payload".into(),
                            message: format!(
                                "the payload ended after {} bytes but the RDB did not",
                                framer.rdb_bytes()
                            ),
                        }
                        .into());
                    }
                    metrics.rdb_end();
                    if let Some(t) = tee.take() {
                        t.finish();
                    }
                    send(
                        tx,
                        ReplicaEvent::RdbDone {
                            offset,
                            rdb_bytes: framer.rdb_bytes(),
                        },
                    )
                    .await?;
                    return Ok((framer.consumed(), offset));
                }
            }
        }
        debug_assert!(!framer.is_done());
        tx.flush().await?;
        let chunk = spool_r.next().await?;
        buf.extend_from_slice(&chunk);
    }
}

/// Hands the decoded RDB events out. `offset`, after a `SYNC` (which tells no offset), is set
/// from the snapshot's `repl-offset` aux field: the source's replication offset at the fork,
/// where the stream that follows begins (Redis 4.0+ writes it into the RDBs it makes for
/// replicas, `rdbPopulateSaveInfo`), so `--until-caught-up` can compare with the source.
pub(crate) async fn drain_rdb(
    rdb: &mut redis_sync_rdb::Decoder,
    tx: &Out,
    metrics: &Metrics,
    mut offset: Option<&mut u64>,
) -> Result<(), End> {
    loop {
        match rdb.poll_event() {
            Ok(Some(event)) => {
                if matches!(event, Event::Key(_)) {
                    metrics.add_rdb_key();
                }
                if let (Event::Aux { key, value }, Some(o)) = (&event, offset.as_deref_mut())
                    && key.as_ref() == b"repl-offset"
                    && let Some(v) = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                {
                    *o = v;
                }
                send(tx, ReplicaEvent::Rdb(event)).await?;
            }
            Ok(None) => return Ok(()),
            Err(source) => {
                return Err(Error::Rdb {
                    addr: String::new(),
                    payload_offset: 0,
                    source: Box::new(source),
                }
                .into());
            }
        }
    }
}

/// Moves socket bytes into the spool as fast as they come, whatever the consumer does.
async fn reader(
    mut rd: ReadHalf<Transport>,
    spool: SpoolWriter,
    leftover: BytesMut,
    idle: Duration,
    metrics: Arc<Metrics>,
    addr: String,
) {
    if let Err(e) = spool.push(leftover.freeze()) {
        spool.close(e);
        return;
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        buf.reserve(64 * 1024);
        let reason = match tokio::time::timeout(idle, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) => Error::Closed {
                addr,
                during: "the replication stream".into(),
                hint: "; the source dropped this replica (its log says why: a \
                       `client-output-buffer-limit replica` overflow, a timeout or CLIENT KILL)"
                    .into(),
            },
            Ok(Ok(n)) => {
                metrics.add_read(n as u64);
                match spool.push(buf.split().freeze()) {
                    Ok(()) => continue,
                    Err(e) => e,
                }
            }
            Ok(Err(source)) => Error::Io {
                addr,
                during: "reading the replication stream".into(),
                source,
            },
            Err(_) => Error::Timeout {
                addr,
                step: "data on the replication link (the source sends a PING every 10 s)".into(),
                after: idle,
            },
        };
        spool.close(reason);
        return;
    }
}

/// Sends `REPLCONF ACK <offset>` every `interval`, and answers `REPLCONF GETACK` as soon as
/// the consumer has applied everything before it (so the source's `WAIT` means "applied").
///
/// Right after going online the ACK is repeated every 50 ms for 2 s: after a diskless payload
/// the source starts the command stream on the first ACK it receives *after* it has reaped its
/// RDB child (up to a cron tick later than our first ACK arrives); until then it buffers the
/// writes for this replica, and a low `client-output-buffer-limit replica` could cut the link.
async fn writer(
    mut wr: WriteHalf<Transport>,
    online: Arc<AtomicBool>,
    ack_now: Arc<Notify>,
    interval: Duration,
    timeout: Duration,
    shared: Shared,
) {
    const EAGER: Duration = Duration::from_millis(50);
    const EAGER_FOR: Duration = Duration::from_secs(2);
    const GETACK_POLL: Duration = Duration::from_millis(10);
    let mut online_since: Option<tokio::time::Instant> = None;
    let mut last_sent: Option<tokio::time::Instant> = None;
    loop {
        let period = match online_since {
            Some(t) if t.elapsed() < EAGER_FOR => EAGER.min(interval),
            _ => interval,
        };
        let pending = shared.progress.lock().getack_target.is_some();
        let kicked = tokio::select! {
            () = tokio::time::sleep(if pending { GETACK_POLL } else { period }) => false,
            () = ack_now.notified() => true,
        };
        if !online.load(Ordering::Relaxed) {
            // The payload is still being decoded (a slow consumer can make that take long
            // after the source has sent it all). Like a Redis replica loading its RDB, send a
            // newline every `interval`: the source counts it as a sign of life
            // (`repl_ack_time`), so it does not drop us after `repl-timeout`.
            // Only once the payload has begun: before that, a diskless source waits for its
            // replicas to be idle for `repl-diskless-sync-delay` before it forks
            // (`replicationStartPendingFork` measures idle from the replica's last
            // interaction), so a newline a second would hold the copy off for ever. Redis's
            // own replica sends nothing then either.
            if shared.metrics.in_rdb() && last_sent.is_none_or(|t| t.elapsed() >= interval) {
                match tokio::time::timeout(timeout, wr.write_all(b"\n")).await {
                    Ok(Ok(())) => last_sent = Some(tokio::time::Instant::now()),
                    _ => return,
                }
            }
            continue;
        }
        online_since.get_or_insert_with(tokio::time::Instant::now);
        let Some(offset) = shared.progress.ack_offset(shared.applied.get()) else {
            continue;
        };
        // The applied figure includes trailing frames that carry no data (see ack_offset).
        shared.metrics.set_applied(offset);
        let answered = {
            let mut p = shared.progress.lock();
            match p.getack_target {
                Some(t) if offset >= t => {
                    p.getack_target = None;
                    true
                }
                _ => false,
            }
        };
        let due = last_sent.is_none_or(|t| t.elapsed() >= period);
        if !(answered || kicked || due) {
            continue;
        }
        let offset = offset.to_string();
        let cmd = encode_command(&[b"REPLCONF", b"ACK", offset.as_bytes()]);
        match tokio::time::timeout(timeout, wr.write_all(&cmd)).await {
            Ok(Ok(())) => last_sent = Some(tokio::time::Instant::now()),
            // The reader notices a dead link; nothing more to do here.
            _ => return,
        }
    }
}

/// `tee_rdb`: the snapshot copied to a file as it is received (see
/// [`ReplicaBuilder::tee_rdb`](crate::ReplicaBuilder::tee_rdb)).
struct RdbTee {
    path: std::path::PathBuf,
    part: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl RdbTee {
    fn create(path: &std::path::Path) -> Option<RdbTee> {
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = std::path::PathBuf::from(part);
        match std::fs::File::create(&part) {
            Ok(f) => Some(RdbTee {
                path: path.to_path_buf(),
                part,
                file: std::io::BufWriter::with_capacity(1 << 20, f),
            }),
            Err(e) => {
                tracing::error!(
                    "cannot create {}: {e}; the snapshot is not copied",
                    part.display()
                );
                None
            }
        }
    }

    /// False (and the partial file removed) when the write failed.
    fn write(&mut self, data: &[u8]) -> bool {
        use std::io::Write;
        match self.file.write_all(data) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "writing {}: {e}; the snapshot is not copied further",
                    self.part.display()
                );
                let _ = std::fs::remove_file(&self.part);
                false
            }
        }
    }

    fn finish(mut self) {
        use std::io::Write;
        let done = self
            .file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all())
            .and_then(|()| std::fs::rename(&self.part, &self.path));
        match done {
            Ok(()) => tracing::info!("snapshot copied to {}", self.path.display()),
            Err(e) => {
                tracing::error!(
                    "finishing {}: {e}; the snapshot is not copied",
                    self.path.display()
                );
                let _ = std::fs::remove_file(&self.part);
            }
        }
    }
}
