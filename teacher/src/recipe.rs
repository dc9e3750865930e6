//! What a model is, typed: one [`Recipe`] variant per kind of run, carrying the facts its
//! sampling needs (σ grid, trained w range, distilled step count), and the one place where each
//! kind plans how it samples ([`Recipe::plan`]) — as diffusion_distillation keeps a student's
//! step count inside its checkpoint.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::edm::Cond;
use crate::edm::sigma_grid::SigmaGrid;
use crate::edm::solver::{Sampled, Sampler, multistep_consistency, sample};
use crate::error::{Error, Result};
use crate::model::EdmModel;
use crate::sample::guided_sample;

/// The most sampling steps a plan takes (EDM's best samplers use 18–256; 10,000 bounds the σ
/// grid and the run time of a typo).
pub const MAX_STEPS: usize = 10_000;

/// Range of guidance weights a w-conditioned student is trained on; sampling outside it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WRange {
    pub min: f64,
    pub max: f64,
}

impl WRange {
    /// Whether `w` lies in the trained range.
    pub fn contains(&self, w: f64) -> bool {
        (self.min..=self.max).contains(&w)
    }
}

/// The kind of a run, without its facts (names, and which kinds a stage accepts as its source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Teacher,
    Guided,
    Progressive,
    Consistency,
}

impl ModelKind {
    /// Lower-case name, as in file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Teacher => "teacher",
            ModelKind::Guided => "guided",
            ModelKind::Progressive => "progressive",
            ModelKind::Consistency => "consistency",
        }
    }
}

/// What a run trained, with the facts that decide how it samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recipe {
    /// A class-conditional EDM teacher with a learned null class: any ODE solver and step count
    /// on its Karras grid, classifier-free guidance with w as a constant (2 evaluations a call).
    Teacher { grid: SigmaGrid },
    /// A guided student (Meng et al. 2023): the teacher's D_w with w as a network input; any ODE
    /// solver and step count on the teacher's grid, 1 evaluation a call.
    Guided { grid: SigmaGrid, w: WRange },
    /// A progressive student (Salimans & Ho 2022): exactly `steps` Euler steps on `sigmas`
    /// (`steps + 1` values ending in 0), w as input.
    Progressive {
        steps: usize,
        sigmas: Vec<f64>,
        w: WRange,
    },
    /// A consistency student (Song et al. 2023): multistep consistency sampling on the teacher's
    /// grid (boundary at its σ_min), w as input.
    Consistency { grid: SigmaGrid, w: WRange },
}

/// How a plan steps through noise levels.
#[derive(Debug, Clone, PartialEq)]
pub enum Solver {
    /// An ODE solver along σ_0 > … > σ_N = 0.
    Ode { sampler: Sampler, sigmas: Vec<f64> },
    /// Multistep consistency sampling: f at each σ_k, re-noising down to σ_min in between.
    Consistency { sigmas: Vec<f64>, sigma_min: f64 },
}

/// How guidance enters a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guidance {
    /// Classifier-free guidance around a conditional model, w a constant (2 evaluations a call;
    /// 1 at w = 1, the conditional model, and w = 0, the unconditional one).
    Cfg(f64),
    /// w-conditioned students: w is the network's extra input (1 evaluation a call).
    Input(f64),
}

impl Guidance {
    pub fn w(self) -> f64 {
        match self {
            Guidance::Cfg(w) | Guidance::Input(w) => w,
        }
    }

    /// Network evaluations per denoiser call.
    pub fn nfe_per_call(self) -> usize {
        match self {
            Guidance::Cfg(w) if w != 0.0 && w != 1.0 => 2,
            _ => 1,
        }
    }
}

/// How a checkpoint samples, resolved and validated once; [`run_plan`] runs it on tensors (any
/// device — the capture device records it as one graph for `export onnx --unroll-steps`).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerPlan {
    pub kind: ModelKind,
    pub solver: Solver,
    pub guidance: Guidance,
}

impl Recipe {
    pub fn kind(&self) -> ModelKind {
        match self {
            Recipe::Teacher { .. } => ModelKind::Teacher,
            Recipe::Guided { .. } => ModelKind::Guided,
            Recipe::Progressive { .. } => ModelKind::Progressive,
            Recipe::Consistency { .. } => ModelKind::Consistency,
        }
    }

    /// The trained w range of a student (None: a teacher takes any w through CFG).
    pub fn w_range(&self) -> Option<WRange> {
        match self {
            Recipe::Teacher { .. } => None,
            Recipe::Guided { w, .. }
            | Recipe::Progressive { w, .. }
            | Recipe::Consistency { w, .. } => Some(*w),
        }
    }

    /// The step count a distilled student is fixed to (progressive), if any.
    pub fn fixed_steps(&self) -> Option<usize> {
        match self {
            Recipe::Progressive { steps, .. } => Some(*steps),
            _ => None,
        }
    }

