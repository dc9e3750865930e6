//! Tests of the verdict's statistics: bootstrap FID intervals (coverage of the true FID of a
//! Gaussian fixture), Wilson and mean intervals, KID (hand value, the blockwise estimate,
//! unbiasedness and its jackknife), fidelity distances, nearest-neighbour memorisation and the
//! equal-quality interpolation — every expected value derived in a comment.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// n rows of d independent N(μᵢ, sᵢ²) values (Box–Muller).
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

mod interval {
    use super::*;
    use eval::frechet::{FeatureStats, frechet_distance};
    use eval::interval::{
        Bootstrap, Interval, Z95, basic_interval, basic_interval_nonneg, mean_interval,
        percentile_interval, ratio_replicates, sd_interval, weighted_stats, wilson,
    };

    #[test]
    fn bootstrap_interval_covers_the_true_fid_at_the_stated_rate() {
        // Reference ~ N(0, I₄), samples ~ N(μ, diag(s²)), μ = (0.5, 0, 0, 0), s = (1, 1.2, 0.8, 1).
        // FID = |μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½); with Σ₁ = I and Σ₂ = diag(s²) the product is
        // diag(s²), its root diag(s), so the trace is Σᵢ(1 + sᵢ² − 2sᵢ) = Σᵢ(1 − sᵢ)² and
        // FID = 0.25 + (0 + 0.04 + 0.04 + 0) = 0.33.
        // 400 trials at n = 400 per set, B = 100. The binomial sd of a 95% rate over 400 trials
        // is √(0.95·0.05/400) = 1.09%; the band 0.90–0.99 is 95% − 4.6 sd … + 3.7 sd, wider
        // below because bootstrap intervals at finite n and B under-cover by a point or two.
        // Every seed is fixed, so the test is deterministic.
        let (mu, s) = ([0.5, 0.0, 0.0, 0.0], [1.0, 1.2, 0.8, 1.0]);
        let truth = 0.33;
        let (n, b, trials) = (400, 100, 400u64);
        let mut rng = StdRng::seed_from_u64(4);
        let (mut basic, mut percentile) = (0, 0);
        for t in 0..trials {
            let r = gaussian(&mut rng, n, &[0.0; 4], &[1.0; 4]);
            let x = gaussian(&mut rng, n, &mu, &s);
            let boot = Bootstrap::new(&r, 4, b, t).unwrap();
            assert_eq!(boot.b(), b);
            let reps = boot.fid_replicates(&x, 4, 1000 + t).unwrap();
            let sx = FeatureStats::from_features(&x, n, 4).unwrap();
            let sr = FeatureStats::from_features(&r, n, 4).unwrap();
            let point = frechet_distance(&sx, &sr).unwrap();
            basic += basic_interval(point, &reps).contains(truth) as usize;
            percentile += percentile_interval(point, &reps).contains(truth) as usize;
        }
        let rate = basic as f64 / trials as f64;
        let naive = percentile as f64 / trials as f64;
        println!("coverage over {trials} trials: basic {rate:.4}, percentile {naive:.4}");
        assert!(
            (0.90..=0.99).contains(&rate),
            "basic interval coverage {rate}"
        );
    }

