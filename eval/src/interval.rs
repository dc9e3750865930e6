//! 95% intervals for a report's figures: the nonparametric bootstrap over samples for FID and
//! FID ratios (Efron & Tibshirani 1993; the basic interval of Davison & Hinkley 1997, §5.2),
//! normal intervals of means, and the Wilson interval of a proportion (Wilson 1927).

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::frechet::{FeatureStats, FrechetError, frechet_distance};

/// The standard normal's 97.5% quantile: ±Z95·se is a 95% interval.
pub const Z95: f64 = 1.959963984540054;

/// A closed interval [lo, hi], written to JSON as `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl From<[f64; 2]> for Interval {
    fn from([lo, hi]: [f64; 2]) -> Self {
        Self { lo, hi }
    }
}

impl From<Interval> for [f64; 2] {
    fn from(i: Interval) -> Self {
        [i.lo, i.hi]
    }
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = (self.hi - self.lo).abs().max(self.hi.abs() * 1e-3);
        // Enough digits to tell the ends apart: two significant digits of the width.
        let digits = (2.0 - span.log10().floor()).clamp(0.0, 8.0) as usize;
        write!(f, "[{:.*}, {:.*}]", digits, self.lo, digits, self.hi)
    }
}

/// Quantile `q` of sorted `v` by linear interpolation (numpy's default).
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    match v.get(i + 1) {
        Some(&next) => v[i] + frac * (next - v[i]),
        None => v[i],
    }
}

/// The basic bootstrap interval [2θ̂ − q₀.₉₇₅, 2θ̂ − q₀.₀₂₅] of the replicates θ*_b.
///
/// Why basic and not percentile: FID is biased upwards by O(d/n) (the |μ̂₁ − μ̂₂|² term alone
/// adds tr Σ₁/n₁ + tr Σ₂/n₂), and a resample adds about the same bias again, so the replicates sit
/// one bias above θ̂; reflecting them about θ̂ removes it to first order, and the interval
/// targets the population FID. Non-finite replicates are dropped; with fewer than two finite
/// ones the interval is [θ̂, θ̂] (no spread can be estimated).
pub fn basic_interval(point: f64, replicates: &[f64]) -> Interval {
    let mut v: Vec<f64> = replicates.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return Interval { lo: point, hi: point };
    }
    v.sort_by(f64::total_cmp);
    Interval {
        lo: 2.0 * point - quantile(&v, 0.975),
        hi: 2.0 * point - quantile(&v, 0.025),
    }
}

/// [`basic_interval`] for a quantity that cannot be negative (a distance, a ratio of
/// distances): its lower end is clamped at 0.
pub fn basic_interval_nonneg(point: f64, replicates: &[f64]) -> Interval {
    let i = basic_interval(point, replicates);
    Interval {
        lo: i.lo.max(0.0),
        hi: i.hi.max(0.0),
    }
}

/// Element-wise num_b / den_b: the replicates of a ratio whose two sides were resampled with
/// the same reference resample b.
pub fn ratio_replicates(num: &[f64], den: &[f64]) -> Vec<f64> {
    num.iter().zip(den).map(|(a, b)| a / b).collect()
}

/// Mean ± Z95·s/√n, s the sample standard deviation (n − 1); [mean, mean] for n < 2.
pub fn mean_interval(values: &[f64]) -> (f64, Interval) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, Interval { lo: mean, hi: mean });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = Z95 * (var / n as f64).sqrt();
    (mean, Interval { lo: mean - half, hi: mean + half })
}

/// Wilson score interval of k successes in n trials at 95%:
/// (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n); [0, 1] for n = 0.
pub fn wilson(k: usize, n: usize) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let (p, nf, z2) = (k as f64 / n as f64, n as f64, Z95 * Z95);
    let centre = p + z2 / (2.0 * nf);
    let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    let denom = 1.0 + z2 / nf;
    Interval {
        lo: ((centre - half) / denom).max(0.0),
        hi: ((centre + half) / denom).min(1.0),
    }
}

/// Multinomial counts of one resample: n draws with replacement from n rows.
fn resample_counts(n: usize, rng: &mut StdRng) -> Vec<f64> {
    let mut counts = vec![0.0; n];
    for _ in 0..n {
        counts[rng.random_range(0..n)] += 1.0;
    }
    counts
}

/// Mean and unbiased covariance of rows weighted by `counts` (the resample's multiplicities,
/// summing to n): μ = Σ cᵢxᵢ/n, Σ = Σ cᵢ(xᵢ − μ)(xᵢ − μ)ᵀ/(n − 1), with one GEMM over the
/// √cᵢ-scaled centred rows — the resample's duplicated rows are never materialised.
pub fn weighted_stats(features: &[f32], d: usize, counts: &[f64]) -> Result<FeatureStats> {
    let n = counts.len();
    if d == 0 || features.len() != n * d || n < 2 {
        return Err(FrechetError::LengthMismatch { len: features.len(), n, dim: d }.into());
    }
    let total: f64 = counts.iter().sum();
    let mut mu = vec![0.0f64; d];
    for (row, &c) in features.chunks_exact(d).zip(counts) {
        for (m, &v) in mu.iter_mut().zip(row) {
            *m += c * v as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= total);
    let mut scatter = DMatrix::<f64>::zeros(d, d);
    const CHUNK: usize = 512;
    for (k, (rows, cs)) in features.chunks(CHUNK * d).zip(counts.chunks(CHUNK)).enumerate() {
        let x = DMatrix::<f64>::from_fn(d, cs.len(), |r, s| {
            cs[s].sqrt() * (rows[s * d + r] as f64 - mu[r])
        });
        scatter.gemm(1.0, &x, &x.transpose(), if k == 0 { 0.0 } else { 1.0 });
    }
    let inv = 1.0 / (total - 1.0);
    let sigma = (0..d * d)
        .map(|i| 0.5 * (scatter[(i / d, i % d)] + scatter[(i % d, i / d)]) * inv)
        .collect();
    Ok(FeatureStats { mu, sigma, n, dim: d })
}

/// The bootstrap of a report: B resamples of the shared reference, kept as statistics; each
/// sample set is resampled B times against them (replicate b against reference resample b, so a
/// ratio of two sets' replicates accounts for both sets and the reference).
pub struct Bootstrap {
    reference: Vec<FeatureStats>,
}

impl Bootstrap {
    /// B resamples of the `reference` features (n rows of d), seeded.
    pub fn new(reference: &[f32], d: usize, b: usize, seed: u64) -> Result<Self> {
        let n = reference.len() / d.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let reference = (0..b)
            .map(|_| weighted_stats(reference, d, &resample_counts(n, &mut rng)))
            .collect::<Result<_>>()?;
        Ok(Self { reference })
    }

    /// Resamples behind each interval.
    pub fn b(&self) -> usize {
        self.reference.len()
    }

    /// FID*_b = FID(resample b of `features`, reference resample b), b = 1..B.
    pub fn fid_replicates(&self, features: &[f32], d: usize, seed: u64) -> Result<Vec<f64>> {
        let n = features.len() / d.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        self.reference
            .iter()
            .map(|r| {
                let s = weighted_stats(features, d, &resample_counts(n, &mut rng))?;
                Ok(frechet_distance(&s, r)?)
            })
            .collect()
    }
}
