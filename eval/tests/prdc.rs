//! Precision/recall (Kynkäänniemi et al. 2019) on hand-made point sets.

use eval::prdc::{knn_radii, precision_recall};

#[test]
fn knn_radii_on_a_line() {
    // Points 0, 1, 2, 4 in 1-D: nearest other points are at distances 1, 1, 1, 2;
    // squared radii 1, 1, 1, 4. With k = 2: 2, 1, 2, 3 → squared 4, 1, 4, 9.
    let x = [0.0f32, 1.0, 2.0, 4.0];
    assert_eq!(knn_radii(&x, 1, 1), vec![1.0, 1.0, 1.0, 4.0]);
    assert_eq!(knn_radii(&x, 1, 2), vec![4.0, 1.0, 4.0, 9.0]);
}

#[test]
fn precision_and_recall_by_hand() {
    // Real {0, 1, 2, 3} (k = 1 → every real ball has radius 1). Generated {0.5, 10}:
    // 0.5 lies in the ball of 0, 10 lies in none → precision 1/2.
    // Generated balls: each generated point's nearest other is 9.5 away, so both balls have
    // radius 9.5; every real point is within 9.5 of 0.5 → recall 1.
    let real = [0.0f32, 1.0, 2.0, 3.0];
    let generated = [0.5f32, 10.0];
    let (p, r) = precision_recall(&real, &generated, 1, 1);
    assert_eq!((p, r), (0.5, 1.0));
    // A collapsed generator (all samples at 0) has perfect precision and poor recall: its
    // balls have radius 0, covering only the real point at 0 → recall 1/4.
    let collapsed = [0.0f32, 0.0, 0.0];
    let (p, r) = precision_recall(&real, &collapsed, 1, 1);
    assert_eq!((p, r), (1.0, 0.25));
}
