//! The per-pixel softmax cross-entropy of heat-map models (RCN, Heatmap-MT).

use candle_core::{Tensor, D};

use crate::{check, Error, Result};

/// The pixel that a point (x, y) falls on, or `None` when the point is outside the image or
/// not finite.
///
/// A point is inside an image of size (H, W) when `-0.5 <= x <= W - 0.5` and
/// `-0.5 <= y <= H - 0.5` (the workspace convention: pixel centres at integers). It is
/// rounded to the nearest pixel centre with halves rounded up (`floor(x + 0.5)`), then
/// clamped to `0..W` and `0..H` so that the closed upper border `W - 0.5` maps to the last
/// column. Returns `(column, row)`.
pub fn nearest_pixel(x: f64, y: f64, height: usize, width: usize) -> Option<(usize, usize)> {
    if !x.is_finite() || !y.is_finite() || height == 0 || width == 0 {
        return None;
    }
    let (wf, hf) = (width as f64, height as f64);
    if !(-0.5..=wf - 0.5).contains(&x) || !(-0.5..=hf - 0.5).contains(&y) {
        return None;
    }
    // In range: floor(x + 0.5) is in 0..=W, clamp the closed upper border.
    let col = ((x + 0.5).floor() as usize).min(width - 1);
    let row = ((y + 0.5).floor() as usize).min(height - 1);
    Some((col, row))
}

/// The output of [`heatmap_cross_entropy`].
#[derive(Debug, Clone)]
pub struct HeatmapCeOutput {
    /// The scalar loss (nats), in maps' dtype.
    pub loss: Tensor,
    /// The number of (image, landmark) terms that entered the loss: mask 1 and the point
    /// inside the map.
    pub n_points: usize,
}

/// Per-pixel softmax cross-entropy on the ground-truth pixel (the RCN / Heatmap-MT
/// landmark cost), unweighted.
///
/// * `maps`: (B, K, H, W) logits, float; the softmax runs over the H*W pixels of each map.
/// * `points`: (B, K, 2) ground-truth points (x, y) in **map pixels** (the workspace
///   convention, pixel centres at integers); each is rounded to the nearest pixel with
///   [`nearest_pixel`] (halves round up).
/// * `mask`: (B, K), 1 where the point is labelled and visible (`>= 0.5` counts).
///
/// A term enters the loss when its mask is 1 and its point lies inside the map
/// (`-0.5 <= x <= W - 0.5`, `-0.5 <= y <= H - 0.5`, finite); other points (missing,
/// invisible, outside the crop) are left out. The loss is
/// `-sum_{valid (b,k)} log_softmax(maps[b,k])[row, col] / max(1, n_valid)`,
/// normalised by the number of valid points; 0 with a zero gradient when there is none.
/// The points and the mask are read on the host.
pub fn heatmap_cross_entropy(
    maps: &Tensor,
    points: &Tensor,
    mask: &Tensor,
) -> Result<HeatmapCeOutput> {
    const F: &str = "heatmap_cross_entropy";
    let dims = check::rank(F, "maps", maps, 4, "(B, K, H, W) logits")?;
    let (b, k, h, w) = (dims[0], dims[1], dims[2], dims[3]);
    check::float(F, "maps", maps)?;
    if h == 0 || w == 0 {
        return Err(Error::Shape {
            func: F,
            arg: "maps".to_string(),
            expected: "(B, K, H, W) with H, W >= 1".to_string(),
            got: maps.dims().to_vec(),
        });
    }
    check::dims(F, "points", points, &[b, k, 2], "(B, K, 2) like `maps`")?;
    check::float(F, "points", points)?;
    check::dims(F, "mask", mask, &[b, k], "(B, K) like `maps`")?;
    let host_points = points
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let host_mask = check::mask_to_host(mask)?;
    let mut idx = Vec::with_capacity(b * k);
    let mut keep = Vec::with_capacity(b * k);
    let mut n_points = 0usize;
    for (i, &present) in host_mask.iter().enumerate() {
        let pix = if present {
            nearest_pixel(host_points[2 * i], host_points[2 * i + 1], h, w)
        } else {
            None
        };
        match pix {
            Some((col, row)) => {
                idx.push((row * w + col) as u32);
                keep.push(1u8);
                n_points += 1;
            }
            None => {
                idx.push(0);
                keep.push(0u8);
            }
        }
    }
    let device = maps.device();
    let logits = maps.reshape((b * k, h * w))?;
    let logp = check::log_softmax_last(&logits)?;
    let idx = Tensor::from_vec(idx, (b * k, 1), device)?;
    let picked = logp.gather(&idx, D::Minus1)?.squeeze(1)?; // (B*K,)
    let keep = Tensor::from_vec(keep, b * k, device)?;
    let picked = keep.where_cond(&picked, &picked.zeros_like()?)?;
    let loss = picked
        .sum_all()?
        .affine(-1.0 / n_points.max(1) as f64, 0.0)?;
    Ok(HeatmapCeOutput { loss, n_points })
}
