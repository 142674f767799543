//! Attribute metrics: classification accuracy and head-pose error.

use serde::{Deserialize, Serialize};

use crate::error::{check_finite, check_len, check_nonempty, Error, Result};

/// Classification accuracy: the **fraction** (in [0, 1]) of samples with
/// `predicted[i] == truth[i]` (multiply by 100 for percent).
///
/// Errors: length mismatch, empty input.
///
/// ```
/// use landmark_ssl_metrics::accuracy;
/// assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]).unwrap(), 0.75);
/// ```
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> Result<f64> {
    const OP: &str = "accuracy";
    check_nonempty(OP, "truth", truth)?;
    check_len(OP, "predicted", "truth", truth.len(), predicted.len())?;
    let hits = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / truth.len() as f64)
}

/// Classification accuracy over the samples where `mask[i]` is `true` (e.g. images that
/// carry the attribute label). Errors as [`accuracy`], and when no sample is selected.
pub fn accuracy_masked(predicted: &[usize], truth: &[usize], mask: &[bool]) -> Result<f64> {
    const OP: &str = "accuracy_masked";
    check_nonempty(OP, "truth", truth)?;
    check_len(OP, "predicted", "truth", truth.len(), predicted.len())?;
    check_len(OP, "mask", "truth", truth.len(), mask.len())?;
    let (mut hits, mut n) = (0usize, 0usize);
    for ((p, t), &m) in predicted.iter().zip(truth).zip(mask) {
        if m {
            n += 1;
            hits += usize::from(p == t);
        }
    }
    if n == 0 {
        return Err(Error::Empty {
            op: OP,
            arg: "mask (no sample selected)",
        });
    }
    Ok(hits as f64 / n as f64)
}

/// The unit of input angles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AngleUnit {
    /// Radians.
    Radians,
    /// Degrees.
    Degrees,
}

impl AngleUnit {
    fn to_degrees(self, v: f64) -> f64 {
        match self {
            AngleUnit::Radians => v.to_degrees(),
            AngleUnit::Degrees => v,
        }
    }
}

/// Mean absolute head-pose errors, **in degrees**.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseError {
    /// Mean absolute yaw error (degrees).
    pub yaw: f64,
    /// Mean absolute pitch error (degrees).
    pub pitch: f64,
    /// Mean absolute roll error (degrees).
    pub roll: f64,
    /// Mean of the three (degrees): the single number AFLW tables report.
    pub mean: f64,
}

/// Mean absolute head-pose error over yaw, pitch and roll. `predicted`, `truth`: one
/// `[yaw, pitch, roll]` per sample (N, 3), in `unit`; the result is **always in degrees**.
/// The difference is the plain `|pred - truth|` (no wrap-around at +-180 degrees: AFLW
/// poses lie well inside that range).
///
/// Errors: length mismatch, empty input, a non-finite angle.
///
/// ```
/// use landmark_ssl_metrics::{mean_absolute_pose_error, AngleUnit};
/// let p = [[10.0, 0.0, -5.0]];
/// let t = [[12.0, 3.0, -5.0]];
/// let e = mean_absolute_pose_error(&p, &t, AngleUnit::Degrees).unwrap();
/// assert_eq!((e.yaw, e.pitch, e.roll, e.mean), (2.0, 3.0, 0.0, 5.0 / 3.0));
/// ```
pub fn mean_absolute_pose_error(
    predicted: &[[f64; 3]],
    truth: &[[f64; 3]],
    unit: AngleUnit,
) -> Result<PoseError> {
    const OP: &str = "mean_absolute_pose_error";
    check_nonempty(OP, "truth", truth)?;
    check_len(OP, "predicted", "truth", truth.len(), predicted.len())?;
    check_finite(OP, "predicted", predicted.as_flattened())?;
    check_finite(OP, "truth", truth.as_flattened())?;
    let mut sum = [0.0; 3];
    for (p, t) in predicted.iter().zip(truth) {
        for c in 0..3 {
            sum[c] += (unit.to_degrees(p[c]) - unit.to_degrees(t[c])).abs();
        }
    }
    let n = truth.len() as f64;
    let [yaw, pitch, roll] = sum.map(|s| s / n);
    Ok(PoseError {
        yaw,
        pitch,
        roll,
        mean: (yaw + pitch + roll) / 3.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radians_are_converted() {
        let p = [[std::f64::consts::FRAC_PI_2, 0.0, 0.0]];
        let t = [[0.0, 0.0, std::f64::consts::PI]];
        let e = mean_absolute_pose_error(&p, &t, AngleUnit::Radians).unwrap();
        assert!((e.yaw - 90.0).abs() < 1e-12);
        assert!((e.roll - 180.0).abs() < 1e-12);
        assert!((e.mean - 90.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input() {
        assert!(accuracy(&[], &[]).is_err());
        assert!(matches!(
            accuracy(&[1], &[1, 2]),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(accuracy_masked(&[1, 2], &[1, 2], &[false, false]).is_err());
        assert_eq!(
            accuracy_masked(&[1, 2, 3], &[1, 0, 3], &[true, true, false]).unwrap(),
            0.5
        );
        let nan = [[f64::NAN, 0.0, 0.0]];
        assert!(matches!(
            mean_absolute_pose_error(&nan, &[[0.0; 3]], AngleUnit::Degrees),
            Err(Error::NonFinite { index: 0, .. })
        ));
        assert!(mean_absolute_pose_error(&[], &[], AngleUnit::Degrees).is_err());
    }
}
