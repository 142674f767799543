//! The JSON list of the generic format (see [`super`]): entries, their lines, the declared
//! class counts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{build, finish, GenericOptions};
use crate::error::{Error, Result};
use crate::formats::{LoadOptions, LoadReport};
use crate::limits::read_text;
use crate::sample::{Dataset, Sample};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonObject {
    samples: Vec<serde_json::Value>,
    #[serde(default)]
    classes: BTreeMap<String, serde_json::Value>,
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
/// Errors: unreadable or too large file, JSON syntax ([`Error::Json`], with the line), a
/// declared class count of 0 or above `opts.limits.max_classes`, more entries than
/// `opts.limits.max_samples`; per entry (or skipped with `opts.skip_bad`): a bad entry
/// (named by line and index), a class label at or above its declared count, a different
/// point count, a missing, unreadable, oversized or truncated image; no samples.
pub fn load_json(
    path: &Path,
    opts: &LoadOptions,
    gopts: &GenericOptions,
) -> Result<(Dataset, LoadReport)> {
    let text = read_text(path, &opts.limits)?;
    let json = |source| Error::Json {
        path: path.to_path_buf(),
        source,
    };
    let (entries, declared, flip) = match serde_json::from_str(&text).map_err(json)? {
        serde_json::Value::Array(v) => (v, BTreeMap::new(), None),
        v @ serde_json::Value::Object(_) => {
            let o: JsonObject = serde_json::from_value(v).map_err(json)?;
            (o.samples, o.classes, o.flip)
        }
        _ => {
            return Err(Error::parse(
                path,
                1,
                "expected a list of entries or an object with `samples`",
            ))
        }
    };
    opts.limits.check_samples(path, entries.len() as u64)?;
    let declared = declared_counts(path, declared, opts)?;
    let lines = entry_lines(&text);
    let lines = if lines.len() == entries.len() {
        lines
    } else {
        vec![0; entries.len()]
    };
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    for ((i, v), line) in entries.into_iter().enumerate().zip(lines) {
        report.entries += 1;
        let r = (|| -> Result<Sample> {
            let e: JsonEntry = serde_json::from_value(v)
                .map_err(|err| Error::parse(path, line, format!("entry {i}: {err}")))?;
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
                path, line, &e.image, &coords, e.visible, e.bbox, e.subject, e.classes, reals,
                &declared, gopts, opts,
            )
            .map_err(|err| match err {
                Error::Parse { path, message, .. } => Error::Parse {
                    path,
                    line,
                    message: format!("entry {i}: {message}"),
                },
                other => other,
            })
        })();
        match r {
            Ok(s) => samples.push((line, s)),
            Err(e) => report.skip_or_fail(opts, path, e)?,
        }
    }
    let d = finish(path, samples, declared, flip, gopts, opts, &mut report)?;
    Ok((d, report))
}

/// The 1-based line on which each entry of the samples list starts, in order: the elements
/// of the top-level array, or of the top-level object's `samples` array. A scan of text
/// that already parsed as JSON (so strings and brackets are balanced); JSON values
/// themselves carry no positions.
fn entry_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1usize, 0usize);
    let (mut in_str, mut esc, mut str_start) = (false, false, 0);
    let mut last_str = "";
    let mut top: Option<u8> = None;
    let mut after_samples_key = false;
    let (mut in_list, mut list_depth, mut expect_entry) = (false, 0, false);
    for (i, c) in text.bytes().enumerate() {
        if c == b'\n' {
            line += 1;
        }
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
                last_str = &text[str_start..i];
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if std::mem::take(&mut expect_entry) && c != b']' {
            lines.push(line);
        }
        let samples_value = std::mem::take(&mut after_samples_key);
        match c {
            b'"' => {
                in_str = true;
                str_start = i + 1;
            }
            b'[' | b'{' => {
                depth += 1;
                let starts_list = match top {
                    None => c == b'[',
                    Some(_) => c == b'[' && samples_value && depth == 2,
                };
                top.get_or_insert(c);
                if starts_list {
                    (in_list, list_depth, expect_entry) = (true, depth, true);
                }
            }
            b']' | b'}' => {
                if in_list && depth == list_depth {
                    in_list = false;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if in_list && depth == list_depth => expect_entry = true,
            b':' if depth == 1 && top == Some(b'{') && last_str == "samples" => {
                after_samples_key = true;
            }
            _ => {}
        }
    }
    lines
}

/// The declared class counts: whole numbers from 1 to the class limit.
fn declared_counts(
    path: &Path,
    raw: BTreeMap<String, serde_json::Value>,
    opts: &LoadOptions,
) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for (n, v) in raw {
        let Some(count) = v.as_u64().filter(|&c| c > 0) else {
            return Err(Error::parse(
                path,
                0,
                format!("classes.{n}: `{v}` is not a class count (a whole number from 1)"),
            ));
        };
        opts.limits
            .check_classes(path, 0, &format!("declared count `classes.{n}`"), count)?;
        counts.insert(n, count as usize);
    }
    Ok(counts)
}
