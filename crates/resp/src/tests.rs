//! Decoder tests: every type, every prefix, every split point, limits, hostile input, and
//! property tests (round trip, arbitrary splits, garbage).
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::{Command, Decoder, Error, Frame, encode, encode_command};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// One wire example per type, with the frame it must decode to.
fn golden() -> Vec<(&'static [u8], Frame)> {
    vec![
        (b"+OK\r\n", Frame::SimpleString(b("OK"))),
        (b"+\r\n", Frame::SimpleString(b(""))),
        (b"-ERR unknown command 'x'\r\n", Frame::Error(b("ERR unknown command 'x'"))),
        (b":0\r\n", Frame::Integer(0)),
        (b":-9223372036854775808\r\n", Frame::Integer(i64::MIN)),
        (b":9223372036854775807\r\n", Frame::Integer(i64::MAX)),
        (b"$5\r\nhel\rl\r\n", Frame::BulkString(b("hel\rl"))),
        (b"$0\r\n\r\n", Frame::BulkString(b(""))),
        (b"$-1\r\n", Frame::NullBulkString),
        (b"*-1\r\n", Frame::NullArray),
        (b"*0\r\n", Frame::Array(vec![])),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Frame::Array(vec![Frame::BulkString(b("GET")), Frame::BulkString(b("k"))])),
        (b"*2\r\n*1\r\n:1\r\n*0\r\n", Frame::Array(vec![Frame::Array(vec![Frame::Integer(1)]), Frame::Array(vec![])])),
        (b"_\r\n", Frame::Null),
        (b"#t\r\n", Frame::Boolean(true)),
        (b"#f\r\n", Frame::Boolean(false)),
        (b",1.23\r\n", Frame::Double(1.23)),
        (b",10\r\n", Frame::Double(10.0)),
        (b",inf\r\n", Frame::Double(f64::INFINITY)),
        (b",-inf\r\n", Frame::Double(f64::NEG_INFINITY)),
        (b",nan\r\n", Frame::Double(f64::NAN)),
        (b",1.5e-7\r\n", Frame::Double(1.5e-7)),
        (b"(3492890328409238509324850943850943825024385\r\n", Frame::BigNumber(b("3492890328409238509324850943850943825024385"))),
        (b"(-1\r\n", Frame::BigNumber(b("-1"))),
        (b"!21\r\nSYNTAX invalid syntax\r\n", Frame::BulkError(b("SYNTAX invalid syntax"))),
        (b"=15\r\ntxt:Some string\r\n", Frame::VerbatimString { format: *b"txt", text: b("Some string") }),
        (b"=4\r\nmkd:\r\n", Frame::VerbatimString { format: *b"mkd", text: b("") }),
        (
            b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            Frame::Map(vec![(Frame::SimpleString(b("first")), Frame::Integer(1)), (Frame::SimpleString(b("second")), Frame::Integer(2))]),
        ),
        (b"%0\r\n", Frame::Map(vec![])),
        (b"~2\r\n+a\r\n_\r\n", Frame::Set(vec![Frame::SimpleString(b("a")), Frame::Null])),
        (
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Frame::Push(vec![Frame::BulkString(b("message")), Frame::BulkString(b("ch")), Frame::BulkString(b("hi"))]),
        ),
        (
            b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
            Frame::Attribute {
                attributes: vec![(
                    Frame::SimpleString(b("key-popularity")),
                    Frame::Map(vec![
                        (Frame::BulkString(b("a")), Frame::Double(0.1923)),
                        (Frame::BulkString(b("b")), Frame::Double(0.0012)),
                    ]),
                )],
                data: Box::new(Frame::Array(vec![Frame::Integer(2039123), Frame::Integer(9543892)])),
            },
        ),
        (
            // An attribute inside an aggregate annotates one element and does not count as one.
            b"*2\r\n:1\r\n|1\r\n+ttl\r\n:5\r\n:2\r\n",
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Attribute {
                    attributes: vec![(Frame::SimpleString(b("ttl")), Frame::Integer(5))],
                    data: Box::new(Frame::Integer(2)),
                },
            ]),
        ),
    ]
}

fn decode_stream(decoder: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<(Frame, usize)>, Error> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(f) = decoder.decode(&mut buf)? {
            out.push(f);
        }
    }
    assert!(buf.is_empty(), "leftover {:?}", buf);
    Ok(out)
}

