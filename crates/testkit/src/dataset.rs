//! A reference data set with every type in every encoding, and the equality oracle for it.
//!
//! [`write_dataset`] fills a running server, whatever its version, with keys of every type in
//! both their small (listpack / ziplist / intset) and large (hashtable / quicklist / skiplist)
//! encodings, plus everything the version supports on top (plain quicklist nodes, hash field
//! TTLs, stream consumer groups with a PEL, functions, module values, vector sets). It returns a
//! [`DatasetInfo`] that says what was written.
//!
//! [`assert_same_data`] then checks that another server holds the same data. `DEBUG DIGEST`
//! covers keys, values and expiry times, but it is blind to stream consumer groups (groups, PEL,
//! consumers) and to module values whose module has no digest callback (RedisJSON,
//! RedisBloom), and it ignores functions. So the helper also compares `XINFO STREAM key FULL`
//! (without the radix-tree sizes and the consumers' seen/active times, which no copy can
//! reproduce), `DUMP` of each module key, and `FUNCTION LIST WITHCODE`.
//!
//! The RDB, replica, sink and end-to-end tests all use the pair: write on a source, move the
//! data with the code under test, assert the target equals the source.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::catalog::{Flavor, ServerVersion};
use crate::client::{Client, Reply};
use crate::server::Server;

/// What [`write_dataset`] should write. `DatasetOptions::default()` is the full set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DatasetOptions {
    /// Prefix of every key name (so two data sets can live side by side).
    pub prefix: String,
    /// Items in each "large" aggregate (must exceed the small-encoding limits: ≥ 600).
    pub large_items: usize,
    /// The second db written to, besides db 0.
    pub other_db: u32,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            prefix: String::new(),
            large_items: 1000,
            other_db: 3,
        }
    }
}

impl DatasetOptions {
    /// The default set with every key name starting with `prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        DatasetOptions {
            prefix: prefix.to_string(),
            ..Self::default()
        }
    }
}

/// One key written by [`write_dataset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenKey {
    /// The database.
    pub db: u32,
    /// The key name.
    pub key: String,
    /// The Redis `TYPE` name (`string`, `list`, `set`, `zset`, `hash`, `stream`, or the
    /// module's type name such as `ReJSON-RL`, `MBbloom--`, `vectorset`).
    pub kind: String,
}

/// What [`write_dataset`] wrote, for the comparisons that `DEBUG DIGEST` cannot do.
#[derive(Debug, Clone, Default)]
pub struct DatasetInfo {
    /// Every key, in the order written.
    pub keys: Vec<WrittenKey>,
    /// `(db, key)` of each stream (compared with `XINFO STREAM key FULL`).
    pub streams: Vec<(u32, String)>,
    /// `(db, key)` of each module value the digest cannot see (compared with `DUMP`).
    pub module_keys: Vec<(u32, String)>,
    /// Names of the function libraries loaded (7.0+).
    pub functions: Vec<String>,
    /// The dbs that hold keys, ascending.
    pub dbs: Vec<u32>,
    /// True when hash field TTLs were written (Redis 7.4+, Valkey 9+).
    pub hash_field_ttls: bool,
    /// True when a list with a plain quicklist node was written (7.0+).
    pub plain_list_node: bool,
}

impl DatasetInfo {
    /// Number of keys written in `db`.
    pub fn keys_in(&self, db: u32) -> usize {
        self.keys.iter().filter(|k| k.db == db).count()
    }
    /// Keys per db and type: `(db, kind) → count`.
    pub fn counts(&self) -> BTreeMap<(u32, String), usize> {
        let mut m = BTreeMap::new();
        for k in &self.keys {
            *m.entry((k.db, k.kind.clone())).or_insert(0) += 1;
        }
        m
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A connection that panics with the command when the server answers with an error.
struct Writer<'a> {
    client: Client,
    version: &'a ServerVersion,
    info: DatasetInfo,
    db: u32,
    prefix: String,
}

impl Writer<'_> {
    #[track_caller]
    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let reply = self
            .client
            .call(args)
            .unwrap_or_else(|e| panic!("I/O error writing the data set to {}: {e}", self.version));
        if let Reply::Error(e) = &reply {
            let shown: Vec<String> = args
                .iter()
                .take(8)
                .map(|a| String::from_utf8_lossy(&a.as_ref()[..a.as_ref().len().min(40)]).into())
                .collect();
            panic!(
                "{} refused {shown:?} while writing the data set: {e}",
                self.version
            );
        }
        reply
    }

    /// Sends many commands pipelined, then checks every reply.
    #[track_caller]
    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) {
        for chunk in cmds.chunks(256) {
            for c in chunk {
                self.client.send(c).expect("send a pipelined command");
            }
            for c in chunk {
                let r = self.client.read_reply().expect("read a pipelined reply");
                if let Reply::Error(e) = r {
                    let name = String::from_utf8_lossy(&c[0]).into_owned();
                    panic!("{} refused a pipelined {name}: {e}", self.version);
                }
            }
        }
    }

    fn select(&mut self, db: u32) {
        self.call(&["SELECT", &db.to_string()]);
        self.db = db;
        if !self.info.dbs.contains(&db) {
            self.info.dbs.push(db);
            self.info.dbs.sort_unstable();
        }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    fn record(&mut self, key: &str, kind: &str) {
        self.info.keys.push(WrittenKey {
            db: self.db,
            key: key.to_string(),
            kind: kind.into(),
        });
    }
}

