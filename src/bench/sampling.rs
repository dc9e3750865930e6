//! `fewstep bench sampling`: the speedup a student buys, measured the way users will see it —
//! N images from the student at few steps and from the CFG teacher at many, same backend, batch,
//! seed and classes, one after the other in one process.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::sample::SampleSpec;

use crate::cli::BenchSamplingArgs;

/// Seconds to sample `spec.n` images from `ck`, and their NFE per image.
fn timed(ck: &Checkpoint, spec: &SampleSpec, device: &Device) -> Result<(f64, usize)> {
    let t = Instant::now();
    let (s, _) = student::sample::sample_any(ck, spec, device)?;
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
#[allow(clippy::too_many_arguments)]
pub fn measure(
    teacher: &Path,
    student: &Path,
    teacher_steps: usize,
    student_steps: usize,
    n: usize,
    batch: usize,
    guidance: f64,
    device: &Device,
    quiet: bool,
) -> Result<SamplingTiming> {
    let t_ck = Checkpoint::load(teacher)?;
    if t_ck.header.kind != ModelKind::Teacher {
        bail!(
            "`{}` holds a {:?} model: --teacher takes a run from `fewstep teacher train`",
            teacher.display(),
            t_ck.header.kind
        );
    }
    let student_path = student::sample::resolve_model(student, student_steps)?;
    let s_ck = Checkpoint::load(&student_path)?;
    let spec = |steps: usize, n: usize| SampleSpec::eval(n, steps, guidance, 0, batch);
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
        teacher: teacher.display().to_string(),
        teacher_steps,
        teacher_nfe: t_nfe,
        teacher_seconds: t_sec,
        student: student_path.display().to_string(),
        student_kind: format!("{:?}", s_ck.header.kind).to_lowercase(),
        student_steps,
        student_nfe: s_nfe,
        student_seconds: s_sec,
        n,
        batch,
        guidance,
        backend: format!("{device:?}"),
        speedup: t_sec / s_sec,
        nfe_ratio: t_nfe as f64 / s_nfe.max(1) as f64,
    })
}

pub fn sampling(args: BenchSamplingArgs, device: Device, quiet: bool) -> Result<()> {
    let r = measure(
        &args.teacher,
        &args.student,
        args.teacher_steps,
        args.student_steps,
        args.n,
        args.batch,
        args.guidance,
        &device,
        quiet,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r).expect("plain data"));
        return Ok(());
    }
    let per_1000 = |s: f64| s * 1000.0 / r.n as f64;
    println!(
        "teacher {} guided steps (NFE {}): {:.1} s / 1,000 images\n\
         {} student {} steps (NFE {}): {:.1} s / 1,000 images\n\
         speedup {:.1}× (NFE ratio {:.1}×), {} images each, batch {}, {}",
        r.teacher_steps,
        r.teacher_nfe,
        per_1000(r.teacher_seconds),
        r.student_kind,
        r.student_steps,
        r.student_nfe,
        per_1000(r.student_seconds),
        r.speedup,
        r.nfe_ratio,
        r.n,
        r.batch,
        r.backend
    );
    Ok(())
}