    #[test]
    fn sd_interval_covers_the_expected_fid_at_this_n() {
        // What a report compares at one n is the estimator's expectation E[FID_n] (its O(d/n)
        // bias included: the real-vs-real floor). Here d = 8, n = 200 per set, so that bias is
        // large next to the spread: E[FID_n] is estimated by the mean over 2,000 independent
        // draws (its own standard error ≈ sd/45, negligible), and the report's interval
        // θ̂ ± Z95·sd(θ*) must cover it in 90–99.5% of 300 trials (binomial sd of a 95% rate:
        // 1.26%; measured 99.0%: resampling both sets makes the bootstrap sd a little
        // conservative, never narrow). The basic interval, which targets the population FID instead, must miss it
        // far more often — the test can tell the two apart.
        let (mu, s) = (
            [0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 1.2, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0],
        );
        let (n, d) = (200, 8);
        let fid_of = |rng: &mut StdRng| {
            let r = gaussian(rng, n, &[0.0; 8], &[1.0; 8]);
            let x = gaussian(rng, n, &mu, &s);
            let sx = FeatureStats::from_features(&x, n, d).unwrap();
            let sr = FeatureStats::from_features(&r, n, d).unwrap();
            (frechet_distance(&sx, &sr).unwrap(), x, r)
        };
        let mut rng = StdRng::seed_from_u64(40);
        let expected = (0..2000).map(|_| fid_of(&mut rng).0).sum::<f64>() / 2000.0;
        let (mut sd_hits, mut basic_hits, trials) = (0, 0, 300u64);
        for t in 0..trials {
            let (point, x, r) = fid_of(&mut rng);
            let reps = Bootstrap::new(&r, d, 100, t)
                .unwrap()
                .fid_replicates(&x, d, 7 + t)
                .unwrap();
            sd_hits += sd_interval(point, &reps).contains(expected) as usize;
            basic_hits += basic_interval(point, &reps).contains(expected) as usize;
        }
        let (rate, basic) = (
            sd_hits as f64 / trials as f64,
            basic_hits as f64 / trials as f64,
        );
        println!("E[FID_n] = {expected:.4}; coverage: sd {rate:.4}, basic {basic:.4}");
        assert!(
            (0.90..=0.995).contains(&rate),
            "sd interval coverage {rate}"
        );
        assert!(basic < rate - 0.1, "basic {basic} vs sd {rate}");
    }

    #[test]
    fn basic_interval_reflects_the_replicates_about_the_estimate() {
        // Replicates 1, 2, …, 101: numpy's linear quantiles are q₀.₀₂₅ = 1 + 0.025·100 = 3.5 and
        // q₀.₉₇₅ = 1 + 0.975·100 = 98.5; with θ̂ = 50 the basic interval is
        // [2·50 − 98.5, 2·50 − 3.5] = [1.5, 96.5] and the percentile one [3.5, 98.5].
        let reps: Vec<f64> = (1..=101).map(f64::from).collect();
        let i = basic_interval(50.0, &reps);
        assert!(
            (i.lo - 1.5).abs() < 1e-12 && (i.hi - 96.5).abs() < 1e-12,
            "{i:?}"
        );
        assert_eq!(
            percentile_interval(50.0, &reps),
            Interval { lo: 3.5, hi: 98.5 }
        );
        // θ̂ = 10: [20 − 98.5, 20 − 3.5] = [−78.5, 16.5]; clamped at 0 for a distance.
        assert_eq!(
            basic_interval_nonneg(10.0, &reps),
            Interval { lo: 0.0, hi: 16.5 }
        );
        // Non-finite replicates are dropped; fewer than 2 finite give [θ̂, θ̂].
        assert_eq!(
            basic_interval(3.0, &[f64::NAN, 1.0, f64::INFINITY]),
            Interval { lo: 3.0, hi: 3.0 }
        );
        // Replicates {1, NaN, 3}: finite {1, 3}, q₀.₀₂₅ = 1 + 0.025·2 = 1.05, q₀.₉₇₅ = 2.95;
        // θ̂ = 2 → [4 − 2.95, 4 − 1.05] = [1.05, 2.95].
        let j = basic_interval(2.0, &[1.0, f64::NAN, 3.0]);
        assert!(
            (j.lo - 1.05).abs() < 1e-12 && (j.hi - 2.95).abs() < 1e-12,
            "{j:?}"
        );
        // sd interval: replicates {1, NaN, 3} → finite {1, 3}, s = √2; θ̂ = 2 → 2 ± z·√2.
        let k = sd_interval(2.0, &[1.0, f64::NAN, 3.0]);
        let half = Z95 * 2f64.sqrt();
        assert!(
            (k.lo - (2.0 - half)).abs() < 1e-12 && (k.hi - (2.0 + half)).abs() < 1e-12,
            "{k:?}"
        );
        assert_eq!(sd_interval(3.0, &[1.0]), Interval { lo: 3.0, hi: 3.0 });
        // Ratios pair replicate b with replicate b: 2/1, 6/3.
        assert_eq!(ratio_replicates(&[2.0, 6.0], &[1.0, 3.0]), vec![2.0, 2.0]);
    }

