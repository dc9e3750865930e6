//! Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
//! MMD² between two feature sets under the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³,
//! over all pairs with a delete-one-block jackknife interval, plus clean-fid's subset numbers.

use std::ops::Range;

use nalgebra::{DMatrix, DMatrixView};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result, rows};
use crate::interval::{Interval, Z95};

/// Rows per GEMM tile: a tile product is TILE² f64 (8 MB), a converted tile TILE × d f64.
const TILE: usize = 1024;

/// How KID is estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KidConfig {
    /// Number of random subsets for `subset_mean`/`subset_std`; 100 as in clean-fid's
    /// `kernel_distance` and torch-fidelity's `kid_subsets`.
    pub subsets: usize,
    /// Rows per subset (capped by both set sizes); 1000 as in clean-fid and torch-fidelity.
    pub subset_size: usize,
    /// Contiguous blocks K each set is split into for the delete-one-block jackknife; 20 gives
    /// the variance 19 degrees of freedom (a fewstep choice; reduced so every block has ≥ 2 rows).
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

/// KID of two feature sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Unbiased MMD² over all pairs of both full sets.
    pub kid: f64,
    /// kid ± Z95·se, se the delete-one-block jackknife standard error.
    pub ci95: Interval,
    /// Mean of MMD² over the random subsets (clean-fid's reported KID).
    pub subset_mean: f64,
    /// Population sd (ddof = 0) of MMD² over the subsets (torch-fidelity's `kid_std`).
    pub subset_std: f64,
    /// Number of subsets drawn.
    pub subsets: usize,
    /// Rows per subset actually used, min(subset_size, n_x, n_y).
    pub subset_size: usize,
    /// Jackknife blocks K actually used.
    pub blocks: usize,
    /// Rows of x.
    pub n_x: usize,
    /// Rows of y.
    pub n_y: usize,
}

/// k(x, y) = (g/d + 1)³ for the dot product g = xᵀy.
fn cubic(g: f64, inv_d: f64) -> f64 {
    let t = g * inv_d + 1.0;
    t * t * t
}

/// K near-equal contiguous ranges covering 0..n: block a is a·n/K .. (a+1)·n/K.
fn split(n: usize, k: usize) -> Vec<Range<usize>> {
    (0..k).map(|a| a * n / k..(a + 1) * n / k).collect()
}

/// (block, rows) tiles of at most TILE rows, none crossing a block boundary.
fn tiles(blocks: &[Range<usize>]) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    for (a, r) in blocks.iter().enumerate() {
        for s in r.clone().step_by(TILE) {
            out.push((a, s..(s + TILE).min(r.end)));
        }
    }
    out
}

/// Rows `r` of a row-major `d`-wide f32 buffer, in f64.
fn to_f64(p: &[f32], r: &Range<usize>, d: usize) -> Vec<f64> {
    p[r.start * d..r.end * d]
        .iter()
        .map(|&v| f64::from(v))
        .collect()
}

/// K_p × K_q row-major matrix of Σ_{i∈block a of p, j∈block b of q} k(pᵢ, qⱼ), one f64 GEMM per
/// tile pair; with `same` (q = p, same blocks) only tile pairs t₂ ≥ t₁ are multiplied.
fn kernel_block_sums(
    p: &[f32],
    q: &[f32],
    d: usize,
    (p_blocks, q_blocks): (&[Range<usize>], &[Range<usize>]),
    same: bool,
) -> Vec<f64> {
    let (pt, qt) = (tiles(p_blocks), tiles(q_blocks));
    let kq = q_blocks.len();
    let inv_d = 1.0 / d as f64;
    let mut sums = vec![0.0f64; p_blocks.len() * kq];
    for (t1, (a, rp)) in pt.iter().enumerate() {
        let pa = to_f64(p, rp, d);
        // The left operand is copied column-major: nalgebra 0.35's small-matrix fallback
        // (any dimension ≤ 5) overruns its output for a row-strided left operand.
        let pv = DMatrix::from_row_slice(rp.len(), d, &pa);
        for (t2, (b, rq)) in qt.iter().enumerate().skip(if same { t1 } else { 0 }) {
            let owned;
            let qb = if same && t1 == t2 {
                &pa
            } else {
                owned = to_f64(q, rq, d);
                &owned
            };
            // Column-major d × |rq| view of row-major rows = the tile transposed.
            let qv = DMatrixView::from_slice(qb, d, rq.len());
            let mut g = DMatrix::<f64>::zeros(rp.len(), rq.len());
            g.gemm(1.0, &pv, &qv, 0.0);
            let s: f64 = g.iter().map(|&v| cubic(v, inv_d)).sum();
            sums[a * kq + b] += s;
            if same && t1 != t2 {
                sums[b * kq + a] += s;
            }
        }
    }
    sums
}

