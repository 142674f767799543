//! The overlap between an image's soft-argmax maps.
//!
//! A cost that reads only the points (a class read from them, ELT) is as low when two maps
//! share a figure as when each has its own, as long as what the points leave out can still
//! be read from them: one map on a figure and another spread over it and a second figure
//! give two points from which both figures' positions follow. With no landmark label to
//! tell the maps apart, nothing else pulls them onto different figures.
//! [`map_overlap`] measures how much two maps' mass lies on the same pixels (the
//! Bhattacharyya coefficient of their softmaxes) and [`map_overlap_mean`] is the cost that
//! asks every two maps of an image to find different places. Unlike a cost on the distance
//! between the points, it does not push apart points whose maps are apart, however close
//! the points are.

use candle_core::{Tensor, D};

use crate::{check, Result};

/// The overlap of every two maps of an image: `sum_p sqrt(P_i(p) P_j(p))`, `P_k` the
/// softmax of `beta * M_k` over the map's pixels; 1 for two equal maps, 0 for maps with
/// their mass on different pixels.
///
/// * `maps`: (B, K, H, W), float, the maps the soft-argmax reads (before `beta`).
/// * `beta`: the soft-argmax multiplier (finite, > 0).
///
/// Returns (B, K, K) in `maps`' dtype (symmetric, ones on the diagonal), differentiable.
pub fn map_overlap(maps: &Tensor, beta: f64) -> Result<Tensor> {
    const F: &str = "map_overlap";
    let dims = check::rank(F, "maps", maps, 4, "(B, K, H, W) maps")?;
    check::float(F, "maps", maps)?;
    check::beta(F, beta)?;
    let (b, k, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    if b == 0 || k == 0 {
        return Ok(Tensor::zeros((b, k, k), maps.dtype(), maps.device())?);
    }
    let logits = maps.reshape((b, k, h * w))?.affine(beta, 0.0)?;
    // sqrt(P) = exp(log_softmax / 2), finite where P underflows.
    let root = (check::log_softmax_last(&logits)? * 0.5)?.exp()?;
    Ok(root.matmul(&root.transpose(1, 2)?.contiguous()?)?)
}

/// The cost on maps that share their mass: the mean of [`map_overlap`] over images and
/// over the pairs `i < j` of an image's maps, in [0, 1], unweighted.
///
/// * `maps`: (B, K, H, W), float; `beta`: finite, > 0.
///
/// Returns a scalar; 0 when K < 2 or B = 0 (no pairs). Its gradient lowers each map where
/// the others have their mass.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// // Two 1x2 maps: one flat, one with all its mass on the second pixel.
/// let maps = Tensor::new(&[[[[0f32, 0.]], [[-80., 0.]]]], &dev)?;
/// let o = landmark_ssl_losses::map_overlap_mean(&maps, 1.0)?.to_scalar::<f32>()?;
/// assert!((o - 0.5f32.sqrt()).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn map_overlap_mean(maps: &Tensor, beta: f64) -> Result<Tensor> {
    let overlap = map_overlap(maps, beta)?;
    let (b, k, _) = overlap.dims3()?;
    if k < 2 || b == 0 {
        return Ok(Tensor::zeros((), maps.dtype(), maps.device())?);
    }
    // Each unordered pair twice, and the K diagonal entries are 1.
    let pairs = (k * (k - 1)) as f64;
    let per_image = overlap
        .sum(D::Minus1)?
        .sum(D::Minus1)?
        .affine(1.0 / pairs, -(k as f64) / pairs)?;
    Ok(per_image.mean_all()?)
}
