//! The error type of the model zoo.

use std::path::PathBuf;

/// Errors of the model zoo. Every variant names what was wrong and where (the config field,
/// the tensor, the file), so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model configuration is invalid (zero channels, a kernel larger than the input, ...).
    #[error("invalid model config: `{field}`: {reason}")]
    Config {
        /// The offending field, as a path (e.g. `convs[2].channels`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A size in a model config is above its [`crate::ModelLimits`] bound (or a product of
    /// sizes overflows).
    #[error("{}model config `{field}`: {value} is above the limit of {limit} (ModelLimits::{setting}; raise it with `validate_within` or `load_checkpoint_within` if a model this large is intended)", path.as_ref().map(|p| format!("checkpoint {}: ", p.display())).unwrap_or_default())]
    LimitExceeded {
        /// The checkpoint whose config it is, when loading one.
        path: Option<PathBuf>,
        /// The offending field, as a path (e.g. `convs[2].channels`, `parameters`).
        field: String,
        /// The value (or the product of values) declared.
        value: String,
        /// The bound.
        limit: String,
        /// The [`crate::ModelLimits`] field that sets the bound.
        setting: &'static str,
    },
    /// No preset of that name.
    #[error("unknown model preset `{name}`; known presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A config file or string could not be parsed.
    #[error("cannot parse model config ({format}){}: {reason}", path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default())]
    Parse {
        /// `"json"` or `"toml"`.
        format: &'static str,
        /// The file, when parsing a file.
        path: Option<PathBuf>,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// An input tensor has the wrong shape or dtype.
    #[error("{op}: argument `{arg}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// What was expected, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// An invalid argument that is not a tensor.
    #[error("{op}: argument `{arg}` is invalid: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The argument.
        arg: &'static str,
        /// Why.
        reason: String,
    },
    /// A checkpoint file is malformed or lacks the model metadata.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint's tensors do not match the architecture they are loaded into.
    #[error("checkpoint {}: tensor `{tensor}`: {reason}", path.display())]
    TensorMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The first mismatching tensor (in name order).
        tensor: String,
        /// Missing, unexpected, or the two shapes.
        reason: String,
    },
    /// A checkpoint holds a non-finite weight (NaN, infinity, or an f64 beyond the f32
    /// range), or its model gives non-finite outputs.
    #[error("checkpoint {}: {what}: {reason}", path.display())]
    NonFinite {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor (``tensor `convs.0.weight` ``) or output (``output `landmarks` ``).
        what: String,
        /// The value and where it is.
        reason: String,
    },
    /// A model gave a non-finite output (NaN or infinity) for an input image.
    #[error("the model's output `{output}` is not finite for image {index} (0-based): its weights or beta overflow f32 on it, or the image holds non-finite values")]
    NonFiniteOutput {
        /// The image's index in the call.
        index: usize,
        /// `landmarks` or `attributes.<head>`.
        output: String,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error of the ops crate (soft-argmax, warps, convolution).
    #[error(transparent)]
    Ops(#[from] landmark_ssl_ops::Error),
    /// An error from candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The result type of the model zoo.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(c) => c,
            other => candle_core::Error::wrap(other),
        }
    }
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, naming `path` as the checkpoint it comes from where it can.
    pub(crate) fn in_checkpoint(self, path: &std::path::Path) -> Self {
        match self {
            Error::LimitExceeded {
                field,
                value,
                limit,
                setting,
                ..
            } => Error::LimitExceeded {
                path: Some(path.to_path_buf()),
                field,
                value,
                limit,
                setting,
            },
            Error::Config { field, reason } => Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("invalid `config` metadata: `{field}`: {reason}"),
            },
            other => other,
        }
    }
}
