//! Helpers shared by the sink's tests.

use bytes::Bytes;
use redis_sync_sink::{Sink, SinkBuilder};
use redis_sync_testkit::Server;

/// A 2-worker runtime: the test thread may block on the test kit's blocking client while the
/// sink's tasks run.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A command from words.
pub fn cmd(words: &[&str]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// A builder for a standalone target (with its password, if any).
pub fn builder(server: &Server) -> SinkBuilder {
    let b = Sink::builder().standalone(server.addr());
    match server.password() {
        Some(pw) => b.password(pw),
        None => b,
    }
}
