//! MTFL (Zhang et al., "Facial landmark detection by deep multi-task learning")
//! `training.txt` / `testing.txt`.
//!
//! One face per line, whitespace-separated:
//! `path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smile glasses pose`.
//! Points: left eye, right eye, nose, left mouth corner, right mouth corner
//! ([`Layout::Mtfl5`]). The coordinates are returned **as stored** (MTFL's files are read as
//! 0-based pixel coordinates; no offset is applied). Attributes are 1-based in the file
//! and returned 0-based: `gender` (0 male, 1 female), `smile` (0 yes, 1 no), `glasses`
//! (0 yes, 1 no), `pose` (0 left profile, 1 left, 2 frontal, 3 right, 4 right profile).
//! The image path may use `\`; relative paths are resolved from the list file's directory.
//! Blank lines are skipped.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{
    check_point, file_sample, load_lines, parse_f64, resolve, LoadOptions, LoadReport,
};
use crate::layout::Layout;
use crate::sample::{Dataset, DatasetMeta};

/// The class attributes and their class counts, in file order.
pub const ATTRIBUTES: [(&str, usize); 4] =
    [("gender", 2), ("smile", 2), ("glasses", 2), ("pose", 5)];

/// One parsed MTFL line.
#[derive(Debug, Clone, PartialEq)]
pub struct MtflEntry {
    /// Image path as written (with `\` kept).
    pub image: String,
    /// Five points (x, y).
    pub points: [[f32; 2]; 5],
    /// 0-based gender, smile, glasses, pose.
    pub attributes: [usize; 4],
}

/// Parses one non-blank line (`line` is its 1-based number, `path` the list file; both only
/// name errors).
///
/// Errors: not 15 fields, a non-number, a non-finite (or out-of-f32-range) coordinate, an
/// attribute outside
/// `1..=count` (each an error naming file and line).
pub fn parse_line(text: &str, path: &Path, line: usize) -> Result<MtflEntry> {
    let toks: Vec<&str> = text.split_whitespace().collect();
    if toks.len() != 15 {
        return Err(Error::parse(
            path,
            line,
            format!(
                "expected 15 fields (path, 10 coordinates, 4 attributes), found {}",
                toks.len()
            ),
        ));
    }
    let mut c = [0f64; 10];
    for (i, t) in toks[1..11].iter().enumerate() {
        c[i] = parse_f64(t, path, line, if i < 5 { "x" } else { "y" })?;
    }
    let mut points = [[0f32; 2]; 5];
    for k in 0..5 {
        points[k] = check_point(c[k], c[k + 5], path, line, k)?;
    }
    let mut attributes = [0usize; 4];
    for (i, ((name, count), t)) in ATTRIBUTES.iter().zip(&toks[11..15]).enumerate() {
        let v: usize = t
            .parse()
            .map_err(|_| Error::parse(path, line, format!("{name}: `{t}` is not an integer")))?;
        if v == 0 || v > *count {
            return Err(Error::parse(
                path,
                line,
                format!("{name}: {v} is not in 1..={count}"),
            ));
        }
        attributes[i] = v - 1;
    }
    Ok(MtflEntry {
        image: toks[0].to_string(),
        points,
        attributes,
    })
}

/// The metadata of an MTFL data set.
pub fn meta(name: &str) -> DatasetMeta {
    DatasetMeta {
        name: name.to_string(),
        layout: Layout::Mtfl5,
        classes: ATTRIBUTES
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect::<BTreeMap<_, _>>(),
        reals: Default::default(),
    }
}

/// Loads an MTFL list file. Samples carry the four class attributes; `path` is the list
/// file.
///
/// Errors: the file cannot be read or is larger than `opts.limits.max_file_bytes`; more
/// entries than `opts.limits.max_samples`; per line (or skipped with `opts.skip_bad`): a
/// parse error or a missing, unreadable, oversized or truncated image; no samples
/// ([`Error::EmptyDataset`], or [`Error::NothingLoaded`] when every line was bad).
pub fn load(list: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport)> {
    load_lines(list, opts, meta(&list.display().to_string()), |l, line| {
        let e = parse_line(l, list, line)?;
        let mut s = file_sample(resolve(list, &e.image), e.points.to_vec(), list, line, opts)?;
        for ((name, _), v) in ATTRIBUTES.iter().zip(e.attributes) {
            s.classes.insert(name.to_string(), v);
        }
        Ok(s)
    })
}
