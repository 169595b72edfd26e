//! `--format resp|restore`: the data set as commands for `redis-cli --pipe`.
//!
//! The conversion is `redis_sync_rdb::rewrite`; this module only picks the target version,
//! writes the commands as RESP and reports keys that could not be converted.

use std::io::Write;

use anyhow::{Context, anyhow, bail};
use redis_sync_rdb::Event;
use redis_sync_rdb::rewrite::{Command, Mode, Rewriter, TargetVersion, write_resp};

use super::{Output, now_ms};
use crate::flags::{Format, RdbArgs};

/// Converts events to commands and writes them as RESP.
pub(crate) struct CommandOutput<W: Write> {
    out: W,
    /// `None` until the header says which version to target (with `--target-version auto`).
    rewriter: Option<Rewriter>,
    fixed_target: Option<TargetVersion>,
    mode: Mode,
    hold_limit: usize,
    cmds: Vec<Command>,
    buf: Vec<u8>,
    failed: u64,
}

impl<W: Write> CommandOutput<W> {
    pub(crate) fn new(out: W, args: &RdbArgs) -> anyhow::Result<Self> {
        let fixed_target = match args.target_version.as_str() {
            "auto" => None,
            v => Some(v.parse::<TargetVersion>().map_err(|e| anyhow!(e))?),
        };
        let mode = if args.format == Format::Restore {
            Mode::Restore
        } else {
            Mode::Commands
        };
        Ok(CommandOutput {
            out,
            rewriter: None,
            fixed_target,
            mode,
            hold_limit: args.payload_limit,
            cmds: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
            failed: 0,
        })
    }

    fn rewriter(&mut self, target: TargetVersion) -> Rewriter {
        Rewriter::builder()
            .target(self.fixed_target.unwrap_or(target))
            .mode(self.mode)
            .restore_hold_limit(self.hold_limit)
            .build()
    }
}

impl<W: Write> Output for CommandOutput<W> {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()> {
        if let Event::Header(h) = ev {
            self.rewriter = Some(self.rewriter(TargetVersion::for_rdb(h)));
        }
        let rw = match self.rewriter.as_mut() {
            Some(rw) => rw,
            None => bail!("the RDB header did not come first"),
        };
        if let Err(e) = rw.handle_event(ev, now_ms(), &mut self.cmds) {
            self.failed += 1;
            eprintln!("redis-sync: warning: {e}");
        }
        for c in self.cmds.drain(..) {
            self.buf.clear();
            write_resp(&c, &mut self.buf);
            self.out
                .write_all(&self.buf)
                .context("writing the commands")?;
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("writing the commands")?;
        if let Some(rw) = &self.rewriter {
            let s = rw.stats();
            if s.expired_skipped > 0 {
                eprintln!(
                    "redis-sync: {} keys already expired were left out",
                    s.expired_skipped
                );
            }
        }
        if self.failed > 0 {
            bail!(
                "{} keys or libraries could not be converted (see the warnings above); the output lacks them",
                self.failed
            );
        }
        Ok(())
    }
}
