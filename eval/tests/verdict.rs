//! Tests of the verdict's statistics: KID (hand value, unbiasedness, the blockwise estimate and
//! its jackknife), bootstrap FID intervals (coverage of the true FID of a Gaussian fixture),
//! Wilson and mean intervals, fidelity distances, nearest-neighbour memorisation and the
//! equal-quality interpolation — every expected value derived in a comment.

use eval::equal_quality::{CurvePoint, best_reach, equal_quality};
use eval::fidelity::{feature_distance, pixel_rmse};
use eval::frechet::FeatureStats;
use eval::interval::{
    Bootstrap, Interval, Z95, basic_interval, mean_interval, weighted_stats, wilson,
};
use eval::kid::{KidConfig, kid, mmd2_unbiased};
use eval::memorisation::{memorisation, nearest_distances};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// n rows of d N(μᵢ, sᵢ²) values (Box–Muller).
fn gaussian(rng: &mut StdRng, n: usize, mu: &[f64], s: &[f64]) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * mu.len());
    for _ in 0..n {
        for (m, sd) in mu.iter().zip(s) {
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            out.push((m + sd * z) as f32);
        }
    }
    out
}

/// (mean, standard error of the mean).
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[test]
fn kid_equals_the_hand_computed_value() {
    // d = 1, x = {0, 1}, y = {1, 2}, k(a, b) = (ab/1 + 1)³:
    //   k(0,1) = 1, k(0,2) = 1, k(1,1) = 8, k(1,2) = 27.
    //   xx (i ≠ j): (k(0,1) + k(1,0)) / (2·1) = 2/2 = 1
    //   yy (i ≠ j): (k(1,2) + k(2,1)) / (2·1) = 54/2 = 27
    //   xy: 2·(k(0,1) + k(0,2) + k(1,1) + k(1,2)) / (2·2) = 2·37/4 = 18.5
    //   MMD² = 1 + 27 − 18.5 = 9.5
    let (x, y) = ([0.0f32, 1.0], [1.0f32, 2.0]);
    let v = mmd2_unbiased(&x, &y, 1).unwrap();
    assert!((v - 9.5).abs() < 1e-12, "{v}");
    let k = kid(&x, &y, 1, &KidConfig::default(), 0).unwrap();
    assert!((k.kid - 9.5).abs() < 1e-12, "{k:?}");
    // The only subset of size 2 is the sets themselves.
    assert!((k.subset_mean - 9.5).abs() < 1e-12 && k.subset_std < 1e-12, "{k:?}");
    // Too few samples is an error that says so, not a panic.
    let e = mmd2_unbiased(&x[..1], &y, 1).unwrap_err().to_string();
    assert!(e.contains("at least 2"), "{e}");
}

/// The naive O(n²) estimate, with or without the i = j terms (U- vs V-statistic).
fn naive_mmd2(x: &[f32], y: &[f32], d: usize, unbiased: bool) -> f64 {
    let k = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum();
        (dot / d as f64 + 1.0).powi(3)
    };
    let within = |s: &[f32]| {
        let n = s.len() / d;
        let mut t = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j || !unbiased {
                    t += k(&s[i * d..(i + 1) * d], &s[j * d..(j + 1) * d]);
                }
            }
        }
        let nf = n as f64;
        t / if unbiased { nf * (nf - 1.0) } else { nf * nf }
    };
    let (m, n) = (x.len() / d, y.len() / d);
    let mut cross = 0.0;
    for i in 0..m {
        for j in 0..n {
            cross += k(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]);
        }
    }
    within(x) + within(y) - 2.0 * cross / (m * n) as f64
}

#[test]
fn blockwise_kid_equals_the_naive_sum() {
    let mut rng = StdRng::seed_from_u64(1);
    let x = gaussian(&mut rng, 53, &[0.0, 0.3, 0.0], &[1.0, 1.0, 0.7]);
    let y = gaussian(&mut rng, 47, &[0.0; 3], &[1.0; 3]);
    let want = naive_mmd2(&x, &y, 3, true);
    let cfg = KidConfig { blocks: 5, ..KidConfig::default() };
    let got = kid(&x, &y, 3, &cfg, 0).unwrap();
    assert!((got.kid - want).abs() <= 1e-10 * want.abs().max(1e-12), "{} vs {want}", got.kid);
    assert!(got.ci95.lo < got.kid && got.kid < got.ci95.hi, "{got:?}");
}

