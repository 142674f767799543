//! The error type of the losses crate.

/// Errors of the loss functions. Every variant names the function and the argument at
/// fault (and, for shapes, what was expected and what was given), so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor has the wrong rank or dimensions.
    #[error("{func}: argument `{arg}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The loss function that rejected the argument.
        func: &'static str,
        /// The argument's name.
        arg: String,
        /// The expected shape, in words (e.g. `(B, K, 2) = (4, 5, 2)`).
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// A tensor has an unsupported element type.
    #[error("{func}: argument `{arg}` has dtype {got:?}, expected {expected}")]
    DType {
        /// The loss function that rejected the argument.
        func: &'static str,
        /// The argument's name.
        arg: String,
        /// The accepted element types, in words.
        expected: &'static str,
        /// The element type that was given.
        got: candle_core::DType,
    },
    /// A class label is not smaller than the number of classes of its head.
    #[error(
        "{func}: head `{head}`: label {label} of sample {sample} is out of range \
         (the head has {n_classes} classes, labels must be in 0..{n_classes})"
    )]
    LabelOutOfRange {
        /// The loss function that rejected the label.
        func: &'static str,
        /// The attribute head (e.g. `emotion`, `camera`).
        head: String,
        /// The index of the sample in the batch.
        sample: usize,
        /// The offending label.
        label: i64,
        /// The number of classes of the head (the logits' last dimension).
        n_classes: usize,
    },
    /// A configuration value or scalar argument is out of its valid range.
    #[error("{context}: `{field}` = {value} is invalid: {reason}")]
    InvalidArgument {
        /// Where the value was given (function or config type).
        context: &'static str,
        /// The field or argument name.
        field: &'static str,
        /// The offending value, printed.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A parameter store could not be read (e.g. a poisoned `VarMap` lock).
    #[error("{func}: cannot read the parameters: {reason}")]
    Parameters {
        /// The function that read the parameters.
        func: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An error from the ops crate (affine warps, point transforms).
    #[error(transparent)]
    Ops(#[from] landmark_ssl_ops::Error),
    /// An error from candle itself (including errors returned by a user's `locate` closure).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The result type of the losses crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(c) => c,
            other => candle_core::Error::wrap(other),
        }
    }
}
