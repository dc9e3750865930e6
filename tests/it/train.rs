//! The training loop: exact resume, divergence handling, refusing to overwrite saved work.

use teacher::checkpoint::Checkpoint;
use teacher::error::Error;
use teacher::train::{TrainOptions, train_teacher};

use crate::fixtures::{device, param_values, temp_dir, tiny_config};

fn opts(out: &std::path::Path, steps: u64, resume: bool) -> TrainOptions {
    TrainOptions {
        out: out.to_path_buf(),
        data: None,
        resume,
        allow_config_change: false,
        steps: Some(steps),
        quiet: true,
        device: device(),
        world: teacher::dist::World::SINGLE,
    }
}

#[test]
fn train_5_then_resume_5_equals_train_10() {
    let cfg = tiny_config();
    let (a, b) = (temp_dir("straight"), temp_dir("resumed"));
    train_teacher(&cfg, &opts(&a, 10, false)).unwrap();
    let half = train_teacher(&cfg, &opts(&b, 5, false)).unwrap();
    assert_eq!(half.steps, 5);
    let rest = train_teacher(&cfg, &opts(&b, 10, true)).unwrap();
    assert_eq!((rest.resumed_from, rest.steps), (5, 10));
    let (ca, cb) = (Checkpoint::load(&a).unwrap(), Checkpoint::load(&b).unwrap());
    assert_eq!(ca.header.step, 10);
    assert_eq!(ca.header.step, cb.header.step);
    // Weights and EMA are bit-identical: the resumed run redrew the same batches, σ and noise
    // and continued from the same Adam moments (a wrong optimizer state would show here).
    let d = device();
    for blob in ["model", "ema"] {
        let wa = param_values(&ca.load_into(blob, ca.header.spec.init(&d)).unwrap());
        let wb = param_values(&cb.load_into(blob, cb.header.spec.init(&d)).unwrap());
        assert!(wa == wb, "{blob} weights differ after resume");
    }
    // metrics.jsonl has one line per step, none duplicated by the resume.
    let steps: Vec<u64> = std::fs::read_to_string(b.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
}

#[test]
fn existing_run_is_never_overwritten_without_resume() {
    let cfg = tiny_config();
    let dir = temp_dir("norerun");
    train_teacher(&cfg, &opts(&dir, 2, false)).unwrap();
    let before = std::fs::read(dir.join("checkpoint.fsk")).unwrap();
    let e = train_teacher(&cfg, &opts(&dir, 4, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--resume"), "{e}");
    assert_eq!(std::fs::read(dir.join("checkpoint.fsk")).unwrap(), before);
    // Resuming with another network is refused too.
    let mut other = cfg.clone();
    other.model = teacher::model::NetworkConfig::UNet(teacher::unet::UNetConfig {
        model_channels: 16,
        ..crate::fixtures::tiny_unet()
    });
    let e = train_teacher(&other, &opts(&dir, 4, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("another network"), "{e}");
}

#[test]
fn divergence_stops_with_the_last_good_checkpoint_kept() {
    let cfg = tiny_config();
    let dir = temp_dir("nan");
    train_teacher(&cfg, &opts(&dir, 5, false)).unwrap();
    let good = std::fs::read(dir.join("checkpoint.fsk")).unwrap();
    // ln σ ~ N(1000, ·) makes σ = e^1000 = ∞, so the loss is not finite at the next step.
    let mut bad = cfg.clone();
    bad.diffusion.sigma_dist.p_mean = 1000.0;
    let changed = TrainOptions {
        allow_config_change: true,
        ..opts(&dir, 8, true)
    };
    let e = train_teacher(&bad, &changed).unwrap_err();
    assert!(matches!(e, Error::NonFinite { step: 5, .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("checkpoint.fsk") && msg.contains("--resume"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(dir.join("checkpoint.fsk")).unwrap(),
        good,
        "the good checkpoint is untouched"
    );
    assert_eq!(Checkpoint::load(&dir).unwrap().header.step, 5);
}

#[test]
fn a_flipped_byte_is_caught_and_the_previous_checkpoint_resumes() {
    // checkpoint_every = 5: steps 5 and 10 are saved; the save at 10 keeps step 5 as prev.
    let cfg = tiny_config();
    let dir = temp_dir("checksums");
    train_teacher(&cfg, &opts(&dir, 10, false)).unwrap();
    let latest = dir.join(teacher::checkpoint::LATEST);
    let prev = dir.join(teacher::checkpoint::PREVIOUS);
    assert_eq!(Checkpoint::load(&prev).unwrap().header.step, 5);
    let good = std::fs::read(&latest).unwrap();
    // One byte flipped in the last blob (the EMA, optimizer or model weights), then in the header.
    for (at, what) in [(good.len() - 100, "blob"), (40, "header")] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&latest, &bad).unwrap();
        let e = Checkpoint::load(&latest).unwrap_err().to_string();
        assert!(
            e.contains(&latest.display().to_string())
                && e.contains(what)
                && e.contains("checksum")
                && e.contains("checkpoint.prev.fsk"),
            "{e}"
        );
        let e = train_teacher(&cfg, &opts(&dir, 12, true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("checksum"),
            "resume refuses a corrupt checkpoint: {e}"
        );
    }
    // As the message says: the previous checkpoint over the latest, and --resume.
    std::fs::copy(&prev, &latest).unwrap();
    let s = train_teacher(&cfg, &opts(&dir, 10, true)).unwrap();
    assert_eq!((s.resumed_from, s.steps), (5, 10));
}

#[test]
fn one_writer_per_run_folder_and_stale_temp_files_are_removed() {
    let cfg = tiny_config();
    let dir = temp_dir("locked");
    let held = teacher::lock::FolderLock::acquire(&dir, &[]).unwrap();
    let e = train_teacher(&cfg, &opts(&dir, 2, false))
        .unwrap_err()
        .to_string();
    let pid = std::process::id().to_string();
    assert!(
        e.contains("another fewstep process") && e.contains(&pid),
        "{e}"
    );
    // Nothing was written by the refused run.
    let names = |d: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&dir), [teacher::lock::LOCK_FILE]);
    // Through the binary (another process) the message names this process as the holder.
    let out = dir.display().to_string();
    let args = ["--quiet", "teacher", "train", "--out", &out, "--steps", "1"];
    let e = crate::fixtures::err(crate::fixtures::fewstep(&args));
    assert!(e.contains(&format!("PID {pid}")), "{e}");
    drop(held);
    // Released: a temp file a killed write left behind is removed when the next writer starts.
    std::fs::write(dir.join(".checkpoint.fsk.tmp-999999"), b"half a checkpoint").unwrap();
    train_teacher(&cfg, &opts(&dir, 2, false)).unwrap();
    assert!(
        !names(&dir).iter().any(|n| n.contains(".tmp-")),
        "{:?}",
        names(&dir)
    );
}

#[test]
fn resume_refuses_a_changed_config_unless_allowed_and_then_records_it() {
    let cfg = tiny_config();
    let dir = temp_dir("strict-resume");
    train_teacher(&cfg, &opts(&dir, 5, false)).unwrap();
    let before = std::fs::read(dir.join("checkpoint.fsk")).unwrap();
    let mut changed = cfg.clone();
    changed.train.lr = 4e-3;
    changed.train.seed = 7;
    changed.train.log_every = 3; // a schedule key: free to change
    let e = train_teacher(&changed, &opts(&dir, 10, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.lr: 0.002 → 0.004")
            && e.contains("train.seed: 0 → 7")
            && !e.contains("log_every")
            && e.contains("--allow-config-change"),
        "{e}"
    );
    assert_eq!(std::fs::read(dir.join("checkpoint.fsk")).unwrap(), before);
    let allowed = TrainOptions {
        allow_config_change: true,
        ..opts(&dir, 10, true)
    };
    let s = train_teacher(&changed, &allowed).unwrap();
    assert_eq!((s.resumed_from, s.steps), (5, 10));
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.contains("config_change"))
        .expect("the change is recorded");
    assert!(
        line.contains("\"step\":5") && line.contains("train.lr"),
        "{line}"
    );
    // The logged training time still reads (the change line is not a metrics line).
    assert!(teacher::train::logged_seconds(&dir, 8).is_some());
}

#[test]
fn nonsense_settings_are_refused_up_front_naming_the_key() {
    // Each was accepted silently before (or, for lr = inf, failed at step 1 with a wrong message).
    let base =
        "[model]\nmodel_channels = 8\nchannel_mult = [1, 2]\nnum_blocks = 1\nnorm_groups = 4\n";
    let cases = [
        (
            "attn_resolutions = [5]\n",
            "",
            "model.attn_resolutions",
            "[8, 4]",
        ),
        ("", "adam_beta1 = 1.5\n", "train.adam_beta1", "[0, 1)"),
        ("", "adam_epsilon = -1.0\n", "train.adam_epsilon", "> 0"),
        (
            "",
            "ema_rampup_ratio = -1.0\n",
            "train.ema_rampup_ratio",
            "(0, 1]",
        ),
        ("", "steps = 0\n", "train.steps", "≥ 1"),
        ("", "lr = inf\n", "train.lr", "finite"),
    ];
    // 3 channels of grayscale digits (before: silently trained on 1 channel).
    let e = teacher::config::TeacherConfig::from_toml("[data]\nchannels = 3\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.channels") && e.contains("grayscale"),
        "{e}"
    );
    // σ_min = −1 is named as σ_min (before: the error named sigma_max).
    let e = teacher::config::TeacherConfig::from_toml("[diffusion.grid]\nsigma_min = -1.0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("diffusion.grid.sigma_min") && e.contains("> 0"),
        "{e}"
    );
    for (model, train, key, range) in cases {
        let text = format!("{base}{model}[train]\nbatch_size = 8\n{train}");
        let e = match teacher::config::TeacherConfig::from_toml(&text) {
            Err(e) => e.to_string(),
            // Shape checks need the data: they run when training starts.
            Ok(cfg) => train_teacher(&cfg, &opts(&temp_dir("nonsense"), 1, false))
                .unwrap_err()
                .to_string(),
        };
        assert!(e.contains(key) && e.contains(range), "{key}: {e}");
    }
    // More levels than 8×8 digits have: 2^(5−1) = 16 > 8.
    let deep = format!("{base}[train]\nbatch_size = 8\n").replace("[1, 2]", "[1, 2, 2, 2, 2]");
    let cfg = teacher::config::TeacherConfig::from_toml(&deep).unwrap();
    let e = train_teacher(&cfg, &opts(&temp_dir("deep"), 1, false))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.channel_mult") && e.contains("at most 4"),
        "{e}"
    );
}

#[test]
fn a_run_that_diverges_before_any_checkpoint_says_so() {
    // ln σ ~ N(1000, ·): the very first loss is not finite; no checkpoint exists to keep.
    let mut cfg = tiny_config();
    cfg.diffusion.sigma_dist.p_mean = 1000.0;
    let dir = temp_dir("nan-at-0");
    let e = train_teacher(&cfg, &opts(&dir, 3, false))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step 0") && e.contains("No checkpoint was written yet"),
        "{e}"
    );
    assert!(!dir.join("checkpoint.fsk").exists());
}

#[test]
fn a_time_budget_stops_at_the_logged_line_that_reaches_it_and_stays_stopped() {
    // A budget far below one step's time: the first metrics line (step 2, log_every = 2)
    // reaches it, so the run stops there with a checkpoint although `steps` is 20; resuming
    // finds the budget spent and trains nothing more.
    let mut cfg = tiny_config();
    cfg.train.log_every = 2;
    cfg.train.checkpoint_every = 10;
    cfg.train.steps = 20;
    cfg.train.time_budget_s = Some(1e-9);
    let out = temp_dir("budget");
    let mut o = opts(&out, 20, false);
    o.steps = None;
    let s = train_teacher(&cfg, &o).unwrap();
    assert_eq!(s.steps, 2);
    assert_eq!(Checkpoint::load(&out).unwrap().header.step, 2);
    o.resume = true;
    let again = train_teacher(&cfg, &o).unwrap();
    assert_eq!((again.resumed_from, again.steps), (2, 2));
    let logged = teacher::train::logged_seconds(&out, cfg.train.batch_size).unwrap();
    assert_eq!(logged.steps, 2);
    // Without the budget the same config trains its 20 steps (and a budget ≤ 0 is refused).
    cfg.train.time_budget_s = None;
    let full = temp_dir("budget-none");
    assert_eq!(
        train_teacher(&cfg, &opts(&full, 20, false)).unwrap().steps,
        20
    );
    cfg.train.time_budget_s = Some(0.0);
    let e = cfg.train.validate("train").unwrap_err().to_string();
    assert!(e.contains("time_budget_s"), "{e}");
    // `--steps 0` trains nothing and writes nothing: refused, saying what to give.
    let zero = temp_dir("steps-zero");
    cfg.train.time_budget_s = None;
    let e = train_teacher(&cfg, &opts(&zero, 0, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--steps 0"), "{e}");
    assert!(!zero.join(teacher::checkpoint::LATEST).exists());
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(full).ok();
    std::fs::remove_dir_all(zero).ok();
}
