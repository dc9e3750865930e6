//! `fewstep pipeline`: the user's one job — teacher → guided → progressive → consistency →
//! features → export → report — as one resumable command over the chain in `crate::chain`.
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
use teacher::checkpoint::{Checkpoint, LATEST};
use teacher::latent::source::DecoderChoice;
use teacher::train::TrainOptions;

use crate::chain::{CHAIN, Stage, distil, trained};
use crate::config::PipelineConfig;
use crate::report::ReportSettings;

/// How `fewstep pipeline` runs.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub config: PipelineConfig,
    /// `--data DIR` for every stage's data (None: the config's embedded or recorded source).
    pub data: Option<PathBuf>,
    /// The run folder.
    pub out: PathBuf,
    /// A finished teacher run to distil instead of training one.
    pub from_teacher: Option<PathBuf>,
    /// Print what would run, run nothing.
    pub dry_run: bool,
    pub quiet: bool,
    pub device: Device,
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

    /// Whether `stage` finished with this `hash`. A stage whose folder was deleted is redone
    /// (its record dropped); a record with another hash is an error (the run folder was made
    /// with another config).
    fn finished(&mut self, stage: Stage, hash: &str, run: &Path) -> Result<bool> {
        match self.done(stage.name()) {
            Some(_) if !run.join(stage.name()).exists() => {
                self.stages.retain(|r| r.name != stage.name());
                Ok(false)
            }
            Some(r) if r.hash == hash => Ok(true),
            Some(r) => bail!(
                "stage `{}` in `{}` was made with another config (hash {} ≠ {hash}): use a new --out, or delete `{}` to redo it",
                stage.name(),
                run.display(),
                r.hash,
                run.join(stage.name()).display()
            ),
            None => Ok(false),
        }
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

/// Every stage's hash, in chain order: its name, its own settings and the hashes of the stages
/// it reads. `teacher` is the hash of a `--from-teacher` run, which replaces the teacher stage's.
fn stage_hashes(cfg: &PipelineConfig, data: &str, teacher: Option<String>) -> Vec<(Stage, String)> {
    let mut out: Vec<(Stage, String)> = Vec::new();
    for stage in CHAIN.into_iter().filter(|st| st.present(cfg)) {
        let hash = match (stage, &teacher) {
            (Stage::Teacher, Some(h)) => h.clone(),
            _ => {
                let mut parts = vec![stage.name().to_string()];
                parts.extend(stage.identity(cfg, data));
                // Reads come earlier; a stage this chain lacks adds nothing.
                for read in stage.reads().iter().filter(|r| r.present(cfg)) {
                    let (_, h) = out
                        .iter()
                        .find(|(s, _)| s == read)
                        .expect("reads come earlier");
                    parts.push(h.clone());
                }
                hash_of(&parts.iter().map(String::as_str).collect::<Vec<_>>())
            }
        };
        out.push((stage, hash));
    }
    out
}

/// The teacher the chain distils: `RUN/teacher`, or `--from-teacher` with its hash and batch.
struct TeacherRun {
    dir: PathBuf,
    hash: Option<String>,
    batch: usize,
}

impl TeacherRun {
    fn of(s: &PipelineSettings) -> Result<Self> {
        let Some(t) = &s.from_teacher else {
            return Ok(Self {
                dir: s.out.join(Stage::Teacher.name()),
                hash: None,
                batch: s.config.teacher.train.batch_size,
            });
        };
        let ck = Checkpoint::load(t)?;
        let step = ck.header.step.to_string();
        Ok(Self {
            dir: t.clone(),
            hash: Some(hash_of(&["from-teacher", &ck.header.config, &step])),
            batch: teacher::config::TeacherConfig::from_toml(&ck.header.config)
                .map_or(s.config.teacher.train.batch_size, |c| c.train.batch_size),
        })
    }
}

/// Everything a stage needs to run.
struct Ctx<'a> {
    s: &'a PipelineSettings,
    teacher: TeacherRun,
}

