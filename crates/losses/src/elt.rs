//! The equivariant landmark transformation (ELT) cost of Eq. 2:
//! `alpha/K sum_k ||T(L_k(I)) - L_k(T(I))||^2`.
//!
//! T is a small random affine transform of pixel coordinates. The image is warped by T
//! (`ops::warp_images`, same output size) and located again; the model's own prediction on
//! the original image, transformed by T (`ops::transform_points`), is the target. No label
//! is needed, so the term applies to unlabelled images.

use candle_core::{DType, Tensor};
use landmark_ssl_ops::{
    affine_to_tensor, normalize_images, transform_points, warp_images, Affine2,
};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{check, Error, Result};

/// How ELT draws its transforms and forms its cost.
///
/// The paper only says "a small affine coordinate transformation" and gives no range. The
/// defaults follow the paper's own per-epoch jitter of the real datasets (rotation
/// +-20 degrees for hands and Multi-PIE, scale and translation +-10%): a range the models
/// are meant to be robust to, and small enough that most landmarks stay in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EltConfig {
    /// Rotation angle drawn uniformly in `[-max_rotation_deg, max_rotation_deg]` degrees,
    /// about the image centre `((W-1)/2, (H-1)/2)`. Default 20.
    pub max_rotation_deg: f64,
    /// Isotropic scale drawn uniformly in `[min_scale, max_scale]`, about the image centre.
    /// Default 0.9.
    pub min_scale: f64,
    /// Default 1.1.
    pub max_scale: f64,
    /// Translation drawn uniformly in `[-max_translation, max_translation]` times the image
    /// width (x) and height (y), in pixels after the rotation and scale. Default 0.1.
    pub max_translation: f64,
    /// How many transforms per image (each adds its own terms). Default 1.
    pub transforms_per_image: usize,
    /// Detach the target `T(L(I))` (gradient only through `L(T(I))`). Default false: Eq. 2
    /// as written, where the gradient flows through both branches; the paper does not say.
    pub detach_target: bool,
    /// A term is dropped when `T(L_k(I))` lies outside the image shrunk by `margin` pixels
    /// on each side: kept when `-0.5 + margin <= x <= W - 0.5 - margin` and likewise for y.
    /// Default 0 (exactly the image; a positive margin also drops points that T pushes to
    /// the border, where a soft-argmax cannot follow them; a negative one tolerates points
    /// slightly outside).
    pub margin: f64,
    /// How a term's distance `d = ||T(L_k(I)) - L_k(T(I))||` (pixels) is penalised.
    /// Default [`EltPenalty::Squared`] (Eq. 2).
    pub penalty: EltPenalty,
}

/// The penalty of one ELT term, as a function of its distance `d` in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum EltPenalty {
    /// `d^2` (squared pixels), the paper's Eq. 2.
    #[default]
    Squared,
    /// `d^2` up to `delta` pixels, then `2 delta d - delta^2`: the same value and slope at
    /// `delta`, and a gradient bounded by `2 delta` beyond it, so that a rare large error
    /// (a landmark confused with another on a warped image) does not outweigh the rest.
    Huber {
        /// The distance (pixels, > 0) where the penalty turns linear.
        delta: f64,
    },
}

/// The images ELT warps, with how the data pipeline made them.
///
/// A warped image must be the image the pipeline would have made from the warped
/// original: outside the original frame it is black (each channel filled with its
/// `pad_values` entry, the value black has in that channel of `images`), and when the
/// pipeline normalises each image, the warped image is normalised again, per channel
/// ([`landmark_ssl_ops::normalize_images`]). Without this, a warp of a
/// normalised image fills with 0, a grey wedge with a slanted edge that no training image
/// has, and the network is asked to be equivariant to that artefact.
#[derive(Debug, Clone, Copy)]
pub struct EltImages<'a> {
    /// (B, C, H, W) float images, as the model saw them.
    pub images: &'a Tensor,
    /// Per image, the value of a pixel outside the original image: (B, C), one value per
    /// channel (the data crate's `Batch::pad_values`), or (B,), one value for every channel
    /// (grey images); `None`: 0.
    pub pad_values: Option<&'a Tensor>,
    /// Normalise each warped image per channel (zero mean, unit standard deviation over
    /// H, W).
    pub renormalize: bool,
}

