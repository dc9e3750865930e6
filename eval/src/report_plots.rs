//! The plots of a comparison report: quality against NFE (every model, and the teacher's
//! solvers), quality against w, and batch-1 latency and throughput against NFE. Quality plots
//! carry 95% error bars and the real-vs-real floor, on a y axis that starts at 0.

use std::path::Path;

use crate::error::Result;
use crate::interval::Interval;
use crate::plots::{Chart, Series, line_chart};
use crate::report::{ModelResult, Results};

/// (lo, hi) of an optional interval (NaN when absent, which draws no bar).
fn bar(ci: Option<Interval>) -> (f64, f64) {
    ci.map_or((f64::NAN, f64::NAN), |c| (c.lo, c.hi))
}

/// Model names in order, consecutive duplicates merged.
fn names(r: &Results) -> Vec<String> {
    let mut names: Vec<String> = r.models.iter().map(|m| m.name.clone()).collect();
    names.dedup();
    names
}

/// A row's plotted value and its interval, if it has one.
type Value = Option<(f64, Option<Interval>)>;

/// One line per model name of `f` (value, interval) against NFE.
fn nfe_series(r: &Results, f: &dyn Fn(&ModelResult) -> Value) -> Vec<Series> {
    let mut out = Vec::new();
    for n in names(r) {
        let mut pts: Vec<(f64, f64, (f64, f64))> = r
            .models
            .iter()
            .filter(|m| m.name == n)
            .filter_map(|m| f(m).map(|(v, ci)| (m.nfe as f64, v, bar(ci))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        out.push(Series {
            label: n.clone(),
            points: pts.iter().map(|p| (p.0, p.1)).collect(),
            errors: pts.iter().map(|p| p.2).collect(),
        });
    }
    out
}

/// One line of FID against w per model and step count of the sweeps.
fn guidance_series(r: &Results) -> Vec<Series> {
    let label = |g: &crate::report::GuidancePoint| format!("{} ({} steps)", g.name, g.steps);
    let mut labels: Vec<String> = r.guidance_sweep.iter().map(label).collect();
    labels.dedup();
    labels
        .iter()
        .map(|l| {
            let pts: Vec<_> = r.guidance_sweep.iter().filter(|g| &label(g) == l).collect();
            Series {
                label: l.clone(),
                points: pts.iter().map(|g| (g.guidance, g.fid)).collect(),
                errors: pts.iter().map(|g| bar(g.fid_ci95)).collect(),
            }
        })
        .collect()
}

/// The teacher's quality-vs-NFE curve, one line per solver.
fn solver_series(r: &Results) -> Vec<Series> {
    let mut solvers: Vec<String> = r.solver_curve.iter().map(|p| p.solver.clone()).collect();
    solvers.sort();
    solvers.dedup();
    let mut out: Vec<Series> = solvers
        .iter()
        .map(|s| {
            let mut pts: Vec<_> = r.solver_curve.iter().filter(|p| &p.solver == s).collect();
            pts.sort_by_key(|p| p.nfe);
            Series {
                label: format!("teacher, {s}"),
                points: pts.iter().map(|p| (p.nfe as f64, p.fid)).collect(),
                errors: pts.iter().map(|p| bar(Some(p.fid_ci95))).collect(),
            }
        })
        .collect();
    if let Some(eq) = &r.headline.equal_quality {
        let h = &r.headline;
        let nfe = r
            .models
            .iter()
            .find(|m| Some(&m.kind) == h.student.as_ref() && Some(m.steps) == h.steps)
            .map_or(f64::NAN, |m| m.nfe as f64);
        let mid = 0.5 * (eq.student_fid_ci95.lo + eq.student_fid_ci95.hi);
        out.push(Series {
            label: format!(
                "{} (declared), same n",
                h.student.as_deref().unwrap_or("student")
            ),
            points: vec![(nfe, mid)],
            errors: vec![(eq.student_fid_ci95.lo, eq.student_fid_ci95.hi)],
        });
    }
    out
}

/// Draw every plot of `r` into `out`; returns (title, file) of each.
pub fn plots(out: &Path, r: &Results) -> Result<Vec<(String, String)>> {
    let d = &r.metric;
    let fid_label = format!("{d} ({}), 95% interval", r.features);
    let floor = r
        .real_vs_real
        .as_ref()
        .map(|f| (f.fid, format!("real-vs-real floor (n = {})", f.n_samples)));
    let chart = |title: &'static str, x: &'static str, log_x: bool| (title, x, log_x);
    let quality = |c: (&'static str, &'static str, bool)| Chart {
        title: c.0,
        x_label: c.1,
        y_label: &fid_label,
        log_x: c.2,
        floor: floor.clone(),
        y_from_zero: true,
    };
    let mut made = Vec::new();
    let fid = nfe_series(r, &|m| Some((m.metrics.fid, m.metrics.fid_ci95)));
    line_chart(
        &out.join("fid_vs_nfe.png"),
        &quality(chart(
            "Quality vs NFE (every model, declared w)",
            "NFE per sample (log)",
            true,
        )),
        &fid,
    )?;
    made.push((format!("{d} vs NFE"), "fid_vs_nfe.png".to_string()));
    if !r.guidance_sweep.is_empty() {
        line_chart(
            &out.join("fid_vs_guidance.png"),
            &quality(chart(
                "Quality vs guidance weight",
                "guidance weight w",
                false,
            )),
            &guidance_series(r),
        )?;
        made.push((
            format!("{d} vs guidance"),
            "fid_vs_guidance.png".to_string(),
        ));
    }
    if !r.solver_curve.is_empty() {
        line_chart(
            &out.join("teacher_solvers.png"),
            &quality(chart(
                "Teacher quality vs NFE by solver",
                "NFE per sample (log)",
                true,
            )),
            &solver_series(r),
        )?;
        made.push((
            format!("Teacher {d} vs NFE by solver"),
            "teacher_solvers.png".to_string(),
        ));
    }
    made.extend(latency_plots(out, r)?);
    Ok(made)
}

/// Batch-1 latency and throughput against NFE, from the timing pass.
fn latency_plots(out: &Path, r: &Results) -> Result<Vec<(String, String)>> {
    let timed = |f: fn(&crate::report::Timing) -> f64| {
        move |m: &ModelResult| m.timing.as_ref().map(|t| (f(t), None))
    };
    let batch1 = nfe_series(r, &timed(|t| t.batch1_ms));
    let Some(batch) = r
        .models
        .iter()
        .find_map(|m| m.timing.as_ref().map(|t| t.batch))
    else {
        return Ok(Vec::new());
    };
    let unit = r.unit();
    let (y1, y2) = (
        format!("latency of one {} alone, ms", &unit[..unit.len() - 1]),
        format!("{unit} per second at batch {batch}"),
    );
    let plain = |title: &'static str, y: &'static str| (title, y);
    for ((title, y), (file, series)) in [
        (
            plain("Batch-1 latency vs NFE", ""),
            ("latency_vs_nfe.png", batch1),
        ),
        (
            plain("Throughput vs NFE", ""),
            ("throughput_vs_nfe.png", nfe_series(r, &timed(|t| t.per_s))),
        ),
    ] {
        let y_label = if file.starts_with("latency") {
            y1.as_str()
        } else {
            y2.as_str()
        };
        let _ = y;
        let chart = Chart {
            title,
            x_label: "NFE per sample (log)",
            y_label,
            log_x: true,
            floor: None,
            y_from_zero: true,
        };
        line_chart(&out.join(file), &chart, &series)?;
    }
    Ok(vec![
        ("Batch-1 latency vs NFE".into(), "latency_vs_nfe.png".into()),
        ("Throughput vs NFE".into(), "throughput_vs_nfe.png".into()),
    ])
}
