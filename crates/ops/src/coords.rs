//! Conversions between the workspace's pixel convention and the normalised conventions
//! of other libraries.
//!
//! Side by side, for a map or image of width W (the same along y with the height H):
//!
//! | convention | pixel centre i sits at | range of the centres | used by |
//! |---|---|---|---|
//! | [`CoordConvention::Pixel`] | `i` | `0 ..= W-1` | this workspace (soft-argmax, losses, data) |
//! | [`CoordConvention::AlignCorners`] | `2 i / (W - 1) - 1` | exactly `-1 ..= +1` | kornia (`normalize_pixel_coordinates`, `spatial_soft_argmax2d(normalized_coordinates=True)`), `grid_sample(align_corners=True)` |
//! | [`CoordConvention::Dsnt`] | `(2 i + 1) / W - 1` | `-1 + 1/W ..= 1 - 1/W` (the image edges at -1 and +1) | dsntnn, `grid_sample(align_corners=False)` |
//!
//! Inverse maps: `i = (u + 1) (W - 1) / 2` (align-corners) and `i = ((u + 1) W - 1) / 2`
//! (dsnt). [`CoordConvention::AlignCorners`] needs W >= 2 and H >= 2 (with one pixel the
//! corners coincide). Points are (x, y): x is scaled with the width, y with the height.
//!
//! Each conversion exists for tensors `(..., 2)` (any rank >= 1, f32 or f64, any device,
//! differentiable) and for plain `[f64; 2]`.

use crate::check;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// A coordinate convention for points (x, y) in a map of size (H, W). See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordConvention {
    /// Pixels, 0-based, pixel centres at integers (this workspace).
    Pixel,
    /// Normalised, pixel centres from exactly -1 to +1 (kornia, `align_corners=True`).
    AlignCorners,
    /// Normalised, pixel centre i at (2i + 1)/W - 1 (dsntnn, `align_corners=False`).
    Dsnt,
}

impl CoordConvention {
    /// `(scale, offset)` with `u = scale * pixel + offset` along an axis of `n` pixels.
    fn pixel_to_self(self, n: usize, arg: &'static str, op: &'static str) -> Result<(f64, f64)> {
        check::nonzero(op, arg, n)?;
        let n = n as f64;
        match self {
            CoordConvention::Pixel => Ok((1.0, 0.0)),
            CoordConvention::AlignCorners => {
                if n < 2.0 {
                    return Err(Error::InvalidArgument {
                        op,
                        arg,
                        value: format!("{n}"),
                        reason: "the align-corners (kornia) convention needs at least 2 pixels",
                    });
                }
                Ok((2.0 / (n - 1.0), -1.0))
            }
            CoordConvention::Dsnt => Ok((2.0 / n, 1.0 / n - 1.0)),
        }
    }
}

/// `(scale, offset)` per axis taking `from` coordinates to `to` coordinates.
fn axis_maps(
    op: &'static str,
    from: CoordConvention,
    to: CoordConvention,
    height: usize,
    width: usize,
) -> Result<[(f64, f64); 2]> {
    let mut out = [(1.0, 0.0); 2];
    for (slot, (n, arg)) in out.iter_mut().zip([(width, "width"), (height, "height")]) {
        let (a1, b1) = from.pixel_to_self(n, arg, op)?;
        let (a2, b2) = to.pixel_to_self(n, arg, op)?;
        // pixel = (u - b1) / a1; v = a2 * pixel + b2.
        *slot = (a2 / a1, b2 - a2 * b1 / a1);
    }
    Ok(out)
}

