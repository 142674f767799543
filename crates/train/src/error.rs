//! The error type of the training pipeline.

use std::path::PathBuf;

/// Errors of the training pipeline. Each names the file, field, term or step at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An experiment file could not be read or parsed.
    #[error("experiment file {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A configuration value is out of range.
    #[error("invalid experiment setting `{field}`: {reason}")]
    InvalidSetting { field: String, reason: String },
    /// A loss term became NaN or infinite; training stops, the last good checkpoint stays.
    #[error("loss term `{term}` is {value} at epoch {epoch}, step {step}; training stopped (the last good checkpoint is kept)")]
    NonFinite {
        term: String,
        value: f64,
        epoch: usize,
        step: usize,
    },
    /// A checkpoint is missing, damaged or does not fit the model.
    #[error("checkpoint: {what}")]
    Checkpoint { what: String },
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image could not be written.
    #[error("{path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// A JSON value could not be written or read.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Data(#[from] landmark_ssl_data::Error),
    #[error(transparent)]
    Model(#[from] landmark_ssl_models::Error),
    #[error(transparent)]
    Loss(#[from] landmark_ssl_losses::Error),
    #[error(transparent)]
    Metric(#[from] landmark_ssl_metrics::Error),
    #[error(transparent)]
    Ops(#[from] landmark_ssl_ops::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The result type of the training pipeline.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
