//! A generic list format for everything else (HGR1, Multi-PIE, your own data), as CSV or
//! JSON. Image paths are relative to the list file's directory (or absolute; `\` is read as
//! `/`). Points are 0-based pixel coordinates with pixel centres at integers (the workspace
//! convention) unless [`GenericOptions::one_based`] is set, in which case 1 is subtracted
//! (from points and boxes). Every sample must have the same number of points.
//!
//! # CSV
//! A header line, then one sample per line. Columns:
//! * `image` (required): the image path.
//! * `points` (required): `x0 y0 x1 y1 ...` (separated by spaces or `;`).
//! * `visible` (optional): `1 0 1 ...`, one flag per point (empty = all visible).
//! * `box` (optional): `x0 y0 x1 y1`.
//! * `subject` (optional): a subject id (for subject-disjoint splits).
//! * `class:NAME` (optional, any number): a 0-based class of attribute NAME.
//! * `real:NAME` (optional, any number): one or more numbers (separated by spaces or `;`).
//!
//! An empty cell means "no label". Any other column is an error (so typos are not silently
//! ignored). Errors name the file and the 1-based line.
//!
//! # JSON
//! Either a list of entries or `{"samples": [entries], "classes": {"NAME": count},
//! "flip": [permutation]}` (class counts default to max label + 1; a declared count is a
//! promise: a label at or above it is an error naming the entry; `flip` is the layout's
//! horizontal-flip permutation). An entry:
//! ```json
//! {"image": "a.png", "points": [[10.5, 20.0], [30, 40]], "visible": [true, false],
//!  "box": [0, 0, 50, 60], "subject": "s01", "classes": {"gesture": 3},
//!  "reals": {"pose": [0.1, -0.2, 0.0]}}
//! ```
//! Only `image` and `points` are required; unknown keys are errors. Syntax errors name the
//! line; errors in an entry name the line on which the entry starts and, in the message, its
//! 0-based index.
//!
//! # Counts
//! The landmark count K is the layout's when [`GenericOptions::layout`] is given, else the
//! most common count of the entries (so one bad entry, first or not, is the one reported).
//! Point counts, class labels and counts, entries and the file size are checked against
//! [`LoadOptions::limits`](crate::LoadOptions::limits).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{
    check_point, image_size, most_common, parse_f64, resolve, LoadOptions, LoadReport,
};
use crate::layout::Layout;
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

mod json;

pub use json::load_json;

/// Options of the generic readers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenericOptions {
    /// The file's coordinates are 1-based (subtract 1).
    pub one_based: bool,
    /// The layout (default: [`Layout::guess`] from the point count, or a generic layout with
    /// the JSON file's `flip`).
    pub layout: Option<Layout>,
}

fn numbers(cell: &str, path: &Path, line: usize, what: &str) -> Result<Vec<f64>> {
    cell.split(|c: char| c.is_whitespace() || c == ';')
        .filter(|t| !t.is_empty())
        .map(|t| parse_f64(t, path, line, what))
        .collect()
}