    #[test]
    fn interval_json_display_and_relations() {
        let i = Interval { lo: 1.5, hi: 96.5 };
        assert_eq!(serde_json::to_string(&i).unwrap(), "[1.5,96.5]");
        assert_eq!(serde_json::from_str::<Interval>("[1.5,96.5]").unwrap(), i);
        // 4 significant digits of the larger end (96.5 → 2 decimals).
        assert_eq!(i.to_string(), "[1.50, 96.50]");
        assert!(i.contains(1.5) && i.contains(96.5) && !i.contains(97.0));
        assert!(i.overlaps(&Interval {
            lo: 96.5,
            hi: 100.0
        }));
        assert!(!i.overlaps(&Interval {
            lo: 97.0,
            hi: 100.0
        }));
    }

    #[test]
    fn wilson_and_mean_intervals_match_their_formulas() {
        // k = 0, n = 10: p̂ = 0, centre = (z²/20)/(1 + z²/10), half = z·√(z²/400)/(1 + z²/10)
        // = (z²/20)/(1 + z²/10), so lo = 0 and hi = (z²/10)/(1 + z²/10) = 3.8415/13.8415 = 0.27753.
        let z2 = Z95 * Z95;
        let w = wilson(0, 10);
        assert!(
            w.lo.abs() < 1e-12 && (w.hi - (z2 / 10.0) / (1.0 + z2 / 10.0)).abs() < 1e-12,
            "{w:?}"
        );
        assert!((w.hi - 0.27753).abs() < 1e-5, "{w:?}");
        // k = 5, n = 10: p̂ = 0.5, centre = (0.5 + z²/20)/(1 + z²/10) = 0.5,
        // half = z·√(0.025 + z²/400)/(1 + z²/10) = 1.96·0.18601/1.38415 = 0.26341
        // → [0.23659, 0.76341].
        let w = wilson(5, 10);
        let half = Z95 * (0.025 + z2 / 400.0).sqrt() / (1.0 + z2 / 10.0);
        assert!(
            (w.lo - (0.5 - half)).abs() < 1e-12 && (w.hi - (0.5 + half)).abs() < 1e-12,
            "{w:?}"
        );
        assert!((w.lo - 0.23659).abs() < 1e-5, "{w:?}");
        assert_eq!(wilson(0, 0), Interval { lo: 0.0, hi: 1.0 });
        // {1, 3}: mean 2, s = √2, half = z·√2/√2 = z.
        let (m, i) = mean_interval(&[1.0, 3.0]);
        assert!(
            (m - 2.0).abs() < 1e-12 && (i.lo - (2.0 - Z95)).abs() < 1e-12,
            "{i:?}"
        );
        assert!((i.hi - (2.0 + Z95)).abs() < 1e-12, "{i:?}");
        // A single value: [x, x] (width unknown).
        assert_eq!(mean_interval(&[4.0]).1, Interval { lo: 4.0, hi: 4.0 });
    }

