//! Integration tests of the replica against real servers (one test binary).
#![allow(clippy::unwrap_used)]

mod acks;
mod bad_input;
mod common;
mod resume;
mod slow;
mod sync;
mod tls;
