//! Gaussian heat maps for landmarks and hard argmax with sub-pixel refinement.
//!
//! Same convention as everywhere: points (x, y) in pixels, x the column, y the row,
//! pixel centres at integers.

use crate::check;
use crate::error::Result;
use candle_core::{DType, Device, Tensor, D};

/// Renders one Gaussian per landmark: points (B, K, 2) -> maps (B, K, height, width).
///
/// `maps[b, k, i, j] = exp(-((j - x)^2 + (i - y)^2) / (2 sigma^2))` with (x, y) =
/// `points[b, k]` in pixels (pixel centres at integers) and `sigma` in pixels: the peak is
/// 1 when the point sits on a pixel centre. With `normalize`, each map is divided by its sum
/// (computed per axis with a max-subtracted softmax, so a point far outside the map still
/// gives a finite map that sums to 1, concentrated on the nearest border).
///
/// f32 or f64, any device, same dtype and device out; differentiable with respect to
/// `points`. Errors: `points` not (B, K, 2) or not a float, `height` or `width` zero,
/// `sigma` not finite or not > 0.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::render_gaussian_heatmaps;
/// let p = Tensor::new(&[[[2.0f32, 1.0]]], &Device::Cpu)?; // x = 2, y = 1
/// let m = render_gaussian_heatmaps(&p, 3, 4, 1.0, false)?; // (1, 1, 3, 4)
/// let v = m.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
/// assert_eq!(v[1][2], 1.0);
/// assert!((v[1][3] - (-0.5f32).exp()).abs() < 1e-6);
/// let n = render_gaussian_heatmaps(&p, 3, 4, 1.0, true)?;
/// assert!((n.sum_all()?.to_scalar::<f32>()? - 1.0).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render_gaussian_heatmaps(
    points: &Tensor,
    height: usize,
    width: usize,
    sigma: f64,
    normalize: bool,
) -> Result<Tensor> {
    const OP: &str = "render_gaussian_heatmaps";
    let (b, k) = check::points(OP, "points", points)?;
    check::f32_or_f64(OP, "points", points)?;
    check::nonzero(OP, "height", height)?;
    check::nonzero(OP, "width", width)?;
    check::finite_positive(OP, "sigma", sigma, "must be finite and > 0 (pixels)")?;
    let dt = points.dtype();
    let dev = points.device();
    let grid = |n: usize| -> Result<Tensor> {
        let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
        Ok(Tensor::from_vec(v, n, dev)?.to_dtype(dt)?)
    };
    let scale = -1.0 / (2.0 * sigma * sigma);
    let px = points.narrow(2, 0, 1)?; // (B, K, 1)
    let py = points.narrow(2, 1, 1)?;
    // Log-Gaussians per axis: (B, K, W) and (B, K, H).
    let lx = grid(width)?
        .reshape((1, 1, width))?
        .broadcast_sub(&px)?
        .sqr()?
        .affine(scale, 0.0)?;
    let ly = grid(height)?
        .reshape((1, 1, height))?
        .broadcast_sub(&py)?
        .sqr()?
        .affine(scale, 0.0)?;
    let (gx, gy) = if normalize {
        (
            candle_nn::ops::softmax(&lx, D::Minus1)?,
            candle_nn::ops::softmax(&ly, D::Minus1)?,
        )
    } else {
        (lx.exp()?, ly.exp()?)
    };
    let gx = gx.reshape((b, k, 1, width))?;
    let gy = gy.reshape((b, k, height, 1))?;
    Ok(gy.broadcast_mul(&gx)?)
}

/// How [`hard_argmax_subpixel_with`] refines the integer argmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubpixelRefinement {
    /// No refinement: the integer pixel of the maximum.
    None,
    /// Shift by a quarter pixel towards the higher of the two neighbours along each axis
    /// (no shift when they are equal or at the border), as in common face-alignment code
    /// (Newell et al.'s hourglass, HRNet, FAN). The default.
    #[default]
    QuarterPixel,
    /// Fit a parabola through the maximum and its two neighbours along each axis and take
    /// its vertex, clamped to +-0.5 px (no shift at the border or when the three values
    /// are not strictly concave). Exact for a sampled log-Gaussian; use it on
    /// log-probabilities or logits.
    Parabolic,
}

