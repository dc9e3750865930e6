//! Sinusoidal embedding of a scalar per example (Vaswani et al. 2017; as EDM's PositionalEmbedding).

use burn::tensor::Tensor;

/// Largest period of the sinusoids (EDM `max_positions`).
const MAX_POSITIONS: f64 = 10_000.0;

/// [cos(s·x·f_k), sin(s·x·f_k)] with f_k = (1/MAX_POSITIONS)^{k/(half−1)}, `[n]` → `[n, dim]`.
/// `scale` (s) stretches small inputs such as c_noise = ln(σ)/4 ∈ ≈[−1.6, 1.1] over the
/// frequencies; it is a config field of the network.
pub fn sinusoidal(x: Tensor<1>, dim: usize, scale: f64) -> Tensor<2> {
    let half = dim / 2;
    let device = x.device();
    let freqs: Vec<f32> = (0..half)
        .map(|k| (1.0 / MAX_POSITIONS).powf(k as f64 / (half.max(2) - 1) as f64) as f32)
        .collect();
    let freqs = Tensor::<1>::from_floats(freqs.as_slice(), &device).reshape([1, half]);
    let [n] = x.dims();
    let args = x.mul_scalar(scale).reshape([n, 1]) * freqs;
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}
