//! Equal-quality speedup: the cheapest teacher sampler setting whose FID interval reaches the
//! student's, read off measured (seconds, FID) curves — the comparison at matched quality of
//! Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models", and
//! Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models".

use serde::{Deserialize, Serialize};

use crate::interval::Interval;

/// One measured teacher setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// What was run, e.g. "euler 25 steps".
    pub label: String,
    /// Network evaluations per sample.
    pub nfe: usize,
    /// Wall-clock seconds per sample (or per batch: any unit, the same for every point).
    pub seconds: f64,
    /// FID point estimate.
    pub fid: f64,
    /// 95% interval of the FID.
    pub ci95: Interval,
}

/// Where a teacher curve reaches the target quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    /// Cost in the curve's unit of seconds, interpolated in ln seconds when `interpolated`.
    pub seconds: f64,
    /// Network evaluations, interpolated in ln NFE when `interpolated`.
    pub nfe: f64,
    /// Whether the crossing lies between two measured points (else it is a measured point).
    pub interpolated: bool,
    /// Label of the first (cheapest) measured point that reaches.
    pub first_reaching: String,
}

/// The teacher setting reaches the target when point.ci95.lo ≤ target.hi.
///
/// The teacher gets the benefit of the doubt — its quality counts as matched as soon as the
/// intervals could agree — so it reaches at the lowest defensible cost, and the speedup
/// teacher seconds / student seconds is conservative.
pub fn reaches(point: &CurvePoint, target: &Interval) -> bool {
    point.ci95.lo <= target.hi
}

/// Where one solver's curve (points in any order) first reaches `target`, sorted by seconds; `None` if no point does.
///
/// Between the last point that does not reach and the first that does, ci95.lo is taken as
/// linear in ln seconds (and in ln NFE), and the crossing lo = target.hi is returned. If the
/// cheapest measured point already reaches, it is returned uninterpolated: the teacher may
/// reach at an even lower cost, so a speedup computed from it is an upper bound on the
/// equal-quality speedup — measure a cheaper setting to pin it down. Points with non-positive
/// or non-finite seconds or a NaN ci95.lo cannot be placed on the curve and are skipped.
pub fn equal_quality(curve: &[CurvePoint], target: &Interval) -> Option<Reach> {
    let mut points: Vec<&CurvePoint> = curve
        .iter()
        .filter(|p| p.seconds.is_finite() && p.seconds > 0.0 && !p.ci95.lo.is_nan())
        .collect();
    points.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let i = points.iter().position(|p| reaches(p, target))?;
    let hit = points[i];
    let Some(prev) = i.checked_sub(1).map(|j| points[j]) else {
        return Some(Reach {
            seconds: hit.seconds,
            nfe: hit.nfe as f64,
            interpolated: false,
            first_reaching: hit.label.clone(),
        });
    };
    // prev.lo > target.hi ≥ hit.lo, so 0 < t ≤ 1.
    let t = (prev.ci95.lo - target.hi) / (prev.ci95.lo - hit.ci95.lo);
    Some(Reach {
        seconds: log_lerp(prev.seconds, hit.seconds, t),
        nfe: log_lerp(prev.nfe as f64, hit.nfe as f64, t),
        interpolated: true,
        first_reaching: hit.label.clone(),
    })
}

/// exp((1 − t)·ln a + t·ln b), or (1 − t)·a + t·b if either is not positive.
fn log_lerp(a: f64, b: f64, t: f64) -> f64 {
    if a > 0.0 && b > 0.0 {
        ((1.0 - t) * a.ln() + t * b.ln()).exp()
    } else {
        (1.0 - t) * a + t * b
    }
}

/// The cheapest (fewest seconds) [`equal_quality`] over several solvers' curves; the first on ties.
pub fn best_reach(curves: &[Vec<CurvePoint>], target: &Interval) -> Option<Reach> {
    curves
        .iter()
        .filter_map(|c| equal_quality(c, target))
        .reduce(|best, r| if r.seconds < best.seconds { r } else { best })
}
