//! Unified Latents' math against hand values and closed forms: σ₀ from λ(0), the sigmoid
//! weight, the ELBO of Gaussian data, the prior's loss with no term below σ₀, the rate of a
//! Gaussian latent equal to its channel's capacity, and the stage-1 network's shapes
//! (`cargo test -p teacher --test latent`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use teacher::edm::elbo::{
    LogSnrRange, Weighting, elbo_factor, elbo_loss, log_snr, sigma_of, sigmoid_weight,
};
use teacher::edm::{Cond, Denoiser, per_example};
use teacher::latent::LatentAutoencoderConfig;
use teacher::latent::channel::{capacity_bits_per_dim, sigma0};
use teacher::latent::stage1::terminal_kl;
use teacher::rng::{Stream, normals, rng};
use teacher::testing::IdealGaussian;
use teacher::unet::ImageShape;

fn device() -> Device {
    teacher::backend::test_device()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn cond(n: usize, dev: &Device) -> Cond {
    Cond {
        class: Tensor::<1, Int>::zeros([n], dev),
        extra: None,
        latent: None,
    }
}

/// `n` rows of `len` draws from N(0, s²), and as many σ normals and noise, seeded.
fn gaussian(n: usize, len: usize, s: f64, seed: u64, dev: &Device) -> [Tensor<4>; 2] {
    let mut r = rng(seed, Stream::Eval, 0);
    let y: Vec<f32> = normals(&mut r, n * len)
        .iter()
        .map(|v| v * s as f32)
        .collect();
    let noise = normals(&mut r, n * len);
    let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, len]), dev);
    [t(y), t(noise)]
}

fn sigma_normals(n: usize, seed: u64, dev: &Device) -> Tensor<1> {
    let v = normals(&mut rng(seed, Stream::Eval, 1), n);
    Tensor::from_data(TensorData::new(v, [n]), dev)
}

fn mean_and_stderr(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[test]
fn sigma0_of_log_snr_5_by_hand() {
    // λ = −2·ln σ for x_σ = x + σ·ε (SNR = 1/σ²), so σ₀ = e^(−λ(0)/2) = e^(−2.5)
    // = 0.0820849986238988.
    assert!((sigma0(5.0) - 0.082_084_998_623_898_8).abs() < 1e-15);
    assert!((log_snr(sigma0(5.0)) - 5.0).abs() < 1e-12);
    assert!((sigma_of(0.0) - 1.0).abs() < 1e-15);
}

#[test]
fn sigmoid_weight_and_elbo_factor_hand_values() {
    // w(λ) = 1/(1 + e^(λ − b)): ½ at λ = b; b = 0: w(2) = 1/(1 + e²) = 0.1192029, w(−2) =
    // 0.8807971.
    assert!((sigmoid_weight(3.0, 3.0) - 0.5).abs() < 1e-15);
    assert!((sigmoid_weight(2.0, 0.0) - 0.119_202_922).abs() < 1e-8);
    assert!((sigmoid_weight(-2.0, 0.0) - 0.880_797_078).abs() < 1e-8);
    // The Monte Carlo factor ½·(λ_hi − λ_lo)·w(λ)·e^λ over [−10, 12] (half-width 11):
    // sigmoid b = 0 at λ = 0: 11·½·1 = 5.5; at λ = 2: 11·e²/(1 + e²) = 11·0.8807971 = 9.688768;
    // ELBO (w = 1) at λ = 2: 11·e² = 81.278890.
    let dev = device();
    let range = LogSnrRange {
        min: -10.0,
        max: 12.0,
    };
    let lam = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 2.0], [2]), &dev);
    let sig = values(elbo_factor(
        lam.clone(),
        &range,
        Weighting::Sigmoid { bias: 0.0 },
    ));
    assert!(
        (sig[0] - 5.5).abs() < 1e-5 && (sig[1] - 9.688_768).abs() < 1e-4,
        "{sig:?}"
    );
    let elbo = values(elbo_factor(lam, &range, Weighting::Elbo));
    assert!((elbo[1] - 81.278_89).abs() < 1e-3, "{elbo:?}");
}

#[test]
fn log_snr_range_maps_normals_to_a_uniform_draw() {
    // λ = λ_lo + Φ(ε)·(λ_hi − λ_lo): ε = 0 → the midpoint 1; Φ(1) = 0.8413447 → −10 +
    // 0.8413447·22 = 8.509584; Φ(−1) = 0.1586553 → −6.509584.
    let dev = device();
    let range = LogSnrRange {
        min: -10.0,
        max: 12.0,
    };
    let eps = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 1.0, -1.0], [3]), &dev);
    let lam = values(range.lambda(eps));
    let want = [1.0, 8.509_584, -6.509_584];
    for (l, w) in lam.iter().zip(want) {
        assert!((*l as f64 - w).abs() < 1e-4, "{lam:?}");
    }
}

