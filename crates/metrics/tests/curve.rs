//! Failure rate, AUC and the CED curve on known distributions.

use approx::assert_relative_eq;
use landmark_ssl_metrics::{auc, ced_curve, failure_rate, trapezoid_auc, Error};

/// Errors uniform on [0, 0.2]: the midpoints of n equal cells.
fn uniform_errors(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.2 * (i as f64 + 0.5) / n as f64).collect()
}

#[test]
fn uniform_distribution() {
    let e = uniform_errors(10_000);
    assert_relative_eq!(failure_rate(&e, 0.1).unwrap(), 0.5);
    // AUC@0.1 = (1/0.1) * int_0^0.1 (t / 0.2) dt = 0.25.
    assert_relative_eq!(auc(&e, 0.1).unwrap(), 0.25, epsilon = 1e-9);
    // AUC@0.2 = 0.5; FR@0.2 = 0; FR@0.05 = 0.75.
    assert_relative_eq!(auc(&e, 0.2).unwrap(), 0.5, epsilon = 1e-9);
    assert_eq!(failure_rate(&e, 0.2).unwrap(), 0.0);
    assert_relative_eq!(failure_rate(&e, 0.05).unwrap(), 0.75);
    // Pseudo-random uniform errors (an LCG), not a grid.
    let mut s: u64 = 99;
    let r: Vec<f64> = (0..20_000)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            0.2 * (s >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    assert!((failure_rate(&r, 0.1).unwrap() - 0.5).abs() < 0.02);
    assert!((auc(&r, 0.1).unwrap() - 0.25).abs() < 0.01);
}

#[test]
fn point_masses() {
    // All errors equal c < T: AUC = 1 - c / T.
    assert_relative_eq!(auc(&[0.02; 5], 0.08).unwrap(), 0.75, epsilon = 1e-12);
    // Errors at the threshold do not fail (strict >) and add zero area.
    assert_eq!(failure_rate(&[0.08, 0.081], 0.08).unwrap(), 0.5);
    assert_relative_eq!(auc(&[0.08, 0.0], 0.08).unwrap(), 0.5);
}

#[test]
fn ced_curve_and_trapezoid() {
    let e = uniform_errors(1000);
    let curve = ced_curve(&e, 0.1, 1001).unwrap();
    assert_eq!(curve.len(), 1001);
    assert_eq!(curve[0].error, 0.0);
    assert_relative_eq!(curve[1000].error, 0.1);
    assert_eq!(curve[0].fraction, 0.0);
    // The last point is 1 - FR.
    assert_relative_eq!(
        curve[1000].fraction,
        1.0 - failure_rate(&e, 0.1).unwrap(),
        epsilon = 1e-12
    );
    assert!(curve.windows(2).all(|w| w[1].fraction >= w[0].fraction));
    // F(0.05) = 0.25.
    assert_relative_eq!(curve[500].fraction, 0.25, epsilon = 1e-12);
    let trap = trapezoid_auc(&curve).unwrap();
    assert!((trap - auc(&e, 0.1).unwrap()).abs() < 1e-3, "{trap}");
    assert!(trapezoid_auc(&curve[..1]).is_err());
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(failure_rate(&[], 0.1), Err(Error::Empty { .. })));
    assert!(matches!(auc(&[], 0.1), Err(Error::Empty { .. })));
    assert!(matches!(
        failure_rate(&[0.1, f64::NAN], 0.1),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(auc(&[0.1, f64::INFINITY], 0.1).is_err());
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            failure_rate(&[0.1], t),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(auc(&[0.1], t).is_err());
    }
    assert!(auc(&[-0.1], 0.1).is_err());
    assert!(ced_curve(&[0.1], 0.1, 1).is_err());
}
