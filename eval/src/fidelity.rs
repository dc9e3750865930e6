//! Paired fidelity of a distilled student to its teacher: the distance between the student's
//! and the teacher's sample from the same noise and class, in pixels and in feature space. A
//! distilled student is trained to reproduce the teacher's deterministic map noise → image
//! (Luhman & Luhman 2021, "Knowledge Distillation in Iterative Generative Models for Improved
//! Sampling Speed"; Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
//! Diffusion Models"), so the per-pair distance measures how well it does.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result, rows};
use crate::interval::{Interval, mean_interval};

/// Mean of a per-pair distance with its normal 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean over pairs.
    pub mean: f64,
    /// mean ± Z95·s/√n over pairs ([mean, mean] for a single pair: width unknown).
    pub ci95: Interval,
    /// Number of pairs.
    pub n: usize,
}

/// Number of pairs of `len`-value rows in `a` and `b`, which must hold the same whole number of them (at least one).
fn pairs(metric: &'static str, a: &[f32], b: &[f32], len: usize) -> Result<usize> {
    let na = rows(metric, "student samples", a, len)?;
    let nb = rows(metric, "teacher samples", b, len)?;
    if na != nb || na == 0 {
        return Err(EvalError::input(
            metric,
            format!(
                "{na} student rows against {nb} teacher rows of {len} values; pairs need the \
                 same noise and class, so sample both sets with the same n and seed (n ≥ 1)"
            ),
        ));
    }
    Ok(na)
}

/// The mean and interval of per-pair values `f(aᵢ, bᵢ)` over rows of `len` values.
fn paired(a: &[f32], b: &[f32], len: usize, f: impl Fn(&[f32], &[f32]) -> f64) -> Paired {
    let per_pair: Vec<f64> = a
        .chunks_exact(len)
        .zip(b.chunks_exact(len))
        .map(|(p, q)| f(p, q))
        .collect();
    let (mean, ci95) = mean_interval(&per_pair);
    Paired {
        mean,
        ci95,
        n: per_pair.len(),
    }
}

/// Σ (pⱼ − qⱼ)² in f64.
fn squared_distance(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&u, &v)| (f64::from(u) - f64::from(v)).powi(2))
        .sum()
}

/// RMSEᵢ = √((1/len)·Σⱼ(aᵢⱼ − bᵢⱼ)²) per pair of `len`-value images, averaged over pairs with [`mean_interval`].
pub fn pixel_rmse(a: &[f32], b: &[f32], len: usize) -> Result<Paired> {
    pairs("pixel_rmse", a, b, len)?;
    Ok(paired(a, b, len, |p, q| {
        (squared_distance(p, q) / len as f64).sqrt()
    }))
}

/// ‖faᵢ − fbᵢ‖₂ per pair of `d`-wide feature vectors, averaged over pairs with [`mean_interval`].
pub fn feature_distance(fa: &[f32], fb: &[f32], d: usize) -> Result<Paired> {
    pairs("feature_distance", fa, fb, d)?;
    Ok(paired(fa, fb, d, |p, q| squared_distance(p, q).sqrt()))
}
