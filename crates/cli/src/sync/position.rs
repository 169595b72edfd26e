//! Where a run resumes. Exactly-once (the default): from the checkpoint the target holds
//! ([`target_checkpoint`]; on a cluster, one per slot), committed together with the data and
//! so trusted over the state file. At-least-once (`--no-transactions`): from the state file
//! ([`checkpoint`](super::checkpoint)), saved after the target acknowledged the writes.
//! `--mode full` and `--no-resume` never resume: a full copy.

use anyhow::Context;
use redis_sync_replica::{Replay, ResumePoint};
use redis_sync_sink::Sink;

use super::target_checkpoint::{self, CopyState};
use super::{Checkpoint, StateFile, target_checkpoint_key};
use crate::config::{Mode, Settings};

/// What a run starts from.
pub(super) struct Start {
    /// Where the run records its position for the next one (at-least-once reads it back).
    pub(super) state_file: StateFile,
    /// The state file's checkpoint, naming this run's source and target.
    pub(super) cp: Checkpoint,
    /// Where to ask the source to continue (`PSYNC`); `None`: a full copy.
    pub(super) resume: Option<ResumePoint>,
    /// Commands after `resume` the target holds already (a stop inside a transaction).
    pub(super) replay: Option<Replay>,
    /// Keys copied afresh by `--on-error repair` whose commands are still to be skipped.
    pub(super) repairs: super::repair::Repairs,
    /// An earlier run completed a full copy into this target (so a new copy sweeps).
    pub(super) had_checkpoint: bool,
}

/// Says which delivery guarantee is in force, then reads the position: the target's
/// checkpoint (and on a cluster the slots' floors, handed to `sink`), or `saved`, the state
/// file's (loaded from `state_file` before anything connects, so a bad file stops the run
/// first).
pub(super) async fn read(
    s: &Settings,
    sink: &Sink,
    state_file: StateFile,
    saved: Option<Checkpoint>,
) -> anyhow::Result<Start> {
    let cluster = sink.target().cluster;
    let exactly_once = s.transactions;
    if exactly_once && cluster {
        tracing::info!(
            "delivery: exactly-once (each batch commits as one MULTI/EXEC per slot, each with \
             that slot's checkpoint {}:{{…}} in the target)",
            target_checkpoint_key(s)
        );
    } else if exactly_once {
        tracing::info!(
            "delivery: exactly-once (each batch commits in MULTI/EXEC with the checkpoint \
             {} in the target)",
            target_checkpoint_key(s)
        );
    } else {
        tracing::warn!(
            "delivery: at-least-once (--no-transactions: a restart may apply again the \
             commands after the state file's last save)"
        );
    }
    let mut cp = saved.clone().unwrap_or_default();
    cp.source = s.source.to_string();
    cp.target = s.target.to_string();
    let mut replay = None;
    let mut repairs = super::repair::Repairs::default();
    let mut had_checkpoint = saved.as_ref().is_some_and(|c| c.synced);
    let resume = if exactly_once {
        // The target holds the truth: data and position committed together.
        let found = if cluster {
            match target_checkpoint::read_cluster(s, sink).await? {
                Some((tc, floors)) => {
                    if !floors.is_empty() {
                        sink.set_slot_floors(floors)
                            .await
                            .context("connecting to the target")?;
                    }
                    Some(tc)
                }
                None => None,
            }
        } else {
            target_checkpoint::read(s).await?
        };
        match found {
            Some(tc) if tc.state == CopyState::Streaming => {
                had_checkpoint = true;
                if let Some(file) = saved.as_ref().and_then(|c| c.offset)
                    && file != tc.offset
                {
                    tracing::info!(
                        "the state file says offset {file}, the target's checkpoint {}: \
                         trusting the target",
                        tc.offset
                    );
                }
                replay = tc.replay.clone();
                repairs = if cluster {
                    super::repair::Repairs::read_markers(s)
                        .await
                        .context("reading the repairs recorded in the target")?
                } else {
                    tc.repairs.clone()
                };
                tc.resume_point()
            }
            Some(_) => {
                had_checkpoint = true;
                tracing::warn!(
                    "the target holds a full copy that did not complete: copying again, then \
                     removing the keys the source no longer has"
                );
                None
            }
            None => {
                if had_checkpoint {
                    tracing::warn!(
                        "the state file {} says this target was synced, but the target holds \
                         no checkpoint: copying everything again",
                        state_file.path().display()
                    );
                }
                None
            }
        }
    } else {
        cp.resume_point()
    };
    // `--mode full` is a copy of the snapshot: it never continues a stream.
    let resume = resume.filter(|_| s.resume && s.mode != Mode::Full);
    if resume.is_none() {
        replay = None;
        repairs = super::repair::Repairs::default();
    }
    Ok(Start {
        state_file,
        cp,
        resume,
        replay,
        repairs,
        had_checkpoint,
    })
}
