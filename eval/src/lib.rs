//! fewstep evaluation.

pub mod frechet;
