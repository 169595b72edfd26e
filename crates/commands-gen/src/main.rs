//! Regenerates `crates/commands/src/table/generated.rs` from live servers.
//!
//! ```text
//! cargo run -p redis-sync-commands-gen [-- OUTPUT]
//! ```
//!
//! Starts the newest installed Redis 8.x, Redis 7.x and Valkey 9.x with the test kit (see
//! `../shared/servers/SERVERS.md` or `scripts/install-servers.sh`; set `REDIS_SERVERS_DIR`), reads `COMMAND` and `COMMAND DOCS`
//! from each and writes the merged table. Run `cargo fmt -p redis-sync-commands` afterwards.

use std::process::ExitCode;

use redis_sync_commands_gen::{merge, missing_from, read_server, render, table_versions};

fn main() -> ExitCode {
    let out = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../commands/src/table/generated.rs"
        )
        .to_string()
    });
    let all = redis_sync_testkit::versions();
    let versions = table_versions(&all);
    if versions.is_empty() {
        eprintln!(
            "error: no Redis 8.x, Redis 7.x or Valkey 9.x installed; {}",
            redis_sync_testkit::SERVERS_HINT
        );
        return ExitCode::from(2);
    }
    let mut readings = Vec::new();
    for v in &versions {
        eprintln!("reading {v} …");
        match read_server(v) {
            Ok(r) => {
                eprintln!("  {} commands", r.commands.len());
                readings.push(r);
            }
            Err(e) => {
                eprintln!("error: reading {v}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // Older servers: commands they have that the main ones dropped (e.g. STRALGO of 6.x) are
    // added, with the oldest server as their only source, so every command is known.
    let main_count = readings.len();
    let mut older: Vec<_> = all.iter().filter(|v| !versions.contains(v)).collect();
    older.sort_by_key(|v| std::cmp::Reverse((v.flavor(), v.version())));
    for v in older {
        match read_server(v) {
            Ok(mut r) => {
                let missing = missing_from(&r, &readings);
                if !missing.is_empty() && readings.len() < 8 {
                    eprintln!("{v}: adds {missing:?} as a legacy source");
                    r.legacy = true;
                    readings.push(r);
                }
            }
            Err(e) => eprintln!("warning: reading {v}: {e}"),
        }
    }
    eprintln!(
        "{} main and {} legacy sources",
        main_count,
        readings.len() - main_count
    );
    let merged = merge(&readings);
    let source = render(&readings, &merged);
    if let Err(e) = std::fs::write(&out, source) {
        eprintln!("error: writing {out}: {e}");
        return ExitCode::from(1);
    }
    eprintln!("wrote {} commands to {out}", merged.len());
    ExitCode::SUCCESS
}
