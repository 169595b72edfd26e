//! Waiting for a condition with a deadline: the only way tests synchronise with servers.

use std::time::{Duration, Instant};

/// Calls `check` every few milliseconds until it returns `Some`, or panics after `timeout`
/// with a message naming `what` was awaited. Never a fixed sleep as synchronisation.
pub fn poll_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