/// Hard argmax with quarter-pixel refinement: maps (B, K, H, W) -> (B, K, 2) (x, y) in
/// pixels. See [`hard_argmax_subpixel_with`] and [`SubpixelRefinement::QuarterPixel`].
///
/// For models trained with a per-pixel softmax (Heatmap-MT, RCN). Not differentiable.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::hard_argmax_subpixel;
/// let m = Tensor::new(&[[0f32, 1.0, 0.0], [0.0, 5.0, 2.0], [0.0, 0.0, 0.0]], &Device::Cpu)?
///     .reshape((1, 1, 3, 3))?;
/// let p = hard_argmax_subpixel(&m)?.to_vec3::<f32>()?;
/// assert_eq!(p[0][0], [1.25, 0.75]); // right neighbour 2 > 0, upper neighbour 1 > 0
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hard_argmax_subpixel(maps: &Tensor) -> Result<Tensor> {
    hard_argmax_subpixel_with(maps, SubpixelRefinement::QuarterPixel)
}

/// Hard argmax with a chosen sub-pixel refinement: maps (B, K, H, W) -> (B, K, 2) (x, y)
/// in pixels, same dtype and device as `maps` (computed on the CPU).
///
/// The integer argmax is the first maximum in row-major order (NaN values are skipped).
/// Errors: `maps` not of rank 4, K, H or W zero, dtype not f32/f64. Not differentiable.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::{hard_argmax_subpixel_with, SubpixelRefinement};
/// // Samples of -(x - 1.3)^2 along a row: the parabola's vertex is exact.
/// let row: Vec<f64> = (0..4).map(|x| -((x as f64 - 1.3) * (x as f64 - 1.3))).collect();
/// let m = Tensor::from_vec(row, (1, 1, 1, 4), &Device::Cpu)?;
/// let p = hard_argmax_subpixel_with(&m, SubpixelRefinement::Parabolic)?.to_vec3::<f64>()?;
/// assert!((p[0][0][0] - 1.3).abs() < 1e-12 && p[0][0][1] == 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hard_argmax_subpixel_with(maps: &Tensor, refinement: SubpixelRefinement) -> Result<Tensor> {
    let (b, k, h, w) = check::maps("hard_argmax_subpixel", maps, None)?;
    let v: Vec<f64> = maps
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let n = h * w;
    let mut out = Vec::with_capacity(b * k * 2);
    for map in v.chunks_exact(n) {
        let mut best = 0usize;
        let mut best_v = f64::NEG_INFINITY;
        for (i, &x) in map.iter().enumerate() {
            if x > best_v {
                best_v = x;
                best = i;
            }
        }
        let (iy, ix) = (best / w, best % w);
        let at = |y: usize, x: usize| map[y * w + x];
        let dx = if ix > 0 && ix + 1 < w {
            refine(at(iy, ix - 1), at(iy, ix), at(iy, ix + 1), refinement)
        } else {
            0.0
        };
        let dy = if iy > 0 && iy + 1 < h {
            refine(at(iy - 1, ix), at(iy, ix), at(iy + 1, ix), refinement)
        } else {
            0.0
        };
        out.push(ix as f64 + dx);
        out.push(iy as f64 + dy);
    }
    Ok(Tensor::from_vec(out, (b, k, 2), &Device::Cpu)?
        .to_dtype(maps.dtype())?
        .to_device(maps.device())?)
}

/// Sub-pixel offset from the values left of, at and right of a maximum.
fn refine(l: f64, c: f64, r: f64, refinement: SubpixelRefinement) -> f64 {
    match refinement {
        SubpixelRefinement::None => 0.0,
        SubpixelRefinement::QuarterPixel => {
            if r > l {
                0.25
            } else if l > r {
                -0.25
            } else {
                0.0
            }
        }
        SubpixelRefinement::Parabolic => {
            let curv = l - 2.0 * c + r;
            if curv < 0.0 && curv.is_finite() {
                (0.5 * (l - r) / curv).clamp(-0.5, 0.5)
            } else {
                0.0
            }
        }
    }
}
