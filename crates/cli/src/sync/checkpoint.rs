//! The checkpoint: where the target is in the source's replication history, kept in a small
//! JSON file written atomically (temporary file + rename) so a crash leaves the old or the
//! new one, never half of either.
//!
//! `replid`/`offset`/`db` are what `PSYNC` needs to continue ([`ResumePoint`]); they are
//! cleared while a full copy is under way (the target is then neither the old state nor the
//! new one). `synced` says the target has held a copy of this source before, so a new full
//! copy must remove the keys the source deleted meanwhile (the sweep).

use std::path::{Path, PathBuf};

use anyhow::Context;
use redis_sync_replica::ResumePoint;
use serde::{Deserialize, Serialize};

/// The content of the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The source's replication ID.
    pub replid: Option<String>,
    /// The last replication offset applied to the target.
    pub offset: Option<u64>,
    /// The db selected at that offset.
    pub db: Option<u32>,
    /// True once a full copy has completed into this target.
    pub synced: bool,
    /// The source and target, passwords redacted (for people reading the file).
    pub source: String,
    /// See `source`.
    pub target: String,
    /// When written, Unix milliseconds.
    pub updated_ms: i64,
}

impl Checkpoint {
    /// Where to continue, when the file has a complete position.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        Some(ResumePoint {
            replid: self.replid.clone()?,
            offset: self.offset?,
            db: self.db.unwrap_or(0),
        })
    }
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file at `path` (created on the first save).
    pub fn new(path: PathBuf) -> Self {
        StateFile { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint; `None` when there is no file.
    pub fn load(&self) -> anyhow::Result<Option<Checkpoint>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).with_context(|| {
                format!(
                    "the state file {} is not a redis-sync checkpoint (delete it, or run with \
                     --no-resume)",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    /// Writes `cp` atomically.
    pub fn save(&self, cp: &Checkpoint) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state directory {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(cp).context("encoding the checkpoint")?;
        std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = StateFile::new(dir.path().join("sub/state.json"));
        assert_eq!(f.load().expect("no file"), None);
        let cp = Checkpoint {
            replid: Some("abc".into()),
            offset: Some(42),
            db: Some(3),
            synced: true,
            ..Checkpoint::default()
        };
        f.save(&cp).expect("save");
        let back = f.load().expect("load").expect("present");
        assert_eq!(back, cp);
        assert_eq!(
            back.resume_point(),
            Some(ResumePoint {
                replid: "abc".into(),
                offset: 42,
                db: 3
            })
        );
        std::fs::write(f.path(), "garbage").expect("write");
        assert!(f.load().is_err());
    }
}
