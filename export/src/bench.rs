//! Serving latency: median time per forward pass of an exported file under tract (CPU) next to
//! burn's own forward pass on the same inputs, per batch size, in the same process.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;

use crate::error::Result;
use crate::inputs::Batch;
use crate::onnx::read_model;
use crate::runtime::{TractPlan, match_inputs};
use crate::source::Source;

/// One batch size's timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchRow {
    pub batch: usize,
    /// Median milliseconds per tract run (inputs prepared outside the clock).
    pub tract_ms: f64,
    /// Median milliseconds per burn forward, output read back to the host.
    pub burn_ms: f64,
}

impl BenchRow {
    /// tract time over burn time (< 1: tract is faster).
    pub fn ratio(&self) -> f64 {
        self.tract_ms / self.burn_ms
    }
}

/// The rows as a fixed-width table: batch, tract ms, burn ms, tract/burn.
pub fn table(rows: &[BenchRow]) -> String {
    let mut t = format!(
        "{:>6} {:>12} {:>12} {:>12}\n",
        "batch", "tract ms", "burn ms", "tract/burn"
    );
    for r in rows {
        t += &format!(
            "{:>6} {:>12.2} {:>12.2} {:>12.2}\n",
            r.batch,
            r.tract_ms,
            r.burn_ms,
            r.ratio()
        );
    }
    t
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Time `reps` runs (after one warm-up) of each engine for every batch size.
pub fn bench(
    onnx: &Path,
    source: &Source,
    device: &Device,
    batches: &[usize],
    reps: usize,
    seed: u64,
) -> Result<Vec<BenchRow>> {
    let model = read_model(onnx)?;
    let reps = reps.max(1);
    let mut rows = Vec::new();
    for &n in batches {
        let order = match_inputs(onnx, &model, source, n)?;
        let plan = TractPlan::load(onnx, &order, n, source)?;
        let batch = Batch::random(source, n, seed);
        let mut tract = Vec::with_capacity(reps);
        let mut burn = Vec::with_capacity(reps);
        for rep in 0..=reps {
            let feeds = plan.feeds(&batch)?;
            let t = Instant::now();
            plan.run(feeds)?;
            let tt = t.elapsed().as_secs_f64();
            let t = Instant::now();
            batch.burn_run(source, device);
            let tb = t.elapsed().as_secs_f64();
            if rep > 0 {
                tract.push(tt * 1e3);
                burn.push(tb * 1e3);
            }
        }
        rows.push(BenchRow {
            batch: n,
            tract_ms: median(tract),
            burn_ms: median(burn),
        });
    }
    Ok(rows)
}
