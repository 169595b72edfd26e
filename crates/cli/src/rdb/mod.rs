//! `redis-sync rdb`: reads an RDB file through the streaming decoder and prints it.
//!
//! The file is read in 256 KiB pieces and fed to [`redis_sync_rdb::Decoder`]; each event goes
//! through the filters (`--db`, `--key`, `--type`) to one [`Output`]. Nothing holds a whole key,
//! so memory stays bounded by the decoder's chunk budget (and, for `resp`/`restore`, the
//! RESTORE payload limit).

mod commands;
mod json;
mod report;

pub(crate) use report::{Big, Biggest};

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use redis_sync_rdb::{Decoder, Event, ValueType};

use crate::flags::{Format, KeyType, RdbArgs};
use redis_sync_commands::glob_match;

/// Bytes read from the input at a time.
const READ_SIZE: usize = 256 * 1024;
/// `--format keys|count` read bigger pieces: they skip values, so nothing is held per piece
/// beyond the piece itself, and fewer reads and buffer compactions pay off.
const SKIM_READ_SIZE: usize = 1 << 20;
/// Decoder chunk budget: one value chunk is about this many bytes.
const CHUNK_BUDGET: usize = 64 * 1024;
/// The JSON formats use bigger chunks, so that strings up to this size come in one piece and
/// can be written as JSON text (a string in several pieces is written as hex).
const JSON_CHUNK_BUDGET: usize = 1 << 20;
/// Files at least this big get a progress bar (when stderr is a terminal).
const PROGRESS_MIN: u64 = 16 << 20;

/// Where decoded events go. `event` sees every event of the keys that pass the filters (and
/// the file-level events); `finish` runs once after [`Event::End`].
pub(crate) trait Output {
    fn event(&mut self, ev: &Event) -> anyhow::Result<()>;
    fn finish(&mut self) -> anyhow::Result<()>;
    /// A whole key of the decoder's fast path ([`Decoder::skim_keys`]): its `Key` and
    /// `KeyEnd` events in one call.
    fn key(&mut self, k: &redis_sync_rdb::Key) -> anyhow::Result<()> {
        self.event(&Event::Key(k.clone()))?;
        self.event(&Event::KeyEnd {
            restore_payload: None,
        })
    }
}

/// The `--db` / `--key` / `--type` filters.
struct Filter {
    dbs: Vec<u64>,
    glob: Option<Vec<u8>>,
    types: Vec<KeyType>,
}

impl Filter {
    fn keeps(&self, k: &redis_sync_rdb::Key) -> bool {
        if self.dbs.is_empty() && self.types.is_empty() && self.glob.is_none() {
            return true;
        }
        (self.dbs.is_empty() || self.dbs.contains(&k.db))
            && (self.types.is_empty() || self.types.contains(&key_type(k.value_type)))
            && self.glob.as_ref().is_none_or(|g| glob_match(g, &k.key))
    }
}

fn key_type(t: ValueType) -> KeyType {
    match t {
        ValueType::String => KeyType::String,
        ValueType::List => KeyType::List,
        ValueType::Set => KeyType::Set,
        ValueType::SortedSet => KeyType::Zset,
        ValueType::Hash => KeyType::Hash,
        ValueType::Stream => KeyType::Stream,
        _ => KeyType::Module,
    }
}

/// The name Redis's `TYPE` gives a value type (modules are named by the caller).
pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::String => "string",
        ValueType::List => "list",
        ValueType::Set => "set",
        ValueType::SortedSet => "zset",
        ValueType::Hash => "hash",
        ValueType::Stream => "stream",
        _ => "module",
    }
}

