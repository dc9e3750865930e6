//! Fréchet distance between Gaussian fits of two feature sets (FID and kin), after Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", with the semantics of pytorch-fid's `calculate_frechet_distance`.
//!
//! As in pytorch-fid's `fid_score.py`, extracting statistics is kept apart from the
//! 4-line Fréchet formula:
//!
//! * [`FeatureStats`] holds the mean μ and the unbiased covariance Σ of a feature set
//!   (`np.mean(axis=0)` and `np.cov(rowvar=False)`, i.e. divided by n − 1), computed in
//!   f64, and can be saved to / loaded from a small JSON file.
//! * [`frechet_distance`] evaluates d² = |μ₁ − μ₂|² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr(√(Σ₁Σ₂)).
//!   Like pytorch-fid it returns the *squared* distance (the number reported as "FID").
//!
//! # How Tr(√(Σ₁Σ₂)) is computed, and how it relates to pytorch-fid
//!
//! pytorch-fid takes `scipy.linalg.sqrtm(sigma1.dot(sigma2))`, a Schur-based square
//! root of a non-symmetric matrix, and keeps the real part of its trace. Here the same
//! trace is computed through the similar symmetric matrix
//! M = √Σ₁ Σ₂ √Σ₁ (Σ₁Σ₂ = √Σ₁⁻¹·M·√Σ₁ when Σ₁ is invertible, and the non-zero spectra
//! agree in general), so Tr(√(Σ₁Σ₂)) = Σᵢ √λᵢ(M). √Σ₁ comes from a symmetric
//! eigendecomposition (nalgebra's `SymmetricEigen`) with tiny negative eigenvalues
//! clamped to 0, M is symmetrised as (M + Mᵀ)/2, and negative eigenvalues of M are
//! clamped to 0 before the square root. Clamping matches pytorch-fid's "take the real
//! part": a slightly negative eigenvalue of Σ₁Σ₂ has a purely imaginary root, which
//! contributes nothing to the real part of the trace. pytorch-fid's
//! "Imaginary component" error cannot arise here, since M's spectrum is real.
//!
//! # Singular products
//!
//! pytorch-fid checks `np.isfinite(covmean).all()` and, if the square root is not
//! finite, adds eps·I (eps = 1e-6) to *both* covariances and recomputes the square root;
//! the traces Tr(Σ₁), Tr(Σ₂) in the formula keep the un-offset covariances. This module
//! does the same with the same eps ([`SINGULAR_EPS`]): if M is not finite or the trace
//! is not finite, it retries with Σ₁ + eps·I and Σ₂ + eps·I, and the formula still uses
//! the original traces. If the retry is not finite either, [`FrechetError::NonFinite`]
//! is returned (pytorch-fid would return NaN or raise).
//!
//! Why this matches: pytorch-fid's retry fires when SciPy's Schur-based `sqrtm` of the
//! non-symmetric product returns inf/NaN (e.g. SciPy gives inf/NaN for a product with a
//! nilpotent part such as [[0, 1], [0, 0]]). That failure is a property of that
//! algorithm, not of the statistics; the symmetric form here does not break down on
//! singular covariances (n ≤ d, constant features), so the retry only fires on overflow.
//! On the committed fixtures (full-rank, n < d, and constant-column cases) pytorch-fid
//! does not retry either (checked with SciPy 1.15.3 and 1.17.1), and both give the
//! offset-free value. Should pytorch-fid retry on some input where this module does not,
//! it reports the offset value, which differs from the offset-free one by O(√eps)
//! (about 1e-3·√λ per null direction of the covariances); this module reports the
//! offset-free value, i.e. the distance between the two Gaussians as estimated.
//!
//! For singular covariances both pytorch-fid and this module lose accuracy in the same
//! way: a zero eigenvalue of Σ₁Σ₂ comes out as O(u·‖Σ₁Σ₂‖) (u ≈ 2.2e-16), and its
//! square root adds up to √(u·‖Σ₁Σ₂‖) ≈ 1.5e-8·√‖Σ₁Σ₂‖ per null direction to the trace,
//! so the two agree to about that, not to machine precision.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// Diagonal offset pytorch-fid adds to both covariances when √(Σ₁Σ₂) is not finite.
pub const SINGULAR_EPS: f64 = 1e-6;

/// The `format` tag written into statistics files.
pub const STATS_FORMAT: &str = "fewstep-feature-stats";

