//! Unified Latents end to end on the embedded digits through the CLI: stage 1 (encoder,
//! decoder, prior) and stage 2 (a base model on the frozen latents) with `fewstep teacher
//! train`, then `fewstep sample` decoding the base model's latents to 8×8 images, and the
//! serving graph (latent steps + decoder steps, one ONNX) checked against it.

use super::fixtures::{err, fewstep, ok, temp_dir};

/// The `[train]` of both stages at test size.
const TRAIN: &str = "
    [train]
    steps = 6
    batch_size = 8
    warmup_steps = 2
    checkpoint_every = 3
    log_every = 1
    ema_halflife_images = 50.0
";

/// Stage 1 at test size: 4×4×2 latents of the 8×8 digits.
fn tiny_autoencoder() -> String {
    r#"
    [model]
    kind = "latent_autoencoder"
    latent_channels = 2
    downsample = 2
    log_snr_0 = 5.0
    [model.encoder]
    channels = 8
    norm_groups = 4
    [model.decoder]
    model_channels = 8
    channel_mult = [1, 2]
    num_blocks = 1
    attn_resolutions = []
    norm_groups = 4
    [model.prior]
    model_channels = 8
    channel_mult = [1]
    num_blocks = 1
    attn_resolutions = []
    norm_groups = 4
    [diffusion]
    p_uncond = 0.0
    [diffusion.loss]
    kind = "sigmoid"
    bias = 0.0
    log_snr = { min = -10.0, max = 12.0 }
"#
    .to_string()
        + TRAIN
}

/// Stage 2 at test size over the run in `ae`.
fn tiny_base(ae: &str) -> String {
    format!(
        r#"
    [data]
    source = "latents"
    [data.latents]
    autoencoder = "{ae}"
    decoder_steps = 3
    [model]
    model_channels = 8
    channel_mult = [1, 2]
    num_blocks = 1
    attn_resolutions = []
    norm_groups = 4
    [diffusion]
    sigma_data = 1.0
    [diffusion.loss]
    kind = "sigmoid"
    bias = 0.0
    log_snr = {{ min = -10.0, max = 5.0 }}
    [diffusion.grid]
    sigma_min = 0.0821
"#
    ) + TRAIN
}

