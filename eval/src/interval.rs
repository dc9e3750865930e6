//! 95% intervals for the report's numbers: the basic bootstrap for FID and ratios of FIDs
//! (Efron & Tibshirani 1993, "An Introduction to the Bootstrap"; Davison & Hinkley 1997,
//! "Bootstrap Methods and their Application" §5.2), normal intervals for means and Wilson
//! score intervals for proportions (Wilson 1927, "Probable Inference, the Law of Succession,
//! and Statistical Inference").

use std::fmt;

use nalgebra::{DMatrix, DMatrixView};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result, rows};
use crate::frechet::{FeatureStats, FrechetError, frechet_distance};

/// z₀.₉₇₅, the standard normal's 97.5% quantile: a two-sided 95% normal interval is ± Z95·se.
pub const Z95: f64 = 1.959963984540054;

/// Lower and upper tail probabilities of a two-sided 95% interval.
const TAILS: (f64, f64) = (0.025, 0.975);

/// Significant digits [`Interval`]'s `Display` prints when no precision is given.
const DISPLAY_DIGITS: i32 = 4;

/// Rows per GEMM when accumulating a weighted scatter (bounds the temporary to CHUNK × d f64).
const CHUNK: usize = 256;

/// A closed interval [lo, hi]; serialised as the JSON array `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// lo ≤ x ≤ hi.
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// The intervals share a point: self.lo ≤ other.hi and other.lo ≤ self.hi.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

impl From<[f64; 2]> for Interval {
    fn from([lo, hi]: [f64; 2]) -> Self {
        Interval { lo, hi }
    }
}

impl From<Interval> for [f64; 2] {
    fn from(i: Interval) -> Self {
        [i.lo, i.hi]
    }
}

impl fmt::Display for Interval {
    /// "[lo, hi]" with the given precision, else with 4 significant digits of the larger end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = f.precision().unwrap_or_else(|| {
            let m = self.lo.abs().max(self.hi.abs());
            if m > 0.0 && m.is_finite() {
                (DISPLAY_DIGITS - 1 - m.log10().floor() as i32).clamp(0, 12) as usize
            } else {
                0
            }
        });
        write!(f, "[{:.*}, {:.*}]", decimals, self.lo, decimals, self.hi)
    }
}

/// The p-quantile of ascending `sorted` values by linear interpolation at h = (N − 1)·p
/// (numpy's default `method="linear"`); NaN if empty.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let h = last as f64 * p.clamp(0.0, 1.0);
    let i = (h.floor() as usize).min(last);
    let j = (i + 1).min(last);
    sorted[i] + (h - i as f64) * (sorted[j] - sorted[i])
}

/// (q₀.₀₂₅, q₀.₉₇₅) of the finite replicates; `None` if fewer than 2 are finite.
fn tail_quantiles(replicates: &[f64]) -> Option<(f64, f64)> {
    let mut finite: Vec<f64> = replicates
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if finite.len() < 2 {
        return None;
    }
    finite.sort_by(f64::total_cmp);
    Some((
        quantile_sorted(&finite, TAILS.0),
        quantile_sorted(&finite, TAILS.1),
    ))
}

/// Basic (reverse-percentile) bootstrap interval [2θ̂ − q₀.₉₇₅, 2θ̂ − q₀.₀₂₅] (Davison & Hinkley 1997 §5.2).
///
/// It reads the law of θ̂ − θ off that of θ* − θ̂. For FID that law includes the estimator's
/// O(d/n) upward bias: E‖μ̂₁ − μ̂₂‖² = ‖μ₁ − μ₂‖² + tr(Σ₁)/n₁ + tr(Σ₂)/n₂ (and alike for the
/// trace terms), and a resample of both sets adds the same tr(Σ̂)/n-type bias to θ̂ once more,
/// so θ* − θ̂ ≈ bias + noise and reflecting the quantiles about θ̂ removes the bias to first
/// order. The percentile interval [q₀.₀₂₅, q₀.₉₇₅] instead sits near θ + 2·bias.
/// Non-finite replicates are ignored; with fewer than 2 finite ones the interval is
/// [point, point] — a width that is unknown, not zero.
pub fn basic_interval(point: f64, replicates: &[f64]) -> Interval {
    match tail_quantiles(replicates) {
        Some((q_lo, q_hi)) => Interval {
            lo: 2.0 * point - q_hi,
            hi: 2.0 * point - q_lo,
        },
        None => Interval {
            lo: point,
            hi: point,
        },
    }
}

