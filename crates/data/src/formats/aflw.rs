//! AFLW's `aflw.sqlite` database (Koestinger et al. 2011).
//!
//! Tables read: `Faces (face_id, file_id)`, `FaceImages (file_id, filepath, width,
//! height)`, `FeatureCoords (face_id, feature_id 1..21, x, y)`, `FaceRect (face_id, x, y,
//! w, h)` and `FacePose (face_id, roll, pitch, yaw)` (radians). One sample per face:
//! * 21 landmarks, feature id `i` at index `i - 1`
//!   ([`Layout::Aflw21`](crate::Layout::Aflw21)); features not annotated are marked not
//!   visible (their point is (0, 0)). With `points19` the two ears (ids 13 and 17) are
//!   dropped ([`Layout::Aflw19`](crate::Layout::Aflw19), the 19-point protocol).
//!   Coordinates are returned **as stored** (read as 0-based pixel coordinates).
//! * `bbox` from `FaceRect`: `[x, y, x + w, y + h]` (first rectangle of the face).
//! * real attribute `"pose"` = `[yaw, pitch, roll]` in radians (faces without a pose have
//!   none).
//! * the image at `image_root / filepath` (default root: the database's directory joined
//!   with `flickr` when that folder exists, else the database's directory).
//!
//! Reading the database needs SQLite, which the crate compiles only with its `aflw` feature
//! (`landmark-ssl-data/aflw`, forwarded as `aflw` by `landmark-ssl-train` and
//! `landmark-ssl`); without it [`load`] answers
//! [`Error::FeatureDisabled`](crate::Error::FeatureDisabled).

#[cfg(feature = "aflw")]
mod database;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::formats::{LoadOptions, LoadReport};
use crate::sample::Dataset;

/// Options of the AFLW reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AflwOptions {
    /// Folder the `filepath`s are relative to (default: see the module docs).
    pub image_root: Option<PathBuf>,
    /// Keep the 19-point protocol's points instead of all 21.
    pub points19: bool,
    /// Skip faces whose landmarks are all missing.
    pub require_landmarks: bool,
}

/// Loads the faces of an AFLW database (see the module docs).
///
/// Errors: the crate was built without the `aflw` feature
/// ([`Error::FeatureDisabled`](crate::Error::FeatureDisabled)); the database is missing
/// ([`Error::Io`](crate::Error::Io)) or cannot be opened or queried (`Error::Sqlite`); per
/// face (or skipped with `opts.skip_bad`): a non-finite coordinate, a feature id outside
/// 1..=21, a missing, unreadable, oversized or truncated image; more faces than
/// `opts.limits.max_samples`; no faces
/// ([`Error::NothingLoaded`](crate::Error::NothingLoaded) when every face was bad).
pub fn load(db: &Path, opts: &LoadOptions, aopts: &AflwOptions) -> Result<(Dataset, LoadReport)> {
    #[cfg(feature = "aflw")]
    {
        database::read(db, opts, aopts)
    }
    #[cfg(not(feature = "aflw"))]
    {
        let _ = (opts, aopts);
        Err(crate::Error::FeatureDisabled {
            feature: "aflw",
            what: "reading AFLW databases (SQLite)",
            path: db.to_path_buf(),
        })
    }
}
