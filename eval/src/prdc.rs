//! Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
//! Metric for Assessing Generative Models"): each set's manifold is the union of balls around its
//! points with radius the distance to the k-th nearest neighbour within the set; precision is the
//! share of generated points inside the real manifold, recall the share of real points inside the
//! generated one.

use nalgebra::DMatrix;

/// Rows processed per block of pairwise distances (bounds memory to BLOCK × m f32).
const BLOCK: usize = 1024;

/// Squared Euclidean distances between every row of `a` (n × d) and every row of `b` (m × d),
/// through ‖a‖² + ‖b‖² − 2·a·b, calling `f(i, row_of_distances)` per row of `a`.
fn for_each_distance_row(a: &[f32], b: &[f32], d: usize, mut f: impl FnMut(usize, &[f32])) {
    let (n, m) = (a.len() / d, b.len() / d);
    let bm = DMatrix::<f32>::from_row_slice(m, d, b);
    let bn: Vec<f32> = b
        .chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect();
    let mut row = vec![0f32; m];
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        let am = DMatrix::<f32>::from_row_slice(rows, d, &a[start * d..(start + rows) * d]);
        let dots = &am * bm.transpose();
        for i in 0..rows {
            let an: f32 = a[(start + i) * d..(start + i + 1) * d]
                .iter()
                .map(|v| v * v)
                .sum();
            for (j, r) in row.iter_mut().enumerate() {
                *r = (an + bn[j] - 2.0 * dots[(i, j)]).max(0.0);
            }
            f(start + i, &row);
        }
    }
}

/// Squared distance from each row of `x` to its k-th nearest other row.
pub fn knn_radii(x: &[f32], d: usize, k: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut radii = vec![0f32; n];
    let mut buf = Vec::with_capacity(n);
    for_each_distance_row(x, x, d, |i, row| {
        buf.clear();
        buf.extend(
            row.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| *v),
        );
        let kk = (k - 1).min(buf.len().saturating_sub(1));
        buf.select_nth_unstable_by(kk, |a, b| a.total_cmp(b));
        radii[i] = buf[kk];
    });
    radii
}

/// Share of rows of `query` that fall inside some ball (centre a row of `manifold`, squared
/// radius `radii`).
fn coverage(query: &[f32], manifold: &[f32], radii: &[f32], d: usize) -> f64 {
    let mut inside = 0usize;
    for_each_distance_row(query, manifold, d, |_, row| {
        if row.iter().zip(radii).any(|(dist, r)| dist <= r) {
            inside += 1;
        }
    });
    inside as f64 / (query.len() / d).max(1) as f64
}

/// (precision, recall) of `generated` against `real`, both row-major with `d` features.
pub fn precision_recall(real: &[f32], generated: &[f32], d: usize, k: usize) -> (f64, f64) {
    let real_radii = knn_radii(real, d, k);
    let gen_radii = knn_radii(generated, d, k);
    (
        coverage(generated, real, &real_radii, d),
        coverage(real, generated, &gen_radii, d),
    )
}
