//! Real RDB files mutated by libFuzzer, randomly chunked. Seed it from the corpus first (corpus
//! files are not committed):
//!
//! ```sh
//! mkdir -p fuzz/corpus/rdb_mutate
//! find ${REDIS_SYNC_CORPUS:-../shared/rdb-corpus} -name '*.rdb' -exec cp {} fuzz/corpus/rdb_mutate/ \;
//! cargo fuzz run --sanitizer none rdb_mutate -- -max_total_time=600 -max_len=200000
//! ```
//!
//! The checksum is not verified, so mutations reach past the first corrupted byte into every
//! value decoder; chunked decoding must equal whole-input decoding. The chunking comes from a
//! hash of the input, so the file bytes stay as the mutator made them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_sync_rdb::{Decoder, DecoderBuilder};

fn run(b: DecoderBuilder, data: &[u8], sizes: &[usize]) -> (Vec<String>, Option<String>) {
    let mut d = b.build();
    let mut events = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    loop {
        let n = sizes[i % sizes.len()].min(data.len() - pos);
        i += 1;
        d.handle_bytes(&data[pos..pos + n]);
        pos += n;
        if pos == data.len() {
            d.handle_eof();
        }
        loop {
            match d.poll_event() {
                Ok(Some(e)) => events.push(format!("{e:?}")),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string())),
            }
        }
        if pos == data.len() {
            return (events, None);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let h = data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let sizes: Vec<usize> = (0..8)
        .map(|i| 1 + ((h >> (i * 8)) & 0x3ff) as usize)
        .collect();
    let budget = [1usize, 100, 4096, 65536][(h >> 62) as usize];
    let b = Decoder::builder()
        .chunk_budget(budget)
        .verify_checksum(false)
        .max_element_size(1 << 22)
        .max_blob_size(1 << 22)
        .restore_payloads(None);
    let whole = run(b.clone(), data, &[data.len().max(1)]);
    let chunked = run(b, data, &sizes);
    assert_eq!(whole, chunked);
});
