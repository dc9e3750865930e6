//! fewstep's evaluation: Fréchet distances over features the project trains itself, class
//! accuracy of conditional samples, latency, plots and reports.

pub mod classifier;
pub mod clipnet;
pub mod equal_quality;
pub mod error;
pub mod fid;
pub mod fidelity;
pub mod frechet;
pub mod interval;
pub mod kid;
pub mod memorisation;
pub mod metrics;
pub mod onnx_features;
pub mod plots;
pub mod prdc;
pub mod report;
pub mod report_md;
pub mod report_plots;
pub mod samples;
