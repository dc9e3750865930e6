//! Seeded randomness passed into every stage: each draw comes from an RNG that is a pure
//! function of (seed, stream, index), so resuming at step k redraws exactly what step k drew.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Independent random streams of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Network initialisation.
    Init = 1,
    /// One training step's batch, σ, noise and label dropout.
    TrainStep = 2,
    /// Sampling noise.
    Sample = 3,
    /// Backend-side randomness (dropout) of one training step.
    Backend = 4,
    /// Evaluation draws.
    Eval = 5,
    /// Synthetic data (moving-digits clips: which digits, where, how fast).
    Data = 6,
    /// A latent autoencoder's training draws beyond the image batch (channel noise, prior σ).
    Latent = 7,
}

/// SplitMix64 finaliser (Steele et al. 2014): a bijective mix so nearby inputs give unrelated seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of draw `index` of `stream` in a run seeded with `seed`.
pub fn derive_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    mix(mix(mix(seed) ^ stream as u64) ^ index)
}

/// The RNG of draw `index` of `stream`.
pub fn rng(seed: u64, stream: Stream, index: u64) -> StdRng {
    StdRng::seed_from_u64(derive_seed(seed, stream, index))
}

/// `n` standard normal f32 values.
pub fn normals(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}
