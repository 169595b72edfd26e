//! `check` with a cluster target: a few seconds of the source's live write stream, and how
//! each command whose keys span slots there would be applied.
//!
//! The sample attaches as a replica that continues from the source's current offset
//! (`PSYNC <replid> <offset+1>`), so the source answers `+CONTINUE` and sends only new writes:
//! no snapshot is made. A source without a replication backlog (no replica ever attached) has
//! nothing to continue from; that is said rather than forcing a full copy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis_sync_commands::Classifier;
use redis_sync_replica::{ReplicaBuilder, ReplicaEvent, ResumePoint};

use super::rows::row;
use super::{Level, Row};
use crate::sync::cross_slot::{self, Way};
use crate::url::Endpoint;

const NAME: &str = "cross-slot writes";

/// The sample as one row: `fail` when a command would stop the sync, `warn` when many need
/// the slower emulation, `ok` otherwise.
pub(super) async fn cross_slot_sample(
    source: &Endpoint,
    replid: Option<&str>,
    offset: Option<u64>,
    backlog: bool,
    secs: f64,
) -> Row {
    let (Some(replid), Some(offset)) = (replid, offset) else {
        return row(
            NAME,
            Level::Skip,
            "the source's INFO has no replication offset",
        );
    };
    if !backlog {
        return row(
            NAME,
            Level::Skip,
            "not sampled: the source has no replication backlog yet (no replica ever \
             attached), and sampling its stream would take a full copy",
        );
    }
    let secs = secs.max(0.1);
    let mut builder = ReplicaBuilder::new(source.addr()).resume_from(ResumePoint {
        replid: replid.to_string(),
        offset,
        db: 0,
    });
    if let Some(pw) = &source.password {
        builder = builder.password(source.user.as_deref(), pw);
    }
    if let Some(tls) = &source.tls {
        builder = builder.tls(tls.clone());
    }
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut replica = builder.start(tokio::time::sleep_until(until.into()));
    let mut classifier = Classifier::default();
    let mut commands = 0u64;
    // Per command name: (how, count).
    let mut seen: BTreeMap<String, (&'static str, u64)> = BTreeMap::new();
    let deadline = until + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), replica.next_event()).await;
        let ev = match next {
            Ok(Some(Ok(ev))) => ev,
            Ok(Some(Err(e))) => {
                return row(NAME, Level::Skip, format!("not sampled: {e}"));
            }
            Ok(None) | Err(_) => break,
        };
        match ev {
            ReplicaEvent::FullResync { .. } => {
                return row(
                    NAME,
                    Level::Skip,
                    "not sampled: the source would only start a full copy",
                );
            }
            ReplicaEvent::Command { args, .. } => {
                commands += 1;
                let how = match cross_slot::way(&mut classifier, &args) {
                    None => continue,
                    Some(Way::Split) => "split per slot",
                    Some(Way::Move(_)) => "DUMP/RESTORE, then DEL",
                    Some(Way::OnCopies(_)) => "run on copies of its keys",
                    Some(Way::Refused) => "REFUSED",
                };
                let name =
                    String::from_utf8_lossy(args.first().map_or(&b""[..], |a| a)).to_uppercase();
                seen.entry(name).or_insert((how, 0)).1 += 1;
            }
            _ => {}
        }
    }
    if seen.is_empty() {
        return row(
            NAME,
            Level::Ok,
            format!("{commands} writes in {secs:.0} s of the source's stream, none spans slots"),
        );
    }
    let list: Vec<String> = seen
        .iter()
        .map(|(name, (how, n))| format!("{name} x{n} ({how})"))
        .collect();
    let refused = seen.values().any(|(how, _)| *how == "REFUSED");
    let emulated: u64 = seen
        .values()
        .filter(|(how, _)| *how != "REFUSED" && *how != "split per slot")
        .map(|(_, n)| n)
        .sum();
    let per_sec = emulated as f64 / secs;
    let (level, advice) = if refused {
        (
            Level::Fail,
            "; a REFUSED command stops the sync with CROSSSLOT: give its keys one hash tag \
             ({tag}) on the source, or exclude them with a key filter",
        )
    } else if per_sec > 100.0 {
        (
            Level::Warn,
            "; each emulated write drains the pipeline and takes a few round trips: at this \
             rate the stream will lag (hash tags on the source avoid it)",
        )
    } else {
        (Level::Ok, "")
    };
    row(
        NAME,
        level,
        format!(
            "{commands} writes in {secs:.0} s, spanning slots: {}{advice}",
            list.join(", ")
        ),
    )
}