/// [`basic_interval`] with both ends clamped at 0, for quantities that cannot be negative (FID, ratios of FIDs).
pub fn basic_interval_nonneg(point: f64, replicates: &[f64]) -> Interval {
    let i = basic_interval(point, replicates);
    Interval {
        lo: i.lo.max(0.0),
        hi: i.hi.max(0.0),
    }
}

/// Percentile bootstrap interval [q₀.₀₂₅, q₀.₉₇₅] (Efron & Tibshirani 1993 §13.3), for comparison only: it keeps FID's bias (see [`basic_interval`]); [point, point] with fewer than 2 finite replicates.
pub fn percentile_interval(point: f64, replicates: &[f64]) -> Interval {
    match tail_quantiles(replicates) {
        Some((lo, hi)) => Interval { lo, hi },
        None => Interval {
            lo: point,
            hi: point,
        },
    }
}

/// Standard normal bootstrap interval θ̂ ± Z95·ŝe, ŝe the sd of the finite replicates (divisor B − 1; Efron & Tibshirani 1993 §13.2).
///
/// It keeps FID's O(d/n) bias: an interval for the expected FID at this n, the right one to
/// compare models measured at the same n (see [`basic_interval`] for the population FID).
/// [point, point] with fewer than 2 finite replicates (width unknown).
pub fn sd_interval(point: f64, replicates: &[f64]) -> Interval {
    let finite: Vec<f64> = replicates
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let half = if finite.len() < 2 {
        0.0
    } else {
        Z95 * sample_sd(&finite)
    };
    Interval {
        lo: point - half,
        hi: point + half,
    }
}

/// s = √(Σ(xᵢ − x̄)²/(n − 1)), the sample standard deviation (n ≥ 2).
fn sample_sd(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// r*_b = num*_b / den*_b; both lists must come from the same [`Bootstrap`] (replicate b shares reference replicate b), extra entries of the longer list are dropped.
pub fn ratio_replicates(num: &[f64], den: &[f64]) -> Vec<f64> {
    num.iter().zip(den).map(|(a, b)| a / b).collect()
}

/// (x̄, x̄ ± Z95·s/√n) with s the sample sd (divisor n − 1); with n < 2 the interval is [x̄, x̄] (width unknown) and x̄ is NaN for n = 0.
pub fn mean_interval(values: &[f64]) -> (f64, Interval) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, Interval { lo: mean, hi: mean });
    }
    let half = Z95 * sample_sd(values) / n.sqrt();
    (
        mean,
        Interval {
            lo: mean - half,
            hi: mean + half,
        },
    )
}

/// Wilson score interval (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), z = Z95 (Wilson 1927); [0, 1] for n = 0, k > n is read as k = n.
pub fn wilson(k: usize, n: usize) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let (n, p) = (n as f64, k.min(n) as f64 / n as f64);
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Interval {
        lo: (centre - half).max(0.0),
        hi: (centre + half).min(1.0),
    }
}

/// Nonparametric bootstrap of FID against a shared reference (Efron & Tibshirani 1993): B
/// multinomial resamples of the reference, kept as their [`FeatureStats`].
///
/// Every model's replicate b is measured against reference replicate b, so the replicates of
/// a ratio FID_A/FID_B carry the resampling noise of both models and of the reference at once.
/// Memory: B·d² f64 (100 replicates of d = 512 features hold 200 MB).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Statistics of reference replicate b, b = 0..B.
    reference: Vec<FeatureStats>,
    /// Feature dimension d.
    d: usize,
}