impl<'a> From<&'a Tensor> for EltImages<'a> {
    /// Images filled with 0 outside the frame, not normalised again.
    fn from(images: &'a Tensor) -> Self {
        Self {
            images,
            pad_values: None,
            renormalize: false,
        }
    }
}

impl Default for EltConfig {
    fn default() -> Self {
        Self {
            max_rotation_deg: 20.0,
            min_scale: 0.9,
            max_scale: 1.1,
            max_translation: 0.1,
            transforms_per_image: 1,
            detach_target: false,
            margin: 0.0,
            penalty: EltPenalty::Squared,
        }
    }
}

impl EltConfig {
    /// ELT sized for generated Blocks, whose figures fill most of the 60x60 frame: rotation
    /// +-10 degrees, scale 0.95-1.05, shifts of +-5% (3 px), a 2 px margin, and the
    /// [`EltPenalty::Huber`] penalty with `delta` 3 px. With [`EltConfig::default`]'s
    /// face-sized ranges, about one warp in ten cut the figure (the only cue to its
    /// orientation), and the errors on those warps, up to the length of the figure,
    /// dominated the gradient: docs/experiments/blocks.md, "Why L+ELT+A fell back".
    pub fn blocks() -> Self {
        Self {
            max_rotation_deg: 10.0,
            min_scale: 0.95,
            max_scale: 1.05,
            max_translation: 0.05,
            margin: 2.0,
            penalty: EltPenalty::Huber { delta: 3.0 },
            ..Self::default()
        }
    }

    /// Checks that the ranges are finite and ordered (`0 < min_scale <= max_scale`,
    /// `max_rotation_deg >= 0`, `max_translation >= 0`, `transforms_per_image >= 1`).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, v: f64, reason: &'static str| Error::InvalidArgument {
            context: "EltConfig",
            field,
            value: v.to_string(),
            reason,
        };
        if !self.max_rotation_deg.is_finite() || self.max_rotation_deg < 0.0 {
            return Err(bad(
                "max_rotation_deg",
                self.max_rotation_deg,
                "must be finite and >= 0",
            ));
        }
        if !self.min_scale.is_finite() || self.min_scale <= 0.0 {
            return Err(bad("min_scale", self.min_scale, "must be finite and > 0"));
        }
        if !self.max_scale.is_finite() || self.max_scale < self.min_scale {
            return Err(bad(
                "max_scale",
                self.max_scale,
                "must be finite and >= min_scale",
            ));
        }
        if !self.max_translation.is_finite() || self.max_translation < 0.0 {
            return Err(bad(
                "max_translation",
                self.max_translation,
                "must be finite and >= 0",
            ));
        }
        if self.transforms_per_image == 0 {
            return Err(bad("transforms_per_image", 0.0, "must be >= 1"));
        }
        if !self.margin.is_finite() {
            return Err(bad("margin", self.margin, "must be finite"));
        }
        if let EltPenalty::Huber { delta } = self.penalty {
            if !delta.is_finite() || delta <= 0.0 {
                return Err(bad("penalty.delta", delta, "must be finite and > 0"));
            }
        }
        Ok(())
    }
}

