//! Normalised mean error: hand-computed fixtures for every normaliser, masks, the
//! accumulator's summary, and bad input.

use approx::assert_relative_eq;
use landmark_ssl_metrics::{
    evaluate_images, landmark_errors, normalized_landmark_errors, normalized_mean_error, Error,
    ErrorAccumulator, ErrorUnit, Normalizer,
};

/// A 68-point face: right eye (one-based 37-42, 0-based 36..42) centred at (100, 50), left
/// eye (43-48, 0-based 42..48) centred at (160, 50); outer corners 36 = (90, 50) and
/// 45 = (170, 50). Other points arbitrary.
fn face68() -> Vec<[f64; 2]> {
    let mut p: Vec<[f64; 2]> = (0..68).map(|k| [k as f64, 200.0 - k as f64]).collect();
    let eye = [
        [-10.0, 0.0],
        [-5.0, -5.0],
        [5.0, -5.0],
        [10.0, 0.0],
        [5.0, 5.0],
        [-5.0, 5.0],
    ];
    for (i, d) in eye.iter().enumerate() {
        p[36 + i] = [100.0 + d[0], 50.0 + d[1]];
        p[42 + i] = [160.0 + d[0], 50.0 + d[1]];
    }
    p
}

fn shifted(p: &[[f64; 2]], dx: f64, dy: f64) -> Vec<[f64; 2]> {
    p.iter().map(|q| [q[0] + dx, q[1] + dy]).collect()
}

#[test]
fn eye_centres_68() {
    let gt = face68();
    assert_relative_eq!(Normalizer::EyeCentres68.length(&gt, None).unwrap(), 60.0);
    // Every landmark off by (3, 4): 5 pixels; 5 / 60.
    let pred = shifted(&gt, 3.0, 4.0);
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::EyeCentres68).unwrap();
    assert_relative_eq!(e, 5.0 / 60.0, epsilon = 1e-12);
    // Moving one eye point moves the centre by 1/6 of it.
    let mut gt2 = gt.clone();
    gt2[47][0] += 6.0;
    assert_relative_eq!(Normalizer::EyeCentres68.length(&gt2, None).unwrap(), 61.0);
}

#[test]
fn outer_eye_corners_68() {
    let gt = face68();
    // One-based 37 = (90, 50), 46 = (170, 50).
    assert_relative_eq!(
        Normalizer::OuterEyeCorners68.length(&gt, None).unwrap(),
        80.0
    );
    let pred = shifted(&gt, 3.0, 4.0);
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::OuterEyeCorners68).unwrap();
    assert_relative_eq!(e, 5.0 / 80.0, epsilon = 1e-12);
    assert_eq!(
        Normalizer::OuterEyeCorners68.length(&gt, None).unwrap(),
        Normalizer::Points(36, 45).length(&gt, None).unwrap()
    );
}

#[test]
fn eye_centres_5_mtfl() {
    let gt = [
        [30.0, 40.0],
        [70.0, 40.0],
        [50.0, 60.0],
        [35.0, 80.0],
        [65.0, 80.0],
    ];
    assert_relative_eq!(Normalizer::EyeCentres5.length(&gt, None).unwrap(), 40.0);
    // Errors 0, 2, 0, 6, 0 pixels -> mean 1.6 px -> 0.04.
    let mut pred = gt;
    pred[1][0] += 2.0;
    pred[3][1] -= 6.0;
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::EyeCentres5).unwrap();
    assert_relative_eq!(e, 0.04, epsilon = 1e-12);
}

#[test]
fn wrist_width_hgr1() {
    let mut gt: Vec<[f64; 2]> = (0..25).map(|k| [k as f64 * 3.0, 20.0]).collect();
    gt[0] = [10.0, 100.0]; // one-based point 1
    gt[24] = [34.0, 107.0]; // one-based point 25: 24-7-25 triangle
    assert_relative_eq!(Normalizer::WristWidth.length(&gt, None).unwrap(), 25.0);
    let pred = shifted(&gt, 0.0, 2.5);
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::WristWidth).unwrap();
    assert_relative_eq!(e, 0.1, epsilon = 1e-12);
}

