//! Normalised mean error (NME) of landmark predictions, with every normaliser the paper
//! (Honari et al., CVPR 2018) and its peers use.
//!
//! # Conventions
//! - A point is `[x, y]` in **pixels** (x the column, y the row; the workspace convention).
//!   An image's landmarks are a `&[[f64; 2]]` of length K; an optional visibility mask is a
//!   `&[bool]` of length K (`true` = visible / labelled, counted in the error).
//! - Landmark **indices in code are 0-based**. The docs also give the one-based numbers the
//!   papers use (iBUG 68-point points 1..68, HGR1 points 1..25, MTFL points 1..5).
//! - The per-image error is `mean_k ||pred_k - gt_k|| / d` over visible landmarks k, where
//!   `d` is the normaliser's length in pixels computed from the **ground truth**. The result
//!   is a **fraction** of `d` (multiply by 100, e.g. with [`crate::to_percent`], for the
//!   percentages the paper reports), except for [`Normalizer::Pixels`] (d = 1: pixels).

use serde::{Deserialize, Serialize};

use crate::error::{check_len, check_nonempty, Error, Result};
use crate::stats::percentiles;

/// A 2-D point `[x, y]` in pixels.
pub type Point = [f64; 2];

/// The length an error is divided by. Every variant is computed from the ground-truth
/// landmarks of one image (or given explicitly for that image), in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Normalizer {
    /// Distance between the two eye centres of the iBUG / 300W / Multi-PIE 68-point layout,
    /// each eye centre the mean of its six points: one-based points 37-42 (the subject's
    /// right eye, on the image's left in a frontal face) and 43-48 (the subject's left eye);
    /// 0-based indices `36..42` and `42..48`. The paper's 300W and Multi-PIE normaliser.
    /// Needs K = 68 (K >= 48 is accepted).
    EyeCentres68,
    /// Distance between the two eye centres of the 5-point MTFL layout: one-based points 1
    /// and 2 (0-based 0 and 1) are the eye centres (then nose tip and mouth corners).
    EyeCentres5,
    /// Outer-eye-corner ("inter-ocular") distance of the 68-point layout, the other common
    /// 300W convention: one-based point 37 (0-based 36), the outer corner of the subject's
    /// right eye, and point 46 (0-based 45), the outer corner of the subject's left eye.
    OuterEyeCorners68,
    /// HGR1 wrist width: distance between one-based points 1 and 25 (0-based 0 and 24).
    WristWidth,
    /// Face size `sqrt(width * height)` of a given face box (AFLW), `width`, `height` in
    /// pixels. See [`Normalizer::face_size_from_box`].
    FaceSize {
        /// Box width in pixels.
        width: f64,
        /// Box height in pixels.
        height: f64,
    },
    /// Face size `sqrt(w * h)` of the bounding box of the visible ground-truth landmarks
    /// (`w = max x - min x`, `h = max y - min y`), for data without a face box.
    FaceSizeOfLandmarks,
    /// Diagonal `sqrt(width^2 + height^2)` of a given box, in pixels.
    BoxDiagonal {
        /// Box width in pixels.
        width: f64,
        /// Box height in pixels.
        height: f64,
    },
    /// Diagonal of the bounding box of the visible ground-truth landmarks.
    BoxDiagonalOfLandmarks,
    /// No normalisation (d = 1): errors in plain pixels (the paper's Blocks tables).
    Pixels,
    /// Custom: distance between the ground-truth landmarks with these **0-based** indices.
    Points(usize, usize),
}

impl Normalizer {
    /// [`Normalizer::FaceSize`] of the box with corners `(x_min, y_min)`, `(x_max, y_max)`
    /// in pixels (`width = x_max - x_min`, `height = y_max - y_min`).
    pub fn face_size_from_box(x_min: f64, y_min: f64, x_max: f64, y_max: f64) -> Normalizer {
        Normalizer::FaceSize {
            width: x_max - x_min,
            height: y_max - y_min,
        }
    }

    /// [`Normalizer::BoxDiagonal`] of the box with corners `(x_min, y_min)`, `(x_max, y_max)`.
    pub fn box_diagonal_from_box(x_min: f64, y_min: f64, x_max: f64, y_max: f64) -> Normalizer {
        Normalizer::BoxDiagonal {
            width: x_max - x_min,
            height: y_max - y_min,
        }
    }

