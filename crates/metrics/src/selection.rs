//! Attribute selection by adjusted mutual information with the landmarks (supplementary
//! S.5.2 of Honari et al., CVPR 2018; Table S2).
//!
//! For an attribute A and landmark l (over the N images of a data set), with x_l and y_l
//! the landmark's coordinates **discretised uniformly into at most 20 levels** (each
//! coordinate separately, over the images where the landmark is visible) and a real-valued
//! attribute discretised the same way (class attributes are used as they are):
//!
//! `score_l = AMI(A; x_l) + AMI(A; y_l)` (the paper assumes x and y independent:
//! AMI(A; x, y) = AMI(A; x) + AMI(A; y); it measured AMI(x; y) = 0.045 on Multi-PIE).
//!
//! The attribute's score is the **mean** of `score_l` over the landmarks (the paper's
//! formula, Table S2's "AMI, mean"); Table S2 also reports the **max** over landmarks.
//! Note that `score_l` is a *sum* of two AMIs, so it can reach 2 (the paper's values are
//! all below 0.7). AMI is unit-free.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ami::adjusted_mutual_info;
use crate::error::{check_finite, check_len, check_nonempty, Error, Result};
use crate::nme::Point;

/// The number of discretisation levels of supplementary S.5.2 ("at most 20 levels").
pub const PAPER_LEVELS: usize = 20;

/// Uniform discretisation: splits `[min(values), max(values)]` into `levels` bins of equal
/// width and returns each value's bin index in `0..levels` (bin `i` covers
/// `[min + i w, min + (i + 1) w)`, the last bin also holds the maximum). At most `levels`
/// distinct labels come out (fewer when bins are empty); constant input gives all 0.
/// This is `numpy.digitize` with `numpy.linspace(min, max, levels + 1)` edges.
///
/// Errors: empty `values`, a non-finite value, `levels == 0`.
///
/// ```
/// use landmark_ssl_metrics::discretize_uniform;
/// let bins = discretize_uniform(&[0.0, 0.24, 0.25, 0.99, 1.0], 4).unwrap();
/// assert_eq!(bins, vec![0, 0, 1, 3, 3]);
/// ```
pub fn discretize_uniform(values: &[f64], levels: usize) -> Result<Vec<usize>> {
    const OP: &str = "discretize_uniform";
    check_nonempty(OP, "values", values)?;
    check_finite(OP, "values", values)?;
    if levels == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "levels",
            value: "0".to_string(),
            reason: "at least one level is needed",
        });
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    if range <= 0.0 || !range.is_finite() {
        // Constant input, or a range overflowing f64: the latter cannot be split evenly.
        if range.is_finite() {
            return Ok(vec![0; values.len()]);
        }
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "values",
            value: format!("range [{lo}, {hi}]"),
            reason: "the range of the values overflows f64",
        });
    }
    Ok(values
        .iter()
        .map(|&v| {
            let t = (v - lo) / range * levels as f64;
            (t.floor() as usize).min(levels - 1)
        })
        .collect())
}

/// The values of one attribute over the N images.
#[derive(Debug, Clone, Copy)]
pub enum AttributeValues<'a> {
    /// Class labels (any `usize` values), used as they are.
    Classes(&'a [usize]),
    /// Real values (e.g. head-pose yaw in degrees), discretised uniformly into the same
    /// number of levels as the coordinates.
    Real(&'a [f64]),
}

impl AttributeValues<'_> {
    fn len(&self) -> usize {
        match self {
            AttributeValues::Classes(v) => v.len(),
            AttributeValues::Real(v) => v.len(),
        }
    }
}

/// AMI of an attribute with one landmark's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LandmarkAmi {
    /// AMI(A; x) of the landmark's discretised x coordinate.
    pub x: f64,
    /// AMI(A; y) of the landmark's discretised y coordinate.
    pub y: f64,
    /// Number of images in which the landmark is visible (those used).
    pub samples: usize,
}

impl LandmarkAmi {
    /// The landmark's score AMI(A; x) + AMI(A; y).
    pub fn score(&self) -> f64 {
        self.x + self.y
    }
}

