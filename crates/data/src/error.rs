//! The crate's error type: every variant names the file, line, sample or argument at fault.

use std::path::PathBuf;

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be opened or decoded.
    #[error("cannot read image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// No image file was found for an annotation.
    #[error("{annotation}:{line}: no image found (tried {tried:?})")]
    MissingImage {
        /// The annotation file (or list file) naming the image.
        annotation: PathBuf,
        /// 1-based line of the entry in a list file (0 for one-file-per-image formats).
        line: usize,
        /// The image paths that were tried.
        tried: Vec<PathBuf>,
    },
    /// A line of an annotation file could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line number (0 when the error concerns the whole file).
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// An annotation has the wrong number of points.
    #[error("{path}:{line}: expected {expected} points, found {found}")]
    PointCount {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Points announced by the header or required by the format.
        expected: usize,
        /// Points found.
        found: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("{path}:{line}: landmark {index} has a non-finite coordinate ({x}, {y})")]
    NonFinite {
        /// The annotation file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 0-based landmark index.
        index: usize,
        /// The x coordinate read.
        x: f64,
        /// The y coordinate read.
        y: f64,
    },
    /// Samples of one data set have different landmark counts.
    #[error("sample {index} ({path}) has {found} landmarks, the data set has {expected}")]
    LandmarkCountMismatch {
        /// Index of the offending sample.
        index: usize,
        /// Its annotation or image path (empty when generated).
        path: PathBuf,
        /// The data set's landmark count.
        expected: usize,
        /// The sample's landmark count.
        found: usize,
    },
    /// A data set (or a split, or a batch) has no samples.
    #[error("empty data set: {what}")]
    EmptyDataset {
        /// Which data set or directory.
        what: String,
    },
    /// An SQLite error while reading an AFLW database (with the `aflw` feature).
    #[cfg(feature = "aflw")]
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The data need a reader this build leaves out: the crate was compiled without the
    /// cargo feature that brings it in.
    #[error(
        "cannot read {path}: {what} needs the `{feature}` feature of landmark-ssl-data \
         (build with `--features {feature}`; landmark-ssl-train and landmark-ssl forward it)"
    )]
    FeatureDisabled {
        /// The cargo feature to turn on (`aflw`).
        feature: &'static str,
        /// What needs it.
        what: &'static str,
        /// The file that was asked for.
        path: PathBuf,
    },
    /// A JSON error.
    #[error("JSON error in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An invalid argument or configuration value.
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// A sample's labels or image are inconsistent (e.g. a zero-sized image, mismatched
    /// attribute dimensions).
    #[error("sample {index}: {message}")]
    BadSample {
        /// Index of the sample in its data set (or batch).
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A file declares more than the data crate accepts (see [`Limits`](crate::Limits)).
    #[error(
        "{path}:{line}: {what} is {value}, above the limit of {limit} (`Limits::{setting}`; \
         raise it where the data really needs it)"
    )]
    Limit {
        /// The file (annotation, list or image).
        path: PathBuf,
        /// 1-based line number (0 when the limit concerns the whole file).
        line: usize,
        /// What was counted or measured.
        what: String,
        /// The value the file declares.
        value: u64,
        /// The limit.
        limit: u64,
        /// The [`Limits`](crate::Limits) field that sets the limit.
        setting: &'static str,
    },
    /// An image file is truncated or structurally broken (detected before decoding, so a
    /// partial image is never used as if it were whole).
    #[error("image {path} is truncated or corrupt: {reason}")]
    CorruptImage {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Every entry of a data set was bad (and skipped): the entries' own errors.
    #[error("{}", nothing_loaded(what, skipped))]
    NothingLoaded {
        /// The data set (directory or list file).
        what: String,
        /// Each bad entry and its error, in reading order.
        skipped: Vec<Skipped>,
    },
    /// The background batch producer stopped unexpectedly.
    #[error("batch producer failed: {0}")]
    Producer(String),
    /// A candle error while building tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The message of [`Error::NothingLoaded`]: the first errors, one a line.
fn nothing_loaded(what: &str, skipped: &[Skipped]) -> String {
    const SHOWN: usize = 20;
    let mut m = format!(
        "no sample of {what} could be loaded: all {} entries are bad:",
        skipped.len()
    );
    for s in skipped.iter().take(SHOWN) {
        m.push_str(&format!("\n  {}", s.error));
    }
    if skipped.len() > SHOWN {
        m.push_str(&format!("\n  ... and {} more", skipped.len() - SHOWN));
    }
    m
}

/// A sample that was skipped, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The annotation file (or list file).
    pub path: PathBuf,
    /// The error (names the file and line).
    pub error: Error,
}

/// Result alias of the data crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::InvalidArgument`].
    pub(crate) fn arg(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            message: message.into(),
        }
    }
    /// An [`Error::Parse`].
    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