#[test]
fn every_type_decodes_and_reencodes_to_the_same_bytes() {
    for (wire, want) in golden() {
        let mut d = Decoder::new();
        let got = decode_stream(&mut d, &[wire]).unwrap();
        assert_eq!(
            got,
            vec![(want.clone(), wire.len())],
            "{}",
            wire.escape_ascii()
        );
        let mut out = BytesMut::new();
        encode(&want, &mut out);
        let reencoded_is_same = &out[..] == wire;
        // Doubles have one spelling on our side (`10` comes back as `10.0`).
        assert!(
            reencoded_is_same || wire.contains(&b','),
            "{}",
            wire.escape_ascii()
        );
    }
}

#[test]
fn every_prefix_is_partial_and_consumes_nothing() {
    for (wire, _) in golden() {
        for cut in 0..wire.len() {
            let mut d = Decoder::new();
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(
                d.decode(&mut buf).unwrap(),
                None,
                "{} cut at {cut}",
                wire.escape_ascii()
            );
            assert_eq!(buf.len(), cut);
            assert_eq!(d.position(), 0);
        }
    }
}

#[test]
fn every_split_point_and_byte_by_byte_give_the_same_frames() {
    let stream: Vec<u8> = golden().iter().flat_map(|(w, _)| w.to_vec()).collect();
    let want: Vec<(Frame, usize)> = golden().into_iter().map(|(w, f)| (f, w.len())).collect();
    for cut in 0..=stream.len() {
        let got = decode_stream(&mut Decoder::new(), &[&stream[..cut], &stream[cut..]]).unwrap();
        assert_eq!(got, want, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let mut d = Decoder::new();
    assert_eq!(decode_stream(&mut d, &bytes).unwrap(), want);
    assert_eq!(d.position(), stream.len() as u64);
}

#[test]
fn a_big_bulk_is_not_rescanned_on_every_chunk() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"$1000000\r\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    // The decoder knows the frame needs 10 + 1_000_000 + 2 bytes and will not look before.
    assert_eq!(d.need, 1_000_012);
    buf.extend_from_slice(&[b'x'; 500_000]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.need, 1_000_012);
    buf.extend_from_slice(&[b'x'; 500_000]);
    buf.extend_from_slice(b"\r\n");
    let (f, n) = d.decode(&mut buf).unwrap().unwrap();
    assert_eq!((f.as_bytes().unwrap().len(), n), (1_000_000, 1_000_012));
}

#[test]
fn a_big_array_resumes_where_it_stopped() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"*100000\r\n"[..]);
    for _ in 0..50_000 {
        buf.extend_from_slice(b":1\r\n");
    }
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    // Resumes at the 50001st element, one level deep, 50000 elements still to come.
    assert_eq!((d.pos, d.stack.as_slice()), (9 + 4 * 50_000, &[50_000][..]));
    for _ in 0..50_000 {
        buf.extend_from_slice(b":1\r\n");
    }
    let (f, n) = d.decode(&mut buf).unwrap().unwrap();
    assert_eq!((f.as_slice().unwrap().len(), n), (100_000, 9 + 400_000));
}

fn decode_err(wire: &[u8], d: Decoder) -> Error {
    let mut d = d;
    let mut buf = BytesMut::from(wire);
    loop {
        match d.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{} decoded without error", wire.escape_ascii()),
            Err(e) => return e,
        }
    }
}

#[test]
fn malformed_input_gives_errors_with_offsets() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"+OK\r\n:1\r\n$-5x\r\n",
            "invalid bulk length `-5x` at byte 10: expected a decimal integer",
        ),
        (
            b"$-2\r\n",
            "invalid bulk length `-2` at byte 1: expected -1 (null) or a length of 0 or more",
        ),
        (
            b"$3\r\nabcd\r\n",
            "malformed bulk string at byte 7: found `d\\r`, expected CRLF",
        ),
        (b"*-2\r\n", "invalid array length `-2` at byte 1"),
        (b"%-1\r\n", "invalid map length `-1` at byte 1"),
        (b"?\r\n", "unknown frame type ? at byte 0"),
        (
            b"#x\r\n",
            "malformed boolean at byte 1: found `x`, expected `t` or `f`",
        ),
        (b",abc\r\n", "malformed double at byte 1: found `abc`"),
        (b"(12a\r\n", "malformed big number at byte 1"),
        (b"_x\r\n", "malformed null at byte 1"),
        (b"=3\r\ntxt\r\n", "malformed verbatim string at byte 4"),
        (b"=5\r\ntxtxx\r\n", "malformed verbatim string at byte 4"),
        (b"+OK\rX", "malformed simple string at byte 3"),
        (
            b":12345678901234567890\r\n",
            "invalid integer `12345678901234567890` at byte 1",
        ),
        (
            b"*1\r\n*1\r\n+x\r\n\r\n",
            "unknown frame type \\r at byte 12",
        ),
    ];
    for (wire, want) in cases {
        let e = decode_err(wire, Decoder::new()).to_string();
        assert!(e.starts_with(want), "{}: {e}", wire.escape_ascii());
    }
}

