//! WFLW (Wu et al., "Look at Boundary: A Boundary-Aware Face Alignment Algorithm") annotation
//! lists, `list_98pt_rect_attr_train.txt` / `list_98pt_rect_attr_test.txt`.
//!
//! One face per line, whitespace-separated: 98 points as `x y` pairs (196 numbers), the face
//! box `x_min y_min x_max y_max`, six 0/1 attribute flags (pose, expression, illumination,
//! make-up, occlusion, blur), then the image path relative to an image root (the
//! `WFLW_images` directory). Points are in the layout [`Layout::Wflw98`]; every point is
//! annotated (occluded points too), so all are visible. Coordinates and box are returned
//! **as stored** (WFLW's values are read as 0-based pixel coordinates; no offset is
//! applied); points outside the image or the box are kept. The box goes to
//! [`Sample::bbox`]; the flags become the 2-class attributes [`ATTRIBUTES`] (0 = no, 1 =
//! yes), so a multi-task model can take them as attributes. The benchmark's normaliser is
//! the outer-eye-corner distance, points 60 and 72
//! ([`WFLW98_OUTER_EYE_CORNERS`](crate::layout::WFLW98_OUTER_EYE_CORNERS)).
//!
//! An image path may use `\`; relative paths are resolved from the image root (default: the
//! list file's directory). Blank lines are skipped.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{
    check_point, file_sample, load_lines, parse_f64, resolve_in, LoadOptions, LoadReport,
};
use crate::layout::Layout;
use crate::sample::{Dataset, DatasetMeta};

/// Number of points of a WFLW line.
pub const POINTS: usize = 98;

/// The class attributes (each with 2 classes), in file order.
pub const ATTRIBUTES: [&str; 6] = [
    "pose",
    "expression",
    "illumination",
    "make_up",
    "occlusion",
    "blur",
];

/// Numbers before the image path: 196 coordinates, 4 box values, 6 flags.
const NUMBERS: usize = 2 * POINTS + 4 + ATTRIBUTES.len();

/// One parsed WFLW line.
#[derive(Debug, Clone, PartialEq)]
pub struct WflwEntry {
    /// Image path as written (relative to the image root, `\` kept).
    pub image: String,
    /// The 98 points (x, y).
    pub points: Vec<[f32; 2]>,
    /// Face box `[x_min, y_min, x_max, y_max]`.
    pub bbox: [f32; 4],
    /// The six flags (0 or 1) in the order of [`ATTRIBUTES`].
    pub attributes: [usize; 6],
}

/// Parses one non-blank line (`line` is its 1-based number, `path` the list file; both only
/// name errors).
///
/// Errors (each naming file, line and field): not 206 numbers before the path, no path (the
/// last field is a number), a non-number, a non-finite (or out-of-f32-range) coordinate, a box
/// that is not finite with `x_min <= x_max` and `y_min <= y_max`, a flag other than 0 or 1.
pub fn parse_line(text: &str, path: &Path, line: usize) -> Result<WflwEntry> {
    let toks: Vec<&str> = text.split_whitespace().collect();
    let Some((image, numbers)) = toks.split_last() else {
        return Err(Error::parse(path, line, "empty line"));
    };
    if image.parse::<f64>().is_ok() {
        return Err(Error::parse(
            path,
            line,
            format!(
                "no image path: the last of the {} fields is a number (expected {} numbers \
                 = 196 + 4 + 6, then the path)",
                toks.len(),
                NUMBERS
            ),
        ));
    }
    if numbers.len() != NUMBERS {
        return Err(Error::parse(
            path,
            line,
            format!(
                "{} numbers before the path, expected 196 + 4 + 6 (98 points, box, 6 flags)",
                numbers.len()
            ),
        ));
    }
    let mut points = Vec::with_capacity(POINTS);
    for k in 0..POINTS {
        let x = parse_f64(numbers[2 * k], path, line, &format!("landmark {k} x"))?;
        let y = parse_f64(numbers[2 * k + 1], path, line, &format!("landmark {k} y"))?;
        points.push(check_point(x, y, path, line, k)?);
    }
    let names = ["box x_min", "box y_min", "box x_max", "box y_max"];
    let mut b = [0f32; 4];
    for (i, name) in names.iter().enumerate() {
        let v = parse_f64(numbers[2 * POINTS + i], path, line, name)?;
        b[i] = v as f32;
        if !b[i].is_finite() {
            return Err(Error::parse(
                path,
                line,
                format!("{name}: {v:?} is not a finite 32-bit float"),
            ));
        }
    }
    if b[2] < b[0] || b[3] < b[1] {
        return Err(Error::parse(
            path,
            line,
            format!(
                "box: x_min {} y_min {} x_max {} y_max {} (needs x_min <= x_max, y_min <= y_max)",
                b[0], b[1], b[2], b[3]
            ),
        ));
    }
    let mut attributes = [0usize; 6];
    for (i, name) in ATTRIBUTES.iter().enumerate() {
        let t = numbers[2 * POINTS + 4 + i];
        attributes[i] = match t {
            "0" => 0,
            "1" => 1,
            _ => {
                return Err(Error::parse(
                    path,
                    line,
                    format!("{name} flag: `{t}` is not 0 or 1"),
                ))
            }
        };
    }
    Ok(WflwEntry {
        image: image.to_string(),
        points,
        bbox: b,
        attributes,
    })
}

/// The metadata of a WFLW data set: [`Layout::Wflw98`] and the six 2-class attributes.
pub fn meta(name: &str) -> DatasetMeta {
    DatasetMeta {
        name: name.to_string(),
        layout: Layout::Wflw98,
        classes: ATTRIBUTES
            .iter()
            .map(|n| (n.to_string(), 2))
            .collect::<BTreeMap<_, _>>(),
        reals: Default::default(),
    }
}

/// Loads a WFLW list file; image paths are resolved from `image_root` (default: the list
/// file's directory). Samples carry the box and the six class attributes.
///
/// Errors: the file cannot be read or is larger than `opts.limits.max_file_bytes`; more
/// entries than `opts.limits.max_samples`; per line (or skipped with `opts.skip_bad`): a
/// parse error ([`parse_line`]) or a missing, unreadable, oversized or truncated image; no
/// samples ([`Error::EmptyDataset`], or [`Error::NothingLoaded`] when every line was bad).
pub fn load(
    list: &Path,
    image_root: Option<&Path>,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    let root = image_root.unwrap_or_else(|| list.parent().unwrap_or(Path::new(".")));
    load_lines(list, opts, meta(&list.display().to_string()), |l, line| {
        let e = parse_line(l, list, line)?;
        let mut s = file_sample(resolve_in(root, &e.image), e.points, list, line, opts)?;
        s.bbox = Some(e.bbox);
        for (name, v) in ATTRIBUTES.iter().zip(e.attributes) {
            s.classes.insert(name.to_string(), v);
        }
        Ok(s)
    })
}
