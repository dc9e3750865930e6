//! The `fewstep` binary end to end: training and sampling on the embedded digits, and the
//! errors users see for bad configs and arguments.

use std::path::Path;
use std::process::Output;

use crate::fixtures::{fewstep, temp_dir};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TINY: &str = r#"
[model]
model_channels = 8
channel_mult = [1, 2]
num_blocks = 1
attn_resolutions = [4]
norm_groups = 4
[train]
steps = 4
batch_size = 8
checkpoint_every = 2
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn train_then_sample_writes_named_pngs_grid_and_nfe() {
    let dir = temp_dir("cli-e2e");
    let cfg = write(&dir, "tiny.toml", TINY);
    let run = dir.join("run").display().to_string();
    let o = fewstep(&[
        "--quiet", "teacher", "train", "--config", &cfg, "--out", &run,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(Path::new(&run).join("config.toml").exists());
    assert!(Path::new(&run).join("metrics.jsonl").exists());
    let out = dir.join("s").display().to_string();
    let o = fewstep(&[
        "sample",
        "--model",
        &run,
        "--n",
        "6",
        "--class",
        "3",
        "--steps",
        "3",
        "--guidance",
        "2",
        "--seed",
        "5",
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // 3 guided Euler steps cost 2 evaluations each.
    assert!(stdout.contains("NFE per image 6"), "{stdout}");
    for i in 0..6 {
        let p = Path::new(&out).join(format!("{i:05}_c3.png"));
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (8, 8), "native resolution");
        assert_eq!(
            img.color(),
            image::ColorType::L8,
            "grayscale for 1-channel data"
        );
    }
    assert!(Path::new(&out).join("grid.png").exists());
    // Same seed, other batch size → the same images.
    let out2 = dir.join("s2").display().to_string();
    let o = fewstep(&[
        "--quiet",
        "sample",
        "--model",
        &run,
        "--n",
        "6",
        "--class",
        "3",
        "--steps",
        "3",
        "--guidance",
        "2",
        "--seed",
        "5",
        "--batch",
        "2",
        "--out",
        &out2,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..6 {
        let name = format!("{i:05}_c3.png");
        assert_eq!(
            std::fs::read(Path::new(&out).join(&name)).unwrap(),
            std::fs::read(Path::new(&out2).join(&name)).unwrap()
        );
    }
    // --class all spreads classes evenly.
    let out3 = dir.join("s3").display().to_string();
    let o = fewstep(&[
        "--quiet", "sample", "--model", &run, "--n", "20", "--steps", "1", "--out", &out3,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for k in 0..10 {
        let count = std::fs::read_dir(&out3)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(&format!("_c{k}.png"))
            })
            .count();
        assert_eq!(count, 2, "class {k}");
    }
    // Resume through the CLI continues to the new step count.
    let o = fewstep(&[
        "--quiet", "teacher", "train", "--out", &run, "--resume", "--steps", "6",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("step 6 (from 4)"));
    // Absurd sampling arguments are refused, not a panic or an abort (before: `--steps 2^64−1`
    // died of "capacity overflow", `--batch 0` was taken).
    let bad = dir.join("bad").display().to_string();
    for (extra, said) in [
        (["--steps", "18446744073709551615"], "1 to 10000 steps"),
        (["--batch", "0"], "`--batch 0`"),
    ] {
        let steps: &[&str] = if extra[0] == "--steps" {
            &[]
        } else {
            &["--steps", "2"]
        };
        let args = ["sample", "--model", &run, "--out", &bad];
        let o = fewstep(&[&args[..], steps, &extra[..]].concat());
        let flag = extra[0];
        assert!(
            !o.status.success() && stderr(&o).contains(said),
            "{flag}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let o = fewstep(&[
        "eval", "latency", "--model", &run, "--steps", "2", "--batch", "0",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("`--batch 0`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_configs_name_the_key() {
    let dir = temp_dir("cli-bad-config");
    let run = dir.join("run").display().to_string();
    let unknown = write(&dir, "unknown.toml", "[train]\nstepz = 3\n");
    let o = fewstep(&["teacher", "train", "--config", &unknown, "--out", &run]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("stepz") && e.contains("unknown.toml"), "{e}");
    let impossible = write(&dir, "bad.toml", "[diffusion]\np_uncond = 1.5\n");
    let o = fewstep(&["teacher", "train", "--config", &impossible, "--out", &run]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("diffusion.p_uncond") && e.contains("[0, 1)"),
        "{e}"
    );
    let groups = write(
        &dir,
        "groups.toml",
        "[model]\nmodel_channels = 10\nnorm_groups = 4\n",
    );
    let e = stderr(&fewstep(&[
        "teacher", "train", "--config", &groups, "--out", &run,
    ]));
    assert!(e.contains("model.norm_groups"), "{e}");
    let missing = fewstep(&[
        "teacher",
        "train",
        "--config",
        "/nonexistent.toml",
        "--out",
        &run,
    ]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent.toml"));
    assert!(
        !Path::new(&run).exists(),
        "nothing is written for a rejected config"
    );
}

#[test]
fn bad_sample_arguments_are_clear() {
    let dir = temp_dir("cli-bad-sample");
    let o = fewstep(&[
        "sample",
        "--model",
        &dir.join("none").display().to_string(),
        "--out",
        "x",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let cfg = write(&dir, "tiny.toml", TINY);
    let run = dir.join("run").display().to_string();
    assert!(
        fewstep(&[
            "--quiet", "teacher", "train", "--config", &cfg, "--out", &run, "--steps", "1"
        ])
        .status
        .success()
    );
    let out = dir.join("o").display().to_string();
    let o = fewstep(&["sample", "--model", &run, "--class", "12", "--out", &out]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--class 12") && stderr(&o).contains("0..10"),
        "{}",
        stderr(&o)
    );
    let o = fewstep(&["sample", "--model", &run, "--steps", "0", "--out", &out]);
    assert!(stderr(&o).contains("--steps 0"), "{}", stderr(&o));
    let o = fewstep(&[
        "sample",
        "--model",
        &run,
        "--sampler",
        "rk45",
        "--out",
        &out,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("euler"),
        "clap lists the valid samplers: {}",
        stderr(&o)
    );
}

#[test]
fn shipped_configs_parse_and_digits_is_the_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let digits = teacher::config::TeacherConfig::from_file(&root.join("digits.toml")).unwrap();
    assert_eq!(
        digits,
        teacher::config::TeacherConfig::default(),
        "configs/digits.toml documents the defaults"
    );
    let mnist = teacher::config::TeacherConfig::from_file(&root.join("mnist.toml")).unwrap();
    assert_eq!(mnist.data.source, teacher::data::DataSource::Mnist);
}

/// The tiny config written to `dir/tiny.toml` and a teacher trained with it in `dir/run`.
fn tiny_run(dir: &Path) -> (String, String) {
    let cfg = write(dir, "tiny.toml", TINY);
    let run = dir.join("run").display().to_string();
    let o = fewstep(&[
        "--quiet", "teacher", "train", "--config", &cfg, "--out", &run,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (cfg, run)
}

#[test]
fn sample_folders_never_mix_two_runs_and_foreign_folders_are_left_alone() {
    let dir = temp_dir("cli-sample-folders");
    let (cfg, run) = tiny_run(&dir);
    // Before: 20 then 4 samples into one folder left 16 stale PNGs that `eval` scored.
    let out = dir.join("s");
    let o_s = out.display().to_string();
    for n in ["20", "4"] {
        let o = fewstep(&[
            "--quiet", "sample", "--model", &run, "--n", n, "--steps", "2", "--out", &o_s,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let set = eval::samples::load_samples(&out, 1).unwrap();
    assert_eq!(set.classes.len(), 4);
    // A file added by hand disagrees with samples.json: refused.
    std::fs::copy(out.join("00000_c0.png"), out.join("00009_c9.png")).unwrap();
    let Err(e) = eval::samples::load_samples(&out, 1) else {
        panic!("a folder that disagrees with its samples.json is refused")
    };
    let e = e.to_string();
    assert!(e.contains("samples.json") && e.contains("lists 4"), "{e}");
    // Folders fewstep did not write are refused, their files untouched.
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("config.toml"), "my notes").unwrap();
    let m = mine.display().to_string();
    let o = fewstep(&[
        "sample", "--model", &run, "--n", "2", "--steps", "2", "--out", &m,
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("did not write"),
        "{}",
        stderr(&o)
    );
    let o = fewstep(&["teacher", "train", "--config", &cfg, "--out", &m]);
    assert!(
        !o.status.success() && stderr(&o).contains("did not write"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("config.toml")).unwrap(),
        "my notes"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}

#[test]
fn a_billion_samples_stream_to_disk_and_a_killed_run_leaves_no_folder() {
    // Before: `--n 1000000000` reserved 256 GB for the outputs up front and aborted.
    let dir = temp_dir("cli-stream");
    let (_, run) = tiny_run(&dir);
    let out = dir.join("s");
    let o_s = out.display().to_string();
    let args = [
        "--quiet", "sample", "--model", &run, "--steps", "1", "--batch", "4",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fewstep"))
        .args([&args[..], &["--n", "1000000000", "--out", &o_s]].concat())
        .spawn()
        .unwrap();
    let tmp = dir.join(format!(".s.tmp-{}", child.id()));
    let written = || std::fs::read_dir(&tmp).map_or(0, |d| d.count());
    let t = std::time::Instant::now();
    while written() < 8 && t.elapsed().as_secs() < 60 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sampler exited early"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(written() >= 8, "samples are written batch by batch");
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed before its swap: no half folder at --out; the next run there cleans up.
    assert!(!out.exists());
    let o = fewstep(&[&args[..], &["--n", "3", "--out", &o_s]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!tmp.exists(), "the killed run's temp folder is removed");
    assert_eq!(
        eval::samples::load_samples(&out, 1)
            .map(|s| s.classes.len())
            .ok(),
        Some(3)
    );
}

/// `--dtype bf16` trains in bfloat16 (the loss a bf16 value), and weights saved in either
/// precision load and sample in the other (each float parameter takes its device's dtype).
#[test]
fn bf16_runs_and_checkpoints_cross_precisions() {
    let dir = temp_dir("cli-bf16");
    let cfg = write(&dir, "tiny.toml", TINY);
    let run = dir.join("run").display().to_string();
    let o = fewstep(&[
        "--quiet", "--dtype", "bf16", "teacher", "train", "--config", &cfg, "--out", &run, "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let loss = s["final_loss"].as_f64().unwrap() as f32;
    // bfloat16 keeps 8 significant bits: the loss converted back to bf16 is itself.
    let bf16 = f32::from_bits(loss.to_bits() & 0xffff_0000);
    assert_eq!(loss, bf16, "loss {loss} is not a bf16 value");
    for p in ["fp32", "bf16"] {
        let out = dir.join(format!("s-{p}")).display().to_string();
        let o = fewstep(&[
            "--quiet", "--dtype", p, "sample", "--model", &run, "--n", "4", "--steps", "2",
            "--out", &out,
        ]);
        assert!(o.status.success(), "{p}: {}", stderr(&o));
        assert!(dir.join(format!("s-{p}/grid.png")).is_file());
    }
    let o = fewstep(&[
        "--quiet", "teacher", "train", "--out", &run, "--resume", "--steps", "6",
    ]);
    assert!(
        o.status.success(),
        "fp32 resume of a bf16 run: {}",
        stderr(&o)
    );
    // An fp32 feature network scores bf16 samples under bf16 (the FID the GPU script compares).
    let feat = dir.join("feat").display().to_string();
    let o = fewstep(&[
        "--quiet",
        "eval",
        "train-features",
        "--steps",
        "3",
        "--out",
        &feat,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = fewstep(&[
        "--quiet",
        "--dtype",
        "bf16",
        "eval",
        "fid",
        "--model",
        &run,
        "--steps",
        "2",
        "--n",
        "8",
        "--reference",
        "digits-test",
        "--features",
        &feat,
        "--json",
    ]);
    assert!(o.status.success(), "bf16 FID: {}", stderr(&o));
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(f["fid"].as_f64().is_some_and(f64::is_finite), "{f}");
}
