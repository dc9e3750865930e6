//! fewstep's students: one w-conditioned model replaces the cond+uncond pair (guided
//! distillation, Meng et al. 2023), halving rounds down to few steps (progressive distillation,
//! Salimans & Ho 2022), and one-to-few-step consistency models (Song et al. 2023).

pub mod config;
pub mod consistency;
pub mod guided;
pub mod guided_teacher;
pub mod progressive;
pub mod schedule;
pub mod source;
