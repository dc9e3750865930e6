//! Tests of `eval::frechet`: closed forms, agreement with pytorch-fid, singular
//! covariances, errors and the statistics file.

use eval::frechet::{FeatureStats, FrechetError, STATS_FORMAT, frechet_distance};
use serde_json::Value;

/// Unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;

fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(f64::MIN_POSITIVE);
    assert!(
        err <= tol,
        "{what}: got {got:e}, want {want:e}, relative error {err:e} > {tol:e}"
    );
}

/// Deterministic splitmix64 generator with Box–Muller normals, so tests need no `rand`.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// n × dim row-major features x = z·A + shift with a random mixing matrix A (correlated columns).
fn correlated_features(seed: u64, n: usize, dim: usize, shift: f64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let a: Vec<f64> = (0..dim * dim).map(|_| rng.normal()).collect();
    let mut x = vec![0.0; n * dim];
    for i in 0..n {
        let z: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        for j in 0..dim {
            x[i * dim + j] = shift + (0..dim).map(|k| z[k] * a[k * dim + j]).sum::<f64>();
        }
    }
    x
}

fn diag(values: &[f64]) -> Vec<f64> {
    let d = values.len();
    let mut m = vec![0.0; d * d];
    for (i, &v) in values.iter().enumerate() {
        m[i * d + i] = v;
    }
    m
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[test]
fn self_distance_is_zero() {
    let x = correlated_features(1, 500, 8, 0.3);
    let s = FeatureStats::from_features(&x, 500, 8).unwrap();
    let d2 = frechet_distance(&s, &s).unwrap();
    // Relative to the size of the terms that cancel: Tr(Σ) + Tr(Σ).
    assert!(
        d2.abs() <= 1e-9 * 2.0 * s.trace(),
        "self distance {d2:e} vs Tr Σ = {}",
        s.trace()
    );
}

/// Diagonal covariances commute, so √(Σ₁Σ₂) = diag(√(aᵢbᵢ)) and
/// d² = |μ₁−μ₂|² + Σᵢ aᵢ + Σᵢ bᵢ − 2 Σᵢ √(aᵢbᵢ) = |μ₁−μ₂|² + Σᵢ (√aᵢ − √bᵢ)².
#[test]
fn diagonal_gaussians_closed_form() {
    let mu1 = vec![0.0, 1.0, -2.0, 0.5];
    let mu2 = vec![0.3, 1.0, -1.0, -0.5];
    let a = [1.0, 4.0, 0.25, 9.0];
    let b = [2.0, 1.0, 0.25, 16.0];
    let s1 = FeatureStats::from_moments(mu1.clone(), diag(&a), 100).unwrap();
    let s2 = FeatureStats::from_moments(mu2.clone(), diag(&b), 100).unwrap();
    let want = sq_dist(&mu1, &mu2)
        + a.iter()
            .zip(&b)
            .map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2))
            .sum::<f64>();
    assert_rel(frechet_distance(&s1, &s2).unwrap(), want, 1e-12, "diagonal");
    // Symmetric in its arguments.
    assert_rel(
        frechet_distance(&s2, &s1).unwrap(),
        want,
        1e-12,
        "diagonal, swapped",
    );
}