    /// The unit the normalised errors of this normaliser come in: [`ErrorUnit::Pixels`] for
    /// [`Normalizer::Pixels`], [`ErrorUnit::Fraction`] otherwise.
    pub fn unit(&self) -> ErrorUnit {
        match self {
            Normalizer::Pixels => ErrorUnit::Pixels,
            _ => ErrorUnit::Fraction,
        }
    }

    /// The normalising length `d` in **pixels** for one image, from its ground-truth
    /// landmarks `gt` (K points) and optional visibility `mask` (K flags).
    ///
    /// Errors: a needed landmark index >= K, a needed landmark masked out, a non-finite
    /// needed coordinate, or `d` not positive and finite (e.g. coincident eye centres).
    ///
    /// ```
    /// use landmark_ssl_metrics::Normalizer;
    /// let gt = [[0.0, 0.0], [3.0, 4.0]];
    /// assert_eq!(Normalizer::EyeCentres5.length(&gt, None).unwrap(), 5.0);
    /// assert_eq!(Normalizer::Pixels.length(&gt, None).unwrap(), 1.0);
    /// ```
    pub fn length(&self, gt: &[Point], mask: Option<&[bool]>) -> Result<f64> {
        const OP: &str = "Normalizer::length";
        if let Some(m) = mask {
            check_len(OP, "mask", "gt", gt.len(), m.len())?;
        }
        let get = |i: usize| -> Result<Point> {
            if i >= gt.len() {
                return Err(Error::LandmarkOutOfRange {
                    op: OP,
                    normalizer: format!("{self:?}"),
                    index: i,
                    num_landmarks: gt.len(),
                });
            }
            if let Some(m) = mask {
                if !m[i] {
                    return Err(Error::NormalizerPointMasked {
                        op: OP,
                        normalizer: format!("{self:?}"),
                        index: i,
                    });
                }
            }
            let p = gt[i];
            for (c, &v) in p.iter().enumerate() {
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        op: OP,
                        arg: "gt",
                        index: 2 * i + c,
                        value: v,
                    });
                }
            }
            Ok(p)
        };
        let centre = |range: std::ops::Range<usize>| -> Result<Point> {
            let n = range.len() as f64;
            let mut c = [0.0; 2];
            for i in range {
                let p = get(i)?;
                c[0] += p[0];
                c[1] += p[1];
            }
            Ok([c[0] / n, c[1] / n])
        };
        let bbox = || -> Result<(f64, f64)> {
            let mut lo = [f64::INFINITY; 2];
            let mut hi = [f64::NEG_INFINITY; 2];
            let mut any = false;
            for i in 0..gt.len() {
                if mask.is_some_and(|m| !m[i]) {
                    continue;
                }
                let p = get(i)?;
                any = true;
                for c in 0..2 {
                    lo[c] = lo[c].min(p[c]);
                    hi[c] = hi[c].max(p[c]);
                }
            }
            if !any {
                return Err(Error::NoVisibleLandmarks { op: OP, arg: "gt" });
            }
            Ok((hi[0] - lo[0], hi[1] - lo[1]))
        };
        let d = match *self {
            Normalizer::EyeCentres68 => dist(centre(36..42)?, centre(42..48)?),
            Normalizer::EyeCentres5 => dist(get(0)?, get(1)?),
            Normalizer::OuterEyeCorners68 => dist(get(36)?, get(45)?),
            Normalizer::WristWidth => dist(get(0)?, get(24)?),
            Normalizer::Points(i, j) => dist(get(i)?, get(j)?),
            Normalizer::FaceSize { width, height } => face_size(width, height),
            Normalizer::BoxDiagonal { width, height } => width.hypot(height),
            Normalizer::FaceSizeOfLandmarks => {
                let (w, h) = bbox()?;
                face_size(w, h)
            }
            Normalizer::BoxDiagonalOfLandmarks => {
                let (w, h) = bbox()?;
                w.hypot(h)
            }
            Normalizer::Pixels => 1.0,
        };
        if d.is_finite() && d > 0.0 {
            Ok(d)
        } else {
            Err(Error::DegenerateNormalizer {
                op: OP,
                normalizer: format!("{self:?}"),
                value: d,
            })
        }
    }
}

