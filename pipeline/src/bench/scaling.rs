//! `fewstep bench scaling`: data-parallel training throughput at 1, 2, … ranks on this machine.
//! Each rank count is a real `mpirun -np K fewstep teacher train` of the same config and global
//! batch, the machine's threads split evenly over the ranks (K ranks × T/K threads, bound to
//! nothing), and rank 0's summary gives the images per second and the all-reduce's share of
//! its time. See docs/distributed.md for the figure this makes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What `fewstep bench scaling` runs.
#[derive(Debug, Clone)]
pub struct ScalingSettings {
    /// Teacher config trained at every rank count (its `train.batch_size` is the global batch).
    pub config: PathBuf,
    /// Rank counts, e.g. [1, 2].
    pub ranks: Vec<usize>,
    /// Optimizer steps per run.
    pub steps: u64,
    /// Output folder: `scaling.json`, `scaling.md` and (removed after) the runs' folders.
    pub out: PathBuf,
    /// The MPI launcher (`mpirun`; Open MPI's or MPICH's).
    pub mpirun: PathBuf,
    /// The fewstep binary each rank runs (a `--features mpi` build).
    pub exe: PathBuf,
    /// Threads of this machine, split over the ranks.
    pub threads: usize,
}

/// The part of `fewstep teacher train --json` the bench reads.
#[derive(Debug, Clone, Deserialize)]
struct RunJson {
    steps: u64,
    images_per_sec: f64,
    wall_seconds: f64,
    all_reduce_seconds: f64,
    ranks: usize,
}

/// One rank count's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    pub ranks: usize,
    pub threads_per_rank: usize,
    pub steps: u64,
    /// Global images per second over the whole run (first step and final checkpoint included).
    pub img_per_s: f64,
    pub wall_s: f64,
    /// Seconds rank 0 spent in the gradient all-reduce (waiting for the others included).
    pub all_reduce_s: f64,
    /// all_reduce_s ÷ wall_s.
    pub all_reduce_share: f64,
    /// img_per_s ÷ the first rank count's img_per_s.
    pub speedup: f64,
}

/// Train once per rank count and collect the points; writes `scaling.json` and `scaling.md`.
pub fn measure(s: &ScalingSettings) -> Result<Vec<ScalingPoint>> {
    if s.ranks.is_empty() || s.ranks.contains(&0) {
        bail!("--ranks needs rank counts ≥ 1, e.g. `--ranks 1,2`");
    }
    std::fs::create_dir_all(&s.out)
        .with_context(|| format!("creating the bench folder `{}`", s.out.display()))?;
    let mut points: Vec<ScalingPoint> = Vec::new();
    for &k in &s.ranks {
        let r = run_ranks(s, k)?;
        let base = points.first().map_or(r.images_per_sec, |p| p.img_per_s);
        points.push(ScalingPoint {
            ranks: r.ranks.max(1),
            threads_per_rank: (s.threads / k).max(1),
            steps: r.steps,
            img_per_s: r.images_per_sec,
            wall_s: r.wall_seconds,
            all_reduce_s: r.all_reduce_seconds,
            all_reduce_share: r.all_reduce_seconds / r.wall_seconds.max(1e-9),
            speedup: r.images_per_sec / base,
        });
    }
    let json = serde_json::to_string_pretty(&points)?;
    teacher::checkpoint::write_atomic(&s.out.join("scaling.json"), json.as_bytes())?;
    let md = describe(s, &points);
    teacher::checkpoint::write_atomic(&s.out.join("scaling.md"), md.as_bytes())?;
    Ok(points)
}

/// `mpirun -np k fewstep teacher train …` into a fresh folder (removed after); rank 0's summary.
fn run_ranks(s: &ScalingSettings, k: usize) -> Result<RunJson> {
    let dir = s.out.join(format!("run-{}-ranks-{k}", std::process::id()));
    let threads = (s.threads / k).max(1).to_string();
    let mut cmd = Command::new(&s.mpirun);
    // No binding: Open MPI binds each of ≤ 2 ranks to one core, which would hold a lone rank's
    // threads on a single core.
    cmd.args(["-np", &k.to_string(), "--bind-to", "none"])
        .arg(&s.exe)
        .args(["--quiet", "teacher", "train", "--json", "--config"])
        .arg(&s.config)
        .arg("--out")
        .arg(&dir)
        .args(["--steps", &s.steps.to_string()])
        .env("RAYON_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads);
    let out = cmd.output().with_context(|| {
        format!(
            "starting `{}`: install an MPI launcher (Debian: openmpi-bin) or pass --mpirun PATH",
            s.mpirun.display()
        )
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        bail!(
            "{k} ranks: `mpirun` failed ({}):\n{}\n(as root, Open MPI needs OMPI_ALLOW_RUN_AS_ROOT=1 \
             OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; the binary needs `--features mpi`)",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let line =
        line.with_context(|| format!("{k} ranks: no JSON summary in the output:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("{k} ranks: reading the summary `{line}`"))
}

/// The points as a markdown table, with the command and the machine.
pub fn describe(s: &ScalingSettings, points: &[ScalingPoint]) -> String {
    let mut md = String::new();
    let ranks: Vec<String> = s.ranks.iter().map(|k| k.to_string()).collect();
    let _ = writeln!(
        md,
        "Data-parallel teacher training, `{}`, {} steps, the config's global batch, {} threads in all:\n",
        s.config.display(),
        s.steps,
        s.threads
    );
    let _ = writeln!(
        md,
        "| ranks × threads | img/s | speedup | all-reduce share of rank 0's time |\n|---|---|---|---|"
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {} × {} | {:.1} | {:.2}× | {:.1}% ({:.2} s of {:.1} s) |",
            p.ranks,
            p.threads_per_rank,
            p.img_per_s,
            p.speedup,
            100.0 * p.all_reduce_share,
            p.all_reduce_s,
            p.wall_s
        );
    }
    let _ = writeln!(
        md,
        "\nMade by `fewstep bench scaling --config {} --ranks {} --steps {}`.",
        s.config.display(),
        ranks.join(","),
        s.steps
    );
    md
}

/// The `mpirun` on PATH, if any.
pub fn find_mpirun() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("mpirun"))
        .find(|p| p.is_file())
}

/// The output folder's default: `target/bench-scaling` under the current directory.
pub fn default_out() -> PathBuf {
    Path::new("target").join("bench-scaling")
}
