//! Comparison reports: `results.json` (every number, seed and config hash), `report.md`,
//! a self-contained `report.html` (images inlined) and the plots, all from one [`Results`].

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::Metrics;
use crate::plots::{Chart, Series, line_chart};

/// One model at one step count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    /// Display name, e.g. "teacher", "progressive", "consistency".
    pub name: String,
    /// Model kind (teacher, guided, progressive, consistency).
    pub kind: String,
    pub run: String,
    /// sha256 (16 hex digits) of the run's resolved config.
    pub config_hash: String,
    pub steps: usize,
    /// Network evaluations per image (a CFG step counts 2).
    pub nfe: usize,
    pub guidance: f64,
    pub sampler: String,
    pub seed: u64,
    pub batch: usize,
    /// Wall clock of sampling `metrics.n_samples` images, and per 1,000 images.
    pub seconds: f64,
    pub seconds_per_1000: f64,
    pub metrics: Metrics,
    /// Sample grid (one row of this model's first images; for clips, a strip of frames per
    /// clip) beside the report.
    pub grid: String,
    /// Clips only: an animated PNG grid of the same samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animation: Option<String>,
}

/// FID of one model at one guidance weight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuidancePoint {
    pub name: String,
    pub steps: usize,
    pub guidance: f64,
    pub fid: f64,
}

/// The numbers every report leads with.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Headline {
    /// Best 4-step student's FID ÷ the 50-step guided teacher's FID (image reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_ratio_student4_vs_teacher50: Option<f64>,
    /// The same ratio of FVDs (clip reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fvd_ratio_student4_vs_teacher50: Option<f64>,
    /// Wall clock of the teacher at 50 guided steps ÷ that of the best 4-step student (same
    /// backend, same batch).
    pub speedup_student4_vs_teacher50: Option<f64>,
    pub best_student4: Option<String>,
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub title: String,
    /// The command that produced the report.
    pub command: String,
    /// The distance: "FID" (images) or "FVD" (clips); `metrics.fid` holds it either way.
    #[serde(default = "fid_name")]
    pub metric: String,
    /// Feature space name ("LeNet features (mnist, 128-d)").
    pub features: String,
    pub reference: String,
    /// FID of real held-out images against the reference: the floor.
    pub real_vs_real: Option<Metrics>,
    pub backend: String,
    pub models: Vec<ModelResult>,
    pub guidance_sweep: Vec<GuidancePoint>,
    pub headline: Headline,
    /// Further sections (serving artefacts, training cost, …) with their numbers.
    #[serde(default)]
    pub sections: Vec<Section>,
}

fn fid_name() -> String {
    "FID".into()
}

/// A titled markdown section of a report and the data behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub markdown: String,
    pub data: serde_json::Value,
}

impl Results {
    /// What one sample is: "clips" in an FVD report, "images" otherwise.
    pub fn unit(&self) -> &'static str {
        if self.metric == "FVD" {
            "clips"
        } else {
            "images"
        }
    }

    /// Fill `headline` from `models`: teacher at 50 steps vs the best (lowest-FID/FVD) 4-step
    /// student.
    pub fn compute_headline(&mut self) {
        let teacher50 = self
            .models
            .iter()
            .find(|m| m.kind == "teacher" && m.steps == 50);
        let best4 = self
            .models
            .iter()
            .filter(|m| m.kind != "teacher" && m.steps == 4)
            .min_by(|a, b| a.metrics.fid.total_cmp(&b.metrics.fid));
        if let (Some(t), Some(s)) = (teacher50, best4) {
            let ratio = Some(s.metrics.fid / t.metrics.fid);
            let video = self.metric == "FVD";
            self.headline = Headline {
                fid_ratio_student4_vs_teacher50: ratio.filter(|_| !video),
                fvd_ratio_student4_vs_teacher50: ratio.filter(|_| video),
                speedup_student4_vs_teacher50: Some(t.seconds_per_1000 / s.seconds_per_1000),
                best_student4: Some(s.name.clone()),
            };
        }
    }
}

