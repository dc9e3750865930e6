//! The diffusion core against hand values and the closed-form Gaussian denoiser
//! (`cargo test -p teacher`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use teacher::edm::guidance::{Guided, cfg};
use teacher::edm::loss::loss_weight;
use teacher::edm::precond::{
    Precond, c_in, c_noise, c_out, c_out_consistency, c_skip, c_skip_consistency,
};
use teacher::edm::sigma_grid::SigmaGrid;
use teacher::edm::solver::{Sampler, sample};
use teacher::edm::{Cond, Denoiser};
use teacher::ema::ema_beta;
use teacher::rng::{Stream, normals, rng};
use teacher::testing::IdealGaussian;

const SD: f64 = 0.5;

fn device() -> Device {
    teacher::backend::test_device()
}

/// A tiny U-Net (8×8 digits, 10 classes) with seeded noise on every parameter, so that the
/// zero-initialised output layer carries signal and D_c ≠ D_u.
fn perturbed_model() -> teacher::model::EdmModel {
    use burn::module::Module;
    use teacher::model::{ModelSpec, NetworkConfig};
    use teacher::unet::{ImageShape, UNetConfig};
    let d = device();
    d.seed(1);
    let spec = ModelSpec {
        net: NetworkConfig::UNet(UNetConfig {
            model_channels: 8,
            channel_mult: vec![1, 2],
            num_blocks: 1,
            attn_resolutions: vec![4],
            norm_groups: 4,
            ..UNetConfig::default()
        }),
        shape: ImageShape::image(1, 8, 8),
        num_classes: 10,
        sigma_data: 0.5,
        precond: Precond::Edm,
    };
    spec.init(&d)
        .map(&mut teacher::testing::Jitter::new(0, 9, 0.1))
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
}

#[test]
fn preconditioning_hand_values() {
    // σ = σ_d = 0.5: σ² + σ_d² = 0.5, so
    // c_skip = 0.25/0.5 = 0.5; c_out = 0.25/√0.5 = 0.353553…; c_in = 1/√0.5 = 1.414213…;
    // c_noise = ln(0.5)/4 = −0.173286…; λ = 0.5/(0.25)² = 8.
    assert!((c_skip(0.5, SD) - 0.5).abs() < 1e-12);
    assert!((c_out(0.5, SD) - 0.353_553_390_593_273_8).abs() < 1e-12);
    assert!((c_in(0.5, SD) - std::f64::consts::SQRT_2).abs() < 1e-12);
    assert!((c_noise(0.5) - (-0.173_286_795_139_986_3)).abs() < 1e-12);
    assert!((loss_weight(0.5, SD) - 8.0).abs() < 1e-12);
}

#[test]
fn preconditioning_identities() {
    for &s in &[0.002, 0.1, 0.5, 1.0, 7.3, 80.0] {
        // c_skip + σ²/(σ²+σ_d²) = 1: the skip and noise shares of the input sum to one.
        assert!((c_skip(s, SD) + s * s / (s * s + SD * SD) - 1.0).abs() < 1e-12);
        // c_out² = σ²·c_skip (both are σ²σ_d²/(σ²+σ_d²)).
        assert!((c_out(s, SD).powi(2) - s * s * c_skip(s, SD)).abs() < 1e-12 * (1.0 + s * s));
        // c_in²·(σ² + σ_d²) = 1: the network input has unit variance.
        assert!((c_in(s, SD).powi(2) * (s * s + SD * SD) - 1.0).abs() < 1e-12);
        // λ(σ) = 1/c_out(σ)²: EDM's weight equalises the effective target's variance.
        assert!((loss_weight(s, SD) * c_out(s, SD).powi(2) - 1.0).abs() < 1e-9);
    }
    // Consistency boundary: f(x, σ_min) = x, i.e. c_skip = 1 and c_out = 0 at σ_min.
    assert!((c_skip_consistency(0.002, SD, 0.002) - 1.0).abs() < 1e-15);
    assert_eq!(c_out_consistency(0.002, SD, 0.002), 0.0);
}