fn face_size(width: f64, height: f64) -> f64 {
    if width < 0.0 || height < 0.0 {
        // A negative box side is a caller error; report it as a degenerate normaliser.
        return f64::NAN;
    }
    (width * height).sqrt()
}

fn dist(a: Point, b: Point) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// The unit of an error value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorUnit {
    /// A fraction of the normalising length (0.05 = 5 %).
    Fraction,
    /// Percent of the normalising length (5.0 = 5 %).
    Percent,
    /// Plain pixels ([`Normalizer::Pixels`]).
    Pixels,
}

/// Euclidean error `||pred_k - gt_k||` of every landmark, in **pixels**; `None` where `mask`
/// is `false` (masked landmarks may hold any value, NaN included, in `pred` and `gt`).
///
/// `pred`, `gt`: K points each; `mask`: K flags or `None` (all visible).
/// Errors: length mismatch, K = 0, a non-finite coordinate of a visible landmark.
pub fn landmark_errors(
    pred: &[Point],
    gt: &[Point],
    mask: Option<&[bool]>,
) -> Result<Vec<Option<f64>>> {
    const OP: &str = "landmark_errors";
    check_nonempty(OP, "gt", gt)?;
    check_len(OP, "pred", "gt", gt.len(), pred.len())?;
    if let Some(m) = mask {
        check_len(OP, "mask", "gt", gt.len(), m.len())?;
    }
    let mut out = Vec::with_capacity(gt.len());
    for (k, (p, g)) in pred.iter().zip(gt).enumerate() {
        if mask.is_some_and(|m| !m[k]) {
            out.push(None);
            continue;
        }
        for (arg, pt) in [("pred", p), ("gt", g)] {
            for (c, &v) in pt.iter().enumerate() {
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        op: OP,
                        arg,
                        index: 2 * k + c,
                        value: v,
                    });
                }
            }
        }
        out.push(Some(dist(*p, *g)));
    }
    Ok(out)
}

/// Normalised error of every landmark: [`landmark_errors`] divided by the normaliser's
/// length ([`Normalizer::length`]); a **fraction** (pixels for [`Normalizer::Pixels`]);
/// `None` for masked landmarks.
pub fn normalized_landmark_errors(
    pred: &[Point],
    gt: &[Point],
    mask: Option<&[bool]>,
    normalizer: &Normalizer,
) -> Result<Vec<Option<f64>>> {
    let errors = landmark_errors(pred, gt, mask)?;
    let d = normalizer.length(gt, mask)?;
    Ok(errors.into_iter().map(|e| e.map(|e| e / d)).collect())
}

/// Per-image normalised mean error: the mean over visible landmarks of
/// `||pred_k - gt_k|| / d`, `d` = `normalizer.length(gt, mask)` in pixels. The result is a
/// **fraction** of `d` (0.05 = 5 %; see [`crate::to_percent`]); for [`Normalizer::Pixels`]
/// it is in pixels.
///
/// `pred`, `gt`: K points `[x, y]` in pixels; `mask`: K visibility flags or `None`.
/// Errors: length mismatch, K = 0, no visible landmark, non-finite visible coordinates, a
/// degenerate normaliser (zero length, missing or masked normaliser landmarks).
///
/// ```
/// use landmark_ssl_metrics::{normalized_mean_error, Normalizer};
/// let gt = [[0.0, 0.0], [10.0, 0.0]];
/// let pred = [[1.0, 0.0], [10.0, 3.0]];
/// // errors 1 and 3 pixels, eye distance 10 pixels -> (0.1 + 0.3) / 2
/// let e = normalized_mean_error(&pred, &gt, None, &Normalizer::EyeCentres5).unwrap();
/// assert!((e - 0.2).abs() < 1e-12);
/// ```
pub fn normalized_mean_error(
    pred: &[Point],
    gt: &[Point],
    mask: Option<&[bool]>,
    normalizer: &Normalizer,
) -> Result<f64> {
    let errors = normalized_landmark_errors(pred, gt, mask, normalizer)?;
    let (sum, n) = errors
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), e| (s + e, n + 1));
    if n == 0 {
        return Err(Error::NoVisibleLandmarks {
            op: "normalized_mean_error",
            arg: "mask",
        });
    }
    Ok(sum / n as f64)
}