    #[test]
    fn weighted_stats_with_unit_counts_are_the_plain_stats() {
        let mut rng = StdRng::seed_from_u64(5);
        let x = gaussian(&mut rng, 700, &[0.1, -0.2, 0.3], &[1.0, 2.0, 0.5]);
        let plain = FeatureStats::from_features(&x, 700, 3).unwrap();
        let w = weighted_stats(&x, 3, &[1; 700]).unwrap();
        assert_eq!(w.n, 700);
        for (a, b) in plain
            .mu
            .iter()
            .chain(&plain.sigma)
            .zip(w.mu.iter().chain(&w.sigma))
        {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        // Count 2 on row 0 and 0 on row 1 equals duplicating row 0 in place of row 1.
        let mut counts = vec![1; 700];
        (counts[0], counts[1]) = (2, 0);
        let mut dup = x.clone();
        dup.copy_within(0..3, 3);
        let a = weighted_stats(&x, 3, &counts).unwrap();
        let b = FeatureStats::from_features(&dup, 700, 3).unwrap();
        for (p, q) in a.mu.iter().chain(&a.sigma).zip(b.mu.iter().chain(&b.sigma)) {
            assert!((p - q).abs() < 1e-12, "{p} vs {q}");
        }
        // Bad input is an error, not a panic.
        assert!(weighted_stats(&x, 3, &[1; 5]).is_err());
        assert!(Bootstrap::new(&x, 3, 1, 0).is_err());
        let boot = Bootstrap::new(&x, 3, 2, 0).unwrap();
        let e = boot.fid_replicates(&x[..8], 4, 0).unwrap_err().to_string();
        assert!(e.contains("same extractor"), "{e}");
    }
}

mod kid {
    use super::*;
    use eval::kid::{KidConfig, kid, mmd2_unbiased};

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
        // The only subset of size 2 is the sets themselves; 2 rows allow no jackknife blocks.
        assert!(
            (k.subset_mean - 9.5).abs() < 1e-12 && k.subset_std < 1e-12,
            "{k:?}"
        );
        assert_eq!((k.blocks, k.ci95.lo, k.ci95.hi), (1, k.kid, k.kid));
        // Too few rows, ragged buffers and d = 0 are errors that say so, not panics.
        let e = mmd2_unbiased(&x[..1], &y, 1).unwrap_err().to_string();
        assert!(e.contains("at least 2 rows"), "{e}");
        let e = mmd2_unbiased(&[0.0; 3], &[0.0; 4], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a multiple of d = 2"), "{e}");
        assert!(mmd2_unbiased(&x, &y, 0).is_err());
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
        // 53 and 47 rows in 5 blocks (blocks of 10–11 and 9–10 rows), d = 3: the block sums
        // must add up to the all-pairs sum to rounding.
        let mut rng = StdRng::seed_from_u64(1);
        let x = gaussian(&mut rng, 53, &[0.0, 0.3, 0.0], &[1.0, 1.0, 0.7]);
        let y = gaussian(&mut rng, 47, &[0.0; 3], &[1.0; 3]);
        let want = naive_mmd2(&x, &y, 3, true);
        let cfg = KidConfig {
            blocks: 5,
            ..KidConfig::default()
        };
        let got = kid(&x, &y, 3, &cfg, 0).unwrap();
        assert!(
            (got.kid - want).abs() <= 1e-10 * want.abs(),
            "{} vs {want}",
            got.kid
        );
        assert!(
            got.blocks == 5 && got.ci95.lo < got.kid && got.kid < got.ci95.hi,
            "{got:?}"
        );
        // Subsets of min(1000, 53, 47) = 47 rows.
        assert_eq!((got.subset_size, got.n_x, got.n_y), (47, 53, 47));
        // d = 8 (> 5) takes nalgebra's matrixmultiply path, also with more blocks than fit:
        // 9 rows allow at most 4 blocks of ≥ 2 rows.
        let x = gaussian(&mut rng, 9, &[0.1; 8], &[1.0; 8]);
        let y = gaussian(&mut rng, 30, &[0.0; 8], &[1.0; 8]);
        let want = naive_mmd2(&x, &y, 8, true);
        let got = kid(&x, &y, 8, &KidConfig::default(), 0).unwrap();
        assert!((got.kid - want).abs() <= 1e-10 * want.abs(), "{got:?}");
        assert_eq!(got.blocks, 4);
        let m = mmd2_unbiased(&x, &y, 8).unwrap();
        assert!((m - want).abs() <= 1e-10 * want.abs(), "{m} vs {want}");
    }

