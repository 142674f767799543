//! AMI edge cases, bad input, and properties (proptest): symmetry, range, invariance.

use approx::assert_relative_eq;
use landmark_ssl_metrics::{adjusted_mutual_info, entropy, mutual_info, Error};
use proptest::prelude::*;

#[test]
fn identical_and_renamed_labelings_give_one() {
    let a: Vec<usize> = (0..300).map(|i| (i * 7) % 13).collect();
    assert_relative_eq!(adjusted_mutual_info(&a, &a).unwrap(), 1.0, epsilon = 1e-12);
    // Rename labels by a bijection (and to non-contiguous values).
    let b: Vec<usize> = a.iter().map(|&l| 1_000_000 + (12 - l) * 97).collect();
    assert_relative_eq!(adjusted_mutual_info(&a, &b).unwrap(), 1.0, epsilon = 1e-12);
}

#[test]
fn independent_labelings_are_near_zero() {
    // Exactly independent: the contingency table is uniform, MI = 0, and AMI is slightly
    // negative (-E[MI] / (H - E[MI])).
    let a: Vec<usize> = (0..1000).map(|i| i % 10).collect();
    let b: Vec<usize> = (0..1000).map(|i| (i / 10) % 10).collect();
    assert_eq!(mutual_info(&a, &b).unwrap(), 0.0);
    let ami = adjusted_mutual_info(&a, &b).unwrap();
    assert!(ami < 0.0 && ami > -0.05, "{ami}");
    // Pseudo-random independent labelings.
    let mut s: u64 = 5;
    let mut next = |k: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % k) as usize
    };
    let a: Vec<usize> = (0..10_000).map(|_| next(8)).collect();
    let b: Vec<usize> = (0..10_000).map(|_| next(5)).collect();
    let ami = adjusted_mutual_info(&a, &b).unwrap();
    assert!(ami.abs() < 0.005, "{ami}");
    // ... while the plain MI of the same labelings is clearly positive.
    assert!(mutual_info(&a, &b).unwrap() > 1e-4);
}

#[test]
fn single_clusters() {
    // Both a single cluster: 1.0 (sklearn's convention); exactly one: 0.0.
    assert_eq!(adjusted_mutual_info(&[3, 3, 3], &[1, 1, 1]).unwrap(), 1.0);
    assert_eq!(adjusted_mutual_info(&[3], &[4]).unwrap(), 1.0);
    assert_eq!(
        adjusted_mutual_info(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
        0.0
    );
    assert_eq!(
        adjusted_mutual_info(&[0, 1, 0, 1], &[2, 2, 2, 2]).unwrap(),
        0.0
    );
}

#[test]
fn all_singletons() {
    let a: Vec<usize> = (0..50).collect();
    let b: Vec<usize> = (0..50).rev().collect();
    // Identical partitions into singletons: 1.0 (MI = E[MI] = H; sklearn's eps clamping).
    assert_relative_eq!(adjusted_mutual_info(&a, &b).unwrap(), 1.0, epsilon = 1e-12);
    // Singletons against two halves: MI = E[MI], so AMI = 0.
    let c: Vec<usize> = (0..50).map(|i| i / 25).collect();
    assert!(adjusted_mutual_info(&a, &c).unwrap().abs() < 1e-9);
    // Large: 10^5 singletons against 100 classes (many clusters, few distinct sizes).
    let a: Vec<usize> = (0..100_000).collect();
    let c: Vec<usize> = (0..100_000).map(|i| i % 100).collect();
    assert!(adjusted_mutual_info(&a, &c).unwrap().abs() < 1e-9);
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(
        adjusted_mutual_info(&[], &[]),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        adjusted_mutual_info(&[0, 1], &[0, 1, 1]),
        Err(Error::LengthMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(mutual_info(&[], &[]).is_err());
    assert!(entropy(&[]).is_err());
}

#[test]
fn entropy_and_mi_by_hand() {
    // H(1/4, 3/4) = -(1/4 ln 1/4 + 3/4 ln 3/4).
    let h = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
    assert_relative_eq!(entropy(&[1, 0, 0, 0]).unwrap(), h, epsilon = 1e-14);
    // MI of identical labelings is their entropy.
    let a = [0, 1, 1, 2, 2, 2];
    assert_relative_eq!(
        mutual_info(&a, &a).unwrap(),
        entropy(&a).unwrap(),
        epsilon = 1e-14
    );
}

fn labelings() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1usize..120, 1usize..8, 1usize..8).prop_flat_map(|(n, ka, kb)| {
        (
            proptest::collection::vec(0..ka, n),
            proptest::collection::vec(0..kb, n),
        )
    })
}

proptest! {
    #[test]
    fn ami_is_symmetric_and_in_range((a, b) in labelings()) {
        let ab = adjusted_mutual_info(&a, &b).unwrap();
        let ba = adjusted_mutual_info(&b, &a).unwrap();
        prop_assert!(ab.is_finite());
        prop_assert!((ab - ba).abs() < 1e-12, "{} vs {}", ab, ba);
        prop_assert!((-1.0..=1.0 + 1e-12).contains(&ab), "{}", ab);
        let aa = adjusted_mutual_info(&a, &a).unwrap();
        prop_assert!((aa - 1.0).abs() < 1e-12, "AMI(a, a) = {}", aa);
    }

    #[test]
    fn ami_is_invariant_to_label_permutation(
        (a, b) in labelings(),
        shift in 0usize..8,
        scale in 1usize..50,
    ) {
        // A bijection of a's labels (rotation then spread to non-contiguous values).
        let renamed: Vec<usize> = a.iter().map(|&l| ((l + shift) % 8) * scale * 1000 + 7).collect();
        let x = adjusted_mutual_info(&a, &b).unwrap();
        let y = adjusted_mutual_info(&renamed, &b).unwrap();
        prop_assert!((x - y).abs() < 1e-12, "{} vs {}", x, y);
    }

    #[test]
    fn ami_is_invariant_to_sample_order((a, b) in labelings(), rot in 0usize..200) {
        let n = a.len();
        let r = rot % n;
        let a2: Vec<usize> = (0..n).map(|i| a[(i + r) % n]).rev().collect();
        let b2: Vec<usize> = (0..n).map(|i| b[(i + r) % n]).rev().collect();
        let x = adjusted_mutual_info(&a, &b).unwrap();
        let y = adjusted_mutual_info(&a2, &b2).unwrap();
        prop_assert!((x - y).abs() < 1e-12, "{} vs {}", x, y);
    }
}
