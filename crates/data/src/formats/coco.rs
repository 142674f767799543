//! COCO keypoints JSON (`person_keypoints_*.json` and files in the same format).
//!
//! The file holds `images` (`id`, `file_name`, `width`, `height`), `annotations` (`id`,
//! `image_id`, `category_id`, `keypoints` as flat `x, y, v` triples, `bbox` as
//! `x, y, w, h`, `num_keypoints`, `iscrowd`) and `categories` (`id`, `name`, `keypoints`
//! names, `skeleton`). Other keys (`segmentation`, `area`, `info`, ...) are ignored.
//!
//! * One sample per annotation: several instances of one image give several samples with
//!   the same image. Their [`Sample::subject`] is `image <id>`, so subject-disjoint splits
//!   keep the instances of one image together.
//! * The box becomes `[x, y, x + w, y + h]` in [`Sample::bbox`].
//! * Visibility `v`: 0 (not labelled) gives a point that is not visible, its coordinates kept
//!   as given (usually 0, 0); 1 (labelled but occluded) and 2 (visible) give visible points:
//!   an occluded point's position is still a label, so it is trained on. `num_keypoints` is
//!   not read (the count follows from `v`).
//! * Coordinates are pixels of the image as stored and are used **as they are**, with no
//!   offset (as mmpose does; whether COCO's origin is the corner or the centre of the
//!   top-left pixel is debated, and the workspace convention puts pixel centres at
//!   integers). Points outside the image are kept.
//! * Left out on purpose and counted in [`LoadReport::filtered`] (not errors): crowd
//!   annotations (`iscrowd` = 1), annotations of other categories, and annotations whose
//!   points are all `v` = 0 (unless [`CocoOptions::keep_unlabelled`]).
//! * The category: [`CocoOptions::category`] (a name or an id), else the only category with
//!   keypoint names; several such categories and no choice is an error naming them.
//! * Layout: [`Layout::Generic`] with the category's keypoint count and, when the names come
//!   in `left_*` / `right_*` pairs (COCO person: `left_eye` / `right_eye`, ...), the flip
//!   permutation derived from the names ([`flip_from_names`]).
//!
//! Image paths (`file_name`) are resolved from [`CocoOptions::image_root`] (default: the JSON
//! file's directory). The file size, entry counts and keypoint count are checked against
//! [`LoadOptions::limits`], and so are the declared image sizes. Syntax and type errors are
//! [`Error::Json`] with line and column; every other error is an [`Error::Parse`] (line 0)
//! whose message starts with the JSON path at fault, e.g.
//! `annotations[3].keypoints: 50 values, expected 3 x 17`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::formats::{image_size, resolve_in, LoadOptions, LoadReport};
use crate::layout::Layout;
use crate::limits::read_text;
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Options of the COCO reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CocoOptions {
    /// The category to read, by name or id (default: the only category with keypoints).
    pub category: Option<String>,
    /// Directory the images' `file_name`s are relative to (default: the JSON file's
    /// directory).
    pub image_root: Option<PathBuf>,
    /// Keep annotations with no labelled keypoint (every `v` = 0) as samples whose points are
    /// all not visible (default: left out, as mmpose does for training).
    pub keep_unlabelled: bool,
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: i64,
    file_name: String,
    #[serde(default)]
    width: Option<u64>,
    #[serde(default)]
    height: Option<u64>,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: i64,
    category_id: i64,
    #[serde(default)]
    keypoints: Option<Vec<f64>>,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
    #[serde(default)]
    iscrowd: u64,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: i64,
    name: String,
    #[serde(default)]
    keypoints: Vec<String>,
}

/// The flip permutation implied by keypoint names: a name `left_X` swaps with `right_X`
/// (and back), any other name maps to itself. `None` when no name starts with `left_` or
/// `right_` (nothing says how the points mirror), or when one lacks its partner or a name
/// repeats (case-insensitive).
///
/// ```
/// use landmark_ssl_data::formats::coco::flip_from_names;
/// let names = ["nose", "left_eye", "right_eye"].map(String::from);
/// assert_eq!(flip_from_names(&names), Some(vec![0, 2, 1]));
/// assert_eq!(flip_from_names(&["left_eye".to_string()]), None);
/// ```
pub fn flip_from_names(names: &[String]) -> Option<Vec<usize>> {
    let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (k, n) in lower.iter().enumerate() {
        if index.insert(n.as_str(), k).is_some() {
            return None;
        }
    }
    let mut sided = false;
    let mut perm = Vec::with_capacity(names.len());
    for (k, n) in lower.iter().enumerate() {
        let partner = if let Some(rest) = n.strip_prefix("left_") {
            Some(format!("right_{rest}"))
        } else {
            n.strip_prefix("right_").map(|rest| format!("left_{rest}"))
        };
        match partner {
            Some(p) => {
                sided = true;
                perm.push(*index.get(p.as_str())?);
            }
            None => perm.push(k),
        }
    }
    sided.then_some(perm)
}

