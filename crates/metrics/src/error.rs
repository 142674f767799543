//! The error type of the metrics crate.

/// Errors of the metrics. Every variant names the function (`op`) and the argument at
/// fault, and where it helps the index of the offending element, so a user can act on it.
/// No metric returns NaN for bad input: it returns one of these instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two inputs that must have the same length do not.
    #[error("{op}: `{arg}` has length {got}, expected {expected} (the length of `{other}`)")]
    LengthMismatch {
        /// The metric or function that failed.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// The argument whose length it must match.
        other: &'static str,
        /// The expected length.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// An input that must hold at least one element is empty.
    #[error("{op}: `{arg}` is empty")]
    Empty {
        /// The metric or function that failed.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
    },
    /// An element of an input is NaN or infinite.
    #[error("{op}: `{arg}`[{index}] = {value} is not finite")]
    NonFinite {
        /// The metric or function that failed.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// The index of the element.
        index: usize,
        /// The element's value.
        value: f64,
    },
    /// A scalar argument is out of its valid range.
    #[error("{op}: argument `{arg}` = {value} is invalid: {reason}")]
    InvalidArgument {
        /// The metric or function that failed.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// The value given.
        value: String,
        /// Why the value is invalid.
        reason: &'static str,
    },
    /// A normaliser needs a landmark index that the image does not have.
    #[error(
        "{op}: normaliser {normalizer} needs landmark index {index} (0-based) but the image has {num_landmarks} landmarks"
    )]
    LandmarkOutOfRange {
        /// The metric or function that failed.
        op: &'static str,
        /// The normaliser, as written by `Debug`.
        normalizer: String,
        /// The landmark index it needs (0-based).
        index: usize,
        /// The number of landmarks of the image.
        num_landmarks: usize,
    },
    /// A landmark the normaliser is built from is masked out (not visible / not labelled).
    #[error(
        "{op}: normaliser {normalizer} needs landmark index {index} (0-based), which is masked out"
    )]
    NormalizerPointMasked {
        /// The metric or function that failed.
        op: &'static str,
        /// The normaliser, as written by `Debug`.
        normalizer: String,
        /// The masked landmark's index (0-based).
        index: usize,
    },
    /// The normalising distance is zero (or not a positive finite number).
    #[error(
        "{op}: normaliser {normalizer} has length {value} pixels; it must be positive and finite"
    )]
    DegenerateNormalizer {
        /// The metric or function that failed.
        op: &'static str,
        /// The normaliser, as written by `Debug`.
        normalizer: String,
        /// The normalising distance found, in pixels.
        value: f64,
    },
    /// Every landmark of an image is masked out, so its mean error is undefined.
    #[error("{op}: no visible (unmasked) landmark in `{arg}`")]
    NoVisibleLandmarks {
        /// The metric or function that failed.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
    },
    /// Too few samples for the statistic (e.g. AMI of a landmark seen in one image).
    #[error("{op}: {what} has {got} samples, at least {needed} are needed")]
    TooFewSamples {
        /// The metric or function that failed.
        op: &'static str,
        /// What is counted.
        what: String,
        /// The samples there are.
        got: usize,
        /// The fewest samples the statistic needs.
        needed: usize,
    },
}

/// The result type of the metrics crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that every value of `values` is finite.
pub(crate) fn check_finite(op: &'static str, arg: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            op,
            arg,
            index,
            value: values[index],
        }),
    }
}

/// Checks that `values` is not empty.
pub(crate) fn check_nonempty<T>(op: &'static str, arg: &'static str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        Err(Error::Empty { op, arg })
    } else {
        Ok(())
    }
}

/// Checks that `got` equals `expected`.
pub(crate) fn check_len(
    op: &'static str,
    arg: &'static str,
    other: &'static str,
    expected: usize,
    got: usize,
) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            op,
            arg,
            other,
            expected,
            got,
        })
    }
}

/// Checks that a threshold is finite and positive.
pub(crate) fn check_positive(op: &'static str, arg: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            arg,
            value: value.to_string(),
            reason: "must be positive and finite",
        })
    }
}