/// The percentiles (in percent, [0, 100]) that [`ErrorAccumulator::summary`] reports by
/// default.
pub const DEFAULT_PERCENTILES: [f64; 5] = [10.0, 25.0, 75.0, 90.0, 95.0];

/// Summary of per-image normalised errors over a data set. Every value is in `unit`
/// (a fraction of the normaliser, percent after [`ErrorSummary::to_percent`], or pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// The unit of every error value below.
    pub unit: ErrorUnit,
    /// Number of images.
    pub num_images: usize,
    /// Mean of the per-image errors (the NME the papers report).
    pub mean: f64,
    /// Median of the per-image errors.
    pub median: f64,
    /// Population standard deviation of the per-image errors.
    pub std: f64,
    /// `(p, value)` pairs: the p-th percentile (p in percent) of the per-image errors.
    pub percentiles: Vec<(f64, f64)>,
    /// Mean normalised error of each landmark over the images where it is visible; `None`
    /// for a landmark never visible.
    pub per_landmark_mean: Vec<Option<f64>>,
    /// Number of images in which each landmark is visible.
    pub per_landmark_count: Vec<usize>,
}

impl ErrorSummary {
    /// The same summary in percent (every error value times 100). An error if the unit is
    /// already [`ErrorUnit::Percent`] or is [`ErrorUnit::Pixels`] (pixels have no percent).
    pub fn to_percent(&self) -> Result<ErrorSummary> {
        if self.unit != ErrorUnit::Fraction {
            return Err(Error::InvalidArgument {
                op: "ErrorSummary::to_percent",
                arg: "self.unit",
                value: format!("{:?}", self.unit),
                reason: "only a summary in fractions converts to percent",
            });
        }
        let s = 100.0;
        Ok(ErrorSummary {
            unit: ErrorUnit::Percent,
            num_images: self.num_images,
            mean: self.mean * s,
            median: self.median * s,
            std: self.std * s,
            percentiles: self.percentiles.iter().map(|&(p, v)| (p, v * s)).collect(),
            per_landmark_mean: self
                .per_landmark_mean
                .iter()
                .map(|v| v.map(|v| v * s))
                .collect(),
            per_landmark_count: self.per_landmark_count.clone(),
        })
    }
}

/// Accumulates per-image normalised errors over a data set (streaming: push image by
/// image, then summarise). All images must have the same number of landmarks K, and
/// normalisers of the same unit (all [`Normalizer::Pixels`] or none).
///
/// ```
/// use landmark_ssl_metrics::{ErrorAccumulator, Normalizer};
/// let mut acc = ErrorAccumulator::new();
/// let gt = [[0.0, 0.0], [10.0, 0.0]];
/// acc.push(&[[1.0, 0.0], [10.0, 0.0]], &gt, None, &Normalizer::EyeCentres5).unwrap();
/// acc.push(&[[0.0, 0.0], [10.0, 3.0]], &gt, None, &Normalizer::EyeCentres5).unwrap();
/// let s = acc.summary().unwrap();
/// assert!((s.mean - 0.1).abs() < 1e-12); // images: 0.05 and 0.15
/// assert!((s.to_percent().unwrap().mean - 10.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ErrorAccumulator {
    per_image: Vec<f64>,
    landmark_sum: Vec<f64>,
    landmark_count: Vec<usize>,
    unit: Option<ErrorUnit>,
}