impl Ctx<'_> {
    /// The folder of `stage`'s output.
    fn dir(&self, stage: Stage) -> PathBuf {
        match stage {
            Stage::Teacher => self.teacher.dir.clone(),
            s => self.s.out.join(s.name()),
        }
    }

    fn train_options(&self, out: PathBuf) -> TrainOptions {
        TrainOptions {
            resume: out.join(LATEST).exists(),
            allow_config_change: false,
            out,
            data: self.s.data.clone(),
            steps: None,
            quiet: self.s.quiet,
            device: self.s.device.clone(),
            world: teacher::dist::World::SINGLE,
        }
    }

    /// Run `stage`; returns what it says about itself.
    fn run(&self, stage: Stage) -> Result<String> {
        let (cfg, dev) = (&self.s.config, &self.s.device);
        let latent = cfg.latent.as_ref();
        match stage {
            Stage::Autoencoder | Stage::Teacher => {
                let opts = self.train_options(self.dir(stage));
                let tc = match (stage, latent) {
                    (Stage::Autoencoder, Some(l)) => l.autoencoder.clone(),
                    (Stage::Autoencoder, None) => bail!("this chain has no [latent.autoencoder]"),
                    _ => cfg.teacher_in(&self.s.out),
                };
                Ok(trained(&teacher::train::train_teacher(&tc, &opts)?))
            }
            Stage::Guided | Stage::Progressive | Stage::Consistency | Stage::Decoder => {
                let mut opts = self.train_options(self.dir(stage));
                // finished rounds are skipped, an interrupted one resumes
                opts.resume |= stage == Stage::Progressive;
                let source = self.dir(stage.reads()[0]);
                let students = match stage {
                    Stage::Decoder => cfg
                        .decoder_students()
                        .context("this chain has no [latent.decoder]")?,
                    _ => cfg.students(),
                };
                Ok(distil(stage, &source, &students, &opts, 1)?.summary())
            }
            Stage::Features => crate::features::train_for(
                cfg.image_data(),
                cfg.features.steps,
                self.s.data.as_deref(),
                &self.dir(stage),
                self.s.quiet,
                dev,
            ),
            Stage::Export => {
                let prog = self.dir(Stage::Progressive);
                let decoder = self.student_decoder();
                crate::serving::ship(&prog, &self.dir(stage), &cfg.export, decoder.as_ref(), dev)
            }
            Stage::Report => self.report(),
        }
    }

    /// A latent chain's distilled decoder at its serving steps (what every student decodes with).
    fn student_decoder(&self) -> Option<DecoderChoice> {
        let l = self.s.config.latent.as_ref()?;
        Some(DecoderChoice {
            run: Some(self.dir(Stage::Decoder)),
            steps: Some(l.decoder_steps),
        })
    }

    /// The report stage: every model of the chain, plus the serving and training-cost sections.
    fn report(&self) -> Result<String> {
        let (cfg, run) = (&self.s.config, &self.s.out);
        let recorded = State::load(run)?;
        let seconds = |name: &str| recorded.done(name).map(|r| r.seconds);
        let dirs = |stage: Stage| self.dir(stage);
        let sections = vec![
            crate::serving::section(&self.dir(Stage::Export))?,
            crate::cost::training_cost(cfg, self.teacher.batch, dirs, seconds),
        ];
        let settings =
            ReportSettings::for_pipeline(cfg, &self.teacher.dir, run, self.s.data.clone());
        crate::report::report_with(&settings, &self.s.device, self.s.quiet, sections)?;
        Ok("report.md, report.html, results.json".into())
    }
}

