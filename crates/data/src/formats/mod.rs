//! Readers of annotation formats. Every reader returns points in the original image's
//! pixels, 0-based, pixel centres at integers (the workspace convention), and reports every
//! bad sample: either the first one as the error, or, with [`LoadOptions::skip_bad`], all
//! of them in a [`LoadReport`] beside the samples that loaded.
//!
//! | format | reader | layout |
//! |---|---|---|
//! | 300W / iBUG `.pts` directories | [`pts::load_dir`] | 68 points (any count accepted) |
//! | MTFL `training.txt` / `testing.txt` | [`mtfl::load`] | 5 points, 4 class attributes |
//! | AFLW `aflw.sqlite` | [`aflw::load`] | 21 (or 19) points, box, pose |
//! | generic CSV / JSON lists | [`generic::load_csv`], [`generic::load_json`] | any |
//!
//! Images are not decoded when loading; with [`LoadOptions::check_images`] only their
//! headers are read (to detect missing or unreadable files early and record sizes).

pub mod aflw;
pub mod generic;
pub mod mtfl;
pub mod pts;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Options common to the readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip bad samples (listing them in the report) instead of failing on the first.
    pub skip_bad: bool,
    /// Read each image's header (size, format) at load time, so missing or unreadable images
    /// are reported now rather than when a batch is prepared.
    pub check_images: bool,
}

impl Default for LoadOptions {
    /// Fail on the first bad sample; check image headers.
    fn default() -> Self {
        LoadOptions {
            skip_bad: false,
            check_images: true,
        }
    }
}

/// A sample that was skipped, and why.
#[derive(Debug)]
pub struct Skipped {
    /// The annotation file (or list file).
    pub path: PathBuf,
    /// The error (names the file and line).
    pub error: Error,
}

/// What a reader did besides returning samples.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Annotation entries read (loaded + skipped).
    pub entries: usize,
    /// Skipped samples, in reading order.
    pub skipped: Vec<Skipped>,
    /// Entries left out on purpose by a reader option (not errors), e.g. AFLW faces without
    /// landmarks under `require_landmarks`.
    pub filtered: usize,
}

impl LoadReport {
    /// Records `error` for `path` when skipping, or returns it.
    pub(crate) fn skip_or_fail(
        &mut self,
        opts: &LoadOptions,
        path: &Path,
        error: Error,
    ) -> Result<()> {
        if opts.skip_bad {
            self.skipped.push(Skipped {
                path: path.to_path_buf(),
                error,
            });
            Ok(())
        } else {
            Err(error)
        }
    }
}

/// Reads an image header: `(width, height)`.
///
/// Errors: [`Error::MissingImage`] when the file does not exist, [`Error::Image`] when it
/// cannot be recognised.
pub fn image_size(image: &Path, annotation: &Path, line: usize) -> Result<(usize, usize)> {
    if !image.is_file() {
        return Err(Error::MissingImage {
            annotation: annotation.to_path_buf(),
            line,
            tried: vec![image.to_path_buf()],
        });
    }
    let reader = image::ImageReader::open(image)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| Error::Io {
            path: image.to_path_buf(),
            source,
        })?;
    let (w, h) = reader.into_dimensions().map_err(|source| Error::Image {
        path: image.to_path_buf(),
        source,
    })?;
    Ok((w as usize, h as usize))
}

/// Parses a float, naming file and line on failure.
pub(crate) fn parse_f64(tok: &str, path: &Path, line: usize, what: &str) -> Result<f64> {
    tok.trim()
        .parse::<f64>()
        .map_err(|_| Error::parse(path, line, format!("{what}: `{tok}` is not a number")))
}

/// Checks that a point is finite.
pub(crate) fn check_finite(x: f64, y: f64, path: &Path, line: usize, index: usize) -> Result<()> {
    if x.is_finite() && y.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            path: path.to_path_buf(),
            line,
            index,
            x,
            y,
        })
    }
}

/// Resolves an image path from a list file: `\` becomes `/`, relative paths are taken from
/// the list file's directory.
pub(crate) fn resolve(list: &Path, image: &str) -> PathBuf {
    let p = PathBuf::from(image.trim().replace('\\', "/"));
    if p.is_absolute() {
        p
    } else {
        list.parent().unwrap_or(Path::new(".")).join(p)
    }
}
