//! The error type of the ops crate.

/// Errors of the tensor kernels. Every variant names the operation and the argument at
/// fault, so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor has the wrong rank or dimensions.
    #[error("{op}: argument `{arg}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The operation, e.g. `"soft_argmax"`.
        op: &'static str,
        /// The argument at fault, e.g. `"maps"`.
        arg: &'static str,
        /// The shape the operation takes, e.g. `"rank 4 (B, K, H, W)"`.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A tensor has an unsupported element type.
    #[error("{op}: argument `{arg}` has dtype {got:?}, expected {expected}")]
    DType {
        /// The operation.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// The element types the operation takes, e.g. `"f32 or f64"`.
        expected: &'static str,
        /// The element type it was given.
        got: candle_core::DType,
    },
    /// A scalar argument is out of its valid range (not finite, not positive, ...).
    #[error("{op}: argument `{arg}` = {value} is invalid: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// Its value, as text.
        value: String,
        /// What the value must be, e.g. `"must be finite and > 0"`.
        reason: &'static str,
    },
    /// A configuration the kernel does not support (e.g. a convolution dilation).
    #[error("{op}: unsupported: {what}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// What it was asked to do that it does not.
        what: String,
    },
    /// An error from candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The result type of the ops crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(c) => c,
            other => candle_core::Error::wrap(other),
        }
    }
}
