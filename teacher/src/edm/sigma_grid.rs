//! The Karras σ grid (Karras et al. 2022, Eq. 5): σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, σ_N = 0.

use serde::{Deserialize, Serialize};

/// The noise-level range and curvature shared by training-time grids and samplers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigmaGrid {
    /// Smallest non-zero noise level σ_min (EDM default 0.002).
    pub sigma_min: f64,
    /// Largest noise level σ_max, where sampling starts (EDM default 80).
    pub sigma_max: f64,
    /// Curvature ρ of the grid; larger spends more steps near σ_min (EDM default 7).
    pub rho: f64,
}

impl Default for SigmaGrid {
    fn default() -> Self {
        Self {
            sigma_min: 0.002,
            sigma_max: 80.0,
            rho: 7.0,
        }
    }
}

impl SigmaGrid {
    /// The N non-zero levels σ_0 = σ_max > … > σ_{N−1} = σ_min (Karras Eq. 5), without the final 0.
    /// For N = 1 the single level is σ_max.
    pub fn levels(&self, n: usize) -> Vec<f64> {
        let (hi, lo) = (
            self.sigma_max.powf(1.0 / self.rho),
            self.sigma_min.powf(1.0 / self.rho),
        );
        (0..n)
            .map(|i| {
                let t = if n > 1 {
                    i as f64 / (n - 1) as f64
                } else {
                    0.0
                };
                (hi + t * (lo - hi)).powf(self.rho)
            })
            .collect()
    }

    /// The sampling grid of `steps` steps: the Karras levels followed by σ_N = 0 (`steps + 1` values).
    pub fn sampling(&self, steps: usize) -> Vec<f64> {
        let mut s = self.levels(steps);
        s.push(0.0);
        s
    }

    /// The σ's at which S-step multistep consistency sampling evaluates f: the first S levels of
    /// the grid with S + 1 levels (σ_max first; the last level σ_min is where f is the identity).
    pub fn consistency(&self, steps: usize) -> Vec<f64> {
        let mut s = self.levels(steps + 1);
        s.truncate(steps);
        s
    }
}