fn b(s: impl Into<Vec<u8>>) -> Vec<u8> {
    s.into()
}

/// Writes the reference data set into `server` (db 0 and `opts.other_db`) and says what it
/// wrote. Works on every installed version: features the version lacks are left out.
///
/// The server is expected to be empty of keys with the same names; existing keys with other
/// names are left alone. Panics (naming the command) when the server refuses a write.
#[track_caller]
pub fn write_dataset(server: &Server, opts: &DatasetOptions) -> DatasetInfo {
    let v = server.version();
    let mut w = Writer {
        client: server.client(),
        version: v,
        info: DatasetInfo::default(),
        db: 0,
        prefix: opts.prefix.clone(),
    };
    let modules = loaded_modules(&mut w.client);
    let n = opts.large_items.max(600);
    let future = unix_ms() + 3_600_000;

    w.select(0);
    strings(&mut w, future);
    lists(&mut w, n);
    sets(&mut w, n);
    zsets(&mut w, n);
    hashes(&mut w, n, future);
    if v.at_least(5, 0) {
        streams(&mut w, n);
    }
    if modules.iter().any(|m| m.eq_ignore_ascii_case("rejson")) {
        let k = w.name("module:json");
        w.call(&[
            "JSON.SET",
            &k,
            "$",
            r#"{"a":1,"b":[1,2.5,"x"],"c":{"d":null,"e":true}}"#,
        ]);
        w.record(&k, "ReJSON-RL");
        w.info.module_keys.push((0, k));
    }
    if modules.iter().any(|m| m.eq_ignore_ascii_case("bf")) {
        let k = w.name("module:bloom");
        for item in ["apple", "banana", "cherry"] {
            w.call(&["BF.ADD", &k, item]);
        }
        w.record(&k, "MBbloom--");
        w.info.module_keys.push((0, k));
    }
    if v.flavor() == Flavor::Redis && v.at_least(8, 0) {
        // Vector sets are a module type built into Redis 8; DEBUG DIGEST covers them.
        let k = w.name("vset");
        for (i, vals) in [
            ["0.1", "0.2", "0.3"],
            ["1", "-1", "0.5"],
            ["-0.25", "0", "2"],
        ]
        .iter()
        .enumerate()
        {
            let elem = format!("elem{i}");
            w.call(&["VADD", &k, "VALUES", "3", vals[0], vals[1], vals[2], &elem]);
        }
        w.record(&k, "vectorset");
    }
    if v.at_least(7, 0) {
        let lib = format!(
            "{}lib",
            opts.prefix
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let code = format!(
            "#!lua name={lib}\nredis.register_function('{lib}_f', function(keys, args) return 1 end)"
        );
        w.call(&["FUNCTION", "LOAD", "REPLACE", &code]);
        w.info.functions.push(lib);
    }

    w.select(opts.other_db);
    let k = w.name("db3:string");
    w.call(&["SET", &k, "in another db"]);
    w.record(&k, "string");
    let k = w.name("db3:list");
    w.call(&["RPUSH", &k, "x", "y", "z"]);
    w.record(&k, "list");
    let k = w.name("db3:expiring");
    w.call(&["SET", &k, "soon", "PX", "3600000"]);
    w.record(&k, "string");
    w.call(&["SELECT", "0"]);
    w.info
}

/// Describes whatever data `server` holds (keys of every db with their types, streams,
/// module values, functions), for comparing data that [`write_dataset`] did not write, e.g. a
/// loaded RDB file. Key names that are not UTF-8 are kept lossily (their per-key checks then
/// compare the same error on both sides; `DEBUG DIGEST` still covers them).
#[track_caller]
pub fn describe(server: &Server) -> DatasetInfo {
    const BUILTIN: [&str; 6] = ["string", "list", "set", "zset", "hash", "stream"];
    let v = server.version();
    let mut info = DatasetInfo::default();
    let keyspace = server.info("keyspace");
    let mut c = server.client();
    for db_name in keyspace.keys() {
        let Some(db) = db_name
            .strip_prefix("db")
            .and_then(|d| d.parse::<u32>().ok())
        else {
            continue;
        };
        info.dbs.push(db);
        c.call(&["SELECT", &db.to_string()]).expect("SELECT").ok();
        let mut names = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        // Bounded: SCAN visits every key at most a few times; stop at a generous limit.
        for _ in 0..1_000_000 {
            let r = c
                .call(&["SCAN", &cursor, "COUNT", "1000"])
                .expect("SCAN")
                .ok()
                .array();
            cursor = r[0].text();
            names.extend(r[1].array().iter().map(|k| k.bulk().unwrap_or_default()));
            if cursor == "0" {
                break;
            }
        }
        let names: Vec<Vec<u8>> = names.into_iter().collect();
        let types = pipeline(&mut c, names.iter().map(|n| vec![b("TYPE"), n.clone()]))
            .expect("TYPE of every key");
        for (name, kind) in names.iter().zip(types) {
            let kind = kind.text();
            let key = String::from_utf8_lossy(name).into_owned();
            if kind == "stream" {
                info.streams.push((db, key.clone()));
            } else if !BUILTIN.contains(&kind.as_str()) && kind != "vectorset" {
                info.module_keys.push((db, key.clone()));
            }
            info.keys.push(WrittenKey { db, key, kind });
        }
    }
    info.dbs.sort_unstable();
    if v.at_least(7, 0) {
        let libs = c.call(&["FUNCTION", "LIST"]).expect("FUNCTION LIST").ok();
        for lib in libs.array() {
            let fields = lib.array();
            if let Some(p) = fields.chunks(2).find(|p| p[0].text() == "library_name") {
                info.functions.push(p[1].text());
            }
        }
    }
    info.hash_field_ttls = supports_field_ttls(v);
    c.call(&["SELECT", "0"]).expect("SELECT").ok();
    info
}

fn loaded_modules(c: &mut Client) -> Vec<String> {
    let Ok(Reply::Array(Some(mods))) = c.call(&["MODULE", "LIST"]) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for m in mods {
        let fields = m.array();
        for pair in fields.chunks(2) {
            if let [k, val] = pair
                && k.text() == "name"
            {
                names.push(val.text());
            }
        }
    }
    names
}

fn strings(w: &mut Writer<'_>, future: i64) {
    let set = |w: &mut Writer<'_>, name: &str, value: Vec<u8>| {
        let k = w.name(name);
        w.call(&[b("SET"), b(k.as_str()), value]);
        w.record(&k, "string");
    };
    set(w, "str:int", b("12345"));
    set(w, "str:negint", b("-42"));
    set(w, "str:bigint", b("9223372036854775807"));
    set(w, "str:short", b("hello"));
    set(w, "str:empty", b(""));
    set(w, "str:binary", b(&b"\x00\r\n\xff\xfe binary \x01"[..]));
    // > 20 bytes and compressible: saved with LZF.
    set(
        w,
        "str:lzf",
        b("abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc-0123456789"),
    );
    // Large and mostly incompressible (a simple LCG), 300 KB.
    let mut x: u32 = 12345;
    let large: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    set(w, "str:large", large);
    set(w, "str:large-lzf", "0123456789".repeat(20_000).into_bytes());
    let k = w.name("str:expire");
    w.call(&["SET", &k, "with a ttl"]);
    w.call(&["PEXPIREAT", &k, &future.to_string()]);
    w.record(&k, "string");
    let k = w.name("str:expire-int");
    w.call(&["SET", &k, "7"]);
    w.call(&["PEXPIREAT", &k, &(future + 1234).to_string()]);
    w.record(&k, "string");
}

