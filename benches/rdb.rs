//! RDB decoder throughput: (a) a file of 1,000,000 small string keys, (b) a file of large
//! values; and a side-by-side timing against Debian's `redis-check-rdb` on the same 1M-key file,
//! written as a markdown table to `$RDB_BENCH_REPORT` (default `/work/notes/rdb-bench.md`).
//!
//! The files are generated in memory in the exact format Redis 7.0 writes (RDB 10, CRC-64), so
//! the bench needs no server; `redis-check-rdb` validates the same bytes from a temp file.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use redis_sync_rdb::{Decoder, Event, crc64};

fn rstr(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn finish(mut f: Vec<u8>) -> Vec<u8> {
    f.push(0xff);
    let c = crc64(&f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

fn header() -> Vec<u8> {
    let mut f = b"REDIS0010".to_vec();
    for (k, v) in [("redis-ver", "7.0.15"), ("redis-bits", "64")] {
        f.push(0xfa);
        rstr(&mut f, k.as_bytes());
        rstr(&mut f, v.as_bytes());
    }
    f
}

/// Like `DEBUG POPULATE n`: `key:i` = `value:i`.
fn small_keys(n: usize) -> Vec<u8> {
    let mut f = header();
    f.extend_from_slice(&[0xfe, 0, 0xfb]);
    f.push(0x80);
    f.extend_from_slice(&(n as u32).to_be_bytes());
    f.push(0);
    for i in 0..n {
        f.push(0);
        rstr(&mut f, format!("key:{i}").as_bytes());
        rstr(&mut f, format!("value:{i}").as_bytes());
    }
    finish(f)
}

/// 32 strings of 2 MiB and a list of 64 elements of 256 KiB.
fn large_values() -> Vec<u8> {
    let mut f = header();
    f.extend_from_slice(&[0xfe, 0]);
    let blob: Vec<u8> = (0..2 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for i in 0..32 {
        f.push(0);
        rstr(&mut f, format!("big:{i}").as_bytes());
        rstr(&mut f, &blob);
    }
    f.push(1);
    rstr(&mut f, b"biglist");
    f.extend_from_slice(&[0x40, 64]); // 14-bit length 64
    for _ in 0..64 {
        rstr(&mut f, &blob[..256 << 10]);
    }
    finish(f)
}

/// Decodes `data` fed in 64 KiB pieces; returns the number of keys.
fn count_keys(data: &[u8]) -> u64 {
    let mut d = Decoder::builder().build();
    let mut keys = 0;
    for piece in data.chunks(64 << 10) {
        d.handle_bytes(piece);
        while let Some(e) = d.poll_event().expect("valid file") {
            if let Event::Key(_) = e {
                keys += 1;
            }
            black_box(&e);
        }
    }
    d.handle_eof();
    assert!(d.poll_event().expect("complete").is_none());
    keys
}

/// Counts keys the way `redis-sync rdb --format count` does: values skipped, no key names,
/// 1 MiB pieces.
fn count_keys_skim(data: &[u8]) -> u64 {
    let mut d = Decoder::builder()
        .skip_values(true)
        .key_names(false)
        .build();
    let mut keys = 0;
    for piece in data.chunks(1 << 20) {
        d.handle_bytes(piece);
        while let Some(e) = d.poll_event().expect("valid file") {
            if let Event::Key(_) = e {
                keys += 1;
            }
            black_box(&e);
        }
    }
    d.handle_eof();
    assert!(d.poll_event().expect("complete").is_none());
    keys
}

fn bench(c: &mut Criterion) {
    let small = small_keys(1_000_000);
    let large = large_values();
    let mut g = c.benchmark_group("rdb");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("decode_1m_small_keys", |b| {
        b.iter(|| assert_eq!(count_keys(&small), 1_000_000))
    });
    g.bench_function("count_1m_small_keys_skip_values", |b| {
        b.iter(|| assert_eq!(count_keys_skim(&small), 1_000_000))
    });
    g.throughput(Throughput::Bytes(large.len() as u64));
    g.bench_function("decode_large_values", |b| {
        b.iter(|| assert_eq!(count_keys(&large), 33))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn best_of<F: FnMut()>(n: usize, mut f: F) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Times our decoder and `redis-check-rdb` on the same files and writes the report.
fn side_by_side() {
    let small = small_keys(1_000_000);
    let large = large_values();
    let ours_small = best_of(5, || assert_eq!(count_keys(&small), 1_000_000));
    let ours_large = best_of(5, || assert_eq!(count_keys(&large), 33));
    let mbps = |bytes: usize, d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    let mut report = String::from("# RDB decoder benchmark\n\n");
    report.push_str(&format!(
        "Machine: {} CPUs; decoder fed in 64 KiB pieces, CRC-64 verified, every event drained.\n\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));
    report.push_str(
        "| file | size | redis-sync-rdb | redis-check-rdb | speed-up |\n|---|---|---|---|---|\n",
    );
    let check = "/usr/bin/redis-check-rdb";
    let row = |name: &str, data: &[u8], ours: Duration| {
        let path = std::env::temp_dir().join(format!(
            "redis-sync-bench-{}-{name}.rdb",
            std::process::id()
        ));
        std::fs::write(&path, data).expect("write temp file");
        let theirs = if std::path::Path::new(check).exists() {
            let d = best_of(3, || {
                let out = std::process::Command::new(check)
                    .arg(&path)
                    .output()
                    .expect("run redis-check-rdb");
                assert!(
                    out.status.success(),
                    "redis-check-rdb failed: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            });
            Some(d)
        } else {
            None
        };
        let _ = std::fs::remove_file(&path);
        let fmt = |d: Duration| {
            format!(
                "{:.1} ms ({:.0} MB/s)",
                d.as_secs_f64() * 1e3,
                mbps(data.len(), d)
            )
        };
        report_row(
            name,
            data.len(),
            fmt(ours),
            theirs.map(fmt),
            theirs.map(|t| t.as_secs_f64() / ours.as_secs_f64()),
        )
    };
    let r1 = row("1m-small-keys", &small, ours_small);
    let r2 = row("large-values", &large, ours_large);
    report.push_str(&r1);
    report.push_str(&r2);
    let path =
        std::env::var("RDB_BENCH_REPORT").unwrap_or_else(|_| "/work/notes/rdb-bench.md".into());
    if std::fs::write(&path, &report).is_ok() {
        eprintln!("wrote {path}");
    }
    print!("{report}");
}

fn report_row(
    name: &str,
    size: usize,
    ours: String,
    theirs: Option<String>,
    x: Option<f64>,
) -> String {
    format!(
        "| {name} | {:.1} MB | {ours} | {} | {} |\n",
        size as f64 / 1e6,
        theirs.unwrap_or_else(|| "not installed".into()),
        x.map(|x| format!("{x:.1}x")).unwrap_or_default()
    )
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    side_by_side();
}