impl Bootstrap {
    /// Draws B resamples (n draws with replacement from the n reference rows each) with `seed`.
    pub fn new(reference: &[f32], d: usize, b: usize, seed: u64) -> Result<Self> {
        let n = rows("Bootstrap::new", "reference features", reference, d)?;
        if b < 2 {
            return Err(EvalError::input(
                "Bootstrap::new",
                format!("b = {b} replicates; an interval needs b ≥ 2 (pass 100 or more)"),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let reference = (0..b)
            .map(|_| weighted_stats(reference, d, &multinomial_counts(n, &mut rng)))
            .collect::<Result<_>>()?;
        Ok(Self { reference, d })
    }

    /// The number B of replicates.
    pub fn b(&self) -> usize {
        self.reference.len()
    }

    /// FID*_b = FID(sample replicate b, reference replicate b), b = 0..B, resampling `features` with `seed` (use a different seed per model).
    pub fn fid_replicates(&self, features: &[f32], d: usize, seed: u64) -> Result<Vec<f64>> {
        if d != self.d {
            return Err(EvalError::input(
                "Bootstrap::fid_replicates",
                format!(
                    "features have d = {d} but the reference has d = {}; use features from the \
                     same extractor and layer",
                    self.d
                ),
            ));
        }
        let n = rows("Bootstrap::fid_replicates", "sample features", features, d)?;
        let mut rng = StdRng::seed_from_u64(seed);
        self.reference
            .iter()
            .map(|r| {
                let s = weighted_stats(features, d, &multinomial_counts(n, &mut rng))?;
                Ok(frechet_distance(&s, r)?)
            })
            .collect()
    }
}

/// Counts c₁…cₙ of n draws with replacement from n rows (one multinomial(n; 1/n, …, 1/n) draw).
fn multinomial_counts(n: usize, rng: &mut StdRng) -> Vec<u32> {
    let mut counts = vec![0u32; n];
    for _ in 0..n {
        counts[rng.random_range(0..n)] += 1;
    }
    counts
}

/// μ = Σcᵢxᵢ/N and Σ = Σcᵢ(xᵢ − μ)(xᵢ − μ)ᵀ/(N − 1), N = Σcᵢ: the stats of the rows repeated cᵢ times, without repeating them.
///
/// The scatter is one GEMM per chunk of rows with cᵢ > 0, each row centred and scaled by √cᵢ.
pub fn weighted_stats(features: &[f32], d: usize, counts: &[u32]) -> Result<FeatureStats> {
    let n = rows("weighted_stats", "features", features, d)?;
    if counts.len() != n {
        return Err(EvalError::input(
            "weighted_stats",
            format!(
                "{} counts for {n} rows; pass one count per row",
                counts.len()
            ),
        ));
    }
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total < 2 {
        return Err(FrechetError::TooFewSamples { n: total as usize }.into());
    }
    let used: Vec<(usize, f64)> = (0..n)
        .filter(|&i| counts[i] > 0)
        .map(|i| (i, f64::from(counts[i])))
        .collect();
    let mut mu = vec![0.0f64; d];
    for &(i, c) in &used {
        for (m, &v) in mu.iter_mut().zip(&features[i * d..(i + 1) * d]) {
            *m += c * f64::from(v);
        }
    }
    mu.iter_mut().for_each(|m| *m /= total as f64);

    let mut scatter = DMatrix::<f64>::zeros(d, d);
    let mut buf = Vec::with_capacity(CHUNK * d);
    for (k, chunk) in used.chunks(CHUNK).enumerate() {
        // Row s of the chunk is √cᵢ·(xᵢ − μ); as a column-major d × k matrix X, XXᵀ adds
        // Σ cᵢ(xᵢ − μ)(xᵢ − μ)ᵀ over the chunk.
        buf.clear();
        for &(i, c) in chunk {
            let w = c.sqrt();
            let row = &features[i * d..(i + 1) * d];
            buf.extend(row.iter().zip(&mu).map(|(&v, m)| w * (f64::from(v) - m)));
        }
        // X is read contiguously; Xᵀ is a row-strided view, safe as gemm's right operand only
        // (nalgebra 0.35's small-matrix fallback overruns for a row-strided left operand).
        let x = DMatrixView::from_slice(&buf, d, chunk.len());
        let xt = DMatrixView::from_slice_with_strides(&buf, chunk.len(), d, d, 1);
        scatter.gemm(1.0, &x, &xt, if k == 0 { 0.0 } else { 1.0 });
    }
    let inv_dof = 1.0 / (total - 1) as f64;
    let sigma = (0..d * d)
        .map(|ij| {
            let (i, j) = (ij / d, ij % d);
            0.5 * (scatter[(i, j)] + scatter[(j, i)]) * inv_dof
        })
        .collect();
    Ok(FeatureStats {
        mu,
        sigma,
        n: total as usize,
        dim: d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_four_significant_digits_or_the_given_precision() {
        let i = Interval {
            lo: 12.3456,
            hi: 15.6789,
        };
        // max |end| = 15.68 → 10¹ → 4 − 1 − 1 = 2 decimals.
        assert_eq!(i.to_string(), "[12.35, 15.68]");
        assert_eq!(format!("{i:.1}"), "[12.3, 15.7]");
        // 0.0015 → 10⁻³ → 4 − 1 + 3 = 6 decimals.
        let k = Interval {
            lo: -0.0002,
            hi: 0.0015,
        };
        assert_eq!(k.to_string(), "[-0.000200, 0.001500]");
        assert_eq!(Interval { lo: 0.0, hi: 0.0 }.to_string(), "[0, 0]");
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        // np.quantile([1, 2, 3, 4], 0.25) = 1.75: h = 3·0.25 = 0.75 → 1 + 0.75·(2 − 1).
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
        assert_eq!(quantile_sorted(&[7.0], 0.5), 7.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }
}
