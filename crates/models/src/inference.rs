//! Inference: load a checkpoint, give it images of any size with boxes (or whole images),
//! get landmarks in the original images' pixel coordinates, batched.
//!
//! Each image is cropped exactly as the data crate crops for training
//! (`landmark_ssl_data::prepare`, `CropMode::Object` / `CropMode::Whole`):
//!
//! * **Crop.** Centre `c` = the box centre (or the image centre `((W-1)/2, (H-1)/2)` for
//!   [`Region::Whole`]), side = max(box width, box height) x `box_scale` (or max(W, H)). The
//!   affine `A` (an [`Affine2`], original pixels -> model-input pixels) sends `c` to the
//!   input's centre and the crop's edges `c +- side/2` to `-0.5` and `S - 0.5`:
//!   `p_in = (S / side) (p - c) + ((S-1)/2, (S-1)/2)` per axis.
//! * **Channels.** Images are grey (one plane) or RGB (three planes) and are made what the
//!   model takes ([`crate::ModelConfig::in_channels`]): a grey image on a colour model has
//!   its plane repeated; an RGB image on a grey model becomes its luma,
//!   [`LUMA_WEIGHTS`] (those the data crate decodes grey with); otherwise they must match.
//! * **Resample.** The ops crate's bilinear warp, zero outside the image, every channel with
//!   the same affine: a planar C x S x S crop, as the data crate's.
//! * **Contrast normalisation.** Per plane of the crop: `x -> (x - mean) / std` over the
//!   whole S x S plane (zero padding included); a plane with std below 1e-6 is only
//!   centred. Give values in [0, 1] (8-bit / 255), as the data crate does.
//! * **Back to the image.** Predicted points are mapped by `A^{-1}`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use landmark_ssl_ops::{soft_argmax_detailed, warp_image_slice, Affine2};

use crate::checkpoint::{load_checkpoint_within, CheckpointInfo};
use crate::config::LandmarkKind;
use crate::error::{Error, Result};
use crate::limits::ModelLimits;
use crate::LandmarkModel;

/// The weights of R, G and B in the luma an RGB image becomes for a grey model:
/// Rec. 709's `0.2126 R + 0.7152 G + 0.0722 B`, those the `image` crate's `to_luma8` uses,
/// so that a colour image given to a grey model is what the data crate's grey decoding of
/// the same file gives the model in training (up to its rounding to 8 bits).
pub const LUMA_WEIGHTS: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Where to look for the object in an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    /// The whole image (already a crop of the object).
    Whole,
    /// An object box `[x0, y0, x1, y1]` in the image's pixels (the workspace's point
    /// convention), with `x1 > x0`, `y1 > y0`.
    Box([f32; 4]),
}

impl FromStr for Region {
    type Err = Error;

    /// An object box written `x0,y0,x1,y1` (image pixels; spaces around the numbers and
    /// negative coordinates allowed), e.g. `10,5,90,75`: finite, with `x1 > x0`, `y1 > y0`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidArgument {
            op: "Region::from_str",
            arg: "box",
            reason: format!("`{s}`: {reason}"),
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(bad(format!(
                "a box is x0,y0,x1,y1 (4 numbers), got {} comma-separated parts",
                parts.len()
            )));
        }
        let mut b = [0f32; 4];
        for (v, p) in b.iter_mut().zip(&parts) {
            *v = p
                .parse::<f32>()
                .map_err(|_| bad(format!("`{p}` is not a number")))?;
            if !v.is_finite() {
                return Err(bad(format!("`{p}` is not a finite f32")));
            }
        }
        if !(b[2] > b[0] && b[3] > b[1]) {
            return Err(bad("a box needs x1 > x0 and y1 > y0".into()));
        }
        Ok(Region::Box(b))
    }
}

/// One image's prediction.
///
/// Confidence and spread come from each landmark's probability map: `softmax(beta * map)`
/// for soft-argmax models (Seq-MT, RCN+, Heatmap-MT with soft-argmax), the per-pixel
/// softmax of the map for softmax models (RCN, Heatmap-MT). Comm-MT regresses points
/// without maps and has neither.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// K landmarks (x, y) in the original image's pixels.
    pub landmarks: Vec<[f32; 2]>,
    /// Per landmark, the peak probability of its map, in (0, 1]: 1 when all the mass is on
    /// one pixel of the model's input, `1 / (H W)` for a flat map. A unitless ranking of how
    /// sure the model is; it depends on the input size and beta, so compare it within one
    /// model. `None` for models without maps.
    pub confidence: Option<Vec<f32>>,
    /// Per landmark, the standard deviation of its map's distribution along x and along y,
    /// about the distribution's mean, in pixels of the original image (the model-input
    /// spread divided by the crop's scale). `None` for models without maps.
    pub spread: Option<Vec<[f32; 2]>>,
    /// Attribute outputs by head name (class logits or real values).
    pub attributes: BTreeMap<String, Vec<f32>>,
    /// The crop map used (original pixels -> model-input pixels).
    pub crop: Affine2,
}

