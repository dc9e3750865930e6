//! Clips `[n, c, t, h, w]` through the whole toolchain: the space-time U-Net couples frames only
//! through time, the losses are shape-agnostic, clip datasets load from configs and folders, and
//! a tiny video pipeline runs every stage to an FVD report.

use burn::tensor::{Distribution, Tensor, TensorData};
use teacher::data::{DataConfig, DataSource, Split};
use teacher::edm::Cond;
use teacher::edm::loss::{LogNormal, edm_loss};
use teacher::edm::precond::Precond;
use teacher::unet::ImageShape;

use crate::fixtures::{IdealGaussian, device, fewstep, ok, perturbed_model_of, temp_dir, values};
use crate::student::TINY_STUDENTS;

/// A 4-frame 8×8 clip shape.
const CLIP: ImageShape = ImageShape {
    channels: 1,
    height: 8,
    width: 8,
    frames: 4,
};

/// Values of frame `t` of clip `i` in a `[n, c·t, h, w]` tensor's values (c = 1).
fn frame(v: &[f32], i: usize, t: usize) -> &[f32] {
    let (plane, len) = (CLIP.height * CLIP.width, CLIP.len());
    &v[i * len + t * plane..][..plane]
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn space_time_unet_couples_frames_through_time_and_never_across_clips() {
    let d = device();
    let model = |kernel: usize| {
        let mut unet = crate::fixtures::tiny_unet();
        unet.attn_resolutions = vec![];
        unet.temporal_kernel = kernel;
        perturbed_model_of(Precond::Edm, CLIP, unet)
    };
    d.seed(3);
    let x = Tensor::<4>::random([2, 4, 8, 8], Distribution::Normal(0.0, 1.0), &d);
    // The same two clips with frame 3 of clip 0 changed.
    let mut changed = values(x.clone());
    for v in &mut changed[3 * 64..4 * 64] {
        *v += 1.0;
    }
    let x2 = Tensor::<4>::from_data(TensorData::new(changed, [2, 4, 8, 8]), &d);
    let sigma = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 1.0], [2]), &d);
    let class = Tensor::from_data(TensorData::new(vec![3i64, 5], [2]), &d);
    let run = |m: &teacher::model::EdmModel, x: Tensor<4>| {
        values(m.forward(x, sigma.clone(), class.clone(), None))
    };
    // Kernel 3: each of the 8 residual blocks (2 encoder, 2 middle, 4 decoder) carries a
    // temporal layer reaching one frame further, so frame 3 reaches frame 0.
    let m3 = model(3);
    let (a, b) = (run(&m3, x.clone()), run(&m3, x2.clone()));
    assert_eq!(a.len(), 2 * CLIP.len(), "output keeps the clip shape");
    assert!(
        max_diff(frame(&a, 0, 0), frame(&b, 0, 0)) > 1e-4,
        "frame 0 never sees frame 3"
    );
    for t in 0..4 {
        assert_eq!(
            frame(&a, 1, t),
            frame(&b, 1, t),
            "clip 1 saw clip 0 (frame {t})"
        );
    }
    // Kernel 1: no mixing over time, so the frames are denoised independently.
    let m1 = model(1);
    let (a, b) = (run(&m1, x.clone()), run(&m1, x2));
    for t in 0..3 {
        assert!(
            max_diff(frame(&a, 0, t), frame(&b, 0, t)) < 1e-6,
            "kernel 1 leaked frame 3 into frame {t}"
        );
    }
}

