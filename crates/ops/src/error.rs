//! The error type of the ops crate.

/// Errors of the tensor kernels. Every variant names the operation and the argument at
/// fault, so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor has the wrong rank or dimensions.
    #[error("{op}: argument `{arg}` has shape {got:?}, expected {expected}")]
    Shape {
        op: &'static str,
        arg: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    /// A tensor has an unsupported element type.
    #[error("{op}: argument `{arg}` has dtype {got:?}, expected {expected}")]
    DType {
        op: &'static str,
        arg: &'static str,
        expected: &'static str,
        got: candle_core::DType,
    },
    /// A scalar argument is out of its valid range (not finite, not positive, ...).
    #[error("{op}: argument `{arg}` = {value} is invalid: {reason}")]
    InvalidArgument {
        op: &'static str,
        arg: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A configuration the kernel does not support (e.g. a convolution dilation).
    #[error("{op}: unsupported: {what}")]
    Unsupported { op: &'static str, what: String },
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