#[test]
fn tensor_scalings_match_scalar_formulas() {
    let d = device();
    let sig = [0.002f32, 0.3, 2.0, 80.0];
    let t = Tensor::<1>::from_floats(sig, &d);
    for p in [Precond::Edm, Precond::Consistency { sigma_min: 0.002 }] {
        let s = p.scalings(t.clone(), SD);
        let get = |x: Tensor<1>| {
            x.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()
        };
        let (cs, co, ci, cn) = (get(s.c_skip), get(s.c_out), get(s.c_in), get(s.c_noise));
        for (k, &sv) in sig.iter().enumerate() {
            let sv = sv as f64;
            let (es, eo) = match p {
                Precond::Edm => (c_skip(sv, SD), c_out(sv, SD)),
                Precond::Consistency { sigma_min } => (
                    c_skip_consistency(sv, SD, sigma_min),
                    c_out_consistency(sv, SD, sigma_min),
                ),
            };
            assert!((cs[k] as f64 - es).abs() < 1e-5, "c_skip({sv})");
            assert!((co[k] as f64 - eo).abs() < 1e-5 * (1.0 + eo), "c_out({sv})");
            assert!(
                (ci[k] as f64 - c_in(sv, SD)).abs() < 1e-5 * c_in(sv, SD),
                "c_in({sv})"
            );
            assert!((cn[k] as f64 - c_noise(sv)).abs() < 1e-5, "c_noise({sv})");
        }
    }
}

#[test]
fn karras_grid_endpoints_and_hand_value() {
    let g = SigmaGrid::default();
    let s = g.sampling(3);
    assert_eq!(s.len(), 4);
    assert!((s[0] - 80.0).abs() < 1e-9, "σ_0 = σ_max");
    assert!((s[2] - 0.002).abs() < 1e-12, "σ_{{N−1}} = σ_min");
    assert_eq!(s[3], 0.0, "the grid ends in 0");
    // Middle of a 3-level grid: ((80^{1/7} + 0.002^{1/7})/2)^7
    // = ((1.870122 + 0.411560)/2)^7 = 1.140841^7 = 2.51522 (6 digits).
    assert!((s[1] - 2.51522).abs() < 1e-4, "σ_1 = {}", s[1]);
    let l50 = g.levels(50);
    assert!(l50.windows(2).all(|w| w[0] > w[1]), "strictly decreasing");
    assert_eq!(g.levels(1), vec![80.0], "one step starts at σ_max");
}

#[test]
fn ema_schedule_hand_values() {
    // Without ramp-up: β = 0.5^(B/h); B = 64, h = 6400 → 0.5^0.01 = 0.993092…
    assert!((ema_beta(1000, 64, 6400.0, None) - 0.993_092_495_437_035_9).abs() < 1e-12);
    // With ramp-up 0.05 at step 10: seen = 640, h = min(6400, 32) = 32 → β = 0.5² = 0.25.
    assert!((ema_beta(10, 64, 6400.0, Some(0.05)) - 0.25).abs() < 1e-12);
}