    #[test]
    fn kid_is_unbiased_and_the_v_statistic_is_not() {
        // Two samples of 50 from the same N(0, I₃), 400 times: the unbiased MMD² has
        // expectation exactly 0, so its mean over the draws lies within 3 standard errors
        // (se = sd/√400, estimated from the draws) of 0 unless a 0.3% event happened — and
        // with fixed seeds it either always or never does. The V-statistic (i = j terms kept)
        // has expectation (E k(x, x) − E k(x, x′))·(1/m + 1/n): with d = 3,
        // E k(x, x′) = E(xᵀx′/3 + 1)³ = 1 + 3·E(xᵀx′)²/9 = 1 + 3·3/9 = 2 (odd moments vanish) and
        // E k(x, x) = E(u + 1)³ with u = χ²₃/3 (E u = 1, E u² = 15/9, E u³ = 105/27) is
        // 105/27 + 5 + 3 + 1 ≈ 12.9, so E V ≈ 10.9·0.04 ≈ 0.44 > 0: it must sit clearly above 0,
        // which shows the test can fail.
        let mut rng = StdRng::seed_from_u64(2);
        let (mut u, mut v) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let x = gaussian(&mut rng, 50, &[0.0; 3], &[1.0; 3]);
            let y = gaussian(&mut rng, 50, &[0.0; 3], &[1.0; 3]);
            u.push(mmd2_unbiased(&x, &y, 3).unwrap());
            v.push(naive_mmd2(&x, &y, 3, false));
        }
        let ((mu, seu), (mv, sev)) = (mean_se(&u), mean_se(&v));
        println!("U mean {mu:.3e} ± {seu:.3e}, V mean {mv:.3e} ± {sev:.3e}");
        assert!(mu.abs() < 3.0 * seu, "unbiased mean {mu:e} ± {seu:e}");
        assert!(
            mv > 3.0 * sev,
            "V-statistic mean {mv:e} ± {sev:e} should be > 0"
        );
    }

    #[test]
    fn jackknife_interval_covers_zero_for_one_distribution() {
        // Two samples of 200 from one distribution: KID's population value is 0, so its 95%
        // interval must cover 0 most of the time (asserted: ≥ 85 of 100, a loose band for the
        // jackknife's approximate normality with 20 blocks of 10 rows).
        let mut rng = StdRng::seed_from_u64(3);
        let cfg = KidConfig {
            subsets: 2,
            subset_size: 50,
            blocks: 20,
        };
        let covered = (0..100)
            .filter(|&s| {
                let x = gaussian(&mut rng, 200, &[0.0; 2], &[1.0; 2]);
                let y = gaussian(&mut rng, 200, &[0.0; 2], &[1.0; 2]);
                kid(&x, &y, 2, &cfg, s).unwrap().ci95.contains(0.0)
            })
            .count();
        println!("jackknife interval covered 0 in {covered}/100");
        assert!(covered >= 85, "covered 0 in {covered}/100");
    }

    #[test]
    fn jackknife_interval_covers_a_known_nonzero_kid() {
        // d = 1, x ~ N(a, 1), y ~ N(0, 1): k(x, y) = (xy + 1)³ = 1 + 3xy + 3x²y² + x³y³, and for
        // independent arguments E k = 1 + 3·m₁m₁′ + 3·m₂m₂′ + m₃m₃′ with the moments of N(a, 1)
        // m₁ = a, m₂ = a² + 1, m₃ = a³ + 3a. At a = 0.5: m = (0.5, 1.25, 1.625), and of N(0, 1)
        // (0, 1, 0), so
        //   E k(x, x′) = 1 + 3·0.25 + 3·1.5625 + 2.640625 = 9.078125,
        //   E k(y, y′) = 1 + 0 + 3 + 0 = 4,  E k(x, y) = 1 + 0 + 3·1.25 + 0 = 4.75,
        //   MMD² = 9.078125 + 4 − 2·4.75 = 3.578125.
        // Away from 0 the U-statistic is asymptotically normal; the interval must cover 3.578125
        // in ≥ 85 of 100 draws of n = 400 (the same loose band as under the null).
        let truth = 3.578125;
        let mut rng = StdRng::seed_from_u64(7);
        let cfg = KidConfig {
            subsets: 1,
            subset_size: 50,
            blocks: 20,
        };
        let covered = (0..100)
            .filter(|&s| {
                let x = gaussian(&mut rng, 400, &[0.5], &[1.0]);
                let y = gaussian(&mut rng, 400, &[0.0], &[1.0]);
                kid(&x, &y, 1, &cfg, s).unwrap().ci95.contains(truth)
            })
            .count();
        println!("jackknife interval covered the true KID in {covered}/100");
        assert!(covered >= 85, "covered {truth} in {covered}/100");
    }
}

mod fidelity {
    use eval::fidelity::{feature_distance, pixel_rmse};
    use eval::interval::{Interval, Z95};