fn lists(w: &mut Writer<'_>, n: usize) {
    let k = w.name("list:small");
    w.call(&["RPUSH", &k, "a", "b", "1", "-2", "300000", "c"]);
    w.record(&k, "list");
    let k = w.name("list:large");
    let mut cmds = Vec::new();
    for i in 0..n {
        cmds.push(vec![
            b("RPUSH"),
            b(k.as_str()),
            b(format!("item-{i}-{}", "x".repeat(i % 70))),
        ]);
    }
    w.pipeline(&cmds);
    w.record(&k, "list");
    let k = w.name("list:expire");
    w.call(&["RPUSH", &k, "e1", "e2"]);
    w.call(&["PEXPIRE", &k, "7200000"]);
    w.record(&k, "list");
    if w.version.at_least(7, 0) {
        // A single element larger than the node size limit is stored as a PLAIN quicklist node
        // when it exceeds the packed threshold; lower the threshold so a 10 KB element does.
        let _ = w
            .client
            .call(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000"]);
        let k = w.name("list:plain");
        let big = "P".repeat(10_000);
        w.call(&["RPUSH", &k, "before", &big, "after"]);
        w.call(&["RPUSH", &k, &"Q".repeat(12_000)]);
        w.record(&k, "list");
        w.info.plain_list_node = true;
    }
}

fn sets(w: &mut Writer<'_>, n: usize) {
    let k = w.name("set:intset");
    w.call(&["SADD", &k, "1", "2", "3", "-100", "70000", "5000000000"]);
    w.record(&k, "set");
    let k = w.name("set:small");
    w.call(&["SADD", &k, "alpha", "beta", "gamma", "42"]);
    w.record(&k, "set");
    let k = w.name("set:large-int");
    let mut args = vec![b("SADD"), b(k.as_str())];
    args.extend((0..n).map(|i| b(i.to_string())));
    w.call(&args);
    w.record(&k, "set");
    let k = w.name("set:large");
    let mut args = vec![b("SADD"), b(k.as_str())];
    args.extend((0..n).map(|i| b(format!("member-{i}"))));
    w.call(&args);
    w.record(&k, "set");
}

fn zsets(w: &mut Writer<'_>, n: usize) {
    let k = w.name("zset:small");
    w.call(&[
        "ZADD",
        &k,
        "inf",
        "top",
        "-inf",
        "bottom",
        "0.1",
        "tenth",
        "-2.5",
        "neg",
        "1e300",
        "huge",
        "3",
        "three",
        "1.7976931348623157e308",
        "max",
        "5e-324",
        "tiny",
        "-0",
        "negzero",
    ]);
    w.record(&k, "zset");
    let k = w.name("zset:large");
    let mut args = vec![b("ZADD"), b(k.as_str())];
    for i in 0..n {
        let score = (i as f64) / 7.0 - 40.0;
        args.push(b(format!("{score:e}")));
        args.push(b(format!("m{i}")));
    }
    args.extend([b("inf"), b("plus-inf"), b("-inf"), b("minus-inf")]);
    w.call(&args);
    w.record(&k, "zset");
    let k = w.name("zset:longmember");
    w.call(&["ZADD", &k, "1", &"L".repeat(100), "2", "short"]);
    w.record(&k, "zset");
}

fn hashes(w: &mut Writer<'_>, n: usize, future: i64) {
    let k = w.name("hash:small");
    w.call(&["HSET", &k, "f1", "v1", "f2", "2", "f3", "-3"]);
    w.record(&k, "hash");
    let k = w.name("hash:large");
    let mut args = vec![b("HSET"), b(k.as_str())];
    for i in 0..n {
        args.push(b(format!("field-{i}")));
        args.push(b(format!("value-{i}")));
    }
    w.call(&args);
    w.record(&k, "hash");
    let k = w.name("hash:longvalue");
    w.call(&["HSET", &k, "f", &"V".repeat(200)]);
    w.record(&k, "hash");
    let k = w.name("hash:expire");
    w.call(&["HSET", &k, "a", "1"]);
    w.call(&["PEXPIREAT", &k, &(future + 99).to_string()]);
    w.record(&k, "hash");
    let v = w.version;
    if supports_field_ttls(v) {
        w.info.hash_field_ttls = true;
        // Small (listpack with TTLs) …
        let k = w.name("hash:ttl-small");
        w.call(&[
            "HSET", &k, "keep", "forever", "t1", "x", "t2", "y", "t3", "z",
        ]);
        w.call(&[
            "HPEXPIREAT",
            &k,
            &(future + 5).to_string(),
            "FIELDS",
            "2",
            "t1",
            "t2",
        ]);
        w.call(&[
            "HPEXPIREAT",
            &k,
            &(future + 77).to_string(),
            "FIELDS",
            "1",
            "t3",
        ]);
        w.record(&k, "hash");
        // … and large (hashtable with TTLs), plus a key expiry on top.
        let k = w.name("hash:ttl-large");
        let mut args = vec![b("HSET"), b(k.as_str())];
        for i in 0..n {
            args.push(b(format!("hf-{i}")));
            args.push(b(format!("hv-{i}")));
        }
        w.call(&args);
        for i in (0..n).step_by(3) {
            let at = (future + i as i64).to_string();
            w.call(&["HPEXPIREAT", &k, &at, "FIELDS", "1", &format!("hf-{i}")]);
        }
        w.call(&["PEXPIREAT", &k, &(future + 500_000).to_string()]);
        w.record(&k, "hash");
    }
}

fn streams(w: &mut Writer<'_>, n: usize) {
    let v = w.version;
    // A stream with groups, a PEL, consumers, deleted entries and a trim.
    let k = w.name("stream:groups");
    for i in 1..=40u32 {
        let id = format!("{}-{}", 1_000 + i / 3, i % 3);
        if i % 4 == 0 {
            w.call(&["XADD", &k, &id, "name", &format!("n{i}"), "extra", "1"]);
        } else {
            w.call(&[
                "XADD",
                &k,
                &id,
                "name",
                &format!("n{i}"),
                "value",
                &i.to_string(),
            ]);
        }
    }
    w.call(&["XTRIM", &k, "MAXLEN", "30"]);
    // Delete entries nobody will read (a PEL entry pointing at a deleted entry cannot be
    // recreated by commands: XCLAIM ignores missing IDs).
    let last = w.call(&["XREVRANGE", &k, "+", "-", "COUNT", "3"]).array();
    let mid = w.call(&["XRANGE", &k, "-", "+", "COUNT", "12"]).array();
    let del = |r: &Reply| r.array()[0].text();
    let to_delete = [del(&last[1]), del(&mid[11])];
    w.call(&["XDEL", &k, &to_delete[0], &to_delete[1]]);
    w.call(&["XGROUP", "CREATE", &k, "g1", "0"]);
    w.call(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "3",
        "STREAMS",
        &k,
        ">",
    ]);
    w.call(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "4",
        "STREAMS",
        &k,
        ">",
    ]);
    let pending = w
        .call(&["XPENDING", &k, "g1", "-", "+", "10", "alice"])
        .array();
    let first_alice = pending[0].array()[0].text();
    let second_alice = pending[1].array()[0].text();
    w.call(&["XACK", &k, "g1", &first_alice]);
    // Bob takes one of Alice's messages: delivery count 2.
    w.call(&["XCLAIM", &k, "g1", "bob", "0", &second_alice]);
    if v.at_least(6, 2) {
        w.call(&["XGROUP", "CREATECONSUMER", &k, "g1", "carol"]);
    }
    w.call(&["XGROUP", "CREATE", &k, "g2", "$"]);
    w.call(&["XGROUP", "CREATE", &k, "g3", "1005-0"]);
    w.call(&[
        "XREADGROUP",
        "GROUP",
        "g3",
        "dave",
        "COUNT",
        "1",
        "STREAMS",
        &k,
        ">",
    ]);
    w.record(&k, "stream");
    w.info.streams.push((w.db, k));

    // A large stream: several listpack nodes, same-fields entries.
    let k = w.name("stream:large");
    let cmds: Vec<Vec<Vec<u8>>> = (0..n)
        .map(|i| {
            vec![
                b("XADD"),
                b(k.as_str()),
                b(format!("{}-0", 1_700_000_000_000u64 + i as u64)),
                b("temp"),
                b(format!("{}", i % 50)),
                b("sensor"),
                b(format!("s{}", i % 7)),
            ]
        })
        .collect();
    w.pipeline(&cmds);
    w.call(&["XGROUP", "CREATE", &k, "readers", "0"]);
    w.call(&[
        "XREADGROUP",
        "GROUP",
        "readers",
        "r1",
        "COUNT",
        "50",
        "STREAMS",
        &k,
        ">",
    ]);
    w.call(&["PEXPIREAT", &k, &(unix_ms() + 86_400_000).to_string()]);
    w.record(&k, "stream");
    w.info.streams.push((w.db, k));

    // Every entry deleted: length 0, but last id / entries-added / max-deleted-id remain.
    let k = w.name("stream:all-deleted");
    w.call(&["XADD", &k, "5-1", "a", "1"]);
    w.call(&["XADD", &k, "5-2", "b", "2"]);
    w.call(&["XDEL", &k, "5-1", "5-2"]);
    w.record(&k, "stream");
    w.info.streams.push((w.db, k));

    // Never had an entry, only a group.
    let k = w.name("stream:empty-with-group");
    w.call(&["XGROUP", "CREATE", &k, "lonely", "$", "MKSTREAM"]);
    w.record(&k, "stream");
    w.info.streams.push((w.db, k));
}

