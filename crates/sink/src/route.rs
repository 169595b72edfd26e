//! Where a command goes on a cluster, using redis-sync-commands' key positions, hash slots
//! and cross-slot splitting, and the temporary key names of full-sync keys.

use bytes::{Bytes, BytesMut};
use redis_sync_commands::{ClusterPlan, Route, classify, hash_slot, hash_tag, split_for_cluster};

/// How to send one command to a cluster.
#[derive(Debug)]
pub(crate) enum Plan {
    /// To the master of this slot (`None`: any node, the command has no key).
    Slot(Option<u16>),
    /// A copy to every master (`FLUSHALL`, `FUNCTION LOAD`, …).
    AllMasters,
    /// These commands instead, each to its slot.
    Split(Vec<(u16, Vec<Bytes>)>),
}

pub(crate) fn plan(args: &[Bytes]) -> Plan {
    match split_for_cluster(args) {
        Ok(ClusterPlan::Single(Route::Slot(s))) => Plan::Slot(Some(s)),
        Ok(ClusterPlan::Single(Route::AllMasters)) => Plan::AllMasters,
        Ok(ClusterPlan::Split(parts)) => {
            Plan::Split(parts.into_iter().map(|p| (p.slot, p.args)).collect())
        }
        Ok(_) => Plan::Slot(None),
        // An unknown (module) command: its key is argument 1 by convention. A cross-slot
        // command that cannot be split goes to its first key's node, whose CROSSSLOT error
        // the error policy then handles with a message naming the keys.
        Err(_) => Plan::Slot(first_key_slot(args)),
    }
}

fn first_key_slot(args: &[Bytes]) -> Option<u16> {
    match classify(args) {
        Ok(c) => c.keys.first().map(|k| hash_slot(&args[k.index])),
        Err(_) => args.get(1).map(|k| hash_slot(k)),
    }
}

/// The slot of a single-slot command (full-sync commands are all about one key).
pub(crate) fn slot_of(args: &[Bytes]) -> Option<u16> {
    match plan(args) {
        Plan::Slot(s) => s,
        Plan::Split(parts) => parts.first().map(|p| p.0),
        Plan::AllMasters => None,
    }
}

/// The first key of a command, for messages.
pub(crate) fn key_of(args: &[Bytes]) -> Option<&Bytes> {
    match classify(args) {
        Ok(c) => c.keys.first().and_then(|k| args.get(k.index)),
        Err(_) => args.get(1),
    }
}

/// A temporary name for `key` in the same slot, or `None` when no such name can be made (a
/// key without a hash tag that contains `}`, on a cluster).
pub(crate) fn temp_key(key: &[u8], cluster: bool) -> Option<Bytes> {
    let tag = hash_tag(key);
    let mut tmp = BytesMut::with_capacity(key.len() + tag.len() + 24);
    tmp.extend_from_slice(b"{");
    tmp.extend_from_slice(tag);
    tmp.extend_from_slice(b"}redis-sync-tmp:");
    tmp.extend_from_slice(key);
    let ok = !tag.is_empty() && !tag.contains(&b'}') && hash_slot(&tmp) == hash_slot(key);
    if ok {
        Some(tmp.freeze())
    } else if cluster {
        None
    } else {
        let mut t = BytesMut::from(&b"redis-sync-tmp:"[..]);
        t.extend_from_slice(key);
        Some(t.freeze())
    }
}

/// Replaces every key argument equal to `from` by `to`.
pub(crate) fn rename_key(args: &mut [Bytes], from: &Bytes, to: &Bytes) {
    let positions: Vec<usize> = match classify(args) {
        Ok(c) => c.keys.iter().map(|k| k.index).collect(),
        Err(_) => vec![1],
    };
    for i in positions {
        if let Some(a) = args.get_mut(i)
            && a == from
        {
            *a = to.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn temp_keys_share_the_slot() {
        for key in ["plain", "{user}:1", "a{b", "x{y}{}"] {
            let tmp = temp_key(key.as_bytes(), true).expect("a temp name");
            assert_eq!(hash_slot(&tmp), hash_slot(key.as_bytes()), "{key}");
            assert_ne!(&tmp[..], key.as_bytes());
        }
        assert_eq!(temp_key(b"a}b", true), None);
        assert_eq!(temp_key(b"x{}y", true), None);
        assert!(temp_key(b"a}b", false).is_some());
    }

    #[test]
    fn rename_and_plan() {
        let mut c = cmd("XGROUP CREATE s g 0");
        rename_key(&mut c, &Bytes::from("s"), &Bytes::from("t"));
        assert_eq!(c, cmd("XGROUP CREATE t g 0"));
        let mut c = cmd("RPUSH s s");
        rename_key(&mut c, &Bytes::from("s"), &Bytes::from("t"));
        assert_eq!(c, cmd("RPUSH t s"));
        assert!(matches!(plan(&cmd("SET foo 1")), Plan::Slot(Some(12182))));
        assert!(matches!(plan(&cmd("FLUSHALL")), Plan::AllMasters));
        assert!(matches!(plan(&cmd("DEL a b")), Plan::Split(p) if p.len() == 2));
        assert_eq!(
            key_of(&cmd("XGROUP CREATE s g 0")).map(|k| &k[..]),
            Some(&b"s"[..])
        );
    }
}