/// A loaded model ready for prediction on arbitrary images.
#[derive(Debug, Clone)]
pub struct Predictor {
    model: LandmarkModel,
    device: Device,
    batch_size: usize,
    box_scale: f64,
    info: Option<CheckpointInfo>,
}

impl Predictor {
    /// A predictor around a model already built (batch size 32, box scale 1).
    pub fn new(model: LandmarkModel, device: Device) -> Self {
        Self {
            model,
            device,
            batch_size: 32,
            box_scale: 1.0,
            info: None,
        }
    }

    /// Loads a checkpoint ([`crate::save_checkpoint`]) onto `device`, within
    /// [`ModelLimits::DEFAULT`]. The box scale is the checkpoint's recorded training crop
    /// factor ([`crate::CheckpointMeta::crop_factor`]) where it has one, 1 otherwise.
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_checkpoint_within(path, device, &ModelLimits::DEFAULT)
    }

    /// [`Self::from_checkpoint`] with other size limits.
    pub fn from_checkpoint_within(
        path: impl AsRef<Path>,
        device: &Device,
        limits: &ModelLimits,
    ) -> Result<Self> {
        let (model, _vm, info) = load_checkpoint_within(path, device, limits)?;
        let mut p = Self::new(model, device.clone());
        if let Some(f) = info.meta.crop_factor {
            p.box_scale = f;
        }
        p.info = Some(info);
        Ok(p)
    }

    /// Sets how many crops go through the model at once (>= 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the factor on a box's longer side that gives the crop side (default: the
    /// checkpoint's recorded crop factor, else 1). Must match training.
    pub fn with_box_scale(mut self, box_scale: f64) -> Self {
        self.box_scale = box_scale;
        self
    }

    /// The factor on a box's longer side that gives the crop side.
    pub fn box_scale(&self) -> f64 {
        self.box_scale
    }

    /// The model.
    pub fn model(&self) -> &LandmarkModel {
        &self.model
    }

    /// The channels of the model's input (1: grey, 3: RGB). [`Self::predict`] and
    /// [`Self::predict_pixels_interleaved`] take grey and RGB images whatever it is.
    pub fn in_channels(&self) -> usize {
        self.model.config().in_channels()
    }

    /// The checkpoint's info, when loaded from one.
    pub fn info(&self) -> Option<&CheckpointInfo> {
        self.info.as_ref()
    }

    /// The crop map (original pixels -> model-input pixels) for an image of `height` x
    /// `width` pixels and a region.
    pub fn crop_affine(&self, height: usize, width: usize, region: Region) -> Result<Affine2> {
        let (c, side) = match region {
            Region::Whole => (
                [(width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0],
                width.max(height) as f64,
            ),
            Region::Box(b) => {
                let ok = b.iter().all(|v| v.is_finite()) && b[2] > b[0] && b[3] > b[1];
                if !ok {
                    return Err(Error::InvalidArgument {
                        op: "Predictor::crop_affine",
                        arg: "region",
                        reason: format!("box {b:?} must be finite with x1 > x0 and y1 > y0"),
                    });
                }
                let side = (b[2] - b[0]).max(b[3] - b[1]) as f64 * self.box_scale;
                (
                    [(b[0] + b[2]) as f64 / 2.0, (b[1] + b[3]) as f64 / 2.0],
                    side,
                )
            }
        };
        if !(side.is_finite() && side > 0.0) {
            return Err(Error::InvalidArgument {
                op: "Predictor::crop_affine",
                arg: "region",
                reason: format!("crop side {side} is not positive (empty image or box_scale <= 0)"),
            });
        }
        let (sh, sw) = self.model.config().input_size();
        let (kx, ky) = (sw as f64 / side, sh as f64 / side);
        let (ox, oy) = ((sw as f64 - 1.0) / 2.0, (sh as f64 - 1.0) / 2.0);
        Ok(Affine2 {
            m: [kx, 0.0, ox - kx * c[0], 0.0, ky, oy - ky * c[1]],
        })
    }

    /// Predicts landmarks for `images` in their `regions` (one per image). Each image is
    /// (H, W) grey, or (C, H, W) or (1, C, H, W) with C = 1 (grey) or 3 (RGB planes, in
    /// that order), any size, any float dtype, values in [0, 1]; it is made the model's
    /// channel count as the [module docs](self) say. Returns one [`Prediction`] per image,
    /// points in the original image's pixels. Another shape is an [`Error::Shape`] naming
    /// it; a non-finite output is an [`Error::NonFiniteOutput`] naming the image's index.
    pub fn predict(&self, images: &[Tensor], regions: &[Region]) -> Result<Vec<Prediction>> {
        if images.len() != regions.len() {
            return Err(Error::InvalidArgument {
                op: "Predictor::predict",
                arg: "regions",
                reason: format!("{} regions for {} images", regions.len(), images.len()),
            });
        }
        let mut out = Vec::with_capacity(images.len());
        for (c, chunk) in images.chunks(self.batch_size).enumerate() {
            let first = c * self.batch_size;
            let mut crops = Vec::with_capacity(chunk.len());
            for (i, img) in chunk.iter().enumerate() {
                let (channels, h, w, data) = image_data(img, first + i)?;
                crops.push(self.crop(Cow::Owned(data), channels, h, w, regions[first + i])?);
            }
            out.extend(self.run(crops, first)?);
        }
        Ok(out)
    }

    /// Predicts landmarks for one grey image given as `height` x `width` row-major pixels
    /// (values in [0, 1], as [`Self::predict`]) without copying it into a tensor. On a
    /// colour model the plane is repeated.
    pub fn predict_pixels(
        &self,
        pixels: &[f32],
        height: usize,
        width: usize,
        region: Region,
    ) -> Result<Prediction> {
        let op = "Predictor::predict_pixels";
        check_pixels(op, pixels.len(), 1, height, width)?;
        let crop = self.crop(Cow::Borrowed(pixels), 1, height, width, region)?;
        self.run_one(op, crop)
    }

    /// Predicts landmarks for one image of `channels` interleaved channels (1: grey; 3: RGB,
    /// channel fastest, as the `image` crate's `RgbImage` holds it), `height` x `width`
    /// pixels row-major, values in [0, 1]. It is made the model's channel count as in
    /// [`Self::predict`].
    pub fn predict_pixels_interleaved(
        &self,
        pixels: &[f32],
        channels: usize,
        height: usize,
        width: usize,
        region: Region,
    ) -> Result<Prediction> {
        let op = "Predictor::predict_pixels_interleaved";
        if channels != 1 && channels != 3 {
            return Err(Error::InvalidArgument {
                op,
                arg: "channels",
                reason: format!("images have 1 (grey) or 3 (RGB) channels, got {channels}"),
            });
        }
        check_pixels(op, pixels.len(), channels, height, width)?;
        let crop = if channels == 1 {
            self.crop(Cow::Borrowed(pixels), 1, height, width, region)?
        } else if self.in_channels() == 1 {
            // Straight to the luma: the model reads one plane.
            let luma = pixels
                .chunks_exact(3)
                .map(|p| luma(p[0], p[1], p[2]))
                .collect();
            self.crop(Cow::Owned(luma), 1, height, width, region)?
        } else {
            let plane = height * width;
            let mut planar = vec![0f32; pixels.len()];
            for (i, p) in pixels.chunks_exact(3).enumerate() {
                planar[i] = p[0];
                planar[plane + i] = p[1];
                planar[2 * plane + i] = p[2];
            }
            self.crop(Cow::Owned(planar), 3, height, width, region)?
        };
        self.run_one(op, crop)
    }

    /// The model's prediction for one crop.
    fn run_one(&self, op: &'static str, crop: (Vec<f32>, Affine2)) -> Result<Prediction> {
        self.run(vec![crop], 0)?
            .pop()
            .ok_or_else(|| Error::InvalidArgument {
                op,
                arg: "pixels",
                reason: "the model gave no prediction".into(),
            })
    }

    /// The normalised model-input crop (the model's channels, planar) of one image of
    /// `channels` planes of H x W pixels `data`, and its crop map.
    fn crop(
        &self,
        data: Cow<'_, [f32]>,
        channels: usize,
        h: usize,
        w: usize,
        region: Region,
    ) -> Result<(Vec<f32>, Affine2)> {
        let a = self.crop_affine(h, w, region)?;
        let (sh, sw) = self.model.config().input_size();
        let want = self.in_channels();
        let (data, channels) = match (channels, want) {
            (c, m) if c == m || c == 1 => (data, c),
            (3, 1) => (Cow::Owned(to_luma(&data, h * w)), 1),
            (c, m) => {
                return Err(Error::InvalidArgument {
                    op: "Predictor::predict",
                    arg: "images",
                    reason: format!(
                        "a {c}-channel image for a model of {m} input channels (it takes \
                         grey images and images of its own channel count)"
                    ),
                })
            }
        };
        let plane = sh * sw;
        let mut crop = warp_image_slice(&data, channels, h, w, &a, sh, sw);
        drop(data);
        for p in crop.chunks_mut(plane.max(1)) {
            normalize(p);
        }
        if channels == 1 && want > 1 {
            // A grey image on a colour model: the normalised plane, once per channel (the
            // same as cropping and normalising `want` equal planes).
            crop = crop.repeat(want);
        }
        Ok((crop, a))
    }

    /// Runs the model on crops (numbered from `first` in errors) and maps the points back.
    fn run(&self, crops: Vec<(Vec<f32>, Affine2)>, first: usize) -> Result<Vec<Prediction>> {
        let (sh, sw) = self.model.config().input_size();
        let ch = self.in_channels();
        let n = crops.len();
        // The input size is within the model's limits, but the product is checked anyway:
        // it sizes an allocation.
        let len = n
            .checked_mul(ch)
            .and_then(|v| v.checked_mul(sh))
            .and_then(|v| v.checked_mul(sw))
            .ok_or_else(|| Error::InvalidArgument {
                op: "Predictor::predict",
                arg: "images",
                reason: format!("{n} crops of {ch} x {sh}x{sw} values overflow the address space"),
            })?;
        let mut pixels = Vec::with_capacity(len);
        let mut maps = Vec::with_capacity(n);
        for (crop, a) in crops {
            pixels.extend_from_slice(&crop);
            maps.push(a);
        }
        let batch = Tensor::from_vec(pixels, (n, ch, sh, sw), &self.device)?;
        let o = self.model.forward_t(&batch, false)?;
        let lm = o.landmarks.to_dtype(DType::F32)?.to_vec3::<f32>()?;
        let detail = match &o.maps {
            Some(m) => {
                let beta = match self.model.config().landmark_kind() {
                    LandmarkKind::SoftArgmax => self.model.config().beta().unwrap_or(1.0),
                    LandmarkKind::Softmax => 1.0,
                };
                let d = soft_argmax_detailed(m, beta)?;
                Some((
                    d.confidence.to_dtype(DType::F32)?.to_vec2::<f32>()?,
                    d.spread.to_dtype(DType::F32)?.to_vec3::<f32>()?,
                ))
            }
            None => None,
        };
        let mut attrs: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
        for (name, t) in &o.attributes {
            attrs.push((name.clone(), t.to_dtype(DType::F32)?.to_vec2::<f32>()?));
        }
        let mut out = Vec::with_capacity(n);
        for (i, a) in maps.into_iter().enumerate() {
            let not_finite = |output: String| Error::NonFiniteOutput {
                index: first + i,
                output,
            };
            if lm[i].iter().flatten().any(|v| !v.is_finite()) {
                return Err(not_finite("landmarks".into()));
            }
            if let Some((name, _)) = attrs
                .iter()
                .find(|(_, v)| v[i].iter().any(|x| !x.is_finite()))
            {
                return Err(not_finite(format!("attributes.{name}")));
            }
            let inv = a.inverse()?;
            let landmarks = lm[i]
                .iter()
                .map(|p| {
                    let (x, y) = inv.apply(p[0] as f64, p[1] as f64);
                    [x as f32, y as f32]
                })
                .collect();
            let attributes = attrs
                .iter()
                .map(|(n, v)| (n.clone(), v[i].clone()))
                .collect();
            // The crop is a similarity: one scale for both axes.
            let scale = a.determinant().abs().sqrt();
            let (confidence, spread) = match &detail {
                Some((conf, var)) => (
                    Some(conf[i].clone()),
                    Some(
                        var[i]
                            .iter()
                            .map(|v| {
                                [
                                    (v[0].max(0.0) as f64).sqrt() as f32 / scale as f32,
                                    (v[1].max(0.0) as f64).sqrt() as f32 / scale as f32,
                                ]
                            })
                            .collect(),
                    ),
                ),
                None => (None, None),
            };
            out.push(Prediction {
                landmarks,
                confidence,
                spread,
                attributes,
                crop: a,
            });
        }
        Ok(out)
    }
}