/// Sample N(0, σ_d²) data with the ideal denoiser and measure the implied output variance.
///
/// The probability-flow ODE dx/dσ = (x − D)/σ = x·σ/(σ² + σ_d²) has the solution
/// x(σ) = x(σ_max)·√(σ² + σ_d²)/√(σ_max² + σ_d²), so x(0) = noise·σ_max·σ_d/√(σ_max² + σ_d²):
/// variance σ_max²σ_d²/(σ_max² + σ_d²) = 0.249990… ≈ σ_d² for σ_max = 80. Each element is
/// scaled by the same factor, so the sampler's error is |scale² − exact| with no sampling noise.
fn implied_variance(sampler: Sampler, steps: usize) -> f64 {
    let d = device();
    let n = 4;
    let noise_v = normals(&mut rng(7, Stream::Sample, 0), n * 16);
    let noise = Tensor::<4>::from_data(TensorData::new(noise_v.clone(), [n, 1, 4, 4]), &d);
    let cond = Cond {
        class: Tensor::<1, Int>::zeros([n], &d),
        extra: None,
        latent: None,
    };
    let out = sample(
        &IdealGaussian { sigma_data: SD },
        noise,
        &SigmaGrid::default().sampling(steps),
        sampler,
        &cond,
    );
    let x = values(out.x);
    // Least-squares scale between output and unit noise.
    let scale = x
        .iter()
        .zip(&noise_v)
        .map(|(a, b)| (a * b) as f64)
        .sum::<f64>()
        / noise_v.iter().map(|b| (b * b) as f64).sum::<f64>();
    scale * scale
}

#[test]
fn euler_and_heun_reach_the_data_variance_heun_closer() {
    let exact = 80.0f64.powi(2) * SD * SD / (80.0f64.powi(2) + SD * SD);
    let euler = (implied_variance(Sampler::Euler, 50) - exact).abs();
    let heun = (implied_variance(Sampler::Heun, 50) - exact).abs();
    // Measured at 50 steps of the default Karras grid: Euler −11.0% of σ_d² (first order: the
    // large steps near σ ≈ σ_d undershoot), Heun +1.2% (second order). Tolerances: 15% and 2%.
    assert!(euler < 0.15 * SD * SD, "Euler variance error {euler}");
    assert!(heun < 0.02 * SD * SD, "Heun variance error {heun}");
    assert!(heun < euler, "Heun ({heun}) must beat Euler ({euler})");
    // And on real random noise: the sample variance of 4,096 outputs is σ_d² within
    // sampling error (std of a variance estimate ≈ σ_d²·√(2/4096) ≈ 2.2%; allow 4 std).
    let d = device();
    let noise = Tensor::<4>::from_data(
        TensorData::new(
            normals(&mut rng(3, Stream::Sample, 1), 4096),
            [16, 1, 16, 16],
        ),
        &d,
    );
    let cond = Cond {
        class: Tensor::<1, Int>::zeros([16], &d),
        extra: None,
        latent: None,
    };
    let x = values(
        sample(
            &IdealGaussian { sigma_data: SD },
            noise,
            &SigmaGrid::default().sampling(50),
            Sampler::Heun,
            &cond,
        )
        .x,
    );
    let var = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(
        (var - SD * SD).abs() < 4.0 * 0.022 * SD * SD,
        "sample variance {var}"
    );
}

#[test]
fn dpmpp2m_beats_euler_and_heun_at_ten_nfe_on_the_gaussian() {
    // With D = a(σ)·x, a(σ) = σ_d²/(σ² + σ_d²), every solver step multiplies x by a scalar, so
    // x(0) = noise·σ_max·Π(step factors) and the implied variance is (σ_max·Π)². On the default
    // Karras grid (σ ∈ [0.002, 80], ρ = 7), σ_d = 0.5, exact 80²σ_d²/(80² + σ_d²) = 0.249990:
    // - Euler, 10 steps (10 NFE): factor 1 + (σ' − σ)·σ/(σ² + σ_d²) → 0.133381 (−46.6% of σ_d²);
    // - Heun, 5 steps (9 NFE, the most ≤ 10): the correction overshoots on the big first steps
    //   → 1.582278 (+533%);
    // - DPM-Solver++(2M), 10 steps (10 NFE): x' = (σ'/σ)·x − expm1(−h)·D̂, h = ln(σ/σ'),
    //   D̂ = (1 + 1/2r)·D − (1/2r)·D_prev, r = h_prev/h, first-order first step, last step D
    //   → 0.335689 (+34.3%).
    // (Each value: the recurrences above iterated in f64; the tensors are f32, hence 1e-3.)
    let exact = 80.0f64.powi(2) * SD * SD / (80.0f64.powi(2) + SD * SD);
    let (euler, heun, dpm) = (
        implied_variance(Sampler::Euler, 10),
        implied_variance(Sampler::Heun, 5),
        implied_variance(Sampler::Dpmpp2m, 10),
    );
    assert!((euler - 0.133_381).abs() < 1e-3, "Euler {euler}");
    assert!((heun - 1.582_278).abs() < 1e-2, "Heun {heun}");
    assert!((dpm - 0.335_689).abs() < 1e-3, "DPM-Solver++(2M) {dpm}");
    assert!((dpm - exact).abs() < (euler - exact).abs());
    assert!((dpm - exact).abs() < (heun - exact).abs());
    assert_eq!(Sampler::Dpmpp2m.calls(10), 10);
    assert_eq!(Sampler::Heun.calls(5), 9);
}

