//! The markdown of a comparison report (also the HTML's source): the declared headline with its
//! intervals and verdict, every model's numbers, the guidance sweeps, the teacher's solvers,
//! memorisation, further sections, plots and sample grids.

use std::fmt::Write as _;

use crate::interval::Interval;
use crate::report::{Headline, Results, Timing};

/// "12.34 [11.9, 12.8]".
fn with_ci(v: f64, ci: Option<Interval>, digits: usize) -> String {
    match ci {
        Some(c) => format!("{v:.digits$} [{:.digits$}, {:.digits$}]", c.lo, c.hi),
        None => format!("{v:.digits$}"),
    }
}

/// Four significant digits, in scientific notation outside 0.001–9999 (KID spans 1e-4 to 1e9
/// with unnormalised features).
fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let e = v.abs().log10().floor() as i32;
    if (-3..4).contains(&e) {
        format!("{:.*}", (3 - e) as usize, v)
    } else {
        format!("{v:.3e}")
    }
}

/// "v [lo, hi]" with [`sig`].
fn sig_ci(v: f64, ci: Option<Interval>) -> String {
    match ci {
        Some(c) => format!("{} [{}, {}]", sig(v), sig(c.lo), sig(c.hi)),
        None => sig(v),
    }
}

fn fmt_opt(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map(|x| format!("{:.*}", digits, x * scale))
        .unwrap_or_else(|| "–".into())
}

