//! `fewstep bench sampling`: the speedup a student buys, measured the way users will see it —
//! N images from the student at few steps and from the CFG teacher at many, same backend, batch,
//! seed and classes, one after the other in one process.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use teacher::checkpoint::{Checkpoint, ModelKind};
use teacher::sample::SampleSpec;

use crate::cli::BenchSamplingArgs;

/// Seconds to sample `spec.n` images from `ck`, and their NFE per image.
fn timed(ck: &Checkpoint, spec: &SampleSpec, device: &Device) -> Result<(f64, usize)> {
    let t = Instant::now();
    let (s, _) = student::sample::sample_any(ck, spec, device)?;
    Ok((t.elapsed().as_secs_f64(), s.nfe))
}

pub fn sampling(args: BenchSamplingArgs, device: Device, quiet: bool) -> Result<()> {
    let teacher = Checkpoint::load(&args.teacher)?;
    if teacher.header.kind != ModelKind::Teacher {
        bail!(
            "`{}` holds a {:?} model: --teacher takes a run from `fewstep teacher train`",
            args.teacher.display(),
            teacher.header.kind
        );
    }
    let student_path = student::sample::resolve_model(&args.student, args.student_steps)?;
    let student = Checkpoint::load(&student_path)?;
    let spec = |steps: usize, n: usize| SampleSpec::eval(n, steps, args.guidance, 0, args.batch);
    // Warm-up: one batch of each, so allocator and thread-pool start-up count for neither.
    let warm = args.batch.min(args.n);
    timed(&student, &spec(args.student_steps, warm), &device)?;
    timed(&teacher, &spec(1, warm), &device)?;
    let say = |what: &str| {
        if !quiet {
            eprintln!("{what}");
        }
    };
    say(&format!(
        "student: {} images at {} steps …",
        args.n, args.student_steps
    ));
    let (s_sec, s_nfe) = timed(&student, &spec(args.student_steps, args.n), &device)?;
    say(&format!(
        "teacher: {} images at {} guided steps …",
        args.n, args.teacher_steps
    ));
    let (t_sec, t_nfe) = timed(&teacher, &spec(args.teacher_steps, args.n), &device)?;
    let speedup = t_sec / s_sec;
    let per_1000 = |s: f64| s * 1000.0 / args.n as f64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "teacher": args.teacher.display().to_string(), "teacher_steps": args.teacher_steps,
                "teacher_nfe": t_nfe, "teacher_seconds": t_sec,
                "student": student_path.display().to_string(), "student_kind": student.header.kind,
                "student_steps": args.student_steps, "student_nfe": s_nfe, "student_seconds": s_sec,
                "n": args.n, "batch": args.batch, "guidance": args.guidance,
                "backend": format!("{device:?}"), "speedup": speedup,
                "nfe_ratio": t_nfe as f64 / s_nfe.max(1) as f64,
            })
        );
    } else {
        println!(
            "teacher {} guided steps (NFE {t_nfe}): {:.1} s / 1,000 images\n\
             {:?} student {} steps (NFE {s_nfe}): {:.1} s / 1,000 images\n\
             speedup {speedup:.1}× (NFE ratio {:.1}×), {} images each, batch {}, {device:?}",
            args.teacher_steps,
            per_1000(t_sec),
            student.header.kind,
            args.student_steps,
            per_1000(s_sec),
            t_nfe as f64 / s_nfe.max(1) as f64,
            args.n,
            args.batch
        );
    }
    Ok(())
}
