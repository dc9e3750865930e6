//! The verdict of a report (issue #15) over its scored main-table rows: every model's FID ratio
//! to the teacher-50 with its bootstrap interval, fidelity to the teacher's samples from the
//! same noise, nearest-neighbour memorisation, guidance sweeps for every model, the teacher's
//! quality-vs-NFE curve per solver, a timing pass (batch-1 latency and throughput, one process),
//! and the declared headline with its equal-quality speedup.

use anyhow::Result;
use eval::equal_quality::{CurvePoint, best_reach};
use eval::fidelity::{feature_distance, pixel_rmse};
use eval::interval::{ratio_replicates, sd_interval};
use eval::memorisation::{memorisation, nearest_distances};
use eval::report::{
    EqualQuality, Fidelity, GuidancePoint, Headline, MemorisationResult, Ratio, SolverPoint, Timing,
};
use teacher::checkpoint::Checkpoint;
use teacher::edm::solver::Sampler;
use teacher::recipe::{Guidance, ModelKind};

use crate::config::BaselineRole;
use crate::images::image_source;
use crate::report::{ReportSettings, Row, Scoring, steps_within};

/// What the analyses add to the main table.
pub(crate) struct Verdict {
    pub sweep: Vec<GuidancePoint>,
    pub curve: Vec<SolverPoint>,
    pub headline: Headline,
}

/// The teacher's solvers on its quality-vs-NFE curve.
const SOLVERS: [Sampler; 3] = [Sampler::Euler, Sampler::Heun, Sampler::Dpmpp2m];

/// Run every analysis over `rows` (filled in place) and return the rest of the verdict.
pub(crate) fn analyse(
    args: &ReportSettings,
    rows: &mut [Row],
    scoring: &Scoring,
    quiet: bool,
) -> Result<Verdict> {
    let t50 = teacher_reference(rows);
    if let Some(t) = t50 {
        ratios_and_fidelity(rows, t)?;
    }
    if args.verdict.memorisation_n >= 2 {
        memorisation_rows(args, rows, scoring)?;
    }
    let teacher_ck = match t50 {
        Some(t) => Some(Checkpoint::load(&rows[t].path)?),
        None => None,
    };
    let sweep = sweeps(args, rows, teacher_ck.as_ref(), scoring, quiet)?;
    let mut curve = match &teacher_ck {
        Some(ck) => solver_curve(args, ck, scoring, quiet)?,
        None => Vec::new(),
    };
    timing_pass(args, rows, teacher_ck.as_ref(), &mut curve, scoring, quiet)?;
    let headline = headline(args, rows, t50, &curve, scoring)?;
    Ok(Verdict {
        sweep,
        curve,
        headline,
    })
}

/// The teacher row the students are judged against: 50 steps, else its most steps (never a
/// baseline of another run).
fn teacher_reference(rows: &[Row]) -> Option<usize> {
    let teachers = || {
        (0..rows.len())
            .filter(|&i| rows[i].kind == ModelKind::Teacher && rows[i].baseline.is_none())
    };
    teachers()
        .find(|&i| rows[i].result.steps == 50)
        .or_else(|| teachers().max_by_key(|&i| rows[i].result.steps))
}

/// Every row's FID ratio to row `t` (shared reference resamples) and its fidelity to `t`'s
/// samples (same noise and class, image by image).
fn ratios_and_fidelity(rows: &mut [Row], t: usize) -> Result<()> {
    let (t_fid, t_reps) = (
        rows[t].result.metrics.fid,
        rows[t].scored.fid_replicates.clone(),
    );
    let (t_imgs, t_feats) = (rows[t].images.clone(), rows[t].scored.features.clone());
    let against = format!("{} {} steps", rows[t].result.name, rows[t].result.steps);
    for (i, row) in rows.iter_mut().enumerate() {
        if i == t {
            continue;
        }
        let value = row.result.metrics.fid / t_fid;
        let reps = ratio_replicates(&row.scored.fid_replicates, &t_reps);
        let ci95 = sd_interval(value, &reps);
        row.result.vs_teacher = Some(Ratio { value, ci95 });
        if row.baseline.is_some() {
            // Another run's model: not distilled from this teacher, so no fidelity to it.
            continue;
        }
        let (len, d) = (
            row.images.len() / row.result.metrics.n_samples.max(1),
            row.scored.dim,
        );
        let n = row.result.metrics.n_samples.min(t_imgs.len() / len.max(1));
        row.result.fidelity = Some(Fidelity {
            against: against.clone(),
            pixel_rmse: pixel_rmse(&row.images[..n * len], &t_imgs[..n * len], len)?,
            feature_distance: feature_distance(
                &row.scored.features[..n * d],
                &t_feats[..n * d],
                d,
            )?,
        });
    }
    Ok(())
}