#[test]
fn face_size_and_box_diagonal() {
    let gt = [[10.0, 20.0], [26.0, 20.0], [18.0, 29.0]]; // bbox 16 x 9
    let fs = Normalizer::FaceSize {
        width: 30.0,
        height: 120.0,
    };
    assert_relative_eq!(fs.length(&gt, None).unwrap(), 60.0);
    assert_eq!(Normalizer::face_size_from_box(10.0, 20.0, 40.0, 140.0), fs);
    assert_relative_eq!(
        Normalizer::FaceSizeOfLandmarks.length(&gt, None).unwrap(),
        12.0
    );
    let bd = Normalizer::box_diagonal_from_box(0.0, 0.0, 30.0, 40.0);
    assert_relative_eq!(bd.length(&gt, None).unwrap(), 50.0);
    let gt2 = [[1.0, 1.0], [7.0, 9.0], [4.0, 2.0]]; // bbox 6 x 8
    assert_relative_eq!(
        Normalizer::BoxDiagonalOfLandmarks
            .length(&gt2, None)
            .unwrap(),
        10.0
    );
    // A masked landmark does not count in the bounding box.
    let mask = [true, true, false];
    let gt3 = [[1.0, 1.0], [7.0, 9.0], [1000.0, f64::NAN]];
    assert_relative_eq!(
        Normalizer::BoxDiagonalOfLandmarks
            .length(&gt3, Some(&mask))
            .unwrap(),
        10.0
    );
    let pred = shifted(&gt, 6.0, 8.0);
    assert_relative_eq!(
        normalized_mean_error(&pred, &gt, None, &fs).unwrap(),
        10.0 / 60.0,
        epsilon = 1e-12
    );
}

#[test]
fn pixels_and_custom_points() {
    let gt = [[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]];
    let pred = [[1.0, 0.0], [4.0, 3.0], [4.0, 3.0]];
    // Errors 1, 3, 0 pixels.
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::Pixels).unwrap();
    assert_relative_eq!(e, 4.0 / 3.0, epsilon = 1e-12);
    assert_eq!(Normalizer::Pixels.unit(), ErrorUnit::Pixels);
    assert_eq!(Normalizer::EyeCentres5.unit(), ErrorUnit::Fraction);
    // Points(0, 2): distance 5.
    let e = normalized_mean_error(&pred, &gt, None, &Normalizer::Points(0, 2)).unwrap();
    assert_relative_eq!(e, 4.0 / 15.0, epsilon = 1e-12);
}

#[test]
fn masks_skip_landmarks() {
    let gt = [[0.0, 0.0], [10.0, 0.0], [f64::NAN, 5.0]];
    let pred = [[1.0, 0.0], [10.0, 3.0], [500.0, f64::INFINITY]];
    let mask = [true, true, false];
    let errs = landmark_errors(&pred, &gt, Some(&mask)).unwrap();
    assert_eq!(errs, vec![Some(1.0), Some(3.0), None]);
    let n = normalized_landmark_errors(&pred, &gt, Some(&mask), &Normalizer::Points(0, 1)).unwrap();
    assert_eq!(n, vec![Some(0.1), Some(0.3), None]);
    let e = normalized_mean_error(&pred, &gt, Some(&mask), &Normalizer::Pixels).unwrap();
    assert_relative_eq!(e, 2.0);
}

#[test]
fn bad_input_is_an_error() {
    let gt = face68();
    let pred = gt.clone();
    let en = &Normalizer::EyeCentres68;
    // Length mismatch.
    assert!(matches!(
        normalized_mean_error(&pred[..67], &gt, None, en),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        normalized_mean_error(&pred, &gt, Some(&[true; 3]), en),
        Err(Error::LengthMismatch { .. })
    ));
    // Empty.
    assert!(matches!(
        normalized_mean_error(&[], &[], None, &Normalizer::Pixels),
        Err(Error::Empty { .. })
    ));
    // Too few landmarks for the layout.
    assert!(matches!(
        normalized_mean_error(&pred[..40], &gt[..40], None, en),
        Err(Error::LandmarkOutOfRange { index: 40, .. })
    ));
    // Zero normaliser: coincident eye centres.
    let mut flat = gt.clone();
    for k in 42..48 {
        flat[k] = flat[k - 6];
    }
    assert!(matches!(
        normalized_mean_error(&flat, &flat, None, en),
        Err(Error::DegenerateNormalizer { .. })
    ));
    assert!(matches!(
        Normalizer::FaceSize {
            width: 0.0,
            height: 3.0
        }
        .length(&gt, None),
        Err(Error::DegenerateNormalizer { .. })
    ));
    assert!(Normalizer::FaceSize {
        width: -4.0,
        height: -9.0
    }
    .length(&gt, None)
    .is_err());
    // NaN in a visible prediction or ground truth.
    let mut bad = pred.clone();
    bad[5][1] = f64::NAN;
    assert!(matches!(
        normalized_mean_error(&bad, &gt, None, en),
        Err(Error::NonFinite {
            arg: "pred",
            index: 11,
            ..
        })
    ));
    assert!(matches!(
        normalized_mean_error(&gt, &bad, None, en),
        Err(Error::NonFinite { arg: "gt", .. })
    ));
    // A masked normaliser point, and no visible landmark.
    let mut mask = vec![true; 68];
    mask[40] = false;
    assert!(matches!(
        normalized_mean_error(&pred, &gt, Some(&mask), en),
        Err(Error::NormalizerPointMasked { index: 40, .. })
    ));
    assert!(matches!(
        normalized_mean_error(&pred, &gt, Some(&[false; 68]), &Normalizer::Pixels),
        Err(Error::NoVisibleLandmarks { .. })
    ));
}

