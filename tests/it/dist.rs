//! Data-parallel training under `mpirun -np 2` (`--features mpi`, Debian's OpenMPI): the ranks
//! train what one process trains, hold the same weights, stop together when one dies or hangs,
//! leave a valid checkpoint, and resume exactly. Without the feature, a launched fewstep says
//! how to rebuild. Tests that need `mpirun` skip, saying why, where it is not installed.

#[cfg(feature = "mpi")]
mod launched {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use crate::fixtures::{err, fewstep, ok, temp_dir};

    /// The tiny teacher of the other tests, logging every step, over a global batch of 8.
    const TEACHER: &str = "[model]\nmodel_channels = 8\nchannel_mult = [1, 2]\nnum_blocks = 1\nnorm_groups = 4\n\
    [train]\nsteps = 6\nbatch_size = 8\nlr = 2e-3\nwarmup_steps = 2\ncheckpoint_every = 2\nlog_every = 1\n\
    ema_halflife_images = 50.0\n";

    /// `mpirun` on PATH (as `bench scaling` finds it), or None (the caller skips, saying why).
    fn mpirun() -> Option<PathBuf> {
        let found = pipeline::bench::scaling::find_mpirun();
        if found.is_none() {
            eprintln!(
                "skipping: no `mpirun` on PATH (Debian: apt install openmpi-bin libopenmpi-dev)"
            );
        }
        found
    }

    /// `mpirun -np N fewstep ARGS…`, with Open MPI's root permission (CI runs as root), one thread
    /// per rank, and shared memory without the cross-memory-attach copy containers forbid.
    fn launch(mpirun: &Path, np: usize, args: &[&str]) -> Command {
        let mut c = Command::new(mpirun);
        c.args([
            "-np",
            &np.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .arg(env!("CARGO_BIN_EXE_fewstep"))
        .arg("--quiet")
        .args(args);
        mpi_env(&mut c);
        c
    }

    fn mpi_env(c: &mut Command) {
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
            .env("RAYON_NUM_THREADS", "1")
            .env("NO_COLOR", "1");
    }

    fn run(mut c: Command) -> Output {
        c.output().expect("mpirun starts")
    }

    /// The per-step losses of a run's `metrics.jsonl`.
    fn losses(run: &Path) -> Vec<f64> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
            .collect()
    }

    /// The model's weights (every float parameter, flattened) in a run's checkpoint.
    fn weights(run: &Path, blob: &str) -> Vec<f32> {
        let ck = teacher::checkpoint::Checkpoint::load(run).unwrap();
        let m = ck
            .load_into(blob, ck.header.spec.init(&crate::fixtures::device()))
            .unwrap();
        crate::fixtures::param_values(&m).concat()
    }

    fn l2(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Train the tiny teacher with `config` into `out` for `steps` (`np` ranks; 0: no launcher).
    fn train(
        mpirun: &Path,
        np: usize,
        config: &Path,
        out: &Path,
        steps: u64,
        resume: bool,
    ) -> Output {
        let (c, o, s) = (
            config.display().to_string(),
            out.display().to_string(),
            steps.to_string(),
        );
        let mut args = vec![
            "teacher", "train", "--config", &c, "--out", &o, "--steps", &s,
        ];
        if resume {
            args.push("--resume");
        }
        match np {
            0 => fewstep(&[&["--quiet"], &args[..]].concat()),
            n => run(launch(mpirun, n, &args)),
        }
    }

    fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn two_ranks_with_half_batches_train_what_one_process_trains() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-equal");
        let cfg = write_config(&dir, "t.toml", TEACHER);
        let (one, two) = (dir.join("one"), dir.join("two"));
        ok(train(&mpi, 0, &cfg, &one, 6, false));
        let said = ok(train(&mpi, 2, &cfg, &two, 6, false));
        // Rank 0 alone prints; the run checked that both ranks end with the same weights.
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(
            said.contains("on 2 ranks (identical weights on every rank"),
            "{said}"
        );
        // Tolerance. Each rank sums its 4 per-example losses and the all-reduce adds the two sums,
        // where one process averages 8: the same terms in another order, so each loss and gradient
        // agrees to a few f32 ulps (relative ~1e-7·log₂8). The losses logged at every step must
        // agree to 1e-5 relative — far below what other examples, σ or noise per rank (a wrong
        // shard), a missing 1/global or a loss not reduced would give (relative ≥ 1e-2 here).
        let (l1, l2s) = (losses(&one), losses(&two));
        assert_eq!(l1.len(), 6);
        assert_eq!(l1.len(), l2s.len());
        for (a, b) in l1.iter().zip(&l2s) {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "losses {l1:?} vs {l2s:?}");
        }
        // Weights. Adam divides by √v: a parameter whose true gradient is ~0 (round-off only) can
        // step ±lr either way, so no per-weight bound below Σ lr holds. The distance between the two
        // runs' weights must instead be tiny against the distance each run moved from its start
        // (same init): ≤ 1e-2 of it, where a wrong shard or update moves ~1× of it.
        let init = dir.join("init");
        ok(train(&mpi, 0, &cfg, &init, 1, false));
        for blob in ["model", "ema"] {
            let (a, b, w0) = (
                weights(&one, blob),
                weights(&two, blob),
                weights(&init, "model"),
            );
            let (apart, moved) = (l2(&a, &b), l2(&a, &w0));
            assert!(
                moved > 0.0 && apart <= 1e-2 * moved,
                "{blob}: {apart} apart, moved {moved}"
            );
        }
    }