/// Nearest-neighbour distances of each row's first samples (and of as many test images) to
/// the training set, in pixels and in features.
fn memorisation_rows(args: &ReportSettings, rows: &mut [Row], scoring: &Scoring) -> Result<()> {
    let Some(train_spec) = &args.verdict.train else {
        return Ok(());
    };
    let (train, _, shape) = image_source(train_spec, args.data.as_deref(), scoring.channels())?;
    let (train_f, d) = scoring.space.features(&train, shape, &scoring.device)?;
    let len = shape.len();
    let r = &scoring.reference;
    let m = args.verdict.memorisation_n.min(r.stats.n);
    let test_px = nearest_distances(&scoring.reference_images[..m * len], &train, len)?;
    let test_f = nearest_distances(&r.features[..m * d], &train_f, d)?;
    let n_train = train.len() / len;
    for row in rows.iter_mut() {
        let k = m.min(row.result.metrics.n_samples);
        let px = nearest_distances(&row.images[..k * len], &train, len)?;
        let f = nearest_distances(&row.scored.features[..k * d], &train_f, d)?;
        row.result.memorisation = Some(MemorisationResult {
            pixels: memorisation(&px, &test_px, n_train)?,
            features: memorisation(&f, &test_f, n_train)?,
        });
    }
    Ok(())
}

/// One scored sweep point of `ck` at `steps` and `w`.
fn sweep_point(
    args: &ReportSettings,
    ck: &Checkpoint,
    steps: usize,
    w: f64,
    scoring: &Scoring,
) -> Result<GuidancePoint> {
    let n = args.verdict.sweep_n;
    let s = scoring.sample(ck, steps, None, w, n)?;
    let name = ck.header.kind().name();
    let label = format!("sweep-{name}-{steps}-w{w}");
    let m = scoring
        .score(
            &s.images,
            &s.classes,
            teacher::sample::output_shape(ck)?,
            &label,
        )?
        .metrics;
    Ok(GuidancePoint {
        name: name.to_string(),
        steps,
        guidance: w,
        fid: m.fid,
        fid_ci95: m.fid_ci95,
        kid: m.kid.as_ref().map(|k| k.kid),
        kid_ci95: m.kid.as_ref().map(|k| k.ci95),
        n: m.n_samples,
    })
}

