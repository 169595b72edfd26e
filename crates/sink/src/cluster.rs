//! The cluster's slot map: which master serves each of the 16384 slots, read with
//! `CLUSTER SHARDS` (7.0+) or `CLUSTER SLOTS`, and patched by `MOVED` replies.

use redis_sync_resp::Frame;

use crate::conn::{Conn, Dial};
use crate::error::Error;

pub(crate) const SLOTS: usize = 16384;

/// Slot → master address.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    slots: Vec<Option<u32>>,
    addrs: Vec<String>,
}

impl SlotMap {
    pub(crate) fn new(ranges: &[(u16, u16, String)]) -> SlotMap {
        let mut map = SlotMap {
            slots: vec![None; SLOTS],
            addrs: Vec::new(),
        };
        for (lo, hi, addr) in ranges {
            for slot in *lo..=*hi {
                map.set(slot, addr);
            }
        }
        map
    }

    pub(crate) fn set(&mut self, slot: u16, addr: &str) {
        let i = match self.addrs.iter().position(|a| a == addr) {
            Some(i) => i,
            None => {
                self.addrs.push(addr.to_string());
                self.addrs.len() - 1
            }
        };
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            *s = Some(i as u32);
        }
    }

    pub(crate) fn get(&self, slot: u16) -> Option<&str> {
        let i = (*self.slots.get(usize::from(slot))?)?;
        self.addrs.get(i as usize).map(String::as_str)
    }

    /// The distinct masters serving at least one slot.
    pub(crate) fn masters(&self) -> Vec<String> {
        let mut used = vec![false; self.addrs.len()];
        for i in self.slots.iter().flatten() {
            used[*i as usize] = true;
        }
        self.addrs
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(a, _)| a.clone())
            .collect()
    }
}

fn bytes_text(f: &Frame) -> Option<String> {
    f.as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn int(f: &Frame) -> Option<i64> {
    f.as_integer()
        .or_else(|| bytes_text(f).and_then(|t| t.parse().ok()))
}

fn host(ip: Option<String>, seed: &str) -> String {
    match ip {
        Some(ip) if !ip.is_empty() && ip != "?" => ip,
        // An unknown address means "the node you asked": use the seed's host.
        _ => seed
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h)
            .to_string(),
    }
}

/// Parses a `CLUSTER SLOTS` reply.
pub(crate) fn parse_slots(reply: &Frame, seed: &str) -> Option<Vec<(u16, u16, String)>> {
    let mut out = Vec::new();
    for range in reply.as_slice()? {
        let r = range.as_slice()?;
        let lo = u16::try_from(int(r.first()?)?).ok()?;
        let hi = u16::try_from(int(r.get(1)?)?).ok()?;
        let master = r.get(2)?.as_slice()?;
        let ip = master.first().and_then(bytes_text);
        let port = int(master.get(1)?)?;
        out.push((lo, hi, format!("{}:{port}", host(ip, seed))));
    }
    Some(out)
}

/// Looks up `name` in a RESP2 flat key/value array or a RESP3 map.
fn field<'a>(f: &'a Frame, name: &str) -> Option<&'a Frame> {
    match f {
        Frame::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_bytes().is_some_and(|b| b.as_ref() == name.as_bytes()))
            .map(|(_, v)| v),
        Frame::Array(items) => items
            .chunks(2)
            .find(|kv| {
                kv[0]
                    .as_bytes()
                    .is_some_and(|b| b.as_ref() == name.as_bytes())
            })
            .and_then(|kv| kv.get(1)),
        _ => None,
    }
}

/// Parses a `CLUSTER SHARDS` reply: each shard's slot ranges and its online master. A node
/// may announce a plain `port` and a `tls-port`; `tls` (the sink talks TLS) picks the latter
/// when there is one, as a TLS hello to the plain port would never be answered.
pub(crate) fn parse_shards(
    reply: &Frame,
    seed: &str,
    tls: bool,
) -> Option<Vec<(u16, u16, String)>> {
    let mut out = Vec::new();
    for shard in reply.as_slice()? {
        let slots = field(shard, "slots")?.as_slice()?;
        let nodes = field(shard, "nodes")?.as_slice()?;
        let master = nodes.iter().find(|n| {
            field(n, "role").and_then(bytes_text).as_deref() == Some("master")
                && field(n, "health").and_then(bytes_text).as_deref() != Some("fail")
        });
        let Some(master) = master else { continue };
        let ip = field(master, "ip").and_then(bytes_text);
        let (first, second) = if tls {
            ("tls-port", "port")
        } else {
            ("port", "tls-port")
        };
        let port = field(master, first)
            .or_else(|| field(master, second))
            .and_then(int)?;
        let addr = format!("{}:{port}", host(ip, seed));
        for pair in slots.chunks(2) {
            let lo = u16::try_from(int(pair.first()?)?).ok()?;
            let hi = u16::try_from(int(pair.get(1)?)?).ok()?;
            out.push((lo, hi, addr.clone()));
        }
    }
    Some(out)
}