/// The result of [`Elt::loss`].
#[derive(Debug, Clone)]
pub struct EltOutput {
    /// The unweighted cost (scalar tensor): the mean over the kept terms of the penalty of
    /// `||T(L_k(I)) - L_k(T(I))||` (squared pixels with [`EltPenalty::Squared`]); 0 when
    /// no term is kept.
    pub loss: Tensor,
    /// Per (transform, landmark), transform-major (M * K values): the squared distance
    /// `||T(L_k(I)) - L_k(T(I))||^2` in squared pixels, NaN where the term was dropped.
    pub sq_distances: Vec<f32>,
    /// The number of kept terms (image, transform, landmark).
    pub n_terms: usize,
    /// The number of terms dropped because T moved the point out of the image.
    pub n_dropped: usize,
    /// The number of images the term was applied to (`sample_mask` 1).
    pub n_images: usize,
    /// The transforms used, one per (selected image, draw), image-major.
    pub transforms: Vec<Affine2>,
    /// The batch index of the image of each transform.
    pub sample_indices: Vec<usize>,
}

/// The ELT cost with its configuration.
#[derive(Debug, Clone, Default)]
pub struct Elt {
    /// The configuration.
    pub config: EltConfig,
}

fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

impl Elt {
    /// An ELT cost with `config` (validated).
    pub fn new(config: EltConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Draws `n` transforms for images of size (`height`, `width`): each rotates by an
    /// angle uniform in +-`max_rotation_deg` and scales by a factor uniform in
    /// `[min_scale, max_scale]` about the image centre `((W-1)/2, (H-1)/2)`, then
    /// translates by `(u W, v H)` pixels with u, v uniform in +-`max_translation`. The
    /// matrices map source pixels to destination pixels (`ops::Affine2`).
    pub fn sample_transforms<R: Rng + ?Sized>(
        &self,
        n: usize,
        height: usize,
        width: usize,
        rng: &mut R,
    ) -> Vec<Affine2> {
        let c = &self.config;
        let centre = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
        (0..n)
            .map(|_| {
                let angle = uniform(rng, -c.max_rotation_deg, c.max_rotation_deg).to_radians();
                let scale = uniform(rng, c.min_scale, c.max_scale);
                let tx = uniform(rng, -c.max_translation, c.max_translation) * width as f64;
                let ty = uniform(rng, -c.max_translation, c.max_translation) * height as f64;
                Affine2::from_params(angle, scale, tx, ty, centre)
            })
            .collect()
    }

    /// The ELT cost with freshly drawn transforms: `transforms_per_image` per image whose
    /// `sample_mask` is 1 (see [`Self::sample_transforms`]), then [`Self::loss_with`].
    ///
    /// * `locate`: the model, mapping images (M, C, H, W) to landmarks (M, K, 2) in pixels.
    /// * `images`: (B, C, H, W) float, the images `landmarks` were predicted on (a
    ///   `&Tensor`, filled with 0 outside the frame, or an [`EltImages`] that says how the
    ///   pipeline made them).
    /// * `landmarks`: (B, K, 2) the model's predictions on `images` (with their graph).
    /// * `sample_mask`: (B,) 1 for the images the term applies to: the unlabelled ones
    ///   (the paper's Blocks, HGR1, Multi-PIE) or all (300W); the caller picks.
    pub fn loss<'a, F, R>(
        &self,
        locate: F,
        images: impl Into<EltImages<'a>>,
        landmarks: &Tensor,
        sample_mask: &Tensor,
        rng: &mut R,
    ) -> Result<EltOutput>
    where
        F: FnMut(&Tensor) -> candle_core::Result<Tensor>,
        R: Rng + ?Sized,
    {
        const F: &str = "Elt::loss";
        let images = images.into();
        let dims = check::rank(F, "images", images.images, 4, "(B, C, H, W) images")?;
        let (b, h, w) = (dims[0], dims[2], dims[3]);
        check::dims(F, "sample_mask", sample_mask, &[b], "(B,) like `images`")?;
        let n_sel = check::mask_to_host(sample_mask)?
            .iter()
            .filter(|&&m| m)
            .count();
        let transforms =
            self.sample_transforms(n_sel * self.config.transforms_per_image, h, w, rng);
        self.loss_with(locate, images, landmarks, sample_mask, &transforms)
    }

