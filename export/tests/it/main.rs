//! The export crate's integration tests: one binary, a module per area.

mod errors;
mod fixtures;
mod parity;
mod report;
mod serving;
mod unroll;
