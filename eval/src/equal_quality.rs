//! The equal-quality speedup: the wall clock of the cheapest teacher setting whose FID interval
//! reaches the student's, divided by the student's — the speedup against a teacher someone would
//! actually run, not against an arbitrary 50-step one.

use serde::{Deserialize, Serialize};

use crate::interval::Interval;

/// One measured teacher setting on its quality-vs-cost curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// E.g. "Euler 25 steps".
    pub label: String,
    pub nfe: usize,
    /// Seconds per sample.
    pub seconds: f64,
    pub fid: f64,
    pub ci95: Interval,
}

/// Where a curve reaches the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    pub seconds: f64,
    pub nfe: f64,
    /// Between two measured settings, or at a measured one.
    pub interpolated: bool,
    /// The first measured setting that reaches the target.
    pub first_reaching: String,
}

/// A teacher setting reaches the student's quality when its interval's lower end is at or below
/// the student's upper end: the teacher gets the benefit of the doubt, so the speedup quoted is
/// conservative.
pub fn reaches(point: &CurvePoint, target: &Interval) -> bool {
    point.ci95.lo <= target.hi
}

/// Where one solver's curve (any order) first reaches `target`: the first measured point that
/// does, or, when a cheaper measured point before it does not, the crossing of `ci95.lo` with
/// `target.hi` interpolated linearly in ln seconds (and ln NFE) between the two. When the very
/// cheapest point already reaches, the true crossing may lie lower: the speedup is then at most
/// the one quoted. None: no point reaches.
pub fn equal_quality(curve: &[CurvePoint], target: &Interval) -> Option<Reach> {
    let mut pts: Vec<&CurvePoint> = curve.iter().filter(|p| p.seconds > 0.0).collect();
    pts.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let i = pts.iter().position(|p| reaches(p, target))?;
    let p = pts[i];
    let Some(prev) = i.checked_sub(1).map(|j| pts[j]) else {
        return Some(Reach { seconds: p.seconds, nfe: p.nfe as f64, interpolated: false, first_reaching: p.label.clone() });
    };
    // prev.lo > target.hi ≥ p.lo: the fraction of the way from prev to p where lo = target.hi.
    let f = (prev.ci95.lo - target.hi) / (prev.ci95.lo - p.ci95.lo);
    let lerp = |a: f64, b: f64| (a.ln() + f * (b.ln() - a.ln())).exp();
    Some(Reach {
        seconds: lerp(prev.seconds, p.seconds),
        nfe: lerp(prev.nfe.max(1) as f64, p.nfe.max(1) as f64),
        interpolated: true,
        first_reaching: p.label.clone(),
    })
}

/// The cheapest reach over several solvers' curves.
pub fn best_reach(curves: &[Vec<CurvePoint>], target: &Interval) -> Option<Reach> {
    curves
        .iter()
        .filter_map(|c| equal_quality(c, target))
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
}
