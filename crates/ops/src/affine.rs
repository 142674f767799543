//! 2-D affine transforms of points and images, in the workspace's pixel convention.
//!
//! A transform is a (2, 3) row-major matrix `[[a, b, tx], [c, d, ty]]` mapping **source
//! pixel coordinates to destination pixel coordinates**: `p_dst = A [x_src, y_src, 1]^T`,
//! with points (x, y), x the column, y the row, pixel centres at integers. As tensors, a
//! batch of them is (B, 2, 3).
//!
//! - [`transform_points`] moves points by A (differentiable);
//! - [`warp_images`] / [`warp_image_slice`] resample images so that
//!   `out(p) = bilinear(img, A^{-1} p)` (zero outside).
//!
//! So "warp the image by A, then locate the landmark" equals "locate it, then transform
//! the point by A". Crops and resizes are affine matrices too ([`Affine2::crop_resize`]).

use crate::check;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// A 2-D affine transform, row-major (2, 3): `m = [a, b, tx, c, d, ty]`, mapping source
/// pixels to destination pixels: `x' = a x + b y + tx`, `y' = c x + d y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine2 {
    /// `[a, b, tx, c, d, ty]`.
    pub m: [f64; 6],
}

impl Default for Affine2 {
    fn default() -> Self {
        Self::identity()
    }
}

impl Affine2 {
    /// The transform with matrix `m = [a, b, tx, c, d, ty]`.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::new([1.0, 0.0, 2.0, 0.0, 1.0, 3.0]);
    /// assert_eq!(t.apply(1.0, 1.0), (3.0, 4.0));
    /// ```
    pub fn new(m: [f64; 6]) -> Self {
        Self { m }
    }

    /// The identity.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::identity();
    /// assert_eq!(t.apply(2.5, -1.0), (2.5, -1.0));
    /// ```
    pub fn identity() -> Self {
        Self {
            m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        }
    }

    /// A translation by (tx, ty) pixels.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::translation(1.0, -2.0);
    /// assert_eq!(t.apply(0.0, 0.0), (1.0, -2.0));
    /// ```
    pub fn translation(tx: f64, ty: f64) -> Self {
        Self {
            m: [1.0, 0.0, tx, 0.0, 1.0, ty],
        }
    }

    /// A scaling by (sx, sy) about `centre` (x, y): the centre stays put.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::scaling_about(2.0, 3.0, (1.0, 1.0));
    /// assert_eq!(t.apply(1.0, 1.0), (1.0, 1.0));
    /// assert_eq!(t.apply(2.0, 2.0), (3.0, 4.0));
    /// ```
    pub fn scaling_about(sx: f64, sy: f64, centre: (f64, f64)) -> Self {
        let (cx, cy) = centre;
        Self {
            m: [sx, 0.0, cx - sx * cx, 0.0, sy, cy - sy * cy],
        }
    }

    /// A rotation by `angle_rad` about `centre` (x, y). With y pointing down (image rows),
    /// a positive angle turns the x axis towards the y axis, i.e. **clockwise on screen**:
    /// `x' - cx = cos(t) (x - cx) - sin(t) (y - cy)`, `y' - cy = sin(t) (x - cx) + cos(t) (y - cy)`.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::rotation_about(std::f64::consts::FRAC_PI_2, (0.0, 0.0));
    /// let (x, y) = t.apply(1.0, 0.0); // the x axis goes to the y axis (downwards)
    /// assert!(x.abs() < 1e-12 && (y - 1.0).abs() < 1e-12);
    /// ```
    pub fn rotation_about(angle_rad: f64, centre: (f64, f64)) -> Self {
        Self::from_params(angle_rad, 1.0, 0.0, 0.0, centre)
    }