    #[test]
    fn fidelity_distances_by_hand() {
        // Two pairs of 2 values: a = (0, 0 | 0, 0), b = (1, 1 | 3, 3): RMSEs √((1+1)/2) = 1 and
        // √((9+9)/2) = 3, mean 2, s = √((1 + 1)/1) = √2, interval 2 ± z·√2/√2 = 2 ± z.
        let p = pixel_rmse(&[0.0; 4], &[1.0, 1.0, 3.0, 3.0], 2).unwrap();
        assert!((p.mean - 2.0).abs() < 1e-12 && p.n == 2, "{p:?}");
        assert!(
            (p.ci95.lo - (2.0 - Z95)).abs() < 1e-12 && (p.ci95.hi - (2.0 + Z95)).abs() < 1e-12,
            "{p:?}"
        );
        // Feature distances: ‖(3, 4)‖ = 5 and ‖(0, 0)‖ = 0 → mean 2.5.
        let f = feature_distance(&[3.0, 4.0, 1.0, 1.0], &[0.0, 0.0, 1.0, 1.0], 2).unwrap();
        assert!((f.mean - 2.5).abs() < 1e-12, "{f:?}");
        // Identical sets: 0 with a zero-width interval.
        let same = pixel_rmse(&[0.5; 6], &[0.5; 6], 3).unwrap();
        assert_eq!((same.mean, same.ci95), (0.0, Interval { lo: 0.0, hi: 0.0 }));
        // Mismatched or ragged sets are errors naming the fix.
        let e = pixel_rmse(&[0.0; 4], &[0.0; 6], 2).unwrap_err().to_string();
        assert!(e.contains("same n and seed"), "{e}");
        let e = feature_distance(&[0.0; 5], &[0.0; 5], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a multiple"), "{e}");
        assert!(pixel_rmse(&[], &[], 2).is_err());
    }
}

mod memorisation {
    use super::*;
    use eval::memorisation::{memorisation, nearest_distances};

