//! AFLW's `aflw.sqlite` database (Koestinger et al. 2011).
//!
//! Tables read: `Faces (face_id, file_id)`, `FaceImages (file_id, filepath, width,
//! height)`, `FeatureCoords (face_id, feature_id 1..21, x, y)`, `FaceRect (face_id, x, y,
//! w, h)` and `FacePose (face_id, roll, pitch, yaw)` (radians). One sample per face:
//! * 21 landmarks, feature id `i` at index `i - 1` ([`Layout::Aflw21`]); features not
//!   annotated are marked not visible (their point is (0, 0)). With `points19` the two ears
//!   (ids 13 and 17) are dropped ([`Layout::Aflw19`], the 19-point protocol).
//!   Coordinates are returned **as stored** (read as 0-based pixel coordinates).
//! * `bbox` from `FaceRect`: `[x, y, x + w, y + h]` (first rectangle of the face).
//! * real attribute `"pose"` = `[yaw, pitch, roll]` in radians (faces without a pose have
//!   none).
//! * the image at `image_root / filepath` (default root: the database's directory joined
//!   with `flickr` when that folder exists, else the database's directory).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::formats::{check_point, image_size, LoadOptions, LoadReport};
use crate::layout::{Layout, AFLW19_FROM_21};
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

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
/// Errors: the database cannot be opened or queried ([`Error::Sqlite`]); per face (or
/// skipped with `opts.skip_bad`): a non-finite coordinate, a feature id outside 1..=21, a
/// missing, unreadable, oversized or truncated image; more faces than
/// `opts.limits.max_samples`; no faces ([`Error::NothingLoaded`] when every face was bad).
pub fn load(db: &Path, opts: &LoadOptions, aopts: &AflwOptions) -> Result<(Dataset, LoadReport)> {
    let sql = |source| Error::Sqlite {
        path: db.to_path_buf(),
        source,
    };
    if !db.is_file() {
        return Err(Error::Io {
            path: db.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such database"),
        });
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql)?;
    let root = aopts.image_root.clone().unwrap_or_else(|| {
        let dir = db.parent().unwrap_or(Path::new(".")).to_path_buf();
        let flickr = dir.join("flickr");
        if flickr.is_dir() {
            flickr
        } else {
            dir
        }
    });
    // Landmarks of all faces.
    let mut coords: HashMap<i64, Vec<(i64, f64, f64)>> = HashMap::new();
    {
        let mut st = conn
            .prepare("SELECT face_id, feature_id, x, y FROM FeatureCoords")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (f, id, x, y) = row.map_err(sql)?;
            coords.entry(f).or_default().push((id, x, y));
        }
    }
    let mut rects: HashMap<i64, [f64; 4]> = HashMap::new();
    {
        let mut st = conn
            .prepare("SELECT face_id, x, y, w, h FROM FaceRect ORDER BY rowid")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    [
                        r.get::<_, f64>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, f64>(3)?,
                        r.get::<_, f64>(4)?,
                    ],
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (f, b) = row.map_err(sql)?;
            rects.entry(f).or_insert(b);
        }
    }
    let mut poses: HashMap<i64, [f64; 3]> = HashMap::new();
    {
        let mut st = conn
            .prepare("SELECT face_id, roll, pitch, yaw FROM FacePose ORDER BY rowid")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    [
                        r.get::<_, f64>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, f64>(3)?,
                    ],
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (f, p) = row.map_err(sql)?;
            poses.entry(f).or_insert(p);
        }
    }
    let mut st = conn
        .prepare(
            "SELECT Faces.face_id, FaceImages.filepath FROM Faces \
             JOIN FaceImages ON Faces.file_id = FaceImages.file_id ORDER BY Faces.face_id",
        )
        .map_err(sql)?;
    let faces: Vec<(i64, Option<String>)> = st
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(sql)?
        .collect::<std::result::Result<_, _>>()
        .map_err(sql)?;
    opts.limits.check_samples(db, faces.len() as u64)?;
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    let mut sizes: HashMap<PathBuf, (usize, usize)> = HashMap::new();
    let what = |face: i64| PathBuf::from(format!("{}#face_id={face}", db.display()));
    for (face, filepath) in faces {
        report.entries += 1;
        let r = (|| -> Result<Option<Sample>> {
            let mut pts = vec![[0f32; 2]; 21];
            let mut vis = vec![false; 21];
            for &(id, x, y) in coords.get(&face).map(Vec::as_slice).unwrap_or(&[]) {
                if !(1..=21).contains(&id) {
                    return Err(Error::parse(
                        what(face),
                        0,
                        format!("feature_id {id} is not in 1..=21"),
                    ));
                }
                pts[(id - 1) as usize] = check_point(x, y, &what(face), 0, (id - 1) as usize)?;
                vis[(id - 1) as usize] = true;
            }
            if aopts.require_landmarks && !vis.iter().any(|&v| v) {
                return Ok(None);
            }
            if aopts.points19 {
                pts = AFLW19_FROM_21.iter().map(|&i| pts[i]).collect();
                vis = AFLW19_FROM_21.iter().map(|&i| vis[i]).collect();
            }
            let filepath = filepath
                .as_deref()
                .ok_or_else(|| Error::parse(what(face), 0, "FaceImages.filepath is NULL"))?;
            let img = root.join(filepath.replace('\\', "/"));
            let size = if opts.check_images {
                match sizes.get(&img) {
                    Some(&s) => Some(s),
                    None => {
                        let s = image_size(&img, &what(face), 0, &opts.limits)?;
                        sizes.insert(img.clone(), s);
                        Some(s)
                    }
                }
            } else {
                None
            };
            let mut s = Sample::new(ImageSource::File(img), pts);
            s.visible = vis;
            s.image_size = size;
            s.path = Some(what(face));
            if let Some(b) = rects.get(&face) {
                if b.iter().all(|v| v.is_finite()) && b[2] > 0.0 && b[3] > 0.0 {
                    s.bbox = Some([
                        b[0] as f32,
                        b[1] as f32,
                        (b[0] + b[2]) as f32,
                        (b[1] + b[3]) as f32,
                    ]);
                }
            }
            if let Some(p) = poses.get(&face) {
                if p.iter().all(|v| v.is_finite()) {
                    s.reals
                        .insert("pose".into(), vec![p[2] as f32, p[1] as f32, p[0] as f32]);
                }
            }
            Ok(Some(s))
        })();
        match r {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => report.filtered += 1,
            Err(e) => report.skip_or_fail(opts, &what(face), e)?,
        }
    }
    let meta = DatasetMeta {
        name: db.display().to_string(),
        layout: if aopts.points19 {
            Layout::Aflw19
        } else {
            Layout::Aflw21
        },
        classes: BTreeMap::new(),
        reals: BTreeMap::from([("pose".to_string(), 3)]),
    };
    let d = report.dataset(samples, meta)?;
    Ok((d, report))
}
