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
//! A directory is searched recursively (in sorted order, each folder once, however many
//! symbolic links lead to it); each `.pts` file needs an image with the same stem beside it
//! (`.jpg`, `.jpeg`, `.png`, any case). The landmark count K of a directory is the most
//! common count of its files, so one bad file (first or not) is reported by name and does
//! not make the good ones wrong.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::formats::{check_point, image_size, most_common, parse_f64, LoadOptions, LoadReport};
use crate::layout::Layout;
use crate::limits::{read_text, Limits};
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Image extensions tried beside a `.pts` file, in order.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "png", "jpeg", "JPG", "PNG", "JPEG"];

/// Parses the text of a `.pts` file (`path` only names the file in errors) within the
/// default [`Limits`]. Returns the points 0-based (1 subtracted).
///
/// Errors ([`Error::Parse`], [`Error::PointCount`], [`Error::NonFinite`], [`Error::Limit`],
/// each with the 1-based line): no `n_points` header, `n_points` 0 or above
/// `limits.max_points`, a missing `{` or `}`, a line that is not two numbers, fewer or more
/// points than announced, NaN, infinite or out-of-f32-range coordinates, text after `}`.
pub fn parse_pts(text: &str, path: &Path) -> Result<Vec<[f32; 2]>> {
    parse_pts_limited(text, path, &Limits::default())
}

/// [`parse_pts`] with explicit limits.
pub fn parse_pts_limited(text: &str, path: &Path, limits: &Limits) -> Result<Vec<[f32; 2]>> {
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
            let n: u64 = v
                .parse()
                .map_err(|_| Error::parse(path, ln, format!("n_points: `{v}` is not a count")))?;
            if n == 0 {
                return Err(Error::parse(path, ln, "n_points: 0, need at least 1 point"));
            }
            limits.check_points(path, ln, "n_points", n)?;
            n_points = Some(n as usize);
        }
    }
    let last_line = text.lines().count().max(1);
    if open_line == 0 {
        return Err(Error::parse(path, last_line, "missing opening brace `{`"));
    }
    let n = n_points
        .ok_or_else(|| Error::parse(path, open_line, "no `n_points:` header before `{`"))?;
    let mut pts = Vec::with_capacity(n.min(1024));
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
        let p = check_point(x - 1.0, y - 1.0, path, ln, pts.len())?;
        if pts.len() == n {
            return Err(Error::PointCount {
                path: path.to_path_buf(),
                line: ln,
                expected: n,
                found: n + 1,
            });
        }
        pts.push(p);
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

/// Reads one `.pts` file (0-based points) within the default [`Limits`].
pub fn read_pts(path: &Path) -> Result<Vec<[f32; 2]>> {
    read_pts_limited(path, &Limits::default())
}

/// [`read_pts`] with explicit limits (also on the file's size).
pub fn read_pts_limited(path: &Path, limits: &Limits) -> Result<Vec<[f32; 2]>> {
    let text = read_text(path, limits)?;
    parse_pts_limited(&text, path, limits)
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

/// Collects the `.pts` files under `dir` (sorted), visiting each folder once (symbolic
/// links may lead back to a parent) and stopping past `limit` files.
fn collect(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
    limits: &Limits,
    root: &Path,
) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !seen.insert(std::fs::canonicalize(dir).map_err(io)?) {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(io)?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out, seen, limits, root)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pts")) {
            out.push(p);
            limits.check_samples(root, out.len() as u64)?;
        }
    }
    Ok(())
}

/// Loads every `.pts` file under `dir` (recursively, sorted) with the image beside it.
/// K is the most common point count of the files that parse; the layout is
/// [`Layout::guess`]ed from K (68 -> iBUG). Samples have no box and no attributes; `path`
/// is the `.pts` file.
///
/// Errors: an unreadable directory; more files than `opts.limits.max_samples`; per file
/// (or skipped and reported with `opts.skip_bad`, in sorted order): a parse error, a
/// landmark count other than K, a missing, unreadable, oversized or truncated image; no
/// files ([`Error::EmptyDataset`]) or no good file ([`Error::NothingLoaded`], with every
/// file's error).
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    let mut files = Vec::new();
    collect(dir, &mut files, &mut Default::default(), &opts.limits, dir)?;
    let parsed: Vec<Result<Vec<[f32; 2]>>> = files
        .iter()
        .map(|f| read_pts_limited(f, &opts.limits))
        .collect();
    let k = most_common(parsed.iter().filter_map(|r| r.as_ref().ok().map(Vec::len)));
    let mut report = LoadReport::default();
    let mut samples: Vec<Sample> = Vec::new();
    for (f, pts) in files.iter().zip(parsed) {
        report.entries += 1;
        let r = (|| -> Result<Sample> {
            let pts = pts?;
            if let Some(k) = k.filter(|&k| k != pts.len()) {
                return Err(Error::LandmarkCountMismatch {
                    index: report.entries - 1,
                    path: f.clone(),
                    expected: k,
                    found: pts.len(),
                });
            }
            let img = find_image(f)?;
            let size = if opts.check_images {
                Some(image_size(&img, f, 0, &opts.limits)?)
            } else {
                None
            };
            let mut s = Sample::new(ImageSource::File(img), pts);
            s.image_size = size;
            s.path = Some(f.clone());
            Ok(s)
        })();
        match r {
            Ok(s) => samples.push(s),
            Err(e) => report.skip_or_fail(opts, f, e)?,
        }
    }
    let meta = DatasetMeta {
        name: dir.display().to_string(),
        layout: Layout::guess(k.unwrap_or(0)),
        classes: Default::default(),
        reals: Default::default(),
    };
    let d = report.dataset(samples, meta)?;
    Ok((d, report))
}
