//! Integration tests of the `redis-sync` binary, one test binary (as ripgrep does).
#![allow(clippy::unwrap_used)]

mod harness;
mod util;

mod check;
mod cluster_source;
mod convert;
mod corpus;
mod crash;
mod cross_slot;
mod cutover;
mod faults;
mod module_commands;
mod newer_commands;
mod oracle;
mod rdb_cli;
mod scan_source;
mod sentinel;
mod sync;
mod tls;
mod verify;
