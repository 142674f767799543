//! 300W / iBUG `.pts` files and directories.
//!
//! A `.pts` file reads
//! ```text
//! version: 1
//! n_points:  68
//! {
//! 446.000 91.000
//! ...
//! }
//! ```
//! Header lines are `key: value` (`n_points` is required); then `{`, exactly `n_points`
//! lines of `x y`, `}`. Blank lines are ignored anywhere. The file's coordinates are
//! **1-based** (Matlab: the top-left pixel's centre is (1, 1)); the reader **subtracts 1**,
//! so returned points are 0-based with pixel centres at integers (the workspace convention).
//! [`write_pts`] adds 1 back.
//!
//! A directory is searched recursively (in sorted order); each `.pts` file needs an image
//! with the same stem beside it (`.jpg`, `.jpeg`, `.png`, any case).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::formats::{check_finite, image_size, parse_f64, LoadOptions, LoadReport};
use crate::layout::Layout;
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Image extensions tried beside a `.pts` file, in order.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "png", "jpeg", "JPG", "PNG", "JPEG"];

/// Parses the text of a `.pts` file (`path` only names the file in errors). Returns the
/// points 0-based (1 subtracted).
///
/// Errors ([`Error::Parse`], [`Error::PointCount`], [`Error::NonFinite`], each with the
/// 1-based line): no `n_points` header, a missing `{` or `}`, a line that is not two
/// numbers, fewer or more points than announced, NaN or infinite coordinates, text after
/// `}`.
pub fn parse_pts(text: &str, path: &Path) -> Result<Vec<[f32; 2]>> {
    let mut n_points: Option<usize> = None;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    // Header.
    let mut open_line = 0;
    for (ln, l) in lines.by_ref() {
        if l.is_empty() {
            continue;
        }
        if l == "{" {
            open_line = ln;
            break;
        }
        let Some((key, value)) = l.split_once(':') else {
            return Err(Error::parse(
                path,
                ln,
                format!("expected `key: value` or `{{`, found `{l}`"),
            ));
        };
        if key.trim() == "n_points" {
            let v = value.trim();
            n_points =
                Some(v.parse().map_err(|_| {
                    Error::parse(path, ln, format!("n_points: `{v}` is not a count"))
                })?);
        }
    }
    let last_line = text.lines().count().max(1);
    if open_line == 0 {
        return Err(Error::parse(path, last_line, "missing opening brace `{`"));
    }
    let n = n_points
        .ok_or_else(|| Error::parse(path, open_line, "no `n_points:` header before `{`"))?;
    let mut pts = Vec::with_capacity(n.min(10_000));
    let mut closed = 0;
    for (ln, l) in lines.by_ref() {
        if l.is_empty() {
            continue;
        }
        if l == "}" {
            closed = ln;
            break;
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        if toks.len() != 2 {
            return Err(Error::parse(
                path,
                ln,
                format!("expected `x y`, found {} fields in `{l}`", toks.len()),
            ));
        }
        let x = parse_f64(toks[0], path, ln, "x")?;
        let y = parse_f64(toks[1], path, ln, "y")?;
        check_finite(x, y, path, ln, pts.len())?;
        if pts.len() == n {
            return Err(Error::PointCount {
                path: path.to_path_buf(),
                line: ln,
                expected: n,
                found: n + 1,
            });
        }
        pts.push([(x - 1.0) as f32, (y - 1.0) as f32]);
    }
    if closed == 0 {
        return Err(Error::parse(path, last_line, "missing closing brace `}`"));
    }
    if pts.len() != n {
        return Err(Error::PointCount {
            path: path.to_path_buf(),
            line: closed,
            expected: n,
            found: pts.len(),
        });
    }
    if let Some((ln, l)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(Error::parse(
            path,
            ln,
            format!("unexpected text after `}}`: `{l}`"),
        ));
    }
    Ok(pts)
}

/// Writes points (0-based) as `.pts` text (1-based, `version: 1`).
pub fn write_pts(points: &[[f32; 2]]) -> String {
    let mut s = format!("version: 1\nn_points: {}\n{{\n", points.len());
    for p in points {
        s.push_str(&format!("{} {}\n", p[0] as f64 + 1.0, p[1] as f64 + 1.0));
    }
    s.push_str("}\n");
    s
}

/// Reads one `.pts` file (0-based points).
pub fn read_pts(path: &Path) -> Result<Vec<[f32; 2]>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pts(&text, path)
}

/// The image beside a `.pts` file.
pub fn find_image(pts: &Path) -> Result<PathBuf> {
    let tried: Vec<PathBuf> = IMAGE_EXTENSIONS
        .iter()
        .map(|e| pts.with_extension(e))
        .collect();
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::MissingImage {
            annotation: pts.to_path_buf(),
            line: 0,
            tried: tried.clone(),
        })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pts")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads every `.pts` file under `dir` (recursively, sorted) with the image beside it.
/// The first file read sets K; the layout is [`Layout::guess`]ed from K (68 -> iBUG).
/// Samples have no box and no attributes; `path` is the `.pts` file.
///
/// Errors: an unreadable directory; per file (or skipped and reported with
/// `opts.skip_bad`): a parse error, a missing or unreadable image, a landmark count
/// different from the first file's; an empty result ([`Error::EmptyDataset`]).
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    let mut report = LoadReport::default();
    let mut samples: Vec<Sample> = Vec::new();
    let mut k: Option<usize> = None;
    for f in files {
        report.entries += 1;
        let r = (|| -> Result<Sample> {
            let pts = read_pts(&f)?;
            if let Some(k) = k {
                if pts.len() != k {
                    return Err(Error::LandmarkCountMismatch {
                        index: samples.len(),
                        path: f.clone(),
                        expected: k,
                        found: pts.len(),
                    });
                }
            }
            let img = find_image(&f)?;
            let size = if opts.check_images {
                Some(image_size(&img, &f, 0)?)
            } else {
                None
            };
            let mut s = Sample::new(ImageSource::File(img), pts);
            s.image_size = size;
            s.path = Some(f.clone());
            Ok(s)
        })();
        match r {
            Ok(s) => {
                k.get_or_insert(s.landmarks.len());
                samples.push(s);
            }
            Err(e) => report.skip_or_fail(opts, &f, e)?,
        }
    }
    let meta = DatasetMeta {
        name: dir.display().to_string(),
        layout: Layout::guess(k.unwrap_or(0)),
        classes: Default::default(),
        reals: Default::default(),
    };
    Ok((Dataset::new(samples, meta)?, report))
}
