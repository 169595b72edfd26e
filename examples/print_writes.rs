//! Prints every write a Redis or Valkey server receives, by connecting to it as a replica.
//!
//! ```text
//! cargo run -p redis-sync-examples --example print_writes -- 127.0.0.1:6379 [password]
//! ```
//!
//! The snapshot the source sends first is summarised (key count, bytes); then each write
//! command is printed with its database and replication offset. Ctrl-C stops it.

use std::process::ExitCode;

use redis_sync_replica::{ReplicaBuilder, ReplicaEvent};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:6379".to_string());
    let mut builder = ReplicaBuilder::new(addr);
    if let Some(password) = args.next() {
        builder = builder.password(None, &password);
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut replica = builder.start(shutdown);
    let metrics = replica.metrics();
    while let Some(event) = replica.next_event().await {
        match event {
            Ok(ReplicaEvent::Connected { addr, server }) => {
                eprintln!(
                    "connected to {addr} ({})",
                    server.as_deref().unwrap_or("unknown version")
                );
            }
            Ok(ReplicaEvent::FullResync {
                replid,
                offset,
                rdb_size,
                ..
            }) => {
                let size = rdb_size.map_or("diskless".to_string(), |s| format!("{s} bytes"));
                eprintln!("full sync from {replid} at offset {offset} ({size})");
            }
            Ok(ReplicaEvent::RdbDone { offset, rdb_bytes }) => {
                eprintln!(
                    "snapshot done: {} keys, {rdb_bytes} bytes; streaming from offset {offset}",
                    metrics.rdb_keys()
                );
            }
            Ok(ReplicaEvent::Command {
                db, args, offset, ..
            }) => {
                let shown: Vec<String> = args
                    .iter()
                    .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
                    .collect();
                println!("[db {db} @ {offset}] {}", shown.join(" "));
            }
            Ok(ReplicaEvent::Continued { replid, offset }) => {
                eprintln!("continued {replid} after offset {offset}");
            }
            Ok(ReplicaEvent::LinkLost { reason }) => eprintln!("link lost: {reason}; reconnecting"),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
