//! `fewstep bench sampling`: the speedup a student buys, measured the way users will see it —
//! N images from the student at few steps and from the CFG teacher at many, same backend, batch,
//! seed and classes, one after the other in one process.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use teacher::checkpoint::Checkpoint;
use teacher::recipe::ModelKind;
use teacher::sample::{SampleSpec, sample_checkpoint};

/// What `fewstep bench sampling` compares.
#[derive(Debug, Clone)]
pub struct SamplingSettings {
    /// The CFG teacher's run.
    pub teacher: PathBuf,
    /// The student's run (a progressive run: its `student_steps` round).
    pub student: PathBuf,
    pub teacher_steps: usize,
    pub student_steps: usize,
    /// Images from each model.
    pub n: usize,
    pub batch: usize,
    pub guidance: f64,
}

/// Seconds to sample `spec.n` images from `ck`, and their NFE per image.
fn timed(ck: &Checkpoint, spec: &SampleSpec, device: &Device) -> Result<(f64, usize)> {
    let t = Instant::now();
    let (s, _) = sample_checkpoint(ck, spec, device)?;
    Ok((t.elapsed().as_secs_f64(), s.nfe))
}

/// One sampling benchmark: the same N images (seeds, classes, batch) from both models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingTiming {
    pub teacher: String,
    pub teacher_steps: usize,
    pub teacher_nfe: usize,
    pub teacher_seconds: f64,
    pub student: String,
    pub student_kind: String,
    pub student_steps: usize,
    pub student_nfe: usize,
    pub student_seconds: f64,
    pub n: usize,
    pub batch: usize,
    pub guidance: f64,
    pub backend: String,
    /// teacher_seconds ÷ student_seconds.
    pub speedup: f64,
    pub nfe_ratio: f64,
}

/// Time `n` images from the student at `student_steps` and from the teacher at `teacher_steps`
/// guided steps, after one warm-up batch of each.
pub fn measure(a: &SamplingSettings, device: &Device, quiet: bool) -> Result<SamplingTiming> {
    let (teacher_steps, student_steps, n, batch) = (a.teacher_steps, a.student_steps, a.n, a.batch);
    let t_ck = Checkpoint::load(&a.teacher)?;
    if t_ck.header.kind() != ModelKind::Teacher {
        bail!(
            "`{}` holds a {} model: --teacher takes a run from `fewstep teacher train`",
            a.teacher.display(),
            t_ck.header.kind().name()
        );
    }
    let student_path = teacher::runs::resolve_model(&a.student, student_steps)?;
    let s_ck = Checkpoint::load(&student_path)?;
    let spec = |steps: usize, n: usize| SampleSpec::eval(n, steps, a.guidance, 0, batch);
    // Warm-up: one batch of each, so allocator and thread-pool start-up count for neither.
    let warm = batch.min(n);
    timed(&s_ck, &spec(student_steps, warm), device)?;
    timed(&t_ck, &spec(1, warm), device)?;
    let say = |what: String| {
        if !quiet {
            eprintln!("{what}");
        }
    };
    say(format!("student: {n} images at {student_steps} steps …"));
    let (s_sec, s_nfe) = timed(&s_ck, &spec(student_steps, n), device)?;
    say(format!(
        "teacher: {n} images at {teacher_steps} guided steps …"
    ));
    let (t_sec, t_nfe) = timed(&t_ck, &spec(teacher_steps, n), device)?;
    Ok(SamplingTiming {
        teacher: a.teacher.display().to_string(),
        teacher_steps,
        teacher_nfe: t_nfe,
        teacher_seconds: t_sec,
        student: student_path.display().to_string(),
        student_kind: s_ck.header.kind().name().into(),
        student_steps,
        student_nfe: s_nfe,
        student_seconds: s_sec,
        n,
        batch,
        guidance: a.guidance,
        backend: format!("{device:?}"),
        speedup: t_sec / s_sec,
        nfe_ratio: t_nfe as f64 / s_nfe.max(1) as f64,
    })
}

impl SamplingTiming {
    /// The result in words.
    pub fn describe(&self) -> String {
        let per_1000 = |s: f64| s * 1000.0 / self.n as f64;
        format!(
            "teacher {} guided steps (NFE {}): {:.1} s / 1,000 images\n\
             {} student {} steps (NFE {}): {:.1} s / 1,000 images\n\
             speedup {:.1}× (NFE ratio {:.1}×), {} images each, batch {}, {}",
            self.teacher_steps,
            self.teacher_nfe,
            per_1000(self.teacher_seconds),
            self.student_kind,
            self.student_steps,
            self.student_nfe,
            per_1000(self.student_seconds),
            self.speedup,
            self.nfe_ratio,
            self.n,
            self.batch,
            self.backend
        )
    }
}