/// The version written into statistics files.
pub const STATS_VERSION: u32 = 1;

/// Errors from extracting, storing and comparing feature statistics.
#[derive(Debug, thiserror::Error)]
pub enum FrechetError {
    /// Fewer than two samples: the unbiased covariance divides by n − 1.
    #[error(
        "need at least 2 samples to estimate a covariance, got {n}; generate more samples \
         (FID needs thousands for a stable estimate)"
    )]
    TooFewSamples {
        /// Number of samples given.
        n: usize,
    },

    /// The feature dimension is zero.
    #[error("feature dimension is 0; pass features with at least one column (dim ≥ 1)")]
    ZeroDim,

    /// The feature buffer does not hold n × dim values.
    #[error(
        "feature buffer holds {len} values but n × dim = {n} × {dim}; pass a row-major buffer \
         of n rows with dim values each, or fix n / dim"
    )]
    LengthMismatch {
        /// Length of the buffer.
        len: usize,
        /// Number of rows claimed.
        n: usize,
        /// Number of columns claimed.
        dim: usize,
    },

    /// A feature value is NaN or infinite.
    #[error(
        "feature value at row {row}, column {col} is {value}; the feature extractor produced a \
         non-finite value, fix it or drop that sample"
    )]
    NonFiniteFeature {
        /// Sample index.
        row: usize,
        /// Feature index.
        col: usize,
        /// The offending value.
        value: f64,
    },

    /// Mean/covariance given to [`FeatureStats::from_moments`] (or found in a file) are
    /// inconsistent.
    #[error("invalid feature statistics: {reason}")]
    InvalidMoments {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The two statistics come from features of different widths.
    #[error(
        "feature dimensions differ ({a} vs {b}); both statistics must come from the same \
         feature extractor and layer"
    )]
    DimensionMismatch {
        /// Dimension of the first statistics.
        a: usize,
        /// Dimension of the second statistics.
        b: usize,
    },

    /// Tr(√(Σ₁Σ₂)) is not finite even after the eps·I retry.
    #[error(
        "Fréchet distance is not finite even after adding {eps}·I to both covariances; the \
         statistics overflow f64 (check the features' scale)"
    )]
    NonFinite {
        /// The offset that was tried.
        eps: f64,
    },

    /// Reading or writing a statistics file failed.
    #[error("cannot {op} feature statistics file {}; check the path and its permissions", path.display())]
    Io {
        /// "read", "write" or "replace".
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A statistics file is not valid JSON of the expected shape.
    #[error(
        "{} is not a valid feature statistics file; regenerate it with FeatureStats::save",
        path.display()
    )]
    Parse {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// A statistics file has another format tag or version.
    #[error(
        "{} has format {found:?} version {version}, expected {STATS_FORMAT:?} version \
         {STATS_VERSION}; regenerate it with this version of fewstep",
        path.display()
    )]
    UnsupportedFormat {
        /// The file involved.
        path: PathBuf,
        /// The format tag found.
        found: String,
        /// The version found.
        version: u32,
    },

    /// A statistics file parses but holds inconsistent statistics.
    #[error("{} holds inconsistent feature statistics; regenerate it", path.display())]
    InvalidFile {
        /// The file involved.
        path: PathBuf,
        /// What is inconsistent.
        #[source]
        source: Box<FrechetError>,
    },
}

/// Result with [`FrechetError`].
pub type Result<T, E = FrechetError> = std::result::Result<T, E>;

/// Mean and unbiased covariance of a feature set, in f64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Mean μ, `dim` values.
    pub mu: Vec<f64>,
    /// Covariance Σ, `dim × dim` values, row-major (symmetric).
    pub sigma: Vec<f64>,
    /// Number of samples the moments were estimated from.
    pub n: usize,
    /// Feature dimension d.
    pub dim: usize,
}

/// On-disk layout, written with borrowed vectors.
#[derive(Serialize)]
struct StatsFileRef<'a> {
    format: &'a str,
    version: u32,
    n: usize,
    dim: usize,
    mu: &'a [f64],
    sigma: &'a [f64],
}

/// On-disk layout, read into owned vectors.
#[derive(Deserialize)]
struct StatsFile {
    format: String,
    version: u32,
    n: usize,
    dim: usize,
    mu: Vec<f64>,
    sigma: Vec<f64>,
}

/// Samples per chunk when accumulating XᵀX (bounds the temporary to dim × CHUNK f64).
const CHUNK: usize = 256;

