//! fewstep's integration tests: one binary, a module per area.

mod checkpoint;
mod cli;
mod data;
mod dist;
mod eval;
mod fixtures;
mod fuzz;
mod latent;
mod pipeline;
mod student;
mod train;
mod video;
