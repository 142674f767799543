//! The error type of the training pipeline.

use std::path::PathBuf;

/// Errors of the training pipeline. Each names the file, field, term or step at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An experiment file could not be read or parsed.
    #[error("experiment file {path}: {message}")]
    Config {
        /// The experiment file.
        path: PathBuf,
        /// What is wrong, with the line or field where the parser gives one.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid experiment setting `{field}`: {reason}")]
    InvalidSetting {
        /// The setting at fault: a TOML path (`schedule.batch_size`), a section (`model`) or
        /// a model variable's name.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// A loss term became NaN or infinite; training stops, the last good checkpoint stays.
    #[error("loss term `{term}` is {value} at epoch {epoch}, step {step}; training stopped (the last good checkpoint is kept)")]
    NonFinite {
        /// The term (a cost term as [`crate::EpochRecord::train`] names them, or
        /// `gradient norm`).
        term: String,
        /// Its value.
        value: f64,
        /// The epoch, 1-based.
        epoch: usize,
        /// The step in the epoch, 1-based.
        step: usize,
    },
    /// A checkpoint is missing, damaged or does not fit the model.
    #[error("checkpoint: {what}")]
    Checkpoint {
        /// What is wrong, naming the file.
        what: String,
    },
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be written.
    #[error("{path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A JSON value could not be written or read.
    #[error("{path}: {source}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The serialiser's error, with line and column when reading.
        #[source]
        source: serde_json::Error,
    },
    /// An error of the data crate (reading, checking or preparing images and labels).
    #[error(transparent)]
    Data(#[from] landmark_ssl_data::Error),
    /// An error of the model zoo (configs, checkpoints, forward passes).
    #[error(transparent)]
    Model(#[from] landmark_ssl_models::Error),
    /// An error of the costs (L, A, ELT, weight decay).
    #[error(transparent)]
    Loss(#[from] landmark_ssl_losses::Error),
    /// An error of the metrics (errors, failure rate, AUC, accuracy).
    #[error(transparent)]
    Metric(#[from] landmark_ssl_metrics::Error),
    /// An error of the tensor operations.
    #[error(transparent)]
    Ops(#[from] landmark_ssl_ops::Error),
    /// A tensor error of candle.
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