    /// Rotation by `angle_rad` (as [`Affine2::rotation_about`]) and isotropic `scale`
    /// about `centre`, then a translation by (tx, ty) pixels:
    /// `p' = s R(angle) (p - c) + c + t`.
    ///
    /// ```
    /// use landmark_ssl_ops::Affine2;
    /// let t = Affine2::from_params(0.3, 1.2, 2.0, -1.0, (10.0, 5.0));
    /// let (x, y) = t.apply(10.0, 5.0); // the centre only moves by the translation
    /// assert!((x - 12.0).abs() < 1e-12 && (y - 4.0).abs() < 1e-12);
    /// ```
    pub fn from_params(angle_rad: f64, scale: f64, tx: f64, ty: f64, centre: (f64, f64)) -> Self {
        let (s, c) = angle_rad.sin_cos();
        let (a, b, cc, d) = (scale * c, -scale * s, scale * s, scale * c);
        let (cx, cy) = centre;
        Self {
            m: [
                a,
                b,
                cx + tx - (a * cx + b * cy),
                cc,
                d,
                cy + ty - (cc * cx + d * cy),
            ],
        }
    }

    /// Maps the crop box whose top-left pixel centre is (left, top) and which is
    /// `crop_w` x `crop_h` pixels wide onto an `out_w` x `out_h` image (a crop then a
    /// resize, pixel edges aligned: source edge `left - 0.5` goes to `-0.5`, source edge
    /// `left - 0.5 + crop_w` to `out_w - 0.5`). Sizes may be fractional.
    ///
    /// ```
    /// use landmark_ssl_ops::Affine2;
    /// // A 4x4 box at (2, 3) resized to 8x8: its top-left pixel centre goes to 0.5.
    /// let t = Affine2::crop_resize(2.0, 3.0, 4.0, 4.0, 8, 8);
    /// assert_eq!(t.apply(2.0, 3.0), (0.5, 0.5));
    /// ```
    pub fn crop_resize(
        left: f64,
        top: f64,
        crop_w: f64,
        crop_h: f64,
        out_w: usize,
        out_h: usize,
    ) -> Self {
        let sx = out_w as f64 / crop_w;
        let sy = out_h as f64 / crop_h;
        Self {
            m: [
                sx,
                0.0,
                (0.5 - left) * sx - 0.5,
                0.0,
                sy,
                (0.5 - top) * sy - 0.5,
            ],
        }
    }

    /// `self` followed by `next`: `(self.then(next)).apply(p) == next.apply(self.apply(p))`.
    ///
    /// ```
    /// use landmark_ssl_ops::Affine2;
    /// let a = Affine2::scaling_about(2.0, 2.0, (0.0, 0.0));
    /// let b = Affine2::translation(1.0, 0.0);
    /// assert_eq!(a.then(&b).apply(1.0, 1.0), (3.0, 2.0));
    /// assert_eq!(b.then(&a).apply(1.0, 1.0), (4.0, 2.0));
    /// ```
    pub fn then(&self, next: &Affine2) -> Affine2 {
        let [a1, b1, t1, c1, d1, u1] = self.m;
        let [a2, b2, t2, c2, d2, u2] = next.m;
        Affine2 {
            m: [
                a2 * a1 + b2 * c1,
                a2 * b1 + b2 * d1,
                a2 * t1 + b2 * u1 + t2,
                c2 * a1 + d2 * c1,
                c2 * b1 + d2 * d1,
                c2 * t1 + d2 * u1 + u2,
            ],
        }
    }

    /// The determinant `a d - b c` of the linear part.
    ///
    /// ```
    /// assert_eq!(landmark_ssl_ops::Affine2::scaling_about(2.0, 3.0, (5.0, 5.0)).determinant(), 6.0);
    /// ```
    pub fn determinant(&self) -> f64 {
        self.m[0] * self.m[4] - self.m[1] * self.m[3]
    }

