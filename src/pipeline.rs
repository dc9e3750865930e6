//! `fewstep pipeline`: the user's one job — teacher → guided → progressive → consistency →
//! features → report → ONNX export + parity check — as one resumable command.
//!
//! Each stage's identity is a hash of its own config section, the data path and the hashes of
//! the stages it reads; `RUN/pipeline.json` records it when the stage finishes. A re-run skips
//! stages whose hash is recorded, resumes an interrupted training stage from its checkpoint, and
//! refuses to mix a changed config into a run folder made with another.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use student::config::{ConsistencyConfig, GuidedConfig, ProgressiveConfig, StudentConfig};
use teacher::config::TeacherConfig;
use teacher::train::TrainOptions;

use crate::cli::{PipelineArgs, ReportArgs};

/// `pipeline.toml`: one section per stage. A section left out takes the pipeline's quick
/// digits default (configs/pipeline.toml, ≤ 15 minutes on 2 CPU cores for the whole chain); a
/// section given takes each missing key from that stage's own defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The teacher (`[teacher.data]`, `[teacher.model]`, `[teacher.diffusion]`, `[teacher.train]`).
    #[serde(default = "quick::teacher")]
    pub teacher: TeacherConfig,
    #[serde(default = "quick::guided")]
    pub guided: GuidedConfig,
    #[serde(default = "quick::progressive")]
    pub progressive: ProgressiveConfig,
    #[serde(default = "quick::consistency")]
    pub consistency: ConsistencyConfig,
    #[serde(default = "quick::features")]
    pub features: FeaturesStage,
    #[serde(default)]
    pub eval: EvalStage,
    #[serde(default)]
    pub export: ExportStage,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            teacher: quick::teacher(),
            guided: quick::guided(),
            progressive: quick::progressive(),
            consistency: quick::consistency(),
            features: quick::features(),
            eval: EvalStage::default(),
            export: ExportStage::default(),
        }
    }
}

/// The quick digits chain `fewstep pipeline` runs with no config: a 16-channel U-Net (8×8
/// digits need no more), and step counts that finish the whole chain in ≤ 15 minutes on 2 cores.
mod quick {
    use super::*;

    pub fn teacher() -> TeacherConfig {
        let mut t = TeacherConfig::default();
        t.model.model_channels = 16;
        t.model.num_blocks = 1;
        t
    }

    fn short(t: &mut teacher::config::TrainConfig, steps: u64) {
        t.steps = steps;
        t.lr = 5e-4;
    }

    pub fn guided() -> GuidedConfig {
        let mut g = GuidedConfig::default();
        short(&mut g.train, 400);
        g
    }

    pub fn progressive() -> ProgressiveConfig {
        let mut p = ProgressiveConfig::default();
        p.start_steps = 16;
        short(&mut p.train, 150);
        p
    }

    pub fn consistency() -> ConsistencyConfig {
        let mut c = ConsistencyConfig::default();
        short(&mut c.train, 400);
        c
    }

    pub fn features() -> FeaturesStage {
        FeaturesStage { steps: 1000 }
    }
}

/// The feature network trained on the teacher's dataset (LeNet for images, the 3D-conv clip
/// network for clips).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesStage {
    /// Optimizer steps of the classifier.
    pub steps: u64,
}

impl Default for FeaturesStage {
    fn default() -> Self {
        Self { steps: 3000 }
    }
}

/// The comparison report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalStage {
    /// Samples per model and step count.
    pub n: usize,
    /// Guidance weight of every sample set.
    pub guidance: f64,
    pub seed: u64,
    /// Teacher step counts (guided Euler, 2 NFE per step).
    pub teacher_steps: Vec<usize>,
    /// Student step counts (progressive rounds, consistency, guided).
    pub student_steps: Vec<usize>,
    /// Guidance weights of the teacher's FID-vs-w sweep (empty: none).
    pub sweep_guidance: Vec<f64>,
    pub sweep_steps: usize,
    /// Held-out real images for the real-vs-real floor (default: the test split at n).
    pub real: Option<String>,
}

impl Default for EvalStage {
    fn default() -> Self {
        Self {
            n: 500,
            guidance: 2.0,
            seed: 0,
            teacher_steps: vec![4, 50],
            student_steps: vec![1, 2, 4],
            sweep_guidance: vec![],
            sweep_steps: 10,
            real: None,
        }
    }
}

