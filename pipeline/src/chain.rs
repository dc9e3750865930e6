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
    /// A latent chain's stage 1: encoder, prior and decoder trained jointly (`teacher::train`
    /// of `[latent.autoencoder]`); the teacher is its base model over the frozen latents.
    Autoencoder,
    /// The CFG teacher (`teacher::train`).
    Teacher,
    /// Guided distillation of the teacher (`student::guided`).
    Guided,
    /// Progressive halving rounds from the guided student (`student::progressive`).
    Progressive,
    /// Consistency distillation from the guided student (`student::consistency`).
    Consistency,
    /// A latent chain's decoder distilled by consistency from the autoencoder's
    /// (`student::consistency` of `[latent.decoder]`), for serving in few steps.
    Decoder,
    /// The feature network behind FID/FVD (`eval::classifier`).
    Features,
    /// Serving artefacts of the shipped progressive round (`crate::serving`).
    Export,
    /// The comparison report (`crate::report`).
    Report,
}

/// The chain, in the order it runs (the latent stages only where `[latent]` is given).
pub const CHAIN: [Stage; 9] = [
    Stage::Autoencoder,
    Stage::Teacher,
    Stage::Guided,
    Stage::Progressive,
    Stage::Consistency,
    Stage::Decoder,
    Stage::Features,
    Stage::Export,
    Stage::Report,
];

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Autoencoder => "autoencoder",
            Stage::Decoder => "decoder",
            Stage::Features => "features",
            Stage::Export => "export",
            Stage::Report => "report",
            s => s.trains().expect("a training stage").name(),
        }
    }

    /// The kind of model a training stage writes (None: not a training stage).
    pub fn trains(self) -> Option<ModelKind> {
        match self {
            Stage::Autoencoder | Stage::Teacher => Some(ModelKind::Teacher),
            Stage::Guided => Some(ModelKind::Guided),
            Stage::Progressive => Some(ModelKind::Progressive),
            Stage::Consistency | Stage::Decoder => Some(ModelKind::Consistency),
            Stage::Features | Stage::Export | Stage::Report => None,
        }
    }

    /// Whether the chain of `cfg` has this stage (the latent ones only with `[latent]`).
    pub fn present(self, cfg: &PipelineConfig) -> bool {
        match self {
            Stage::Autoencoder | Stage::Decoder => cfg.latent.is_some(),
            _ => true,
        }
    }

    /// Whether the stage's run samples from noise (a teacher or student the report compares;
    /// not the autoencoder and decoder, which turn latents into images).
    pub fn samples(self) -> bool {
        matches!(
            self,
            Stage::Teacher | Stage::Guided | Stage::Progressive | Stage::Consistency
        )
    }

    /// The stages whose outputs this one reads (its hash includes theirs, so a change upstream
    /// redoes everything below it); stages the chain does not have are left out of the hash.
    pub fn reads(self) -> &'static [Stage] {
        match self {
            Stage::Autoencoder | Stage::Features => &[],
            Stage::Teacher | Stage::Decoder => &[Stage::Autoencoder],
            Stage::Guided => &[Stage::Teacher],
            Stage::Progressive | Stage::Consistency => &[Stage::Guided],
            Stage::Export => &[Stage::Progressive, Stage::Decoder],
            Stage::Report => &[
                Stage::Teacher,
                Stage::Guided,
                Stage::Progressive,
                Stage::Consistency,
                Stage::Features,
                Stage::Export,
                Stage::Decoder,
            ],
        }
    }

    /// The stage's own settings as text, for its hash (`data` is the `--data DIR` key). The
    /// latent chain's additions only where it has them, so other chains keep their hashes.
    pub fn identity(self, cfg: &PipelineConfig, data: &str) -> Vec<String> {
        let latent = cfg.latent.as_ref();
        let served = |mut v: Vec<String>| {
            v.extend(latent.map(|l| l.decoder_steps.to_string()));
            v
        };
        match self {
            Stage::Autoencoder => vec![json(&latent.map(|l| &l.autoencoder)), data.into()],
            Stage::Teacher => vec![json(&cfg.teacher), data.into()],
            Stage::Guided => vec![json(&cfg.guided)],
            Stage::Progressive => vec![json(&cfg.progressive)],
            Stage::Consistency => vec![json(&cfg.consistency)],
            Stage::Decoder => vec![json(&latent.map(|l| &l.decoder))],
            Stage::Features => vec![json(&cfg.features), json(cfg.image_data()), data.into()],
            Stage::Export => served(vec![json(&cfg.export)]),
            Stage::Report => served(vec![json(&cfg.eval)]),
        }
    }

    /// The loop settings of a training stage under `cfg` (progressive: those of every round).
    pub fn train_config(self, cfg: &PipelineConfig) -> Option<&TrainConfig> {
        let latent = cfg.latent.as_ref();
        match self {
            Stage::Autoencoder => latent.map(|l| &l.autoencoder.train),
            Stage::Teacher => Some(&cfg.teacher.train),
            Stage::Guided => Some(&cfg.guided.train),
            Stage::Progressive => Some(&cfg.progressive.train),
            Stage::Consistency => Some(&cfg.consistency.train),
            Stage::Decoder => latent.map(|l| &l.decoder.train),
            _ => None,
        }
    }

    /// The same, to change (benchmarks shorten every stage).
    pub fn train_config_mut(self, cfg: &mut PipelineConfig) -> Option<&mut TrainConfig> {
        let latent = cfg.latent.as_mut();
        match self {
            Stage::Autoencoder => latent.map(|l| &mut l.autoencoder.train),
            Stage::Teacher => Some(&mut cfg.teacher.train),
            Stage::Guided => Some(&mut cfg.guided.train),
            Stage::Progressive => Some(&mut cfg.progressive.train),
            Stage::Consistency => Some(&mut cfg.consistency.train),
            Stage::Decoder => latent.map(|l| &mut l.decoder.train),
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

/// The training stages of `cfg`'s chain, in chain order.
pub fn training_stages(cfg: &PipelineConfig) -> impl Iterator<Item = Stage> + '_ {
    CHAIN
        .into_iter()
        .filter(|s| s.trains().is_some() && s.present(cfg))
}

/// The stages whose runs sample from noise (the teacher and its students), in chain order.
pub fn model_stages() -> impl Iterator<Item = Stage> {
    CHAIN.into_iter().filter(|s| s.samples())
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
        Stage::Consistency | Stage::Decoder => {
            Distilled::Run(consistency::run_consistency(source, students, opts)?)
        }
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
