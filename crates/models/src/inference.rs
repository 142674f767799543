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
//! * **Resample.** The ops crate's bilinear warp, zero outside the image.
//! * **Contrast normalisation.** Per crop: `x -> (x - mean) / std` over the whole S x S crop
//!   (zero padding included); a crop with std below 1e-6 is only centred. Give grey values
//!   in [0, 1] (8-bit / 255), as the data crate does.
//! * **Back to the image.** Predicted points are mapped by `A^{-1}`.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use landmark_ssl_ops::{warp_image_slice, Affine2};

use crate::checkpoint::{load_checkpoint, CheckpointInfo};
use crate::error::{Error, Result};
use crate::LandmarkModel;

/// Where to look for the object in an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    /// The whole image (already a crop of the object).
    Whole,
    /// An object box `[x0, y0, x1, y1]` in the image's pixels (the workspace's point
    /// convention), with `x1 > x0`, `y1 > y0`.
    Box([f32; 4]),
}

/// One image's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// K landmarks (x, y) in the original image's pixels.
    pub landmarks: Vec<[f32; 2]>,
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

    /// Loads a checkpoint ([`crate::save_checkpoint`]) onto `device`.
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let (model, _vm, info) = load_checkpoint(path, device)?;
        let mut p = Self::new(model, device.clone());
        p.info = Some(info);
        Ok(p)
    }

    /// Sets how many crops go through the model at once (>= 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets the factor on a box's longer side that gives the crop side (default 1, as the
    /// data crate's object crops with a box). Must match training.
    pub fn with_box_scale(mut self, box_scale: f64) -> Self {
        self.box_scale = box_scale;
        self
    }

    /// The model.
    pub fn model(&self) -> &LandmarkModel {
        &self.model
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

    /// Predicts landmarks for `images` (each (H, W), (1, H, W) or (1, 1, H, W), grey, any
    /// size, any float dtype) in their `regions` (one per image). Returns one [`Prediction`]
    /// per image, points in the original image's pixels.
    pub fn predict(&self, images: &[Tensor], regions: &[Region]) -> Result<Vec<Prediction>> {
        if images.len() != regions.len() {
            return Err(Error::InvalidArgument {
                op: "Predictor::predict",
                arg: "regions",
                reason: format!("{} regions for {} images", regions.len(), images.len()),
            });
        }
        let (sh, sw) = self.model.config().input_size();
        let mut out = Vec::with_capacity(images.len());
        let pairs: Vec<(&Tensor, &Region)> = images.iter().zip(regions).collect();
        for chunk in pairs.chunks(self.batch_size) {
            let mut pixels = Vec::with_capacity(chunk.len() * sh * sw);
            let mut crops = Vec::with_capacity(chunk.len());
            for (img, region) in chunk {
                let (h, w, data) = image_data(img)?;
                let a = self.crop_affine(h, w, **region)?;
                let mut crop = warp_image_slice(&data, 1, h, w, &a, sh, sw);
                normalize(&mut crop);
                pixels.extend_from_slice(&crop);
                crops.push(a);
            }
            let batch = Tensor::from_vec(pixels, (chunk.len(), 1, sh, sw), &self.device)?;
            let o = self.model.forward_t(&batch, false)?;
            let lm = o.landmarks.to_dtype(DType::F32)?.to_vec3::<f32>()?;
            let mut attrs: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
            for (name, t) in &o.attributes {
                attrs.push((name.clone(), t.to_dtype(DType::F32)?.to_vec2::<f32>()?));
            }
            for (i, a) in crops.into_iter().enumerate() {
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
                out.push(Prediction {
                    landmarks,
                    attributes,
                    crop: a,
                });
            }
        }
        Ok(out)
    }
}

/// (H, W, row-major f32 pixels) of a grey image tensor (H, W), (1, H, W) or (1, 1, H, W).
fn image_data(img: &Tensor) -> Result<(usize, usize, Vec<f32>)> {
    let d = img.dims();
    let (h, w) = match d {
        [h, w] | [1, h, w] | [1, 1, h, w] => (*h, *w),
        _ => {
            return Err(Error::Shape {
                op: "Predictor::predict",
                arg: "images",
                expected: "each image (H, W), (1, H, W) or (1, 1, H, W), grey".into(),
                got: d.to_vec(),
            })
        }
    };
    if h == 0 || w == 0 || !img.dtype().is_float() {
        return Err(Error::Shape {
            op: "Predictor::predict",
            arg: "images",
            expected: format!("a non-empty float image (got dtype {:?})", img.dtype()),
            got: d.to_vec(),
        });
    }
    let data = img
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((h, w, data))
}

/// Per-image normalisation in place: `(x - mean) / std`, only centring when std < 1e-6
/// (the ops crate's [`landmark_ssl_ops::normalize_image`], shared by training and inference).
pub use landmark_ssl_ops::normalize_image as normalize;