/// FID/KID against w for the teacher (at `sweep_steps`) and every student (at the headline's
/// steps, else its most steps in the table).
fn sweeps(
    args: &ReportSettings,
    rows: &[Row],
    teacher_ck: Option<&Checkpoint>,
    scoring: &Scoring,
    quiet: bool,
) -> Result<Vec<GuidancePoint>> {
    if args.sweep_guidance.is_empty() {
        return Ok(Vec::new());
    }
    let mut models: Vec<(Checkpoint, usize)> = Vec::new();
    if let Some(ck) = teacher_ck {
        models.push((ck.clone(), args.sweep_steps));
    }
    for kind in [
        ModelKind::Guided,
        ModelKind::Progressive,
        ModelKind::Consistency,
    ] {
        let of_kind = rows.iter().filter(|r| r.kind == kind);
        let want = args.verdict.headline.map(|h| h.steps);
        let pick = match want {
            Some(s) => of_kind.clone().find(|r| r.result.steps == s),
            None => None,
        }
        .or_else(|| of_kind.max_by_key(|r| r.result.steps));
        if let Some(r) = pick {
            models.push((Checkpoint::load(&r.path)?, r.result.steps));
        }
    }
    let total = (models.len() * args.sweep_guidance.len()) as u64;
    let pb = teacher::progress::bar(total, quiet, "guidance sweeps");
    let mut out = Vec::new();
    for (ck, steps) in &models {
        for &w in &args.sweep_guidance {
            pb.set_message(format!("{} w = {w}", ck.header.kind().name()));
            out.push(sweep_point(args, ck, *steps, w, scoring)?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(out)
}

/// The teacher with Euler, Heun and DPM-Solver++(2M) at each NFE budget (the most steps that
/// fit; settings two budgets share are measured once), at the declared w.
fn solver_curve(
    args: &ReportSettings,
    ck: &Checkpoint,
    scoring: &Scoring,
    quiet: bool,
) -> Result<Vec<SolverPoint>> {
    let per_call = Guidance::Cfg(args.guidance).nfe_per_call();
    let mut settings: Vec<(Sampler, usize)> = Vec::new();
    for &budget in &args.solver_nfe {
        for s in SOLVERS {
            if let Some(steps) = steps_within(s, budget, per_call)
                && !settings.contains(&(s, steps))
            {
                settings.push((s, steps));
            }
        }
    }
    let pb = teacher::progress::bar(settings.len() as u64, quiet, "teacher NFE curve");
    let mut out = Vec::new();
    for (sampler, steps) in settings {
        pb.set_message(format!("{} {steps} steps", sampler.name()));
        let s = scoring.sample(
            ck,
            steps,
            Some(sampler),
            args.guidance,
            args.verdict.sweep_n,
        )?;
        let label = format!("curve-{}-{steps}", sampler.name());
        let m = scoring
            .score(
                &s.images,
                &s.classes,
                teacher::sample::output_shape(ck)?,
                &label,
            )?
            .metrics;
        let kid = m.kid.clone().expect("score computes KID");
        out.push(SolverPoint {
            solver: sampler.name().to_string(),
            steps,
            nfe: s.nfe,
            n: m.n_samples,
            fid: m.fid,
            fid_ci95: m.fid_ci95.expect("score computes the interval"),
            kid: kid.kid,
            kid_ci95: kid.ci95,
            timing: None,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// Batch-1 latency and throughput at the timing batch of one setting.
fn time_setting(
    args: &ReportSettings,
    ck: &Checkpoint,
    steps: usize,
    sampler: Option<Sampler>,
    scoring: &Scoring,
) -> Result<Timing> {
    let (v, dev) = (&args.verdict, &scoring.device);
    let spec = |n: usize| teacher::sample::SampleSpec {
        sampler,
        decoder: scoring.decoder_for(ck),
        ..teacher::sample::SampleSpec::eval(n, steps, args.guidance, 0, n)
    };
    let one = crate::measure::latency(ck, &spec(1), v.timing_reps, dev)?;
    let b = v.timing_batch;
    let many = crate::measure::latency(ck, &spec(b), v.timing_reps, dev)?;
    Ok(Timing {
        batch1_ms: one.median_s * 1e3,
        batch: b,
        per_s: many.images_per_s(),
        reps: many.reps,
    })
}

/// Time every main-table row and every curve point in this one process, after all sampling.
fn timing_pass(
    args: &ReportSettings,
    rows: &mut [Row],
    teacher_ck: Option<&Checkpoint>,
    curve: &mut [SolverPoint],
    scoring: &Scoring,
    quiet: bool,
) -> Result<()> {
    let pb = teacher::progress::bar((rows.len() + curve.len()) as u64, quiet, "timing");
    for row in rows.iter_mut() {
        let ck = Checkpoint::load(&row.path)?;
        row.result.timing = Some(time_setting(args, &ck, row.result.steps, None, scoring)?);
        pb.inc(1);
    }
    if let Some(ck) = teacher_ck {
        for p in curve.iter_mut() {
            let sampler = SOLVERS.into_iter().find(|s| s.name() == p.solver);
            p.timing = Some(time_setting(args, ck, p.steps, sampler, scoring)?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(())
}

/// The teacher's cheapest setting whose FID interval reaches the student's (at the curve's n).
fn equal_quality(
    args: &ReportSettings,
    student: &Row,
    curve: &[SolverPoint],
    scoring: &Scoring,
) -> Result<Option<EqualQuality>> {
    let n = args.verdict.sweep_n.min(student.result.metrics.n_samples);
    let len = student.images.len() / student.result.metrics.n_samples.max(1);
    let ck = Checkpoint::load(&student.path)?;
    let k = ck.header.spec.num_classes;
    let classes: Vec<usize> = (0..n)
        .map(|i| teacher::sample::ClassChoice::All.class_of(i, k))
        .collect();
    let label = format!("eq-{}-{}-n{n}", student.result.name, student.result.steps);
    let shape = teacher::sample::output_shape(&ck)?;
    let m = scoring
        .score(&student.images[..n * len], &classes, shape, &label)?
        .metrics;
    let Some(target) = m.fid_ci95 else {
        return Ok(None);
    };
    let Some(st) = &student.result.timing else {
        return Ok(None);
    };
    let curves: Vec<Vec<CurvePoint>> = SOLVERS
        .iter()
        .map(|s| {
            curve
                .iter()
                .filter(|p| p.solver == s.name())
                .filter_map(|p| {
                    p.timing.as_ref().map(|t| CurvePoint {
                        label: format!("{} {} steps", p.solver, p.steps),
                        nfe: p.nfe,
                        seconds: 1.0 / t.per_s,
                        fid: p.fid,
                        ci95: p.fid_ci95,
                    })
                })
                .collect()
        })
        .collect();
    let Some(reach) = best_reach(&curves, &target) else {
        return Ok(None);
    };
    let student_seconds = 1.0 / st.per_s;
    Ok(Some(EqualQuality {
        student_fid_ci95: target,
        n,
        teacher_seconds: reach.seconds,
        teacher_nfe: reach.nfe,
        interpolated: reach.interpolated,
        first_reaching: reach.first_reaching,
        student_seconds,
        speedup: reach.seconds / student_seconds,
    }))
}

/// The declared headline, measured.
fn headline(
    args: &ReportSettings,
    rows: &[Row],
    t50: Option<usize>,
    curve: &[SolverPoint],
    scoring: &Scoring,
) -> Result<Headline> {
    let (Some(decl), Some(t)) = (args.verdict.headline, t50) else {
        return Ok(Headline::default());
    };
    let Some(s) = rows
        .iter()
        .find(|r| r.kind == decl.student && r.result.steps == decl.steps)
    else {
        anyhow::bail!(
            "the declared headline ({} at {} steps) is not among the report's models: add its run and step count, or change eval.verdict.headline",
            decl.student.name(),
            decl.steps
        );
    };
    let (sr, tr) = (&s.result, &rows[t].result);
    let ratio = sr.vs_teacher.clone();
    let clips = scoring.space.metric() == "FVD";
    let kid = |m: &eval::metrics::Metrics| m.kid.as_ref().map(|k| (k.kid, k.ci95));
    let speedup = match (&sr.timing, &tr.timing) {
        (Some(a), Some(b)) => Some(a.per_s / b.per_s),
        _ => None,
    };
    let eq = equal_quality(args, s, curve, scoring)?;
    let (r, rci) = (
        ratio.as_ref().map(|r| r.value),
        ratio.as_ref().map(|r| r.ci95),
    );
    Ok(Headline {
        n: Some(sr.metrics.n_samples.min(tr.metrics.n_samples)),
        student: Some(sr.kind.clone()),
        steps: Some(sr.steps),
        w: Some(args.guidance),
        fid_ratio_student4_vs_teacher50: r.filter(|_| !clips),
        fid_ratio_ci95: rci.filter(|_| !clips),
        fvd_ratio_student4_vs_teacher50: r.filter(|_| clips),
        fvd_ratio_ci95: rci.filter(|_| clips),
        kid_student4: kid(&sr.metrics).map(|k| k.0),
        kid_student4_ci95: kid(&sr.metrics).map(|k| k.1),
        kid_teacher50: kid(&tr.metrics).map(|k| k.0),
        kid_teacher50_ci95: kid(&tr.metrics).map(|k| k.1),
        fidelity_rmse_student4: sr.fidelity.as_ref().map(|f| f.pixel_rmse.mean),
        fidelity_rmse_ci95: sr.fidelity.as_ref().map(|f| f.pixel_rmse.ci95),
        speedup_student4_vs_teacher50: speedup,
        speedup_equal_quality: eq.as_ref().map(|e| e.speedup),
        equal_quality: eq,
        target_ratio: Some(args.verdict.target_ratio),
        target_met: rci.map(|c| c.hi <= args.verdict.target_ratio),
        nfe_end_to_end_student: Some(sr.nfe),
        ..baseline_ratios(rows, t)
    })
}

/// The chain's teacher-50 FID ÷ each baseline's, with the ratio's interval (shared reference
/// resamples), under the baseline's role key.
fn baseline_ratios(rows: &[Row], t: usize) -> Headline {
    let mut h = Headline::default();
    for b in rows.iter().filter(|r| r.baseline.is_some()) {
        let value = rows[t].result.metrics.fid / b.result.metrics.fid;
        let reps = ratio_replicates(&rows[t].scored.fid_replicates, &b.scored.fid_replicates);
        let ci = Some(sd_interval(value, &reps));
        match b.baseline {
            Some(BaselineRole::PixelRoute) => {
                (h.fid_latent_vs_pixel_teacher50, h.fid_latent_vs_pixel_ci95) = (Some(value), ci);
            }
            Some(BaselineRole::EqualCompute) => {
                (
                    h.fid_nested_vs_unet_equal_compute,
                    h.fid_nested_vs_unet_ci95,
                ) = (Some(value), ci);
            }
            Some(BaselineRole::Other) | None => {}
        }
    }
    h
}
