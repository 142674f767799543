//! The spread of soft-argmax maps.
//!
//! The soft-argmax (Eq. 1) reads a point as the mean of a map's softmax, so a map whose mass
//! covers much of the image still gives a point, and that point still moves with the
//! image's content: a map bright everywhere but on a figure puts its point away from the
//! figure, at a place that follows it. A cost on the point alone (a class read from the
//! points, or ELT) cannot tell such a map from one that peaks on the figure.
//! [`map_spread`] measures how far each map's mass lies from its point (the variance of
//! its softmax over the pixel coordinates) and [`map_spread_mean`] is the cost that asks
//! every map to be a peak.

use candle_core::{Tensor, D};

use crate::{check, Result};

/// The spread of each map: `sum_p P(p) |p - mu|^2` in squared pixels, `P` the softmax of
/// `beta * M` over the map's pixels and `mu = sum_p P(p) p` its soft-argmax point.
///
/// * `maps`: (B, K, H, W), float, the maps the soft-argmax reads (before `beta`).
/// * `beta`: the soft-argmax multiplier (finite, > 0).
///
/// Returns (B, K) in `maps`' dtype, differentiable (a composite of candle ops, the softmax
/// included, so its gradient reaches the maps). A map that is a single pixel has spread 0;
/// a flat H x W map has `(W^2 - 1) / 12 + (H^2 - 1) / 12` (600 px^2 at 60 x 60).
pub fn map_spread(maps: &Tensor, beta: f64) -> Result<Tensor> {
    const F: &str = "map_spread";
    let dims = check::rank(F, "maps", maps, 4, "(B, K, H, W) maps")?;
    check::float(F, "maps", maps)?;
    check::beta(F, beta)?;
    let (b, k, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    let logits = maps.reshape((b, k, h * w))?.affine(beta, 0.0)?;
    let p = candle_nn::ops::softmax(&logits, D::Minus1)?;
    let device = maps.device();
    let xs: Vec<f64> = (0..h * w).map(|i| (i % w) as f64).collect();
    let ys: Vec<f64> = (0..h * w).map(|i| (i / w) as f64).collect();
    let axis = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, (1, 1, h * w), device)?.to_dtype(maps.dtype())?)
    };
    let mut spread = Tensor::zeros((b, k), maps.dtype(), device)?;
    for coord in [axis(xs)?, axis(ys)?] {
        let mean = p.broadcast_mul(&coord)?.sum_keepdim(D::Minus1)?;
        let centred = coord.broadcast_sub(&mean)?;
        spread = (spread + (p.clone() * centred.sqr()?)?.sum(D::Minus1)?)?;
    }
    Ok(spread)
}

/// The cost on the maps' spread: the mean of [`map_spread`] over images and landmarks, in
/// squared pixels, unweighted.
///
/// * `maps`: (B, K, H, W), float; `beta`: finite, > 0.
///
/// Its gradient draws each map's mass towards the map's own point: it raises the logits
/// within `sqrt(spread)` of the point and lowers those beyond.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// // A 1x2 map with equal logits: half the mass 0.5 px either side of the point.
/// let maps = Tensor::new(&[[[[0f32, 0.]]]], &dev)?;
/// let s = landmark_ssl_losses::map_spread_mean(&maps, 1.0)?;
/// assert!((s.to_scalar::<f32>()? - 0.25).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn map_spread_mean(maps: &Tensor, beta: f64) -> Result<Tensor> {
    let spread = map_spread(maps, beta)?;
    Ok(spread.mean_all()?)
}