/// Keys whose values or expiry differ between `a` and `b` in the current db (for messages).
fn diff_keys(a: &mut Client, b: &mut Client) -> Vec<String> {
    fn all_keys(c: &mut Client) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = c
            .call(&["KEYS", "*"])
            .map(|r| r.array().iter().filter_map(|k| k.bulk()).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }
    let (ka, kb) = (all_keys(a), all_keys(b));
    let mut out = Vec::new();
    for k in &ka {
        let name = String::from_utf8_lossy(k).into_owned();
        if !kb.contains(k) {
            out.push(format!("{name} (missing in the second server)"));
            continue;
        }
        let da = a.call(&[&b"DEBUG"[..], b"DIGEST-VALUE", k]).ok();
        let db = b.call(&[&b"DEBUG"[..], b"DIGEST-VALUE", k]).ok();
        let ta = a.call(&[&b"PTTL"[..], k]).ok();
        let tb = b.call(&[&b"PTTL"[..], k]).ok();
        let ttl_differs = match (&ta, &tb) {
            (Some(Reply::Int(x)), Some(Reply::Int(y))) => (x - y).abs() > 60_000,
            _ => false,
        };
        if da != db {
            out.push(format!("{name} (value differs)"));
        } else if ttl_differs {
            out.push(format!("{name} (ttl differs: {ta:?} vs {tb:?})"));
        }
    }
    for k in &kb {
        if !ka.contains(k) {
            out.push(format!(
                "{} (only in the second server)",
                String::from_utf8_lossy(k)
            ));
        }
    }
    out
}

