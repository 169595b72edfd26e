//! The full-copy estimate: how long the copy will take and how big the RDB is, from the
//! source's `INFO` and rates measured just now, on this machine and these links.
//!
//! The model. A full copy is a pipeline whose stages run at the same time: the source streams
//! its RDB, redis-sync decodes it as it arrives, and sends each key (a `RESTORE`) to the target,
//! which loads it. So the copy lasts about as long as its slowest stage, plus what comes before
//! the first byte (the source's fork, and `repl-diskless-sync-delay` when the sync is
//! diskless):
//!
//! ```text
//! copy = fork + delay + max(link, decode, send, load)
//!   link   = rdb / (bytes/s of the source link, ECHO pipelined)
//!   decode = keys × (s per key) + rdb × (s per byte), of this machine's decoder
//!   send   = keys / (commands/s the target answers, EXISTS pipelined) + rdb / (bytes/s to it,
//!            ECHO pipelined)
//!   load   = keys × (µs per RESTORE, from the target's INFO commandstats, when it has run some)
//! ```
//!
//! The decoder's rates come from decoding two synthetic RDBs in memory for a fraction of a
//! second (many small strings for the cost of a key, a few large strings for the cost of a
//! byte), through the same decoder and rewriter settings a sync uses. They are only strings:
//! collections in listpacks decode at a similar cost per byte, but a real file can differ.
//! The RDB's size is the `--rdb` file's, or the source's `used_memory_dataset` times the
//! RDB-to-memory ratio measured by `DUMP`ing sampled keys. None of this is a promise: it is
//! an estimate with its rates shown, so that a wrong one is visible.

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_sync_rdb::Decoder;
use redis_sync_rdb::rewrite::{Command, Mode, Rewriter};

use super::rows::row;
use super::{Level, Row};
use crate::client::Client;

/// How long each synthetic RDB is decoded (again and again) to measure a rate.
const DECODE_TIME: Duration = Duration::from_millis(120);
/// Commands pipelined to measure the target's command rate.
const PIPELINED: usize = 20_000;
/// `ECHO`s of [`ECHO_BYTES`] each pipelined to measure a link's byte rate (2 MiB in all).
const ECHOES: usize = 32;
const ECHO_BYTES: usize = 64 << 10;

/// Seconds this machine's decoder spends per key and per byte.
#[derive(Debug, Clone, Copy)]
pub(super) struct DecodeRate {
    pub per_key: f64,
    pub per_byte: f64,
}