#[test]
fn kid_is_unbiased_and_the_v_statistic_is_not() {
    // Two samples of 50 from the same N(0, I₃), 400 times: the unbiased MMD² has expectation
    // exactly 0, so its mean over the draws must lie within 3 standard errors of 0 (a false
    // failure has probability 0.3%). The V-statistic (i = j terms kept) has expectation
    // (E k(x, x) − E k(x, x'))·(1/m + 1/n) > 0 — it must sit clearly above 0, which shows the
    // test can fail.
    let mut rng = StdRng::seed_from_u64(2);
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for _ in 0..400 {
        let x = gaussian(&mut rng, 50, &[0.0; 3], &[1.0; 3]);
        let y = gaussian(&mut rng, 50, &[0.0; 3], &[1.0; 3]);
        u.push(mmd2_unbiased(&x, &y, 3).unwrap());
        v.push(naive_mmd2(&x, &y, 3, false));
    }
    let ((mu, seu), (mv, sev)) = (mean_se(&u), mean_se(&v));
    assert!(mu.abs() < 3.0 * seu, "unbiased mean {mu:e} ± {seu:e}");
    assert!(mv > 3.0 * sev, "V-statistic mean {mv:e} ± {sev:e} should be > 0");
}

#[test]
fn jackknife_interval_covers_zero_for_one_distribution() {
    // Two samples of 200 from one distribution: KID's population value is 0, so its 95%
    // interval must cover 0 most of the time (asserted: ≥ 85 of 100, a loose band for the
    // jackknife's approximate normality with 20 blocks).
    let mut rng = StdRng::seed_from_u64(3);
    let cfg = KidConfig { subsets: 2, subset_size: 50, blocks: 20 };
    let covered = (0..100)
        .filter(|&s| {
            let x = gaussian(&mut rng, 200, &[0.0; 2], &[1.0; 2]);
            let y = gaussian(&mut rng, 200, &[0.0; 2], &[1.0; 2]);
            kid(&x, &y, 2, &cfg, s).unwrap().ci95.contains(0.0)
        })
        .count();
    assert!(covered >= 85, "covered 0 in {covered}/100");
}

#[test]
fn bootstrap_interval_covers_the_true_fid_at_the_stated_rate() {
    // Reference ~ N(0, I₄), samples ~ N(μ, diag(s²)), μ = (0.5, 0, 0, 0), s = (1, 1.2, 0.8, 1).
    // For diagonal covariances Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) = Σᵢ (1 + sᵢ² − 2sᵢ) = Σᵢ (1 − sᵢ)², so the
    // population FID = |μ|² + Σᵢ(1 − sᵢ)² = 0.25 + 0.04 + 0.04 = 0.33.
    // 200 trials at n = 400 per set, B = 100: the 95% basic interval must cover 0.33 in
    // 90–99% of trials (the binomial sd of the rate at 95% over 200 trials is 1.5%; the band
    // allows 3 sd each way plus the basic bootstrap's small-B slack).
    let (mu, s) = ([0.5, 0.0, 0.0, 0.0], [1.0, 1.2, 0.8, 1.0]);
    let truth = 0.33;
    let mut rng = StdRng::seed_from_u64(4);
    let (mut basic, mut naive) = (0, 0);
    let trials = 200;
    for t in 0..trials {
        let r = gaussian(&mut rng, 400, &[0.0; 4], &[1.0; 4]);
        let x = gaussian(&mut rng, 400, &mu, &s);
        let boot = Bootstrap::new(&r, 4, 100, t).unwrap();
        let reps = boot.fid_replicates(&x, 4, 1000 + t).unwrap();
        let sx = FeatureStats::from_features(&x, 400, 4).unwrap();
        let sr = FeatureStats::from_features(&r, 400, 4).unwrap();
        let point = eval::frechet::frechet_distance(&sx, &sr).unwrap();
        basic += basic_interval(point, &reps).contains(truth) as usize;
        let mut sorted = reps.clone();
        sorted.sort_by(f64::total_cmp);
        naive += Interval { lo: sorted[2], hi: sorted[97] }.contains(truth) as usize;
    }
    let rate = basic as f64 / trials as f64;
    println!("coverage: basic {rate:.3}, percentile {:.3}", naive as f64 / trials as f64);
    assert!((0.90..=0.99).contains(&rate), "basic interval coverage {rate}");
}