/// Drops the map entries no copy can reproduce from an `XINFO STREAM key FULL` reply:
/// radix-tree sizes (memory layout) and consumers' seen/active times (set by the copy itself).
fn strip_xinfo(r: Reply) -> Reply {
    xinfo_view(r, &[])
}

/// An `XINFO STREAM key FULL` reply without what no copy can reproduce (radix-tree sizes,
/// consumers' seen/active times) and without the map entries named in `skip`, at any depth.
pub fn xinfo_view(r: Reply, skip: &[&str]) -> Reply {
    const NEVER: [&str; 4] = [
        "radix-tree-keys",
        "radix-tree-nodes",
        "seen-time",
        "active-time",
    ];
    let Reply::Array(Some(items)) = r else {
        return r;
    };
    let is_map = items.len() % 2 == 0
        && items
            .iter()
            .step_by(2)
            .all(|k| matches!(k, Reply::Bulk(Some(_))))
        && items
            .iter()
            .step_by(2)
            .any(|k| matches!(k, Reply::Bulk(Some(s)) if s == b"length" || s == b"name"));
    if !is_map {
        return Reply::Array(Some(
            items.into_iter().map(|i| xinfo_view(i, skip)).collect(),
        ));
    }
    let mut out = Vec::new();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let drop = matches!(&k, Reply::Bulk(Some(s))
            if NEVER.iter().chain(skip).any(|n| n.as_bytes() == s.as_slice()));
        if !drop {
            out.push(k);
            out.push(xinfo_view(v, skip));
        }
    }
    Reply::Array(Some(out))
}