/// Appends an RDB length (6-bit, 14-bit or 32-bit form, `RDB-FORMAT`'s "length encoding").
fn push_len(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=63 => out.push(n as u8),
        64..=16383 => out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
        _ => {
            out.push(0x80);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

/// An RDB 9 file of `keys` plain string keys (`k:<n>`) of `value_len` bytes each, without a
/// checksum (eight zero bytes: the decoder still computes the CRC-64, and skips comparing it).
fn synthetic_rdb(keys: usize, value_len: usize) -> Vec<u8> {
    let mut f = b"REDIS0009".to_vec();
    f.extend_from_slice(&[0xfe, 0x00]);
    let value: Vec<u8> = (0..value_len).map(|i| b'a' + (i % 26) as u8).collect();
    for i in 0..keys {
        f.push(0); // string
        let key = format!("k:{i:08}");
        push_len(&mut f, key.len());
        f.extend_from_slice(key.as_bytes());
        push_len(&mut f, value.len());
        f.extend_from_slice(&value);
    }
    f.push(0xff);
    f.extend_from_slice(&[0; 8]);
    f
}

/// Decodes `file` repeatedly for at least [`DECODE_TIME`] as a sync does (64 KiB pieces,
/// RESTORE payloads up to `value_budget`, the rewriter in restore mode) and returns (keys,
/// bytes, seconds). `None` if the file does not decode (a bug, not an input).
fn decode_for(file: &[u8], value_budget: usize) -> Option<(u64, u64, f64)> {
    let start = Instant::now();
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut out: Vec<Command> = Vec::new();
    let now = crate::rdb::now_ms();
    while keys == 0 || start.elapsed() < DECODE_TIME {
        let mut d = Decoder::builder()
            .restore_payloads(Some(value_budget))
            .build();
        let mut rw = Rewriter::builder()
            .mode(Mode::Restore)
            .restore_hold_limit(value_budget)
            .build();
        let mut n = 0u64;
        for piece in file.chunks(64 << 10) {
            d.handle_bytes(piece);
            while let Some(ev) = d.poll_event().ok()? {
                if matches!(ev, redis_sync_rdb::Event::KeyEnd { .. }) {
                    n += 1;
                }
                rw.handle_event(&ev, now, &mut out).ok()?;
                out.clear();
            }
        }
        if !d.is_done() || n == 0 {
            return None;
        }
        keys += n;
        bytes += file.len() as u64;
    }
    Some((keys, bytes, start.elapsed().as_secs_f64()))
}

/// This machine's decode rate: many small keys for the cost of a key, few big ones for the
/// cost of a byte (about 0.25 s in all). Blocking: run it off the async thread.
pub(super) fn measure_decode(value_budget: usize) -> Option<DecodeRate> {
    let (k, _, s) = decode_for(&synthetic_rdb(10_000, 40), value_budget)?;
    let (_, b, t) = decode_for(&synthetic_rdb(16, 128 << 10), value_budget)?;
    Some(DecodeRate {
        per_key: s / k as f64,
        per_byte: t / b as f64,
    })
}

/// Commands per second `c`'s server answers when pipelined: [`PIPELINED`] `EXISTS` of a key
/// that is not there (read-only, and the cheapest command that still looks a key up). A
/// cluster node would redirect that key unless it owns its slot, so a cluster gets `PING`s,
/// which cost the same but for the look-up.
pub(super) async fn pipelined_rate(c: &mut Client, cluster: bool) -> Option<f64> {
    let cmd = if cluster {
        vec![Bytes::from_static(b"PING")]
    } else {
        vec![
            Bytes::from_static(b"EXISTS"),
            Bytes::from_static(b"redis-sync:check:absent"),
        ]
    };
    let cmds = vec![cmd; PIPELINED];
    let start = Instant::now();
    let replies = c.pipeline(&cmds).await.ok()?;
    let secs = start.elapsed().as_secs_f64();
    (replies.len() == PIPELINED && !replies.iter().any(|r| r.is_error()))
        .then(|| PIPELINED as f64 / secs.max(1e-6))
}

/// Bytes per second through `c`'s link: [`ECHOES`] pipelined `ECHO`s of [`ECHO_BYTES`],
/// counting the bytes once though the replies carry them back (so it errs on the slow side).
pub(super) async fn link_rate(c: &mut Client) -> Option<f64> {
    let cmd = vec![
        Bytes::from_static(b"ECHO"),
        Bytes::from(vec![b'x'; ECHO_BYTES]),
    ];
    let cmds = vec![cmd; ECHOES];
    let start = Instant::now();
    let replies = c.pipeline(&cmds).await.ok()?;
    let secs = start.elapsed().as_secs_f64();
    (replies.len() == ECHOES && !replies.iter().any(|r| r.is_error()))
        .then(|| (ECHOES * ECHO_BYTES) as f64 / secs.max(1e-6))
}

/// `usec_per_call` of `cmdstat_restore` in an `INFO commandstats` value
/// (`calls=…,usec=…,usec_per_call=12.50,…`).
pub(super) fn usec_per_call(stat: &str) -> Option<f64> {
    stat.split(',')
        .find_map(|p| p.strip_prefix("usec_per_call="))?
        .parse()
        .ok()
        .filter(|u: &f64| u.is_finite() && *u >= 0.0)
}

/// Where the RDB size comes from.
#[derive(Debug, Clone)]
pub(super) enum RdbSize {
    /// The `--rdb` file's size.
    File { path: String, bytes: u64 },
    /// `used_memory_dataset` × the ratio measured with `DUMP`.
    Ratio { dataset: u64, ratio: f64 },
    /// `used_memory_dataset` itself (no ratio could be measured): an upper bound in practice.
    Dataset { dataset: u64 },
}

impl RdbSize {
    fn bytes(&self) -> u64 {
        match self {
            RdbSize::File { bytes, .. } => *bytes,
            RdbSize::Ratio { dataset, ratio } => (*dataset as f64 * ratio) as u64,
            RdbSize::Dataset { dataset } => *dataset,
        }
    }

    fn why(&self) -> String {
        match self {
            RdbSize::File { path, .. } => format!("the size of {path}"),
            RdbSize::Ratio { dataset, ratio } => format!(
                "used_memory_dataset {} x {ratio:.2} RDB bytes per byte of memory, measured \
                 with DUMP on sampled keys",
                mb(*dataset)
            ),
            RdbSize::Dataset { dataset } => format!(
                "used_memory_dataset {}, an upper bound: no DUMP ratio could be measured",
                mb(*dataset)
            ),
        }
    }
}

/// Everything the estimate is made of.
#[derive(Debug, Clone)]
pub(super) struct Inputs {
    pub keys: u64,
    pub rdb: RdbSize,
    pub decode: Option<DecodeRate>,
    /// Target: commands/s and bytes/s, pipelined.
    pub target_ops: Option<f64>,
    pub target_bytes: Option<f64>,
    /// Source link bytes/s.
    pub source_bytes: Option<f64>,
    /// The target's µs per `RESTORE` from its commandstats.
    pub restore_usec: Option<f64>,
    /// The source's last fork (`latest_fork_usec`), when it has forked.
    pub fork_secs: Option<f64>,
    /// `Some(delay)` for a diskless sync, `None` for a disk-based one.
    pub diskless_delay: Option<f64>,
}

/// The result: the copy's duration and the RDB's size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    pub secs: f64,
    pub rdb_bytes: u64,
}

fn mb(b: u64) -> String {
    if b >= 100_000 {
        format!("{:.1} MB", b as f64 / 1e6)
    } else {
        format!("{:.1} kB", b as f64 / 1e3)
    }
}

fn rate(per_sec: f64, unit: &str) -> String {
    if per_sec >= 1e6 {
        format!("{:.1} M {unit}/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k {unit}/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} {unit}/s")
    }
}

fn secs(s: f64) -> String {
    if s < 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

/// The estimate and its row (always `ok`: it informs, the other rows judge).
pub(super) fn estimate(i: &Inputs) -> (Estimate, Row) {
    let keys = i.keys as f64;
    let rdb = i.rdb.bytes();
    let b = rdb as f64;
    // (stage, seconds, how it was measured)
    let mut stages: Vec<(&str, f64, String)> = Vec::new();
    if let Some(d) = i.decode {
        stages.push((
            "decode here",
            keys * d.per_key + b * d.per_byte,
            format!(
                "{}, {}",
                rate(1.0 / d.per_key, "keys"),
                rate(1.0 / d.per_byte / 1e6, "MB")
            ),
        ));
    }
    if let (Some(ops), Some(bps)) = (i.target_ops, i.target_bytes) {
        stages.push((
            "send to the target",
            keys / ops + b / bps,
            format!(
                "{} and {} pipelined",
                rate(ops, "cmds"),
                rate(bps / 1e6, "MB")
            ),
        ));
    }
    if let Some(u) = i.restore_usec {
        stages.push((
            "target loading",
            keys * u / 1e6,
            format!("{u:.1} us per RESTORE, from its commandstats"),
        ));
    }
    if let Some(bps) = i.source_bytes {
        stages.push(("source link", b / bps, rate(bps / 1e6, "MB").to_string()));
    }
    let slowest = stages
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|s| (s.0, s.1));
    let fork = i.fork_secs.unwrap_or(0.0);
    let delay = i.diskless_delay.unwrap_or(0.0);
    let total = fork + delay + slowest.map_or(0.0, |s| s.1);
    let list: Vec<String> = stages
        .iter()
        .map(|(name, s, how)| format!("{name} {} ({how})", secs(*s)))
        .collect();
    let mut before = vec![match i.fork_secs {
        Some(f) => format!("fork {} (latest_fork_usec)", secs(f)),
        None => "fork not measured (the source has not forked since it started)".into(),
    }];
    match i.diskless_delay {
        Some(d) if d > 0.0 => before.push(format!(
            "repl-diskless-sync-delay {d:.0} s (CONFIG SET repl-diskless-sync-delay 0 on the \
             source saves it)"
        )),
        Some(_) => {}
        None => before.push(
            "plus the source writing the RDB to its disk first (disk-based sync; not measured)"
                .into(),
        ),
    }
    let detail = format!(
        "ESTIMATE ~{} for {} keys, RDB ~{} ({}); the stages overlap, so the slowest sets the \
         pace{}: {}; before the first byte: {}. Rates measured just now; a cluster target \
         loads on its masters in parallel",
        secs(total),
        i.keys,
        mb(rdb),
        i.rdb.why(),
        slowest
            .map(|(name, _)| format!(" ({name})"))
            .unwrap_or_default(),
        if list.is_empty() {
            "no rate could be measured".to_string()
        } else {
            list.join(", ")
        },
        before.join(", ")
    );
    (
        Estimate {
            secs: total,
            rdb_bytes: rdb,
        },
        row("full-copy estimate", Level::Ok, detail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_encoded_as_rdb_does() {
        let mut v = Vec::new();
        push_len(&mut v, 10);
        push_len(&mut v, 300);
        push_len(&mut v, 131_072);
        assert_eq!(v, [10, 0x41, 0x2c, 0x80, 0, 2, 0, 0]);
    }

    #[test]
    fn the_synthetic_files_decode_and_give_rates() {
        let r = measure_decode(8 << 20).expect("the synthetic RDBs decode");
        assert!(r.per_key > 0.0 && r.per_byte > 0.0, "{r:?}");
    }

    #[test]
    fn the_slowest_stage_sets_the_pace() {
        let inputs = Inputs {
            keys: 1_000_000,
            rdb: RdbSize::Ratio {
                dataset: 100_000_000,
                ratio: 0.5,
            },
            decode: Some(DecodeRate {
                per_key: 1e-6,
                per_byte: 1e-9,
            }),
            target_ops: Some(200_000.0),
            target_bytes: Some(500e6),
            source_bytes: Some(1e9),
            restore_usec: Some(2.0),
            fork_secs: Some(0.01),
            diskless_delay: Some(5.0),
        };
        let (e, r) = estimate(&inputs);
        // send: 1e6 / 2e5 + 5e7 / 5e8 = 5.1 s; decode 1.05 s; load 2 s; link 0.05 s.
        assert!((e.secs - (0.01 + 5.0 + 5.1)).abs() < 1e-6, "{e:?}");
        assert_eq!(e.rdb_bytes, 50_000_000);
        assert!(r.detail.contains("(send to the target)"), "{}", r.detail);
        assert!(
            r.detail.contains("repl-diskless-sync-delay 5 s"),
            "{}",
            r.detail
        );
        assert_eq!(
            usec_per_call("calls=3,usec=30,usec_per_call=10.00,rejected_calls=0"),
            Some(10.0)
        );
    }
}