    /// min over base rows of the Euclidean distance, by a plain loop in f64.
    fn naive_nearest(q: &[f32], base: &[f32], d: usize) -> f32 {
        base.chunks_exact(d)
            .map(|t| {
                t.iter()
                    .zip(q)
                    .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min)
            .sqrt() as f32
    }

    #[test]
    fn nearest_distances_match_a_naive_search_and_copies_are_caught() {
        // 5,000 training rows span two base tiles (4,096 + 904) and 2,100 test rows two query
        // tiles (2,048 + 52); the naive check covers rows on both sides of the query boundary.
        let mut rng = StdRng::seed_from_u64(6);
        let d = 7;
        let train = gaussian(&mut rng, 5000, &[0.0; 7], &[1.0; 7]);
        let test = gaussian(&mut rng, 2100, &[0.0; 7], &[1.0; 7]);
        let test_nn = nearest_distances(&test, &train, d).unwrap();
        assert_eq!(test_nn.len(), 2100);
        for i in (0..30).chain(2040..2060) {
            let want = naive_nearest(&test[i * d..(i + 1) * d], &train, d);
            assert!(
                (test_nn[i] - want).abs() < 1e-4,
                "row {i}: {} vs {want}",
                test_nn[i]
            );
        }
        // Samples that are training rows: distance exactly 0 (the winner's distance is
        // recomputed directly), so every one is below the test set's 1st percentile.
        let copies = nearest_distances(&train[..300 * d], &train, d).unwrap();
        assert!(copies.iter().all(|&c| c == 0.0));
        let m = memorisation(&copies, &test_nn, 5000).unwrap();
        assert_eq!((m.fraction_below, m.n_samples, m.n_test), (1.0, 300, 2100));
        assert_eq!(m.sample_quantiles, [0.0; 5]);
        // Fresh draws of the same distribution: about 1% (asserted < 5%; the threshold is the
        // test set's own 1st percentile, itself estimated from ~21 rows).
        let fresh = gaussian(&mut rng, 1000, &[0.0; 7], &[1.0; 7]);
        let fresh_nn = nearest_distances(&fresh, &train, d).unwrap();
        let m = memorisation(&fresh_nn, &test_nn, 5000).unwrap();
        println!("fresh samples below the threshold: {:.4}", m.fraction_below);
        assert!(m.fraction_below < 0.05, "{m:?}");
        assert!(m.fraction_ci95.contains(m.fraction_below), "{m:?}");
        assert!(
            m.threshold > 0.0 && m.test_quantiles[0] >= m.threshold,
            "{m:?}"
        );
    }

    #[test]
    fn memorisation_by_hand_and_its_errors() {
        // Test distances 1, 2, …, 101: threshold = 1st percentile = 1 + 0.01·100 = 2.
        // Samples {0.5, 2, 3, 50}: 0.5 and 2 are ≤ 2 → fraction 2/4 = 0.5.
        // Sample quantiles (h = 3p): 5% → 0.5 + 0.15·1.5 = 0.725, 50% → 2 + 0.5·1 = 2.5.
        let test: Vec<f32> = (1..=101).map(|v| v as f32).collect();
        let m = memorisation(&[3.0, 0.5, 50.0, 2.0], &test, 10).unwrap();
        assert_eq!((m.threshold, m.fraction_below), (2.0, 0.5));
        assert!((m.sample_quantiles[0] - 0.725).abs() < 1e-12, "{m:?}");
        assert!((m.sample_quantiles[2] - 2.5).abs() < 1e-12, "{m:?}");
        assert_eq!(m.test_quantiles[2], 51.0);
        assert!(memorisation(&[], &test, 10).is_err());
        assert!(memorisation(&[1.0], &[], 10).is_err());
        assert!(memorisation(&[f32::NAN], &test, 10).is_err());
        assert!(nearest_distances(&[0.0; 2], &[], 2).is_err());
        assert!(nearest_distances(&[0.0; 3], &[0.0; 4], 2).is_err());
    }
}

mod equal_quality {
    use eval::equal_quality::{CurvePoint, best_reach, equal_quality, reaches};
    use eval::interval::Interval;

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
        // The 20 s point is the first to reach (30 ≤ 40); between 10 s and 20 s, lo falls from
        // 50 to 30, so lo = 40 at the fraction (50 − 40)/(50 − 30) = 0.5 of the way in
        // ln seconds: exp((ln 10 + ln 20)/2) = √200 = 14.142 s; in ln NFE between 8 and 16
        // likewise √128 = 11.314.
        let curve = vec![
            point("a", 8, 10.0, 50.0),
            point("b", 16, 20.0, 30.0),
            point("c", 32, 40.0, 20.0),
        ];
        let target = Interval { lo: 35.0, hi: 40.0 };
        assert!(!reaches(&curve[0], &target) && reaches(&curve[1], &target));
        let r = equal_quality(&curve, &target).unwrap();
        assert!(
            (r.seconds - 200f64.sqrt()).abs() < 1e-9 && (r.nfe - 128f64.sqrt()).abs() < 1e-9,
            "{r:?}"
        );
        assert!(r.interpolated && r.first_reaching == "b", "{r:?}");
        // Order does not matter.
        let mut shuffled = curve.clone();
        shuffled.swap(0, 2);
        shuffled.swap(1, 2);
        assert_eq!(equal_quality(&shuffled, &target), Some(r.clone()));
        // The cheapest point already reaching: that point, not interpolated.
        let easy = Interval { lo: 0.0, hi: 60.0 };
        let r0 = equal_quality(&curve, &easy).unwrap();
        assert!(
            !r0.interpolated && r0.seconds == 10.0 && r0.nfe == 8.0 && r0.first_reaching == "a",
            "{r0:?}"
        );
        // Nothing reaches a target below every lower end; an empty curve reaches nothing.
        assert!(equal_quality(&curve, &Interval { lo: 0.0, hi: 5.0 }).is_none());
        assert!(equal_quality(&[], &target).is_none());
        // Over two solvers the cheaper reach wins (12 s, reached at its only point).
        let fast = vec![point("x", 4, 12.0, 39.0)];
        let best = best_reach(&[curve, fast], &target).unwrap();
        assert_eq!((best.first_reaching.as_str(), best.seconds), ("x", 12.0));
    }
}
