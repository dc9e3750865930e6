//! The guided denoiser D_w for per-example w, from either a CFG teacher (2 evaluations) or a
//! w-conditioned student (1 evaluation, w through the network's extra scalar slot).

use burn::tensor::{Int, Tensor};
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::edm::Cond;
use teacher::edm::guidance::{cfg_per_example, cond_and_uncond};
use teacher::model::EdmModel;

/// Anything that gives the guided denoiser D_w(x; σ, c) with one w per example — a trained
/// model, or a closed-form fixture in tests.
pub trait DenoiseW {
    /// # Shapes
    /// - x: `[n, c, h, w]`, sigma, class, w: `[n]` → `[n, c, h, w]`
    fn denoise_w(
        &self,
        x: Tensor<4>,
        sigma: Tensor<1>,
        class: Tensor<1, Int>,
        w: Tensor<1>,
    ) -> Tensor<4>;
}

/// A model that can produce D_w(x; σ, c) for any w.
pub enum GuidedTeacher {
    /// A classic CFG teacher: D_u + w·(D_c − D_u), cond and uncond batched together.
    Cfg(EdmModel),
    /// A w-conditioned student: D(x; σ, c, w) in one evaluation.
    WInput(EdmModel),
}

impl GuidedTeacher {
    /// From a checkpoint: teachers use CFG, every student kind takes w as input.
    pub fn from_checkpoint(
        ck: &Checkpoint,
        device: &burn::tensor::Device,
    ) -> teacher::Result<Self> {
        let model = ck.inference_model(device)?;
        Ok(match ck.header.kind {
            ModelKind::Teacher => GuidedTeacher::Cfg(model),
            _ => GuidedTeacher::WInput(model),
        })
    }

    pub fn model(&self) -> &EdmModel {
        match self {
            GuidedTeacher::Cfg(m) | GuidedTeacher::WInput(m) => m,
        }
    }

    /// Network evaluations per image of one `denoise_w`.
    pub fn nfe_per_call(&self) -> usize {
        match self {
            GuidedTeacher::Cfg(_) => 2,
            GuidedTeacher::WInput(_) => 1,
        }
    }
}

impl DenoiseW for GuidedTeacher {
    fn denoise_w(
        &self,
        x: Tensor<4>,
        sigma: Tensor<1>,
        class: Tensor<1, Int>,
        w: Tensor<1>,
    ) -> Tensor<4> {
        match self {
            GuidedTeacher::WInput(m) => m.forward(x, sigma, class, Some(w)),
            GuidedTeacher::Cfg(m) => {
                let cond = Cond { class, extra: None };
                let (d_cond, d_uncond) = cond_and_uncond(m, x, sigma, &cond, m.null_class());
                cfg_per_example(d_uncond, d_cond, w)
            }
        }
    }
}

/// The guided denoiser as a plain [`teacher::edm::Denoiser`]: w comes from `cond.extra`.
impl teacher::edm::Denoiser for GuidedTeacher {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: &Cond) -> Tensor<4> {
        let w = cond
            .extra
            .clone()
            .expect("a guided denoiser needs w in cond.extra");
        self.denoise_w(x, sigma, cond.class.clone(), w)
    }

    fn nfe_per_call(&self) -> usize {
        GuidedTeacher::nfe_per_call(self)
    }
}