/// Converts one point (x, y) from `from` to `to` for a map of size (height, width).
///
/// Errors when `height` or `width` is 0, or is 1 with [`CoordConvention::AlignCorners`].
///
/// ```
/// use landmark_ssl_ops::coords::{convert_point, CoordConvention::*};
/// // The centre of the top-left pixel of a 5x4 (H x W) map.
/// let close = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-12 && (a[1] - b[1]).abs() < 1e-12;
/// assert!(close(convert_point([0.0, 0.0], Pixel, AlignCorners, 5, 4)?, [-1.0, -1.0]));
/// assert!(close(convert_point([0.0, 0.0], Pixel, Dsnt, 5, 4)?, [-0.75, -0.8]));
/// assert!(close(convert_point([-0.75, -0.8], Dsnt, Pixel, 5, 4)?, [0.0, 0.0]));
/// # Ok::<(), landmark_ssl_ops::Error>(())
/// ```
pub fn convert_point(
    p: [f64; 2],
    from: CoordConvention,
    to: CoordConvention,
    height: usize,
    width: usize,
) -> Result<[f64; 2]> {
    let [(ax, bx), (ay, by)] = axis_maps("convert_point", from, to, height, width)?;
    Ok([ax * p[0] + bx, ay * p[1] + by])
}

/// Converts points `(..., 2)` (x, y) from `from` to `to` for maps of size (height, width).
///
/// f32 or f64, any device, same dtype/shape out, differentiable (an affine map per axis).
/// Errors when the last dimension is not 2, the dtype is not a float, `height` or `width`
/// is 0, or is 1 with [`CoordConvention::AlignCorners`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::coords::{convert_points, CoordConvention::*};
/// let p = Tensor::new(&[[[3.0f32, 4.0]]], &Device::Cpu)?; // (1, 1, 2), in a 5x4 map
/// let u = convert_points(&p, Pixel, AlignCorners, 5, 4)?.to_vec3::<f32>()?;
/// // The bottom-right pixel centre.
/// assert!((u[0][0][0] - 1.0).abs() < 1e-6 && (u[0][0][1] - 1.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn convert_points(
    points: &Tensor,
    from: CoordConvention,
    to: CoordConvention,
    height: usize,
    width: usize,
) -> Result<Tensor> {
    const OP: &str = "convert_points";
    let dims = points.dims();
    if dims.last() != Some(&2) {
        return Err(Error::Shape {
            op: OP,
            arg: "points",
            expected: "(..., 2)".into(),
            got: dims.to_vec(),
        });
    }
    check::f32_or_f64(OP, "points", points)?;
    let [(ax, bx), (ay, by)] = axis_maps(OP, from, to, height, width)?;
    let dev = points.device();
    let scale = Tensor::new(&[ax, ay], dev)?.to_dtype(points.dtype())?;
    let offset = Tensor::new(&[bx, by], dev)?.to_dtype(points.dtype())?;
    Ok(points.broadcast_mul(&scale)?.broadcast_add(&offset)?)
}

/// Pixels -> kornia's normalised coordinates (pixel centres at exactly -1 and +1):
/// `u = 2 x / (W - 1) - 1`, `v = 2 y / (H - 1) - 1`. Tensors `(..., 2)`; see
/// [`convert_points`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::coords::pixel_to_kornia;
/// let p = Tensor::new(&[1.5f64, 0.0], &Device::Cpu)?;
/// let r = pixel_to_kornia(&p, 3, 4)?.to_vec1::<f64>()?;
/// assert!((r[0] - 0.0).abs() < 1e-12 && (r[1] - -1.0).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pixel_to_kornia(points: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    convert_points(
        points,
        CoordConvention::Pixel,
        CoordConvention::AlignCorners,
        height,
        width,
    )
}

/// kornia's normalised coordinates -> pixels: `x = (u + 1) (W - 1) / 2`. Tensors `(..., 2)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::coords::kornia_to_pixel;
/// let u = Tensor::new(&[1.0f64, -1.0], &Device::Cpu)?;
/// let r = kornia_to_pixel(&u, 3, 4)?.to_vec1::<f64>()?;
/// assert!((r[0] - 3.0).abs() < 1e-12 && (r[1] - 0.0).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn kornia_to_pixel(points: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    convert_points(
        points,
        CoordConvention::AlignCorners,
        CoordConvention::Pixel,
        height,
        width,
    )
}