#[test]
fn limits_and_hostile_lengths_fail_fast_without_allocating() {
    // Announced sizes far beyond what is present: errors at once, no waiting, no allocation.
    let e = decode_err(b"$9999999999999\r\n", Decoder::new());
    assert!(
        matches!(
            e,
            Error::BulkTooLong {
                len: 9_999_999_999_999,
                offset: 0,
                ..
            }
        ),
        "{e}"
    );
    let e = decode_err(b"*9999999999999\r\n", Decoder::new());
    assert!(matches!(e, Error::AggregateTooLong { .. }), "{e}");
    let e = decode_err(b"$99999999999999999999999\r\n", Decoder::new());
    assert!(matches!(e, Error::InvalidNumber { .. }), "{e}");

    // Under the limits, a large announced count with few bytes present is just "need more".
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"*60000000\r\n%60000000\r\n$536870912\r\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert!(d.stack.capacity() < 16);

    let small = || {
        Decoder::builder()
            .max_bulk_len(4)
            .max_aggregate_len(2)
            .max_depth(3)
            .max_line_len(8)
            .build()
    };
    assert!(matches!(
        decode_err(b"$5\r\n", small()),
        Error::BulkTooLong {
            len: 5,
            limit: 4,
            ..
        }
    ));
    assert!(matches!(
        decode_err(b"!5\r\n", small()),
        Error::BulkTooLong { .. }
    ));
    assert!(matches!(
        decode_err(b"*3\r\n", small()),
        Error::AggregateTooLong {
            len: 3,
            limit: 2,
            ..
        }
    ));
    assert!(matches!(
        decode_err(b"%3\r\n", small()),
        Error::AggregateTooLong { .. }
    ));
    assert!(matches!(
        decode_err(b"*1\r\n*1\r\n*1\r\n*1\r\n", small()),
        Error::TooDeep {
            offset: 12,
            limit: 3
        }
    ));
    assert!(matches!(
        decode_err(b"+123456789", small()),
        Error::LineTooLong { .. }
    ));
    assert!(matches!(
        decode_err(b"+123456789\r\n", small()),
        Error::LineTooLong { .. }
    ));
    let mut d = small();
    assert_eq!(
        decode_stream(&mut d, &[b"*1\r\n*1\r\n*0\r\n$4\r\nabcd\r\n+1234567\r\n"])
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_decoder_is_dead_after_an_error() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"+OK\r\n?\r\n+OK\r\n"[..]);
    assert!(d.decode(&mut buf).unwrap().is_some());
    assert!(matches!(
        d.decode(&mut buf),
        Err(Error::UnknownType { offset: 5, .. })
    ));
    assert!(d.is_dead());
    assert!(matches!(d.decode(&mut buf), Err(Error::Dead { offset: 5 })));
    assert!(matches!(
        d.decode_command(&mut buf),
        Err(Error::Dead { offset: 5 })
    ));
}

fn decode_commands(decoder: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Command>, Error> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(cmd) = decoder.decode_command(&mut buf)? {
            out.push(cmd);
        }
    }
    assert!(buf.is_empty(), "leftover {:?}", buf);
    Ok(out)
}

fn cmd(args: &[&str], wire_len: usize) -> (Vec<Bytes>, usize) {
    (
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect(),
        wire_len,
    )
}

const COMMANDS: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$0\r\n\r\n\n\r\nPING\r\n*0\r\n  set  \"a b\\x41\\n\" 'it\\'s'  \"\"\n";

fn commands_want() -> Vec<(Vec<Bytes>, usize)> {
    vec![
        cmd(&["SET", "k:1", ""], 28),
        cmd(&[], 1),
        cmd(&[], 2),
        cmd(&["PING"], 6),
        cmd(&[], 4),
        cmd(&["set", "a bA\n", "it's", ""], 31),
    ]
}

