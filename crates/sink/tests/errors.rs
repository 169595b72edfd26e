//! Error classes and policies against real servers.
