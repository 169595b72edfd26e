//! Full sync: RESTORE and command paths.