    #[test]
    fn resume_under_mpi_continues_exactly() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-resume");
        let cfg = write_config(&dir, "t.toml", TEACHER);
        let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
        ok(train(&mpi, 2, &cfg, &straight, 6, false));
        ok(train(&mpi, 2, &cfg, &resumed, 4, false));
        let said = ok(train(&mpi, 2, &cfg, &resumed, 6, true));
        assert!(said.contains("to step 6 (from 4)"), "{said}");
        // Same ranks, same reduction order, same batches: bit-identical weights and EMA.
        for blob in ["model", "ema"] {
            assert!(
                weights(&straight, blob) == weights(&resumed, blob),
                "{blob} differs"
            );
        }
        assert_eq!(losses(&straight), losses(&resumed));
    }

    #[test]
    fn ranks_that_start_from_different_weights_are_refused() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-disagree");
        let a = write_config(&dir, "a.toml", TEACHER);
        let b = write_config(&dir, "b.toml", &format!("{TEACHER}seed = 7\n"));
        // MPMD: rank 0 and rank 1 run other configs (other seeds, so other initial weights).
        let arg = |cfg: &Path, out: &str| {
            let (c, o) = (
                cfg.display().to_string(),
                dir.join(out).display().to_string(),
            );
            let mut v = vec![
                "-np",
                "1",
                env!("CARGO_BIN_EXE_fewstep"),
                "--quiet",
                "teacher",
            ];
            v.extend(["train", "--steps", "2", "--config"]);
            let mut v: Vec<String> = v.into_iter().map(String::from).collect();
            v.extend([c, "--out".into(), o]);
            v
        };
        let mut c = Command::new(&mpi);
        c.args(["--oversubscribe", "--bind-to", "none"])
            .args(arg(&a, "a"))
            .arg(":")
            .args(arg(&b, "b"));
        mpi_env(&mut c);
        let e = err(run(c));
        assert!(
            e.contains("ranks 1 hold another weights at the start than rank 0"),
            "{e}"
        );
        assert!(!dir.join("a/checkpoint.fsk").exists() && !dir.join("b/checkpoint.fsk").exists());
    }

    /// The pid of rank `rank` of the run writing into `out` (a process whose command line names
    /// `out` and whose environment says its rank).
    fn rank_pid(out: &Path, rank: usize) -> Option<u32> {
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        let out = out.display().to_string();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let has = |hay: &[u8], s: &str| hay.split(|&b| b == 0).any(|w| w == s.as_bytes());
            (has(&cmd, &out) && has(&env, &want) && !has(&cmd, "mpirun")).then_some(pid)
        })
    }

    /// Start a long 2-rank run into `out`, wait for its first checkpoint, send `signal` to rank 1;
    /// returns the run's output and how long it took to end after the signal.
    fn signal_rank_1(mpi: &Path, cfg: &Path, out: &Path, signal: &str) -> (Output, f64) {
        let (c, o) = (cfg.display().to_string(), out.display().to_string());
        let args = [
            "teacher", "train", "--config", &c, "--out", &o, "--steps", "100000",
        ];
        let mut cmd = launch(mpi, 2, &args);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("mpirun starts");
        let started = std::time::Instant::now();
        while !out.join("checkpoint.fsk").exists() {
            assert!(
                started.elapsed().as_secs() < 120,
                "no checkpoint within 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let pid = rank_pid(out, 1).expect("rank 1 is running");
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let at = std::time::Instant::now();
        let output = child.wait_with_output().unwrap();
        (output, at.elapsed().as_secs_f64())
    }

    #[test]
    fn a_dead_or_hung_rank_stops_the_run_and_the_checkpoint_resumes() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-faults");
        let text = TEACHER.replace("steps = 6\n", "steps = 6\nall_reduce_timeout_s = 3.0\n");
        let cfg = write_config(&dir, "t.toml", &text);
        // A hung rank (stopped): rank 0 waits 3 s in the all-reduce, says why and ends every rank.
        let hung = dir.join("hung");
        let (o, secs) = signal_rank_1(&mpi, &cfg, &hung, "-STOP");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{e}");
        assert!(
            e.contains("did not join the gradient all-reduce within 3 s"),
            "{e}"
        );
        assert!(
            e.contains("all_reduce_timeout_s") && e.contains("--resume"),
            "{e}"
        );
        assert!(secs < 60.0, "took {secs} s to stop");
        // A dead rank (killed): the launcher ends the others at once.
        let dead = dir.join("dead");
        let (o, secs) = signal_rank_1(&mpi, &cfg, &dead, "-KILL");
        assert!(!o.status.success());
        assert!(secs < 60.0, "took {secs} s to stop");
        // Either way the last checkpoint is whole, and a resume under MPI continues it (the dead
        // run's folder lock is stale: its process is gone).
        for run in [&hung, &dead] {
            let ck = teacher::checkpoint::Checkpoint::load(run).expect("the checkpoint is valid");
            let from = ck.header.step;
            assert!(from >= 2 && from.is_multiple_of(2), "step {from}");
            let said = ok(train(&mpi, 2, &cfg, run, from + 2, true));
            assert!(
                said.contains(&format!("to step {} (from {from})", from + 2)),
                "{said}"
            );
        }
    }

    #[test]
    fn students_and_feature_networks_train_data_parallel() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-students");
        let p = |n: &str| dir.join(n).display().to_string();
        let cfg = write_config(&dir, "t.toml", TEACHER);
        ok(train(&mpi, 0, &cfg, &dir.join("teacher"), 3, false));
        let s = crate::student::TINY_STUDENTS
            .replace("batch_size = 8\n", "batch_size = 8\nlog_every = 1\n");
        std::fs::write(p("s.toml"), s).unwrap();
        let student = |np: usize, args: &[&str]| {
            let s = p("s.toml");
            let a = [&["student"], args, &["--config", &s]].concat();
            match np {
                0 => ok(fewstep(&[&["--quiet"], &a[..]].concat())),
                n => ok(run(launch(&mpi, n, &a))),
            }
        };
        // Each distillation: one process and two ranks log the same losses (see the teacher test).
        let stages: [(&str, &[&str]); 3] = [
            ("guided", &["guided", "--teacher"]),
            ("consistency", &["consistency", "--teacher"]),
            ("progressive", &["progressive", "--to-steps", "4", "--from"]),
        ];
        for (name, args) in stages {
            let source = match name {
                "guided" => p("teacher"),
                _ => p("guided-1"),
            };
            for (np, out) in [(0, format!("{name}-1")), (2, format!("{name}-2"))] {
                student(np, &[args, &[&source, "--out", &p(&out)]].concat());
            }
            let logs = |out: String| match name {
                "progressive" => losses(&Path::new(&out).join("round-004")),
                _ => losses(Path::new(&out)),
            };
            let (a, b) = (logs(p(&format!("{name}-1"))), logs(p(&format!("{name}-2"))));
            assert!(
                !a.is_empty() && a.len() == b.len(),
                "{name}: {a:?} vs {b:?}"
            );
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-5 * x.abs(), "{name}: {a:?} vs {b:?}");
            }
        }
        // The feature network: rank 0 alone writes it (LeNet's dropout masks differ per rank).
        let f = [
            "eval",
            "train-features",
            "--steps",
            "4",
            "--out",
            &p("features"),
        ];
        let said = ok(run(launch(&mpi, 2, &f)));
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(
            dir.join("features")
                .join(eval::classifier::META_FILE)
                .exists()
        );
    }

    #[test]
    fn only_training_runs_under_a_launcher() {
        let Some(mpi) = mpirun() else { return };
        let dir = temp_dir("dist-refuse");
        let o = dir.display().to_string();
        let e = err(run(launch(
            &mpi,
            2,
            &["sample", "--model", &o, "--out", &o],
        )));
        assert!(e.contains("only training runs data parallel"), "{e}");
    }
}

/// A fewstep built without MPI, started as one of several ranks, says how to get MPI.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_a_launch_and_says_how_to_rebuild() {
    use crate::fixtures::{err, temp_dir};
    use std::process::Command;
    let dir = temp_dir("dist-nompi");
    let out = dir.join("t").display().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_fewstep"))
        .args(["--quiet", "teacher", "train", "--steps", "1", "--out", &out])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let e = err(o);
    assert!(
        e.contains("--features mpi") && e.contains("OMPI_COMM_WORLD_SIZE=2"),
        "{e}"
    );
    assert!(!dir.join("t").exists());
}

#[test]
fn shards_tile_every_global_batch() {
    use teacher::dist::Shard;
    for global in 1..40 {
        for size in 1..=global.min(9) {
            let parts: Vec<Shard> = (0..size).map(|r| Shard::of(global, r, size)).collect();
            let mut next = 0;
            for p in &parts {
                assert_eq!((p.start, p.global), (next, global));
                assert!(p.len == global / size || p.len == global / size + 1);
                next += p.len;
            }
            assert_eq!(next, global, "{global} over {size}");
        }
    }
}
