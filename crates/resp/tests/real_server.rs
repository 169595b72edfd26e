//! The decoder against real servers, for every installed version: raw commands over a std
//! `TcpStream`, replies decoded with our [`Decoder`]. Every RESP2 reply type; on 6.0+ every
//! RESP3 type a server can send (`HELLO 3`, `DEBUG PROTOCOL ...`, pub/sub and client tracking
//! pushes); and the replication stream decoded with the command fast path, its byte count
//! checked against the master's own `master_repl_offset`.
//!
//! One server per version, reused by every check, to keep the run short.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis_sync_resp::{Command, Decoder, Frame, encode_command};
use redis_sync_testkit::{Server, ServerVersion, poll_until, versions};

/// A raw connection: our encoder out, our decoder in, and a count of every byte read.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    read: u64,
    name: String,
}

impl Conn {
    fn open(server: &Server) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(),
            read: 0,
            name: server.version().name().to_string(),
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    /// Reads more bytes; panics on EOF or after the read timeout (no test can hang).
    fn fill(&mut self) {
        let mut tmp = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut tmp)
            .unwrap_or_else(|e| panic!("{}: read failed: {e}", self.name));
        assert!(n > 0, "{}: server closed the connection", self.name);
        self.read += n as u64;
        self.buf.extend_from_slice(&tmp[..n]);
    }

    fn frame(&mut self) -> (Frame, usize) {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                return f;
            }
            self.fill();
        }
    }

    fn call(&mut self, args: &[&str]) -> Frame {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args);
        self.frame().0
    }

    /// Every byte read so far was decoded into frames, and the sizes add up.
    fn assert_all_bytes_accounted(&self) {
        assert!(
            self.buf.is_empty(),
            "{}: undecoded bytes {:?}",
            self.name,
            self.buf
        );
        assert_eq!(
            self.decoder.position(),
            self.read,
            "{}: frame sizes do not add up to bytes read",
            self.name
        );
    }
}

fn bulk(s: &str) -> Frame {
    Frame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
}