#[test]
fn basic_interval_reflects_the_replicates_about_the_estimate() {
    // Replicates 1, 2, …, 101 (sorted): numpy's linear quantiles are q₀.₀₂₅ = 1 + 0.025·100 = 3.5
    // and q₀.₉₇₅ = 1 + 0.975·100 = 98.5; with θ̂ = 50 the basic interval is
    // [2·50 − 98.5, 2·50 − 3.5] = [1.5, 96.5].
    let reps: Vec<f64> = (1..=101).map(f64::from).collect();
    let i = basic_interval(50.0, &reps);
    assert!((i.lo - 1.5).abs() < 1e-12 && (i.hi - 96.5).abs() < 1e-12, "{i:?}");
    // Non-finite replicates are dropped; fewer than 2 give [θ̂, θ̂].
    assert_eq!(basic_interval(3.0, &[f64::NAN, 1.0]), Interval { lo: 3.0, hi: 3.0 });
    // JSON form: [lo, hi].
    assert_eq!(serde_json::to_string(&i).unwrap(), "[1.5,96.5]");
}

#[test]
fn wilson_and_mean_intervals_match_their_formulas() {
    // k = 0, n = 10: p̂ = 0, centre = z²/20, half = z·√(z²/400) = z²/20, so lo = 0 and
    // hi = (z²/10)/(1 + z²/10) = 3.8415/13.8415 = 0.27753.
    let z2 = Z95 * Z95;
    let w = wilson(0, 10);
    assert!(w.lo.abs() < 1e-12 && (w.hi - (z2 / 10.0) / (1.0 + z2 / 10.0)).abs() < 1e-12, "{w:?}");
    // k = 5, n = 10: symmetric about 0.5, half = z·√(0.025 + z²/400)/(1 + z²/10) = 0.31660.
    let w = wilson(5, 10);
    let half = Z95 * (0.025 + z2 / 400.0).sqrt() / (1.0 + z2 / 10.0);
    assert!((w.lo - (0.5 - half)).abs() < 1e-12 && (w.hi - (0.5 + half)).abs() < 1e-12, "{w:?}");
    assert_eq!(wilson(0, 0), Interval { lo: 0.0, hi: 1.0 });
    // {1, 3}: mean 2, s = √2, half = z·√2/√2 = z.
    let (m, i) = mean_interval(&[1.0, 3.0]);
    assert!((m - 2.0).abs() < 1e-12 && (i.hi - 2.0 - Z95).abs() < 1e-12, "{i:?}");
}

#[test]
fn weighted_stats_with_unit_counts_are_the_plain_stats() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = gaussian(&mut rng, 700, &[0.1, -0.2, 0.3], &[1.0, 2.0, 0.5]);
    let plain = FeatureStats::from_features(&x, 700, 3).unwrap();
    let w = weighted_stats(&x, 3, &vec![1.0; 700]).unwrap();
    for (a, b) in plain.mu.iter().zip(&w.mu).chain(plain.sigma.iter().zip(&w.sigma)) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // A count of 2 on row 0 and 0 on row 1 equals duplicating row 0 in place of row 1.
    let mut counts = vec![1.0; 700];
    (counts[0], counts[1]) = (2.0, 0.0);
    let mut dup = x.clone();
    dup.copy_within(0..3, 3);
    let (a, b) = (weighted_stats(&x, 3, &counts).unwrap(), FeatureStats::from_features(&dup, 700, 3).unwrap());
    for (p, q) in a.sigma.iter().zip(&b.sigma) {
        assert!((p - q).abs() < 1e-12, "{p} vs {q}");
    }
}

#[test]
fn fidelity_distances_by_hand() {
    // Two pairs of 2 values: a = (0, 0 | 0, 0), b = (1, 1 | 3, 3): RMSEs √((1+1)/2) = 1 and
    // √((9+9)/2) = 3, mean 2, s = √2, interval 2 ± z·√2/√2 = 2 ± z.
    let p = pixel_rmse(&[0.0; 4], &[1.0, 1.0, 3.0, 3.0], 2).unwrap();
    assert!((p.mean - 2.0).abs() < 1e-12 && (p.ci95.lo - (2.0 - Z95)).abs() < 1e-12, "{p:?}");
    // Feature distances: ‖(3, 4)‖ = 5 and 0 → mean 2.5.
    let f = feature_distance(&[3.0, 4.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0], 2).unwrap();
    assert!((f.mean - 2.5).abs() < 1e-12, "{f:?}");
    assert_eq!(pixel_rmse(&[0.5; 6], &[0.5; 6], 3).unwrap().mean, 0.0);
    let e = pixel_rmse(&[0.0; 4], &[0.0; 6], 2).unwrap_err().to_string();
    assert!(e.contains("same n and seed"), "{e}");
}