#[test]
fn tiny_latent_chain_trains_both_stages_and_samples_decoded_images() {
    let dir = temp_dir("latent-chain");
    let (ae_cfg, base_cfg) = (dir.join("ae.toml"), dir.join("base.toml"));
    let (ae, base) = (dir.join("ae"), dir.join("base"));
    std::fs::write(&ae_cfg, tiny_autoencoder()).unwrap();
    std::fs::write(&base_cfg, tiny_base(&ae.display().to_string())).unwrap();
    let s = |p: &std::path::Path| p.display().to_string();
    ok(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &s(&ae_cfg),
        "--out",
        &s(&ae),
    ]));
    ok(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &s(&base_cfg),
        "--out",
        &s(&base),
    ]));
    let saved = std::fs::read_to_string(base.join("config.toml")).unwrap();
    assert!(
        saved.contains("latents") && saved.contains("sigmoid"),
        "{saved}"
    );
    let samples = dir.join("samples");
    let said = ok(fewstep(&[
        "--quiet",
        "sample",
        "--model",
        &s(&base),
        "--n",
        "4",
        "--steps",
        "4",
        "--out",
        &s(&samples),
    ]));
    // The base model's 4×4×2 latents come back as 8×8 digits through the decoder: NFE = the
    // prior's 4 Euler steps × 2 (CFG) + the decoder's 3.
    let img = image::open(samples.join("00000_c0.png")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 8));
    assert!(said.contains("NFE per image 11"), "{said}");

    // The decoder distils like any teacher (consistency, with z₀ from the frozen encoder), the
    // base model like any teacher (guided), and the student samples through the distilled
    // decoder at 1 step: NFE = 4 + 1.
    let (dec, guided) = (dir.join("decoder"), dir.join("guided"));
    ok(fewstep(&[
        "--quiet",
        "student",
        "consistency",
        "--teacher",
        &s(&ae),
        "--out",
        &s(&dec),
        "--steps",
        "2",
    ]));
    ok(fewstep(&[
        "--quiet",
        "student",
        "guided",
        "--teacher",
        &s(&base),
        "--out",
        &s(&guided),
        "--steps",
        "2",
    ]));
    let fast = dir.join("fast");
    let said = ok(fewstep(&[
        "--quiet",
        "sample",
        "--model",
        &s(&guided),
        "--n",
        "4",
        "--steps",
        "4",
        "--decoder",
        &s(&dec),
        "--decoder-steps",
        "1",
        "--out",
        &s(&fast),
    ]));
    assert!(said.contains("NFE per image 5"), "{said}");
    let img = image::open(fast.join("00003_c3.png")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 8));

    // `fewstep eval report` over the chain: the student decodes through `--student-decoder`
    // (its sets say so and its NFE is 4 + 1), the base teacher through stage 1's (2·2 + 3).
    let rep = dir.join("report");
    ok(fewstep(&[
        "--quiet",
        "eval",
        "report",
        "--runs",
        &s(&base),
        &s(&guided),
        "--features",
        "pixels",
        "--reference",
        &format!("run:{}:test", s(&ae)),
        "--n",
        "80",
        "--batch",
        "80",
        "--teacher-steps",
        "2",
        "--student-steps",
        "4",
        "--sweep-guidance",
        "2",
        "--sweep-steps",
        "2",
        "--sweep-n",
        "8",
        "--bootstrap",
        "4",
        "--timing-batch",
        "2",
        "--timing-reps",
        "1",
        "--student-decoder",
        &s(&dec),
        "--student-decoder-steps",
        "1",
        "--out",
        &s(&rep),
    ]));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("results.json")).unwrap()).unwrap();
    let nfe: Vec<u64> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nfe"].as_u64().unwrap())
        .collect();
    assert_eq!(nfe, [7, 5], "{r}");
    let sets: Vec<String> = std::fs::read_dir(dir.join("report.samples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        sets.iter()
            .any(|n| n.starts_with("guided-004-own-w2-dec1-")),
        "{sets:?}"
    );

    // `fewstep latent measure` reports the rate, the channel's bound and the PSNR.
    let m = ok(fewstep(&[
        "latent",
        "measure",
        "--autoencoder",
        &s(&ae),
        "--n",
        "8",
        "--decoder-steps",
        "2",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    for k in [
        "rate_bits_per_dim",
        "channel_bound_bits_per_dim",
        "recon_psnr",
        "latent_std",
    ] {
        assert!(v[k].as_f64().is_some_and(f64::is_finite), "{k}: {m}");
    }
    assert_eq!(v["decoder_nfe"], 2);

    // The base model's denoiser over latents exports and passes the parity check; the
    // autoencoder alone (its decoder takes z₀ as an input) is refused with what to do instead.
    let onnx = s(&dir.join("base.onnx"));
    ok(fewstep(&[
        "--quiet",
        "export",
        "onnx",
        "--model",
        &s(&base),
        "--out",
        &onnx,
    ]));
    ok(fewstep(&[
        "--quiet",
        "export",
        "check",
        &onnx,
        "--model",
        &s(&base),
    ]));
    let e = err(fewstep(&[
        "export",
        "onnx",
        "--model",
        &s(&ae),
        "--out",
        &s(&dir.join("ae.onnx")),
    ]));
    assert!(e.contains("latent autoencoder"), "{e}");

    // The serving graph: noise + class + w → the student's 2 latent steps → the distilled
    // decoder's 1 step → image, one ONNX file whose output equals `fewstep sample --decoder`'s
    // images from the same seed (the check runs both). NFE = 2 + 1.
    let served = s(&dir.join("served.onnx"));
    let said = ok(fewstep(&[
        "export",
        "onnx",
        "--model",
        &s(&guided),
        "--out",
        &served,
        "--unroll-steps",
        "2",
        "--guidance",
        "1",
        "--decoder",
        &s(&dec),
        "--decoder-steps",
        "1",
    ]));
    assert!(said.contains("(NFE 3)"), "{said}");
    assert!(said.contains("latent_noise, decoder_noise_0"), "{said}");
    let checked = ok(fewstep(&[
        "export",
        "check",
        &served,
        "--model",
        &s(&guided),
    ]));
    assert!(
        checked.contains("--decoder-steps 1") && checked.contains("PASS"),
        "{checked}"
    );
    // The base teacher's graph ends in the chain's own decoder (3 Euler steps of the stage-1 run).
    let teacher_graph = s(&dir.join("teacher-served.onnx"));
    ok(fewstep(&[
        "--quiet",
        "export",
        "onnx",
        "--model",
        &s(&base),
        "--out",
        &teacher_graph,
        "--unroll-steps",
        "2",
    ]));
    ok(fewstep(&[
        "--quiet",
        "export",
        "check",
        &teacher_graph,
        "--model",
        &s(&base),
    ]));
    // The stage-1 run itself does not sample from noise alone: it says what to sample instead.
    let o = s(&dir.join("nope"));
    let e = err(fewstep(&[
        "sample",
        "--model",
        &s(&ae),
        "--n",
        "2",
        "--steps",
        "2",
        "--out",
        &o,
    ]));
    assert!(
        e.contains("latent autoencoder") && e.contains("base model"),
        "{e}"
    );
}

#[test]
fn a_latent_source_without_its_stage1_run_says_how_to_make_it() {
    let dir = temp_dir("latent-missing");
    let cfg = dir.join("base.toml");
    std::fs::write(&cfg, tiny_base(&dir.join("nowhere").display().to_string())).unwrap();
    let out = dir.join("base").display().to_string();
    let e = err(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &cfg.display().to_string(),
        "--out",
        &out,
    ]));
    assert!(e.contains("nowhere") && e.contains("stage-1"), "{e}");
    // A `[data.latents]` with another source is refused, naming the key.
    std::fs::write(&cfg, "[data.latents]\nautoencoder = \"x\"\n").unwrap();
    let e = err(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &cfg.display().to_string(),
        "--out",
        &out,
    ]));
    assert!(e.contains("data.source"), "{e}");
}