fn simple(s: &str) -> Frame {
    Frame::SimpleString(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn every_reply_type_from_every_installed_server() {
    let all = versions();
    if all.is_empty() {
        eprintln!("skipped: no server installed");
        return;
    }
    for v in &all {
        eprintln!("{}: checking", v.name());
        let server = Server::builder(v)
            .arg("--repl-diskless-sync")
            .arg("no")
            .start();
        resp2_replies(&server);
        if v.at_least(6, 0) {
            resp3_replies(&server, v);
        }
        replication_stream(&server);
    }
    eprintln!(
        "checked {} versions: {}",
        all.len(),
        all.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
    );
}

fn resp2_replies(server: &Server) {
    let mut c = Conn::open(server);
    assert_eq!(c.call(&["PING"]), simple("PONG"));
    assert_eq!(c.call(&["SET", "k", "v"]), simple("OK"));
    assert_eq!(c.call(&["GET", "k"]), bulk("v"));
    assert_eq!(c.call(&["GET", "missing"]), Frame::NullBulkString);
    assert_eq!(c.call(&["INCR", "n"]), Frame::Integer(1));
    assert_eq!(
        c.call(&["INCRBY", "n", "-9223372036854775807"]),
        Frame::Integer(-9223372036854775806)
    );
    let err = c.call(&["NOSUCHCOMMAND", "x"]);
    assert!(
        matches!(&err, Frame::Error(e) if e.starts_with(b"ERR unknown command")),
        "{err:?}"
    );
    assert_eq!(c.call(&["RPUSH", "l", "a", "", "c"]), Frame::Integer(3));
    assert_eq!(
        c.call(&["LRANGE", "l", "0", "-1"]),
        Frame::Array(vec![bulk("a"), bulk(""), bulk("c")])
    );
    assert_eq!(
        c.call(&["LRANGE", "missing", "0", "-1"]),
        Frame::Array(vec![])
    );
    // Nested arrays: SCAN replies [cursor, [keys...]].
    match c.call(&["SCAN", "0", "COUNT", "1000"]) {
        Frame::Array(items) => {
            assert_eq!(items.len(), 2);
            assert_eq!(items[0], bulk("0"));
            assert_eq!(items[1].as_slice().unwrap().len(), 3, "k, n, l");
        }
        other => panic!("{other:?}"),
    }
    // RESP2's null array: EXEC of a transaction aborted by WATCH.
    assert_eq!(c.call(&["WATCH", "k"]), simple("OK"));
    assert_eq!(c.call(&["SET", "k", "changed"]), simple("OK"));
    assert_eq!(c.call(&["MULTI"]), simple("OK"));
    assert_eq!(c.call(&["PING"]), simple("QUEUED"));
    assert_eq!(c.call(&["EXEC"]), Frame::NullArray);
    // Binary-safe bulk strings, and a 3 MiB value that arrives in many reads.
    let binary: Vec<u8> = (0..=255u8).chain(*b"\r\n$-1\r\n*3\r\n").collect();
    c.send(&[b"SET", b"bin", &binary]);
    assert_eq!(c.frame().0, simple("OK"));
    c.send(&[b"GET", b"bin"]);
    assert_eq!(c.frame().0, Frame::BulkString(Bytes::from(binary)));
    let big = vec![b'x'; 3 << 20];
    c.send(&[b"SET", b"big", &big]);
    assert_eq!(c.frame().0, simple("OK"));
    c.send(&[b"GET", b"big"]);
    let (f, n) = c.frame();
    assert_eq!(
        (f.as_bytes().map(|b| b.len()), n),
        (Some(3 << 20), (3 << 20) + 12)
    );
    // Pipelined: many replies in one read, each with its exact size.
    let mut out = BytesMut::new();
    for i in 0..100 {
        encode_command(&["ECHO", &"e".repeat(i)], &mut out);
    }
    c.stream.write_all(&out).unwrap();
    for i in 0..100 {
        assert_eq!(
            c.frame(),
            (bulk(&"e".repeat(i)), format!("${i}\r\n").len() + i + 2)
        );
    }
    c.assert_all_bytes_accounted();
}

fn resp3_replies(server: &Server, v: &ServerVersion) {
    let name = v.name();
    let mut c = Conn::open(server);
    // HELLO 3 replies with a map: server, version, proto, id, mode, role, modules.
    match c.call(&["HELLO", "3"]) {
        Frame::Map(pairs) => {
            let proto = pairs
                .iter()
                .find(|(k, _)| k.as_bytes().is_some_and(|k| &k[..] == b"proto"));
            assert_eq!(
                proto.map(|p| &p.1),
                Some(&Frame::Integer(3)),
                "{name}: {pairs:?}"
            );
        }
        other => panic!("{name}: HELLO 3 gave {other:?}"),
    }
    assert_eq!(c.call(&["GET", "missing"]), Frame::Null, "{name}");
    assert_eq!(c.call(&["PING"]), simple("PONG"));
    let dbg = |c: &mut Conn, what: &str| c.call(&["DEBUG", "PROTOCOL", what]);
    assert_eq!(dbg(&mut c, "string"), bulk("Hello World"));
    assert_eq!(dbg(&mut c, "integer"), Frame::Integer(12345));
    // 3.141 on 6.2+, 3.14159265359 on 6.0.
    let d = dbg(&mut c, "double");
    assert!(
        matches!(d, Frame::Double(x) if x.to_string().starts_with("3.141")),
        "{name}: {d:?}"
    );
    assert_eq!(
        dbg(&mut c, "bignum"),
        Frame::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999"))
    );
    assert_eq!(dbg(&mut c, "null"), Frame::Null);
    assert_eq!(dbg(&mut c, "true"), Frame::Boolean(true));
    assert_eq!(dbg(&mut c, "false"), Frame::Boolean(false));
    assert_eq!(
        dbg(&mut c, "array"),
        Frame::Array(vec![
            Frame::Integer(0),
            Frame::Integer(1),
            Frame::Integer(2)
        ])
    );
    assert_eq!(
        dbg(&mut c, "set"),
        Frame::Set(vec![
            Frame::Integer(0),
            Frame::Integer(1),
            Frame::Integer(2)
        ])
    );
    assert_eq!(
        dbg(&mut c, "map"),
        Frame::Map(vec![
            (Frame::Integer(0), Frame::Boolean(false)),
            (Frame::Integer(1), Frame::Boolean(true)),
            (Frame::Integer(2), Frame::Boolean(false)),
        ])
    );
    assert_eq!(
        dbg(&mut c, "verbatim"),
        Frame::VerbatimString {
            format: *b"txt",
            text: Bytes::from_static(b"This is a verbatim\nstring")
        }
    );
    assert_eq!(
        dbg(&mut c, "attrib"),
        Frame::Attribute {
            attributes: vec![(
                bulk("key-popularity"),
                Frame::Array(vec![bulk("key:123"), Frame::Integer(90)])
            )],
            data: Box::new(bulk("Some real reply following the attribute")),
        },
        "{name}"
    );
    // A push and the command's real reply: the push comes first up to 7.0, after the reply
    // from 7.2 (pushes are deferred to the end of the command).
    let first = dbg(&mut c, "push");
    let second = c.frame().0;
    let push = Frame::Push(vec![bulk("server-cpu-usage"), Frame::Integer(42)]);
    let reply = bulk("Some real reply following the push reply");
    assert!(
        (first == push && second == reply) || (first == reply && second == push),
        "{name}: {first:?} then {second:?}"
    );
    // RESP3's null for an aborted transaction.
    c.call(&["WATCH", "k"]);
    c.call(&["SET", "k", "again"]);
    c.call(&["MULTI"]);
    assert_eq!(c.call(&["EXEC"]), Frame::Null, "{name}");
    // Bulk errors (`!`): no Redis or Valkey command replies with one (addReplyError always
    // writes `-`), so they are covered by the unit tests only.

    // Client-side caching: an invalidation push when a read key changes elsewhere.
    let mut other = Conn::open(server);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), simple("OK"));
    assert_eq!(c.call(&["GET", "tracked"]), Frame::Null);
    assert_eq!(other.call(&["SET", "tracked", "1"]), simple("OK"));
    assert_eq!(
        c.frame().0,
        Frame::Push(vec![
            bulk("invalidate"),
            Frame::Array(vec![bulk("tracked")])
        ]),
        "{name}"
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), simple("OK"));

    // Pub/sub in RESP3: subscribe confirmations and messages are pushes.
    assert_eq!(
        c.call(&["SUBSCRIBE", "ch"]),
        Frame::Push(vec![bulk("subscribe"), bulk("ch"), Frame::Integer(1)])
    );
    // The subscription was confirmed, so the server counts it already.
    assert_eq!(other.call(&["PUBLISH", "ch", "hello"]), Frame::Integer(1));
    assert_eq!(
        c.frame().0,
        Frame::Push(vec![bulk("message"), bulk("ch"), bulk("hello")])
    );
    // In RESP3 a subscribed client may still run ordinary commands.
    assert_eq!(
        c.call(&["UNSUBSCRIBE", "ch"]),
        Frame::Push(vec![bulk("unsubscribe"), bulk("ch"), Frame::Integer(0)])
    );
    assert_eq!(c.call(&["PING"]), simple("PONG"));
    c.assert_all_bytes_accounted();
    other.assert_all_bytes_accounted();
}

