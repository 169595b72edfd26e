//! Runnable examples of the redis-sync crates; see the `[[example]]` targets.