#[test]
fn shipped_latent_configs_fit_their_data() {
    // Stage 1 on 8×8 digits and 28×28 MNIST; stage 2 on their 4×4×2 and 7×7×4 latents.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let load =
        |f: &str| teacher::config::TeacherConfig::from_file(&root.join("configs").join(f)).unwrap();
    let cases = [
        (
            "latent-digits.toml",
            "latent-digits-base.toml",
            teacher::unet::ImageShape::image(1, 8, 8),
        ),
        (
            "latent-mnist.toml",
            "latent-mnist-base.toml",
            teacher::unet::ImageShape::image(1, 28, 28),
        ),
    ];
    for (ae, base, image) in cases {
        let (ae, base) = (load(ae), load(base));
        let teacher::model::NetworkConfig::LatentAutoencoder(c) = &ae.model else {
            panic!("stage 1 is a latent autoencoder")
        };
        ae.model.check_shape(image).unwrap();
        base.model.check_shape(c.latent_shape(image)).unwrap();
        assert_eq!(base.data.source, teacher::data::DataSource::Latents);
        // The base model never trains below σ₀ and its grid stops there.
        let sigma0 = teacher::latent::channel::sigma0(c.log_snr_0);
        let teacher::edm::loss::TrainingLoss::Sigmoid { log_snr, .. } = base.diffusion.loss else {
            panic!("stage 2 trains on the sigmoid ELBO")
        };
        assert!((log_snr.max - c.log_snr_0).abs() < 1e-12);
        assert!(base.diffusion.grid.sigma_min >= sigma0 - 1e-4);
    }
    // The pipelines run exactly those two stages (the base model's autoencoder is the chain's).
    for (pipe, ae, base) in [
        (
            "latent-digits-pipeline.toml",
            "latent-digits.toml",
            "latent-digits-base.toml",
        ),
        (
            "latent-mnist-pipeline.toml",
            "latent-mnist.toml",
            "latent-mnist-base.toml",
        ),
    ] {
        let p =
            pipeline::config::PipelineConfig::from_file(&root.join("configs").join(pipe)).unwrap();
        assert_eq!(p.latent.as_ref().unwrap().autoencoder, load(ae), "{pipe}");
        let mut t = load(base);
        t.data.latents.as_mut().unwrap().autoencoder = "autoencoder".into();
        assert_eq!(p.teacher, t, "{pipe}");
    }
}