/// Σ₂ = c²Σ₁ (c > 0): Σ₁Σ₂ = c²Σ₁², whose PSD square root is cΣ₁, so Tr(√(Σ₁Σ₂)) = c·Tr(Σ₁) and
/// d² = |Δμ|² + Tr(Σ₁) + c²Tr(Σ₁) − 2c·Tr(Σ₁) = |Δμ|² + (1−c)²·Tr(Σ₁).
#[test]
fn scaled_covariance_closed_form() {
    // Σ₁ = L·Lᵀ with a dense lower-triangular L: a non-diagonal, full-rank covariance.
    let l = [
        [2.0, 0.0, 0.0, 0.0],
        [0.5, 1.5, 0.0, 0.0],
        [-0.7, 0.3, 1.0, 0.0],
        [0.2, -0.4, 0.6, 0.8],
    ];
    let sigma1: Vec<f64> = (0..16)
        .map(|k| (0..4).map(|m| l[k / 4][m] * l[k % 4][m]).sum())
        .collect();
    let tr1: f64 = (0..4).map(|i| sigma1[i * 4 + i]).sum();
    let mu1 = vec![1.0, -1.0, 0.5, 2.0];
    let mu2 = vec![0.0, -0.5, 0.5, 1.0];
    for c in [1.7, 0.4, 1.0] {
        let sigma2: Vec<f64> = sigma1.iter().map(|v| c * c * v).collect();
        let s1 = FeatureStats::from_moments(mu1.clone(), sigma1.clone(), 10).unwrap();
        let s2 = FeatureStats::from_moments(mu2.clone(), sigma2, 10).unwrap();
        let want = sq_dist(&mu1, &mu2) + (1.0 - c) * (1.0 - c) * tr1;
        let got = frechet_distance(&s1, &s2).unwrap();
        assert_rel(got, want, 1e-12, &format!("Σ₂ = {c}²·Σ₁"));
    }
}

/// Same identity with a rank-2 Σ₁ in 4 dimensions (two null directions). The zero
/// eigenvalues of M come out as O(u·‖M‖) and their roots add up to √(u·‖M‖) each, hence
/// the looser tolerance.
#[test]
fn scaled_singular_covariance_closed_form() {
    let v = [1.0, 2.0, 0.0, -1.0];
    let w = [0.0, 1.0, 1.0, 0.5];
    let sigma1: Vec<f64> = (0..16)
        .map(|k| v[k / 4] * v[k % 4] + w[k / 4] * w[k % 4])
        .collect();
    let tr1: f64 = (0..4).map(|i| sigma1[i * 4 + i]).sum();
    let c = 2.0;
    let sigma2: Vec<f64> = sigma1.iter().map(|x| c * c * x).collect();
    let mu = vec![0.0; 4];
    let s1 = FeatureStats::from_moments(mu.clone(), sigma1, 3).unwrap();
    let s2 = FeatureStats::from_moments(mu, sigma2, 3).unwrap();
    let got = frechet_distance(&s1, &s2).unwrap();
    assert_rel(got, (1.0 - c) * (1.0 - c) * tr1, 1e-7, "singular Σ₂ = 4Σ₁");
}