/// One line per model name (in order, consecutive duplicates merged) of `f` against NFE.
fn nfe_series(r: &Results, names: &[String], f: &dyn Fn(&ModelResult) -> f64) -> Vec<Series> {
    names
        .iter()
        .map(|n| {
            let mut points: Vec<(f64, f64)> = r
                .models
                .iter()
                .filter(|m| &m.name == n)
                .map(|m| (m.nfe as f64, f(m)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: n.clone(),
                points,
            }
        })
        .collect()
}

/// One line of FID against guidance weight per model and step count of the sweep.
fn guidance_series(r: &Results) -> Vec<Series> {
    let mut sweep_names: Vec<String> = r
        .guidance_sweep
        .iter()
        .map(|g| format!("{} ({} steps)", g.name, g.steps))
        .collect();
    sweep_names.dedup();
    sweep_names
        .iter()
        .map(|n| Series {
            label: n.clone(),
            points: r
                .guidance_sweep
                .iter()
                .filter(|g| &format!("{} ({} steps)", g.name, g.steps) == n)
                .map(|g| (g.guidance, g.fid))
                .collect(),
        })
        .collect()
}

/// A chart description (the axes of one plot).
fn chart<'a>(title: &'a str, x_label: &'a str, y_label: &'a str, log_x: bool) -> Chart<'a> {
    Chart {
        title,
        x_label,
        y_label,
        log_x,
    }
}

fn plots(out: &Path, r: &Results) -> Result<Vec<(String, String)>> {
    let mut names: Vec<String> = r.models.iter().map(|m| m.name.clone()).collect();
    names.dedup();
    let d = &r.metric;
    let fid_label = format!("{d} ({})", r.features);
    let per_1000 = format!("seconds per 1,000 {}", r.unit());
    let (t_nfe, t_guid) = (format!("{d} vs NFE"), format!("{d} vs guidance weight"));
    let mut made = Vec::new();
    line_chart(
        &out.join("fid_vs_nfe.png"),
        &chart(&t_nfe, "NFE per sample (log)", &fid_label, true),
        &nfe_series(r, &names, &|m| m.metrics.fid),
    )?;
    made.push((t_nfe.clone(), "fid_vs_nfe.png".to_string()));
    line_chart(
        &out.join("latency_vs_nfe.png"),
        &chart(
            "Sampling time vs NFE",
            "NFE per sample (log)",
            &per_1000,
            true,
        ),
        &nfe_series(r, &names, &|m| m.seconds_per_1000),
    )?;
    made.push((
        "Latency vs NFE".to_string(),
        "latency_vs_nfe.png".to_string(),
    ));
    if !r.guidance_sweep.is_empty() {
        line_chart(
            &out.join("fid_vs_guidance.png"),
            &chart(&t_guid, "guidance weight w", &fid_label, false),
            &guidance_series(r),
        )?;
        made.push((
            format!("{d} vs guidance"),
            "fid_vs_guidance.png".to_string(),
        ));
    }
    Ok(made)
}

fn fmt_opt(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map(|x| format!("{:.*}", digits, x * scale))
        .unwrap_or_else(|| "–".into())
}

/// The markdown body (also the HTML's source).
pub fn markdown(r: &Results, plots: &[(String, String)]) -> String {
    let mut md = String::new();
    md_intro(&mut md, r);
    md_table(&mut md, r);
    for sec in &r.sections {
        let _ = writeln!(md, "\n## {}\n\n{}", sec.title, sec.markdown.trim_end());
    }
    for (title, file) in plots {
        let _ = writeln!(md, "\n## {title}\n\n![{title}]({file})");
    }
    md_samples(&mut md, r);
    let _ = writeln!(
        md,
        "Every number is in `results.json` with its seed and config hash."
    );
    md
}

/// Title, command, feature space, the headline and the real-vs-real floor.
fn md_intro(md: &mut String, r: &Results) {
    let _ = writeln!(md, "# {}\n", r.title);
    let _ = writeln!(md, "Produced by:\n\n```sh\n{}\n```\n", r.command);
    let (d, unit) = (&r.metric, r.unit());
    let _ = writeln!(
        md,
        "Features: **{d} ({})** against `{}`; backend: {}.\n",
        r.features, r.reference, r.backend
    );
    let h = &r.headline;
    if let (Some(fr), Some(sp)) = (
        h.fid_ratio_student4_vs_teacher50
            .or(h.fvd_ratio_student4_vs_teacher50),
        h.speedup_student4_vs_teacher50,
    ) {
        let _ = writeln!(
            md,
            "**Headline:** the best 4-step student ({}) reaches {:.2}× the {d} of the 50-step guided teacher at {:.1}× its sampling speed.\n",
            h.best_student4.as_deref().unwrap_or("?"),
            fr,
            sp
        );
    }
    if let Some(rr) = &r.real_vs_real {
        let _ = writeln!(
            md,
            "Real-vs-real floor: {d} {:.3} ({} held-out real {unit} vs {} reference).\n",
            rr.fid, rr.n_samples, rr.n_reference
        );
    }
}