/// The markdown body.
pub fn markdown(r: &Results, plots: &[(String, String)]) -> String {
    let mut md = String::new();
    md_intro(&mut md, r);
    md_headline(&mut md, r);
    md_table(&mut md, r);
    md_sweep(&mut md, r);
    md_solvers(&mut md, r);
    md_memorisation(&mut md, r);
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

/// Title, command, feature space, protocol and the real-vs-real floor.
fn md_intro(md: &mut String, r: &Results) {
    let _ = writeln!(md, "# {}\n", r.title);
    let _ = writeln!(md, "Produced by:\n\n```sh\n{}\n```\n", r.command);
    let (d, unit, p) = (&r.metric, r.unit(), &r.protocol);
    let _ = writeln!(
        md,
        "Features: **{d} ({})** against `{}`; backend: {}.\n",
        r.features, r.reference, r.backend
    );
    if p.bootstrap > 0 {
        let _ = writeln!(
            md,
            "Intervals: every {d} and ratio carries a 95% bootstrap interval at its n (± 1.96 \
             standard deviations of {} resamples of the samples and of the reference; a ratio's \
             two models share each reference resample; `results.json` also holds the basic \
             interval of the population {d}), KID a delete-one-block jackknife interval ({} blocks) \
             beside clean-fid's subset mean ± sd ({} subsets of {}). Intervals that overlap \
             are *within noise*. This report took {:.0} s: {} sample chunks sampled now, {} \
             read from the resumable sample cache.\n",
            p.bootstrap,
            p.kid_blocks,
            p.kid_subsets,
            p.kid_subset_size,
            p.seconds,
            p.new_chunks,
            p.cached_chunks
        );
    }
    if let Some(rr) = &r.real_vs_real {
        let _ = writeln!(
            md,
            "Real-vs-real floor: {d} {} ({} held-out real {unit} vs {} reference): the {d} \
             no model can go below at this n.\n",
            with_ci(rr.fid, rr.fid_ci95, 3),
            rr.n_samples,
            rr.n_reference
        );
    }
}

/// The declared headline, its intervals and the verdict against the target.
fn md_headline(md: &mut String, r: &Results) {
    let h = &r.headline;
    let (Some((ratio, ci)), Some(student), Some(steps)) = (h.ratio(), &h.student, h.steps) else {
        return;
    };
    let d = &r.metric;
    let _ = writeln!(
        md,
        "## Headline (declared in the config before measuring)\n"
    );
    let _ = writeln!(
        md,
        "**{student}, {steps} steps, w = {}: {d} {}× the 50-step guided teacher's** (n = {} \
         each).",
        fmt_opt(h.w, 1.0, 2),
        with_ci(ratio, ci, 3),
        h.n.unwrap_or(0)
    );
    if let (Some(t), Some(c)) = (h.target_ratio, ci) {
        let verdict = match h.target_met {
            Some(true) => format!("**met**: the interval's upper end {:.3} ≤ {t}", c.hi),
            _ => format!("**not met**: the interval's upper end {:.3} > {t}", c.hi),
        };
        let noise = if c.contains(1.0) {
            " The interval holds 1: student and teacher are within noise."
        } else {
            ""
        };
        let _ = writeln!(md, "Target ≤ {t}×: {verdict}.{noise}");
    }
    let kid = |v: Option<f64>, c| v.map_or("–".into(), |v| sig_ci(v, c));
    let _ = writeln!(
        md,
        "\n- KID: student {}, teacher-50 {}.",
        kid(h.kid_student4, h.kid_student4_ci95),
        kid(h.kid_teacher50, h.kid_teacher50_ci95)
    );
    if let Some(f) = h.fidelity_rmse_student4 {
        let _ = writeln!(
            md,
            "- Fidelity: pixel RMSE to the teacher-50's sample from the same noise and class {}.",
            with_ci(f, h.fidelity_rmse_ci95, 4)
        );
    }
    if let Some(s) = h.speedup_student4_vs_teacher50 {
        let _ = writeln!(
            md,
            "- Speed: {s:.1}× the teacher at 50 guided Euler steps (throughput, timing pass)."
        );
    }
    md_equal_quality(md, r);
    md_chain_extras(md, h);
    md.push('\n');
}

/// The headline's bullets of a latent or NestedUNet chain: NFE end to end, reconstruction and
/// rate, and the teacher-50 against the baseline of another route.
fn md_chain_extras(md: &mut String, h: &Headline) {
    if let (Some(n), Some(_)) = (h.nfe_end_to_end_student, h.recon_psnr) {
        let _ = writeln!(md, "- NFE end to end (latent steps + decoder steps): {n}.");
    }
    if let (Some(p), Some(b)) = (h.recon_psnr, h.bits_per_latent_dim) {
        let _ = writeln!(
            md,
            "- Autoencoder: reconstruction PSNR {p:.2} dB; prior rate {b:.3} bits per latent dimension."
        );
    }
    let ratios = [
        (
            "teacher-50 FID ÷ the pixel route's teacher",
            h.fid_latent_vs_pixel_teacher50,
            h.fid_latent_vs_pixel_ci95,
        ),
        (
            "teacher-50 FID ÷ the plain U-Net's trained for the same wall clock",
            h.fid_nested_vs_unet_equal_compute,
            h.fid_nested_vs_unet_ci95,
        ),
    ];
    for (what, v, ci) in ratios {
        if let Some(v) = v {
            let noise = match ci {
                Some(c) if c.contains(1.0) => " (within noise: the interval holds 1)",
                _ => "",
            };
            let _ = writeln!(md, "- {what}: {}{noise}.", with_ci(v, ci, 3));
        }
    }
}

/// The equal-quality speedup bullet of the headline.
fn md_equal_quality(md: &mut String, r: &Results) {
    let (h, d) = (&r.headline, &r.metric);
    match &h.equal_quality {
        Some(e) => {
            let how = if e.interpolated {
                "interpolated between measured settings; first measured setting reaching it"
            } else {
                "a measured setting"
            };
            let _ = writeln!(
                md,
                "- Equal-quality speed: {:.1}× — the cheapest teacher setting whose {d} interval reaches the student's ({} at n = {}) takes {:.2} ms per sample at ≈ {:.0} NFE ({how}: {}).",
                e.speedup,
                e.student_fid_ci95,
                e.n,
                1e3 * e.teacher_seconds,
                e.teacher_nfe,
                e.first_reaching
            );
        }
        None if !r.solver_curve.is_empty() => {
            let _ = writeln!(
                md,
                "- Equal-quality speed: no measured teacher setting reaches the student's {d} interval."
            );
        }
        None => {}
    }
}

fn timing_cells(t: Option<&Timing>) -> (String, String) {
    match t {
        Some(t) => (format!("{:.1}", t.per_s), format!("{:.1}", t.batch1_ms)),
        None => ("–".into(), "–".into()),
    }
}

/// The table of every model's numbers.
fn md_table(md: &mut String, r: &Results) {
    let d = &r.metric;
    let batch = r
        .models
        .iter()
        .find_map(|m| m.timing.as_ref().map(|t| t.batch))
        .unwrap_or(0);
    let _ = writeln!(md, "## Every model at the declared w\n");
    let _ = writeln!(
        md,
        "| model | steps | NFE | w | {d} [95%] | × teacher-50 [95%] | | KID [95%] | class acc. | precision | recall | RMSE to teacher-50 | /s at batch {batch} | batch-1 ms | n |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in &r.models {
        let x = &m.metrics;
        let (ratio, verdict) = m.vs_teacher.as_ref().map_or(("–".into(), ""), |v| {
            (with_ci(v.value, Some(v.ci95), 3), v.verdict())
        });
        let kid = x
            .kid
            .as_ref()
            .map_or("–".into(), |k| sig_ci(k.kid, Some(k.ci95)));
        let acc =
            fmt_opt(x.class_accuracy, 100.0, 1) + if x.class_accuracy.is_some() { "%" } else { "" };
        let rmse = m.fidelity.as_ref().map_or("–".into(), |f| {
            with_ci(f.pixel_rmse.mean, Some(f.pixel_rmse.ci95), 3)
        });
        let (per_s, b1) = timing_cells(m.timing.as_ref());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {ratio} | {verdict} | {kid} | {acc} | {:.3} | {:.3} | {rmse} | {per_s} | {b1} | {} |",
            m.name,
            m.steps,
            m.nfe,
            m.guidance,
            with_ci(x.fid, x.fid_ci95, 2),
            x.precision,
            x.recall,
            x.n_samples
        );
    }
}