/// Checks that `model` (loaded from the checkpoint `path`) gives finite outputs (maps,
/// landmarks, attributes) on a fixed test image: weights that are finite one by one can
/// still overflow f32 together, or with a large beta.
pub(crate) fn check_finite_outputs(
    path: &Path,
    model: &LandmarkModel,
    device: &Device,
) -> Result<()> {
    let (h, w) = model.config().input_size();
    let c = model.config().in_channels();
    // A fixed, non-constant pattern (another per channel), each plane normalised as every
    // crop's is.
    let mut px: Vec<f32> = (0..c)
        .flat_map(|ch| {
            (0..h).flat_map(move |y| {
                (0..w).map(move |x| ((7 * x + 13 * y + 5 * ch) % 17) as f32 / 16.0)
            })
        })
        .collect();
    for p in px.chunks_mut((h * w).max(1)) {
        normalize(p);
    }
    let img = Tensor::from_vec(px, (1, c, h, w), device)?;
    let out = model.forward(&img)?;
    let mut outputs = vec![("landmarks".to_string(), out.landmarks)];
    if let Some(m) = out.maps {
        outputs.push(("maps".to_string(), m));
    }
    for (name, t) in out.attributes {
        outputs.push((format!("attributes.{name}"), t));
    }
    for (name, t) in outputs {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                path: path.to_path_buf(),
                what: format!("output `{name}`"),
                reason: format!(
                    "not finite on a test image: the weights{} overflow f32",
                    model
                        .config()
                        .beta()
                        .map_or_else(String::new, |b| format!(" (with beta = {b})"))
                ),
            });
        }
    }
    Ok(())
}

