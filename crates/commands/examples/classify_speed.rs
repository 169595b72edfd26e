//! Classifies a stream-like mix of commands and prints the rate, per CPU second.
//!
//! ```text
//! cargo run --release -p redis-sync-commands --example classify_speed [DISTINCT] [TOTAL]
//! ```
//!
//! `DISTINCT` commands (default 10,000) are classified round-robin until `TOTAL` (default
//! 10,000,000): a small `DISTINCT` shows the cost when each command is in cache, as it is right
//! after the RESP decoder produced it. The criterion bench is `benches/commands.rs`.

use std::time::Instant;

use redis_sync_commands::{Classifier, SyncOptions, hash_slot};

fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap_or(0));
    let distinct = args.next().filter(|&n| n > 0).unwrap_or(10_000);
    let total = args.next().filter(|&n| n > 0).unwrap_or(10_000_000);
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::with_capacity(distinct);
    for i in 0..distinct {
        let key = format!("user:{{{}}}:profile", i * 7919 % 100_000).into_bytes();
        // A pseudo-random order, as in a real stream: no branch pattern to learn.
        let c: Vec<&[u8]> = match (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60 {
            0..=5 => vec![b"SET", &key, b"value"],
            6..=7 => vec![b"HSET", &key, b"f", b"v", b"g", b"w"],
            8..=9 => vec![b"LPUSH", &key, b"job"],
            10 => vec![b"DEL", &key, b"cache:1", b"tmp:2"],
            11..=12 => vec![b"XADD", &key, b"*", b"f", b"v"],
            13 => vec![
                b"EVALSHA",
                b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db",
                b"2",
                &key,
                b"{x}b",
                b"1",
            ],
            _ => vec![b"PEXPIREAT", &key, b"1767225600000"],
        };
        cmds.push(c.into_iter().map(<[u8]>::to_vec).collect());
    }
    let mut classifier = Classifier::new(SyncOptions::default());
    let (cpu0, wall) = (cpu_ns(), Instant::now());
    let mut acc = 0usize;
    let rounds = total.div_ceil(distinct);
    let total = rounds * distinct;
    for _ in 0..rounds {
        for cmd in &cmds {
            // Every output is used (black_box), as a sync uses them: otherwise the compiler
            // could drop the work behind an unused field, such as the hash slots of the route.
            let c = std::hint::black_box(classifier.classify(cmd));
            acc = acc.wrapping_add(c.map(|c| c.keys.len()).unwrap_or(0));
        }
    }
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9);
    let wall = wall.elapsed().as_secs_f64();
    println!("classify: {total} commands ({distinct} distinct), checksum {acc}");
    if let Some(cpu) = cpu {
        println!(
            "  {:.1} M/s per CPU second ({:.1} ns each)",
            total as f64 / cpu / 1e6,
            cpu * 1e9 / total as f64
        );
    }
    println!("  {:.1} M/s wall clock", total as f64 / wall / 1e6);
    if std::env::var_os("CLASSIFY_ONLY").is_some() {
        return;
    }
    // Where the time goes: the name look-up alone, then with key extraction.
    let (cpu0, mut n) = (cpu_ns(), 0usize);
    for _ in 0..rounds {
        for cmd in &cmds {
            n += redis_sync_commands::lookup(cmd).map_or(0, |d| d.name.len());
        }
    }
    if let Some(cpu) = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9) {
        println!(
            "lookup: {:.1} ns per command (checksum {n})",
            cpu * 1e9 / total as f64
        );
    }
    let (cpu0, mut pos) = (cpu_ns(), Vec::new());
    for _ in 0..rounds {
        for cmd in &cmds {
            if let Some(d) = redis_sync_commands::lookup(cmd) {
                let _ = redis_sync_commands::key_positions(d, cmd, &mut pos);
                n += pos.len();
            }
        }
    }
    if let Some(cpu) = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9) {
        println!(
            "lookup + key_positions: {:.1} ns per command (checksum {n})",
            cpu * 1e9 / total as f64
        );
    }
    let keys: Vec<&Vec<u8>> = cmds.iter().map(|c| &c[1]).collect();
    let (cpu0, mut sum) = (cpu_ns(), 0u64);
    for _ in 0..rounds {
        for k in &keys {
            sum += u64::from(hash_slot(k));
        }
    }
    if let Some(cpu) = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9) {
        println!(
            "hash_slot: {:.1} ns per key (checksum {sum})",
            cpu * 1e9 / total as f64
        );
    }
}