/// The table of every model's numbers.
fn md_table(md: &mut String, r: &Results) {
    let (d, unit) = (&r.metric, r.unit());
    let short = if unit == "clips" { "clips" } else { "img" };
    let _ = writeln!(
        md,
        "| model | kind | steps | NFE | w | {d} | class acc. | precision | recall | s / 1,000 {short} | n |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &r.models {
        let x = &m.metrics;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.3} | {:.1} | {} |",
            m.name,
            m.kind,
            m.steps,
            m.nfe,
            m.guidance,
            x.fid,
            fmt_opt(x.class_accuracy, 100.0, 1) + if x.class_accuracy.is_some() { "%" } else { "" },
            x.precision,
            x.recall,
            m.seconds_per_1000,
            x.n_samples
        );
    }
}

/// The samples section: each model's grid (and animation, for clips).
fn md_samples(md: &mut String, r: &Results) {
    let _ = writeln!(
        md,
        "\n## Samples (same seeds, one row per model and step count)\n"
    );
    for m in &r.models {
        let _ = writeln!(
            md,
            "**{} · {} steps · NFE {}**\n\n![{} {}]({})\n",
            m.name, m.steps, m.nfe, m.name, m.steps, m.grid
        );
        if let Some(a) = &m.animation {
            let _ = writeln!(md, "![{} {} animated]({a})\n", m.name, m.steps);
        }
    }
}

/// Pairs of `marker` in `t` become `<tag>…</tag>` (Markdown's `**bold**` and `` `code` ``).
fn inline(t: &str, marker: &str, tag: &str) -> String {
    let mut t = t.to_string();
    while let (Some(a), true) = (t.find(marker), t.matches(marker).count() >= 2) {
        t.replace_range(a..a + marker.len(), &format!("<{tag}>"));
        let b = t.find(marker).expect("counted two");
        t.replace_range(b..b + marker.len(), &format!("</{tag}>"));
    }
    t
}

fn html(md_text: &str, out: &Path) -> String {
    // A small Markdown subset (headings, tables, images, code, paragraphs) rendered with PNGs
    // inlined as base64, so the file stands alone.
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fewstep report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}pre{background:#f4f4f4;padding:8px;overflow-x:auto}</style></head><body>\n",
    );
    let mut in_table = false;
    let mut in_code = false;
    for line in md_text.lines() {
        let esc = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        if line.starts_with("```") {
            h.push_str(if in_code { "</pre>\n" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            h.push_str(&esc);
            h.push('\n');
            continue;
        }
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                h.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            h.push_str("<tr>");
            for c in cells {
                let _ = write!(h, "<td>{}</td>", c.replace("**", ""));
            }
            h.push_str("</tr>\n");
            continue;
        } else if in_table {
            h.push_str("</table>\n");
            in_table = false;
        }
        if let Some(t) = line.strip_prefix("## ") {
            let _ = writeln!(h, "<h2>{t}</h2>");
        } else if let Some(t) = line.strip_prefix("# ") {
            let _ = writeln!(h, "<h1>{t}</h1>");
        } else if let Some(rest) = line.strip_prefix("![") {
            let file = rest
                .split("](")
                .nth(1)
                .map(|f| f.trim_end_matches(')'))
                .unwrap_or("");
            match std::fs::read(out.join(file)) {
                Ok(bytes) => {
                    let _ = writeln!(
                        h,
                        "<p><img alt=\"{file}\" src=\"data:image/png;base64,{}\"></p>",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    );
                }
                Err(_) => {
                    let _ = writeln!(h, "<p>(missing image {file})</p>");
                }
            }
        } else if !line.trim().is_empty() {
            let t = inline(&inline(&esc, "**", "b"), "`", "code");
            let _ = writeln!(h, "<p>{t}</p>");
        }
    }
    if in_table {
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Write results.json, the plots, report.md and report.html into `out` (grids must already be
/// there, named as in each model's `grid`).
pub fn write_report(out: &Path, r: &Results) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| EvalError::io("create", out, e))?;
    let made = plots(out, r)?;
    let json = serde_json::to_string_pretty(r).expect("plain data");
    teacher::checkpoint::write_atomic(&out.join("results.json"), json.as_bytes())?;
    let md = markdown(r, &made);
    teacher::checkpoint::write_atomic(&out.join("report.md"), md.as_bytes())?;
    teacher::checkpoint::write_atomic(&out.join("report.html"), html(&md, out).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::inline;

    #[test]
    fn inline_markdown_pairs() {
        assert_eq!(
            inline(&inline("**FID** vs `mnist-test`", "**", "b"), "`", "code"),
            "<b>FID</b> vs <code>mnist-test</code>"
        );
        assert_eq!(inline("a ` lone tick", "`", "code"), "a ` lone tick");
    }
}