    /// Solvers this kind of model can sample with (the first is its default).
    pub fn samplers(&self) -> &'static [Sampler] {
        match self {
            Recipe::Teacher { .. } | Recipe::Guided { .. } => &[
                Sampler::Euler,
                Sampler::Ddim,
                Sampler::Heun,
                Sampler::Dpmpp2m,
            ],
            // The distilled grid is learned for Euler (= DDIM) steps.
            Recipe::Progressive { .. } => &[Sampler::Euler, Sampler::Ddim],
            // Consistency students sample with their own multistep rule, no ODE solver.
            Recipe::Consistency { .. } => &[],
        }
    }

    /// How this model samples `steps` steps with `sampler` (None: its own default) at guidance
    /// weight `w`; a combination the recipe does not allow is an error that says what does.
    pub fn plan(&self, steps: usize, sampler: Option<Sampler>, w: f64) -> Result<SamplerPlan> {
        let kind = self.kind();
        if steps == 0 || steps > MAX_STEPS {
            return Err(Error::Invalid(format!(
                "`--steps {steps}`: sampling takes 1 to {MAX_STEPS} steps"
            )));
        }
        if let Some(r) = self.w_range()
            && !r.contains(w)
        {
            return Err(Error::Invalid(format!(
                "`--guidance {w}` is outside the range this {} student was trained on, [{}, {}]",
                kind.name(),
                r.min,
                r.max
            )));
        }
        let allowed = self.samplers();
        let sampler = match sampler {
            Some(s) if !allowed.contains(&s) => {
                return Err(Error::Invalid(format!(
                    "`--sampler {}`: a {} model samples with {}",
                    s.key(),
                    kind.name(),
                    if allowed.is_empty() {
                        "its own multistep consistency rule (leave `--sampler` out)".to_string()
                    } else {
                        allowed
                            .iter()
                            .map(|s| s.key())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )));
            }
            Some(s) => s,
            None => allowed.first().copied().unwrap_or_default(),
        };
        let (solver, guidance) = match self {
            Recipe::Teacher { grid } => (
                Solver::Ode {
                    sampler,
                    sigmas: grid.sampling(steps),
                },
                Guidance::Cfg(w),
            ),
            Recipe::Guided { grid, .. } => (
                Solver::Ode {
                    sampler,
                    sigmas: grid.sampling(steps),
                },
                Guidance::Input(w),
            ),
            Recipe::Progressive {
                steps: own, sigmas, ..
            } => {
                if *own != steps {
                    return Err(Error::Invalid(format!(
                        "this progressive student takes {own} steps; `--steps {steps}` needs the round with that many"
                    )));
                }
                let sigmas = sigmas.clone();
                (Solver::Ode { sampler, sigmas }, Guidance::Input(w))
            }
            Recipe::Consistency { grid, .. } => (
                Solver::Consistency {
                    sigmas: grid.consistency(steps),
                    sigma_min: grid.sigma_min,
                },
                Guidance::Input(w),
            ),
        };
        Ok(SamplerPlan {
            kind,
            solver,
            guidance,
        })
    }
}

impl SamplerPlan {
    /// Unit-Gaussian noises a batch needs: the initial one, plus one per re-noising step.
    pub fn noises(&self) -> usize {
        match &self.solver {
            Solver::Ode { .. } => 1,
            Solver::Consistency { sigmas, .. } => sigmas.len(),
        }
    }

    /// Network evaluations per image: the one count every report and benchmark quotes.
    pub fn nfe(&self) -> usize {
        let calls = match &self.solver {
            Solver::Ode { sampler, sigmas } => sampler.calls(sigmas.len() - 1),
            Solver::Consistency { sigmas, .. } => sigmas.len(),
        };
        calls * self.guidance.nfe_per_call()
    }

    /// The σ's the plan evaluates at.
    pub fn sigmas(&self) -> &[f64] {
        match &self.solver {
            Solver::Ode { sigmas, .. } | Solver::Consistency { sigmas, .. } => sigmas,
        }
    }

    /// The ODE solver, if the plan runs one.
    pub fn sampler(&self) -> Option<Sampler> {
        match &self.solver {
            Solver::Ode { sampler, .. } => Some(*sampler),
            Solver::Consistency { .. } => None,
        }
    }

    /// What runs, in words (reports, ONNX metadata).
    pub fn describe(&self) -> String {
        match (&self.solver, self.guidance, self.kind) {
            (Solver::Consistency { .. }, _, _) => "multistep consistency, w as input".into(),
            (Solver::Ode { sampler, .. }, Guidance::Cfg(_), _) => {
                format!("{} + CFG", sampler.name())
            }
            (Solver::Ode { sampler, .. }, Guidance::Input(_), ModelKind::Progressive) => {
                let name = match sampler {
                    Sampler::Euler => "Euler (DDIM)",
                    s => s.name(),
                };
                format!("{name} on its distilled grid, w as input")
            }
            (Solver::Ode { sampler, .. }, Guidance::Input(_), _) => {
                format!("{}, w as input", sampler.name())
            }
        }
    }

    /// The conditioning a batch runs with: students read w from `cond.extra`, so it is set
    /// to the plan's w for every example; CFG teachers take the class alone.
    pub fn cond(&self, class_cond: &Cond) -> Cond {
        match self.guidance {
            Guidance::Cfg(_) => class_cond.clone(),
            Guidance::Input(w) => {
                let n = class_cond.class.dims()[0];
                Cond {
                    class: class_cond.class.clone(),
                    extra: Some(Tensor::full([n], w, &class_cond.class.device())),
                    latent: class_cond.latent.clone(),
                }
            }
        }
    }
}

/// One batch along `plan`: `noises[0]` is the initial unit noise, `noises[k]` the re-noising
/// noise of step k (consistency); students read w from `cond.extra` (see [`SamplerPlan::cond`]).
pub fn run_plan(
    model: &EdmModel,
    plan: &SamplerPlan,
    noises: &[Tensor<4>],
    cond: &Cond,
) -> Sampled {
    match (&plan.solver, plan.guidance) {
        (Solver::Ode { sampler, sigmas }, Guidance::Cfg(w)) => {
            guided_sample(model, noises[0].clone(), sigmas, *sampler, w, cond)
        }
        (Solver::Ode { sampler, sigmas }, Guidance::Input(_)) => {
            sample(model, noises[0].clone(), sigmas, *sampler, cond)
        }
        (Solver::Consistency { sigmas, sigma_min }, _) => {
            multistep_consistency(model, noises, sigmas, *sigma_min, cond)
        }
    }
}