/// Everything about a stream's groups that a copy must reproduce, for servers without
/// `XINFO STREAM FULL` (5.0): groups, consumers (without idle times), the PEL (without idle
/// times: they are relative to now).
fn stream_groups_v5(c: &mut Client, key: &str) -> Vec<Reply> {
    let mut out = Vec::new();
    let groups = c.call(&["XINFO", "GROUPS", key]).expect("XINFO GROUPS");
    for g in groups.array() {
        let fields = g.array();
        let name = fields
            .chunks(2)
            .find(|p| p[0].text() == "name")
            .map(|p| p[1].text())
            .unwrap_or_default();
        out.push(g.clone());
        let consumers = c
            .call(&["XINFO", "CONSUMERS", key, &name])
            .expect("XINFO CONSUMERS");
        for cons in consumers.array() {
            let kept: Vec<Reply> = cons
                .array()
                .chunks(2)
                .filter(|p| p[0].text() != "idle")
                .flat_map(|p| p.to_vec())
                .collect();
            out.push(Reply::Array(Some(kept)));
        }
        let pel = c
            .call(&["XPENDING", key, &name, "-", "+", "1000000"])
            .expect("XPENDING");
        for p in pel.array() {
            let mut e = p.array();
            if e.len() == 4 {
                e.remove(2); // idle ms
            }
            out.push(Reply::Array(Some(e)));
        }
    }
    out
}

fn supports_field_ttls(v: &ServerVersion) -> bool {
    match v.flavor() {
        Flavor::Redis => v.at_least(7, 4),
        Flavor::Valkey => v.at_least(9, 0),
    }
}

/// Sends `cmds` pipelined (in batches of 1000) and returns the replies in order.
fn pipeline(
    c: &mut Client,
    cmds: impl IntoIterator<Item = Vec<Vec<u8>>>,
) -> Result<Vec<Reply>, String> {
    let cmds: Vec<Vec<Vec<u8>>> = cmds.into_iter().collect();
    let mut out = Vec::with_capacity(cmds.len());
    for batch in cmds.chunks(1000) {
        for cmd in batch {
            c.send(cmd).map_err(|e| format!("send: {e}"))?;
        }
        for _ in batch {
            out.push(c.read_reply().map_err(|e| format!("read a reply: {e}"))?);
        }
    }
    Ok(out)
}

/// For each hash in `keys`: `field → HPEXPIRETIME` of all its fields (absolute ms, -1 without
/// TTL), sorted by field.
/// Per key, each field with its absolute expiry in ms (`-1` for none).
type FieldTtls = Vec<Vec<(Vec<u8>, i64)>>;

