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
//! "flip": [permutation]}` (class counts default to max label + 1; `flip` is the layout's
//! horizontal-flip permutation). An entry:
//! ```json
//! {"image": "a.png", "points": [[10.5, 20.0], [30, 40]], "visible": [true, false],
//!  "box": [0, 0, 50, 60], "subject": "s01", "classes": {"gesture": 3},
//!  "reals": {"pose": [0.1, -0.2, 0.0]}}
//! ```
//! Only `image` and `points` are required; unknown keys are errors. Syntax errors name the
//! line; errors in an entry name the entry's 0-based index in the message (JSON values
//! carry no line numbers; a point-count error gives the 1-based entry number as `line`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::formats::{check_finite, image_size, parse_f64, resolve, LoadOptions, LoadReport};
use crate::layout::Layout;
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

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
    gopts: &GenericOptions,
    opts: &LoadOptions,
) -> Result<Sample> {
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
        check_finite(c[0], c[1], path, line, k)?;
        pts.push([(c[0] - off) as f32, (c[1] - off) as f32]);
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
        if b.len() != 4 || b.iter().any(|v| !v.is_finite()) || b[2] < b[0] || b[3] < b[1] {
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
    s.subject = subject;
    s.classes = classes;
    s.reals = reals;
    s.path = Some(path.to_path_buf());
    if opts.check_images {
        if let ImageSource::File(img) = &s.image {
            s.image_size = Some(image_size(img, path, line)?);
        }
    }
    Ok(s)
}

/// Assembles the data set: checks equal point counts (and real dimensions), derives class
/// counts.
fn finish(
    name: &Path,
    samples: Vec<(usize, Sample)>,
    declared: BTreeMap<String, usize>,
    flip: Option<Vec<usize>>,
    gopts: &GenericOptions,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<Dataset> {
    let k = samples.first().map(|(_, s)| s.landmarks.len()).unwrap_or(0);
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
    for s in &kept {
        for (n, &c) in &s.classes {
            let e = classes.entry(n.clone()).or_insert(0);
            *e = (*e).max(c + 1);
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
    Dataset::new(kept, meta)
}

/// Loads a generic CSV list (see the module docs).
///
/// Errors: the file cannot be read, a bad header (no `image` or `points`, an unknown
/// column); per line (or skipped with `opts.skip_bad`): a parse error, a different point
/// count, a missing / unreadable image; no samples.
pub fn load_csv(
    path: &Path,
    opts: &LoadOptions,
    gopts: &GenericOptions,
) -> Result<(Dataset, LoadReport)> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::parse(path, 0, format!("cannot open CSV: {e}")))?;
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
    for rec in rdr.records() {
        report.entries += 1;
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
                path, line, image, &coords, visible, bbox, subject, classes, reals, gopts, opts,
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

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonFile {
    List(Vec<serde_json::Value>),
    Object(JsonObject),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonObject {
    samples: Vec<serde_json::Value>,
    #[serde(default)]
    classes: BTreeMap<String, usize>,
    #[serde(default)]
    flip: Option<Vec<usize>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(f64),
    Many(Vec<f64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    image: String,
    points: Vec<[f64; 2]>,
    #[serde(default)]
    visible: Option<Vec<bool>>,
    #[serde(default, rename = "box")]
    bbox: Option<Vec<f64>>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    classes: BTreeMap<String, usize>,
    #[serde(default)]
    reals: BTreeMap<String, OneOrMany>,
}

/// Loads a generic JSON list (see the module docs).
///
/// Errors: unreadable file, JSON syntax ([`Error::Json`], with the line); per entry (or
/// skipped with `opts.skip_bad`): a bad entry (named by index), a different point count, a
/// missing / unreadable image; no samples.
pub fn load_json(
    path: &Path,
    opts: &LoadOptions,
    gopts: &GenericOptions,
) -> Result<(Dataset, LoadReport)> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: JsonFile = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let (entries, declared, flip) = match file {
        JsonFile::List(v) => (v, BTreeMap::new(), None),
        JsonFile::Object(o) => (o.samples, o.classes, o.flip),
    };
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    for (i, v) in entries.into_iter().enumerate() {
        report.entries += 1;
        let r = (|| -> Result<Sample> {
            let e: JsonEntry = serde_json::from_value(v)
                .map_err(|err| Error::parse(path, 0, format!("entry {i}: {err}")))?;
            let coords: Vec<f64> = e.points.iter().flatten().copied().collect();
            let reals = e
                .reals
                .into_iter()
                .map(|(n, v)| {
                    let v = match v {
                        OneOrMany::One(x) => vec![x as f32],
                        OneOrMany::Many(x) => x.iter().map(|&x| x as f32).collect(),
                    };
                    (n, v)
                })
                .collect();
            build(
                path, 0, &e.image, &coords, e.visible, e.bbox, e.subject, e.classes, reals, gopts,
                opts,
            )
            .map_err(|err| match err {
                Error::Parse { path, message, .. } => Error::Parse {
                    path,
                    line: 0,
                    message: format!("entry {i}: {message}"),
                },
                other => other,
            })
        })();
        match r {
            Ok(s) => samples.push((i + 1, s)),
            Err(e) => report.skip_or_fail(opts, path, e)?,
        }
    }
    let d = finish(path, samples, declared, flip, gopts, opts, &mut report)?;
    Ok((d, report))
}
