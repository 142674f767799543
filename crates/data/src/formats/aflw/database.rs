//! The SQLite side of the AFLW reader (the `aflw` feature): four queries, one sample per face.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Row};

use super::AflwOptions;
use crate::error::{Error, Result};
use crate::formats::{check_point, image_size, LoadOptions, LoadReport};
use crate::layout::{Layout, AFLW19_FROM_21};
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Reads the faces of the database at `db` (see [`super::load`]).
pub(super) fn read(
    db: &Path,
    opts: &LoadOptions,
    aopts: &AflwOptions,
) -> Result<(Dataset, LoadReport)> {
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
    // Landmarks, boxes and poses of all faces (a face's first box and pose count), then the
    // faces with their image files.
    let mut coords: HashMap<i64, Vec<(i64, f64, f64)>> = HashMap::new();
    let point =
        |r: &Row| -> rusqlite::Result<(i64, f64, f64)> { Ok((r.get(1)?, r.get(2)?, r.get(3)?)) };
    let query = "SELECT face_id, feature_id, x, y FROM FeatureCoords";
    for (face, c) in by_face(&conn, db, query, point)? {
        coords.entry(face).or_default().push(c);
    }
    let query = "SELECT face_id, x, y, w, h FROM FaceRect ORDER BY rowid";
    let rects = first_per_face(by_face(&conn, db, query, reals::<4>)?);
    let query = "SELECT face_id, roll, pitch, yaw FROM FacePose ORDER BY rowid";
    let poses = first_per_face(by_face(&conn, db, query, reals::<3>)?);
    let query = "SELECT Faces.face_id, FaceImages.filepath FROM Faces \
                 JOIN FaceImages ON Faces.file_id = FaceImages.file_id ORDER BY Faces.face_id";
    let faces = by_face(&conn, db, query, |r| r.get::<_, Option<String>>(1))?;
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

/// Runs `query`, whose first column is a face id, and returns each row's face id with what
/// `columns` reads from the row, in the query's order. The first bad row is the error.
fn by_face<T>(
    conn: &Connection,
    db: &Path,
    query: &str,
    columns: impl Fn(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<(i64, T)>> {
    let sql = |source| Error::Sqlite {
        path: db.to_path_buf(),
        source,
    };
    let mut st = conn.prepare(query).map_err(sql)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, columns(r)?)))
        .map_err(sql)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql)
}

/// Columns `1..=N` of a row as numbers.
fn reals<const N: usize>(r: &Row) -> rusqlite::Result<[f64; N]> {
    let mut v = [0.0; N];
    for (i, x) in v.iter_mut().enumerate() {
        *x = r.get(i + 1)?;
    }
    Ok(v)
}

/// The first value of each face.
fn first_per_face<T>(rows: Vec<(i64, T)>) -> HashMap<i64, T> {
    let mut first = HashMap::new();
    for (face, v) in rows {
        first.entry(face).or_insert(v);
    }
    first
}
