//! The report's "Training cost" section: each training stage of the chain with its training
//! time as its own `metrics.jsonl` logs it (whatever process and threads ran it, across
//! resumes), and this pipeline's wall clock for the stages it ran itself.

use std::fmt::Write as _;
use std::path::PathBuf;

use teacher::train::{LoggedTime, logged_seconds};

use teacher::recipe::ModelKind;

use crate::chain::{Stage, training_stages};
use crate::config::PipelineConfig;

/// Logged time of a training stage: the sum over its run folders (a progressive run's rounds).
fn logged(stage: Stage, dir: PathBuf, batch: usize) -> Option<LoggedTime> {
    let times: Option<Vec<_>> = stage
        .run_dirs(&dir)
        .iter()
        .map(|d| logged_seconds(d, batch))
        .collect();
    let times = times.filter(|t| !t.is_empty())?;
    Some(LoggedTime {
        steps: times.iter().map(|t| t.steps).sum(),
        seconds: times.iter().map(|t| t.seconds).sum(),
    })
}

/// The section; `dir` gives a stage's folder, `teacher_batch` the teacher's images per step
/// (its own config's, for `--from-teacher`), `pipeline_seconds` a stage's recorded wall clock.
pub fn training_cost(
    cfg: &PipelineConfig,
    teacher_batch: usize,
    dir: impl Fn(Stage) -> PathBuf,
    pipeline_seconds: impl Fn(&str) -> Option<f64>,
) -> eval::report::Section {
    let rows: Vec<(Stage, Option<LoggedTime>, Option<f64>)> = training_stages(cfg)
        .map(|st| {
            let batch = match st {
                Stage::Teacher => teacher_batch,
                _ => st.batch(cfg).expect("training stages have a batch"),
            };
            (st, logged(st, dir(st), batch), pipeline_seconds(st.name()))
        })
        .collect();
    let seconds_of = |pick: fn(Stage) -> bool| -> Option<f64> {
        rows.iter()
            .filter(|r| pick(r.0))
            .map(|r| r.1.map(|t| t.seconds))
            .sum()
    };
    let teacher_s = seconds_of(|st| st == Stage::Teacher);
    let distilled = |st: Stage| st.trains().is_some_and(|k| k != ModelKind::Teacher);
    let distill_s = seconds_of(distilled);
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| distilled(r.0))
        .map(|r| r.0.name())
        .collect();
    let mut md = String::from(
        "Training time per stage as each run's `metrics.jsonl` logs it (Σ steps × batch ÷ img/s: \
         the run's own backend and threads, summed over resumes), and the wall clock of the \
         stages this pipeline invocation ran itself (resumed stages count only their last part).\n\n\
         | stage | optimizer steps | logged training s | × teacher | this pipeline's wall clock s |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let mut data = serde_json::Map::new();
    for (stage, t, p) in &rows {
        let name = stage.name();
        let ratio = match (t, teacher_s) {
            (Some(t), Some(ts)) => format!("{:.2}", t.seconds / ts),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {ratio} | {} |",
            t.map_or("–".into(), |t| t.steps.to_string()),
            t.map_or("–".into(), |t| format!("{:.0}", t.seconds)),
            p.map_or("–".into(), |s| format!("{s:.0}")),
        );
        data.insert(
            name.to_string(),
            serde_json::json!({ "logged": t, "pipeline_seconds": p }),
        );
    }
    if let (Some(d), Some(ts)) = (distill_s, teacher_s) {
        let _ = writeln!(
            md,
            "\nDistillation ({}): {d:.0} s = {:.2}× the teacher's {ts:.0} s.",
            names.join(" + "),
            d / ts
        );
        data.insert("distillation_vs_teacher".into(), serde_json::json!(d / ts));
    }
    baseline_costs(cfg, &rows, &mut md, &mut data);
    eval::report::Section {
        title: "Training cost".into(),
        markdown: md,
        data: serde_json::Value::Object(data),
    }
}

/// Each baseline's logged training time beside the chain's route to its teacher (a latent
/// chain's: autoencoder + base model), the training-compute side of the comparison.
fn baseline_costs(
    cfg: &PipelineConfig,
    rows: &[(Stage, Option<LoggedTime>, Option<f64>)],
    md: &mut String,
    data: &mut serde_json::Map<String, serde_json::Value>,
) {
    if cfg.eval.baselines.is_empty() {
        return;
    }
    let to_teacher: Vec<_> = rows
        .iter()
        .filter(|r| matches!(r.0, Stage::Autoencoder | Stage::Teacher))
        .collect();
    let route: Option<f64> = to_teacher.iter().map(|r| r.1.map(|t| t.seconds)).sum();
    let names: Vec<&str> = to_teacher.iter().map(|r| r.0.name()).collect();
    let mut out = serde_json::Map::new();
    for b in &cfg.eval.baselines {
        let t = baseline_logged(&b.run);
        let ratio = t.zip(route).map(|(t, r)| t.seconds / r);
        let _ = writeln!(
            md,
            "\nBaseline `{}` ({}): {} logged training s{}.",
            b.name,
            b.run.display(),
            t.map_or("–".into(), |t| format!(
                "{:.0} over {} steps",
                t.seconds, t.steps
            )),
            match (ratio, route) {
                (Some(x), Some(r)) =>
                    format!(" = {x:.2}× this chain's {} ({r:.0} s)", names.join(" + ")),
                _ => String::new(),
            }
        );
        out.insert(
            b.name.clone(),
            serde_json::json!({ "logged": t, "vs_chain_route": ratio }),
        );
    }
    data.insert("route_to_teacher_seconds".into(), serde_json::json!(route));
    data.insert("baselines".into(), serde_json::Value::Object(out));
}

/// A baseline run's logged training time, its batch from its own config.
fn baseline_logged(run: &std::path::Path) -> Option<LoggedTime> {
    let path = teacher::runs::resolve_model(run, 0).ok()?;
    let ck = teacher::checkpoint::Checkpoint::load(&path).ok()?;
    let batch = ck.header.teacher_config().ok()?.train.batch_size;
    let dir = if path.is_dir() { &path } else { path.parent()? };
    logged_seconds(dir, batch)
}
