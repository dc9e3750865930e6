//! Memorisation: how close samples come to the training set. Each sample's Euclidean distance to
//! its nearest training example, against the same distances of held-out test images; a model
//! that copies its training data has many samples closer than almost any test image is (the
//! nearest-neighbour checks of Carlini et al. 2023 and Somepalli et al. 2023).

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::interval::{Interval, wilson};

/// The percentile of test-to-train distances a sample must fall below to count as "too close".
pub const PERCENTILE: f64 = 1.0;

/// Rows of the base set per GEMM block (bounds the temporary to queries × this f32s).
const BASE_BLOCK: usize = 4096;
/// Query rows per GEMM block.
const QUERY_BLOCK: usize = 1024;

/// For every query row, the distance to its nearest base row: ‖q − b‖² = ‖q‖² + ‖b‖² − 2qᵀb
/// with blocked f32 GEMMs (tiny negative squares from rounding clamp to 0).
pub fn nearest_distances(query: &[f32], base: &[f32], d: usize) -> Result<Vec<f32>> {
    if d == 0 || query.len() % d != 0 || base.len() % d != 0 || base.is_empty() {
        return Err(EvalError::Samples {
            path: "nearest neighbours".into(),
            message: format!(
                "query ({} values) and base ({} values) must be non-empty whole rows of {d} values: pass images of one shape",
                query.len(),
                base.len()
            ),
        });
    }
    let norms = |v: &[f32]| -> Vec<f32> { v.chunks_exact(d).map(|r| r.iter().map(|x| x * x).sum()).collect() };
    let (qn, bn) = (norms(query), norms(base));
    let mut best = vec![f32::INFINITY; qn.len()];
    for (qi, q) in query.chunks(QUERY_BLOCK * d).enumerate() {
        let qm = DMatrix::<f32>::from_row_slice(q.len() / d, d, q);
        for (bi, b) in base.chunks(BASE_BLOCK * d).enumerate() {
            let bm = DMatrix::<f32>::from_row_slice(b.len() / d, d, b);
            let g = &qm * bm.transpose();
            for r in 0..g.nrows() {
                let i = qi * QUERY_BLOCK + r;
                for c in 0..g.ncols() {
                    let sq = qn[i] + bn[bi * BASE_BLOCK + c] - 2.0 * g[(r, c)];
                    best[i] = best[i].min(sq);
                }
            }
        }
    }
    Ok(best.into_iter().map(|s| s.max(0.0).sqrt()).collect())
}

/// Nearest-training-neighbour distances of samples against those of test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    /// The 1st percentile of the test images' distances to the training set.
    pub threshold: f64,
    /// Share of samples closer to a training example than `threshold`, and its Wilson interval.
    pub fraction_below: f64,
    pub fraction_ci95: Interval,
    /// 5, 25, 50, 75, 95% quantiles of the samples' and of the test images' distances.
    pub sample_quantiles: [f64; 5],
    pub test_quantiles: [f64; 5],
    pub n_samples: usize,
    pub n_test: usize,
    pub n_train: usize,
}

fn quantiles(v: &[f32]) -> [f64; 5] {
    let mut s: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    s.sort_by(f64::total_cmp);
    [0.05, 0.25, 0.5, 0.75, 0.95].map(|q| percentile(&s, 100.0 * q))
}

/// Percentile `p` (0–100) of sorted `s`, linear interpolation (numpy's default).
fn percentile(s: &[f64], p: f64) -> f64 {
    let pos = p / 100.0 * (s.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    s[i] + frac * (s.get(i + 1).copied().unwrap_or(s[i]) - s[i])
}

/// The check from the two distance lists (samples → train, test → train).
pub fn memorisation(sample_nn: &[f32], test_nn: &[f32], n_train: usize) -> Result<Memorisation> {
    if sample_nn.is_empty() || test_nn.is_empty() {
        return Err(EvalError::Samples {
            path: "memorisation".into(),
            message: "needs at least one sample and one test distance: set memorisation_n ≥ 2".into(),
        });
    }
    let mut t: Vec<f64> = test_nn.iter().map(|&x| x as f64).collect();
    t.sort_by(f64::total_cmp);
    let threshold = percentile(&t, PERCENTILE);
    let below = sample_nn.iter().filter(|&&x| (x as f64) < threshold).count();
    Ok(Memorisation {
        threshold,
        fraction_below: below as f64 / sample_nn.len() as f64,
        fraction_ci95: wilson(below, sample_nn.len()),
        sample_quantiles: quantiles(sample_nn),
        test_quantiles: quantiles(test_nn),
        n_samples: sample_nn.len(),
        n_test: test_nn.len(),
        n_train,
    })
}