#[test]
fn clip_loss_is_the_mean_of_its_frame_losses_and_the_gaussian_value() {
    // For y ~ N(0, σ_d²) the ideal denoiser D = x·σ_d²/(σ²+σ_d²) errs by (c_skip − 1)·y +
    // c_skip·σ·n, of variance σ²σ_d²/(σ² + σ_d²); times λ(σ) = (σ² + σ_d²)/(σ·σ_d)² that is 1
    // per value, whatever σ, so a clip's expected loss is 1. The loss reads a clip as its
    // `[c·t, h, w]` planes, so it is exactly the mean of its frames' losses at the same σ.
    let (d, sd) = (device(), 0.5);
    let shape = ImageShape {
        frames: 8,
        height: 16,
        width: 16,
        ..CLIP
    };
    let n = 32;
    d.seed(11);
    let y = Tensor::<4>::random([n, 8, 16, 16], Distribution::Normal(0.0, sd), &d);
    let noise = Tensor::<4>::random([n, 8, 16, 16], Distribution::Normal(0.0, 1.0), &d);
    let normals = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &d);
    let cond = Cond {
        class: Tensor::from_data(TensorData::new(vec![0i64; n], [n]), &d),
        extra: None,
        latent: None,
    };
    let ideal = IdealGaussian { sigma_data: sd };
    let p = LogNormal::default();
    let clip_loss = values1(edm_loss(
        &ideal,
        y.clone(),
        &cond,
        normals.clone(),
        noise.clone(),
        &p,
        sd,
        None,
    ));
    let mut frame_mean = vec![0.0f32; n];
    for t in 0..shape.frames {
        let f = |x: &Tensor<4>| x.clone().narrow(1, t, 1);
        let l = values1(edm_loss(
            &ideal,
            f(&y),
            &cond,
            normals.clone(),
            f(&noise),
            &p,
            sd,
            None,
        ));
        for (m, v) in frame_mean.iter_mut().zip(l) {
            *m += v / shape.frames as f32;
        }
    }
    for (c, f) in clip_loss.iter().zip(&frame_mean) {
        assert!(
            (c - f).abs() < 1e-4 * c.abs().max(1.0),
            "clip {c} vs frames {f}"
        );
    }
    let mean = clip_loss.iter().sum::<f32>() / n as f32;
    assert!((mean - 1.0).abs() < 0.04, "E[loss] = 1, got {mean}");
}