/// Σ_{i∈block a} k(pᵢ, pᵢ) = Σ (‖pᵢ‖²/d + 1)³ for each block.
fn diagonal_sums(p: &[f32], d: usize, blocks: &[Range<usize>]) -> Vec<f64> {
    let inv_d = 1.0 / d as f64;
    blocks
        .iter()
        .map(|r| {
            p[r.start * d..r.end * d]
                .chunks_exact(d)
                .map(|row| cubic(row.iter().map(|&v| f64::from(v).powi(2)).sum(), inv_d))
                .sum()
        })
        .collect()
}

/// Kernel sums between and within the K blocks of x and of y, enough for the U-statistic
/// with any set of blocks left out.
struct BlockSums {
    /// Rows per block of x, then of y.
    m: Vec<usize>,
    n: Vec<usize>,
    /// K × K row-major block sums, each including the i = j terms of diagonal blocks.
    xx: Vec<f64>,
    yy: Vec<f64>,
    xy: Vec<f64>,
    /// Σ k(xᵢ, xᵢ) and Σ k(yᵢ, yᵢ) per block.
    diag_x: Vec<f64>,
    diag_y: Vec<f64>,
}

impl BlockSums {
    /// Splits x (m × d) and y (n × d) into K contiguous blocks each and sums the kernels.
    fn new(x: &[f32], y: &[f32], d: usize, k: usize) -> Self {
        let (bx, by) = (split(x.len() / d, k), split(y.len() / d, k));
        Self {
            m: bx.iter().map(Range::len).collect(),
            n: by.iter().map(Range::len).collect(),
            xx: kernel_block_sums(x, x, d, (&bx, &bx), true),
            yy: kernel_block_sums(y, y, d, (&by, &by), true),
            xy: kernel_block_sums(x, y, d, (&bx, &by), false),
            diag_x: diagonal_sums(x, d, &bx),
            diag_y: diagonal_sums(y, d, &by),
        }
    }

    /// MMD²ᵤ = Σ_{i≠j}k(xᵢ,xⱼ)/(m(m−1)) + Σ_{i≠j}k(yᵢ,yⱼ)/(n(n−1)) − 2Σk(xᵢ,yⱼ)/(mn) over the blocks other than `skip`.
    fn mmd2_without(&self, skip: Option<usize>) -> f64 {
        let k = self.m.len();
        let keep = |a: usize| Some(a) != skip;
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for a in (0..k).filter(|&a| keep(a)) {
            sxx -= self.diag_x[a];
            syy -= self.diag_y[a];
            for b in (0..k).filter(|&b| keep(b)) {
                sxx += self.xx[a * k + b];
                syy += self.yy[a * k + b];
                sxy += self.xy[a * k + b];
            }
        }
        let m: usize = (0..k).filter(|&a| keep(a)).map(|a| self.m[a]).sum();
        let n: usize = (0..k).filter(|&a| keep(a)).map(|a| self.n[a]).sum();
        let (m, n) = (m as f64, n as f64);
        sxx / (m * (m - 1.0)) + syy / (n * (n - 1.0)) - 2.0 * sxy / (m * n)
    }
}

/// Ok if both sets have the 2 rows the pairs i ≠ j need.
fn at_least_two(metric: &'static str, m: usize, n: usize) -> Result<()> {
    if m < 2 || n < 2 {
        return Err(EvalError::input(
            metric,
            format!(
                "x has {m} rows and y {n}; the unbiased MMD² averages over pairs i ≠ j, so pass \
                 at least 2 rows in each set"
            ),
        ));
    }
    Ok(())
}

/// Unbiased MMD² with k(x, y) = (xᵀy/d + 1)³ between x (m × d) and y (n × d), m, n ≥ 2 (Bińkowski et al. 2018, eq. 3 with their KID kernel).
pub fn mmd2_unbiased(x: &[f32], y: &[f32], d: usize) -> Result<f64> {
    let m = rows("mmd2_unbiased", "x", x, d)?;
    let n = rows("mmd2_unbiased", "y", y, d)?;
    at_least_two("mmd2_unbiased", m, n)?;
    Ok(BlockSums::new(x, y, d, 1).mmd2_without(None))
}