    /// The ELT cost with given transforms (deterministic; what [`Self::loss`] calls).
    ///
    /// `transforms` holds `transforms_per_image` matrices per selected image (sample_mask
    /// 1), image-major: for the i-th selected image, `transforms[i * n_T .. (i + 1) * n_T]`.
    /// For each (image b, transform T) the image is warped by T to the same size, `locate`
    /// runs once on all warped images together, and the terms
    /// `||T(L_k(I_b)) - L_k(T(I_b))||^2` are kept where `T(L_k(I_b))` is inside the image
    /// (see [`EltConfig::margin`]; non-finite points are dropped too).
    ///
    /// **Normalisation.** The cost is the sum of the kept terms divided by their number
    /// (`max(1, n_terms)`): for a batch where every point stays inside, this is
    /// `1/N_elt sum_I 1/(K n_T) sum_{T,k} ||.||^2`, the paper's `alpha/K` per image averaged
    /// over the N_elt images the term applies to (the paper's `1/N` runs over all images;
    /// here the unselected ones do not dilute the term, so alpha keeps its meaning whatever
    /// the share of unlabelled images in a batch).
    ///
    /// The gradient flows into the model's parameters through `locate` (the warped branch)
    /// and through `landmarks` (the target branch), unless `detach_target` is set.
    pub fn loss_with<'a, F>(
        &self,
        mut locate: F,
        images: impl Into<EltImages<'a>>,
        landmarks: &Tensor,
        sample_mask: &Tensor,
        transforms: &[Affine2],
    ) -> Result<EltOutput>
    where
        F: FnMut(&Tensor) -> candle_core::Result<Tensor>,
    {
        const F: &str = "Elt::loss";
        self.config.validate()?;
        let EltImages {
            images,
            pad_values,
            renormalize,
        } = images.into();
        let dims = check::rank(F, "images", images, 4, "(B, C, H, W) images")?;
        let (b, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
        check::float(F, "images", images)?;
        // Pad values per image, as (B, 1) (one for every channel) or (B, C).
        let pad_values = match pad_values {
            None => None,
            Some(p) if p.dims() == [b] => Some(p.reshape((b, 1))?),
            Some(p) if p.dims() == [b, c] => Some(p.clone()),
            Some(p) => {
                return Err(Error::Shape {
                    func: F,
                    arg: "pad_values".to_string(),
                    expected: format!("(B, C) = ({b}, {c}) or (B,) = ({b},) like `images`"),
                    got: p.dims().to_vec(),
                })
            }
        };
        let (lb, k) = check::points(F, "landmarks", landmarks)?;
        if lb != b {
            return Err(Error::Shape {
                func: F,
                arg: "landmarks".to_string(),
                expected: format!("(B, K, 2) with B = {b} like `images`"),
                got: landmarks.dims().to_vec(),
            });
        }
        check::float(F, "landmarks", landmarks)?;
        check::dims(F, "sample_mask", sample_mask, &[b], "(B,) like `images`")?;
        let n_t = self.config.transforms_per_image;
        let selected: Vec<usize> = check::mask_to_host(sample_mask)?
            .iter()
            .enumerate()
            .filter_map(|(i, &m)| m.then_some(i))
            .collect();
        let m = selected.len() * n_t;
        if transforms.len() != m {
            return Err(Error::InvalidArgument {
                context: F,
                field: "transforms",
                value: format!("{} matrices", transforms.len()),
                reason: "need transforms_per_image matrices per image whose sample_mask is 1",
            });
        }
        let dtype = landmarks.dtype();
        let device = landmarks.device();
        let sample_indices: Vec<usize> = selected
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i, n_t))
            .collect();
        if m == 0 {
            return Ok(EltOutput {
                loss: Tensor::zeros((), dtype, device)?,
                sq_distances: Vec::new(),
                n_terms: 0,
                n_dropped: 0,
                n_images: 0,
                transforms: Vec::new(),
                sample_indices,
            });
        }
        let idx: Vec<u32> = sample_indices.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, m, images.device())?;
        let imgs = images.detach().index_select(&idx, 0)?; // (M, C, H, W)
        let mats = affine_to_tensor(transforms, images.device())?; // (M, 2, 3) f32
        let warped = match pad_values {
            // warp(I - p) fills with 0, so warp(I - p) + p fills with p, channel by channel.
            Some(p) => {
                let pc = p.dim(1)?;
                let p = p
                    .detach()
                    .to_dtype(imgs.dtype())?
                    .index_select(&idx, 0)?
                    .reshape((m, pc, 1, 1))?;
                warp_images(&imgs.broadcast_sub(&p)?, &mats, h, w)?.broadcast_add(&p)?
            }
            None => warp_images(&imgs, &mats, h, w)?,
        };
        let warped = if renormalize {
            normalize_images(&warped)?
        } else {
            warped
        };
        let located = locate(&warped)?;
        if located.dims() != [m, k, 2] {
            return Err(Error::Shape {
                func: F,
                arg: "locate(warped images)".to_string(),
                expected: format!("(M, K, 2) = ({m}, {k}, 2): one point set per warped image"),
                got: located.dims().to_vec(),
            });
        }
        let located = located.to_dtype(dtype)?;
        let source = landmarks.index_select(&idx.to_device(device)?, 0)?; // (M, K, 2)
        let source = if self.config.detach_target {
            source.detach()
        } else {
            source
        };
        let target = transform_points(&source, &mats.to_device(device)?.to_dtype(dtype)?)?;
        // Keep the terms whose target is inside the (shrunk) image.
        let mg = self.config.margin;
        let t_det = target.detach().to_dtype(DType::F64)?;
        let xs = t_det.narrow(2, 0, 1)?.squeeze(2)?;
        let ys = t_det.narrow(2, 1, 1)?.squeeze(2)?;
        let inside = xs
            .ge(-0.5 + mg)?
            .mul(&xs.le(w as f64 - 0.5 - mg)?)?
            .mul(&ys.ge(-0.5 + mg)?)?
            .mul(&ys.le(h as f64 - 0.5 - mg)?)?; // (M, K) u8
        let n_terms = inside
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?
            .round() as usize;
        let keep = inside.unsqueeze(2)?.broadcast_as((m, k, 2))?.contiguous()?;
        let zeros = target.zeros_like()?;
        let a = keep.where_cond(&target, &zeros)?;
        let bb = keep.where_cond(&located, &zeros)?;
        let sq = (a - bb)?.sqr()?.sum(2)?; // (M, K), 0 where dropped
        let penalty = match self.config.penalty {
            EltPenalty::Squared => sq.clone(),
            EltPenalty::Huber { delta } => {
                let d2 = delta * delta;
                // The linear branch reads max(sq, delta^2), so its square root never sees 0
                // (where its gradient is infinite) on the terms the quadratic branch keeps.
                let linear = sq.maximum(d2)?.sqrt()?.affine(2.0 * delta, -d2)?;
                sq.le(d2)?.where_cond(&sq, &linear)?
            }
        };
        let loss = penalty
            .sum_all()?
            .affine(1.0 / n_terms.max(1) as f64, 0.0)?;
        let kept = inside.flatten_all()?.to_vec1::<u8>()?;
        let sq_distances = sq
            .detach()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .zip(kept)
            .map(|(v, k)| if k == 1 { v } else { f32::NAN })
            .collect();
        Ok(EltOutput {
            loss,
            sq_distances,
            n_terms,
            n_dropped: m * k - n_terms,
            n_images: selected.len(),
            transforms: transforms.to_vec(),
            sample_indices,
        })
    }
}