#[test]
fn commands_decode_on_the_fast_path_at_every_split_point() {
    let want = commands_want();
    assert_eq!(want.iter().map(|c| c.1).sum::<usize>(), COMMANDS.len());
    for cut in 0..=COMMANDS.len() {
        let mut d = Decoder::new();
        let got = decode_commands(&mut d, &[&COMMANDS[..cut], &COMMANDS[cut..]]).unwrap();
        let got: Vec<_> = got
            .into_iter()
            .map(|c| (c.clone().into_args(), c.wire_len()))
            .collect();
        assert_eq!(got, want, "split at {cut}");
        assert_eq!(d.position(), COMMANDS.len() as u64);
    }
    let one_by_one: Vec<&[u8]> = COMMANDS.chunks(1).collect();
    assert_eq!(
        decode_commands(&mut Decoder::new(), &one_by_one)
            .unwrap()
            .len(),
        want.len()
    );
}

#[test]
fn command_errors() {
    let err = |wire: &[u8]| {
        let mut d = Decoder::builder()
            .max_line_len(16)
            .max_aggregate_len(4)
            .build();
        let mut buf = BytesMut::from(wire);
        loop {
            match d.decode_command(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{} decoded", wire.escape_ascii()),
                Err(e) => return e.to_string(),
            }
        }
    };
    assert!(
        err(b"*1\r\n:1\r\n")
            .starts_with("expected `$` (a bulk string argument) at byte 4, found :")
    );
    assert!(
        err(b"*1\r\n$-1\r\n")
            .starts_with("invalid bulk length `-1` at byte 5: expected a length of 0 or more")
    );
    assert!(err(b"*1\r\n$x\r\n").starts_with("invalid bulk length `x` at byte 5"));
    assert!(err(b"*5\r\n").starts_with("command of 5 elements at byte 0 is over the limit of 4"));
    assert!(err(b"*1x\r\n").starts_with("invalid command length `1x` at byte 1"));
    assert!(err(b"*1\r\n$1\r\nab\r\n").starts_with("malformed bulk string argument at byte 9"));
    assert!(err(b"PING\r\nset \"a\"b\r\n").starts_with("malformed inline command at byte 6"));
    assert!(err(b"set \"ab\r\n").starts_with("malformed inline command at byte 0"));
    assert!(err(b"set 'ab\r\n").starts_with("malformed inline command at byte 0"));
    assert!(err(b"01234567890123456789").contains("no line end within 16 bytes"));
}

#[test]
fn frames_and_commands_can_alternate_on_one_decoder() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"+FULLRESYNC abc 0\r\n*1\r\n$4\r\nPING\r\n"[..]);
    assert_eq!(d.decode(&mut buf).unwrap().unwrap().1, 19);
    assert_eq!(
        d.decode_command(&mut buf).unwrap().unwrap().into_args(),
        ["PING"]
    );
    // Switching mode in the middle of a frame restarts it correctly.
    let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPI"[..]);
    assert_eq!(d.decode(&mut buf).unwrap(), None);
    assert_eq!(d.decode_command(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"NG\r\n");
    assert_eq!(d.decode_command(&mut buf).unwrap().unwrap().wire_len(), 14);
    assert_eq!(d.position(), 19 + 14 + 14);
}

#[test]
fn encoded_commands_decode_back() {
    let mut buf = BytesMut::new();
    encode_command(&["SET", "k", "v"], &mut buf);
    let c = Decoder::new().decode_command(&mut buf).unwrap().unwrap();
    assert_eq!(c, Command::new(["SET", "k", "v"]));
    assert_eq!(
        c.to_frame(),
        Frame::Array(vec![
            Frame::BulkString(b("SET")),
            Frame::BulkString(b("k")),
            Frame::BulkString(b("v"))
        ])
    );
    assert_eq!(c.name(), Some(&b"SET"[..]));
}

// ---- property tests ----