fn values1(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn clips_config(frames: usize) -> DataConfig {
    let text = format!("[clips]\nframes = {frames}\nsize = 12\ntrain_clips = 20\ntest_clips = 6\n");
    toml::from_str(&text).unwrap()
}

#[test]
fn clip_datasets_come_from_configs_deterministically() {
    let cfg = clips_config(5);
    assert_eq!(cfg.name(), "moving-digits");
    let train = cfg.load(None, Split::Train).unwrap();
    let test = cfg.load(None, Split::Test).unwrap();
    let want = ImageShape {
        channels: 1,
        height: 12,
        width: 12,
        frames: 5,
    };
    assert_eq!((train.shape, test.shape), (want, want));
    assert_eq!(cfg.nominal_shape(), Some(want));
    assert_eq!((train.len(), test.len()), (20, 6));
    assert_eq!(train.image(0).len(), 5 * 144);
    assert_eq!(train.images, cfg.load(None, Split::Train).unwrap().images);
    // Test clips use other digits and another trajectory seed.
    assert_ne!(train.image(0), test.image(0));
    assert!(train.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    let mut zero = cfg.clone();
    zero.clips.as_mut().unwrap().test_clips = 0;
    let e = zero.load(None, Split::Test).unwrap_err().to_string();
    assert!(e.contains("test_clips"), "{e}");
}

#[test]
fn clip_folders_load_frames_in_name_order() {
    let src = clips_config(3).load(None, Split::Train).unwrap();
    let dir = temp_dir("clip-folder");
    // 2 classes × 5 clips, each a folder of 3 frame PNGs: every 5th clip (index 4) is test.
    for class in 0..2 {
        for k in 0..5 {
            let clip_dir = dir.join(format!("c{class}/clip{k}"));
            std::fs::create_dir_all(&clip_dir).unwrap();
            let clip = src.image(class * 5 + k);
            for t in 0..3 {
                let f = teacher::clip_io::frame(clip, src.shape, t);
                let p = clip_dir.join(format!("f{t}.png"));
                teacher::image_io::write_png(&p, &f, src.shape.frame()).unwrap();
            }
        }
    }
    let cfg = DataConfig {
        source: DataSource::ClipFolder,
        path: Some(dir.clone()),
        ..Default::default()
    };
    assert!(cfg.is_clips());
    let train = cfg.load(None, Split::Train).unwrap();
    assert_eq!(train.shape, src.shape);
    assert_eq!((train.len(), train.num_classes), (8, 2));
    assert_eq!(train.labels, vec![0, 0, 0, 0, 1, 1, 1, 1]);
    // PNG holds 8 bits: equal to the source within half a grey level.
    assert!(max_diff(train.image(5), src.image(6)) <= 1.0 / 255.0 + 1e-6);
    assert_eq!(cfg.load(None, Split::Test).unwrap().len(), 2);
    // A clip with a frame missing names itself and the fix.
    std::fs::remove_file(dir.join("c1/clip2/f2.png")).unwrap();
    let e = cfg.load(None, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("clip2") && e.contains("same number of frames"),
        "{e}"
    );
}

#[test]
fn clip_folders_take_raw_arrays_too() {
    use teacher::npy::{NpyData, write_npy};
    // The same clips as `[T, H, W]` float32 arrays (np.save's format): read back exactly.
    let src = clips_config(3).load(None, Split::Train).unwrap();
    let dir = temp_dir("clip-arrays");
    std::fs::create_dir_all(dir.join("c0")).unwrap();
    for k in 0..5 {
        let data = NpyData::F32(src.image(k).to_vec());
        write_npy(&dir.join(format!("c0/clip{k}.npy")), &[3, 12, 12], &data).unwrap();
    }
    let cfg = DataConfig {
        source: DataSource::ClipFolder,
        path: Some(dir.clone()),
        ..Default::default()
    };
    let train = cfg.load(None, Split::Train).unwrap();
    assert_eq!(train.shape, src.shape);
    assert_eq!(train.len(), 4);
    assert_eq!(train.image(2), src.image(2));
    // An array of the wrong rank, or with pixels outside [−1, 1], names the file and the fix.
    let bad = NpyData::F32(vec![0.0; 12 * 12]);
    write_npy(&dir.join("c0/clip1.npy"), &[12, 12], &bad).unwrap();
    let e = cfg.load(None, Split::Train).unwrap_err().to_string();
    assert!(e.contains("clip1.npy") && e.contains("[T, H, W]"), "{e}");
    let bytes = NpyData::F32(vec![255.0; 3 * 12 * 12]);
    write_npy(&dir.join("c0/clip1.npy"), &[3, 12, 12], &bytes).unwrap();
    let e = cfg.load(None, Split::Train).unwrap_err().to_string();
    assert!(e.contains("[−1, 1]") && e.contains("127.5"), "{e}");
}

/// A tiny video chain: 4-frame 10×10 clips, the student tests' tiny stages at batch 4, 8 clips
/// per sample set.
fn tiny_video() -> String {
    let teacher = "[teacher.data.clips]\nframes = 4\nsize = 10\ntrain_clips = 64\ntest_clips = 16\n\
                   [teacher.model]\nmodel_channels = 8\nchannel_mult = [1, 2]\nnum_blocks = 1\n\
                   norm_groups = 4\nattn_resolutions = []\n[teacher.train]\nsteps = 3\nbatch_size = 4\n";
    format!(
        "{teacher}{}[features]\nsteps = 10\n[eval]\nn = 8\nteacher_steps = [4, 50]\n\
         student_steps = [1, 2, 4]\n{}[export]\nsteps = 4\ncheck_batch = 2\n",
        TINY_STUDENTS.replace("batch_size = 8", "batch_size = 4"),
        crate::pipeline::TINY_VERDICT.replace("16", "8")
    )
}

fn is_apng(path: &std::path::Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.starts_with(b"\x89PNG") && bytes.windows(4).any(|w| w == b"acTL")
}

#[test]
fn tiny_video_pipeline_reports_fvd_and_writes_clips() {
    let dir = temp_dir("video-pipeline");
    let cfg = dir.join("video.toml");
    std::fs::write(&cfg, tiny_video()).unwrap();
    let run = dir.join("run");
    let p = |s: &str| run.join(s).display().to_string();
    let c = cfg.display().to_string();
    ok(fewstep(&[
        "--quiet",
        "pipeline",
        "--config",
        &c,
        "--out",
        &p(""),
    ]));

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report/results.json")).unwrap())
            .unwrap();
    assert_eq!(results["metric"], "FVD");
    assert!(
        results["features"]
            .as_str()
            .unwrap()
            .contains("3D-conv clip net"),
        "{}",
        results["features"]
    );
    let h = &results["headline"];
    let ratio = h["fvd_ratio_student4_vs_teacher50"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{h}");
    assert!(
        h["speedup_student4_vs_teacher50"].as_f64().unwrap() > 1.0,
        "{h}"
    );
    assert!(h.get("fid_ratio_student4_vs_teacher50").is_none(), "{h}");
    assert!(results["real_vs_real"]["fid"].as_f64().unwrap().is_finite());
    // Every model at every step count: a frame strip and an animated grid.
    for m in results["models"].as_array().unwrap() {
        let anim = run.join("report").join(m["animation"].as_str().unwrap());
        assert!(is_apng(&anim), "{}", anim.display());
        assert!(
            run.join("report")
                .join(m["grid"].as_str().unwrap())
                .is_file()
        );
    }
    // One strip with the first clip of all 11 sample sets, labelled in order.
    let strips = image::open(run.join("report/strips.png")).unwrap();
    assert_eq!(strips.height(), 11 * 61 + 1);
    let sections = results["sections"].as_array().unwrap();
    let side = sections
        .iter()
        .find(|s| s["title"] == "Frame strips side by side")
        .expect("a side-by-side section");
    assert_eq!(
        side["data"]["rows"][1], "teacher · 50 steps · NFE 100",
        "{side}"
    );
    let md = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(
        md.contains("| FVD [95%] |") && md.contains("batch-1 ms"),
        "{md}"
    );
    // The feature network learnt the frame-order head too.
    let feats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("features/features.json")).unwrap())
            .unwrap();
    assert_eq!(feats["shape"]["frames"], 4);
    assert!(feats["order_accuracy"].as_f64().is_some(), "{feats}");
    // The video student and its unrolled sampler exported with parity against burn.
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("export/export.json")).unwrap())
            .unwrap();
    assert!(export.to_string().contains("student-4.onnx"), "{export}");
    for parity in [&export["parity"], &export["sampler"]["parity"]] {
        let err = parity["max_abs_err"].as_f64().unwrap();
        assert!(err < 1e-4, "video ONNX parity {err}");
    }

    // `fewstep sample` on the 2-step student writes animated clips, a grid and a strip.
    let out = dir.join("samples");
    let o = out.display().to_string();
    let said = ok(fewstep(&[
        "sample",
        "--model",
        &p("progressive"),
        "--steps",
        "2",
        "--n",
        "3",
        "--out",
        &o,
    ]));
    assert!(said.contains("clips"), "{said}");
    assert!(is_apng(&out.join("00000_c0.png")) && is_apng(&out.join("grid.png")));
    let strip = image::open(out.join("strip.png")).unwrap();
    // 4 frames × (10·6 + 1) + 1 wide (cells enlarged 64/10 = 6×), 3 clips high.
    assert_eq!((strip.width(), strip.height()), (4 * 61 + 1, 3 * 61 + 1));
    // The clips read back at native size, and `eval fid` scores them as FVD.
    let set = eval::samples::load_samples(&out, 1).unwrap();
    assert_eq!(
        set.shape,
        ImageShape {
            height: 10,
            width: 10,
            ..CLIP
        }
    );
    assert_eq!((set.images.len(), set.classes), (3 * 400, vec![0, 1, 2]));
    let json = ok(fewstep(&[
        "eval",
        "fid",
        "--samples",
        &o,
        "--features",
        &p("features"),
        "--reference",
        &format!("run:{}:test", p("teacher")),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["metric"], "FVD");
    assert!(v["fid"].as_f64().unwrap().is_finite(), "{v}");

    // The clip feature network from a teacher config's `[data]`, outside the pipeline.
    let t_cfg = dir.join("teacher.toml");
    std::fs::write(
        &t_cfg,
        "[data.clips]\nframes = 4\nsize = 10\ntrain_clips = 16\ntest_clips = 4\n",
    )
    .unwrap();
    let said = ok(fewstep(&[
        "--quiet",
        "eval",
        "train-features",
        "--config",
        &t_cfg.display().to_string(),
        "--steps",
        "3",
        "--out",
        &dir.join("feat").display().to_string(),
    ]));
    assert!(
        said.contains("3D-conv clip net") && said.contains("frame order"),
        "{said}"
    );
}

#[test]
fn the_shipped_video_configs_parse_and_plan() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = teacher::config::TeacherConfig::from_file(&root.join("configs/moving-digits.toml"))
        .unwrap();
    let want = ImageShape {
        channels: 1,
        height: 16,
        width: 16,
        frames: 8,
    };
    assert_eq!(t.data.nominal_shape(), Some(want));
    let out = temp_dir("video-dry-run");
    let cfg = root.join("configs/moving-digits-pipeline.toml");
    let said = ok(fewstep(&[
        "pipeline",
        "--config",
        &cfg.display().to_string(),
        "--out",
        &out.join("run").display().to_string(),
        "--dry-run",
    ]));
    assert_eq!(said.matches("would run").count(), 7, "{said}");
}