/// The fixture `tests/fixtures/frechet_cases.json` was made once by
/// `tests/fixtures/make_frechet_fixture.py`, run from the repository root as
/// `python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy scipy &&
///  /tmp/venv/bin/python eval/tests/fixtures/make_frechet_fixture.py`
/// (numpy 2.4.6, SciPy 1.17.1; SciPy 1.15.3 gives bit-identical distances). It holds
/// seeded float64 features, numpy's mean/np.cov of them, and the distance from
/// pytorch-fid's `calculate_frechet_distance` copied verbatim (scipy sqrtm of Σ₁Σ₂,
/// eps retry if not finite, real part). It also records the same distance through
/// numpy's eigh of the symmetric form, with and without the 1e-6 offset.
#[test]
fn matches_pytorch_fid_fixture() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/frechet_cases.json")).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let flat = |key: &str| -> Vec<f64> {
            let rows = case[key].as_array().unwrap();
            rows.iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                .collect()
        };
        let vec = |key: &str| -> Vec<f64> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (x1, x2) = (flat("features1"), flat("features2"));
        let (n1, n2) = (x1.len() / dim, x2.len() / dim);
        let s1 = FeatureStats::from_features(&x1, n1, dim).unwrap();
        let s2 = FeatureStats::from_features(&x2, n2, dim).unwrap();

        // Statistics extraction agrees with np.mean / np.cov(rowvar=False).
        for (stats, mu_key, sigma_key) in [(&s1, "mu1", "sigma1"), (&s2, "mu2", "sigma2")] {
            let (mu, sigma) = (vec(mu_key), flat(sigma_key));
            let scale_mu = mu.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let scale_sigma = sigma.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (got, want) in stats.mu.iter().zip(&mu) {
                assert!((got - want).abs() <= 1e-13 * scale_mu, "{name} {mu_key}");
            }
            for (got, want) in stats.sigma.iter().zip(&sigma) {
                assert!(
                    (got - want).abs() <= 1e-13 * scale_sigma,
                    "{name} {sigma_key}"
                );
            }
        }

        let got = frechet_distance(&s1, &s2).unwrap();
        let want = case["fid_pytorch"].as_f64().unwrap();
        let k =
            dim - (case["rank1"].as_u64().unwrap()).min(case["rank2"].as_u64().unwrap()) as usize;
        // Tolerance. Full rank (k = 0): both sides are backward stable and agree to
        // 2e-14 relative (well_conditioned_d6: |diff| = 1.5e-13), so 1e-9 is ample.
        // Singular (k = d − min rank null directions): each zero eigenvalue of Σ₁Σ₂ is
        // computed as O(u·‖Σ₁Σ₂‖), by scipy's sqrtm and by our eigensolver alike, and its
        // square root adds up to √(u·‖Σ₁Σ₂‖) to Tr √(Σ₁Σ₂), i.e. 2√(u·‖Σ₁Σ₂‖) to d². So
        // allow the first-order bound 2k·√(u·‖Σ₁Σ₂‖_F) (Frobenius ≥ spectral norm):
        // 6.5e-7 absolute (5.8e-8 relative) for singular_n_lt_d16, which agrees to
        // 1.2e-8; 2.3e-7 for constant_column_d5, which agrees to 1.4e-14 (its null
        // direction is an exact zero row/column, so no noise eigenvalue appears).
        let product = matmul(&flat("sigma1"), &flat("sigma2"), dim);
        let norm = product.iter().map(|v| v * v).sum::<f64>().sqrt();
        let tol_abs = (1e-9 * want.abs()).max(2.0 * k as f64 * (U * norm).sqrt());
        assert!(
            (got - want).abs() <= tol_abs,
            "{name}: got {got:.17e}, pytorch-fid {want:.17e}, |diff| {:e} > {tol_abs:e}",
            (got - want).abs()
        );
        assert!(!case["pytorch_fid_retried_with_eps"].as_bool().unwrap());
        // The same algorithm in numpy lands within the same bound...
        let sym = case["fid_symmetric_no_offset"].as_f64().unwrap();
        assert!(
            (got - sym).abs() <= tol_abs,
            "{name}: vs numpy symmetric form"
        );
        // ...and far from the eps-offset value: no retry happened here, as in pytorch-fid.
        let offset = case["fid_symmetric_eps_offset"].as_f64().unwrap();
        assert!(
            (got - offset).abs() > 100.0 * (got - want).abs(),
            "{name}: closer to the eps-offset value than expected"
        );
    }
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    (0..d * d)
        .map(|k| (0..d).map(|m| a[(k / d) * d + m] * b[m * d + k % d]).sum())
        .collect()
}

