//! Fidelity of a distilled model to its teacher: the distance of each of its samples to the
//! teacher's sample from the same initial noise and class (distillation matches the teacher's
//! ODE map, so a faithful student lands close; an under-guided one does not), in pixels and in
//! features, as a mean with a 95% interval over the pairs.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::interval::{Interval, mean_interval};

/// The mean of a per-pair distance and its 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub mean: f64,
    pub ci95: Interval,
    pub n: usize,
}

fn check(a: &[f32], b: &[f32], len: usize, what: &str) -> Result<usize> {
    if len == 0 || a.len() != b.len() || a.len() % len != 0 || a.is_empty() {
        return Err(EvalError::Samples {
            path: what.into(),
            message: format!(
                "paired sets hold {} and {} values, not the same whole number of {len}-value samples: sample both with the same n and seed",
                a.len(),
                b.len()
            ),
        });
    }
    Ok(a.len() / len)
}

/// Per pair √(mean over the `len` values of (a − b)²), then their mean and interval.
pub fn pixel_rmse(a: &[f32], b: &[f32], len: usize) -> Result<Paired> {
    let n = check(a, b, len, "pixel RMSE")?;
    let per: Vec<f64> = a
        .chunks_exact(len)
        .zip(b.chunks_exact(len))
        .map(|(p, q)| {
            let s: f64 = p.iter().zip(q).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
            (s / len as f64).sqrt()
        })
        .collect();
    let (mean, ci95) = mean_interval(&per);
    Ok(Paired { mean, ci95, n })
}

/// Per pair the Euclidean distance ‖fa − fb‖ of d-dimensional features, mean and interval.
pub fn feature_distance(fa: &[f32], fb: &[f32], d: usize) -> Result<Paired> {
    let n = check(fa, fb, d, "feature distance")?;
    let per: Vec<f64> = fa
        .chunks_exact(d)
        .zip(fb.chunks_exact(d))
        .map(|(p, q)| p.iter().zip(q).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>().sqrt())
        .collect();
    let (mean, ci95) = mean_interval(&per);
    Ok(Paired { mean, ci95, n })
}
