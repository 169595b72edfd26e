//! End-to-end throughput of redis-sync-sink against `redis-benchmark`, in one run, on the same
//! target server: small `SET`s (3-byte values, one key, as `redis-benchmark -t set` writes).
//!
//! `cargo bench -p redis-sync-benches --bench sink` starts a real server with the test kit
//! (`SINK_BENCH_SERVER=redis-7.0.15` to choose; default the newest Redis), runs
//! `redis-benchmark -P 64 -t set -n 1000000 -q` (`REDIS_BENCHMARK` to point elsewhere), then
//! the sink writing the same number of `SET`s from one producer task, three rounds each,
//! alternating, and prints the best of each and their ratio. The goal is ≥ 90 %.
//! `SINK_BENCH_BATCH=64` hands commands over with `Sink::write_many` in batches of 64;
//! `SINK_BENCH_SINKS=4` runs 4 sinks (4 connections) side by side. Each round also prints the
//! CPU time per SET of the server (`INFO cpu`) and of the client (redis-benchmark's from
//! /proc children times, the sink's from this process), which is load-independent.

use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use redis_sync_sink::Sink;
use redis_sync_testkit::{Flavor, SERVERS_HINT, Server, find, require};

fn redis_benchmark(port: u16, n: u64) -> Option<f64> {
    let bin = std::env::var("REDIS_BENCHMARK").unwrap_or_else(|_| "redis-benchmark".into());
    let out = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-P", "64", "-t", "set", "-n", &n.to_string(), "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET: 1234567.88 requests per second, p50=…" (after \r-separated progress lines)
    let line = text
        .split(['\r', '\n'])
        .rev()
        .find(|l| l.starts_with("SET:"))?;
    line.trim_start_matches("SET:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sink_round(rt: &tokio::runtime::Runtime, addr: &str, n: u64) -> f64 {
    let sinks: u64 = std::env::var("SINK_BENCH_SINKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..sinks {
            let addr = addr.to_string();
            tasks.push(tokio::spawn(async move {
                let sink = Sink::builder()
                    .standalone(addr)
                    .connect()
                    .await
                    .expect("the sink connects");
                let name = Bytes::from_static(b"SET");
                let key = Bytes::from_static(b"key:__rand_int__");
                let value = Bytes::from_static(b"xxx");
                let batch: usize = std::env::var("SINK_BENCH_BATCH")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                let total = (n / sinks) as usize;
                if batch <= 1 {
                    for _ in 0..total {
                        sink.write(vec![name.clone(), key.clone(), value.clone()], None)
                            .await
                            .expect("write");
                    }
                } else {
                    let mut left = total;
                    while left > 0 {
                        let k = left.min(batch);
                        let cmds = (0..k)
                            .map(|_| vec![name.clone(), key.clone(), value.clone()])
                            .collect();
                        sink.write_many(cmds, None).await.expect("write_many");
                        left -= k;
                    }
                }
                let m = sink.shutdown().await.expect("shutdown");
                assert_eq!(m.commands_acked, n / sinks);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let secs = start.elapsed().as_secs_f64();
        n as f64 / secs
    })
}

/// The server's CPU seconds so far (`INFO cpu`: user + sys).
fn server_cpu(server: &Server) -> f64 {
    let info = server.info("cpu");
    let get = |k: &str| {
        info.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    get("used_cpu_user") + get("used_cpu_sys")
}

/// CPU seconds of this process (`self`) and of its waited-for children, from /proc.
fn own_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14-17 (utime, stime, cutime, cstime) are at 11..15 after the command name.
    let tick = 100.0;
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (get(11) + get(12), get(13) + get(14))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sink: bench");
        return;
    }
    let version = std::env::var("SINK_BENCH_SERVER")
        .ok()
        .and_then(|n| find(&n))
        .or_else(|| require(Flavor::Redis));
    let Some(version) = version else {
        eprintln!("sink bench: no server installed; skipped ({SERVERS_HINT})");
        return;
    };
    let n: u64 = std::env::var("SINK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = Server::builder(&version).start();
    // One thread for the producer, the writer task and the reply reader: no cross-thread
    // wake-ups, and the other core stays free for the server (SINK_BENCH_RT=multi for a
    // 2-worker runtime).
    let rt = if std::env::var("SINK_BENCH_RT").is_ok_and(|v| v == "multi") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    let (mut best_rb, mut best_sink) = (0f64, 0f64);
    for round in 1..=3 {
        server.cmd(&["FLUSHALL"]).ok();
        let (s0, c0) = (server_cpu(&server), own_cpu());
        let rb = redis_benchmark(server.port(), n);
        let (s1, c1) = (server_cpu(&server), own_cpu());
        server.cmd(&["FLUSHALL"]).ok();
        let ours = sink_round(&rt, &server.addr(), n);
        let (s2, c2) = (server_cpu(&server), own_cpu());
        let us = |secs: f64| secs * 1e6 / n as f64;
        println!(
            "round {round}: redis-benchmark -P 64 {} SET/s, sink {ours:.0} SET/s; CPU µs per SET: \
             server {:.2} vs {:.2}, client {:.2} (redis-benchmark) vs {:.2} (sink)",
            rb.map_or("n/a".into(), |r| format!("{r:.0}")),
            us(s1 - s0),
            us(s2 - s1),
            us(c1.1 - c0.1),
            us(c2.0 - c1.0),
        );
        best_rb = best_rb.max(rb.unwrap_or(0.0));
        best_sink = best_sink.max(ours);
    }
    println!(
        "{}: best redis-benchmark -P 64 -t set -n {n}: {best_rb:.0} SET/s; sink: {best_sink:.0} SET/s; ratio {:.1} %",
        version.name(),
        100.0 * best_sink / best_rb.max(1.0)
    );
}