/// The luma of one RGB pixel ([`LUMA_WEIGHTS`]).
fn luma(r: f32, g: f32, b: f32) -> f32 {
    LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
}

/// The luma plane of three planar RGB planes of `plane` pixels each.
fn to_luma(rgb: &[f32], plane: usize) -> Vec<f32> {
    let (r, rest) = rgb.split_at(plane);
    let (g, b) = rest.split_at(plane);
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| luma(r, g, b))
        .collect()
}

/// Checks that `len` values are a `channels` x `height` x `width` image, not empty.
fn check_pixels(
    op: &'static str,
    len: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<()> {
    let want = height
        .checked_mul(width)
        .and_then(|v| v.checked_mul(channels));
    if height == 0 || width == 0 || want != Some(len) {
        return Err(Error::InvalidArgument {
            op,
            arg: "pixels",
            reason: format!(
                "{len} values for a {height}x{width} image of {channels} channel(s) (it needs \
                 height x width x channels > 0)"
            ),
        });
    }
    Ok(())
}

/// (C, H, W, planar row-major f32 values) of image `index` of a [`Predictor::predict`] call:
/// a tensor (H, W), (C, H, W) or (1, C, H, W) with C = 1 or 3.
fn image_data(img: &Tensor, index: usize) -> Result<(usize, usize, usize, Vec<f32>)> {
    let d = img.dims();
    let (c, h, w) = match d {
        [h, w] => (1, *h, *w),
        [c, h, w] | [1, c, h, w] if *c == 1 || *c == 3 => (*c, *h, *w),
        _ => {
            return Err(Error::Shape {
                op: "Predictor::predict",
                arg: "images",
                expected: format!(
                    "each image (H, W), (C, H, W) or (1, C, H, W) with C = 1 (grey) or 3 \
                     (RGB); image {index} (0-based) is not"
                ),
                got: d.to_vec(),
            })
        }
    };
    if h == 0 || w == 0 || !img.dtype().is_float() {
        return Err(Error::Shape {
            op: "Predictor::predict",
            arg: "images",
            expected: format!(
                "a non-empty float image; image {index} (0-based) has dtype {:?}",
                img.dtype()
            ),
            got: d.to_vec(),
        });
    }
    let data = img
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((c, h, w, data))
}

/// Per-plane normalisation in place: `(x - mean) / std`, only centring when std < 1e-6
/// (the ops crate's [`landmark_ssl_ops::normalize_image`], shared by training and
/// inference; a crop's planes are normalised one by one).
pub use landmark_ssl_ops::normalize_image as normalize;