#[test]
fn accumulator_summary() {
    let gt = [[0.0, 0.0], [10.0, 0.0]];
    // d = 10 px (the eye normaliser would need the masked landmark 1).
    let norm = Normalizer::FaceSize {
        width: 10.0,
        height: 10.0,
    };
    let mut acc = ErrorAccumulator::new();
    // Images with errors (px): (1, 0), (0, 2), (3, 3) [landmark 1 masked in the last].
    acc.push(&[[1.0, 0.0], [10.0, 0.0]], &gt, None, &norm)
        .unwrap();
    acc.push(&[[0.0, 0.0], [10.0, 2.0]], &gt, None, &norm)
        .unwrap();
    acc.push(&[[3.0, 0.0], [13.0, 0.0]], &gt, Some(&[true, false]), &norm)
        .unwrap();
    assert_eq!(acc.len(), 3);
    let per_image = acc.per_image();
    assert_relative_eq!(per_image[0], 0.05);
    assert_relative_eq!(per_image[1], 0.1);
    assert_relative_eq!(per_image[2], 0.3);
    let s = acc.summary_with(&[50.0, 100.0]).unwrap();
    assert_eq!(s.unit, ErrorUnit::Fraction);
    assert_eq!(s.num_images, 3);
    assert_relative_eq!(s.mean, 0.15, epsilon = 1e-12);
    assert_relative_eq!(s.median, 0.1, epsilon = 1e-12);
    assert_relative_eq!(s.percentiles[1].1, 0.3, epsilon = 1e-12);
    // Population std of (0.05, 0.1, 0.3).
    let std = ((0.01f64 + 0.0025 + 0.0225) / 3.0).sqrt();
    assert_relative_eq!(s.std, std, epsilon = 1e-12);
    // Per landmark: landmark 0 errors 0.1, 0, 0.3 -> 0.4/3; landmark 1: 0, 0.2 -> 0.1.
    assert_relative_eq!(s.per_landmark_mean[0].unwrap(), 0.4 / 3.0, epsilon = 1e-12);
    assert_relative_eq!(s.per_landmark_mean[1].unwrap(), 0.1, epsilon = 1e-12);
    assert_eq!(s.per_landmark_count, vec![3, 2]);
    let p = s.to_percent().unwrap();
    assert_eq!(p.unit, ErrorUnit::Percent);
    assert_relative_eq!(p.mean, 15.0, epsilon = 1e-9);
    assert_relative_eq!(p.per_landmark_mean[1].unwrap(), 10.0, epsilon = 1e-9);
    assert!(p.to_percent().is_err());

    // Mixing units and changing K are errors, and leave the accumulator unchanged.
    assert!(acc.push(&gt, &gt, None, &Normalizer::Pixels).is_err());
    assert!(acc
        .push(&[[0.0; 2]; 3], &[[0.0; 2]; 3], None, &norm)
        .is_err());
    assert_eq!(acc.len(), 3);
    assert!(ErrorAccumulator::new().summary().is_err());
}

#[test]
fn evaluate_images_matches_per_image_calls() {
    let gts = vec![face68(), shifted(&face68(), 5.0, -2.0)];
    let preds = vec![shifted(&gts[0], 1.0, 0.0), shifted(&gts[1], 0.0, 6.0)];
    let acc = evaluate_images::<_, _, Vec<bool>>(&preds, &gts, None, &[Normalizer::EyeCentres68])
        .unwrap();
    assert_relative_eq!(acc.per_image()[0], 1.0 / 60.0, epsilon = 1e-12);
    assert_relative_eq!(acc.per_image()[1], 6.0 / 60.0, epsilon = 1e-12);
    let norms = [Normalizer::EyeCentres68, Normalizer::OuterEyeCorners68];
    let acc = evaluate_images::<_, _, Vec<bool>>(&preds, &gts, None, &norms).unwrap();
    assert_relative_eq!(acc.per_image()[1], 6.0 / 80.0, epsilon = 1e-12);
    assert!(evaluate_images::<_, _, Vec<bool>>(&preds, &gts, None, &[]).is_err());
    assert!(evaluate_images::<_, _, Vec<bool>>(&preds[..1], &gts, None, &norms).is_err());
}