/// Relative asymmetry |Σᵢⱼ − Σⱼᵢ| / max|Σ| tolerated in given covariances.
const SYMMETRY_TOL: f64 = 1e-6;

impl FeatureStats {
    /// μ = (1/n)·Σᵢ xᵢ and Σ = (1/(n−1))·Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ from `n` row-major rows of `dim` features.
    pub fn from_features<T: Copy + Into<f64>>(
        features: &[T],
        n: usize,
        dim: usize,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(FrechetError::ZeroDim);
        }
        if n.checked_mul(dim) != Some(features.len()) {
            return Err(FrechetError::LengthMismatch {
                len: features.len(),
                n,
                dim,
            });
        }
        if n < 2 {
            return Err(FrechetError::TooFewSamples { n });
        }
        if let Some(i) = features.iter().position(|&v| !v.into().is_finite()) {
            return Err(FrechetError::NonFiniteFeature {
                row: i / dim,
                col: i % dim,
                value: features[i].into(),
            });
        }

        let mut mu = vec![0.0f64; dim];
        for row in features.chunks_exact(dim) {
            for (m, &v) in mu.iter_mut().zip(row) {
                *m += v.into();
            }
        }
        let inv_n = 1.0 / n as f64;
        mu.iter_mut().for_each(|m| *m *= inv_n);

        // Accumulate Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ with a GEMM per chunk of samples: a chunk of
        // centred samples as the columns of a dim × c matrix X gives X·Xᵀ.
        let mut scatter = DMatrix::<f64>::zeros(dim, dim);
        for (c, rows) in features.chunks(CHUNK * dim).enumerate() {
            let count = rows.len() / dim;
            let x = DMatrix::<f64>::from_fn(dim, count, |r, s| rows[s * dim + r].into() - mu[r]);
            scatter.gemm(1.0, &x, &x.transpose(), if c == 0 { 0.0 } else { 1.0 });
        }
        let inv_dof = 1.0 / (n - 1) as f64;
        let mut sigma = vec![0.0f64; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                sigma[i * dim + j] = 0.5 * (scatter[(i, j)] + scatter[(j, i)]) * inv_dof;
            }
        }
        Ok(Self { mu, sigma, n, dim })
    }

    /// Stats of a known Gaussian N(μ, Σ), Σ row-major d × d; `n` is kept as metadata only.
    pub fn from_moments(mu: Vec<f64>, sigma: Vec<f64>, n: usize) -> Result<Self> {
        let stats = Self {
            dim: mu.len(),
            mu,
            sigma,
            n,
        };
        stats.validate()?;
        Ok(stats)
    }

    /// Checks dim = |μ| ≥ 1, |Σ| = d², finite values, Σ symmetric with a non-negative diagonal.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(FrechetError::InvalidMoments { reason });
        let d = self.dim;
        if d == 0 {
            return invalid("dimension is 0; the mean needs at least one value".into());
        }
        if self.mu.len() != d {
            return invalid(format!(
                "mean has {} values but dim is {d}; pass one mean per feature",
                self.mu.len()
            ));
        }
        if d.checked_mul(d) != Some(self.sigma.len()) {
            return invalid(format!(
                "covariance has {} values but a {d}-dimensional covariance needs {d} × {d}; \
                 pass the full row-major matrix",
                self.sigma.len()
            ));
        }
        if let Some(i) = self.mu.iter().position(|v| !v.is_finite()) {
            return invalid(format!("mean[{i}] is {}; it must be finite", self.mu[i]));
        }
        if let Some(i) = self.sigma.iter().position(|v| !v.is_finite()) {
            return invalid(format!(
                "covariance[{}][{}] is {}; it must be finite",
                i / d,
                i % d,
                self.sigma[i]
            ));
        }
        if let Some(i) = (0..d).find(|&i| self.sigma[i * d + i] < 0.0) {
            return invalid(format!(
                "covariance[{i}][{i}] = {} is a negative variance; a covariance is positive \
                 semi-definite",
                self.sigma[i * d + i]
            ));
        }
        let scale = self.sigma.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (self.sigma[i * d + j], self.sigma[j * d + i]);
                if (a - b).abs() > SYMMETRY_TOL * scale {
                    return invalid(format!(
                        "covariance is not symmetric: [{i}][{j}] = {a} but [{j}][{i}] = {b}; \
                         pass a symmetric (row-major) covariance"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Tr(Σ) = Σᵢ Σᵢᵢ.
    pub fn trace(&self) -> f64 {
        (0..self.dim).map(|i| self.sigma[i * self.dim + i]).sum()
    }

    /// Writes {format, version, n, dim, μ, Σ} as JSON to a temp file beside `path`, then renames it over `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = path.as_ref();
        self.validate()?;
        let io_err = |op, source| FrechetError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let file_name = path.file_name().ok_or_else(|| {
            io_err(
                "write",
                io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
            )
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);

        let write = || -> io::Result<()> {
            let mut out = BufWriter::new(fs::File::create(&tmp)?);
            let record = StatsFileRef {
                format: STATS_FORMAT,
                version: STATS_VERSION,
                n: self.n,
                dim: self.dim,
                mu: &self.mu,
                sigma: &self.sigma,
            };
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("replace", e));
        }
        Ok(())
    }

    /// Reads a file written by [`FeatureStats::save`] and validates it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| FrechetError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let file: StatsFile =
            serde_json::from_slice(&bytes).map_err(|source| FrechetError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if file.format != STATS_FORMAT || file.version != STATS_VERSION {
            return Err(FrechetError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: file.format,
                version: file.version,
            });
        }
        let stats = Self {
            mu: file.mu,
            sigma: file.sigma,
            n: file.n,
            dim: file.dim,
        };
        stats.validate().map_err(|e| FrechetError::InvalidFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        Ok(stats)
    }

    /// Σ as an nalgebra matrix, symmetrised as (Σ + Σᵀ)/2.
    fn sigma_matrix(&self) -> DMatrix<f64> {
        let d = self.dim;
        DMatrix::from_fn(d, d, |i, j| {
            0.5 * (self.sigma[i * d + j] + self.sigma[j * d + i])
        })
    }
}

/// d² = |μ₁ − μ₂|² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr(√(Σ₁Σ₂)), retrying with Σ + 1e-6·I inside the root if it is not finite.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    a.validate()?;
    b.validate()?;
    if a.dim != b.dim {
        return Err(FrechetError::DimensionMismatch { a: a.dim, b: b.dim });
    }
    let (s1, s2) = (a.sigma_matrix(), b.sigma_matrix());
    let tr_covmean = match trace_sqrt_product(&s1, &s2) {
        Some(t) => t,
        None => {
            let offset = DMatrix::<f64>::identity(a.dim, a.dim) * SINGULAR_EPS;
            trace_sqrt_product(&(&s1 + &offset), &(&s2 + &offset))
                .ok_or(FrechetError::NonFinite { eps: SINGULAR_EPS })?
        }
    };
    let diff2: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y) * (x - y)).sum();
    let d2 = diff2 + a.trace() + b.trace() - 2.0 * tr_covmean;
    if d2.is_finite() {
        Ok(d2)
    } else {
        Err(FrechetError::NonFinite { eps: SINGULAR_EPS })
    }
}

