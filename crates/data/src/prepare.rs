//! Preprocessing and augmentation: square crop, resize, grey or colour, contrast
//! normalisation and per-epoch jitter, all as one affine map from original pixels to crop
//! pixels.
//!
//! # The crop
//! * **Centre and side**: [`crate::crop`] ([`CropMode`], [`crop_box`]).
//! * **Jitter** ([`Augment`], drawn per sample and epoch): side x (1 + U(-scale, scale)),
//!   centre + U(-translate, translate) x side on each axis, rotation U(-R, R) degrees about
//!   the crop centre, horizontal flip with probability 1/2 using the layout's landmark
//!   permutation (layouts without one are never flipped), optional occlusion boxes.
//! * **Map.** `A` sends original pixels to crop pixels (workspace convention, pixel centres
//!   at integers): `p_crop = k R(theta) (p - c) + ((S-1)/2, (S-1)/2)`, `k = S / side`, then
//!   `x -> S - 1 - x` when flipped. The crop's edges `c +- side/2` land on `-0.5` and
//!   `S - 0.5`. The image is resampled with the ops crate's `warp_image_slice` (bilinear,
//!   zero outside the image = zero padding), landmarks with the same `A`.
//! * **Anti-aliasing**: strong downscaling area-averages first (see [`crate::crop`]).
//! * **Channels** ([`Preprocess::channels`], 1 by default): every image is taken with that
//!   many channels (files decoded so, in-memory images converted: grey to RGB repeats the
//!   value, RGB to grey takes the decoder's luma). The crop is planar, C x S x S; the map,
//!   jitter, flip and occlusion act on every channel alike.
//! * **Occlusion** (optional): 1..=`max_boxes` axis-aligned boxes in crop pixels, each side
//!   uniform in [`min_side`, `max_side`] x S, filled with a uniform random grey (the same
//!   value in every channel); landmarks under them stay labelled.
//! * **Normalisation**: values in [0, 1] (8-bit / 255); then, when `normalize`, per image
//!   and per channel `x -> (x - mean) / std` over that channel's S x S crop (zero padding
//!   included); a channel with std below 1e-6 is only centred.
//! * **Masks**: a landmark is kept (`visible`) when it is annotated and its crop position
//!   lies inside the crop (`-0.5 <= x, y <= S - 0.5`).

use std::collections::BTreeMap;

use rand::Rng;

use crate::crop::{crop_box, warp_crop, CropMode};
use crate::error::{Error, Result};
use crate::image_file::check_channels;
use crate::sample::{DatasetMeta, Sample};
use landmark_ssl_ops::Affine2;

/// Deterministic preprocessing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// Output side S (the model input: 60, 64 or 80).
    pub size: usize,
    /// Crop choice.
    pub crop: CropMode,
    /// Per-image zero-mean unit-std normalisation.
    pub normalize: bool,
    /// Area-average before strong downscaling.
    pub antialias: bool,
    /// Channels of the prepared crops: 1 (grey, the default) or 3 (RGB). Every sample's
    /// image is taken with this many (see the module docs).
    pub channels: usize,
}

impl Preprocess {
    /// Whole image at `size`, normalised (the synthetic sets).
    pub fn whole(size: usize) -> Self {
        Preprocess {
            size,
            crop: CropMode::Whole,
            normalize: true,
            antialias: true,
            channels: 1,
        }
    }
    /// Object crop (box x 1.0, else landmarks x 1.4) at `size`, normalised (faces, hands).
    pub fn object(size: usize) -> Self {
        Preprocess {
            size,
            crop: CropMode::Object {
                box_scale: 1.0,
                landmark_scale: 1.4,
            },
            normalize: true,
            antialias: true,
            channels: 1,
        }
    }
}

/// Occlusion boxes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occlusion {
    /// Probability that a sample gets occluded at all.
    pub probability: f32,
    /// At most this many boxes (at least one when occluded).
    pub max_boxes: usize,
    /// Smallest box side, fraction of S.
    pub min_side: f32,
    /// Largest box side, fraction of S.
    pub max_side: f32,
}

/// Per-epoch jitter (the paper: scale and translation +-10% of the box, rotation +-20 or
/// +-30 degrees).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Relative scale jitter (0.1 = +-10%).
    pub scale: f32,
    /// Translation jitter as a fraction of the crop side.
    pub translate: f32,
    /// Maximal rotation in degrees.
    pub rotation_deg: f32,
    /// Random horizontal flips (needs the layout's flip permutation).
    pub flip: bool,
    /// Optional occlusion boxes.
    pub occlusion: Option<Occlusion>,
}