#[test]
fn nearest_distances_match_a_naive_search_and_copies_are_caught() {
    let mut rng = StdRng::seed_from_u64(6);
    let d = 7;
    let train = gaussian(&mut rng, 5000, &[0.0; 7], &[1.0; 7]);
    let test = gaussian(&mut rng, 1500, &[0.0; 7], &[1.0; 7]);
    let got = nearest_distances(&test[..50 * d], &train, d).unwrap();
    for (i, g) in got.iter().enumerate() {
        let q = &test[i * d..(i + 1) * d];
        let want = train
            .chunks_exact(d)
            .map(|t| t.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>())
            .fold(f32::INFINITY, f32::min)
            .sqrt();
        assert!((g - want).abs() < 1e-4, "{g} vs {want}");
    }
    let test_nn = nearest_distances(&test, &train, d).unwrap();
    // Samples that are training rows: distance 0, all below the test set's 1st percentile.
    let copies = nearest_distances(&train[..300 * d], &train, d).unwrap();
    let m = memorisation(&copies, &test_nn, 5000).unwrap();
    assert_eq!(m.fraction_below, 1.0, "{m:?}");
    // Fresh draws of the same distribution: about 1% (assert < 5%; the threshold is the test
    // set's own 1st percentile).
    let fresh = gaussian(&mut rng, 1000, &[0.0; 7], &[1.0; 7]);
    let fresh_nn = nearest_distances(&fresh, &train, d).unwrap();
    let m = memorisation(&fresh_nn, &test_nn, 5000).unwrap();
    assert!(m.fraction_below < 0.05, "{m:?}");
    assert!(m.fraction_ci95.contains(m.fraction_below));
}

fn point(label: &str, nfe: usize, seconds: f64, lo: f64) -> CurvePoint {
    CurvePoint {
        label: label.into(),
        nfe,
        seconds,
        fid: lo + 1.0,
        ci95: Interval { lo, hi: lo + 2.0 },
    }
}

#[test]
fn equal_quality_interpolates_on_a_hand_made_curve() {
    // Points (10 s, lo 50), (20 s, lo 30), (40 s, lo 20); the student's interval ends at 40.
    // The 20 s point is the first to reach (30 ≤ 40); between 10 s and 20 s, lo falls from 50 to
    // 30, so lo = 40 at the fraction (50 − 40)/(50 − 30) = 0.5 of the way in ln seconds:
    // exp((ln 10 + ln 20)/2) = √200 = 14.142 s; in ln NFE between 8 and 16 likewise √128 = 11.31.
    let curve = vec![point("a", 8, 10.0, 50.0), point("b", 16, 20.0, 30.0), point("c", 32, 40.0, 20.0)];
    let target = Interval { lo: 35.0, hi: 40.0 };
    let r = equal_quality(&curve, &target).unwrap();
    assert!((r.seconds - 200f64.sqrt()).abs() < 1e-9 && (r.nfe - 128f64.sqrt()).abs() < 1e-9, "{r:?}");
    assert!(r.interpolated && r.first_reaching == "b", "{r:?}");
    // Order does not matter.
    let mut shuffled = curve.clone();
    shuffled.reverse();
    assert_eq!(equal_quality(&shuffled, &target), Some(r.clone()));
    // The cheapest point already reaching: that point, not interpolated.
    let easy = Interval { lo: 0.0, hi: 60.0 };
    let r0 = equal_quality(&curve, &easy).unwrap();
    assert!(!r0.interpolated && r0.seconds == 10.0, "{r0:?}");
    // Nothing reaches a target below every lower end.
    assert!(equal_quality(&curve, &Interval { lo: 0.0, hi: 5.0 }).is_none());
    // Over two solvers the cheaper reach wins.
    let fast = vec![point("x", 4, 12.0, 39.0)];
    assert_eq!(best_reach(&[curve, fast], &target).unwrap().first_reaching, "x");
}