    /// The inverse transform (destination pixels to source pixels).
    ///
    /// Errors ([`Error::InvalidArgument`] naming the determinant) when the matrix is
    /// singular or not finite (|det| <= 1e-12).
    ///
    /// ```
    /// use landmark_ssl_ops::Affine2;
    /// let t = Affine2::from_params(0.4, 1.5, 3.0, 2.0, (4.0, 4.0));
    /// let (x, y) = t.inverse()?.apply_point(t.apply_point([1.0, 2.0]))[..].try_into()
    ///     .map(|p: [f64; 2]| (p[0], p[1]))?;
    /// assert!((x - 1.0).abs() < 1e-12 && (y - 2.0).abs() < 1e-12);
    /// assert!(Affine2::new([0.0; 6]).inverse().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inverse(&self) -> Result<Affine2> {
        let det = self.determinant();
        if !det.is_finite() || det.abs() <= 1e-12 || self.m.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument {
                op: "Affine2::inverse",
                arg: "determinant",
                value: format!("{det}"),
                reason: "the matrix is singular or not finite",
            });
        }
        let [a, b, tx, c, d, ty] = self.m;
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Ok(Affine2 {
            m: [ia, ib, -(ia * tx + ib * ty), ic, id, -(ic * tx + id * ty)],
        })
    }

    /// Transforms the point (x, y).
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::new([0.0, 1.0, 0.0, 1.0, 0.0, 0.0]); // swap axes
    /// assert_eq!(t.apply(1.0, 2.0), (2.0, 1.0));
    /// ```
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, tx, c, d, ty] = self.m;
        (a * x + b * y + tx, c * x + d * y + ty)
    }

    /// Transforms the point `[x, y]`.
    ///
    /// ```
    /// let t = landmark_ssl_ops::Affine2::translation(1.0, 1.0);
    /// assert_eq!(t.apply_point([1.0, 2.0]), [2.0, 3.0]);
    /// ```
    pub fn apply_point(&self, p: [f64; 2]) -> [f64; 2] {
        let (x, y) = self.apply(p[0], p[1]);
        [x, y]
    }
}

/// Stacks transforms into a (B, 2, 3) f32 tensor on `device` (B = `mats.len()`, may be 0).
///
/// ```
/// use candle_core::Device;
/// use landmark_ssl_ops::{affine_to_tensor, Affine2};
/// let t = affine_to_tensor(&[Affine2::identity(), Affine2::translation(1.0, 2.0)], &Device::Cpu)?;
/// assert_eq!(t.dims(), &[2, 2, 3]);
/// assert_eq!(t.to_vec3::<f32>()?[1], [[1.0, 0.0, 1.0], [0.0, 1.0, 2.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn affine_to_tensor(mats: &[Affine2], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = mats.iter().flat_map(|a| a.m.map(|x| x as f32)).collect();
    Ok(Tensor::from_vec(v, (mats.len(), 2, 3), device)?)
}

/// Reads a (B, 2, 3) (or a single (2, 3)) float tensor back into transforms.
///
/// Errors when the shape is neither or the dtype is not a float.
///
/// ```
/// use candle_core::Device;
/// use landmark_ssl_ops::{affine_from_tensor, affine_to_tensor, Affine2};
/// let a = vec![Affine2::from_params(0.5, 2.0, 1.0, 0.0, (3.0, 3.0))];
/// let back = affine_from_tensor(&affine_to_tensor(&a, &Device::Cpu)?)?;
/// assert!(back[0].m.iter().zip(a[0].m).all(|(x, y)| (x - y).abs() < 1e-5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn affine_from_tensor(mats: &Tensor) -> Result<Vec<Affine2>> {
    let b = check_mats("affine_from_tensor", mats)?;
    let v: Vec<f64> = mats.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(b);
    for c in v.chunks_exact(6) {
        out.push(Affine2::new([c[0], c[1], c[2], c[3], c[4], c[5]]));
    }
    Ok(out)
}

/// Checks a (B, 2, 3) or (2, 3) float matrix tensor; returns B (1 for (2, 3)).
fn check_mats(op: &'static str, mats: &Tensor) -> Result<usize> {
    let dims = mats.dims();
    let b = match dims {
        [b, 2, 3] => *b,
        [2, 3] => 1,
        _ => {
            return Err(Error::Shape {
                op,
                arg: "mats",
                expected: "(B, 2, 3) or (2, 3)".into(),
                got: dims.to_vec(),
            })
        }
    };
    check::float(op, "mats", mats)?;
    Ok(b)
}

