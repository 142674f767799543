//! The object crop before jitter: where it lies in an image ([`CropMode`], [`crop_box`]),
//! how an image region is resampled into it, and [`Dataset::cache_crops`], which keeps only
//! the region around each object in memory.
//!
//! * **Centre and side.** [`CropMode::Whole`]: the image's centre, side = max(W, H) (the
//!   synthetic sets, already at model size). [`CropMode::Object`]: from the sample's box
//!   (centre of the box, side = max(box width, box height) x `box_scale`), else from the
//!   visible landmarks' extent (side = max(extent) x `landmark_scale`), else the whole image.
//! * **Resampling.** A crop map `A` (original pixels -> crop pixels, built by
//!   [`mod@crate::prepare`]) is applied with the ops crate's `warp_image_slice` (bilinear,
//!   zero outside the image). When `A` shrinks by more than 2x (`k < 0.5`, `k` its scale)
//!   the region of the image under the crop is first area-averaged over `f x f` blocks,
//!   `f = floor(1 / k)`, and `A` is composed with the block map, so bilinear sampling never
//!   skips source pixels. Only the region under the crop is turned into floats. Colour
//!   images are resampled channel by channel through the same map, into a planar crop
//!   (C x S x S).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::image_file::{check_channels, Image};
use crate::sample::{Dataset, ImageSource, Sample};
use landmark_ssl_ops::{warp_image_slice, Affine2};

/// How the crop's centre and side are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CropMode {
    /// The whole image (centre of the image, side = max(W, H)).
    Whole,
    /// Around the object: the box times `box_scale`, else the landmarks' extent times
    /// `landmark_scale`, else the whole image.
    Object {
        /// Factor on the box's longer side.
        box_scale: f32,
        /// Factor on the landmarks' extent (longer side).
        landmark_scale: f32,
    },
}

