//! Failure rate and the cumulative error distribution (CED) curve with its area (AUC).
//!
//! Inputs are per-image errors (e.g. [`crate::ErrorAccumulator::per_image`]) and a
//! threshold **in the same unit** (both fractions, e.g. 0.08, or both percent, e.g. 8.0).

use serde::{Deserialize, Serialize};

use crate::error::{check_finite, check_nonempty, check_positive, Error, Result};

/// Failure rate: the **fraction** (in [0, 1]) of images whose error is strictly greater
/// than `threshold` (the 300W convention: an image fails when its NME > 0.08 or > 0.1).
///
/// Errors: empty `errors`, a non-finite error, a threshold not positive and finite.
///
/// ```
/// use landmark_ssl_metrics::failure_rate;
/// assert_eq!(failure_rate(&[0.05, 0.09, 0.12, 0.2], 0.1).unwrap(), 0.5);
/// ```
pub fn failure_rate(errors: &[f64], threshold: f64) -> Result<f64> {
    const OP: &str = "failure_rate";
    check_inputs(OP, errors, threshold)?;
    let failures = errors.iter().filter(|&&e| e > threshold).count();
    Ok(failures as f64 / errors.len() as f64)
}

/// Area under the CED curve from 0 to `threshold`, divided by `threshold` so it lies in
/// [0, 1] (the common 300W convention, e.g. AUC@0.08). The CED curve is
/// `F(t) = fraction of errors <= t`; the integral is computed **exactly** for this step
/// function: `AUC = mean_i max(0, threshold - e_i) / threshold`. (Implementations that
/// integrate `F` with the trapezoid rule on a grid converge to this value as the grid is
/// refined; see [`ced_curve`] and [`trapezoid_auc`].)
///
/// Errors: empty `errors`, a non-finite or negative error, a threshold not positive and
/// finite.
///
/// ```
/// use landmark_ssl_metrics::auc;
/// // all errors 0 -> 1; all above the threshold -> 0
/// assert_eq!(auc(&[0.0, 0.0], 0.1).unwrap(), 1.0);
/// assert_eq!(auc(&[0.3], 0.1).unwrap(), 0.0);
/// ```
pub fn auc(errors: &[f64], threshold: f64) -> Result<f64> {
    const OP: &str = "auc";
    check_inputs(OP, errors, threshold)?;
    check_nonnegative(OP, errors)?;
    let area: f64 = errors.iter().map(|&e| (threshold - e).max(0.0)).sum();
    Ok(area / errors.len() as f64 / threshold)
}

/// One point of a CED curve: the fraction (in [0, 1]) of images with error `<= error`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The error threshold (the caller's unit).
    pub error: f64,
    /// Fraction of images whose error is `<= error`.
    pub fraction: f64,
}

/// The CED curve on a uniform grid of `num_points` thresholds from 0 to `threshold`
/// inclusive (for plots). `num_points` >= 2.
///
/// Errors: as [`auc`], and `num_points < 2`.
pub fn ced_curve(errors: &[f64], threshold: f64, num_points: usize) -> Result<Vec<CurvePoint>> {
    const OP: &str = "ced_curve";
    check_inputs(OP, errors, threshold)?;
    check_nonnegative(OP, errors)?;
    if num_points < 2 {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "num_points",
            value: num_points.to_string(),
            reason: "a curve needs at least 2 points",
        });
    }
    let mut sorted = errors.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    Ok((0..num_points)
        .map(|i| {
            let t = threshold * i as f64 / (num_points - 1) as f64;
            let count = sorted.partition_point(|&e| e <= t);
            CurvePoint {
                error: t,
                fraction: count as f64 / n,
            }
        })
        .collect())
}

/// The trapezoid-rule area under a curve from [`ced_curve`], divided by the curve's last
/// threshold (so in [0, 1]); the grid approximation of [`auc`] many 300W scripts use.
///
/// Errors: fewer than 2 points, or a last threshold that is not positive.
pub fn trapezoid_auc(curve: &[CurvePoint]) -> Result<f64> {
    const OP: &str = "trapezoid_auc";
    if curve.len() < 2 {
        return Err(Error::TooFewSamples {
            op: OP,
            what: "curve".to_string(),
            got: curve.len(),
            needed: 2,
        });
    }
    let last = curve[curve.len() - 1].error;
    check_positive(OP, "curve.last().error", last)?;
    let area: f64 = curve
        .windows(2)
        .map(|w| (w[1].error - w[0].error) * (w[0].fraction + w[1].fraction) / 2.0)
        .sum();
    Ok(area / last)
}

fn check_inputs(op: &'static str, errors: &[f64], threshold: f64) -> Result<()> {
    check_nonempty(op, "errors", errors)?;
    check_finite(op, "errors", errors)?;
    check_positive(op, "threshold", threshold)
}

fn check_nonnegative(op: &'static str, errors: &[f64]) -> Result<()> {
    match errors.iter().position(|&e| e < 0.0) {
        None => Ok(()),
        Some(i) => Err(Error::InvalidArgument {
            op,
            arg: "errors",
            value: format!("errors[{i}] = {}", errors[i]),
            reason: "errors must be non-negative",
        }),
    }
}
