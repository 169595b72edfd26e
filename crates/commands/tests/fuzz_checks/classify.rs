//! The checks of the cargo-fuzz target `classify`: both its
//! `fuzz/fuzz_targets/classify.rs` and `tests/fuzz_inputs.rs` include this file, so
//! `cargo test` runs the checked-in seeds and regressions through the same checks.
//!
//! Arbitrary argument lists through the command classifier, the cluster splitter, the
//! transaction splitter and a filter.
//!
//! The input's first byte picks a command (or subcommand) from the table, so the fuzzer starts
//! from real names; the rest is split into arguments on 0xff bytes (names, keys with and
//! without tags, counts and keywords all come out of that). A second form, first byte 0xff,
//! uses the raw first argument as the name, for unknown and oddly cased names.
//!
//! Checks: no panic; every key position is a real argument other than the name; a `Slot`
//! route is the slot of every key and `CrossSlot` means two keys differ; every part of a
//! split holds only keys of its slot, and the parts' keys are the original's keys.
use redis_sync_commands::{
    Classifier, ClusterPlan, FilterBuilder, Route, SyncOptions, commands, hash_slot,
    split_for_cluster, split_transaction,
};

/// The fuzz target's body: panics when a check fails.
pub fn check(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut args: Vec<&[u8]> = Vec::new();
    if pick != 0xff {
        let all: Vec<_> = commands()
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
            .collect();
        let def = all[usize::from(pick) % all.len()];
        args.extend(def.name.split('|').map(str::as_bytes));
    }
    if !rest.is_empty() {
        args.extend(rest.split(|&b| b == 0xff));
    }

    let mut classifier = Classifier::new(SyncOptions::default());
    if let Ok(c) = classifier.classify(&args) {
        let slots: Vec<u16> = c
            .keys
            .iter()
            .map(|k| {
                assert!(k.index >= 1 && k.index < args.len(), "{k:?} of {args:?}");
                hash_slot(args[k.index])
            })
            .collect();
        match c.route {
            Route::Slot(s) => assert!(slots.iter().all(|&x| x == s), "{args:?}"),
            Route::CrossSlot => assert!(slots.windows(2).any(|w| w[0] != w[1]), "{args:?}"),
            _ => assert!(slots.is_empty(), "{args:?}"),
        }
        let keys: Vec<&[u8]> = c.keys.iter().map(|k| args[k.index]).collect();
        if let Ok(ClusterPlan::Split(parts)) = split_for_cluster(&args) {
            let mut split_keys = Vec::new();
            for p in &parts {
                let mut c2 = Classifier::new(SyncOptions::default());
                let part = c2.classify(&p.args).expect("a split part classifies");
                assert_eq!(part.route, Route::Slot(p.slot), "{:?}", p.args);
                split_keys.extend(part.keys.iter().map(|k| p.args[k.index]));
            }
            let (mut a, mut b) = (keys.clone(), split_keys);
            a.sort();
            b.sort();
            assert_eq!(a, b, "split of {args:?}");
        }
    }
    let _ = split_transaction(&[args.clone(), args.clone()]);
    if let Ok(filter) = FilterBuilder::default()
        .exclude_key_prefix("tmp:")
        .exclude_key_glob("*{x}*")
        .map_db(1, 2)
        .build()
    {
        let owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let _ = filter.decide(1, &owned);
    }
}