/// Pixels -> dsntnn's normalised coordinates: `u = (2 x + 1) / W - 1`. Tensors `(..., 2)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::coords::pixel_to_dsnt;
/// let p = Tensor::new(&[0.0f64, 1.0], &Device::Cpu)?;
/// let r = pixel_to_dsnt(&p, 2, 4)?.to_vec1::<f64>()?;
/// assert!((r[0] - -0.75).abs() < 1e-12 && (r[1] - 0.5).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pixel_to_dsnt(points: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    convert_points(
        points,
        CoordConvention::Pixel,
        CoordConvention::Dsnt,
        height,
        width,
    )
}

/// dsntnn's normalised coordinates -> pixels: `x = ((u + 1) W - 1) / 2`. Tensors `(..., 2)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::coords::dsnt_to_pixel;
/// let u = Tensor::new(&[-0.75f64, 0.5], &Device::Cpu)?;
/// let r = dsnt_to_pixel(&u, 2, 4)?.to_vec1::<f64>()?;
/// assert!((r[0] - 0.0).abs() < 1e-12 && (r[1] - 1.0).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dsnt_to_pixel(points: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    convert_points(
        points,
        CoordConvention::Dsnt,
        CoordConvention::Pixel,
        height,
        width,
    )
}

/// [`pixel_to_kornia`] for one point `[x, y]`.
///
/// ```
/// use landmark_ssl_ops::coords::pixel_to_kornia_point;
/// let r = pixel_to_kornia_point([3.0, 0.0], 3, 4)?;
/// assert!((r[0] - 1.0).abs() < 1e-12 && (r[1] - -1.0).abs() < 1e-12);
/// # Ok::<(), landmark_ssl_ops::Error>(())
/// ```
pub fn pixel_to_kornia_point(p: [f64; 2], height: usize, width: usize) -> Result<[f64; 2]> {
    convert_point(
        p,
        CoordConvention::Pixel,
        CoordConvention::AlignCorners,
        height,
        width,
    )
}

/// [`kornia_to_pixel`] for one point `[u, v]`.
///
/// ```
/// use landmark_ssl_ops::coords::kornia_to_pixel_point;
/// let r = kornia_to_pixel_point([0.0, 0.0], 3, 5)?;
/// assert!((r[0] - 2.0).abs() < 1e-12 && (r[1] - 1.0).abs() < 1e-12);
/// # Ok::<(), landmark_ssl_ops::Error>(())
/// ```
pub fn kornia_to_pixel_point(p: [f64; 2], height: usize, width: usize) -> Result<[f64; 2]> {
    convert_point(
        p,
        CoordConvention::AlignCorners,
        CoordConvention::Pixel,
        height,
        width,
    )
}

/// [`pixel_to_dsnt`] for one point `[x, y]`.
///
/// ```
/// use landmark_ssl_ops::coords::pixel_to_dsnt_point;
/// let r = pixel_to_dsnt_point([1.5, 0.5], 2, 4)?;
/// assert!((r[0] - 0.0).abs() < 1e-12 && (r[1] - 0.0).abs() < 1e-12);
/// # Ok::<(), landmark_ssl_ops::Error>(())
/// ```
pub fn pixel_to_dsnt_point(p: [f64; 2], height: usize, width: usize) -> Result<[f64; 2]> {
    convert_point(
        p,
        CoordConvention::Pixel,
        CoordConvention::Dsnt,
        height,
        width,
    )
}

/// [`dsnt_to_pixel`] for one point `[u, v]`.
///
/// ```
/// use landmark_ssl_ops::coords::dsnt_to_pixel_point;
/// let r = dsnt_to_pixel_point([1.0, -1.0], 2, 4)?;
/// assert!((r[0] - 3.5).abs() < 1e-12 && (r[1] - -0.5).abs() < 1e-12);
/// # Ok::<(), landmark_ssl_ops::Error>(())
/// ```
pub fn dsnt_to_pixel_point(p: [f64; 2], height: usize, width: usize) -> Result<[f64; 2]> {
    convert_point(
        p,
        CoordConvention::Dsnt,
        CoordConvention::Pixel,
        height,
        width,
    )
}
