//! Readers of annotation formats. Every reader returns points in the original image's
//! pixels, 0-based, pixel centres at integers (the workspace convention), and reports every
//! bad sample: either the first one as the error, or, with [`LoadOptions::skip_bad`], all
//! of them in a [`LoadReport`] beside the samples that loaded.
//!
//! | format | reader | layout |
//! |---|---|---|
//! | 300W / iBUG `.pts` directories | [`pts::load_dir`] | 68 points (any count accepted) |
//! | MTFL `training.txt` / `testing.txt` | [`mtfl::load`] | 5 points, 4 class attributes |
//! | WFLW `list_98pt_rect_attr_*.txt` | [`wflw::load`] | 98 points, box, 6 class attributes |
//! | AFLW `aflw.sqlite` | [`aflw::load`] | 21 (or 19) points, box, pose |
//! | COCO keypoints JSON | [`coco::load`] | the category's keypoints (17 for person), box |
//! | generic CSV / JSON lists | [`generic::load_csv`], [`generic::load_json`] | any |
//!
//! Images are not decoded when loading; with [`LoadOptions::check_images`] their headers
//! are read and checked against [`LoadOptions::limits`] and for truncation
//! ([`image_file::check_file`](crate::image_file::check_file)), so missing, oversized
//! (decompression bombs) or cut images are reported now, and skipped with `skip_bad`, rather
//! than when a batch is prepared. Every reader also checks its files' sizes, point counts,
//! class counts and entry counts against [`LoadOptions::limits`].
//!
//! When every entry is bad and skipped, the error is [`Error::NothingLoaded`] with each
//! entry's own error.

pub mod aflw;
pub mod coco;
pub mod generic;
pub mod mtfl;
pub mod pts;
pub mod wflw;

use std::path::{Path, PathBuf};

pub use crate::error::Skipped;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Options common to the readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Skip bad samples (listing them in the report) instead of failing on the first.
    pub skip_bad: bool,
    /// Read each image's header (size, format) at load time, so missing or unreadable images
    /// are reported now rather than when a batch is prepared.
    pub check_images: bool,
    /// The largest sizes and counts accepted (see [`Limits`]).
    pub limits: Limits,
}

impl Default for LoadOptions {
    /// Fail on the first bad sample; check image headers; the default [`Limits`].
    fn default() -> Self {
        LoadOptions {
            skip_bad: false,
            check_images: true,
            limits: Limits::default(),
        }
    }
}

/// What a reader did besides returning samples.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Annotation entries read (loaded + skipped).
    pub entries: usize,
    /// Skipped samples, in reading order.
    pub skipped: Vec<Skipped>,
    /// Entries left out on purpose by a reader option or the format's rules (not errors),
    /// e.g. AFLW faces without landmarks under `require_landmarks`; COCO crowd annotations
    /// (`iscrowd` = 1), annotations of other categories and annotations without a labelled
    /// keypoint.
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

    /// The data set of the samples that loaded; when there are none but entries were
    /// skipped, [`Error::NothingLoaded`] with their errors (not a bare "empty data set").
    pub(crate) fn dataset(&mut self, samples: Vec<Sample>, meta: DatasetMeta) -> Result<Dataset> {
        if samples.is_empty() && !self.skipped.is_empty() {
            return Err(Error::NothingLoaded {
                what: meta.name,
                skipped: std::mem::take(&mut self.skipped),
            });
        }
        Dataset::new(samples, meta)
    }
}

/// Reads an image header and checks it against `limits` and for truncation:
/// `(width, height)` (see [`crate::image_file::check_file`]).
///
/// Errors: [`Error::MissingImage`] when the file does not exist, [`Error::Image`] when it
/// cannot be recognised, [`Error::Limit`] when it is too large, [`Error::CorruptImage`]
/// when it is truncated.
pub fn image_size(
    image: &Path,
    annotation: &Path,
    line: usize,
    limits: &Limits,
) -> Result<(usize, usize)> {
    crate::image_file::check_file(image, annotation, line, limits)
}

