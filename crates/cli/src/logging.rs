//! Logs: `tracing` events on stderr, as text or JSON lines (`--log-format json`), filtered by
//! `RUST_LOG` (default `info`).
//!
//! While the full copy's progress bar is drawn, a log line goes through the bar
//! ([`route_through`]): it is printed above the bar instead of tearing through it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// The bar that log lines go around, while one is drawn.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sends log lines around `bar` (or straight to stderr with `None`).
pub fn route_through(bar: Option<ProgressBar>) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Installs the subscriber once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        // Colours only for a person: a log file or a collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Makes a [`Line`] per event.
#[derive(Debug, Clone, Copy)]
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, written out whole when dropped: above the bar when one is drawn.
#[derive(Debug)]
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let out = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match bar {
            Some(bar) => bar.suspend(out),
            None => out(),
        }
    }
}