/// KID of x (m × d) against y (n × d): the full-set MMD²ᵤ, its jackknife interval and clean-fid's subset mean and sd.
///
/// m, n ≥ 2; with fewer than 4 rows in a set no block split is possible and `ci95` is
/// [kid, kid] — a width that is unknown, not zero.
pub fn kid(x: &[f32], y: &[f32], d: usize, cfg: &KidConfig, seed: u64) -> Result<Kid> {
    let m = rows("kid", "x", x, d)?;
    let n = rows("kid", "y", y, d)?;
    let bad = |message: String| Err(EvalError::input("kid", message));
    if cfg.blocks < 2 {
        return bad(format!(
            "blocks = {}; the jackknife needs K ≥ 2 blocks (20 is the default)",
            cfg.blocks
        ));
    }
    if cfg.subsets == 0 || cfg.subset_size < 2 {
        return bad(format!(
            "subsets = {}, subset_size = {}; pass subsets ≥ 1 and subset_size ≥ 2 (defaults 100 \
             and 1000)",
            cfg.subsets, cfg.subset_size
        ));
    }
    at_least_two("kid", m, n)?;
    // Every block keeps ≥ 2 rows, so each delete-one-block estimate is defined.
    let k = cfg.blocks.min(m / 2).min(n / 2).max(1);
    let sums = BlockSums::new(x, y, d, k);
    let kid = sums.mmd2_without(None);
    // With fewer than 4 rows in a set there is a single block and no jackknife: [kid, kid].
    let se = if k >= 2 { jackknife_se(&sums, k) } else { 0.0 };
    let subset_size = cfg.subset_size.min(m).min(n);
    let (subset_mean, subset_std) = subset_mmd2(x, y, d, (cfg.subsets, subset_size), seed);
    Ok(Kid {
        kid,
        ci95: Interval {
            lo: kid - Z95 * se,
            hi: kid + Z95 * se,
        },
        subset_mean,
        subset_std,
        subsets: cfg.subsets,
        subset_size,
        blocks: k,
        n_x: m,
        n_y: n,
    })
}

/// se_jack = √((K−1)/K · Σₐ(θ₍ₐ₎ − θ̄)²), θ₍ₐ₎ the estimate without block a of x and of y (Quenouille 1956, Tukey 1958).
fn jackknife_se(sums: &BlockSums, k: usize) -> f64 {
    let loo: Vec<f64> = (0..k).map(|a| sums.mmd2_without(Some(a))).collect();
    let mean = loo.iter().sum::<f64>() / k as f64;
    let k = k as f64;
    ((k - 1.0) / k * loo.iter().map(|t| (t - mean).powi(2)).sum::<f64>()).sqrt()
}

/// (mean, population sd) of MMD²ᵤ over `subsets` pairs of random subsets of `size` rows drawn without replacement from x and from y, as clean-fid's `kernel_distance`.
fn subset_mmd2(
    x: &[f32],
    y: &[f32],
    d: usize,
    (subsets, size): (usize, usize),
    seed: u64,
) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut gather = |p: &[f32]| -> Vec<f32> {
        let idx = rand::seq::index::sample(&mut rng, p.len() / d, size);
        idx.iter()
            .flat_map(|i| &p[i * d..(i + 1) * d])
            .copied()
            .collect()
    };
    let values: Vec<f64> = (0..subsets)
        .map(|_| {
            let (xs, ys) = (gather(x), gather(y));
            BlockSums::new(&xs, &ys, d, 1).mmd2_without(None)
        })
        .collect();
    let mean = values.iter().sum::<f64>() / subsets as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / subsets as f64;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_tiles_cover_the_rows_once() {
        // 10 rows in 3 blocks: 0..3, 3..6, 6..10 (a·10/3 rounded down).
        assert_eq!(split(10, 3), vec![0..3, 3..6, 6..10]);
        let blocks = split(3 * TILE + 5, 2);
        let t = tiles(&blocks);
        let covered: usize = t.iter().map(|(_, r)| r.len()).sum();
        assert_eq!(covered, 3 * TILE + 5);
        assert!(
            t.iter()
                .all(|(a, r)| r.len() <= TILE && blocks[*a].end >= r.end)
        );
    }
}
