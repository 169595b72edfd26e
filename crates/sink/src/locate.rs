//! Following a standalone target that moves: the master a Redis Sentinel names changes in a
//! failover, and the sink must write to the new one without applying a checkpointed
//! transaction twice or losing one.
//!
//! With [`SinkBuilder::locate`](crate::SinkBuilder::locate) the engine asks, before each
//! reconnection, where the target's master is now ([`Locate`]); the node it finds must say
//! `master` to `ROLE` (a sentinel may still name the old master for a moment, or name one
//! that is still being promoted). A node that answers `READONLY` became a replica: its
//! connection is dropped and the master looked up again, instead of stopping as a standalone
//! target without a locate does.
//!
//! Exactly-once across the switch rests on what the sink does after any lost connection: the
//! transactions whose `EXEC` reply never came are resolved by reading their checkpoint's `txn`
//! stamp back — from the new master, which holds them only if they ran and were replicated.
//! What a lost connection cannot show is a transaction the old master *acknowledged* and never
//! replicated (replication is asynchronous): its commands are gone from the target while the
//! sink counts them applied. [`check_committed`] compares the new master's stamps with the last
//! acknowledged transaction of each checkpoint key, and a stamp behind it stops the sink with
//! [`Error::Regressed`](crate::Error::Regressed): the caller resumes from the checkpoint the new
//! master holds (the source's backlog still has the lost part when it is large enough).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use redis_sync_resp::Frame;

use crate::conn::Conn;
use crate::error::Error;

/// How many times the engine looks for a master after a lost connection before it gives up.
/// A sentinel failover takes `down-after-milliseconds` (30 s by default) plus the election and
/// the promotion: with back-off capped at 1 s this waits about three minutes, where the
/// ordinary reconnection budget (`max_attempts`, 40) would give up after about 30 s.
pub(crate) const RELOCATE_ATTEMPTS: u32 = 200;

type LocateFn = dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync;

/// Finds where the target's master is now (see [`SinkBuilder::locate`](crate::SinkBuilder::locate)).
#[derive(Clone)]
pub(crate) struct Locate(pub(crate) Arc<LocateFn>);

impl std::fmt::Debug for Locate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locate(..)")
    }
}

/// True when the node `conn` is connected to says `master` to `ROLE` (Redis 2.8.12+). A node
/// that does not know `ROLE` is taken at its word: it is a master unless `INFO replication`
/// says otherwise.
pub(crate) async fn is_master(conn: &mut Conn) -> Result<bool, Error> {
    match conn.call(&["ROLE"]).await? {
        Frame::Array(items) => Ok(items
            .first()
            .and_then(Frame::as_bytes)
            .is_some_and(|r| r.eq_ignore_ascii_case(b"master"))),
        _ => {
            let info = conn.call(&["INFO", "replication"]).await?;
            let text = info
                .as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            Ok(text.is_none_or(|t| !t.contains("role:slave")))
        }
    }
}

/// The `txn` stamp (`engine id`, `MULTI` seq) and `offset` of the checkpoint hash `key` (db 0),
/// read on `conn`.
pub(crate) async fn read_stamp(
    conn: &mut Conn,
    key: &Bytes,
    txn_field: &'static [u8],
) -> Result<(Option<(u64, u64)>, Option<u64>), Error> {
    let reply = conn
        .call_many(&[
            vec![Bytes::from_static(b"SELECT"), Bytes::from_static(b"0")],
            vec![
                Bytes::from_static(b"HMGET"),
                key.clone(),
                Bytes::from_static(txn_field),
                Bytes::from_static(b"offset"),
            ],
        ])
        .await?;
    let fields = reply.get(1).and_then(Frame::as_slice).unwrap_or(&[]);
    let text = |i: usize| {
        fields
            .get(i)
            .and_then(Frame::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
    };
    let stamp = text(0)
        .and_then(|t| t.split_once(':'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let offset = text(1).and_then(|t| t.parse().ok());
    Ok((stamp, offset))
}

/// The last acknowledged transaction of one checkpoint key: its `MULTI` seq and the offset its
/// checkpoint brought the target to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Acked {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
}

/// Checks that the master `conn` is connected to holds every transaction this engine
/// (`engine`) had acknowledged (`acked`, per checkpoint key): its stamp must be this engine's
/// and at least the last acknowledged one (a later stamp is a transaction in flight that ran).
/// `Err(Error::Regressed)` names the first key that is behind.
pub(crate) async fn check_committed(
    conn: &mut Conn,
    engine: u64,
    acked: &HashMap<Bytes, Acked>,
    txn_field: &'static [u8],
) -> Result<(), Error> {
    for (key, a) in acked {
        let (stamp, offset) = read_stamp(conn, key, txn_field).await?;
        let holds = stamp.is_some_and(|(id, seq)| id == engine && seq >= a.seq);
        if !holds {
            return Err(Error::Regressed {
                addr: conn.addr.clone(),
                key: String::from_utf8_lossy(key).into_owned(),
                held: offset,
                committed: a.offset,
            });
        }
    }
    Ok(())
}