fn field_ttls(c: &mut Client, keys: &[&str]) -> Result<FieldTtls, String> {
    let fields = pipeline(c, keys.iter().map(|k| vec![b("HKEYS"), b(*k)]))?;
    let fields: Vec<Vec<Vec<u8>>> = fields
        .iter()
        .map(|r| match r {
            Reply::Array(Some(items)) => items.iter().filter_map(|f| f.bulk()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let cmds = keys
        .iter()
        .zip(&fields)
        .filter(|(_, f)| !f.is_empty())
        .map(|(k, f)| {
            let mut args = vec![
                b("HPEXPIRETIME"),
                b(*k),
                b("FIELDS"),
                b(f.len().to_string()),
            ];
            args.extend(f.iter().cloned());
            args
        });
    let mut times = pipeline(c, cmds)?.into_iter();
    let mut out = Vec::with_capacity(keys.len());
    for f in fields {
        if f.is_empty() {
            out.push(Vec::new());
            continue;
        }
        let t = match times.next() {
            Some(Reply::Array(Some(items))) => items,
            other => return Err(format!("HPEXPIRETIME: {other:?}")),
        };
        let mut pairs: Vec<(Vec<u8>, i64)> = f
            .into_iter()
            .zip(
                t.iter()
                    .map(|t| if let Reply::Int(i) = t { *i } else { i64::MIN }),
            )
            .collect();
        pairs.sort();
        out.push(pairs);
    }
    Ok(out)
}

fn sorted_functions(c: &mut Client) -> Vec<String> {
    let reply = c
        .call(&["FUNCTION", "LIST", "WITHCODE"])
        .expect("FUNCTION LIST");
    // Libraries, and the functions inside each, come in dict order, which depends on the
    // server's insertion history: sort both.
    let mut libs: Vec<String> = reply
        .array()
        .iter()
        .map(|lib| {
            let fields = lib.array();
            let mut parts: Vec<String> = Vec::new();
            for pair in fields.chunks(2) {
                let [k, v] = pair else { continue };
                if k.text() == "functions" {
                    let mut fns: Vec<String> = v.array().iter().map(show).collect();
                    fns.sort();
                    parts.push(format!("functions: {fns:?}"));
                } else {
                    parts.push(format!("{}: {}", show(k), show(v)));
                }
            }
            parts.join(", ")
        })
        .collect();
    libs.sort();
    libs
}

/// Renders a reply as readable text for failure messages.
fn show(r: &Reply) -> String {
    match r {
        Reply::Status(s) => s.clone(),
        Reply::Error(e) => format!("(error) {e}"),
        Reply::Int(i) => i.to_string(),
        Reply::Bulk(None) | Reply::Array(None) => "(nil)".into(),
        Reply::Bulk(Some(b)) => format!("{:?}", String::from_utf8_lossy(b)),
        Reply::Array(Some(items)) => {
            format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// `a` from a little before its first difference with `b` (whole replies are long).
fn around_difference(a: &str, b: &str) -> String {
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let start = a.floor_char_boundary(at.saturating_sub(120));
    let end = a.ceil_char_boundary((at + 240).min(a.len()));
    format!("…{}…", &a[start..end])
}

fn select_both(ca: &mut Client, cb: &mut Client, db: u32) -> Result<(), String> {
    let sel = ["SELECT".to_string(), db.to_string()];
    for c in [ca, cb] {
        match c.call(&sel) {
            Ok(Reply::Status(_)) => {}
            other => return Err(format!("SELECT {db} failed: {other:?}")),
        }
    }
    Ok(())
}

fn call(c: &mut Client, args: &[&str]) -> Result<Reply, String> {
    c.call(args).map_err(|e| format!("{args:?}: I/O error {e}"))
}

/// Asserts that `b` holds the same data as `a`: `DEBUG DIGEST`, the key count of every db in
/// `info`, `XINFO STREAM key FULL` of every stream (on 5.0: groups, consumers and PEL through
/// `XINFO GROUPS`/`CONSUMERS` and `XPENDING`), `DUMP` of every module key, the field TTLs
/// (`HPEXPIRETIME`) of every hash where the version has them (Valkey's digest ignores them)
/// and, on 7.0+, the function libraries. On a digest mismatch the message lists the keys that differ.
#[track_caller]
pub fn assert_same_data(a: &Server, b: &Server, info: &DatasetInfo) {
    if let Err(e) = compare_data(a, b, info) {
        panic!("{e}");
    }
}

/// The keys redis-sync keeps in a target for itself (its exactly-once checkpoint, db 0).
const CHECKPOINT_PATTERN: &str = "redis-sync:checkpoint:*";

/// Removes redis-sync's checkpoint keys from `s` (db 0) and returns them (`DUMP` payload and
/// TTL) so [`put_back_checkpoints`] can restore them: the data comparison must not count them,
/// and `DEBUG DIGEST` covers every key.
fn set_aside_checkpoints(s: &Server) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
    let mut c = s.client();
    let mut out = Vec::new();
    if c.call(&["SELECT", "0"]).is_err() {
        return out;
    }
    let mut cursor = "0".to_string();
    for _ in 0..10_000 {
        let Ok(page) = c.call(&[
            "SCAN",
            &cursor,
            "MATCH",
            CHECKPOINT_PATTERN,
            "COUNT",
            "1000",
        ]) else {
            break;
        };
        let page = page.array();
        let Some(next) = page.first().map(Reply::text) else {
            break;
        };
        for k in page.get(1).map(Reply::array).unwrap_or_default() {
            let Some(key) = k.bulk() else { continue };
            let dump = c.call(&[&b"DUMP"[..], &key]).ok().and_then(|r| r.bulk());
            let ttl = c.call(&[&b"PTTL"[..], &key]).map(|r| r.int()).unwrap_or(-1);
            if let Some(dump) = dump {
                let _ = c.call(&[&b"DEL"[..], &key]);
                out.push((key, ttl.max(0), dump));
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    out
}

/// Restores what [`set_aside_checkpoints`] took (a checkpoint written meanwhile is kept).
fn put_back_checkpoints(s: &Server, keys: Vec<(Vec<u8>, i64, Vec<u8>)>) {
    if keys.is_empty() {
        return;
    }
    let mut c = s.client();
    let _ = c.call(&["SELECT", "0"]);
    for (key, ttl, dump) in keys {
        let ttl = ttl.to_string();
        let _ = c.call(&[&b"RESTORE"[..], &key, ttl.as_bytes(), &dump]);
    }
}

/// `DEBUG DIGEST` of `s` without redis-sync's checkpoint keys (set aside and put back).
pub fn data_digest(s: &Server) -> String {
    let stash = set_aside_checkpoints(s);
    let d = s.digest();
    put_back_checkpoints(s, stash);
    d
}

/// `DBSIZE` of db 0 of `s` without redis-sync's checkpoint keys.
pub fn data_dbsize(s: &Server) -> i64 {
    let mut c = s.client();
    let _ = c.call(&["SELECT", "0"]);
    let all = c.call(&["DBSIZE"]).map(|r| r.int()).unwrap_or(0);
    let mine = c
        .call(&["KEYS", CHECKPOINT_PATTERN])
        .map(|r| r.array().len() as i64)
        .unwrap_or(0);
    all - mine
}

/// What [`assert_same_data`] checks, returning the first difference found as a message.
/// redis-sync's checkpoint keys (`redis-sync:checkpoint:*`) are not data: they are set aside
/// on both servers for the comparison and put back after.
pub fn compare_data(a: &Server, b: &Server, info: &DatasetInfo) -> Result<(), String> {
    let (sa, sb) = (set_aside_checkpoints(a), set_aside_checkpoints(b));
    let result = compare_data_as_is(a, b, info);
    put_back_checkpoints(a, sa);
    put_back_checkpoints(b, sb);
    result
}

fn compare_data_as_is(a: &Server, b: &Server, info: &DatasetInfo) -> Result<(), String> {
    let (va, vb) = (
        a.version().name().to_string(),
        b.version().name().to_string(),
    );
    let mut ca = a.client();
    let mut cb = b.client();
    let mut dbs = info.dbs.clone();
    if !dbs.contains(&0) {
        dbs.insert(0, 0);
    }
    for &db in &dbs {
        select_both(&mut ca, &mut cb, db)?;
        let na = call(&mut ca, &["DBSIZE"])?;
        let nb = call(&mut cb, &["DBSIZE"])?;
        if na != nb {
            let diff = diff_keys(&mut ca, &mut cb);
            return Err(format!(
                "db {db}: {va} has {} keys, {vb} has {}; differing keys: {diff:#?}",
                show(&na),
                show(&nb)
            ));
        }
    }
    let (da, dbb) = (a.digest(), b.digest());
    if da != dbb {
        let mut diffs = Vec::new();
        for &db in &dbs {
            select_both(&mut ca, &mut cb, db)?;
            diffs.extend(
                diff_keys(&mut ca, &mut cb)
                    .into_iter()
                    .map(|d| format!("db {db}: {d}")),
            );
        }
        return Err(format!(
            "DEBUG DIGEST differs ({va} {da} vs {vb} {dbb}); differing keys: {diffs:#?}"
        ));
    }
    let full = a.version().at_least(6, 0);
    for (db, key) in &info.streams {
        select_both(&mut ca, &mut cb, *db)?;
        let (xa, xb) = if full {
            let args = ["XINFO", "STREAM", key.as_str(), "FULL", "COUNT", "0"];
            (
                strip_xinfo(call(&mut ca, &args)?),
                strip_xinfo(call(&mut cb, &args)?),
            )
        } else {
            let args = ["XINFO", "STREAM", key.as_str()];
            let mut xa = vec![strip_xinfo(call(&mut ca, &args)?)];
            let mut xb = vec![strip_xinfo(call(&mut cb, &args)?)];
            xa.extend(stream_groups_v5(&mut ca, key));
            xb.extend(stream_groups_v5(&mut cb, key));
            (Reply::Array(Some(xa)), Reply::Array(Some(xb)))
        };
        if xa != xb {
            let (sa, sb) = (show(&xa), show(&xb));
            return Err(format!(
                "stream {key} (db {db}) differs:\n  {va}: {}\n  {vb}: {}",
                around_difference(&sa, &sb),
                around_difference(&sb, &sa)
            ));
        }
    }
    for (db, key) in &info.module_keys {
        select_both(&mut ca, &mut cb, *db)?;
        let xa = call(&mut ca, &["DUMP", key.as_str()])?;
        let xb = call(&mut cb, &["DUMP", key.as_str()])?;
        if !matches!(xa, Reply::Bulk(Some(_))) {
            return Err(format!(
                "module key {key} (db {db}) missing in {va}: {}",
                show(&xa)
            ));
        }
        if xa != xb {
            return Err(format!(
                "DUMP {key} (db {db}) differs between {va} and {vb}"
            ));
        }
    }
    if supports_field_ttls(a.version()) {
        // Valkey 9's DEBUG DIGEST ignores hash field TTLs: compare them field by field.
        for &db in &dbs {
            let keys: Vec<&str> = info
                .keys
                .iter()
                .filter(|k| k.db == db && k.kind == "hash")
                .map(|k| k.key.as_str())
                .collect();
            if keys.is_empty() {
                continue;
            }
            select_both(&mut ca, &mut cb, db)?;
            let (ta, tb) = (field_ttls(&mut ca, &keys)?, field_ttls(&mut cb, &keys)?);
            if let Some(i) = (0..keys.len()).find(|&i| ta[i] != tb[i]) {
                return Err(format!(
                    "field TTLs of hash {} (db {db}) differ:\n  {va}: {:?}\n  {vb}: {:?}",
                    keys[i], ta[i], tb[i]
                ));
            }
        }
    }
    if !info.functions.is_empty() {
        let (fa, fb) = (sorted_functions(&mut ca), sorted_functions(&mut cb));
        if fa != fb {
            return Err(format!(
                "FUNCTION LIST WITHCODE differs:\n  {va}: {fa:?}\n  {vb}: {fb:?}"
            ));
        }
    }
    Ok(())
}