pub(crate) fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs `redis-sync rdb`.
pub fn run(args: &RdbArgs) -> anyhow::Result<ExitCode> {
    let stdin = args.file.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_string()
    } else {
        args.file.display().to_string()
    };
    let (mut input, size): (Box<dyn Read>, Option<u64>) = if stdin {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(&args.file).with_context(|| format!("cannot open {name}"))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let payloads = matches!(args.format, Format::Resp | Format::Restore);
    let json = matches!(args.format, Format::Json | Format::Jsonl);
    // `keys` and `count` need no values (module values still give their chunk, which names
    // the module type), and `count` needs no key names unless `--key` filters on them.
    let skim = matches!(args.format, Format::Keys | Format::Count);
    let names = !matches!(args.format, Format::Count) || args.key.is_some();
    let mut builder = Decoder::builder()
        .chunk_budget(if json {
            JSON_CHUNK_BUDGET
        } else {
            CHUNK_BUDGET
        })
        .verify_checksum(!args.no_checksum)
        .allow_newer_version(args.allow_newer)
        .skip_values(skim)
        .key_names(names);
    // Only the command formats use RESTORE payloads: `restore_payloads(None)` would mean
    // "unlimited", not "none", and cost a copy and a CRC-64 per key.
    if payloads {
        builder = builder.restore_payloads(Some(args.payload_limit));
    }
    let mut decoder = builder.build();
    let out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut output: Box<dyn Output> = match args.format {
        Format::Jsonl => Box::new(json::JsonOutput::new(out, true)),
        Format::Json => Box::new(json::JsonOutput::new(out, false)),
        Format::Resp | Format::Restore => Box::new(commands::CommandOutput::new(out, args)?),
        Format::Keys => Box::new(report::KeysOutput::new(out)),
        Format::Count => Box::new(report::CountOutput::new(out)),
        Format::Memory => Box::new(report::MemoryOutput::new(out, args.top)),
    };
    let filter = Filter {
        dbs: args.dbs.clone(),
        glob: args.key.as_ref().map(|g| g.as_bytes().to_vec()),
        types: args.types.clone(),
    };
    let progress = size
        .filter(|&s| s >= PROGRESS_MIN && !args.no_progress && io::stderr().is_terminal())
        .map(progress_bar);

    decode(
        &mut input,
        &name,
        &mut decoder,
        skim,
        &filter,
        output.as_mut(),
        progress.as_ref(),
    )?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    output.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// Reads `input` to its end through `decoder` and gives `output` the events of the keys that
/// `filter` keeps (with `skim`, whole keys through [`Decoder::skim_keys`] too). An input that
/// ends before the RDB's end marker is an error naming the offset.
fn decode(
    input: &mut dyn Read,
    name: &str,
    decoder: &mut Decoder,
    skim: bool,
    filter: &Filter,
    output: &mut dyn Output,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; if skim { SKIM_READ_SIZE } else { READ_SIZE }];
    let mut skipping = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("reading {name} failed at byte offset {}", decoder.offset())
                });
            }
        };
        if n == 0 {
            decoder.handle_eof();
        } else {
            decoder.handle_bytes(&buf[..n]);
        }
        loop {
            if skim {
                let mut failed = None;
                decoder.skim_keys(|k| {
                    if filter.keeps(k)
                        && let Err(e) = output.key(k)
                    {
                        failed = Some(e);
                        return false;
                    }
                    true
                });
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            let ev = match decoder.poll_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return Err(e).with_context(|| format!("cannot decode {name}")),
            };
            match &ev {
                Event::Key(k) => skipping = !filter.keeps(k),
                Event::KeyEnd { .. } if skipping => {
                    skipping = false;
                    continue;
                }
                _ => {}
            }
            if !skipping {
                output.event(&ev)?;
            }
        }
        if let Some(p) = progress {
            p.set_position(decoder.offset());
        }
        if n == 0 || decoder.is_done() {
            break;
        }
    }
    if !decoder.is_done() {
        bail!(
            "{name} ended at byte offset {} before the RDB's end marker",
            decoder.offset()
        );
    }
    Ok(())
}

/// The biggest keys of the RDB file at `path` (the `top` biggest, and the `top` with the
/// largest single argument; see [`report::Biggest`]), and the file's size: what `check --rdb`
/// compares with the target.
pub(crate) fn biggest_keys(path: &Path, top: usize) -> anyhow::Result<(Biggest, u64)> {
    let name = path.display().to_string();
    let mut f = File::open(path).with_context(|| format!("cannot open {name}"))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut decoder = Decoder::builder().chunk_budget(CHUNK_BUDGET).build();
    let mut biggest = Biggest::new(top);
    let filter = Filter {
        dbs: Vec::new(),
        glob: None,
        types: Vec::new(),
    };
    decode(
        &mut f,
        &name,
        &mut decoder,
        false,
        &filter,
        &mut biggest,
        None,
    )?;
    Ok((biggest, size))
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Writes `bytes` to `out` as-is and then a newline.
pub(crate) fn write_line(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.write_all(b"\n")
}