/// An attribute's selection score (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeScore {
    /// Per landmark, AMI with x and with y.
    pub per_landmark: Vec<LandmarkAmi>,
    /// Mean over landmarks of AMI(A; x) + AMI(A; y) (Table S2, "AMI, mean").
    pub mean: f64,
    /// Max over landmarks of AMI(A; x) + AMI(A; y) (Table S2, "AMI, max").
    pub max: f64,
}

/// The attribute-selection score of supplementary S.5.2 for one attribute.
///
/// - `attribute`: the attribute of each of the N images;
/// - `landmarks`: N images of K points `[x, y]` (pixels; any unit works, as the
///   coordinates are discretised);
/// - `masks`: optional N masks of K visibility flags; landmark l of image n is used only
///   where `masks[n][l]` is `true` (its AMI is computed over those images);
/// - `levels`: the number of uniform discretisation levels ([`PAPER_LEVELS`] = 20).
///
/// Errors: N = 0 or K = 0, length mismatches (images with different K included), a
/// non-finite coordinate of a visible landmark or attribute value, a landmark visible in
/// fewer than 2 images, `levels == 0`.
pub fn attribute_landmark_ami<L, M>(
    attribute: AttributeValues<'_>,
    landmarks: &[L],
    masks: Option<&[M]>,
    levels: usize,
) -> Result<AttributeScore>
where
    L: AsRef<[Point]> + Sync,
    M: AsRef<[bool]> + Sync,
{
    const OP: &str = "attribute_landmark_ami";
    check_nonempty(OP, "landmarks", landmarks)?;
    check_len(
        OP,
        "attribute",
        "landmarks",
        landmarks.len(),
        attribute.len(),
    )?;
    let k = landmarks[0].as_ref().len();
    if k == 0 {
        return Err(Error::Empty {
            op: OP,
            arg: "landmarks[0]",
        });
    }
    for l in landmarks {
        check_len(OP, "landmarks[n]", "landmarks[0]", k, l.as_ref().len())?;
    }
    if let Some(m) = masks {
        check_len(OP, "masks", "landmarks", landmarks.len(), m.len())?;
        for mn in m {
            check_len(OP, "masks[n]", "landmarks[0]", k, mn.as_ref().len())?;
        }
    }
    if levels == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "levels",
            value: "0".to_string(),
            reason: "at least one level is needed",
        });
    }
    let labels: Vec<usize> = match attribute {
        AttributeValues::Classes(c) => c.to_vec(),
        AttributeValues::Real(v) => {
            check_finite(OP, "attribute", v)?;
            discretize_uniform(v, levels)?
        }
    };
    let per_landmark: Vec<LandmarkAmi> = (0..k)
        .into_par_iter()
        .map(|l| -> Result<LandmarkAmi> {
            let mut a = Vec::with_capacity(landmarks.len());
            let mut xs = Vec::with_capacity(landmarks.len());
            let mut ys = Vec::with_capacity(landmarks.len());
            for (n, pts) in landmarks.iter().enumerate() {
                if masks.is_some_and(|m| !m[n].as_ref()[l]) {
                    continue;
                }
                let p = pts.as_ref()[l];
                for (c, &v) in p.iter().enumerate() {
                    if !v.is_finite() {
                        return Err(Error::NonFinite {
                            op: OP,
                            arg: "landmarks[n] (index = n * 2K + 2l + c)",
                            index: n * 2 * k + 2 * l + c,
                            value: v,
                        });
                    }
                }
                a.push(labels[n]);
                xs.push(p[0]);
                ys.push(p[1]);
            }
            if a.len() < 2 {
                return Err(Error::TooFewSamples {
                    op: OP,
                    what: format!("landmark {l} (0-based)"),
                    got: a.len(),
                    needed: 2,
                });
            }
            let x = adjusted_mutual_info(&a, &discretize_uniform(&xs, levels)?)?;
            let y = adjusted_mutual_info(&a, &discretize_uniform(&ys, levels)?)?;
            Ok(LandmarkAmi {
                x,
                y,
                samples: a.len(),
            })
        })
        .collect::<Result<_>>()?;
    let scores: Vec<f64> = per_landmark.iter().map(LandmarkAmi::score).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(AttributeScore {
        per_landmark,
        mean,
        max,
    })
}