/// Act as a replica: `PSYNC ? -1`, skip the RDB payload, then decode the command stream with
/// the fast path and check that the wire lengths add up to the master's own offset.
fn replication_stream(server: &Server) {
    let name = server.version().name().to_string();
    let mut r = Conn::open(server);
    assert_eq!(r.call(&["REPLCONF", "capa", "psync2"]), simple("OK"));
    r.send(&[b"PSYNC", b"?", b"-1"]);
    let start = match r.frame().0 {
        Frame::SimpleString(s) => {
            let text = String::from_utf8(s.to_vec()).unwrap();
            let mut parts = text.split(' ');
            assert_eq!(parts.next(), Some("FULLRESYNC"), "{name}: {text}");
            parts.nth(1).unwrap().parse::<u64>().unwrap()
        }
        other => panic!("{name}: PSYNC gave {other:?}"),
    };
    // Disk-based transfer: `\n` keep-alives while the RDB is written, then `$<len>\r\n<rdb>`.
    let mut keepalives = 0;
    let rdb_len = loop {
        match r.decoder.decode_command(&mut r.buf).unwrap() {
            Some(cmd) if cmd.is_empty() => keepalives += 1,
            // The payload header is not RESP; as an inline line it reads `$<len>`.
            Some(cmd) => {
                let header = std::str::from_utf8(cmd.name().unwrap()).unwrap();
                break header.strip_prefix('$').unwrap().parse::<usize>().unwrap();
            }
            None => r.fill(),
        }
    };
    while r.buf.len() < rdb_len {
        r.fill();
    }
    let rdb = r.buf.split_to(rdb_len);
    assert!(
        rdb.starts_with(b"REDIS") || rdb.starts_with(b"VALKEY"),
        "{name}: {:?}",
        &rdb[..9]
    );
    // The RDB payload was taken off the buffer by hand: the decoder did not count it.
    let before_stream = r.decoder.position();

    // Writes on another connection, including binary and empty arguments.
    let mut w = Conn::open(server);
    let mut sent = Vec::new();
    for i in 0..50 {
        let args: Vec<Vec<u8>> = vec![
            b"SET".to_vec(),
            format!("repl:{i}").into_bytes(),
            vec![b'\r'; i],
        ];
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        w.send(&refs);
        assert_eq!(w.frame().0, simple("OK"));
        sent.push(args);
    }
    assert_eq!(w.call(&["DEL", "repl:0", "repl:1"]), Frame::Integer(2));
    let target: u64 = poll_until(Duration::from_secs(10), "master_repl_offset", || {
        server
            .info("replication")
            .get("master_repl_offset")
            .and_then(|o| o.parse().ok())
    });
    let mut stream_bytes = 0u64;
    let mut commands: Vec<Command> = Vec::new();
    // Bounded: each turn decodes a command or reads at least one byte, up to the target.
    while start + stream_bytes < target {
        match r.decoder.decode_command(&mut r.buf).unwrap() {
            Some(cmd) => {
                stream_bytes += cmd.wire_len() as u64;
                commands.push(cmd);
            }
            None => r.fill(),
        }
    }
    assert_eq!(
        start + stream_bytes,
        target,
        "{name}: wire lengths must add up to the master's offset"
    );
    assert_eq!(r.decoder.position() - before_stream, stream_bytes);
    // The stream holds our writes in order (plus SELECT and, maybe, PINGs).
    let sets: Vec<Vec<Vec<u8>>> = commands
        .iter()
        .filter(|c| c.name().is_some_and(|n| n.eq_ignore_ascii_case(b"set")))
        .map(|c| c.args().map(|a| a.to_vec()).collect())
        .collect();
    assert_eq!(sets, sent, "{name}");
    let last = commands.last().unwrap();
    assert!(
        last.name().unwrap().eq_ignore_ascii_case(b"del"),
        "{name}: {last:?}"
    );
    eprintln!(
        "{name}: replication stream: {} commands, {stream_bytes} bytes, {keepalives} keep-alives",
        commands.len()
    );
}