/// Reads a list file of one entry per non-blank line (MTFL, WFLW): `entry` turns a line's
/// text and 1-based number into a sample; a bad line fails the load or, with
/// `opts.skip_bad`, is reported and skipped. The file's size and entry count are checked
/// against `opts.limits`.
pub(crate) fn load_lines(
    list: &Path,
    opts: &LoadOptions,
    meta: DatasetMeta,
    mut entry: impl FnMut(&str, usize) -> Result<Sample>,
) -> Result<(Dataset, LoadReport)> {
    let text = crate::limits::read_text(list, &opts.limits)?;
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        report.entries += 1;
        opts.limits.check_samples(list, report.entries as u64)?;
        match entry(l, i + 1) {
            Ok(s) => samples.push(s),
            Err(e) => report.skip_or_fail(opts, list, e)?,
        }
    }
    let d = report.dataset(samples, meta)?;
    Ok((d, report))
}

/// A sample of the image file `image` named on `line` of `list`, with `points`; its size
/// is read from the header (and checked against the limits) when `opts.check_images`.
pub(crate) fn file_sample(
    image: PathBuf,
    points: Vec<[f32; 2]>,
    list: &Path,
    line: usize,
    opts: &LoadOptions,
) -> Result<Sample> {
    let size = if opts.check_images {
        Some(image_size(&image, list, line, &opts.limits)?)
    } else {
        None
    };
    let mut s = Sample::new(ImageSource::File(image), points);
    s.image_size = size;
    s.path = Some(list.to_path_buf());
    Ok(s)
}

/// Parses a float, naming file and line on failure.
pub(crate) fn parse_f64(tok: &str, path: &Path, line: usize, what: &str) -> Result<f64> {
    tok.trim()
        .parse::<f64>()
        .map_err(|_| Error::parse(path, line, format!("{what}: `{tok}` is not a number")))
}

/// Checks that a point is finite and fits 32-bit floats (a value such as 1e300 would become
/// infinite), and converts it.
pub(crate) fn check_point(
    x: f64,
    y: f64,
    path: &Path,
    line: usize,
    index: usize,
) -> Result<[f32; 2]> {
    if !(x.is_finite() && y.is_finite()) {
        return Err(Error::NonFinite {
            path: path.to_path_buf(),
            line,
            index,
            x,
            y,
        });
    }
    let p = [x as f32, y as f32];
    if !(p[0].is_finite() && p[1].is_finite()) {
        return Err(Error::parse(
            path,
            line,
            format!("landmark {index}: ({x:?}, {y:?}) is out of the range of 32-bit floats"),
        ));
    }
    Ok(p)
}

/// The most common of `counts` (on a tie, the one seen first); None when
/// empty. Used so that one bad file does not decide every file's landmark count.
pub(crate) fn most_common(counts: impl IntoIterator<Item = usize>) -> Option<usize> {
    let mut tally: Vec<(usize, usize)> = Vec::new();
    for c in counts {
        match tally.iter_mut().find(|(v, _)| *v == c) {
            Some((_, n)) => *n += 1,
            None => tally.push((c, 1)),
        }
    }
    let top = tally.iter().map(|&(_, n)| n).max()?;
    tally.iter().find(|&&(_, n)| n == top).map(|&(v, _)| v)
}

/// Resolves an image path from a list file: `\` becomes `/`, relative paths are taken from
/// the list file's directory.
pub(crate) fn resolve(list: &Path, image: &str) -> PathBuf {
    resolve_in(list.parent().unwrap_or(Path::new(".")), image)
}

/// Resolves an image path against a directory (an image root): `\` becomes `/`, relative
/// paths are taken from `dir`.
pub(crate) fn resolve_in(dir: &Path, image: &str) -> PathBuf {
    let p = PathBuf::from(image.trim().replace('\\', "/"));
    if p.is_absolute() {
        p
    } else {
        dir.join(p)
    }
}