impl ErrorAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one image (see [`normalized_mean_error`] for the arguments and errors); returns
    /// its normalised mean error. On error nothing is added.
    pub fn push(
        &mut self,
        pred: &[Point],
        gt: &[Point],
        mask: Option<&[bool]>,
        normalizer: &Normalizer,
    ) -> Result<f64> {
        const OP: &str = "ErrorAccumulator::push";
        if !self.per_image.is_empty() {
            check_len(
                OP,
                "gt",
                "previous images",
                self.landmark_sum.len(),
                gt.len(),
            )?;
        }
        if let Some(unit) = self.unit {
            if unit != normalizer.unit() {
                return Err(Error::InvalidArgument {
                    op: OP,
                    arg: "normalizer",
                    value: format!("{normalizer:?}"),
                    reason: "cannot mix Normalizer::Pixels with length normalisers",
                });
            }
        }
        let errors = normalized_landmark_errors(pred, gt, mask, normalizer)?;
        let (sum, n) = errors
            .iter()
            .flatten()
            .fold((0.0, 0usize), |(s, n), e| (s + e, n + 1));
        if n == 0 {
            return Err(Error::NoVisibleLandmarks {
                op: OP,
                arg: "mask",
            });
        }
        if self.per_image.is_empty() {
            self.landmark_sum = vec![0.0; gt.len()];
            self.landmark_count = vec![0; gt.len()];
            self.unit = Some(normalizer.unit());
        }
        for (k, e) in errors.iter().enumerate() {
            if let Some(e) = e {
                self.landmark_sum[k] += e;
                self.landmark_count[k] += 1;
            }
        }
        let nme = sum / n as f64;
        self.per_image.push(nme);
        Ok(nme)
    }

    /// The per-image normalised mean errors pushed so far, in push order.
    pub fn per_image(&self) -> &[f64] {
        &self.per_image
    }

    /// Number of images pushed.
    pub fn len(&self) -> usize {
        self.per_image.len()
    }

    /// Whether no image was pushed.
    pub fn is_empty(&self) -> bool {
        self.per_image.is_empty()
    }

    /// Summary with [`DEFAULT_PERCENTILES`]. Errors if no image was pushed.
    pub fn summary(&self) -> Result<ErrorSummary> {
        self.summary_with(&DEFAULT_PERCENTILES)
    }

    /// Summary with the given percentiles (`ps` in percent, [0, 100]).
    pub fn summary_with(&self, ps: &[f64]) -> Result<ErrorSummary> {
        const OP: &str = "ErrorAccumulator::summary";
        check_nonempty(OP, "per_image", &self.per_image)?;
        let v = &self.per_image;
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / n).sqrt();
        let median = percentiles(v, &[50.0])?[0];
        let pv = percentiles(v, ps)?;
        Ok(ErrorSummary {
            unit: self.unit.unwrap_or(ErrorUnit::Fraction),
            num_images: v.len(),
            mean,
            median,
            std,
            percentiles: ps.iter().copied().zip(pv).collect(),
            per_landmark_mean: self
                .landmark_sum
                .iter()
                .zip(&self.landmark_count)
                .map(|(&s, &c)| (c > 0).then(|| s / c as f64))
                .collect(),
            per_landmark_count: self.landmark_count.clone(),
        })
    }
}

/// Per-image normalised mean errors of a whole data set at once: image i uses `preds[i]`,
/// `gts[i]`, `masks[i]` (if `masks` is given) and `normalizers[i]` (one per image, or a
/// single one for all images). Returns the [`ErrorAccumulator`] (per-image errors and
/// [`ErrorAccumulator::summary`]).
pub fn evaluate_images<P, G, M>(
    preds: &[P],
    gts: &[G],
    masks: Option<&[M]>,
    normalizers: &[Normalizer],
) -> Result<ErrorAccumulator>
where
    P: AsRef<[Point]>,
    G: AsRef<[Point]>,
    M: AsRef<[bool]>,
{
    const OP: &str = "evaluate_images";
    check_nonempty(OP, "gts", gts)?;
    check_len(OP, "preds", "gts", gts.len(), preds.len())?;
    if let Some(m) = masks {
        check_len(OP, "masks", "gts", gts.len(), m.len())?;
    }
    if normalizers.len() != 1 {
        check_len(OP, "normalizers", "gts", gts.len(), normalizers.len())?;
    }
    let mut acc = ErrorAccumulator::new();
    for i in 0..gts.len() {
        let norm = if normalizers.len() == 1 {
            &normalizers[0]
        } else {
            &normalizers[i]
        };
        acc.push(
            preds[i].as_ref(),
            gts[i].as_ref(),
            masks.map(|m| m[i].as_ref()),
            norm,
        )?;
    }
    Ok(acc)
}