impl Augment {
    /// Checks that every range is finite and non-negative (scale below 1), and that
    /// occlusion has a probability and sides in [0, 1] with `min_side <= max_side`.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("augment.scale", self.scale),
            ("augment.translate", self.translate),
            ("augment.rotation_deg", self.rotation_deg),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::arg(name, format!("{v}: need a finite value >= 0")));
            }
        }
        if self.scale >= 1.0 {
            return Err(Error::arg(
                "augment.scale",
                format!("{}: need < 1 (a relative jitter)", self.scale),
            ));
        }
        if let Some(o) = &self.occlusion {
            let ok = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
            if !(ok(o.probability) && ok(o.min_side) && ok(o.max_side) && o.min_side <= o.max_side)
            {
                return Err(Error::arg(
                    "augment.occlusion",
                    format!("{o:?}: need probability and sides in [0, 1], min_side <= max_side"),
                ));
            }
        }
        Ok(())
    }

    /// The paper's jitter: +-10% scale and translation, +-`rotation_deg`, no flip, no
    /// occlusion.
    pub fn paper(rotation_deg: f32) -> Self {
        Augment {
            scale: 0.1,
            translate: 0.1,
            rotation_deg,
            flip: false,
            occlusion: None,
        }
    }
}

/// One drawn jitter.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Jitter {
    /// Side multiplier.
    pub scale: f64,
    /// Centre shift (fraction of the side) in x and y.
    pub shift: [f64; 2],
    /// Rotation in radians.
    pub angle: f64,
    /// Horizontal flip.
    pub flip: bool,
}

impl Jitter {
    /// No jitter.
    pub fn none() -> Self {
        Jitter {
            scale: 1.0,
            ..Default::default()
        }
    }
    /// Draws a jitter from `aug`; flips only when `can_flip`.
    pub fn draw(aug: &Augment, can_flip: bool, rng: &mut impl Rng) -> Self {
        // Non-finite or non-positive ranges mean "no jitter" (BatchLoader rejects them).
        let u = |rng: &mut dyn rand::RngCore, a: f64| {
            if a.is_finite() && a > 0.0 {
                rng.random_range(-a..a)
            } else {
                0.0
            }
        };
        Jitter {
            scale: 1.0 + u(rng, aug.scale as f64),
            shift: [u(rng, aug.translate as f64), u(rng, aug.translate as f64)],
            angle: u(rng, aug.rotation_deg as f64).to_radians(),
            flip: aug.flip && can_flip && rng.random_bool(0.5),
        }
    }
}

/// A sample ready for a batch: a square crop (grey or colour) and its labels in crop
/// pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedSample {
    /// Index of the sample in its data set.
    pub index: usize,
    /// Crop side S.
    pub size: usize,
    /// Channels C (1 grey, 3 RGB; [`Preprocess::channels`]).
    pub channels: usize,
    /// C x S x S values, planar (channel, row, column), normalised when asked.
    pub image: Vec<f32>,
    /// Per channel (C values): the value that a pixel outside the original image (black)
    /// has in that channel of `image`: 0, or its normalised value when the crop is
    /// normalised. Warps of the crop fill each channel with its own value.
    pub pad_values: Vec<f32>,
    /// Whether `image` was normalised (per image and channel: zero mean, unit standard
    /// deviation).
    pub normalized: bool,
    /// K landmarks (x, y) in crop pixels (flip-permuted when flipped).
    pub landmarks: Vec<[f32; 2]>,
    /// Per landmark: annotated and inside the crop.
    pub visible: Vec<bool>,
    /// Landmark labels usable for training.
    pub has_landmarks: bool,
    /// Class labels by attribute (`None` when the sample has none or attribute labels are
    /// masked out).
    pub classes: BTreeMap<String, Option<u32>>,
    /// Real attributes by name: values (zeros when the sample has none) and whether they
    /// are usable labels.
    pub reals: BTreeMap<String, (Vec<f32>, bool)>,
    /// Original image pixels -> crop pixels (through the sample's `cache_transform` when
    /// its image is a cached crop).
    pub transform: Affine2,
}

/// The crop map for `sample` (image size `(w, h)`): pixels of the sample's image -> crop
/// pixels, jittered by `j` (see the module docs).
pub fn crop_transform(
    sample: &Sample,
    w: usize,
    h: usize,
    pre: &Preprocess,
    j: &Jitter,
) -> Affine2 {
    let (c, side) = crop_box(sample, w, h, &pre.crop);
    let side = (side * j.scale).max(1e-3);
    let c = [c[0] + j.shift[0] * side, c[1] + j.shift[1] * side];
    let s = pre.size as f64;
    let k = s / side;
    let o = (s - 1.0) / 2.0;
    let (sn, cs) = j.angle.sin_cos();
    let mut m = [
        k * cs,
        -k * sn,
        o - k * (cs * c[0] - sn * c[1]),
        k * sn,
        k * cs,
        o - k * (sn * c[0] + cs * c[1]),
    ];
    if j.flip {
        m[0] = -m[0];
        m[1] = -m[1];
        m[2] = (s - 1.0) - m[2];
    }
    Affine2 { m }
}

