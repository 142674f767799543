//! A bound on the scale of soft-argmax maps.
//!
//! The soft-argmax (Eq. 1) is invariant to a shift of a map but not to its scale: the
//! larger a map's logits `beta * M`, the closer the soft-argmax is to a hard argmax, whose
//! point no longer moves with small changes of the map. Nothing else in Eq. 2 bounds that
//! scale. [`map_logit_range`] measures it per map and [`map_range_excess`] is the penalty
//! that keeps it below a bound: zero while every map's range stays under it, and the
//! squared excess beyond.

use candle_core::{Tensor, D};

use crate::{check, Result};

/// The logit range of each map: `beta * (max M - mean M)` over its pixels.
///
/// * `maps`: (B, K, H, W), float, the maps the soft-argmax reads (before `beta`).
/// * `beta`: the soft-argmax multiplier (finite, > 0).
///
/// Returns (B, K) in `maps`' dtype, differentiable. The range is shift-invariant like the
/// softmax: adding a constant to a map leaves it unchanged. A flat map has range 0; at
/// range `r` the peak pixel is `exp(r)` times more likely than a pixel at the mean.
pub fn map_logit_range(maps: &Tensor, beta: f64) -> Result<Tensor> {
    const F: &str = "map_logit_range";
    let dims = check::rank(F, "maps", maps, 4, "(B, K, H, W) maps")?;
    check::float(F, "maps", maps)?;
    check::beta(F, beta)?;
    let (b, k) = (dims[0], dims[1]);
    let flat = maps.reshape((b, k, ()))?;
    let range = (flat.max(D::Minus1)? - flat.mean(D::Minus1)?)?;
    Ok(range.affine(beta, 0.0)?)
}

/// The penalty on maps whose logit range exceeds `bound`:
/// `mean_{b,k} max(0, range_{b,k} - bound)^2`, with `range` from [`map_logit_range`].
///
/// * `maps`: (B, K, H, W), float; `beta`: finite, > 0; `bound`: finite, >= 0.
///
/// Returns a scalar in `maps`' dtype (squared logits), unweighted, and 0 with a zero
/// gradient while every map stays within the bound. Its gradient lowers the peak of a
/// map over the bound and raises the rest of it evenly.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// // One 1x2 map with values 0 and 10: range 10 - 5 = 5 at beta 1.
/// let maps = Tensor::new(&[[[[0f32, 10.]]]], &dev)?;
/// let p = landmark_ssl_losses::map_range_excess(&maps, 1.0, 3.0)?;
/// assert_eq!(p.to_scalar::<f32>()?, 4.0); // (5 - 3)^2
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn map_range_excess(maps: &Tensor, beta: f64, bound: f64) -> Result<Tensor> {
    const F: &str = "map_range_excess";
    check::non_negative(F, "bound", bound)?;
    let range = map_logit_range(maps, beta)?;
    let excess = (range - bound)?.relu()?;
    Ok(excess.sqr()?.mean_all()?)
}