fn line_text() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |c| *c != b'\r' && *c != b'\n'),
        0..12,
    )
    .prop_map(Bytes::from)
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::SimpleString),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        blob().prop_map(Frame::BulkString),
        Just(Frame::NullBulkString),
        Just(Frame::NullArray),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        prop_oneof![
            any::<f64>(),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN)
        ]
        .prop_map(Frame::Double),
        "-?[1-9][0-9]{0,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        blob().prop_map(Frame::BulkError),
        (any::<[u8; 3]>(), blob())
            .prop_map(|(format, text)| Frame::VerbatimString { format, text }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let pairs = proptest::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            pairs.clone().prop_map(Frame::Map),
            (pairs, inner).prop_map(|(attributes, data)| Frame::Attribute {
                attributes,
                data: Box::new(data)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_round_trips(frames in proptest::collection::vec(arb_frame(), 1..6)) {
        let mut wire = BytesMut::new();
        let mut sizes = Vec::new();
        for f in &frames {
            let before = wire.len();
            encode(f, &mut wire);
            sizes.push(wire.len() - before);
        }
        let got = crate::decode_all(&wire).unwrap();
        let want: Vec<(Frame, usize)> = frames.into_iter().zip(sizes).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn any_chunking_gives_the_same_frames_and_sizes(
        frames in proptest::collection::vec(arb_frame(), 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..8),
    ) {
        let mut wire = BytesMut::new();
        frames.iter().for_each(|f| encode(f, &mut wire));
        let whole = crate::decode_all(&wire).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.push(0);
        cuts.push(wire.len());
        cuts.sort_unstable();
        let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        prop_assert_eq!(decode_stream(&mut Decoder::new(), &chunks).unwrap(), whole);
    }

    #[test]
    fn any_chunking_of_commands_gives_the_same_commands(
        commands in proptest::collection::vec(proptest::collection::vec(blob(), 0..9), 1..6),
        cuts in proptest::collection::vec(0usize..1000, 0..8),
    ) {
        let mut wire = BytesMut::new();
        commands.iter().for_each(|c| encode_command(c, &mut wire));
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.push(0);
        cuts.push(wire.len());
        cuts.sort_unstable();
        let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        let got = decode_commands(&mut Decoder::new(), &chunks).unwrap();
        let want: Vec<Command> = commands.into_iter().map(Command::new).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), split in 0usize..200) {
        let split = split.min(data.len());
        for as_commands in [false, true] {
            let mut d = Decoder::builder().max_depth(8).max_line_len(64).build();
            let mut buf = BytesMut::new();
            let mut consumed = 0;
            for chunk in [&data[..split], &data[split..]] {
                buf.extend_from_slice(chunk);
                loop {
                    let r = if as_commands {
                        d.decode_command(&mut buf).map(|c| c.map(|c| c.wire_len()))
                    } else {
                        d.decode(&mut buf).map(|f| f.map(|f| f.1))
                    };
                    match r {
                        Ok(Some(n)) => consumed += n,
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            prop_assert_eq!(consumed as u64, d.position());
            prop_assert_eq!(consumed + buf.len(), data.len());
        }
    }
}

#[test]
fn long_commands_keep_their_arguments_on_the_heap() {
    let args: Vec<String> = (0..40).map(|i| "a".repeat(i)).collect();
    let mut wire = BytesMut::new();
    encode_command(&args, &mut wire);
    let len = wire.len();
    let c = Decoder::new().decode_command(&mut wire).unwrap().unwrap();
    assert_eq!((c.len(), c.wire_len()), (40, len));
    assert_eq!(c.arg(39), Some(args[39].as_bytes()));
    assert_eq!(c.args().next_back(), Some(args[39].as_bytes()));
    assert_eq!(c.arg_bytes(7).unwrap(), args[7].as_bytes());
    assert_eq!(c, Command::new(&args));
    assert_eq!(c.clone().into_args().len(), 40);
    assert_eq!(c.to_frame().as_slice().unwrap().len(), 40);
    let mut again = BytesMut::new();
    c.encode(&mut again);
    assert_eq!(again.len(), len);
}

#[test]
fn the_quick_and_careful_paths_agree() {
    // Whole frames take the one-pass path; a frame first seen partly takes the careful one.
    for (wire, want) in golden() {
        let mut quick = Decoder::new();
        let mut buf = BytesMut::from(wire);
        assert_eq!(
            quick.decode(&mut buf).unwrap(),
            Some((want.clone(), wire.len()))
        );
        let mut careful = Decoder::new();
        let mut buf = BytesMut::from(&wire[..1]);
        assert_eq!(careful.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&wire[1..]);
        assert_eq!(careful.decode(&mut buf).unwrap(), Some((want, wire.len())));
    }
}