/// Parses one sample from raw fields (shared by CSV and JSON).
#[allow(clippy::too_many_arguments)]
fn build(
    path: &Path,
    line: usize,
    image: &str,
    coords: &[f64],
    visible: Option<Vec<bool>>,
    bbox: Option<Vec<f64>>,
    subject: Option<String>,
    classes: BTreeMap<String, usize>,
    reals: BTreeMap<String, Vec<f32>>,
    declared: &BTreeMap<String, usize>,
    gopts: &GenericOptions,
    opts: &LoadOptions,
) -> Result<Sample> {
    opts.limits
        .check_points(path, line, "the number of points", coords.len() as u64 / 2)?;
    if coords.len() % 2 == 1 {
        return Err(Error::parse(
            path,
            line,
            format!("odd number of coordinates ({})", coords.len()),
        ));
    }
    let off = if gopts.one_based { 1.0 } else { 0.0 };
    let mut pts = Vec::with_capacity(coords.len() / 2);
    for (k, c) in coords.chunks(2).enumerate() {
        pts.push(check_point(c[0] - off, c[1] - off, path, line, k)?);
    }
    let k = pts.len();
    let mut s = Sample::new(ImageSource::File(resolve(path, image)), pts);
    if let Some(v) = visible {
        if v.len() != k {
            return Err(Error::parse(
                path,
                line,
                format!("{} visibility flags for {k} points", v.len()),
            ));
        }
        s.visible = v;
    }
    if let Some(b) = bbox {
        if b.len() != 4 || b.iter().any(|v| !(*v as f32).is_finite()) || b[2] < b[0] || b[3] < b[1]
        {
            return Err(Error::parse(
                path,
                line,
                format!(
                    "box must be 4 finite numbers x0 y0 x1 y1 with x0 <= x1, y0 <= y1, got {b:?}"
                ),
            ));
        }
        s.bbox = Some([
            (b[0] - off) as f32,
            (b[1] - off) as f32,
            (b[2] - off) as f32,
            (b[3] - off) as f32,
        ]);
    }
    for (n, v) in &reals {
        if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
            return Err(Error::parse(
                path,
                line,
                format!("real attribute `{n}` must be finite numbers, got {v:?}"),
            ));
        }
    }
    for (n, &c) in &classes {
        if let Some(&count) = declared.get(n) {
            if c >= count {
                return Err(Error::parse(
                    path,
                    line,
                    format!("class `{n}`: label {c} is not below the declared count {count}"),
                ));
            }
        }
        opts.limits.check_classes(
            path,
            line,
            &format!("class label of `{n}` + 1"),
            (c as u64).saturating_add(1),
        )?;
    }
    s.subject = subject;
    s.classes = classes;
    s.reals = reals;
    s.path = Some(path.to_path_buf());
    if opts.check_images {
        if let ImageSource::File(img) = &s.image {
            s.image_size = Some(image_size(img, path, line, &opts.limits)?);
        }
    }
    Ok(s)
}