#[test]
fn bad_latent_pipelines_say_what_to_fix() {
    let dir = temp_dir("latent-pipeline-bad");
    let good = tiny_latent_pipeline();
    let cases = [
        // a teacher over latents with no stage 1 in the chain
        (tiny_base_section(), "[latent.autoencoder]"),
        // the base model pointed at another autoencoder than the chain's
        (
            good.replace("autoencoder = \"autoencoder\"", "autoencoder = \"runs/x\""),
            "autoencoder = \"autoencoder\"",
        ),
        // a decoder named beside the one the chain distils
        (
            good.replacen(
                "decoder_steps = 3\n",
                "decoder_steps = 3\ndecoder = \"runs/d\"\n",
                1,
            ),
            "leave `decoder` out",
        ),
        (
            good.replace("decoder_steps = 1\n", "decoder_steps = 0\n"),
            "latent.decoder_steps",
        ),
        // a baseline named like one of the chain's own rows, and two for one headline role
        (
            good.clone() + &baseline("teacher", "runs/x", "pixel_route"),
            "model kind of the chain's own rows",
        ),
        (
            good.clone()
                + &baseline("a", "runs/x", "pixel_route")
                + &baseline("b", "runs/y", "pixel_route"),
            "role = \"other\"",
        ),
    ];
    for (i, (cfg, want)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&path, cfg).unwrap();
        let e = err(fewstep(&[
            "pipeline",
            "--config",
            &path.display().to_string(),
            "--out",
            &dir.join("run").display().to_string(),
            "--dry-run",
        ]));
        assert!(
            e.contains(want) && e.contains(&format!("bad-{i}.toml")),
            "case {i}: {e}"
        );
    }
    // Before any stage runs: a latent chain trains its own teacher, and a baseline's run exists.
    let path = dir.join("ok.toml");
    std::fs::write(
        &path,
        good.clone() + &baseline("px", "runs/none", "pixel_route"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let args = [
            "pipeline",
            "--config",
            &path.display().to_string(),
            "--out",
            &dir.join("run").display().to_string(),
        ];
        err(fewstep(&[&args[..], extra].concat()))
    };
    let e = run(&["--from-teacher", "runs/t"]);
    assert!(
        e.contains("--from-teacher") && e.contains("[latent]"),
        "{e}"
    );
    assert!(
        !dir.join("run").join("autoencoder").exists(),
        "nothing trained"
    );
    // A baseline not trained yet is noted at the start; the report stage names it.
    let e = run(&[]);
    assert!(e.contains("note: eval.baselines `px`"), "{e}");
    assert!(e.contains("baseline `px`: train its run"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

/// A `[[eval.baselines]]` entry.
fn baseline(name: &str, run: &str, role: &str) -> String {
    format!("[[eval.baselines]]\nname = \"{name}\"\nrun = \"{run}\"\nrole = \"{role}\"\n")
}

/// The tiny base model as a pipeline's teacher over the chain's autoencoder.
fn tiny_base_section() -> String {
    tiny_base("autoencoder")
        .replace("[data", "[teacher.data")
        .replace("[model", "[teacher.model")
        .replace("[diffusion", "[teacher.diffusion")
        .replace("[train]", "[teacher.train]")
}

/// The latent chain as one pipeline at test size: `[latent.autoencoder]` the tiny stage 1, the
/// teacher the tiny base model over its latents, the students and report the tiny pipeline's,
/// the decoder distilled to 1 step.
fn tiny_latent_pipeline() -> String {
    let ae = tiny_autoencoder()
        .replace("[model", "[latent.autoencoder.model")
        .replace("[diffusion", "[latent.autoencoder.diffusion")
        .replace("[train]", "[latent.autoencoder.train]");
    let base = tiny_base_section();
    format!(
        "{ae}{base}{}[latent]\ndecoder_steps = 1\nmeasure_n = 8\n[latent.decoder]\n\
         grid = {{ kind = \"fixed\", n = 6 }}\n[latent.decoder.train]\nsteps = 3\nbatch_size = 8\n\
         [features]\nsteps = 30\n[eval]\nn = 20\nteacher_steps = [2, 4]\n\
         student_steps = [1, 2, 4]\n{}[export]\nsteps = 4\ncheck_batch = 4\n",
        crate::student::TINY_STUDENTS,
        crate::pipeline::TINY_VERDICT
    )
}

/// Unified Latents as the user's one job (issue #17): stage 1 → the base model on its latents →
/// guided, progressive and consistency students → the decoder distilled to 1 step → features →
/// export (the serving graph: the 4-step student's latent steps and the distilled decoder's
/// step in one ONNX, parity-checked against `fewstep sample`; the stage fails otherwise) →
/// report on the decoded images, with the autoencoder's reconstruction and rate.
#[test]
fn tiny_latent_pipeline_runs_end_to_end() {
    let dir = temp_dir("latent-pipeline");
    let s = |p: &std::path::Path| p.display().to_string();
    // The pixel route beside it: a tiny teacher on the digits themselves, scored as a baseline.
    let (pixel_cfg, pixel) = (dir.join("pixel.toml"), dir.join("pixel"));
    std::fs::write(&pixel_cfg, crate::student::TINY_TEACHER).unwrap();
    ok(fewstep(&[
        "--quiet",
        "teacher",
        "train",
        "--config",
        &s(&pixel_cfg),
        "--out",
        &s(&pixel),
    ]));
    let cfg = dir.join("pipeline.toml");
    let baseline = format!(
        "[[eval.baselines]]\nname = \"pixel-teacher\"\nrun = \"{}\"\nsteps = 4\nrole = \"pixel_route\"\n",
        s(&pixel)
    );
    std::fs::write(&cfg, tiny_latent_pipeline() + &baseline).unwrap();
    let out = dir.join("run");
    let said = ok(fewstep(&[
        "--quiet",
        "pipeline",
        "--config",
        &s(&cfg),
        "--out",
        &s(&out),
    ]));
    for st in [
        "autoencoder",
        "teacher",
        "guided",
        "progressive",
        "consistency",
        "decoder",
        "features",
        "export",
        "report",
    ] {
        assert!(
            said.contains(&format!("{st}: ")),
            "stage {st} silent: {said}"
        );
    }
    // The base model was trained on this run's autoencoder, named by its absolute path.
    let teacher = std::fs::read_to_string(out.join("teacher/config.toml")).unwrap();
    let ae = std::path::absolute(out.join("autoencoder")).unwrap();
    assert!(teacher.contains(&s(&ae)), "{teacher}");
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("export/export.json")).unwrap())
            .unwrap();
    // NFE end to end: the progressive 4-step student's 4 + the distilled decoder's 1.
    assert_eq!(export["sampler"]["nfe"], 5, "{export}");
    let inputs = export["sampler"]["inputs"].to_string();
    assert!(
        inputs.contains("latent_noise") && inputs.contains("decoder_noise_0"),
        "{inputs}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report/results.json")).unwrap())
            .unwrap();
    let h = &r["headline"];
    assert_eq!(h["nfe_end_to_end_student"], 5, "{h}");
    for k in [
        "recon_psnr",
        "bits_per_latent_dim",
        "fid_ratio_student4_vs_teacher50",
    ] {
        assert!(h[k].as_f64().is_some_and(f64::is_finite), "{k}: {h}");
    }
    assert!(out.join("report/reconstructions.png").is_file());
    // The pixel teacher is a row of its own, not the teacher the students are judged against.
    let ratio = h["fid_latent_vs_pixel_teacher50"].as_f64().unwrap();
    let models = r["models"].as_array().unwrap();
    let px = models
        .iter()
        .find(|m| m["baseline"] == "pixel_route")
        .unwrap();
    assert_eq!(px["name"], "pixel-teacher");
    let t4 = models
        .iter()
        .find(|m| m["name"] == "teacher" && m["steps"] == 4)
        .unwrap();
    assert!(t4["vs_teacher"].is_null(), "{t4}");
    // teacher-50 ÷ pixel = 1 ÷ (pixel ÷ teacher-50)
    let inv = px["vs_teacher"]["value"].as_f64().unwrap();
    assert!((ratio * inv - 1.0).abs() < 1e-9, "{ratio} · {inv}");
    assert!(px["fidelity"].is_null(), "{px}");
    // Its training time beside the latent route's (autoencoder + base model).
    let cost = r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "Training cost")
        .unwrap();
    let b = &cost["data"]["baselines"]["pixel-teacher"];
    assert_eq!(b["logged"]["steps"], 3, "{cost}");
    assert!(
        b["vs_chain_route"].as_f64().is_some_and(|x| x > 0.0),
        "{cost}"
    );
    // Every model's samples are decoded 8×8 images; the students' went through the distilled
    // decoder (their sample sets say so), the teacher's through the autoencoder's own.
    let sets: Vec<String> = std::fs::read_dir(out.join("report-samples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        sets.iter()
            .any(|n| n.starts_with("progressive-004-own-w2-dec1")),
        "{sets:?}"
    );
    assert!(
        sets.iter().any(|n| n.starts_with("teacher-004-own-w2-")),
        "{sets:?}"
    );
    assert!(
        !sets
            .iter()
            .any(|n| n.starts_with("teacher-") && n.contains("-dec")),
        "{sets:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}