#[test]
fn singular_covariance_gives_finite_non_negative_distance() {
    // n < d: rank(Σ) ≤ n − 1 = 4 in 12 dimensions.
    let (n, dim) = (5, 12);
    let x1 = correlated_features(2, n, dim, 0.0);
    let x2 = correlated_features(3, n + 2, dim, 0.5);
    let s1 = FeatureStats::from_features(&x1, n, dim).unwrap();
    let s2 = FeatureStats::from_features(&x2, n + 2, dim).unwrap();
    let d2 = frechet_distance(&s1, &s2).unwrap();
    assert!(d2.is_finite() && d2 >= 0.0, "n < d: {d2}");

    // Constant feature columns (different constants in the two sets).
    let (n, dim) = (40, 6);
    let mut x1 = correlated_features(4, n, dim, 0.0);
    let mut x2 = correlated_features(5, n, dim, 0.2);
    for i in 0..n {
        x1[i * dim + 1] = 7.0;
        x1[i * dim + 4] = -1.0;
        x2[i * dim + 1] = 7.5;
        x2[i * dim + 4] = -1.0;
    }
    let s1 = FeatureStats::from_features(&x1, n, dim).unwrap();
    let s2 = FeatureStats::from_features(&x2, n, dim).unwrap();
    assert_eq!(s1.sigma[dim + 1], 0.0);
    let d2 = frechet_distance(&s1, &s2).unwrap();
    assert!(d2.is_finite() && d2 >= 0.25, "constant columns: {d2}");

    // All-zero covariances: only the mean term is left, exactly.
    let z1 = FeatureStats::from_moments(vec![1.0, 2.0, 3.0], vec![0.0; 9], 2).unwrap();
    let z2 = FeatureStats::from_moments(vec![0.0, 2.0, 5.0], vec![0.0; 9], 2).unwrap();
    assert_eq!(frechet_distance(&z1, &z2).unwrap(), 5.0);
}