/// Assembles the data set: checks equal point counts (K is the layout's, else the most
/// common) and real dimensions, derives class counts of undeclared attributes (labels of
/// declared ones were checked per entry).
fn finish(
    name: &Path,
    samples: Vec<(usize, Sample)>,
    declared: BTreeMap<String, usize>,
    flip: Option<Vec<usize>>,
    gopts: &GenericOptions,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Dataset> {
    let k = match &gopts.layout {
        Some(l) => l.num_points(),
        None => most_common(samples.iter().map(|(_, s)| s.landmarks.len())).unwrap_or(0),
    };
    let mut classes = declared;
    let mut reals: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = Vec::with_capacity(samples.len());
    for (line, s) in samples {
        let r = (|| -> Result<()> {
            if s.landmarks.len() != k {
                return Err(Error::PointCount {
                    path: name.to_path_buf(),
                    line,
                    expected: k,
                    found: s.landmarks.len(),
                });
            }
            for (n, v) in &s.reals {
                if let Some(&a) = reals.get(n) {
                    if a != v.len() {
                        return Err(Error::parse(
                            name,
                            line,
                            format!(
                                "real attribute `{n}` has {} values, earlier samples {a}",
                                v.len()
                            ),
                        ));
                    }
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                for (n, v) in &s.reals {
                    reals.insert(n.clone(), v.len());
                }
                kept.push(s);
            }
            Err(e) => report.skip_or_fail(opts, name, e)?,
        }
    }
    let declared: std::collections::BTreeSet<String> = classes.keys().cloned().collect();
    for s in &kept {
        for (n, &c) in &s.classes {
            if !declared.contains(n) {
                let e = classes.entry(n.clone()).or_insert(0);
                *e = (*e).max(c.saturating_add(1));
            }
        }
    }
    let layout = match (&gopts.layout, flip) {
        (Some(l), _) => l.clone(),
        (None, Some(f)) => Layout::Generic {
            n: k,
            flip: Some(f),
        },
        (None, None) => Layout::guess(k),
    };
    if layout.num_points() != k && !kept.is_empty() {
        return Err(Error::arg(
            "layout",
            format!(
                "{} has {} points, the file {k}",
                layout.name(),
                layout.num_points()
            ),
        ));
    }
    if let Some(f) = layout.flip_permutation() {
        let mut seen = vec![false; k];
        if f.len() != k
            || f.iter()
                .any(|&j| j >= k || std::mem::replace(&mut seen[j], true))
        {
            return Err(Error::parse(
                name,
                0,
                format!("flip {f:?} is not a permutation of 0..{k}"),
            ));
        }
    }
    let meta = DatasetMeta {
        name: name.display().to_string(),
        layout,
        classes,
        reals,
    };
    report.dataset(kept, meta)
}

/// Loads a generic CSV list (see the module docs).
///
/// Errors: the file cannot be read or is too large, a bad header (no `image` or `points`,
/// an unknown column), more lines than `opts.limits.max_samples`; per line (or skipped with
/// `opts.skip_bad`): a parse error, a class label above `opts.limits.max_classes`, a
/// different point count, a missing, unreadable, oversized or truncated image; no samples.
pub fn load_csv(
    path: &Path,
    opts: &LoadOptions,
    gopts: &GenericOptions,
) -> Result<(Dataset, LoadReport)> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    opts.limits
        .check_file_bytes(path, file.metadata().map_err(io)?.len())?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file.take(opts.limits.max_file_bytes));
    let headers = rdr
        .headers()
        .map_err(|e| Error::parse(path, 1, format!("bad header: {e}")))?
        .clone();
    let mut col = BTreeMap::new();
    for (i, h) in headers.iter().enumerate() {
        let known = matches!(h, "image" | "points" | "visible" | "box" | "subject")
            || (h.starts_with("class:") && h.len() > 6)
            || (h.starts_with("real:") && h.len() > 5);
        if !known {
            return Err(Error::parse(
                path,
                1,
                format!("unknown column `{h}` (see the generic format's docs)"),
            ));
        }
        col.insert(h.to_string(), i);
    }
    let (Some(&ci), Some(&cp)) = (col.get("image"), col.get("points")) else {
        return Err(Error::parse(
            path,
            1,
            "the header needs `image` and `points` columns",
        ));
    };
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    let none = BTreeMap::new();
    for rec in rdr.records() {
        report.entries += 1;
        opts.limits.check_samples(path, report.entries as u64)?;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                report.skip_or_fail(opts, path, Error::parse(path, line, format!("CSV: {e}")))?;
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let r = (|| -> Result<Sample> {
            let get = |c: usize| rec.get(c).unwrap_or("");
            if rec.len() != headers.len() {
                return Err(Error::parse(
                    path,
                    line,
                    format!("{} fields, the header has {}", rec.len(), headers.len()),
                ));
            }
            let image = get(ci);
            if image.is_empty() {
                return Err(Error::parse(path, line, "empty image path"));
            }
            let coords = numbers(get(cp), path, line, "points")?;
            let visible = match col
                .get("visible")
                .map(|&c| get(c))
                .filter(|v| !v.is_empty())
            {
                Some(v) => Some(
                    v.split(|c: char| c.is_whitespace() || c == ';')
                        .filter(|t| !t.is_empty())
                        .map(|t| match t {
                            "1" | "true" => Ok(true),
                            "0" | "false" => Ok(false),
                            _ => Err(Error::parse(
                                path,
                                line,
                                format!("visible: `{t}` is not 0 or 1"),
                            )),
                        })
                        .collect::<Result<Vec<bool>>>()?,
                ),
                None => None,
            };
            let bbox = match col.get("box").map(|&c| get(c)).filter(|v| !v.is_empty()) {
                Some(b) => Some(numbers(b, path, line, "box")?),
                None => None,
            };
            let subject = col
                .get("subject")
                .map(|&c| get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let mut classes = BTreeMap::new();
            let mut reals = BTreeMap::new();
            for (h, &c) in &col {
                let v = get(c);
                if v.is_empty() {
                    continue;
                }
                if let Some(n) = h.strip_prefix("class:") {
                    let k: usize = v.parse().map_err(|_| {
                        Error::parse(path, line, format!("{h}: `{v}` is not a 0-based class"))
                    })?;
                    classes.insert(n.to_string(), k);
                } else if let Some(n) = h.strip_prefix("real:") {
                    let x = numbers(v, path, line, h)?;
                    reals.insert(n.to_string(), x.iter().map(|&x| x as f32).collect());
                }
            }
            build(
                path, line, image, &coords, visible, bbox, subject, classes, reals, &none, gopts,
                opts,
            )
        })();
        match r {
            Ok(s) => samples.push((line, s)),
            Err(e) => report.skip_or_fail(opts, path, e)?,
        }
    }
    let d = finish(
        path,
        samples,
        BTreeMap::new(),
        None,
        gopts,
        opts,
        &mut report,
    )?;
    Ok((d, report))
}
