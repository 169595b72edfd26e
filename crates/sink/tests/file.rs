//! File sinks.