#[test]
fn nfe_is_counted_honestly() {
    let d = device();
    let noise = Tensor::<4>::zeros([2, 1, 4, 4], &d);
    let cond = Cond {
        class: Tensor::<1, Int>::zeros([2], &d),
        extra: None,
        latent: None,
    };
    let sig = SigmaGrid::default().sampling(10);
    let ideal = IdealGaussian { sigma_data: SD };
    assert_eq!(
        sample(&ideal, noise.clone(), &sig, Sampler::Euler, &cond).nfe,
        10
    );
    assert_eq!(
        sample(&ideal, noise.clone(), &sig, Sampler::Heun, &cond).nfe,
        19,
        "no correction on the last step"
    );
    let guided = Guided {
        model: &ideal,
        w: 3.0,
        null_class: 10,
    };
    assert_eq!(
        sample(&guided, noise, &sig, Sampler::Euler, &cond).nfe,
        20,
        "CFG costs 2 evaluations per step"
    );
}

#[test]
fn cfg_with_w_one_is_the_conditional_output() {
    let d = device();
    // Perturb the zero-initialised output layer so conditional and unconditional outputs differ.
    let model = perturbed_model();
    let x = Tensor::<4>::from_data(
        TensorData::new(normals(&mut rng(1, Stream::Eval, 0), 3 * 64), [3, 1, 8, 8]),
        &d,
    );
    let sigma = Tensor::<1>::from_floats([0.3f32, 1.0, 5.0], &d);
    let cond = Cond {
        class: Tensor::<1, Int>::from_ints([1, 4, 7], &d),
        extra: None,
        latent: None,
    };
    let d_c = values(model.denoise(x.clone(), sigma.clone(), &cond));
    let null = Cond {
        class: Tensor::<1, Int>::full([3], 10, &d),
        extra: None,
        latent: None,
    };
    let d_u = values(model.denoise(x.clone(), sigma.clone(), &null));
    let guided1 = values(
        Guided {
            model: &model,
            w: 1.0,
            null_class: 10,
        }
        .denoise(x.clone(), sigma.clone(), &cond),
    );
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(
        max_diff(&d_c, &d_u) > 1e-3,
        "fixture: conditional and unconditional outputs must differ"
    );
    assert!(max_diff(&guided1, &d_c) < 1e-5, "w = 1 must give D_c");
    let guided0 = values(
        Guided {
            model: &model,
            w: 0.0,
            null_class: 10,
        }
        .denoise(x.clone(), sigma.clone(), &cond),
    );
    assert!(max_diff(&guided0, &d_u) < 1e-5, "w = 0 must give D_u");
    // The formula itself: D_u + 3·(D_c − D_u) on hand values 1 + 3·(2 − 1) = 4.
    let one = Tensor::<1>::from_floats([1.0f32], &d);
    let two = Tensor::<1>::from_floats([2.0f32], &d);
    assert_eq!(cfg(one, two, 3.0).into_scalar::<f32>(), 4.0);
}
