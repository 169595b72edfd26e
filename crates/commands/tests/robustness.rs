//! No input makes the classifier, the splitter or the filter panic: every command and
//! subcommand of the table with pseudo-random argument lists drawn from tricky tokens
//! (key-count numbers, keywords that start key searches, negative and huge numbers, binary).

use bytes::Bytes;
use redis_sync_commands::{
    Classifier, FilterBuilder, SyncOptions, cross_slot_move, split_for_cluster, split_transaction,
    table,
};

const TOKENS: &[&[u8]] = &[
    b"0",
    b"1",
    b"2",
    b"3",
    b"-1",
    b"-2",
    b"99999999999999999999",
    b"STREAMS",
    b"KEYS",
    b"STORE",
    b"STOREDIST",
    b"DB",
    b"REPLACE",
    b"LIMIT",
    b"BY",
    b"GET",
    b"AUTH",
    b"AUTH2",
    b"{a}",
    b"{b}x",
    b"",
    b"\xff\x00{",
    b"redis-sync:heartbeat:x",
    b"tmp:1",
    b"*",
    b"$",
    b">",
];

#[test]
fn random_arguments_never_panic() {
    let mut seed: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let filter = FilterBuilder::default()
        .exclude_key_prefix("tmp:")
        .include_key_glob("*")
        .map_db(1, 0)
        .cluster_target(true)
        .build()
        .expect("filter");
    let mut classifier = Classifier::new(SyncOptions::default());
    let mut runs = 0;
    for def in table::commands()
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands))
    {
        let name: Vec<Bytes> = def
            .name
            .split('|')
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect();
        for _ in 0..40 {
            let mut args = name.clone();
            for _ in 0..next() % 12 {
                args.push(Bytes::from_static(
                    TOKENS[(next() % TOKENS.len() as u64) as usize],
                ));
            }
            if let Ok(c) = classifier.classify(&args) {
                assert!(
                    c.keys.iter().all(|k| k.index > 0 && k.index < args.len()),
                    "{args:?}"
                );
            }
            let _ = split_for_cluster(&args);
            let _ = cross_slot_move(&args);
            let _ = filter.decide(next() as u32 % 3, &args);
            let _ = split_transaction(&[args.clone(), args]);
            runs += 1;
        }
    }
    assert!(runs > 10_000, "{runs}");
}
