//! Memorisation check: nearest-neighbour distances of generated samples to the training set,
//! compared with those of held-out test images (after Carlini et al. 2023, "Extracting Training
//! Data from Diffusion Models", and Somepalli et al. 2023, "Diffusion Art or Digital Forgery?").
//!
//! A model that generalises puts its samples as far from the training set as fresh real images
//! are; the share of samples closer to a training image than all but [`PERCENTILE`]% of test
//! images is then about [`PERCENTILE`]%, and copies push it towards 1.

use nalgebra::{DMatrix, DMatrixView};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result, rows};
use crate::interval::{Interval, quantile_sorted, wilson};

/// Percentile (in %) of the test→train nearest-neighbour distances used as the "too close" threshold.
pub const PERCENTILE: f64 = 1.0;

/// Percentiles (in %) reported for both distance lists.
pub const QUANTILES: [f64; 5] = [5.0, 25.0, 50.0, 75.0, 95.0];

/// Query rows per GEMM (a query tile is read in place from the caller's buffer).
const QUERY_TILE: usize = 2048;

/// Base rows per GEMM; the product is QUERY_TILE × BASE_TILE f32 = 32 MB.
const BASE_TILE: usize = 4096;

/// The memorisation summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    /// [`PERCENTILE`]-th percentile of the test→train nearest-neighbour distances.
    pub threshold: f64,
    /// Share of samples whose nearest training row is at most `threshold` away (≈ 1% when
    /// samples are as novel as test images).
    pub fraction_below: f64,
    /// Wilson 95% interval of `fraction_below`.
    pub fraction_ci95: Interval,
    /// 5, 25, 50, 75, 95% quantiles of the sample→train nearest-neighbour distances.
    pub sample_quantiles: [f64; 5],
    /// The same quantiles of the test→train distances.
    pub test_quantiles: [f64; 5],
    /// Number of samples.
    pub n_samples: usize,
    /// Number of test images.
    pub n_test: usize,
    /// Number of training images searched.
    pub n_train: usize,
}

/// minⱼ ‖qᵢ − bⱼ‖ for every query row, the nearest j found through ‖qᵢ‖² + ‖bⱼ‖² − 2·qᵢᵀbⱼ with blocked f32 GEMMs.
///
/// The expansion cancels catastrophically for near-duplicates (an exact copy of a row of norm
/// 20 comes out ≈ 10⁻² away in f32), so it only ranks the candidates: the distance to the
/// winner is then recomputed directly in f64, and an exact copy reports 0. Near-ties within
/// f32 rounding may pick a neighbour that is farther by that rounding.
pub fn nearest_distances(query: &[f32], base: &[f32], d: usize) -> Result<Vec<f32>> {
    let nq = rows("nearest_distances", "query rows", query, d)?;
    let nb = rows("nearest_distances", "base rows", base, d)?;
    if nb == 0 {
        return Err(EvalError::input(
            "nearest_distances",
            "the base set is empty; pass the training features to search",
        ));
    }
    let base_norms: Vec<f32> = base
        .chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let mut out = Vec::with_capacity(nq);
    for q0 in (0..nq).step_by(QUERY_TILE) {
        let tile = &query[q0 * d..(q0 + QUERY_TILE).min(nq) * d];
        for (i, j) in nearest_in_tile(tile, base, d, &base_norms)
            .into_iter()
            .enumerate()
        {
            let (q, b) = (&tile[i * d..(i + 1) * d], &base[j * d..(j + 1) * d]);
            let d2: f64 = q
                .iter()
                .zip(b)
                .map(|(&u, &v)| (f64::from(u) - f64::from(v)).powi(2))
                .sum();
            out.push(d2.sqrt() as f32);
        }
    }
    Ok(out)
}

/// argminⱼ ‖bⱼ‖² − 2·qᵢᵀbⱼ for each row of the query tile (‖qᵢ‖² is the same for every j).
fn nearest_in_tile(tile: &[f32], base: &[f32], d: usize, base_norms: &[f32]) -> Vec<usize> {
    let rows = tile.len() / d;
    // The query tile is copied column-major (nalgebra 0.35's small-matrix fallback, taken when
    // a dimension is ≤ 5, overruns its output for a row-strided left operand); the base tile
    // read in place as a column-major d × cols view is Bᵀ.
    let q = DMatrix::from_row_slice(rows, d, tile);
    let mut best = vec![f32::INFINITY; rows];
    let mut arg = vec![0usize; rows];
    let mut g = DMatrix::<f32>::zeros(0, 0);
    for b0 in (0..base_norms.len()).step_by(BASE_TILE) {
        let cols = BASE_TILE.min(base_norms.len() - b0);
        if g.ncols() != cols || g.nrows() != rows {
            g = DMatrix::zeros(rows, cols);
        }
        let bt = DMatrixView::from_slice(&base[b0 * d..(b0 + cols) * d], d, cols);
        g.gemm(1.0, &q, &bt, 0.0);
        for (j, col) in g.column_iter().enumerate() {
            let bn = base_norms[b0 + j];
            for ((dot, best), arg) in col.iter().zip(&mut best).zip(&mut arg) {
                let c = bn - 2.0 * dot;
                if c < *best {
                    *best = c;
                    *arg = b0 + j;
                }
            }
        }
    }
    arg
}

/// The summary from sample→train and test→train nearest-neighbour distances (e.g. from [`nearest_distances`]).
pub fn memorisation(sample_nn: &[f32], test_nn: &[f32], n_train: usize) -> Result<Memorisation> {
    let samples = sorted("sample→train distances", sample_nn)?;
    let test = sorted("test→train distances", test_nn)?;
    let threshold = quantile_sorted(&test, PERCENTILE / 100.0);
    // ≤ rather than <: with duplicates between test and train the threshold is 0, and exact
    // copies among the samples must still count.
    let below = samples.partition_point(|&v| v <= threshold);
    let quantiles = |s: &[f64]| QUANTILES.map(|p| quantile_sorted(s, p / 100.0));
    Ok(Memorisation {
        threshold,
        fraction_below: below as f64 / samples.len() as f64,
        fraction_ci95: wilson(below, samples.len()),
        sample_quantiles: quantiles(&samples),
        test_quantiles: quantiles(&test),
        n_samples: samples.len(),
        n_test: test.len(),
        n_train,
    })
}

/// The distances in f64, ascending; an error if empty, negative or not finite.
fn sorted(what: &str, values: &[f32]) -> Result<Vec<f64>> {
    if values.is_empty() {
        return Err(EvalError::input(
            "memorisation",
            format!("no {what}; compute them with nearest_distances on at least one row"),
        ));
    }
    if let Some(i) = values.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(EvalError::input(
            "memorisation",
            format!(
                "{what}[{i}] = {} is not a distance; pass the output of nearest_distances",
                values[i]
            ),
        ));
    }
    let mut v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
    v.sort_by(f64::total_cmp);
    Ok(v)
}