/// Transforms points (B, K, 2) by matrices (B, 2, 3) (or (1, 2, 3) / (2, 3), shared by the
/// batch): `out[b, k] = A_b [x, y, 1]^T`, in pixels.
///
/// f32 or f64 points; `mats` is converted to the points' dtype. Differentiable with respect
/// to both (a broadcast matmul and an add). Errors: `points` not (B, K, 2) or not a float,
/// `mats` not (B, 2, 3) with the same B (or 1), devices differing.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::{affine_to_tensor, transform_points, Affine2};
/// let p = Tensor::new(&[[[1.0f32, 2.0], [0.0, 0.0]]], &Device::Cpu)?; // (1, 2, 2)
/// let a = affine_to_tensor(&[Affine2::translation(10.0, 20.0)], &Device::Cpu)?;
/// let q = transform_points(&p, &a)?.to_vec3::<f32>()?;
/// assert_eq!(q[0], [[11.0, 22.0], [10.0, 20.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transform_points(points: &Tensor, mats: &Tensor) -> Result<Tensor> {
    const OP: &str = "transform_points";
    let (b, _) = check::points(OP, "points", points)?;
    check::f32_or_f64(OP, "points", points)?;
    let mb = check_mats(OP, mats)?;
    check::batch_of(OP, mats, mb, b, "points")?;
    if !points.device().same_device(mats.device()) {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "mats",
            value: format!("{:?}", mats.device().location()),
            reason: "must be on the device of `points`",
        });
    }
    let mats = mats.to_dtype(points.dtype())?.reshape((mb, 2, 3))?;
    let lin_t = mats.narrow(2, 0, 2)?.transpose(1, 2)?.contiguous()?; // (mb, 2, 2)
    let t = mats.narrow(2, 2, 1)?.transpose(1, 2)?; // (mb, 1, 2)
    Ok(points.broadcast_matmul(&lin_t)?.broadcast_add(&t)?)
}

/// Samples one channel plane at source position (sx, sy) bilinearly, zero outside.
#[inline(always)]
fn bilinear(plane: &[f32], h: usize, w: usize, sx: f64, sy: f64) -> f32 {
    let x0 = sx.floor();
    let y0 = sy.floor();
    let fx = (sx - x0) as f32;
    let fy = (sy - y0) as f32;
    // Far outside (or NaN): zero; also keeps the casts below in range.
    if !(x0 >= -1.0 && y0 >= -1.0 && x0 < w as f64 && y0 < h as f64) {
        return 0.0;
    }
    let (x0, y0) = (x0 as isize, y0 as isize);
    let px = |x: isize, y: isize| -> f32 {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            plane
                .get(y as usize * w + x as usize)
                .copied()
                .unwrap_or(0.0)
        } else {
            0.0
        }
    };
    let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1, y0) * fx;
    let bottom = px(x0, y0 + 1) * (1.0 - fx) + px(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Warps `rows` output rows (`out_w` wide) starting at row `row0` of every channel.
fn warp_rows(
    plane: &[f32],
    h: usize,
    w: usize,
    inv: &Affine2,
    out: &mut [f32],
    out_w: usize,
    row0: usize,
) {
    let [a, b, tx, c, d, ty] = inv.m;
    for (r, row) in out.chunks_mut(out_w.max(1)).enumerate() {
        let oy = (row0 + r) as f64;
        let (bx, by) = (b * oy + tx, d * oy + ty);
        for (ox, o) in row.iter_mut().enumerate() {
            let ox = ox as f64;
            *o = bilinear(plane, h, w, a * ox + bx, c * ox + by);
        }
    }
}

/// Warps one CHW f32 image: `out(p) = bilinear(src, a^{-1} p)`, zero outside, for an
/// `out_h` x `out_w` output (C, out_h, out_w) in a new `Vec` of `c * out_h * out_w` values.
///
/// `a` maps source pixels to destination pixels (see the module doc). The data crate's CPU
/// path; parallel over channels and rows with rayon. Never panics: a singular `a` gives
/// an all-zero output and values missing from a `src` shorter than `c * h * w` read as
/// zero (use [`warp_images`] for checked arguments).
///
/// ```
/// use landmark_ssl_ops::{warp_image_slice, Affine2};
/// // A 1x3x3 image with a bright pixel at (x, y) = (0, 1), shifted by one pixel to the right.
/// let mut src = vec![0f32; 9];
/// src[3] = 1.0;
/// let out = warp_image_slice(&src, 1, 3, 3, &Affine2::translation(1.0, 0.0), 3, 3);
/// assert_eq!(out[4], 1.0);
/// assert_eq!(out.iter().sum::<f32>(), 1.0);
/// ```
pub fn warp_image_slice(
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    a: &Affine2,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; c * out_h * out_w];
    let Ok(inv) = a.inverse() else {
        return out;
    };
    let plane_len = h * w;
    let out_plane = out_h * out_w;
    if out_plane == 0 || plane_len == 0 {
        return out;
    }
    // Tasks of a few rows each, so small images still spread over the threads.
    let rows_per_task = (4096 / out_w.max(1)).clamp(1, out_h);
    out.par_chunks_mut(out_plane)
        .enumerate()
        .for_each(|(ch, oplane)| {
            let start = (ch * plane_len).min(src.len());
            let end = (start + plane_len).min(src.len());
            let plane = &src[start..end];
            oplane
                .par_chunks_mut(rows_per_task * out_w)
                .enumerate()
                .for_each(|(t, rows)| warp_rows(plane, h, w, &inv, rows, out_w, t * rows_per_task));
        });
    out
}

