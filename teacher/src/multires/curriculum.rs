//! Progressive training (Gu et al. 2023, §3.3: "start with the low-resolution … and gradually
//! add higher resolutions"): resolution r's loss is on from its start step onwards, a pure
//! function of the training step (as consistency_models' curricula are).

use crate::error::{Error, Result};

/// Which resolutions train at `step`: resolution r (in `start_steps`' order, largest first) is
/// active once step ≥ start_steps[r].
pub fn active(start_steps: &[u64], step: u64) -> Vec<bool> {
    start_steps.iter().map(|&s| step >= s).collect()
}

/// The multi-resolution loss weights at `step`: w_r where resolution r is active, 0 elsewhere.
pub fn weights_at(weights: &[f64], start_steps: &[u64], step: u64) -> Vec<f64> {
    weights
        .iter()
        .zip(active(start_steps, step))
        .map(|(&w, on)| if on { w } else { 0.0 })
        .collect()
}

/// The step from which every resolution trains (the curriculum's end).
pub fn last_start(start_steps: &[u64]) -> u64 {
    start_steps.iter().copied().max().unwrap_or(0)
}

/// One start step per resolution; the smallest (last) starts at 0; a larger resolution never
/// starts before a smaller one (the order is low resolution first).
pub fn validate(start_steps: &[u64], resolutions: usize) -> Result<()> {
    let key = "model.multires.start_steps";
    let shown = format!("{start_steps:?}");
    if start_steps.len() != resolutions {
        return Err(Error::value(
            key,
            shown,
            &format!("needs {resolutions} steps, one per resolution (largest first)"),
        ));
    }
    if start_steps.last() != Some(&0) {
        return Err(Error::value(
            key,
            shown,
            "the smallest resolution (last) must start at step 0",
        ));
    }
    if start_steps.windows(2).any(|p| p[0] < p[1]) {
        return Err(Error::value(
            key,
            shown,
            "must not increase towards smaller resolutions: a larger one joins after (or with) the smaller ones",
        ));
    }
    Ok(())
}
