//! fewstep's orchestration: the chain of stages as data (`chain`), the resumable pipeline over
//! it (`run`), comparison reports (`report`, `cost`), the serving stage (`serving`), the
//! feature-network stage (`features`), sample folders (`samples`, `images`) and benchmarks
//! (`bench`). Every entry point takes a settings struct; the binary only parses arguments.

pub mod bench;
pub mod chain;
pub mod config;
pub mod cost;
pub mod features;
pub mod images;
pub mod latent_report;
pub mod measure;
pub mod report;
pub mod run;
pub mod sample_cache;
pub mod samples;
pub mod serving;
pub mod verdict;