/// Tr(√(Σ₁Σ₂)) = Σᵢ √max(λᵢ, 0) over the eigenvalues λ of M = √Σ₁·Σ₂·√Σ₁; `None` if not finite.
fn trace_sqrt_product(s1: &DMatrix<f64>, s2: &DMatrix<f64>) -> Option<f64> {
    let root1 = psd_sqrt(s1)?;
    let m = &root1 * s2 * &root1;
    let m = (&m + m.transpose()) * 0.5;
    if !m.iter().all(|v| v.is_finite()) {
        return None;
    }
    let trace: f64 = m
        .symmetric_eigenvalues()
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .sum();
    trace.is_finite().then_some(trace)
}

/// √Σ = V·diag(√max(λ, 0))·Vᵀ from the symmetric eigendecomposition Σ = V·diag(λ)·Vᵀ; `None` if not finite.
fn psd_sqrt(s: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    if !s.iter().all(|v| v.is_finite()) {
        return None;
    }
    let eig = SymmetricEigen::new(s.clone());
    let mut scaled = eig.eigenvectors.clone();
    for (mut col, &l) in scaled.column_iter_mut().zip(eig.eigenvalues.iter()) {
        col *= l.max(0.0).sqrt();
    }
    let root = &scaled * eig.eigenvectors.transpose();
    let root = (&root + root.transpose()) * 0.5;
    root.iter().all(|v| v.is_finite()).then_some(root)
}