#[test]
fn statistics_match_a_naive_two_pass_estimate() {
    // More samples than one GEMM chunk (256), f32 input.
    let (n, dim) = (700, 5);
    let x: Vec<f32> = correlated_features(6, n, dim, 10.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let s = FeatureStats::from_features(&x, n, dim).unwrap();
    assert_eq!(
        (s.n, s.dim, s.mu.len(), s.sigma.len()),
        (n, dim, dim, dim * dim)
    );
    let mu: Vec<f64> = (0..dim)
        .map(|j| (0..n).map(|i| x[i * dim + j] as f64).sum::<f64>() / n as f64)
        .collect();
    for j in 0..dim {
        assert_rel(s.mu[j], mu[j], 1e-13, "mean");
        for k in 0..dim {
            let c = (0..n)
                .map(|i| (x[i * dim + j] as f64 - mu[j]) * (x[i * dim + k] as f64 - mu[k]))
                .sum::<f64>()
                / (n - 1) as f64;
            assert!((s.sigma[j * dim + k] - c).abs() <= 1e-12 * s.sigma[j * dim + j].max(1.0));
            assert_eq!(s.sigma[j * dim + k], s.sigma[k * dim + j], "symmetric");
        }
    }
}

#[test]
fn errors_say_what_and_how_to_fix() {
    // n < 2.
    for n in [0, 1] {
        let err = FeatureStats::from_features(&vec![1.0f64; n * 3], n, 3).unwrap_err();
        assert!(matches!(err, FrechetError::TooFewSamples { n: m } if m == n));
        let msg = err.to_string();
        assert!(
            msg.contains("need at least 2 samples") && msg.contains("generate more samples"),
            "{msg}"
        );
    }
    // Length mismatch.
    let err = FeatureStats::from_features(&[1.0f32; 10], 3, 3).unwrap_err();
    assert!(matches!(
        err,
        FrechetError::LengthMismatch {
            len: 10,
            n: 3,
            dim: 3
        }
    ));
    assert!(err.to_string().contains("row-major"), "{err}");
    assert!(matches!(
        FeatureStats::from_features(&[0.0f64; 0], 3, 0).unwrap_err(),
        FrechetError::ZeroDim
    ));
    // Non-finite feature.
    let mut x = vec![0.5f64; 12];
    x[7] = f64::NAN;
    let err = FeatureStats::from_features(&x, 4, 3).unwrap_err();
    assert!(
        matches!(err, FrechetError::NonFiniteFeature { row: 2, col: 1, .. }),
        "{err}"
    );

    // Dimension mismatch.
    let a = FeatureStats::from_moments(vec![0.0; 3], diag(&[1.0; 3]), 10).unwrap();
    let b = FeatureStats::from_moments(vec![0.0; 4], diag(&[1.0; 4]), 10).unwrap();
    let err = frechet_distance(&a, &b).unwrap_err();
    assert!(matches!(
        err,
        FrechetError::DimensionMismatch { a: 3, b: 4 }
    ));
    assert!(err.to_string().contains("same feature extractor"), "{err}");

    // Inconsistent moments.
    let bad = [
        (vec![0.0; 2], vec![1.0; 3], "needs 2 × 2"),
        (vec![0.0; 2], vec![1.0, 0.5, -0.5, 1.0], "not symmetric"),
        (vec![0.0; 2], vec![-1.0, 0.0, 0.0, 1.0], "negative variance"),
        (
            vec![f64::NAN, 0.0],
            vec![1.0, 0.0, 0.0, 1.0],
            "must be finite",
        ),
        (vec![], vec![], "dimension is 0"),
    ];
    for (mu, sigma, hint) in bad {
        let err = FeatureStats::from_moments(mu, sigma, 10).unwrap_err();
        assert!(matches!(err, FrechetError::InvalidMoments { .. }));
        assert!(err.to_string().contains(hint), "{err} lacks {hint:?}");
    }

    // Overflow: √Σ₁·Σ₂·√Σ₁ = 1e600 is not representable, with or without the eps retry.
    let huge = FeatureStats::from_moments(vec![0.0; 2], diag(&[1e300; 2]), 10).unwrap();
    let err = frechet_distance(&huge, &huge).unwrap_err();
    assert!(matches!(err, FrechetError::NonFinite { .. }), "{err}");
}

#[test]
fn stats_file_round_trip_and_errors() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("frechet-stats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ref.stats.json");

    let x = correlated_features(7, 30, 4, 1.0);
    let s = FeatureStats::from_features(&x, 30, 4).unwrap();
    s.save(&path).unwrap();
    assert_eq!(
        FeatureStats::load(&path).unwrap(),
        s,
        "bit-exact round trip"
    );
    // Overwriting replaces the file; no temp file is left behind.
    let s2 = FeatureStats::from_moments(vec![1.0, 2.0], diag(&[3.0, 4.0]), 5).unwrap();
    s2.save(&path).unwrap();
    assert_eq!(FeatureStats::load(&path).unwrap(), s2);
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "leftover temp files: {entries:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(STATS_FORMAT));

    // Missing file.
    let err = FeatureStats::load(dir.join("missing.json")).unwrap_err();
    assert!(matches!(err, FrechetError::Io { op: "read", .. }), "{err}");
    assert!(err.to_string().contains("missing.json"));
    // Not JSON.
    std::fs::write(dir.join("garbage.json"), "not json").unwrap();
    let err = FeatureStats::load(dir.join("garbage.json")).unwrap_err();
    assert!(matches!(err, FrechetError::Parse { .. }), "{err}");
    // Another format.
    std::fs::write(
        dir.join("other.json"),
        r#"{"format":"npz","version":1,"n":2,"dim":1,"mu":[0],"sigma":[1]}"#,
    )
    .unwrap();
    let err = FeatureStats::load(dir.join("other.json")).unwrap_err();
    assert!(
        matches!(err, FrechetError::UnsupportedFormat { .. }),
        "{err}"
    );
    // Inconsistent contents.
    std::fs::write(
        dir.join("bad.json"),
        format!(
            r#"{{"format":"{STATS_FORMAT}","version":1,"n":2,"dim":3,"mu":[0,0],"sigma":[1]}}"#
        ),
    )
    .unwrap();
    let err = FeatureStats::load(dir.join("bad.json")).unwrap_err();
    assert!(matches!(err, FrechetError::InvalidFile { .. }), "{err}");
    // Saving into a directory that does not exist fails cleanly.
    let err = s.save(dir.join("no-such-dir").join("x.json")).unwrap_err();
    assert!(matches!(err, FrechetError::Io { op: "write", .. }), "{err}");

    std::fs::remove_dir_all(&dir).unwrap();
}
