//! The guided denoiser D_w for per-example w, from either a CFG teacher (2 evaluations) or a
//! w-conditioned student (1 evaluation, w through the network's extra scalar slot): the
//! teacher every distillation target is computed with.

use burn::tensor::{Device, Tensor};
use teacher::checkpoint::Checkpoint;
use teacher::edm::guidance::{cfg_per_example, cond_and_uncond};
use teacher::edm::{Cond, Denoiser};
use teacher::model::EdmModel;
use teacher::recipe::ModelKind;

/// A model that can produce D_w(x; σ, c) for any w, with w per example in `cond.extra`.
pub enum GuidedTeacher {
    /// A classic CFG teacher: D_u + w·(D_c − D_u), cond and uncond batched together.
    Cfg(EdmModel),
    /// A w-conditioned student: D(x; σ, c, w) in one evaluation.
    WInput(EdmModel),
}

impl GuidedTeacher {
    /// From a checkpoint: teachers use CFG, every student kind takes w as input.
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> teacher::Result<Self> {
        let model = ck.inference_model(device)?;
        Ok(match ck.header.kind() {
            ModelKind::Teacher => GuidedTeacher::Cfg(model),
            _ => GuidedTeacher::WInput(model),
        })
    }

    pub fn model(&self) -> &EdmModel {
        match self {
            GuidedTeacher::Cfg(m) | GuidedTeacher::WInput(m) => m,
        }
    }
}

/// D_w with w from `cond.extra` (`[n]`).
impl Denoiser for GuidedTeacher {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let w = cond
            .extra
            .clone()
            .expect("a guided denoiser needs w in cond.extra");
        match self {
            GuidedTeacher::WInput(m) => {
                let with_w = Cond {
                    extra: Some(w),
                    ..cond.clone()
                };
                m.denoise(x, sigma, &with_w)
            }
            GuidedTeacher::Cfg(m) => {
                let class_only = Cond {
                    extra: None,
                    ..cond.clone()
                };
                let (d_cond, d_uncond) = cond_and_uncond(m, x, sigma, &class_only, m.null_class());
                cfg_per_example(d_uncond, d_cond, w)
            }
        }
    }

    fn nfe_per_call(&self) -> usize {
        match self {
            GuidedTeacher::Cfg(_) => 2,
            GuidedTeacher::WInput(_) => 1,
        }
    }
}