/// What a run needs from outside its folder, checked before any stage runs: a latent chain
/// trains its own teacher, and every baseline is a teacher (one not trained yet is noted: the
/// report stage needs it, which may be hours away).
fn check_inputs(s: &PipelineSettings) -> Result<()> {
    if s.config.latent.is_some() && s.from_teacher.is_some() {
        bail!(
            "`--from-teacher` with [latent]: a latent chain's teacher is the base model over its own \
             autoencoder stage's latents; drop `--from-teacher` (or [latent], to distil a pixel teacher)"
        );
    }
    for b in &s.config.eval.baselines {
        let path = teacher::runs::resolve_model(&b.run, 0)?;
        let Ok(ck) = Checkpoint::load(&path) else {
            eprintln!(
                "note: eval.baselines `{}`: `{}` holds no trained teacher yet; the report stage \
                 needs it (train it before then, or remove the baseline)",
                b.name,
                b.run.display()
            );
            continue;
        };
        if ck.header.kind() != teacher::recipe::ModelKind::Teacher {
            bail!(
                "eval.baselines `{}`: `{}` is a {} student; a baseline is a teacher run",
                b.name,
                b.run.display(),
                ck.header.kind().name()
            );
        }
    }
    Ok(())
}

/// Run (or resume, or with `dry_run` plan) the whole chain.
pub fn run_pipeline(s: &PipelineSettings) -> Result<()> {
    let run = &s.out;
    if !s.dry_run {
        check_inputs(s)?;
    }
    // One pipeline per run folder (each stage also locks its own folder).
    let _lock = match s.dry_run {
        true => None,
        false => Some(teacher::lock::FolderLock::acquire(
            run,
            &[STATE_FILE, CONFIG_FILE],
        )?),
    };
    if !s.dry_run {
        let text = toml::to_string(&s.config).context("serializing the pipeline config")?;
        teacher::checkpoint::write_atomic(&run.join(CONFIG_FILE), text.as_bytes())?;
    }
    let mut state = State::load(run)?;
    let ctx = Ctx {
        s,
        teacher: TeacherRun::of(s)?,
    };
    let data_key = s
        .data
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let hashes = stage_hashes(&s.config, &data_key, ctx.teacher.hash.clone());
    if !s.dry_run {
        state.teacher = Some(ctx.teacher.dir.clone());
        state.data = s.data.clone();
        state.save(run)?;
    }
    let todo: Vec<_> = hashes
        .into_iter()
        .filter(|(st, _)| !(*st == Stage::Teacher && s.from_teacher.is_some()))
        .collect();
    let (n, started) = (todo.len(), Instant::now());
    for (k, (stage, hash)) in todo.into_iter().enumerate() {
        let say = |msg: String| {
            if !s.quiet {
                eprintln!("[{}/{n}] {msg}", k + 1);
            }
        };
        if state.finished(stage, &hash, run)? {
            let secs = state.done(stage.name()).map_or(0.0, |r| r.seconds);
            say(format!("{}: done ({secs:.0} s), skipped", stage.name()));
            println!("{}: skipped (done)", stage.name());
            continue;
        }
        if s.dry_run {
            let verb = if run.join(stage.name()).exists() {
                "resume"
            } else {
                "run"
            };
            println!("{}: would {verb} (hash {hash})", stage.name());
            continue;
        }
        say(format!("{} …", stage.name()));
        let t = Instant::now();
        let what = ctx
            .run(stage)
            .with_context(|| format!("pipeline stage `{}`", stage.name()))?;
        let seconds = t.elapsed().as_secs_f64();
        println!("{}: {what} ({seconds:.1} s)", stage.name());
        state.stages.push(StageRecord {
            name: stage.name().to_string(),
            hash,
            seconds,
        });
        state.save(run)?;
    }
    if !s.dry_run {
        let report = run.join(Stage::Report.name()).join("report.md");
        let secs = started.elapsed().as_secs_f64();
        println!("pipeline done in {secs:.1} s; report: {}", report.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PipelineConfig;

    #[test]
    fn shipped_default_config_is_the_default() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pipeline.toml");
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
