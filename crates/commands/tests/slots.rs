//! `hash_slot` against `CLUSTER KEYSLOT` of real cluster-enabled servers, for 12,000 keys:
//! random binary bytes, printable keys, hash tags, empty tags, nested and unclosed braces.

use redis_sync_commands::hash_slot;
use redis_sync_testkit::{Flavor, Reply, Server, versions_where};

/// xorshift64*: deterministic keys, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
            .collect()
    }
}

fn keys(count: usize) -> Vec<Vec<u8>> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let all: Vec<u8> = (0..=255).collect();
    let braces = b"ab{}{}xy\x00\xff";
    let mut out: Vec<Vec<u8>> = [
        &b""[..],
        b"{}",
        b"{",
        b"}",
        b"}{",
        b"{{}}",
        b"{a}",
        b"a{}b",
        b"{}{a}",
        b"123456789",
    ]
    .map(<[u8]>::to_vec)
    .into();
    while out.len() < count {
        let len = r.below(40) as usize;
        let key = match r.below(5) {
            0 => r.bytes(len, &all),
            1 => r.bytes(len, b"abcdefghijklmnopqrstuvwxyz0123456789:_-"),
            2 => {
                // A tag somewhere, possibly empty, with random bytes around and inside.
                let pre = r.below(8) as usize;
                let mut k = r.bytes(pre, &all);
                k.push(b'{');
                let inner = r.below(6) as usize;
                k.extend(r.bytes(inner, b"abcdef{\x00\xff"));
                k.push(b'}');
                let post = r.below(8) as usize;
                k.extend(r.bytes(post, &all));
                k
            }
            3 => r.bytes(len, braces),
            _ => {
                let mut k = b"user:{".to_vec();
                k.extend(r.next().to_string().bytes());
                k.extend_from_slice(b"}:profile");
                k
            }
        };
        out.push(key);
    }
    out
}

#[test]
fn slots_match_cluster_keyslot() {
    // The newest Redis and the newest Valkey, each as a single cluster-enabled node
    // (CLUSTER KEYSLOT does not need slots assigned).
    let servers = versions_where("Redis or Valkey 7.0+ (cluster mode)", |v| v.at_least(7, 0));
    let picks = [Flavor::Redis, Flavor::Valkey].map(|f| {
        servers
            .iter()
            .filter(|v| v.flavor() == f)
            .max_by_key(|v| v.version())
            .cloned()
    });
    let keys = keys(12_000);
    let tagged = keys.iter().filter(|k| k.contains(&b'{')).count();
    assert!(tagged > 3000, "only {tagged} keys with a brace");
    for v in picks.into_iter().flatten() {
        let server = Server::builder(&v).cluster().start();
        let mut c = server.client();
        let mut checked = 0;
        for chunk in keys.chunks(1000) {
            for k in chunk {
                c.send(&[&b"CLUSTER"[..], b"KEYSLOT", k]).expect("send");
            }
            for k in chunk {
                let reply = c.read_reply().expect("reply");
                let Reply::Int(slot) = reply else {
                    panic!("{}: KEYSLOT {k:?} gave {reply:?}", v.name())
                };
                assert_eq!(i64::from(hash_slot(k)), slot, "{}: key {k:?}", v.name());
                checked += 1;
            }
        }
        assert_eq!(checked, 12_000);
        eprintln!("{}: {checked} keys, hash_slot == CLUSTER KEYSLOT", v.name());
    }
}