/// Reads the slot map from the first of `seeds` that answers.
pub(crate) async fn fetch(seeds: &[String], dial: &Dial) -> Result<SlotMap, Error> {
    let mut tried = Vec::new();
    for seed in seeds {
        let mut conn = match Conn::open(seed, dial).await {
            Ok(c) => c,
            Err(e) => {
                tried.push(format!("{seed}: {e}"));
                continue;
            }
        };
        let mut ranges = None;
        if let Ok(reply) = conn.call(&["CLUSTER", "SHARDS"]).await {
            ranges = parse_shards(&reply, seed, dial.tls.is_some());
        }
        if ranges.as_ref().is_none_or(Vec::is_empty) {
            match conn.call(&["CLUSTER", "SLOTS"]).await {
                Ok(reply) => ranges = parse_slots(&reply, seed),
                Err(e) => {
                    tried.push(format!("{seed}: {e}"));
                    continue;
                }
            }
        }
        match ranges {
            Some(r) if !r.is_empty() => return Ok(SlotMap::new(&r)),
            _ => tried.push(format!("{seed}: no slots assigned")),
        }
    }
    Err(Error::Topology {
        message: format!(
            "no node gave a slot map (tried {}); is the target a cluster and are its slots assigned?",
            tried.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn b(s: &str) -> Frame {
        Frame::BulkString(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn slots_reply() {
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(0),
                Frame::Integer(5460),
                Frame::Array(vec![b("127.0.0.1"), Frame::Integer(7000), b("id")]),
            ]),
            Frame::Array(vec![
                Frame::Integer(5461),
                Frame::Integer(16383),
                Frame::Array(vec![b(""), Frame::Integer(7001)]),
            ]),
        ]);
        let r = parse_slots(&reply, "10.0.0.1:7001").expect("parses");
        let map = SlotMap::new(&r);
        assert_eq!(map.get(0), Some("127.0.0.1:7000"));
        assert_eq!(map.get(16383), Some("10.0.0.1:7001"));
        assert_eq!(map.masters().len(), 2);
    }

    #[test]
    fn shards_reply() {
        let node = |role: &str, port: i64, health: &str| {
            Frame::Array(vec![
                b("ip"),
                b("127.0.0.1"),
                b("port"),
                Frame::Integer(port),
                b("role"),
                b(role),
                b("health"),
                b(health),
            ])
        };
        let reply = Frame::Array(vec![Frame::Array(vec![
            b("slots"),
            Frame::Array(vec![
                Frame::Integer(0),
                Frame::Integer(10),
                Frame::Integer(20),
                Frame::Integer(30),
            ]),
            b("nodes"),
            Frame::Array(vec![
                node("master", 1, "fail"),
                node("replica", 2, "online"),
                node("master", 3, "online"),
            ]),
        ])]);
        let r = parse_shards(&reply, "x:1", false).expect("parses");
        assert_eq!(
            r,
            vec![
                (0, 10, "127.0.0.1:3".to_string()),
                (20, 30, "127.0.0.1:3".to_string())
            ]
        );
        // A node with both ports: the TLS one for a TLS sink.
        let both = Frame::Array(vec![Frame::Array(vec![
            b("slots"),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(16383)]),
            b("nodes"),
            Frame::Array(vec![Frame::Array(vec![
                b("ip"),
                b("127.0.0.1"),
                b("port"),
                Frame::Integer(7000),
                b("tls-port"),
                Frame::Integer(17000),
                b("role"),
                b("master"),
            ])]),
        ])]);
        let plain = parse_shards(&both, "x:1", false).expect("parses");
        assert_eq!(plain[0].2, "127.0.0.1:7000");
        let tls = parse_shards(&both, "x:1", true).expect("parses");
        assert_eq!(tls[0].2, "127.0.0.1:17000");
    }
}
