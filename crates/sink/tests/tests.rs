//! Integration tests of redis-sync-sink against real servers (one binary, one module per area).
#![allow(clippy::unwrap_used)]

mod util;

mod cluster;
mod errors;
mod file;
mod fullsync;
mod standalone;