/// The ideal Gaussian denoiser at σ ≥ `floor`; anything below returns garbage (+1000), so a
/// loss with a term below the floor cannot equal the ideal one.
struct GarbageBelow {
    ideal: IdealGaussian,
    floor: f64,
}

impl Denoiser for GarbageBelow {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let below = sigma.clone().lower_elem(self.floor as f32).float();
        let d = self.ideal.denoise(x, sigma, cond);
        d + per_example::<4>(below.mul_scalar(1000.0))
    }
}

#[test]
fn the_priors_loss_has_no_term_below_sigma0() {
    // The prior's range is [λ_lo, λ(0)] = [−10, 5]: every drawn σ = e^(−λ/2) ≥ σ₀, so a
    // denoiser that is garbage below σ₀ gives exactly the ideal denoiser's loss. The same
    // denoiser over [−10, 12] (down to σ = 0.0025) is caught: the check can fail.
    let (dev, n, len) = (device(), 2048, 4);
    let [z, noise] = gaussian(n, len, 1.0, 3, &dev);
    let eps = sigma_normals(n, 4, &dev).mul_scalar(3.0); // wide normals: the range's ends too
    let ideal = IdealGaussian { sigma_data: 1.0 };
    let garbage = GarbageBelow {
        ideal: IdealGaussian { sigma_data: 1.0 },
        floor: sigma0(5.0) * (1.0 - 1e-4),
    };
    let prior = LogSnrRange {
        min: -10.0,
        max: 5.0,
    };
    let wide = LogSnrRange {
        min: -10.0,
        max: 12.0,
    };
    let run = |den: &dyn Denoiser, r: LogSnrRange| {
        let c = cond(n, &dev);
        let (y, e, nz) = (z.clone(), eps.clone(), noise.clone());
        values(elbo_loss(
            &Dyn(den),
            y,
            &c,
            e,
            nz,
            &r,
            Weighting::Elbo,
            None,
        ))
    };
    assert_eq!(run(&ideal, prior), run(&garbage, prior));
    assert_ne!(run(&ideal, wide), run(&garbage, wide));
    let sigmas = values(teacher::edm::elbo::sigma_t(prior.lambda(eps.clone())));
    assert!(
        sigmas
            .iter()
            .all(|&s| s as f64 >= sigma0(5.0) * (1.0 - 1e-5))
    );
}

/// A `&dyn Denoiser` as a sized denoiser.
struct Dyn<'a>(&'a dyn Denoiser);

impl Denoiser for Dyn<'_> {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        self.0.denoise(x, sigma, cond)
    }
}

/// Data y ~ N(0, s²) (`n` rows of `len`, seeded by `seed`), one Monte Carlo ELBO sample per row
/// under the ideal Gaussian denoiser over `range`; returns y and the samples.
fn gaussian_elbo(
    n: usize,
    len: usize,
    s: f64,
    seed: u64,
    range: &LogSnrRange,
) -> (Tensor<4>, Vec<f32>) {
    let dev = device();
    let [y, noise] = gaussian(n, len, s, seed, &dev);
    let eps = sigma_normals(n, seed + 1, &dev);
    let ideal = IdealGaussian { sigma_data: s };
    let l = elbo_loss(
        &ideal,
        y.clone(),
        &cond(n, &dev),
        eps,
        noise,
        range,
        Weighting::Elbo,
        None,
    );
    (y, values(l))
}

#[test]
fn elbo_of_gaussian_data_matches_its_closed_form() {
    // Data y ~ N(0, s²) per dimension, ideal denoiser D = y_σ·s²/(s² + σ²): E‖y − D‖² per
    // dimension is the posterior variance s²σ²/(s² + σ²), so with e^λ = 1/σ² the integrand is
    // ½·s²/(s² + e^(−λ)) = ½·sigmoid(λ + ln s²), and
    //   L = ½·[softplus(λ_hi + ln s²) − softplus(λ_lo + ln s²)]   nats per dimension.
    // s = 0.5 over [−10, 12]: ½·[softplus(10.6137) − softplus(−11.3863)] = 5.306859.
    let s = 0.5;
    let range = LogSnrRange {
        min: -10.0,
        max: 12.0,
    };
    let (_, l) = gaussian_elbo(4096, 8, s, 5, &range);
    let (m, se) = mean_and_stderr(&l);
    let ln_s2 = (s * s).ln();
    let want = 0.5 * (softplus(range.max + ln_s2) - softplus(range.min + ln_s2));
    assert!((want - 5.306_859).abs() < 1e-5, "{want}");
    assert!(
        (m - want).abs() < 4.0 * se,
        "Monte Carlo {m} ± {se} vs closed form {want}"
    );
}

