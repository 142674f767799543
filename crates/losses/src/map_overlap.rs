//! The overlap between an image's soft-argmax maps.
//!
//! A cost that reads only the points (a class read from them, ELT) is as low when two maps
//! share a figure as when each has its own, as long as what the points leave out can still
//! be read from them: one map on a figure and another spread over it and a second figure
//! give two points, the first figure's centre and the midpoint between the figures, from
//! which both figures' positions follow. With no landmark label to tell the maps apart,
//! nothing else pulls them onto different figures.
//!
//! [`map_overlap`] measures how much of each map's mass lies near each other map's point
//! (within a Gaussian window of `sigma` pixels) and [`map_overlap_mean`] is the cost that
//! asks, of each pair of maps, the less concentrated one to leave the other's place to it.
//! Its gradient moves a map's mass off the other landmark's figure, to first order, even
//! when the map is split evenly between two figures: a cost that is symmetric in the two
//! parts of such a map (its spread, its entropy) has no gradient there. A map whose mass is several `sigma` away from the
//! other points costs next to nothing, however close its own point is to them. The window
//! should cover the other point's whole figure: a narrower one leaves the map a ring
//! around that figure, out of the window and still split (docs/experiments/shapes.md).

use candle_core::{Tensor, D};

use crate::{check, Result};

/// How much of each map's mass lies near each map's point: entry `(b, k, j)` is
/// `sum_p P_k(p) exp(-|p - mu_j|^2 / (2 sigma^2))`, `P_k` the softmax of `beta * M_k` over
/// the map's pixels and `mu_j = sum_p P_j(p) p` map j's soft-argmax point, in pixel
/// coordinates (x the column, pixel centres at integers).
///
/// * `maps`: (B, K, H, W), float, the maps the soft-argmax reads (before `beta`).
/// * `beta`: the soft-argmax multiplier (finite, > 0).
/// * `sigma`: the window's width in pixels (finite, > 0).
///
/// Returns (B, K, K) in `maps`' dtype, in [0, 1]. Differentiable in the masses `P_k`; the
/// points `mu_j` are held fixed (detached), so the gradient moves mass, not points.
pub fn map_overlap(maps: &Tensor, beta: f64, sigma: f64) -> Result<Tensor> {
    const F: &str = "map_overlap";
    let dims = check::rank(F, "maps", maps, 4, "(B, K, H, W) maps")?;
    check::float(F, "maps", maps)?;
    check::beta(F, beta)?;
    check::positive(F, "sigma", sigma)?;
    let (b, k, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    if b == 0 || k == 0 || h * w == 0 {
        return Ok(Tensor::zeros((b, k, k), maps.dtype(), maps.device())?);
    }
    let logits = maps.reshape((b, k, h * w))?.affine(beta, 0.0)?;
    let p = candle_nn::ops::softmax(&logits, D::Minus1)?;
    let device = maps.device();
    let axis = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, (1, 1, h * w), device)?.to_dtype(maps.dtype())?)
    };
    let xs = axis((0..h * w).map(|i| (i % w) as f64).collect())?;
    let ys = axis((0..h * w).map(|i| (i / w) as f64).collect())?;
    let held = p.detach();
    // Squared distance of every pixel to every point: (B, K, HW), row j for point j.
    let mut dist2 = Tensor::zeros((b, k, h * w), maps.dtype(), device)?;
    for coord in [&xs, &ys] {
        let mu = held.broadcast_mul(coord)?.sum_keepdim(D::Minus1)?;
        dist2 = (dist2 + coord.broadcast_sub(&mu)?.sqr()?)?;
    }
    let window = dist2.affine(-0.5 / (sigma * sigma), 0.0)?.exp()?;
    Ok(p.matmul(&window.transpose(1, 2)?.contiguous()?)?)
}

/// The cost on maps that share their places: for each pair of an image's maps, the
/// overlap ([`map_overlap`]) of the map that yields with the other's point, averaged over
/// pairs and images, in [0, 1], unweighted. Of two maps the one that yields is the less
/// concentrated: the one with less of its mass near its own point (the diagonal of
/// [`map_overlap`], held fixed); on a tie each yields half.
///
/// A cost symmetric in the two maps of a pair (the mean of both directions) asks two maps
/// that peak on the same place to lower that place in both, and when they are copies of one
/// another (the same features, the same weights) its gradient keeps them copies: both
/// flatten together, as on Shapes seed 6 (docs/experiments/shapes.md). Asking only the less
/// concentrated one to move breaks the tie and leaves the other its peak. A map spread
/// between two figures, beside one that peaks on the first, is the less concentrated, so
/// it still moves off that figure.
///
/// * `maps`: (B, K, H, W), float; `beta`: finite, > 0; `sigma`: finite, > 0, in pixels.
///
/// Returns a scalar; 0 when K < 2 or B = 0 (no pairs). Its gradient lowers each yielding map
/// near the other map's point.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// // Two 1x2 maps: one with its mass on the first pixel, one flat (its point at x = 0.5).
/// let maps = Tensor::new(&[[[[0f32, -80.]], [[0., 0.]]]], &dev)?;
/// let o = landmark_ssl_losses::map_overlap_mean(&maps, 1.0, 1.0)?.to_scalar::<f32>()?;
/// // Near its own point: map 0 all its mass (1), map 1 exp(-1/8). Map 1 yields: its mass
/// // near point 0 is (1 + exp(-1/2)) / 2.
/// let want = (1.0 + (-0.5f32).exp()) / 2.0;
/// assert!((o - want).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn map_overlap_mean(maps: &Tensor, beta: f64, sigma: f64) -> Result<Tensor> {
    let overlap = map_overlap(maps, beta, sigma)?;
    let (b, k, _) = overlap.dims3()?;
    if k < 2 || b == 0 {
        return Ok(Tensor::zeros((), maps.dtype(), maps.device())?);
    }
    let eye = Tensor::eye(k, maps.dtype(), maps.device())?;
    // Each map's mass near its own point: (B, K), held fixed.
    let own = overlap.detach().broadcast_mul(&eye)?.sum(D::Minus1)?;
    let (own_k, own_j) = (own.unsqueeze(2)?, own.unsqueeze(1)?);
    // yields[b, k, j]: 1 when map k is less concentrated than map j, 1/2 on a tie.
    let less = own_k.broadcast_lt(&own_j)?.to_dtype(maps.dtype())?;
    let tie = own_k.broadcast_eq(&own_j)?.to_dtype(maps.dtype())?;
    let yields = ((less + tie.affine(0.5, 0.0)?)?.broadcast_mul(&eye.affine(-1.0, 1.0)?))?;
    let pairs = (k * (k - 1) / 2) as f64;
    let per_image = (overlap * yields)?
        .sum(D::Minus1)?
        .sum(D::Minus1)?
        .affine(1.0 / pairs, 0.0)?;
    Ok(per_image.mean_all()?)
}
