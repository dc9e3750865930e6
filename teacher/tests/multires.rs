//! The multi-resolution joint state of Matryoshka diffusion against hand values: the canvas,
//! the multi-resolution loss, the progressive-training curriculum and the NestedUNet model
//! (`cargo test -p teacher --test multires`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use teacher::edm::Cond;
use teacher::edm::loss::{LogNormal, edm_loss};
use teacher::multires::{Canvas, MultiResConfig, ResolutionSchedule, curriculum};
use teacher::rng::{Stream, normals, rng};
use teacher::testing::IdealGaussian;
use teacher::unet::ImageShape;

fn device() -> Device {
    teacher::backend::test_device()
}

fn config(resolutions: Vec<usize>) -> MultiResConfig {
    let n = resolutions.len();
    MultiResConfig {
        resolutions,
        loss_weights: vec![1.0; n],
        start_steps: vec![0; n],
        ..MultiResConfig::default()
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

#[test]
fn canvas_packs_the_average_pooled_copies_beside_the_image() {
    // A 4×4 image 0, 1, …, 15 (row-major) with [4, 2]: the canvas is 4×6; the 2×2 copy holds
    // the means of the 2×2 blocks: (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, (8+9+12+13)/4 = 10.5,
    // (10+11+14+15)/4 = 12.5, at rows 0–1, columns 4–5; rows 2–3 of that column are unused (0).
    let c = Canvas::new(&config(vec![4, 2]), ImageShape::image(1, 4, 4));
    assert_eq!(c.shape(), ImageShape::image(1, 4, 6));
    let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let canvas = c.pack(&img);
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 2.0, 3.0, 2.5, 4.5,
        4.0, 5.0, 6.0, 7.0, 10.5, 12.5,
        8.0, 9.0, 10.0, 11.0, 0.0, 0.0,
        12.0, 13.0, 14.0, 15.0, 0.0, 0.0,
    ];
    assert_eq!(canvas, want);
    assert_eq!(c.to_image(&canvas), img);
    assert_eq!(c.region(&canvas, 1), vec![2.5, 4.5, 10.5, 12.5]);
    // The tensor split/join is the same layout, and restrict zeroes only the unused corner.
    let t = Tensor::<4>::from_data(TensorData::new(vec![7.0f32; 24], [1, 1, 4, 6]), &device());
    let r = values(c.restrict(t));
    assert_eq!(r.iter().filter(|&&v| v == 0.0).count(), 4);
    assert_eq!((r[16], r[17], r[22], r[23]), (0.0, 0.0, 0.0, 0.0));
    let batch = Tensor::<4>::from_data(TensorData::new(canvas.clone(), [1, 1, 4, 6]), &device());
    assert_eq!(values(c.images(batch)), img);
}

#[test]
fn canvas_pads_small_images_and_scales_shifted_copies() {
    // A 2×2 image [1, 2; 3, 4] on B = 4 with pad value −1 sits at rows/columns 1–2. Shifted with
    // p = 2: s_r = (r_min/r)^(p/2) = 2/4 = 0.5 for the full copy and 1 for the 2×2 copy, whose
    // top-left block is (−1 −1 −1 +1)/4 = −0.5.
    let cfg = MultiResConfig {
        schedule: ResolutionSchedule::Shifted { power: 2.0 },
        ..config(vec![4, 2])
    };
    let c = Canvas::new(&cfg, ImageShape::image(1, 2, 2));
    assert_eq!(c.scales, vec![0.5, 1.0]);
    let img = [1.0f32, 2.0, 3.0, 4.0];
    let canvas = c.pack(&img);
    assert_eq!(&canvas[0..4], &[-0.5, -0.5, -0.5, -0.5]);
    assert_eq!(&canvas[6..10], &[-0.5, 0.5, 1.0, -0.5]);
    assert_eq!(c.region(&canvas, 1), vec![-0.5, -0.25, 0.0, 0.25]);
    assert_eq!(c.to_image(&canvas), img.to_vec());
}

#[test]
fn weight_map_turns_the_canvas_mean_into_the_weighted_sum() {
    // Canvas 4×6 (N = 24): copy 0 has N₀ = 16 pixels, copy 1 N₁ = 4. With w = (1, 2):
    // m = 1·24/16 = 1.5 on copy 0, 2·24/4 = 12 on copy 1, 0 on the corner; for e ≡ 1,
    // mean(m ⊙ e) = (16·1.5 + 4·12)/24 = 3 = w₀·1 + w₁·1.
    let c = Canvas::new(&config(vec![4, 2]), ImageShape::image(1, 4, 4));
    let m = c.weight_map(&[1.0, 2.0]);
    assert_eq!((m[0], m[4], m[16]), (1.5, 12.0, 0.0));
    assert_eq!(m.iter().sum::<f32>() / 24.0, 3.0);
}

#[test]
fn multi_resolution_loss_is_the_weighted_sum_of_single_resolution_losses() {
    // The ideal Gaussian denoiser acts pixel by pixel, so its EDM loss on the canvas with the
    // weight map must equal Σ_r w_r·(EDM loss on copy r alone) with the same σ and noise.
    let (n, sd) = (3, 0.5);
    let c = Canvas::new(&config(vec![8, 4, 2]), ImageShape::image(1, 8, 8));
    let s = c.shape();
    let d = device();
    let tensor = |seed, len, dims: [usize; 4]| {
        Tensor::<4>::from_data(
            TensorData::new(normals(&mut rng(seed, Stream::Eval, 1), len), dims),
            &d,
        )
    };
    let dims = [n, 1, s.height, s.width];
    let y = c.restrict(tensor(1, n * s.len(), dims).mul_scalar(sd));
    let noise = tensor(2, n * s.len(), dims);
    let normals_t = Tensor::<1>::from_data(TensorData::new(vec![-1.0f32, 0.0, 0.7], [n]), &d);
    let cond = Cond {
        class: Tensor::<1, Int>::zeros([n], &d),
        extra: None,
        latent: None,
    };
    let (ideal, p, w) = (
        IdealGaussian { sigma_data: sd },
        LogNormal::default(),
        [1.0, 0.5, 2.0],
    );
    let total = values(edm_loss(
        &ideal,
        y.clone(),
        &cond,
        normals_t.clone(),
        noise.clone(),
        &p,
        sd,
        Some(c.weight_tensor(&w, &d)),
    ));
    let (ys, ns) = (c.split(y), c.split(noise));
    let mut sum = vec![0.0f64; n];
    for r in 0..3 {
        let l = values(edm_loss(
            &ideal,
            ys[r].clone(),
            &cond,
            normals_t.clone(),
            ns[r].clone(),
            &p,
            sd,
            None,
        ));
        for (acc, v) in sum.iter_mut().zip(l) {
            *acc += w[r] * v as f64;
        }
    }
    for (a, b) in total.iter().zip(&sum) {
        assert!(
            (*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0),
            "{total:?} vs {sum:?}"
        );
    }
}

#[test]
fn curriculum_adds_resolutions_from_the_smallest_at_their_steps() {
    // [32, 16, 8] starting at (4000, 2000, 0): 8×8 alone until step 1999, 16×16 joins at 2000,
    // 32×32 at 4000.
    let starts = [4000, 2000, 0];
    assert_eq!(curriculum::active(&starts, 0), [false, false, true]);
    assert_eq!(curriculum::active(&starts, 1999), [false, false, true]);
    assert_eq!(curriculum::active(&starts, 2000), [false, true, true]);
    assert_eq!(curriculum::active(&starts, 3999), [false, true, true]);
    assert_eq!(curriculum::active(&starts, 4000), [true, true, true]);
    assert_eq!(
        curriculum::weights_at(&[1.0, 0.5, 2.0], &starts, 2500),
        [0.0, 0.5, 2.0]
    );
    assert_eq!(curriculum::last_start(&starts), 4000);
    assert!(curriculum::validate(&starts, 3).is_ok());
    // The smallest must start at 0; a larger resolution never before a smaller one.
    for bad in [vec![4000, 2000, 10], vec![0, 2000, 0], vec![0, 0]] {
        let e = curriculum::validate(&bad, 3).unwrap_err().to_string();
        assert!(e.contains("model.multires.start_steps"), "{e}");
    }
}

#[test]
fn multires_config_rejects_what_no_canvas_holds() {
    for (r, w) in [
        (vec![32, 12], vec![1.0, 1.0]),
        (vec![32, 32], vec![1.0, 1.0]),
        (vec![], vec![]),
    ] {
        let cfg = MultiResConfig {
            resolutions: r,
            loss_weights: w.clone(),
            start_steps: vec![0; w.len()],
            ..MultiResConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("model.multires.resolutions"), "{e}");
    }
    let cfg = MultiResConfig {
        loss_weights: vec![1.0, f64::NAN],
        ..MultiResConfig::default()
    };
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("loss_weights")
    );
}
