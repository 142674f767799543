//! The largest inputs the data crate accepts, in one place.
//!
//! Every reader (`.pts`, MTFL, AFLW, generic CSV / JSON) and the image loader check what a
//! file declares against a [`Limits`] **before** allocating for it, and answer with
//! [`Error::Limit`] (naming the file, line, field, value and limit) when it is exceeded. The
//! defaults admit every public landmark data set with a wide margin while keeping one
//! decoded image, or one loaded data set, well under a gigabyte:
//!
//! | limit | default | what it bounds |
//! |---|---|---|
//! | [`max_image_width`](Limits::max_image_width) | 16 384 | image width in pixels |
//! | [`max_image_height`](Limits::max_image_height) | 16 384 | image height in pixels |
//! | [`max_image_pixels`](Limits::max_image_pixels) | 67 108 864 (64 Mi, 8192^2) | width x height |
//! | [`max_points`](Limits::max_points) | 10 000 | landmarks per sample |
//! | [`max_classes`](Limits::max_classes) | 65 536 | classes of one class attribute |
//! | [`max_samples`](Limits::max_samples) | 1 000 000 | entries of one data set |
//! | [`max_file_bytes`](Limits::max_file_bytes) | 268 435 456 (256 MiB) | one annotation, list or image file |
//!
//! A decoded image takes at most `max_image_pixels x channels` bytes once held (8-bit; 1
//! channel grey, 3 RGB; the decoder checks that size before allocating it); while it is
//! decoded, its native buffer (up to 8 bytes per pixel for 16-bit RGBA) exists as well.
//!
//! A user with a reason (panoramas, a very large list) raises a field:
//! ```
//! use landmark_ssl_data::{LoadOptions, Limits};
//! let opts = LoadOptions {
//!     limits: Limits { max_image_pixels: 300_000_000, max_image_width: 30_000, ..Limits::default() },
//!     ..LoadOptions::default()
//! };
//! assert!(opts.limits.max_image_pixels > Limits::default().max_image_pixels);
//! ```
//! Images whose size a reader approved with raised limits are decoded with those limits by
//! [`Sample::load_image`](crate::Sample::load_image).

use std::path::Path;

use crate::error::{Error, Result};

/// The largest inputs accepted (see the module docs for the defaults and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest image width in pixels.
    pub max_image_width: u64,
    /// Largest image height in pixels.
    pub max_image_height: u64,
    /// Largest image area (width x height) in pixels.
    pub max_image_pixels: u64,
    /// Most landmarks in one sample (a `.pts` file's `n_points`, a list entry's points).
    pub max_points: u64,
    /// Most classes of one class attribute (a declared count, or the largest label + 1).
    pub max_classes: u64,
    /// Most entries (files, lines, faces) in one data set.
    pub max_samples: u64,
    /// Largest file read: an annotation file, a list file or an image file.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_image_width: 16_384,
            max_image_height: 16_384,
            max_image_pixels: 1 << 26,
            max_points: 10_000,
            max_classes: 65_536,
            max_samples: 1_000_000,
            max_file_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// These limits, raised where needed so that an image of `size` (width, height) passes
    /// the image checks (used to decode an image a reader already approved).
    pub fn admitting(mut self, size: Option<(usize, usize)>) -> Self {
        if let Some((w, h)) = size {
            let (w, h) = (w as u64, h as u64);
            self.max_image_width = self.max_image_width.max(w);
            self.max_image_height = self.max_image_height.max(h);
            self.max_image_pixels = self.max_image_pixels.max(w.saturating_mul(h));
        }
        self
    }

    /// Checks an image's declared size (`image` names it in the error).
    pub fn check_image(&self, path: &Path, line: usize, width: u64, height: u64) -> Result<()> {
        let name = |what: &str| format!("{what} of image `{}`", path.display());
        if width == 0 || height == 0 {
            return Err(Error::CorruptImage {
                path: path.to_path_buf(),
                reason: format!("declares a size of {width}x{height}"),
            });
        }
        check(
            path,
            line,
            &name("width"),
            width,
            self.max_image_width,
            "max_image_width",
        )?;
        check(
            path,
            line,
            &name("height"),
            height,
            self.max_image_height,
            "max_image_height",
        )?;
        check(
            path,
            line,
            &name(&format!("pixels ({width}x{height})")),
            width.saturating_mul(height),
            self.max_image_pixels,
            "max_image_pixels",
        )
    }

    /// Checks a landmark count.
    pub fn check_points(&self, path: &Path, line: usize, what: &str, n: u64) -> Result<()> {
        check(path, line, what, n, self.max_points, "max_points")
    }

    /// Checks a class count (a declared count, or a label + 1).
    pub fn check_classes(&self, path: &Path, line: usize, what: &str, n: u64) -> Result<()> {
        check(path, line, what, n, self.max_classes, "max_classes")
    }

    /// Checks a data set's entry count.
    pub fn check_samples(&self, path: &Path, n: u64) -> Result<()> {
        check(
            path,
            0,
            "the number of entries",
            n,
            self.max_samples,
            "max_samples",
        )
    }

    /// Checks a file's size in bytes.
    pub fn check_file_bytes(&self, path: &Path, n: u64) -> Result<()> {
        check(
            path,
            0,
            "the file size in bytes",
            n,
            self.max_file_bytes,
            "max_file_bytes",
        )
    }
}

fn check(
    path: &Path,
    line: usize,
    what: &str,
    value: u64,
    limit: u64,
    setting: &'static str,
) -> Result<()> {
    if value > limit {
        Err(Error::Limit {
            path: path.to_path_buf(),
            line,
            what: what.to_string(),
            value,
            limit,
            setting,
        })
    } else {
        Ok(())
    }
}

/// Reads a text file of at most `limits.max_file_bytes` bytes (checked before reading, and
/// while reading for files whose size the metadata does not tell).
pub(crate) fn read_text(path: &Path, limits: &Limits) -> Result<String> {
    let bytes = read_bytes(path, limits)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::parse(
            path,
            0,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Reads a file of at most `limits.max_file_bytes` bytes.
pub(crate) fn read_bytes(path: &Path, limits: &Limits) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    limits.check_file_bytes(path, len)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    limits.check_file_bytes(path, bytes.len() as u64)?;
    Ok(bytes)
}
