//! Uniform discretisation and the attribute-selection score of supplementary S.5.2.

use approx::assert_relative_eq;
use landmark_ssl_metrics::{
    adjusted_mutual_info, attribute_landmark_ami, discretize_uniform, AttributeValues, Error,
    PAPER_LEVELS,
};
use proptest::prelude::*;

#[test]
fn discretize_by_hand() {
    // Range [2, 12], 5 levels of width 2: [2,4) [4,6) [6,8) [8,10) [10,12].
    let v = [2.0, 3.99, 4.0, 7.0, 9.999, 10.0, 12.0];
    assert_eq!(
        discretize_uniform(&v, 5).unwrap(),
        vec![0, 0, 1, 2, 3, 4, 4]
    );
    assert_eq!(discretize_uniform(&[5.0, 5.0], 20).unwrap(), vec![0, 0]);
    assert_eq!(discretize_uniform(&v, 1).unwrap(), vec![0; 7]);
    assert_eq!(discretize_uniform(&[-1.0, 1.0], 20).unwrap(), vec![0, 19]);
}

#[test]
fn discretize_bad_input() {
    assert!(matches!(
        discretize_uniform(&[], 20),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        discretize_uniform(&[1.0, f64::NAN], 20),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        discretize_uniform(&[1.0], 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(discretize_uniform(&[-f64::MAX, f64::MAX], 20).is_err());
}

proptest! {
    #[test]
    fn discretize_has_at_most_levels_and_keeps_order(
        v in proptest::collection::vec(-1e6f64..1e6, 1..200),
        levels in 1usize..30,
    ) {
        let d = discretize_uniform(&v, levels).unwrap();
        prop_assert!(d.iter().all(|&l| l < levels));
        for i in 0..v.len() {
            for j in 0..v.len() {
                if v[i] < v[j] {
                    prop_assert!(d[i] <= d[j]);
                }
            }
        }
    }
}

/// Two classes; landmark 0's x is class-determined, its y constant; landmark 1 is constant.
fn toy() -> (Vec<usize>, Vec<Vec<[f64; 2]>>) {
    let classes: Vec<usize> = (0..40).map(|i| i % 2).collect();
    let lms = classes
        .iter()
        .map(|&c| vec![[100.0 * c as f64, 7.0], [3.0, 4.0]])
        .collect();
    (classes, lms)
}

#[test]
fn score_by_hand() {
    let (classes, lms) = toy();
    let s = attribute_landmark_ami::<_, Vec<bool>>(
        AttributeValues::Classes(&classes),
        &lms,
        None,
        PAPER_LEVELS,
    )
    .unwrap();
    assert_eq!(s.per_landmark.len(), 2);
    assert_relative_eq!(s.per_landmark[0].x, 1.0, epsilon = 1e-12);
    assert_eq!(s.per_landmark[0].y, 0.0);
    assert_eq!(s.per_landmark[1].score(), 0.0);
    assert_relative_eq!(s.mean, 0.5, epsilon = 1e-12);
    assert_relative_eq!(s.max, 1.0, epsilon = 1e-12);
    assert_eq!(s.per_landmark[0].samples, 40);
}

#[test]
fn score_matches_its_definition() {
    // Pseudo-random landmarks loosely tied to a 3-class attribute.
    let mut s: u64 = 11;
    let mut unif = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = 300;
    let classes: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let lms: Vec<Vec<[f64; 2]>> = classes
        .iter()
        .map(|&c| {
            (0..4)
                .map(|k| [c as f64 * k as f64 + 5.0 * unif(), 60.0 * unif()])
                .collect()
        })
        .collect();
    let got =
        attribute_landmark_ami::<_, Vec<bool>>(AttributeValues::Classes(&classes), &lms, None, 20)
            .unwrap();
    let mut scores = Vec::new();
    for k in 0..4 {
        let xs: Vec<f64> = lms.iter().map(|p| p[k][0]).collect();
        let ys: Vec<f64> = lms.iter().map(|p| p[k][1]).collect();
        let ax = adjusted_mutual_info(&classes, &discretize_uniform(&xs, 20).unwrap()).unwrap();
        let ay = adjusted_mutual_info(&classes, &discretize_uniform(&ys, 20).unwrap()).unwrap();
        assert_relative_eq!(got.per_landmark[k].x, ax, epsilon = 1e-14);
        assert_relative_eq!(got.per_landmark[k].y, ay, epsilon = 1e-14);
        scores.push(ax + ay);
    }
    assert_relative_eq!(got.mean, scores.iter().sum::<f64>() / 4.0, epsilon = 1e-14);
    // Landmark 3 carries the most class information, landmark 0 none in x.
    assert!(got.per_landmark[3].x > got.per_landmark[0].x + 0.1);
    assert_relative_eq!(got.max, scores.iter().copied().fold(f64::MIN, f64::max));
}

#[test]
fn real_attribute_and_masks() {
    let (_, lms) = toy();
    // A real attribute equal to landmark 0's x discretises identically: AMI(A; x) = 1.
    let real: Vec<f64> = lms.iter().map(|p| p[0][0]).collect();
    let s = attribute_landmark_ami::<_, Vec<bool>>(AttributeValues::Real(&real), &lms, None, 20)
        .unwrap();
    assert_relative_eq!(s.per_landmark[0].x, 1.0, epsilon = 1e-12);
    // Masked coordinates are ignored, even NaN.
    let mut lms2 = lms.clone();
    let mut masks = vec![vec![true, true]; lms.len()];
    lms2[0][1] = [f64::NAN, f64::NAN];
    masks[0][1] = false;
    let classes: Vec<usize> = (0..40).map(|i| i % 2).collect();
    let s = attribute_landmark_ami(AttributeValues::Classes(&classes), &lms2, Some(&masks), 20)
        .unwrap();
    assert_eq!(s.per_landmark[1].samples, 39);
    // ... but not when visible.
    let e =
        attribute_landmark_ami::<_, Vec<bool>>(AttributeValues::Classes(&classes), &lms2, None, 20);
    assert!(matches!(e, Err(Error::NonFinite { .. })));
    // A landmark visible in a single image has no AMI.
    for m in masks.iter_mut().skip(1) {
        m[1] = false;
    }
    masks[0][1] = true;
    lms2[0][1] = [1.0, 1.0];
    let e = attribute_landmark_ami(AttributeValues::Classes(&classes), &lms2, Some(&masks), 20);
    assert!(matches!(e, Err(Error::TooFewSamples { got: 1, .. })));
}

#[test]
fn selection_bad_input() {
    let (classes, lms) = toy();
    let none: Option<&[Vec<bool>]> = None;
    assert!(matches!(
        attribute_landmark_ami(AttributeValues::Classes(&classes[..3]), &lms, none, 20),
        Err(Error::LengthMismatch { .. })
    ));
    let empty: Vec<Vec<[f64; 2]>> = vec![];
    assert!(attribute_landmark_ami(AttributeValues::Classes(&[]), &empty, none, 20).is_err());
    assert!(attribute_landmark_ami(AttributeValues::Classes(&classes), &lms, none, 0).is_err());
    let mut ragged = lms.clone();
    ragged[3].pop();
    assert!(matches!(
        attribute_landmark_ami(AttributeValues::Classes(&classes), &ragged, none, 20),
        Err(Error::LengthMismatch { .. })
    ));
    let mut real = vec![0.5; 40];
    real[2] = f64::INFINITY;
    assert!(attribute_landmark_ami(AttributeValues::Real(&real), &lms, none, 20).is_err());
}