/// Serving artefacts of the shipped student (the 4-step progressive round, or the step count
/// given): ONNX + parity check, a TensorRT engine where a TensorRT library is found (else the
/// command that builds it on the serving host), and a Triton model repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportStage {
    /// Step count of the progressive round to ship.
    pub steps: usize,
    /// Batch size of the parity check.
    pub check_batch: usize,
    /// TensorRT optimisation profile over the batch axis, MIN:OPT:MAX.
    pub engine_batch: String,
    /// Guidance weight the unrolled sampler is checked at (its w stays an input).
    pub guidance: f64,
}

impl Default for ExportStage {
    fn default() -> Self {
        Self {
            steps: 4,
            check_batch: 8,
            engine_batch: "1:8:64".into(),
            guidance: 2.0,
        }
    }
}

impl PipelineConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline config `{}`", path.display()))?;
        let cfg: Self = toml::from_str(&text).with_context(|| {
            format!(
                "pipeline config `{}`: sections are [teacher.*], [guided], [progressive], [consistency], [features], [eval], [export]",
                path.display()
            )
        })?;
        cfg.validate()
            .with_context(|| format!("pipeline config `{}`", path.display()))?;
        Ok(cfg)
    }

    pub fn students(&self) -> StudentConfig {
        StudentConfig {
            guided: self.guided.clone(),
            progressive: self.progressive.clone(),
            consistency: self.consistency.clone(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.teacher.validate()?;
        self.students().validate()?;
        let start = self.progressive.start_steps;
        if !start.is_power_of_two()
            || self.export.steps > start
            || !self.export.steps.is_power_of_two()
        {
            bail!(
                "export.steps = {} must be a power of two ≤ progressive.start_steps ({start}): it names the progressive round to ship",
                self.export.steps
            );
        }
        self.export
            .engine_batch
            .parse::<export::engine::BatchProfile>()
            .map_err(|e| anyhow::anyhow!("export.engine_batch: {e}"))?;
        if self.eval.n == 0 {
            bail!("eval.n = 0: the report needs at least one sample per model");
        }
        Ok(())
    }
}

/// What `RUN/pipeline.json` remembers of each finished stage.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct State {
    stages: Vec<StageRecord>,
    /// The teacher the students were distilled from (`RUN/teacher` or `--from-teacher`).
    #[serde(default)]
    teacher: Option<PathBuf>,
    /// `--data DIR` of the run.
    #[serde(default)]
    data: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRecord {
    name: String,
    hash: String,
    seconds: f64,
}

const STATE_FILE: &str = "pipeline.json";
/// The effective config of a run, written when it starts.
const CONFIG_FILE: &str = "pipeline.toml";

/// What a pipeline run folder holds, for commands that work on one (`bench suite`).
pub struct PipelineRun {
    pub config: PipelineConfig,
    pub teacher: PathBuf,
    pub data: Option<PathBuf>,
}

impl PipelineRun {
    pub fn open(run: &Path) -> Result<Self> {
        if !run.join(STATE_FILE).is_file() {
            bail!(
                "`{}` is not a pipeline run (no {STATE_FILE}): make one with `fewstep pipeline --out {}`",
                run.display(),
                run.display()
            );
        }
        let state = State::load(run)?;
        let cfg_file = run.join(CONFIG_FILE);
        let config = if cfg_file.is_file() {
            PipelineConfig::from_file(&cfg_file)?
        } else {
            PipelineConfig::default()
        };
        Ok(Self {
            config,
            teacher: state.teacher.unwrap_or_else(|| run.join("teacher")),
            data: state.data,
        })
    }
}

impl State {
    fn load(run: &Path) -> Result<Self> {
        let p = run.join(STATE_FILE);
        if !p.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&p)?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "`{}` is damaged: delete it to re-check every stage (finished checkpoints are kept)",
                p.display()
            )
        })
    }

    fn save(&self, run: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("plain data");
        teacher::checkpoint::write_atomic(&run.join(STATE_FILE), text.as_bytes())?;
        Ok(())
    }

    fn done(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|r| r.name == name)
    }
}

fn hash_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data")
}

/// What a training stage says: its steps and loss, or that its checkpoint was already finished.
fn trained(s: &teacher::train::TrainSummary) -> String {
    if s.resumed_from == s.steps {
        format!("kept (already at step {})", s.steps)
    } else {
        format!(
            "step {} (resumed from {}), loss {:.5}",
            s.steps, s.resumed_from, s.final_loss
        )
    }
}

/// One stage: its name, output folder, hash, and what it does.
struct Stage<'a> {
    name: &'static str,
    hash: String,
    run: Box<dyn FnOnce() -> Result<String> + 'a>,
}