/// Warps images (B, C, H, W) by matrices (B, 2, 3) (or one (1, 2, 3) / (2, 3) shared by
/// the batch) into (B, C, out_h, out_w): `out(p) = bilinear(img, A^{-1} p)`, zero outside.
///
/// `A` maps source pixels to destination pixels, so warping an image whose landmark is at
/// `p` puts it at `A p` ([`transform_points`]). Bilinear weights and positions in f64,
/// values in f32 (f64 images are converted to f32 and back). A rayon-parallel CPU kernel;
/// tensors on other devices are copied to the CPU and back. Not differentiable.
///
/// Errors: `images` not of rank 4 or not a float, `mats` not (B, 2, 3) with the same B (or
/// 1), a singular matrix, `out_h` or `out_w` zero.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::{affine_to_tensor, warp_images, Affine2};
/// let img = Tensor::arange(0f32, 16.0, &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// // Crop the 2x2 block whose top-left pixel is (1, 1).
/// let a = affine_to_tensor(&[Affine2::translation(-1.0, -1.0)], &Device::Cpu)?;
/// let out = warp_images(&img, &a, 2, 2)?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, [5.0, 6.0, 9.0, 10.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn warp_images(images: &Tensor, mats: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    const OP: &str = "warp_images";
    let (b, c, h, w) = check::rank4(OP, "images", images, "(B, C, H, W)")?;
    check::float(OP, "images", images)?;
    check::nonzero(OP, "out_h", out_h)?;
    check::nonzero(OP, "out_w", out_w)?;
    let mb = check_mats(OP, mats)?;
    check::batch_of(OP, mats, mb, b, "images")?;
    let affs = affine_from_tensor(mats)?;
    let mut invs = Vec::with_capacity(affs.len());
    for (i, a) in affs.iter().enumerate() {
        invs.push(a.inverse().map_err(|_| Error::InvalidArgument {
            op: OP,
            arg: "mats",
            value: format!("matrix {i} = {:?} (det {})", a.m, a.determinant()),
            reason: "is singular",
        })?);
    }
    let src: Vec<f32> = images
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let (plane, oplane) = (h * w, out_h * out_w);
    let mut out = vec![0f32; b * c * oplane];
    if plane > 0 {
        let rows_per_task = (4096 / out_w).clamp(1, out_h);
        out.par_chunks_mut(oplane)
            .zip(src.par_chunks_exact(plane))
            .enumerate()
            .for_each(|(bc, (op, sp))| {
                let inv = &invs[if mb == 1 { 0 } else { bc / c.max(1) }];
                op.par_chunks_mut(rows_per_task * out_w)
                    .enumerate()
                    .for_each(|(t, rows)| warp_rows(sp, h, w, inv, rows, out_w, t * rows_per_task));
            });
    }
    Ok(Tensor::from_vec(out, (b, c, out_h, out_w), &Device::Cpu)?
        .to_dtype(images.dtype())?
        .to_device(images.device())?)
}