#[test]
fn the_rate_of_a_gaussian_latent_is_its_channel_capacity() {
    // Clean latents z ~ N(0, s²), channel z₀ = z + σ₀ε: the prior's ELBO over [λ_lo, λ(0)] under
    // the ideal denoiser is ½·[ln(1 + s²/σ₀²) − ln(1 + s²/σ_max²)] (previous test, softplus(λ +
    // ln s²) = ln(1 + s²·e^λ)), and the terminal term adds E z²/(2σ_max²) = s²/(2σ_max²) ≈
    // ½·ln(1 + s²/σ_max²); so the rate is ½·ln(1 + s²/σ₀²) — the capacity of the Gaussian
    // channel at that power, which `capacity_bits_per_dim` reports in bits. s = 1, λ(0) = 5:
    // ½·ln(1 + e⁵) = 2.503357 nats = 3.611582 bits.
    let (len, range) = (
        8,
        LogSnrRange {
            min: -10.0,
            max: 5.0,
        },
    );
    let (z, elbo) = gaussian_elbo(4096, len, 1.0, 7, &range);
    let terminal = values(terminal_kl(z.clone(), sigma_of(range.min)));
    let rate: Vec<f32> = elbo.iter().zip(&terminal).map(|(a, b)| a + b).collect();
    let (m, se) = mean_and_stderr(&rate);
    let nats = 0.5 * (1.0 + 5f64.exp()).ln();
    assert!((nats - 2.503_357).abs() < 1e-5);
    assert!(
        (m - nats).abs() < 4.0 * se,
        "rate {m} ± {se} vs capacity {nats}"
    );
    let bits = capacity_bits_per_dim(&values(z), len, sigma0(5.0));
    assert!(
        (bits - nats / std::f64::consts::LN_2).abs() < 0.02,
        "{bits}"
    );
}

#[test]
fn the_autoencoder_encodes_to_the_latent_shape_and_its_decoder_reads_the_latent() {
    // 8×8 digits, downsample 2, 2 channels: E(x) is 4×4×2; the decoder's output moves with z₀
    // (it enters beside the image), and the prior denoises latents.
    let dev = device();
    let cfg = LatentAutoencoderConfig {
        latent_channels: 2,
        ..LatentAutoencoderConfig::default()
    };
    let img = ImageShape::image(1, 8, 8);
    cfg.check_shape(img).unwrap();
    let mut model = teacher::model::ModelSpec {
        net: teacher::model::NetworkConfig::LatentAutoencoder(cfg),
        shape: img,
        num_classes: 10,
        sigma_data: 0.5,
        precond: teacher::edm::precond::Precond::Edm,
    }
    .init(&dev);
    model = burn::module::Module::map(model, &mut teacher::testing::Jitter::new(1, 0, 0.05));
    let teacher::model::Network::LatentAutoencoder(ae) = &model.net else {
        panic!("a latent autoencoder")
    };
    let [x, _] = gaussian(3, 64, 0.5, 9, &dev);
    let x = x.reshape([3, 1, 8, 8]);
    let z = ae.encode(x.clone());
    assert_eq!(z.dims(), [3, 2, 4, 4]);
    let sigma = Tensor::<1>::full([3], 1.0, &dev);
    let with = |z: Tensor<4>| {
        let c = Cond {
            latent: Some(z),
            ..cond(3, &dev)
        };
        values(model.denoise(x.clone(), sigma.clone(), &c))
    };
    assert_ne!(with(z.clone()), with(z.clone().add_scalar(1.0)));
    let p = ae.prior().denoise(z.clone(), sigma, &cond(3, &dev));
    assert_eq!(p.dims(), z.dims());
}

#[test]
fn autoencoder_configs_that_cannot_work_say_which_key() {
    let bad = LatentAutoencoderConfig {
        downsample: 3,
        ..LatentAutoencoderConfig::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("model.downsample") && e.contains("power of two"),
        "{e}"
    );
    let cfg = LatentAutoencoderConfig {
        downsample: 4,
        ..LatentAutoencoderConfig::default()
    };
    let e = cfg
        .check_shape(ImageShape::image(1, 6, 6))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.downsample"), "{e}");
    let bad = LatentAutoencoderConfig {
        log_snr_0: -20.0,
        ..LatentAutoencoderConfig::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("model.prior_log_snr_min"), "{e}");
}