pub fn pipeline(args: PipelineArgs, device: Device, quiet: bool) -> Result<()> {
    let cfg = match &args.config {
        Some(p) => PipelineConfig::from_file(p)?,
        None => PipelineConfig::default(),
    };
    let run = args.out.clone();
    if !args.dry_run {
        std::fs::create_dir_all(&run)
            .with_context(|| format!("cannot create `{}`", run.display()))?;
    }
    let mut state = State::load(&run)?;
    let data = args.data.clone();
    if !args.dry_run {
        let text = toml::to_string(&cfg).context("serializing the pipeline config")?;
        teacher::checkpoint::write_atomic(&run.join(CONFIG_FILE), text.as_bytes())?;
    }
    let data_key = data
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let dir = |n: &str| run.join(n);
    let students = cfg.students();
    let opts = |out: PathBuf| TrainOptions {
        out: out.clone(),
        data: data.clone(),
        resume: out.join(teacher::checkpoint::LATEST).exists(),
        steps: None,
        quiet,
        device: device.clone(),
    };

    // Stage hashes chain: a change upstream re-runs everything below it.
    let (teacher_dir, h_teacher) = match &args.from_teacher {
        Some(t) => {
            let ck = teacher::checkpoint::Checkpoint::load(t)?;
            (
                t.clone(),
                hash_of(&[
                    "from-teacher",
                    &ck.header.config,
                    &ck.header.step.to_string(),
                ]),
            )
        }
        None => (
            dir("teacher"),
            hash_of(&["teacher", &json(&cfg.teacher), &data_key]),
        ),
    };
    let teacher_batch = match &args.from_teacher {
        Some(t) => teacher::checkpoint::Checkpoint::load(t)
            .ok()
            .and_then(|ck| toml::from_str::<TeacherConfig>(&ck.header.config).ok())
            .map_or(cfg.teacher.train.batch_size, |c| c.train.batch_size),
        None => cfg.teacher.train.batch_size,
    };
    let h_guided = hash_of(&["guided", &json(&cfg.guided), &h_teacher]);
    let h_prog = hash_of(&["progressive", &json(&cfg.progressive), &h_guided]);
    let h_cons = hash_of(&["consistency", &json(&cfg.consistency), &h_guided]);
    let h_feat = hash_of(&[
        "features",
        &json(&cfg.features),
        &json(&cfg.teacher.data),
        &data_key,
    ]);
    let h_export = hash_of(&["export", &json(&cfg.export), &h_prog]);
    let h_report = hash_of(&[
        "report",
        &json(&cfg.eval),
        &h_teacher,
        &h_guided,
        &h_prog,
        &h_cons,
        &h_feat,
        &h_export,
    ]);
    if !args.dry_run {
        state.teacher = Some(teacher_dir.clone());
        state.data = data.clone();
        state.save(&run)?;
    }

    let dataset = cfg.teacher.data.name();
    let mut stages: Vec<Stage> = Vec::new();
    if args.from_teacher.is_none() {
        let (cfg_t, o) = (&cfg.teacher, opts(dir("teacher")));
        stages.push(Stage {
            name: "teacher",
            hash: h_teacher.clone(),
            run: Box::new(move || {
                let s = teacher::train::train_teacher(cfg_t, &o)?;
                Ok(trained(&s))
            }),
        });
    }
    {
        let (t, o, c) = (teacher_dir.clone(), opts(dir("guided")), &students);
        stages.push(Stage {
            name: "guided",
            hash: h_guided.clone(),
            run: Box::new(move || {
                let s = student::guided::run_guided(&t, c, &o)?;
                Ok(trained(&s))
            }),
        });
    }
    {
        let (g, mut o, c) = (dir("guided"), opts(dir("progressive")), &students);
        o.resume = true; // finished rounds are skipped, an interrupted one resumes
        stages.push(Stage {
            name: "progressive",
            hash: h_prog.clone(),
            run: Box::new(move || {
                let rounds = student::progressive::run_progressive(&g, 1, c, &o)?;
                Ok(rounds
                    .iter()
                    .map(|r| format!("{}{}", r.steps, if r.skipped { " (kept)" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(" → "))
            }),
        });
    }
    {
        let (g, o, c) = (dir("guided"), opts(dir("consistency")), &students);
        stages.push(Stage {
            name: "consistency",
            hash: h_cons.clone(),
            run: Box::new(move || {
                let s = student::consistency::run_consistency(&g, c, &o)?;
                Ok(trained(&s))
            }),
        });
    }
    {
        let (out, d, dev, data_cfg) = (
            dir("features"),
            data.clone(),
            device.clone(),
            cfg.teacher.data.clone(),
        );
        let (steps, ds) = (cfg.features.steps, dataset.clone());
        stages.push(Stage {
            name: "features",
            hash: h_feat.clone(),
            run: Box::new(move || {
                use teacher::data::Split;
                let train = data_cfg.load(d.as_deref(), Split::Train)?;
                let test = data_cfg.load(d.as_deref(), Split::Test)?;
                let mut c = eval::classifier::ClassifierConfig::for_shape(train.shape);
                c.steps = steps;
                // A network trained to this very config (a run cut after it finished) is kept.
                if let Ok((_, m)) = eval::classifier::load_classifier(&out, &dev)
                    && m.config == c
                    && m.dataset == ds
                {
                    return Ok(format!(
                        "kept, feature network test accuracy {:.2}%",
                        100.0 * m.test_accuracy
                    ));
                }
                let m =
                    eval::classifier::train_classifier(&c, &ds, &train, &test, &out, quiet, &dev)?;
                Ok(format!(
                    "feature network test accuracy {:.2}%{}",
                    100.0 * m.test_accuracy,
                    m.order_accuracy
                        .map(|o| format!(", frame-order accuracy {:.2}%", 100.0 * o))
                        .unwrap_or_default()
                ))
            }),
        });
    }
    {
        let (prog, out) = (dir("progressive"), dir("export"));
        let (dev, ex) = (device.clone(), cfg.export.clone());
        stages.push(Stage {
            name: "export",
            hash: h_export.clone(),
            run: Box::new(move || crate::serving::ship(&prog, &out, &ex, &dev)),
        });
    }
    {
        let e = cfg.eval.clone();
        // Clips have no named split: the reference is the teacher's own data config's.
        let (reference, real) = if cfg.teacher.data.is_clips() {
            let t = teacher_dir.display();
            (format!("run:{t}:test"), format!("run:{t}:train:{}", e.n))
        } else {
            (
                format!("{dataset}-test"),
                format!("{dataset}-train:{}", e.n),
            )
        };
        let args_r = ReportArgs {
            runs: vec![
                teacher_dir.clone(),
                dir("guided"),
                dir("progressive"),
                dir("consistency"),
            ],
            features: dir("features"),
            real: Some(e.real.clone().unwrap_or(real)),
            reference,
            out: dir("report"),
            data: data.clone(),
            n: e.n,
            guidance: e.guidance,
            seed: e.seed,
            batch: 250,
            teacher_steps: e.teacher_steps.clone(),
            student_steps: e.student_steps.clone(),
            sweep_guidance: e.sweep_guidance.clone(),
            sweep_steps: e.sweep_steps,
            title: format!("fewstep pipeline report ({dataset})"),
        };
        let dev = device.clone();
        let (run_dir, t_dir) = (run.clone(), teacher_dir.clone());
        let batches = [
            ("teacher", teacher_batch),
            ("guided", cfg.guided.train.batch_size),
            ("progressive", cfg.progressive.train.batch_size),
            ("consistency", cfg.consistency.train.batch_size),
        ];
        stages.push(Stage {
            name: "report",
            hash: h_report.clone(),
            run: Box::new(move || {
                let recorded = State::load(&run_dir)?;
                let seconds = |name: &str| recorded.done(name).map(|r| r.seconds);
                let sections = vec![
                    crate::serving::section(&run_dir.join("export"))?,
                    training_cost(&run_dir, &t_dir, &batches, seconds),
                ];
                crate::report::report_with(args_r, dev, quiet, sections)?;
                Ok("report.md, report.html, results.json".into())
            }),
        });
    }

    let n = stages.len();
    let started = Instant::now();
    for (k, stage) in stages.into_iter().enumerate() {
        let say = |msg: String| {
            if !quiet {
                eprintln!("[{}/{n}] {msg}", k + 1);
            }
        };
        match state.done(stage.name) {
            Some(r) if r.hash == stage.hash => {
                say(format!(
                    "{}: done ({:.0} s), skipped",
                    stage.name, r.seconds
                ));
                println!("{}: skipped (done)", stage.name);
                continue;
            }
            Some(r) => bail!(
                "stage `{}` in `{}` was made with another config (hash {} ≠ {}): use a new --out, or delete `{}` to redo it",
                stage.name,
                run.display(),
                r.hash,
                stage.hash,
                run.join(stage.name).display()
            ),
            None => {}
        }
        if args.dry_run {
            let started = run.join(stage.name).exists();
            println!(
                "{}: would {} (hash {})",
                stage.name,
                if started { "resume" } else { "run" },
                stage.hash
            );
            continue;
        }
        say(format!("{} …", stage.name));
        let t = Instant::now();
        let what = (stage.run)().with_context(|| format!("pipeline stage `{}`", stage.name))?;
        let seconds = t.elapsed().as_secs_f64();
        println!("{}: {what} ({seconds:.1} s)", stage.name);
        state.stages.push(StageRecord {
            name: stage.name.to_string(),
            hash: stage.hash,
            seconds,
        });
        state.save(&run)?;
    }
    if args.dry_run {
        return Ok(());
    }
    println!(
        "pipeline done in {:.1} s; report: {}",
        started.elapsed().as_secs_f64(),
        dir("report").join("report.md").display()
    );
    Ok(())
}

/// The report's "Training cost" section: each stage's training time as its own `metrics.jsonl`
/// logs it (whatever process and threads ran it, across resumes), and this pipeline's wall
/// clock for the stages it ran itself.
fn training_cost(
    run: &Path,
    teacher_dir: &Path,
    batches: &[(&str, usize)],
    pipeline_seconds: impl Fn(&str) -> Option<f64>,
) -> eval::report::Section {
    use std::fmt::Write as _;
    let logged = |name: &str, batch: usize| -> Option<teacher::train::LoggedTime> {
        if name == "teacher" {
            return teacher::train::logged_seconds(teacher_dir, batch);
        }
        let dir = run.join(name);
        if name != "progressive" {
            return teacher::train::logged_seconds(&dir, batch);
        }
        let rounds = student::progressive::available_rounds(&dir);
        let times: Option<Vec<_>> = rounds
            .iter()
            .map(|&r| {
                teacher::train::logged_seconds(&student::progressive::round_dir(&dir, r), batch)
            })
            .collect();
        let times = times.filter(|t| !t.is_empty())?;
        Some(teacher::train::LoggedTime {
            steps: times.iter().map(|t| t.steps).sum(),
            seconds: times.iter().map(|t| t.seconds).sum(),
        })
    };
    let rows: Vec<(&str, Option<teacher::train::LoggedTime>, Option<f64>)> = batches
        .iter()
        .map(|&(name, b)| (name, logged(name, b), pipeline_seconds(name)))
        .collect();
    let teacher_s = rows[0].1.map(|t| t.seconds);
    let distill_s: Option<f64> = rows[1..].iter().map(|r| r.1.map(|t| t.seconds)).sum();
    let mut md = String::from(
        "Training time per stage as each run's `metrics.jsonl` logs it (Σ steps × batch ÷ img/s: \
         the run's own backend and threads, summed over resumes), and the wall clock of the \
         stages this pipeline invocation ran itself (resumed stages count only their last part).\n\n\
         | stage | optimizer steps | logged training s | × teacher | this pipeline's wall clock s |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut data = serde_json::Map::new();
    for (name, t, p) in &rows {
        let ratio = match (t, teacher_s) {
            (Some(t), Some(ts)) => format!("{:.2}", t.seconds / ts),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {ratio} | {} |",
            t.map_or("–".into(), |t| t.steps.to_string()),
            t.map_or("–".into(), |t| format!("{:.0}", t.seconds)),
            p.map_or("–".into(), |s| format!("{s:.0}")),
        );
        data.insert(
            name.to_string(),
            serde_json::json!({ "logged": t, "pipeline_seconds": p }),
        );
    }
    if let (Some(d), Some(ts)) = (distill_s, teacher_s) {
        let _ = writeln!(
            md,
            "\nDistillation (guided + progressive + consistency): {d:.0} s = {:.2}× the teacher's {ts:.0} s.",
            d / ts
        );
        data.insert("distillation_vs_teacher".into(), serde_json::json!(d / ts));
    }
    eval::report::Section {
        title: "Training cost".into(),
        markdown: md,
        data: serde_json::Value::Object(data),
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineConfig;

    #[test]
    fn shipped_default_config_is_the_default() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/pipeline.toml");
        assert_eq!(
            PipelineConfig::from_file(&path).unwrap(),
            PipelineConfig::default()
        );
        // An empty file is the default too (every section left out).
        assert_eq!(
            toml::from_str::<PipelineConfig>("").unwrap(),
            PipelineConfig::default()
        );
    }
}
