//! Landmark localization metrics: normalised errors, failure rate, AUC/CED, accuracy,
//! head-pose error, and adjusted mutual information (AMI) for attribute selection.
//!
//! Re-exported by the facade as `landmark_ssl::metrics`. Pure Rust on plain slices: a
//! point is `[f64; 2]` = `[x, y]` in **pixels** (x the column, y the row, the workspace
//! convention of `docs/ARCHITECTURE.md`), an image's landmarks a `&[[f64; 2]]` of length
//! K, a visibility mask a `&[bool]` of length K (`true` = visible / labelled).
//!
//! # Units
//! - Normalised errors ([`normalized_mean_error`], [`ErrorAccumulator`]) are **fractions**
//!   of the normalising length (0.05 = 5 %); [`to_percent`] and
//!   [`ErrorSummary::to_percent`] convert to the percent the paper's tables use.
//!   [`Normalizer::Pixels`] gives plain pixels (the paper's Blocks tables).
//! - [`failure_rate`], [`auc`], [`accuracy`] are fractions in [0, 1]; thresholds are in the
//!   unit of the errors passed.
//! - [`mean_absolute_pose_error`] takes angles in the [`AngleUnit`] the caller names and
//!   always returns degrees.
//! - Entropy and mutual information are in nats; AMI is unit-free.
//!
//! # Indices
//! Landmark indices in code are **0-based**; the docs give the one-based numbers used by
//! the papers (e.g. the 68-point iBUG layout's points 37 and 46 are indices 36 and 45).
//!
//! # Errors
//! Bad input (length mismatch, empty input, NaN/infinite values, a zero normaliser) is an
//! [`Error`], never a panic or a NaN.

#![warn(missing_docs)]

mod ami;
mod attribute;
mod curve;
mod error;
mod nme;
mod selection;
mod stats;

pub use ami::{adjusted_mutual_info, entropy, expected_mutual_info, mutual_info};
pub use attribute::{accuracy, accuracy_masked, mean_absolute_pose_error, AngleUnit, PoseError};
pub use curve::{auc, ced_curve, failure_rate, trapezoid_auc, CurvePoint};
pub use error::{Error, Result};
pub use nme::{
    evaluate_images, landmark_errors, normalized_landmark_errors, normalized_mean_error,
    ErrorAccumulator, ErrorSummary, ErrorUnit, Normalizer, Point, DEFAULT_PERCENTILES,
};
pub use selection::{
    attribute_landmark_ami, discretize_uniform, AttributeScore, AttributeValues, LandmarkAmi,
    PAPER_LEVELS,
};
pub use stats::{from_percent, mean, median, percentile, percentiles, to_percent, to_percent_all};