/// The un-jittered crop of `sample` (image size `(w, h)`): centre (x, y) and side, in the
/// pixels of the sample's image (see the module docs for the rules).
pub fn crop_box(sample: &Sample, w: usize, h: usize, crop: &CropMode) -> ([f64; 2], f64) {
    let whole = || {
        (
            [(w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0],
            w.max(h) as f64,
        )
    };
    match *crop {
        CropMode::Whole => whole(),
        CropMode::Object {
            box_scale,
            landmark_scale,
        } => {
            let from_box = sample
                .bbox
                .filter(|b| b.iter().all(|v| v.is_finite()) && b[2] > b[0] && b[3] > b[1]);
            if let Some(b) = from_box {
                let side = ((b[2] - b[0]).max(b[3] - b[1]) * box_scale) as f64;
                (
                    [(b[0] + b[2]) as f64 / 2.0, (b[1] + b[3]) as f64 / 2.0],
                    side,
                )
            } else {
                let pts: Vec<&[f32; 2]> = sample
                    .landmarks
                    .iter()
                    .zip(&sample.visible)
                    .filter(|(p, v)| **v && p[0].is_finite() && p[1].is_finite())
                    .map(|(p, _)| p)
                    .collect();
                if pts.is_empty() {
                    whole()
                } else {
                    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
                    for p in pts {
                        for a in 0..2 {
                            lo[a] = lo[a].min(p[a] as f64);
                            hi[a] = hi[a].max(p[a] as f64);
                        }
                    }
                    let side =
                        ((hi[0] - lo[0]).max(hi[1] - lo[1]) * landmark_scale as f64).max(1.0);
                    ([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0], side)
                }
            }
        }
    }
}

/// Warps the region of `img` under the crop `a` into an S x S crop in [0, 1], one plane per
/// channel (`img.channels` x S x S, planar), every channel through the same map.
pub(crate) fn warp_crop(img: &Image, a: &Affine2, s: usize, antialias: bool) -> Vec<f32> {
    let c = img.channels.max(1);
    let Ok(inv) = a.inverse() else {
        return vec![0.0; c * s * s];
    };
    let k = (a.m[0] * a.m[4] - a.m[1] * a.m[3]).abs().sqrt();
    let f = if antialias && k < 0.5 {
        (1.0 / k).floor().max(1.0) as usize
    } else {
        1
    };
    // Region of the original under the crop (+ margin), clamped to the image.
    let e = s as f64 - 0.5;
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for (x, y) in [(-0.5, -0.5), (e, -0.5), (-0.5, e), (e, e)] {
        let (u, v) = inv.apply(x, y);
        lo = [lo[0].min(u), lo[1].min(v)];
        hi = [hi[0].max(u), hi[1].max(v)];
    }
    let margin = 2.0 + f as f64;
    let x0 = (lo[0] - margin).floor().max(0.0);
    let y0 = (lo[1] - margin).floor().max(0.0);
    let x1 = (hi[0] + margin).ceil().min(img.width as f64);
    let y1 = (hi[1] + margin).ceil().min(img.height as f64);
    if !(x1 > x0 && y1 > y0) {
        return vec![0.0; c * s * s];
    }
    let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
    let (rw, rh) = ((x1 - x0).div_ceil(f), (y1 - y0).div_ceil(f));
    // The region, area-averaged over f x f blocks, one plane per channel.
    let mut roi = vec![0.0f32; c * rw * rh];
    let norm = 1.0 / (255.0 * (f * f) as f32);
    let row_len = img.width * c;
    for (ch, plane) in roi.chunks_mut(rw * rh).enumerate() {
        for (ry, row) in plane.chunks_mut(rw).enumerate() {
            for sy in 0..f {
                let y = y0 + ry * f + sy;
                if y >= img.height {
                    break;
                }
                let src = &img.pixels[y * row_len..(y + 1) * row_len];
                for (rx, out) in row.iter_mut().enumerate() {
                    let xs = x0 + rx * f;
                    let xe = (xs + f).min(img.width);
                    let sum: u32 = src[xs * c + ch..xe * c]
                        .iter()
                        .step_by(c)
                        .map(|&v| v as u32)
                        .sum();
                    *out += sum as f32 * norm;
                }
            }
        }
    }
    // ROI pixel (i, j) has centre x0 + f i + (f - 1) / 2 in the original.
    let ff = f as f64;
    let (ox, oy) = (x0 as f64 + (ff - 1.0) / 2.0, y0 as f64 + (ff - 1.0) / 2.0);
    let m = &a.m;
    let a2 = Affine2 {
        m: [
            m[0] * ff,
            m[1] * ff,
            m[0] * ox + m[1] * oy + m[2],
            m[3] * ff,
            m[4] * ff,
            m[3] * ox + m[4] * oy + m[5],
        ],
    };
    warp_image_slice(&roi, c, rh, rw, &a2, s, s)
}

impl Dataset {
    /// Decodes every file image once and keeps, in memory, only a square grey region around
    /// the object: [`Dataset::cache_crops_with_channels`] with 1 channel.
    pub fn cache_crops(&mut self, crop: &CropMode, margin: f64, crop_pixels: usize) -> Result<()> {
        self.cache_crops_with_channels(crop, margin, crop_pixels, 1)
    }

    /// Decodes every file image once, with `channels` channels (1 grey, 3 RGB: the
    /// [`Preprocess::channels`](crate::Preprocess::channels) the crops will be prepared
    /// with), and keeps, in memory, only a square region around the object, so later epochs
    /// never decode full-resolution files again.
    ///
    /// The region is centred on the crop of `crop` (box or landmarks, see
    /// [`crop_box`]) with side `margin` x the crop side (2.0
    /// leaves room for +-10% scale / translation jitter and rotations up to 45 degrees), and
    /// is resampled (area-averaged when shrinking) so that one crop side spans at most
    /// `crop_pixels` pixels (e.g. 1.25 x the model input; never enlarged). Landmarks and box
    /// are mapped into the cached image's pixels and `cache_transform` records the map, so
    /// batch transforms still go from original pixels to crop pixels. Memory: about
    /// `(margin x crop_pixels)^2 x channels` bytes per sample. Samples already in memory are
    /// left as they are. Runs in parallel; deterministic.
    ///
    /// Errors: the first image that cannot be decoded (naming its file), a non-positive
    /// `margin` or `crop_pixels`, a channel count other than 1 or 3.
    pub fn cache_crops_with_channels(
        &mut self,
        crop: &CropMode,
        margin: f64,
        crop_pixels: usize,
        channels: usize,
    ) -> Result<()> {
        check_channels("channels", channels)?;
        if !(margin > 0.0 && margin.is_finite()) || crop_pixels == 0 {
            return Err(Error::arg(
                "margin / crop_pixels",
                format!("{margin} / {crop_pixels}: need positive values"),
            ));
        }
        self.samples.par_iter_mut().try_for_each(|s| -> Result<()> {
            let ImageSource::File(_) = &s.image else {
                return Ok(());
            };
            let img = s.load_image_with_channels(channels)?;
            let (c, side) = crop_box(s, img.width, img.height, crop);
            let k = (crop_pixels as f64 / side.max(1e-6)).min(1.0);
            let n = ((side * margin * k).ceil() as usize).max(1);
            let o = (n as f64 - 1.0) / 2.0;
            let map = Affine2::new([k, 0.0, o - k * c[0], 0.0, k, o - k * c[1]]);
            let px = warp_crop(&img, &map, n, true);
            // Planar crop -> interleaved bytes.
            let plane = n * n;
            let mut bytes = vec![0u8; channels * plane];
            for (ch, p) in px.chunks(plane).enumerate() {
                for (i, v) in p.iter().enumerate() {
                    bytes[i * channels + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
            for p in &mut s.landmarks {
                let (x, y) = map.apply(p[0] as f64, p[1] as f64);
                *p = [x as f32, y as f32];
            }
            if let Some(b) = &mut s.bbox {
                let (x0, y0) = map.apply(b[0] as f64, b[1] as f64);
                let (x1, y1) = map.apply(b[2] as f64, b[3] as f64);
                *b = [x0 as f32, y0 as f32, x1 as f32, y1 as f32];
            }
            s.image = ImageSource::Memory(Image::with_channels(n, n, channels, bytes)?);
            s.image_size = Some((n, n));
            s.cache_transform = Some(match &s.cache_transform {
                Some(prev) => prev.then(&map),
                None => map,
            });
            Ok(())
        })
    }
}