/// Each model's sweep over w: at the declared w and at its own best.
fn md_sweep(md: &mut String, r: &Results) {
    if r.guidance_sweep.is_empty() {
        return;
    }
    let d = &r.metric;
    let _ = writeln!(md, "\n## Guidance sweeps\n");
    let _ = writeln!(
        md,
        "| model | steps | w | {d} [95%] | KID [95%] | n |\n|---|---:|---:|---:|---:|---:|"
    );
    for g in &r.guidance_sweep {
        let kid = g.kid.map_or("–".into(), |k| sig_ci(k, g.kid_ci95));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {kid} | {} |",
            g.name,
            g.steps,
            g.guidance,
            with_ci(g.fid, g.fid_ci95, 2),
            g.n
        );
    }
    let mut names: Vec<(String, usize)> = r
        .guidance_sweep
        .iter()
        .map(|g| (g.name.clone(), g.steps))
        .collect();
    names.dedup();
    let _ = writeln!(
        md,
        "\nEach model's own best w on this grid (point estimates; the headline stays at the declared w):\n"
    );
    for (n, s) in names {
        let best = r
            .guidance_sweep
            .iter()
            .filter(|g| g.name == n && g.steps == s)
            .min_by(|a, b| a.fid.total_cmp(&b.fid));
        if let Some(b) = best {
            let _ = writeln!(
                md,
                "- {n} ({s} steps): w = {} ({d} {})",
                b.guidance,
                with_ci(b.fid, b.fid_ci95, 2)
            );
        }
    }
}

/// The teacher's quality against NFE with each solver.
fn md_solvers(md: &mut String, r: &Results) {
    if r.solver_curve.is_empty() {
        return;
    }
    let d = &r.metric;
    let _ = writeln!(
        md,
        "\n## Teacher quality vs NFE (Euler, Heun, DPM-Solver++(2M))\n"
    );
    let _ = writeln!(
        md,
        "| solver | steps | NFE | {d} [95%] | KID [95%] | ms / sample (throughput) | n |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for p in &r.solver_curve {
        let ms = p
            .timing
            .as_ref()
            .map_or("–".into(), |t| format!("{:.2}", 1e3 / t.per_s));
        let kid = sig_ci(p.kid, Some(p.kid_ci95));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {kid} | {ms} | {} |",
            p.solver,
            p.steps,
            p.nfe,
            with_ci(p.fid, Some(p.fid_ci95), 2),
            p.n
        );
    }
}

/// Nearest-neighbour distances to the training set.
fn md_memorisation(md: &mut String, r: &Results) {
    let rows: Vec<_> = r
        .models
        .iter()
        .filter_map(|m| m.memorisation.as_ref().map(|x| (m, x)))
        .collect();
    let Some((_, first)) = rows.first() else {
        return;
    };
    let _ = writeln!(md, "\n## Memorisation (nearest training sample)\n");
    let _ = writeln!(
        md,
        "Distance of each sample to its nearest neighbour among the {} training {} (`{}`), in pixels and in features, against the same for {} held-out test {}. \"Below test 1%\" is the share of samples closer to a training sample than the 1st percentile of test-to-train distances (pixels {:.3}, features {:.3}); a model that copies its training set drives it towards 100%, one that does not stays near 1%.\n",
        first.pixels.n_train,
        r.unit(),
        r.protocol.train,
        first.pixels.n_test,
        r.unit(),
        first.pixels.threshold,
        first.features.threshold
    );
    let _ = writeln!(
        md,
        "| model | steps | pixel NN median | below test 1% (pixels) [95%] | feature NN median | below test 1% (features) [95%] | n |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let pct = |f: f64, c: Interval| {
        format!(
            "{:.2}% [{:.2}, {:.2}]",
            100.0 * f,
            100.0 * c.lo,
            100.0 * c.hi
        )
    };
    let _ = writeln!(
        md,
        "| real test {} | – | {:.3} | – | {:.3} | – | {} |",
        r.unit(),
        first.pixels.test_quantiles[2],
        first.features.test_quantiles[2],
        first.pixels.n_test
    );
    for (m, x) in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {} | {:.3} | {} | {} |",
            m.name,
            m.steps,
            x.pixels.sample_quantiles[2],
            pct(x.pixels.fraction_below, x.pixels.fraction_ci95),
            x.features.sample_quantiles[2],
            pct(x.features.fraction_below, x.features.fraction_ci95),
            x.pixels.n_samples
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
