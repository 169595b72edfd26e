//! RESP decoding, side by side: redis-sync-resp (generic frame path and command fast path)
//! against `redis-protocol` 6 (`resp2::decode::decode_range` and `decode_bytes_mut`) and
//! `resp-rs` 0.3 (`resp2::parse_frame` on a whole buffer, `resp2::Parser` on chunks), on the
//! same pipelined `SET key:{12 digits} <value>` commands.
//!
//! Two ways of feeding: the whole buffer at once, and 16 KiB chunks appended to a receive
//! buffer the way a socket read loop does. Every decoder produces owned frames (or, for
//! `decode_range`, index ranges) for every command, and each is dropped before the next.
//!
//! `RESP_BENCH_FRAMES` overrides the number of commands (default 1,000,000; a tenth of that for
//! 1 KiB values, which keeps that input near 100 MB). `RESP_BENCH_NO_CHECK` skips the check,
//! before measuring, that every decoder decodes every command (for profiling).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use redis_sync_benches::pipelined_sets;
use redis_sync_resp::Decoder;

const CHUNK: usize = 16 * 1024;

/// The bytes to decode: a fresh buffer holding all of them (made in the untimed setup, so the
/// copy and its page faults are not measured), or the input to append in 16 KiB chunks.
enum Input {
    Whole(BytesMut),
    Chunked(Bytes),
}

/// A decoder under test: decodes every frame of the input; returns the number of frames.
type Run = fn(Input) -> usize;

fn chunks(input: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..input.len())
        .step_by(CHUNK)
        .map(|s| input.slice(s..(s + CHUNK).min(input.len())))
}

/// Feeds `input` to `drain` the way each decoder expects: the whole buffer once, or a 16 KiB
/// chunk at a time appended to a receive buffer. `drain` decodes every whole frame there.
fn feed(input: Input, mut drain: impl FnMut(&mut BytesMut)) {
    match input {
        Input::Whole(mut buf) => drain(&mut buf),
        Input::Chunked(input) => {
            let mut buf = BytesMut::with_capacity(4 * CHUNK);
            for c in chunks(&input) {
                buf.extend_from_slice(&c);
                drain(&mut buf);
            }
        }
    }
}

fn ours_frame(input: Input) -> usize {
    let mut d = Decoder::new();
    let mut n = 0;
    feed(input, |buf| {
        while let Some(f) = d.decode(buf).expect("valid") {
            black_box(f);
            n += 1;
        }
    });
    n
}

fn ours_command(input: Input) -> usize {
    let mut d = Decoder::new();
    let mut n = 0;
    feed(input, |buf| {
        while let Some(cmd) = d.decode_command(buf).expect("valid") {
            black_box(cmd);
            n += 1;
        }
    });
    n
}

/// The command path, plus turning each command into a `Vec<Bytes>` (one `Bytes` per argument,
/// as the frame-building peers produce).
fn ours_command_into_args(input: Input) -> usize {
    let mut d = Decoder::new();
    let mut n = 0;
    feed(input, |buf| {
        while let Some(cmd) = d.decode_command(buf).expect("valid") {
            black_box(cmd.into_args());
            n += 1;
        }
    });
    n
}

fn redis_protocol_range(input: Input) -> usize {
    use redis_protocol::resp2::decode::decode_range;
    let mut n = 0;
    feed(input, |buf| {
        let mut pos = 0;
        while let Some((f, amt)) = decode_range(&buf[pos..]).expect("valid") {
            black_box(f);
            pos += amt;
            n += 1;
        }
        buf.advance(pos);
    });
    n
}

fn redis_protocol_bytes_mut(input: Input) -> usize {
    use redis_protocol::resp2::decode::decode_bytes_mut;
    let mut n = 0;
    feed(input, |buf| {
        while let Some(f) = decode_bytes_mut(buf).expect("valid") {
            black_box(f);
            n += 1;
        }
    });
    n
}

fn resp_rs(input: Input) -> usize {
    use resp_rs::ParseError;
    use resp_rs::resp2::{Parser, parse_frame};
    let mut n = 0;
    match input {
        Input::Whole(buf) => {
            let mut rest = buf.freeze();
            loop {
                match parse_frame(rest) {
                    Ok((f, r)) => {
                        black_box(f);
                        rest = r;
                        n += 1;
                    }
                    Err(ParseError::Incomplete) => break,
                    Err(e) => panic!("resp-rs: {e:?}"),
                }
            }
        }
        Input::Chunked(input) => {
            // resp-rs keeps its own receive buffer: feed it the same 16 KiB pieces.
            let mut p = Parser::new();
            for c in chunks(&input) {
                p.feed(c);
                while let Some(f) = p.next_frame().expect("valid") {
                    black_box(f);
                    n += 1;
                }
            }
        }
    }
    n
}

const RUNS: &[(&str, Run)] = &[
    ("redis-sync-resp command", ours_command),
    ("redis-sync-resp command+into_args", ours_command_into_args),
    ("redis-sync-resp frame", ours_frame),
    ("redis-protocol decode_range", redis_protocol_range),
    ("redis-protocol decode_bytes_mut", redis_protocol_bytes_mut),
    ("resp-rs", resp_rs),
];

fn bench(c: &mut Criterion) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let check = std::env::var_os("RESP_BENCH_NO_CHECK").is_none();
    let mut group = c.benchmark_group("resp_decode");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    // 1,000,000 commands by default; a tenth of that with 1 KiB values (about 107 MB of input).
    let n = env("RESP_BENCH_FRAMES").unwrap_or(1_000_000);
    for (value_len, label, n) in [(5, "5B", n), (64, "64B", n), (1024, "1KiB", n / 10)] {
        let input = Bytes::from(pipelined_sets(n, value_len));
        group.throughput(Throughput::Elements(n as u64));
        for chunked in [false, true] {
            let feed = if chunked { "16KiB-chunks" } else { "whole" };
            let make = || {
                if chunked {
                    Input::Chunked(input.clone())
                } else {
                    Input::Whole(BytesMut::from(&input[..]))
                }
            };
            for (name, run) in RUNS {
                if check {
                    assert_eq!(run(make()), n, "{name} must decode every frame");
                }
                group.bench_function(format!("{label}/{feed}/{name}"), |b| {
                    b.iter_batched(make, run, BatchSize::PerIteration)
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
