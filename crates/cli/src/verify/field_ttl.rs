//! Hash field TTLs (hash field expiration: Redis 7.4+, Valkey 9.0+), compared field by field
//! with `HPEXPIRETIME key FIELDS n field…` (absolute Unix times in milliseconds, the same command
//! on both servers; `-1`: no TTL, `-2`: no such field), within `--ttl-tolerance`.
//!
//! Neither a hash's value nor Valkey's `DEBUG DIGEST` shows them, and Redis's digests include
//! them exactly, so they are compared here apart. A side whose server has no hash field
//! expiration holds no field TTL: its fields count as having none (a source on 7.4 copied into
//! 7.2 lost them, and that is reported).

use std::collections::HashMap;

use bytes::Bytes;

use super::Difference;
use super::keys::Plan;
use super::side::{Side, b};

/// Fields per `HPEXPIRETIME` command: a huge hash becomes several commands, not one huge one.
const FIELDS_PER_COMMAND: usize = 1000;
/// Fields named in a difference's detail.
const SHOWN: usize = 3;

/// Compares the field TTLs of `hashes` (`(key, the source's fields)`, values already equal)
/// in `db`; returns one difference per hash whose TTLs differ.
pub async fn compare(
    src: &mut Side,
    dst: &mut Side,
    db: u32,
    hashes: &[(Bytes, Vec<Bytes>)],
    plan: &Plan,
) -> anyhow::Result<Vec<Difference>> {
    if hashes.is_empty() || !plan.any_field_ttls() {
        return Ok(Vec::new());
    }
    let keys: Vec<Bytes> = hashes.iter().map(|(k, _)| k.clone()).collect();
    let fields: HashMap<&Bytes, &Vec<Bytes>> = hashes.iter().map(|(k, f)| (k, f)).collect();
    let cmds = |k: &Bytes| -> Vec<Vec<Bytes>> {
        let Some(fs) = fields.get(k) else {
            return Vec::new();
        };
        fs.chunks(FIELDS_PER_COMMAND)
            .map(|chunk| {
                let mut c = vec![
                    b(b"HPEXPIRETIME"),
                    k.clone(),
                    b(b"FIELDS"),
                    Bytes::from(chunk.len().to_string()),
                ];
                c.extend(chunk.iter().cloned());
                c
            })
            .collect()
    };
    let counts: Vec<usize> = hashes.iter().map(|(_, f)| f.len()).collect();
    let (ts, td) = (
        times(src, db, &keys, &counts, plan.field_ttls.0, &cmds).await?,
        times(dst, db, &keys, &counts, plan.field_ttls.1, &cmds).await?,
    );
    let mut diffs = Vec::new();
    for (i, (key, fs)) in hashes.iter().enumerate() {
        let (Some(a), Some(bb)) = (&ts[i], &td[i]) else {
            continue;
        };
        let differing: Vec<String> = fs
            .iter()
            .zip(a.iter().zip(bb))
            .filter(|(_, (x, y))| differ(**x, **y, plan.ttl_tolerance))
            .map(|(f, (x, y))| {
                format!(
                    "field {:?}: source {}, target {}",
                    String::from_utf8_lossy(f),
                    show(*x),
                    show(*y)
                )
            })
            .collect();
        if differing.is_empty() {
            continue;
        }
        let mut detail = differing[..differing.len().min(SHOWN)].join("; ");
        if differing.len() > SHOWN {
            detail.push_str(&format!(" (and {} more fields)", differing.len() - SHOWN));
        }
        diffs.push(Difference::new(db, key, "field-ttl", detail));
    }
    Ok(diffs)
}

/// The field TTLs of each key (`counts` fields each), in field order: `None` when the side
/// cannot say (the key is gone, or a reply is not a list of numbers); all `-1` on a server
/// without field TTLs.
async fn times(
    side: &mut Side,
    db: u32,
    keys: &[Bytes],
    counts: &[usize],
    has: bool,
    cmds: &impl Fn(&Bytes) -> Vec<Vec<Bytes>>,
) -> anyhow::Result<Vec<Option<Vec<i64>>>> {
    if !has {
        return Ok(counts.iter().map(|&n| Some(vec![-1; n])).collect());
    }
    let replies = side.batch(db, keys, cmds).await?;
    Ok(replies
        .iter()
        .map(|per_key| {
            let mut out = Vec::new();
            for r in per_key {
                // A key gone meanwhile answers -2 for the whole command.
                let items = r.as_slice()?;
                for t in items {
                    out.push(t.as_integer()?);
                }
            }
            Some(out)
        })
        .collect())
}

/// True when two `HPEXPIRETIME` answers differ: one TTL and none, or two TTLs further apart
/// than `tolerance`. A field gone on either side (`-2`, expired meanwhile) is the value's
/// business, not this one's.
fn differ(a: i64, b: i64, tolerance: i64) -> bool {
    if a == -2 || b == -2 {
        return false;
    }
    (a < 0) != (b < 0) || (a >= 0 && (a - b).abs() > tolerance)
}

fn show(t: i64) -> String {
    match t {
        -1 => "no TTL".into(),
        -2 => "no field".into(),
        t => format!("expires at {t} (Unix ms)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_within_tolerance_are_equal() {
        assert!(!differ(-1, -1, 0));
        assert!(differ(-1, 1000, 2000));
        assert!(differ(1000, -1, 2000));
        assert!(!differ(1000, 2500, 2000));
        assert!(differ(1000, 3001, 2000));
        assert!(!differ(-2, 1000, 0));
    }
}
