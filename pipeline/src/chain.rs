//! The chain of stages as data: one list, in the order the pipeline runs it, that the pipeline,
//! the report's training-cost section and the bench all read. A new stage is a variant here and
//! an arm in each `match` below (what it reads, where it writes, how it runs).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use student::config::StudentConfig;
use student::progressive::RoundSummary;
use teacher::config::TrainConfig;
use teacher::recipe::ModelKind;
use teacher::train::{TrainOptions, TrainSummary};

use crate::config::PipelineConfig;

/// One stage of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The CFG teacher (`teacher::train`).
    Teacher,
    /// Guided distillation of the teacher (`student::guided`).
    Guided,
    /// Progressive halving rounds from the guided student (`student::progressive`).
    Progressive,
    /// Consistency distillation from the guided student (`student::consistency`).
    Consistency,
    /// The feature network behind FID/FVD (`eval::classifier`).
    Features,
    /// Serving artefacts of the shipped progressive round (`crate::serving`).
    Export,
    /// The comparison report (`crate::report`).
    Report,
}

/// The chain, in the order it runs.
pub const CHAIN: [Stage; 7] = [
    Stage::Teacher,
    Stage::Guided,
    Stage::Progressive,
    Stage::Consistency,
    Stage::Features,
    Stage::Export,
    Stage::Report,
];

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Features => "features",
            Stage::Export => "export",
            Stage::Report => "report",
            s => s.trains().expect("a training stage").name(),
        }
    }

    /// The kind of model a training stage writes (None: not a training stage).
    pub fn trains(self) -> Option<ModelKind> {
        match self {
            Stage::Teacher => Some(ModelKind::Teacher),
            Stage::Guided => Some(ModelKind::Guided),
            Stage::Progressive => Some(ModelKind::Progressive),
            Stage::Consistency => Some(ModelKind::Consistency),
            Stage::Features | Stage::Export | Stage::Report => None,
        }
    }

    /// The stages whose outputs this one reads (its hash includes theirs, so a change upstream
    /// redoes everything below it).
    pub fn reads(self) -> &'static [Stage] {
        match self {
            Stage::Teacher | Stage::Features => &[],
            Stage::Guided => &[Stage::Teacher],
            Stage::Progressive | Stage::Consistency => &[Stage::Guided],
            Stage::Export => &[Stage::Progressive],
            Stage::Report => &[
                Stage::Teacher,
                Stage::Guided,
                Stage::Progressive,
                Stage::Consistency,
                Stage::Features,
                Stage::Export,
            ],
        }
    }

    /// The stage's own settings as text, for its hash (`data` is the `--data DIR` key).
    pub fn identity(self, cfg: &PipelineConfig, data: &str) -> Vec<String> {
        match self {
            Stage::Teacher => vec![json(&cfg.teacher), data.into()],
            Stage::Guided => vec![json(&cfg.guided)],
            Stage::Progressive => vec![json(&cfg.progressive)],
            Stage::Consistency => vec![json(&cfg.consistency)],
            Stage::Features => vec![json(&cfg.features), json(&cfg.teacher.data), data.into()],
            Stage::Export => vec![json(&cfg.export)],
            Stage::Report => vec![json(&cfg.eval)],
        }
    }

    /// The loop settings of a training stage under `cfg` (progressive: those of every round).
    pub fn train_config(self, cfg: &PipelineConfig) -> Option<&TrainConfig> {
        match self {
            Stage::Teacher => Some(&cfg.teacher.train),
            Stage::Guided => Some(&cfg.guided.train),
            Stage::Progressive => Some(&cfg.progressive.train),
            Stage::Consistency => Some(&cfg.consistency.train),
            _ => None,
        }
    }

    /// The same, to change (benchmarks shorten every stage).
    pub fn train_config_mut(self, cfg: &mut PipelineConfig) -> Option<&mut TrainConfig> {
        match self {
            Stage::Teacher => Some(&mut cfg.teacher.train),
            Stage::Guided => Some(&mut cfg.guided.train),
            Stage::Progressive => Some(&mut cfg.progressive.train),
            Stage::Consistency => Some(&mut cfg.consistency.train),
            _ => None,
        }
    }

    /// Images per optimizer step of a training stage under `cfg`.
    pub fn batch(self, cfg: &PipelineConfig) -> Option<usize> {
        self.train_config(cfg).map(|t| t.batch_size)
    }

    /// Optimizer steps a training stage takes in all under `cfg` (progressive: every round,
    /// halving `start_steps` down to 1).
    pub fn total_steps(self, cfg: &PipelineConfig) -> Option<u64> {
        let rounds = match self {
            Stage::Progressive => cfg.progressive.start_steps.trailing_zeros() as u64,
            _ => 1,
        };
        self.train_config(cfg).map(|t| t.steps * rounds)
    }

    /// The run folders a training stage leaves under `dir` (a progressive run: one per round).
    pub fn run_dirs(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Stage::Progressive => teacher::runs::available_rounds(dir)
                .into_iter()
                .map(|r| teacher::runs::round_dir(dir, r))
                .collect(),
            _ => vec![dir.to_path_buf()],
        }
    }
}

