//! Arguments → the libraries' settings structs, resolved before any work.

use anyhow::{Result, bail};
use burn::tensor::Device;

use eval::metrics::IntervalConfig;
use pipeline::bench::sampling::SamplingSettings;
use pipeline::bench::scaling::ScalingSettings;
use pipeline::bench::{Bench, SuiteSettings};
use pipeline::config::PipelineConfig;
use pipeline::config::{HeadlineDecl, VerdictConfig};
use pipeline::report::ReportSettings;
use pipeline::run::PipelineSettings;
use pipeline::samples::SampleSettings;
use teacher::recipe::ModelKind;
use teacher::sample::{ClassChoice, SampleSpec};

use crate::cli::{
    BenchArg, BenchSamplingArgs, BenchScalingArgs, BenchSuiteArgs, ClipsArgs, PipelineArgs,
    ReportArgs, SampleArgs,
};

impl SampleArgs {
    pub fn settings(&self) -> Result<SampleSettings> {
        let classes = match self.class.as_str() {
            "all" => ClassChoice::All,
            k => match k.parse::<usize>() {
                Ok(k) => ClassChoice::One(k),
                Err(_) => bail!("`--class {k}`: give a class index or `all`"),
            },
        };
        let spec = SampleSpec {
            first: 0,
            n: self.n,
            classes,
            steps: self.steps,
            sampler: self.sampler.map(Into::into),
            guidance: self.guidance,
            seed: self.seed,
            batch_size: self.batch,
            decoder: (self.decoder.is_some() || self.decoder_steps.is_some()).then(|| {
                teacher::latent::source::DecoderChoice {
                    run: self.decoder.clone(),
                    steps: self.decoder_steps,
                }
            }),
        };
        if self.decoder_steps == Some(0) {
            bail!("`--decoder-steps 0`: give at least 1 step");
        }
        Ok(SampleSettings {
            model: self.model.clone(),
            spec,
            out: self.out.clone(),
        })
    }
}

impl PipelineArgs {
    pub fn settings(self, device: Device, quiet: bool) -> Result<PipelineSettings> {
        let config = match &self.config {
            Some(p) => PipelineConfig::from_file(p)?,
            None => PipelineConfig::default(),
        };
        Ok(PipelineSettings {
            config,
            data: self.data,
            out: self.out,
            from_teacher: self.from_teacher,
            dry_run: self.dry_run,
            quiet,
            device,
        })
    }
}

/// `--headline KIND:STEPS`.
fn parse_headline(spec: &str) -> anyhow::Result<HeadlineDecl> {
    let bad = || {
        anyhow::anyhow!(
            "`--headline {spec}`: give KIND:STEPS with KIND guided, progressive or consistency, e.g. `progressive:4`"
        )
    };
    let (kind, steps) = spec.split_once(':').ok_or_else(bad)?;
    let student = match kind {
        "guided" => ModelKind::Guided,
        "progressive" => ModelKind::Progressive,
        "consistency" => ModelKind::Consistency,
        _ => return Err(bad()),
    };
    let steps = steps.parse().map_err(|_| bad())?;
    Ok(HeadlineDecl { student, steps })
}

impl ReportArgs {
    pub fn settings(self) -> anyhow::Result<ReportSettings> {
        let headline = self.headline.as_deref().map(parse_headline).transpose()?;
        let verdict = VerdictConfig {
            headline,
            target_ratio: self.target_ratio,
            sweep_n: self.sweep_n,
            memorisation_n: self.memorisation_n,
            train: self.train,
            intervals: IntervalConfig {
                bootstrap: self.bootstrap,
                ..IntervalConfig::default()
            },
            timing_batch: self.timing_batch,
            timing_reps: self.timing_reps,
        };
        if self.student_decoder_steps == Some(0) {
            bail!("`--student-decoder-steps 0`: give at least 1 step");
        }
        let cache = self
            .cache
            .unwrap_or_else(|| ReportSettings::default_cache(&self.out));
        Ok(ReportSettings {
            runs: self.runs,
            features: self.features,
            reference: self.reference,
            real: self.real,
            out: self.out,
            data: self.data,
            n: self.n,
            guidance: self.guidance,
            seed: self.seed,
            batch: self.batch,
            teacher_steps: self.teacher_steps,
            student_steps: self.student_steps,
            sweep_guidance: self.sweep_guidance,
            sweep_steps: self.sweep_steps,
            solver_nfe: self.solver_nfe,
            title: self.title,
            verdict,
            cache,
            student_decoder: (self.student_decoder.is_some()
                || self.student_decoder_steps.is_some())
            .then_some(teacher::latent::source::DecoderChoice {
                run: self.student_decoder,
                steps: self.student_decoder_steps,
            }),
            latent: None,
            baselines: Vec::new(),
            reuse_samples: self.reuse_samples,
        })
    }
}

impl BenchSamplingArgs {
    pub fn settings(&self) -> SamplingSettings {
        SamplingSettings {
            teacher: self.teacher.clone(),
            student: self.student.clone(),
            teacher_steps: self.teacher_steps,
            student_steps: self.student_steps,
            n: self.n,
            batch: self.batch,
            guidance: self.guidance,
        }
    }
}

impl BenchSuiteArgs {
    pub fn settings(self) -> SuiteSettings {
        let bench = |b: BenchArg| match b {
            BenchArg::Train => Bench::Train,
            BenchArg::Sampling => Bench::Sampling,
            BenchArg::Onnx => Bench::Onnx,
            BenchArg::Distill => Bench::Distill,
        };
        SuiteSettings {
            run: self.run,
            config: self.config,
            data: self.data,
            out: self.out,
            only: self.only.into_iter().map(bench).collect(),
            unet_config: self.unet_config,
            python: self.python,
            pytorch_script: self.pytorch_script,
            reps: self.reps,
            n: self.n,
            batch: self.batch,
            teacher_steps: self.teacher_steps,
            student_steps: self.student_steps,
            onnx_batch: self.onnx_batch,
            distill_steps: self.distill_steps,
        }
    }
}

impl BenchScalingArgs {
    pub fn settings(self) -> Result<ScalingSettings> {
        use pipeline::bench::scaling::{default_out, find_mpirun};
        let Some(mpirun) = self.mpirun.or_else(find_mpirun) else {
            bail!(
                "`bench scaling` needs an MPI launcher: install one (Debian: openmpi-bin) or pass --mpirun PATH"
            );
        };
        if !self.config.is_file() {
            bail!(
                "teacher config `{}` not found: pass --config FILE",
                self.config.display()
            );
        }
        Ok(ScalingSettings {
            config: self.config,
            ranks: self.ranks,
            steps: self.steps,
            out: self.out.unwrap_or_else(default_out),
            mpirun,
            exe: std::env::current_exe()?,
            threads: pipeline::bench::threads(),
        })
    }
}

impl ClipsArgs {
    pub fn run(self) -> Result<()> {
        let source = teacher::data::DataConfig {
            source: self.dataset.into(),
            ..Default::default()
        };
        let cfg = teacher::data::moving::MovingDigitsConfig {
            frames: self.frames,
            size: self.size,
            digits: self.digits,
            ..Default::default()
        };
        let said = pipeline::samples::write_moving_digits(
            &source,
            self.data.as_deref(),
            &cfg,
            self.n,
            self.seed,
            &self.out,
        )?;
        println!("{said}");
        Ok(())
    }
}
