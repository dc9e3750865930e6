//! Comparison reports: `results.json` (every number, seed and config hash), `report.md`,
//! a self-contained `report.html` (images inlined) and the plots, all from one [`Results`].
//! Every FID/KID and ratio carries its 95% interval; the headline is the setting the config
//! declared before measuring (`report_md` renders it, `report_plots` draws it).

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::fidelity::Paired;
use crate::interval::Interval;
use crate::memorisation::Memorisation;
use crate::metrics::Metrics;

/// A ratio of two FIDs (or FVDs) with its bootstrap interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ratio {
    pub value: f64,
    pub ci95: Interval,
}

impl Ratio {
    /// "within noise" when the interval holds 1, else which side it lies on.
    pub fn verdict(&self) -> &'static str {
        if self.ci95.contains(1.0) {
            "within noise"
        } else if self.ci95.hi < 1.0 {
            "better"
        } else {
            "worse"
        }
    }
}

/// Distance of a model's samples to the teacher's from the same noise and class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fidelity {
    /// The model the samples are compared to, e.g. "teacher 50 steps".
    pub against: String,
    /// Per-pair pixel RMSE (images in [−1, 1]).
    pub pixel_rmse: Paired,
    /// Per-pair Euclidean distance of the feature vectors.
    pub feature_distance: Paired,
}

/// Nearest-neighbour distances to the training set, in pixels and in features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemorisationResult {
    pub pixels: Memorisation,
    pub features: Memorisation,
}

/// Timing of one setting in the report's timing pass (one process, after all sampling).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    /// Median latency of one sample alone (batch 1), milliseconds.
    pub batch1_ms: f64,
    /// Batch of the throughput figure.
    pub batch: usize,
    /// Throughput at `batch`: samples per second (median of the runs).
    pub per_s: f64,
    pub reps: usize,
}

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
    /// Wall clock of sampling `metrics.n_samples` images (summed over resumed chunks), and per
    /// 1,000 images.
    pub seconds: f64,
    pub seconds_per_1000: f64,
    pub metrics: Metrics,
    /// FID ÷ the teacher-50's (same reference resamples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_teacher: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memorisation: Option<MemorisationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// Sample grid (one row of this model's first images; for clips, a strip of frames per
    /// clip) beside the report.
    pub grid: String,
    /// Clips only: an animated PNG grid of the same samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animation: Option<String>,
    /// A model of another run beside the chain's: its role (`pixel_route`, `equal_compute`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// FID of one model at one guidance weight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuidancePoint {
    pub name: String,
    pub steps: usize,
    pub guidance: f64,
    pub fid: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_ci95: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_ci95: Option<Interval>,
    #[serde(default)]
    pub n: usize,
}

/// The teacher with one ODE solver at one step count: a point of its quality-vs-NFE curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SolverPoint {
    pub solver: String,
    pub steps: usize,
    pub nfe: usize,
    pub n: usize,
    pub fid: f64,
    pub fid_ci95: Interval,
    pub kid: f64,
    pub kid_ci95: Interval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// The teacher setting that first reaches the headline student's quality.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EqualQuality {
    /// The student's FID interval at the curve's n.
    pub student_fid_ci95: Interval,
    pub n: usize,
    /// Teacher seconds per sample (throughput batch) at the crossing.
    pub teacher_seconds: f64,
    pub teacher_nfe: f64,
    /// Between two measured settings (in ln seconds), or a measured one.
    pub interpolated: bool,
    /// The cheapest measured setting that reaches it, e.g. "dpmpp2m 10 steps".
    pub first_reaching: String,
    pub student_seconds: f64,
    pub speedup: f64,
}

/// The numbers every report leads with: the setting the config declared, measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Headline {
    /// Samples behind each headline figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// The declared student kind, step count and guidance weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<f64>,
    /// The declared student's FID ÷ the 50-step guided teacher's FID (image reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_ratio_student4_vs_teacher50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_ratio_ci95: Option<Interval>,
    /// The same ratio of FVDs (clip reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fvd_ratio_student4_vs_teacher50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fvd_ratio_ci95: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_student4: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_student4_ci95: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_teacher50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid_teacher50_ci95: Option<Interval>,
    /// Mean pixel RMSE of the student's samples to the teacher-50's (same noise and class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_rmse_student4: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_rmse_ci95: Option<Interval>,
    /// Throughput of the student ÷ that of the teacher at 50 guided Euler steps (timing pass).
    pub speedup_student4_vs_teacher50: Option<f64>,
    /// Teacher time at the cheapest setting whose FID interval reaches the student's ÷ the
    /// student's time (None: no measured setting reaches it, or no curve was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup_equal_quality: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_quality: Option<EqualQuality>,
    /// The ratio target and whether the interval's upper end meets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
    /// Reports before the declared headline named the best 4-step student here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_student4: Option<String>,
    /// Network evaluations per image of the declared student, end to end (a latent chain's
    /// decoder included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfe_end_to_end_student: Option<usize>,
    /// A latent chain's teacher-50 FID ÷ the pixel route's (`pixel_route` baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_latent_vs_pixel_teacher50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_latent_vs_pixel_ci95: Option<Interval>,
    /// A NestedUNet chain's teacher-50 FID ÷ the plain U-Net's trained for the same wall clock
    /// (`equal_compute` baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_nested_vs_unet_equal_compute: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid_nested_vs_unet_ci95: Option<Interval>,
    /// A latent chain: PSNR of decode(encode(x)) on the reference's test images, dB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recon_psnr: Option<f64>,
    /// A latent chain: the prior's rate in bits per latent dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits_per_latent_dim: Option<f64>,
}

impl Headline {
    /// The ratio and its interval, whichever metric the report uses.
    pub fn ratio(&self) -> Option<(f64, Option<Interval>)> {
        match (
            self.fid_ratio_student4_vs_teacher50,
            self.fvd_ratio_student4_vs_teacher50,
        ) {
            (Some(r), _) => Some((r, self.fid_ratio_ci95)),
            (None, Some(r)) => Some((r, self.fvd_ratio_ci95)),
            _ => None,
        }
    }
}

/// How the report's intervals were drawn, in words and numbers.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Protocol {
    pub bootstrap: usize,
    pub kid_blocks: usize,
    pub kid_subsets: usize,
    pub kid_subset_size: usize,
    /// Samples per point of the guidance sweeps and the teacher's NFE curve.
    pub sweep_n: usize,
    /// Samples per model entering the nearest-neighbour distances.
    pub memorisation_n: usize,
    /// The training set of the nearest-neighbour distances.
    pub train: String,
    /// Wall clock of this report, and how many sample chunks it sampled (the rest came from
    /// the resumable cache).
    pub seconds: f64,
    pub new_chunks: usize,
    pub cached_chunks: usize,
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
    #[serde(default)]
    pub protocol: Protocol,
    pub models: Vec<ModelResult>,
    pub guidance_sweep: Vec<GuidancePoint>,
    #[serde(default)]
    pub solver_curve: Vec<SolverPoint>,
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
    let made = crate::report_plots::plots(out, r)?;
    let json = serde_json::to_string_pretty(r).expect("plain data");
    teacher::checkpoint::write_atomic(&out.join("results.json"), json.as_bytes())?;
    let md = crate::report_md::markdown(r, &made);
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
