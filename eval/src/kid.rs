//! Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
//! MMD² between two feature sets under the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, on the
//! same features as FID. Reported three ways: the full-set estimate over all pairs with a
//! delete-one-block jackknife interval, and clean-fid / torch-fidelity's mean ± sd over random
//! subsets, for comparison with published numbers.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::interval::{Interval, Z95};

/// How KID is estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KidConfig {
    /// Random subsets behind the subset mean ± sd (clean-fid and torch-fidelity: 100).
    pub subsets: usize,
    /// Size of each subset (clean-fid and torch-fidelity: 1,000; capped at the smaller set).
    pub subset_size: usize,
    /// Blocks of the delete-one-block jackknife of the full-set estimate (fewer when a set
    /// has under 2 rows per block).
    pub blocks: usize,
}

impl Default for KidConfig {
    fn default() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            blocks: 20,
        }
    }
}

/// KID of one sample set against a reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Unbiased MMD² over all pairs of the two full sets.
    pub kid: f64,
    /// 95% interval of `kid`: ± Z95 × its delete-one-block jackknife standard error.
    pub ci95: Interval,
    /// Mean and (population) standard deviation over random subsets, as clean-fid and
    /// torch-fidelity report KID.
    pub subset_mean: f64,
    pub subset_std: f64,
    pub subsets: usize,
    pub subset_size: usize,
    pub n_x: usize,
    pub n_y: usize,
}

/// k(x, y) = (xᵀy/d + 1)³ summed over every pair of rows of `a` × `b`; with `same`, a and b are
/// one set and the pairs i = j are left out.
fn kernel_sum(a: &[f32], b: &[f32], d: usize, same: bool) -> f64 {
    let to = |v: &[f32]| DMatrix::<f64>::from_fn(v.len() / d, d, |i, j| v[i * d + j] as f64);
    let (ma, mb) = (to(a), to(b));
    let g = &ma * mb.transpose();
    let k = |v: f64| (v / d as f64 + 1.0).powi(3);
    let total: f64 = g.iter().map(|&v| k(v)).sum();
    if same {
        total - (0..g.nrows()).map(|i| k(g[(i, i)])).sum::<f64>()
    } else {
        total
    }
}

fn too_few(m: usize, n: usize) -> EvalError {
    EvalError::Samples {
        path: "KID".into(),
        message: format!(
            "needs at least 2 samples in each set, got {m} and {n}: generate more samples"
        ),
    }
}

/// Unbiased MMD²: (1/(m(m−1)))Σ_{i≠j}k(xᵢ,xⱼ) + (1/(n(n−1)))Σ_{i≠j}k(yᵢ,yⱼ) − (2/(mn))Σ k(xᵢ,yⱼ).
pub fn mmd2_unbiased(x: &[f32], y: &[f32], d: usize) -> Result<f64> {
    let (m, n) = (x.len() / d.max(1), y.len() / d.max(1));
    if d == 0 || m < 2 || n < 2 {
        return Err(too_few(m, n));
    }
    let (mf, nf) = (m as f64, n as f64);
    Ok(kernel_sum(x, x, d, true) / (mf * (mf - 1.0)) + kernel_sum(y, y, d, true) / (nf * (nf - 1.0))
        - 2.0 * kernel_sum(x, y, d, false) / (mf * nf))
}

/// Row ranges of K near-equal contiguous blocks of n rows.
fn blocks(n: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    (0..k).map(|b| b * n / k..(b + 1) * n / k).collect()
}

/// Block sums of one kernel matrix: s[a][b] = Σ over rows of block a of `u` and block b of `v`
/// (pairs i = j left out when `same`).
fn block_sums(u: &[f32], v: &[f32], d: usize, bu: &[std::ops::Range<usize>], bv: &[std::ops::Range<usize>], same: bool) -> Vec<Vec<f64>> {
    let rows = |s: &[f32], r: &std::ops::Range<usize>| s[r.start * d..r.end * d].to_vec();
    let mut s = vec![vec![0.0; bv.len()]; bu.len()];
    for a in 0..bu.len() {
        for b in 0..bv.len() {
            if same && b < a {
                s[a][b] = s[b][a];
                continue;
            }
            s[a][b] = kernel_sum(&rows(u, &bu[a]), &rows(v, &bv[b]), d, same && a == b);
        }
    }
    s
}