/// The training stages, in chain order.
pub fn training_stages() -> impl Iterator<Item = Stage> {
    CHAIN.into_iter().filter(|s| s.trains().is_some())
}

/// What a distillation stage did: one run, or a progressive run's rounds.
pub enum Distilled {
    Run(TrainSummary),
    Rounds(Vec<RoundSummary>),
}

impl Distilled {
    /// One line, as the pipeline prints it.
    pub fn summary(&self) -> String {
        match self {
            Distilled::Run(s) => trained(s),
            Distilled::Rounds(rounds) => rounds
                .iter()
                .map(|r| format!("{}{}", r.steps, if r.skipped { " (kept)" } else { "" }))
                .collect::<Vec<_>>()
                .join(" → "),
        }
    }

    /// A line per run or round, as `fewstep student …` prints it.
    pub fn lines(&self, stage: Stage) -> String {
        let one = |r: &RoundSummary| match r.skipped {
            true => format!(
                "round {:>3} steps: already done ({})",
                r.steps,
                r.dir.display()
            ),
            false => format!(
                "round {:>3} steps: final loss {:.4}, {:.1} s ({})",
                r.steps,
                r.final_loss,
                r.wall_seconds,
                r.dir.display()
            ),
        };
        match self {
            Distilled::Run(s) => format!(
                "{} student: step {} (from {}), final loss {:.5}, {:.1} s; {}",
                stage.name(),
                s.steps,
                s.resumed_from,
                s.final_loss,
                s.wall_seconds,
                s.checkpoint.display()
            ),
            Distilled::Rounds(rounds) => rounds.iter().map(one).collect::<Vec<_>>().join("\n"),
        }
    }
}

/// Run a distillation stage from the run in `source` (`opts.out` is its folder); `to_steps` is
/// where progressive halving stops.
pub fn distil(
    stage: Stage,
    source: &Path,
    students: &StudentConfig,
    opts: &TrainOptions,
    to_steps: usize,
) -> Result<Distilled> {
    use student::{consistency, guided, progressive};
    Ok(match stage {
        Stage::Guided => Distilled::Run(guided::run_guided(source, students, opts)?),
        Stage::Consistency => Distilled::Run(consistency::run_consistency(source, students, opts)?),
        Stage::Progressive => Distilled::Rounds(progressive::run_progressive(
            source, to_steps, students, opts,
        )?),
        other => anyhow::bail!("`{}` is not a distillation stage", other.name()),
    })
}

/// What a training stage says: its steps and loss, or that its checkpoint was already finished.
pub fn trained(s: &TrainSummary) -> String {
    if s.resumed_from == s.steps {
        format!("kept (already at step {})", s.steps)
    } else {
        format!(
            "step {} (resumed from {}), loss {:.5}",
            s.steps, s.resumed_from, s.final_loss
        )
    }
}

/// A config section as JSON (for hashes).
pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data")
}
