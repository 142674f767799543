//! Layout files: the point names, horizontal-flip pairs and normaliser points of a point set,
//! for data whose format does not carry them (the generic CSV and JSON formats), so that flip
//! augmentation works on any point set.
//!
//! A JSON file:
//!
//! ```json
//! {"names": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
//!  "flip": [["left_eye", "right_eye"], ["mouth_left", "mouth_right"]],
//!  "normalizer": ["left_eye", "right_eye"]}
//! ```
//!
//! `names` (unique, non-empty) gives the point count, or `points` gives it without names;
//! `flip` lists the pairs that swap under a horizontal flip, by name or by 0-based index
//! (points in no pair map to themselves); `normalizer` names the two points whose distance
//! normalises errors (for the metrics crate's `Normalizer::Points(i, j)`). Unknown keys are
//! errors, and every error names the file and the entry at fault.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::limits::Limits;

/// A point by its name or its 0-based index.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PointRef {
    Index(u64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    names: Option<Vec<String>>,
    points: Option<u64>,
    #[serde(default)]
    flip: Vec<[PointRef; 2]>,
    normalizer: Option<[PointRef; 2]>,
}

/// What a layout file says.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutFile {
    /// The point names (`point0`, `point1`, ... when the file gives only `points`).
    pub names: Vec<String>,
    /// The layout: `Layout::Generic` with the flip permutation (`None` without pairs).
    pub layout: Layout,
    /// The two points of the inter-point normaliser, if the file names them.
    pub normalizer: Option<[usize; 2]>,
}

impl LayoutFile {
    /// Reads and checks a layout file (at most `limits.max_file_bytes`, at most
    /// `limits.max_points` points).
    pub fn read(path: &Path, limits: &Limits) -> Result<Self> {
        let len = std::fs::metadata(path)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if len > limits.max_file_bytes {
            return Err(Error::Limit {
                path: path.to_path_buf(),
                line: 0,
                what: "file bytes".into(),
                value: len,
                limit: limits.max_file_bytes,
                setting: "max_file_bytes",
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, limits)
    }

    /// Parses and checks a layout file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path, limits: &Limits) -> Result<Self> {
        let bad = |message: String| Error::parse(path, 0, message);
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| Error::parse(path, e.line(), format!("layout file: {e}")))?;
        let n = match (&raw.names, raw.points) {
            (Some(names), Some(p)) if names.len() as u64 != p => {
                return Err(bad(format!(
                    "points: {p}, but names lists {} points",
                    names.len()
                )))
            }
            (Some(names), _) => names.len() as u64,
            (None, Some(p)) => p,
            (None, None) => return Err(bad("give `names` (or `points`, the point count)".into())),
        };
        if n == 0 {
            return Err(bad("a layout needs at least one point".into()));
        }
        if n > limits.max_points {
            return Err(Error::Limit {
                path: path.to_path_buf(),
                line: 0,
                what: "points".into(),
                value: n,
                limit: limits.max_points,
                setting: "max_points",
            });
        }
        let n = n as usize;
        let names = raw
            .names
            .unwrap_or_else(|| (0..n).map(|i| format!("point{i}")).collect());
        let mut by_name = HashMap::with_capacity(n);
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(bad(format!("names[{i}] is empty")));
            }
            if by_name.insert(name.as_str(), i).is_some() {
                return Err(bad(format!("names[{i}]: `{name}` appears twice")));
            }
        }
        let index = |field: String, p: &PointRef| -> Result<usize> {
            match p {
                PointRef::Index(i) if (*i as usize) < n && *i < n as u64 => Ok(*i as usize),
                PointRef::Index(i) => Err(bad(format!("{field}: index {i} is not below {n}"))),
                PointRef::Name(s) => by_name
                    .get(s.as_str())
                    .copied()
                    .ok_or_else(|| bad(format!("{field}: `{s}` is not a point name"))),
            }
        };
        let flip = if raw.flip.is_empty() {
            None
        } else {
            let mut perm: Vec<Option<usize>> = vec![None; n];
            for (k, [a, b]) in raw.flip.iter().enumerate() {
                let (a, b) = (
                    index(format!("flip[{k}][0]"), a)?,
                    index(format!("flip[{k}][1]"), b)?,
                );
                if a == b {
                    return Err(bad(format!(
                        "flip[{k}]: a point cannot pair with itself ({})",
                        names[a]
                    )));
                }
                for p in [a, b] {
                    if perm[p].is_some() {
                        return Err(bad(format!(
                            "flip[{k}]: `{}` is already in another pair",
                            names[p]
                        )));
                    }
                }
                perm[a] = Some(b);
                perm[b] = Some(a);
            }
            Some(
                perm.iter()
                    .enumerate()
                    .map(|(i, p)| p.unwrap_or(i))
                    .collect(),
            )
        };
        let normalizer = match &raw.normalizer {
            Some([a, b]) => {
                let (a, b) = (
                    index("normalizer[0]".into(), a)?,
                    index("normalizer[1]".into(), b)?,
                );
                if a == b {
                    return Err(bad("normalizer: two different points are needed".into()));
                }
                Some([a, b])
            }
            None => None,
        };
        Ok(LayoutFile {
            names,
            layout: Layout::Generic { n, flip },
            normalizer,
        })
    }
}