/// Crops, resizes and (optionally) jitters one sample of a data set described by `meta`
/// (whose layout gives the flip permutation, used only when `jitter.flip`, and whose
/// attributes are all present in the result, masked when the sample lacks them); `index`
/// is stored in the result.
///
/// Errors: the image cannot be decoded ([`Error::Image`], [`Error::Io`]), the sample's
/// landmark and visibility counts differ, the size is 0, or the channel count is not 1 or 3.
pub fn prepare(
    sample: &Sample,
    index: usize,
    meta: &DatasetMeta,
    pre: &Preprocess,
    jitter: &Jitter,
    occlusion: Option<(&Occlusion, &mut dyn rand::RngCore)>,
) -> Result<PreparedSample> {
    let flip_perm = meta.layout.flip_permutation();
    if pre.size == 0 {
        return Err(Error::arg("size", "crop size must be positive"));
    }
    check_channels("preprocess.channels", pre.channels)?;
    let k = sample.landmarks.len();
    if sample.visible.len() != k {
        return Err(Error::BadSample {
            index,
            message: format!(
                "{} landmarks but {} visibility flags",
                k,
                sample.visible.len()
            ),
        });
    }
    let img = sample.load_image_with_channels(pre.channels)?;
    let a = crop_transform(sample, img.width, img.height, pre, jitter);
    let mut pixels = warp_crop(&img, &a, pre.size, pre.antialias);
    let s = pre.size;
    if let Some((occ, rng)) = occlusion {
        occlude(&mut pixels, s, occ, rng);
    }
    // Pixels outside the original image are black (0) before normalisation; each channel
    // is normalised over its own plane.
    let pad_values = pixels
        .chunks_mut(s * s)
        .map(|plane| {
            if pre.normalize {
                let (mean, scale) = normalize(plane);
                (-mean * scale) as f32
            } else {
                0.0
            }
        })
        .collect();
    // Landmarks.
    let lim = s as f32 - 0.5;
    let mut lm: Vec<[f32; 2]> = Vec::with_capacity(k);
    let mut vis: Vec<bool> = Vec::with_capacity(k);
    for (p, &v) in sample.landmarks.iter().zip(&sample.visible) {
        let (x, y) = a.apply(p[0] as f64, p[1] as f64);
        let (x, y) = (x as f32, y as f32);
        let finite = x.is_finite() && y.is_finite();
        lm.push(if finite { [x, y] } else { [0.0, 0.0] });
        vis.push(v && finite && (-0.5..=lim).contains(&x) && (-0.5..=lim).contains(&y));
    }
    if jitter.flip {
        if let Some(perm) = flip_perm.as_ref().filter(|p| p.len() == k) {
            let (l0, v0) = (lm.clone(), vis.clone());
            for (dst, &src) in perm.iter().enumerate() {
                lm[dst] = l0[src];
                vis[dst] = v0[src];
            }
        }
    }
    let mut classes: BTreeMap<String, Option<u32>> =
        meta.classes.keys().map(|n| (n.clone(), None)).collect();
    for (n, &c) in &sample.classes {
        classes.insert(n.clone(), sample.has_attributes.then_some(c as u32));
    }
    let mut reals: BTreeMap<String, (Vec<f32>, bool)> = meta
        .reals
        .iter()
        .map(|(n, &a)| (n.clone(), (vec![0.0; a], false)))
        .collect();
    for (n, v) in &sample.reals {
        reals.insert(n.clone(), (v.clone(), sample.has_attributes));
    }
    Ok(PreparedSample {
        index,
        size: s,
        channels: img.channels,
        image: pixels,
        pad_values,
        normalized: pre.normalize,
        landmarks: lm,
        visible: vis,
        has_landmarks: sample.has_landmarks,
        classes,
        reals,
        transform: match &sample.cache_transform {
            Some(c) => c.then(&a),
            None => a,
        },
    })
}

fn occlude(pixels: &mut [f32], s: usize, occ: &Occlusion, rng: &mut dyn rand::RngCore) {
    let p = if occ.probability.is_nan() {
        0.0
    } else {
        occ.probability.clamp(0.0, 1.0)
    };
    if occ.max_boxes == 0 || !rng.random_bool(p as f64) {
        return;
    }
    let n = rng.random_range(1..=occ.max_boxes);
    let fin = |v: f32| {
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let (a, b) = (fin(occ.min_side), fin(occ.max_side));
    let (lo, hi) = (a.min(b), a.max(b));
    for _ in 0..n {
        let side = |rng: &mut dyn rand::RngCore| {
            let f = if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                lo
            };
            ((f * s as f32).round() as usize).clamp(1, s)
        };
        let (bw, bh) = (side(rng), side(rng));
        let x = rng.random_range(0..=s - bw);
        let y = rng.random_range(0..=s - bh);
        let v: f32 = rng.random_range(0.0..=1.0);
        for plane in pixels.chunks_mut(s * s) {
            for row in plane.chunks_mut(s).skip(y).take(bh) {
                row[x..x + bw].fill(v);
            }
        }
    }
}

/// Normalisation of one plane (one channel of one image) in place: `(x - mean) / std`,
/// only centring when std < 1e-6 (the ops crate's [`landmark_ssl_ops::normalize_image`],
/// shared by training and inference).
pub use landmark_ssl_ops::normalize_image as normalize;