/// Picks the category: by name or id when asked, else the only one with keypoints.
fn choose_category<'a>(
    path: &Path,
    categories: &'a [CocoCategory],
    wanted: Option<&str>,
) -> Result<&'a CocoCategory> {
    let with_points: Vec<&CocoCategory> = categories
        .iter()
        .filter(|c| !c.keypoints.is_empty())
        .collect();
    let list = || {
        with_points
            .iter()
            .map(|c| format!("`{}` (id {})", c.name, c.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(w) => with_points
            .iter()
            .copied()
            .find(|c| c.name == w || c.id.to_string() == w)
            .ok_or_else(|| {
                Error::arg(
                    "category",
                    format!(
                        "{} has no category `{w}` with keypoints; those with keypoints: {}",
                        path.display(),
                        if with_points.is_empty() {
                            "none".to_string()
                        } else {
                            list()
                        }
                    ),
                )
            }),
        None => match with_points.as_slice() {
            [c] => Ok(c),
            [] => Err(Error::parse(
                path,
                0,
                format!(
                    "categories: none of the {} categories has keypoint names",
                    categories.len()
                ),
            )),
            _ => Err(Error::arg(
                "category",
                format!(
                    "{} has several categories with keypoints: {}; choose one",
                    path.display(),
                    list()
                ),
            )),
        },
    }
}

/// Loads a COCO keypoints JSON file (see the module docs).
///
/// Errors: the file cannot be read or is larger than `opts.limits.max_file_bytes`; JSON
/// syntax or types ([`Error::Json`]); more images or annotations than
/// `opts.limits.max_samples`, more keypoints than `opts.limits.max_points`; no category with
/// keypoints, several and none chosen, or the chosen one absent; a repeated image id. Per
/// annotation (or skipped with `opts.skip_bad`, naming `annotations[i]`): an unknown
/// `image_id`, a `keypoints` list that is missing or not 3 x K values, a visibility other
/// than 0, 1 or 2, a coordinate out of the range of 32-bit floats, a `bbox` that is not 4
/// numbers with `w, h >= 0`, an `iscrowd` other than 0 or 1, a declared image size above the
/// limits, a missing, unreadable, oversized or truncated image, or an image whose size is not
/// the declared one. No samples: [`Error::EmptyDataset`], or [`Error::NothingLoaded`] when
/// every annotation of the category was bad.
pub fn load(path: &Path, opts: &LoadOptions, copts: &CocoOptions) -> Result<(Dataset, LoadReport)> {
    let text = read_text(path, &opts.limits)?;
    let file: CocoFile = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    drop(text);
    opts.limits
        .check_samples(path, file.annotations.len() as u64)?;
    opts.limits.check_samples(path, file.images.len() as u64)?;
    let cat = choose_category(path, &file.categories, copts.category.as_deref())?;
    let k = cat.keypoints.len();
    opts.limits.check_points(
        path,
        0,
        &format!("the keypoints of category `{}`", cat.name),
        k as u64,
    )?;
    let mut images: HashMap<i64, usize> = HashMap::with_capacity(file.images.len());
    for (j, im) in file.images.iter().enumerate() {
        if let Some(first) = images.insert(im.id, j) {
            return Err(Error::parse(
                path,
                0,
                format!("images[{j}].id: {} repeats images[{first}].id", im.id),
            ));
        }
    }
    let root = copts
        .image_root
        .clone()
        .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut checked: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut report = LoadReport::default();
    let mut samples = Vec::new();
    for (i, a) in file.annotations.iter().enumerate() {
        report.entries += 1;
        if a.category_id != cat.id {
            report.filtered += 1;
            continue;
        }
        let r = (|| -> Result<Option<Sample>> {
            let at = |field: &str, message: String| {
                Error::parse(path, 0, format!("annotations[{i}].{field}: {message}"))
            };
            match a.iscrowd {
                0 => {}
                1 => return Ok(None),
                v => return Err(at("iscrowd", format!("{v}, expected 0 or 1"))),
            }
            let j = *images.get(&a.image_id).ok_or_else(|| {
                at(
                    "image_id",
                    format!("{} is not the id of an image", a.image_id),
                )
            })?;
            let kp = a
                .keypoints
                .as_ref()
                .ok_or_else(|| at("keypoints", format!("missing, expected 3 x {k} values")))?;
            if kp.len() != 3 * k {
                return Err(at(
                    "keypoints",
                    format!("{} values, expected 3 x {k}", kp.len()),
                ));
            }
            let mut points = Vec::with_capacity(k);
            let mut visible = Vec::with_capacity(k);
            for (p, t) in kp.chunks(3).enumerate() {
                let pt = [t[0] as f32, t[1] as f32];
                if !(pt[0].is_finite() && pt[1].is_finite()) {
                    return Err(at(
                        &format!("keypoints[{}]", 3 * p),
                        format!(
                            "point {p} ({:?}, {:?}) is out of the range of 32-bit floats",
                            t[0], t[1]
                        ),
                    ));
                }
                let v = t[2];
                if v != 0.0 && v != 1.0 && v != 2.0 {
                    return Err(at(
                        &format!("keypoints[{}]", 3 * p + 2),
                        format!("visibility {v} of point {p}, expected 0, 1 or 2"),
                    ));
                }
                points.push(pt);
                visible.push(v != 0.0);
            }
            if !copts.keep_unlabelled && !visible.iter().any(|&v| v) {
                return Ok(None);
            }
            let bbox = match &a.bbox {
                None => None,
                Some(b) => {
                    let ok = b.len() == 4
                        && b.iter().all(|v| (*v as f32).is_finite())
                        && b[2] >= 0.0
                        && b[3] >= 0.0
                        && ((b[0] + b[2]) as f32).is_finite()
                        && ((b[1] + b[3]) as f32).is_finite();
                    if !ok {
                        return Err(at(
                            "bbox",
                            format!("{b:?}, expected 4 finite numbers x, y, w, h with w, h >= 0"),
                        ));
                    }
                    Some([
                        b[0] as f32,
                        b[1] as f32,
                        (b[0] + b[2]) as f32,
                        (b[1] + b[3]) as f32,
                    ])
                }
            };
            let im = &file.images[j];
            let img = resolve_in(&root, &im.file_name);
            let declared = match (im.width, im.height) {
                (Some(w), Some(h)) => {
                    opts.limits.check_image(path, 0, w, h).map_err(|e| {
                        Error::parse(path, 0, format!("images[{j}] (width, height): {e}"))
                    })?;
                    Some((w as usize, h as usize))
                }
                _ => None,
            };
            let size = if opts.check_images {
                let size = match checked.get(&j) {
                    Some(&s) => s,
                    None => image_size(&img, path, 0, &opts.limits)?,
                };
                if let Some(d) = declared {
                    if d != size {
                        return Err(Error::parse(
                            path,
                            0,
                            format!(
                                "images[{j}] (`{}`): declared {}x{}, the file is {}x{}",
                                im.file_name, d.0, d.1, size.0, size.1
                            ),
                        ));
                    }
                }
                checked.insert(j, size);
                Some(size)
            } else {
                declared
            };
            let mut s = Sample::new(ImageSource::File(img), points);
            s.visible = visible;
            s.image_size = size;
            s.bbox = bbox;
            s.subject = Some(format!("image {}", im.id));
            s.path = Some(path.to_path_buf());
            Ok(Some(s))
        })();
        match r {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => report.filtered += 1,
            Err(e) => report.skip_or_fail(opts, path, e)?,
        }
    }
    let meta = DatasetMeta {
        name: path.display().to_string(),
        layout: Layout::Generic {
            n: k,
            flip: flip_from_names(&cat.keypoints),
        },
        classes: Default::default(),
        reals: Default::default(),
    };
    let d = report.dataset(samples, meta)?;
    Ok((d, report))
}