/// The three kernel matrices as K × K block sums, and the block sizes.
struct Blocked {
    xx: Vec<Vec<f64>>,
    yy: Vec<Vec<f64>>,
    xy: Vec<Vec<f64>>,
    mx: Vec<f64>,
    my: Vec<f64>,
}

impl Blocked {
    /// MMD² with block `skip` of both sets left out (None: the full sets).
    fn mmd2(&self, skip: Option<usize>) -> f64 {
        let k = self.mx.len();
        let keep = |a: usize| Some(a) != skip;
        let sum = |s: &Vec<Vec<f64>>| -> f64 {
            (0..k).filter(|&a| keep(a)).map(|a| (0..k).filter(|&b| keep(b)).map(|b| s[a][b]).sum::<f64>()).sum()
        };
        let m: f64 = (0..k).filter(|&a| keep(a)).map(|a| self.mx[a]).sum();
        let n: f64 = (0..k).filter(|&a| keep(a)).map(|a| self.my[a]).sum();
        sum(&self.xx) / (m * (m - 1.0)) + sum(&self.yy) / (n * (n - 1.0)) - 2.0 * sum(&self.xy) / (m * n)
    }
}

/// The full-set estimate and its delete-one-block jackknife interval (Quenouille–Tukey):
/// se² = (K−1)/K · Σ_k (θ₍ₖ₎ − θ̄)².
fn full_with_jackknife(x: &[f32], y: &[f32], d: usize, k: usize) -> (f64, Interval) {
    let (m, n) = (x.len() / d, y.len() / d);
    let k = k.min(m / 2).min(n / 2).max(1);
    let (bx, by) = (blocks(m, k), blocks(n, k));
    let b = Blocked {
        xx: block_sums(x, x, d, &bx, &bx, true),
        yy: block_sums(y, y, d, &by, &by, true),
        xy: block_sums(x, y, d, &bx, &by, false),
        mx: bx.iter().map(|r| r.len() as f64).collect(),
        my: by.iter().map(|r| r.len() as f64).collect(),
    };
    let full = b.mmd2(None);
    if k < 2 {
        return (full, Interval { lo: full, hi: full });
    }
    let loo: Vec<f64> = (0..k).map(|i| b.mmd2(Some(i))).collect();
    let mean = loo.iter().sum::<f64>() / k as f64;
    let kf = k as f64;
    let se = ((kf - 1.0) / kf * loo.iter().map(|t| (t - mean).powi(2)).sum::<f64>()).sqrt();
    (full, Interval { lo: full - Z95 * se, hi: full + Z95 * se })
}

/// Rows `idx` of `v`.
fn pick(v: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| v[i * d..(i + 1) * d].iter().copied()).collect()
}

/// KID of `x` (samples) against `y` (reference), d features per row.
pub fn kid(x: &[f32], y: &[f32], d: usize, cfg: &KidConfig, seed: u64) -> Result<Kid> {
    let (m, n) = (x.len() / d.max(1), y.len() / d.max(1));
    if d == 0 || m < 2 || n < 2 {
        return Err(too_few(m, n));
    }
    let (kid, ci95) = full_with_jackknife(x, y, d, cfg.blocks);
    let size = cfg.subset_size.min(m).min(n).max(2);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut subs = Vec::with_capacity(cfg.subsets);
    for _ in 0..cfg.subsets {
        let (ix, iy) = (sample(&mut rng, m, size).into_vec(), sample(&mut rng, n, size).into_vec());
        subs.push(mmd2_unbiased(&pick(x, d, &ix), &pick(y, d, &iy), d)?);
    }
    let s = subs.len().max(1) as f64;
    let subset_mean = subs.iter().sum::<f64>() / s;
    let subset_std = (subs.iter().map(|v| (v - subset_mean).powi(2)).sum::<f64>() / s).sqrt();
    Ok(Kid {
        kid,
        ci95,
        subset_mean,
        subset_std,
        subsets: cfg.subsets,
        subset_size: size,
        n_x: m,
        n_y: n,
    })
}
