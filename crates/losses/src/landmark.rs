//! The landmark regression cost of Eq. 2: `lambda / (S K) * sum ||GT_k - L_k(I)||^2`.

use candle_core::{DType, Tensor};

use crate::{check, Result};

/// Masked mean squared Euclidean landmark error (unweighted: the objective multiplies it by
/// `lambda`).
///
/// * `pred`: (B, K, 2) predicted points (x, y) in pixels, float.
/// * `target`: (B, K, 2) ground-truth points in the same pixels (values at masked entries
///   are ignored and may be NaN).
/// * `mask`: (B, K), 1 where the point is labelled and visible, 0 where it is missing,
///   invisible, or the image carries no landmark labels (an entry counts when `>= 0.5`).
///
/// Returns a scalar (rank-0) tensor in pred's dtype, in squared pixels:
///
/// `sum_{b,k} mask[b,k] * ((px - tx)^2 + (py - ty)^2) / max(1, sum_{b,k} mask[b,k])`.
///
/// **Normalisation.** The divisor is the number of labelled points (the count of
/// `mask == 1` entries, `S * K_visible`), not the batch size; for a batch whose S labelled
/// images have all K points visible it is exactly the paper's `1 / (S K)`. When the mask
/// is all zero the loss is 0 (not NaN) and it is still differentiable (its gradient is
/// zero). Masked entries take no part in the value or the gradient, even when the
/// prediction or the target there is NaN.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// let pred = Tensor::new(&[[[1f32, 2.], [0., 0.]]], &dev)?;
/// let target = Tensor::new(&[[[4f32, 6.], [9., 9.]]], &dev)?;
/// let mask = Tensor::new(&[[1f32, 0.]], &dev)?;
/// let loss = landmark_ssl_losses::landmark_loss(&pred, &target, &mask)?;
/// assert_eq!(loss.to_scalar::<f32>()?, 25.0); // 3^2 + 4^2 over one labelled point
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn landmark_loss(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const F: &str = "landmark_loss";
    let (b, k) = check::points(F, "pred", pred)?;
    check::float(F, "pred", pred)?;
    check::dims(F, "target", target, &[b, k, 2], "(B, K, 2) like `pred`")?;
    check::float(F, "target", target)?;
    check::dims(F, "mask", mask, &[b, k], "(B, K) like `pred`")?;
    let dtype = pred.dtype();
    let valid = check::binarise(mask)?; // (B, K) u8
    let valid3 = valid.unsqueeze(2)?.broadcast_as((b, k, 2))?.contiguous()?;
    let zeros = pred.zeros_like()?;
    let p = valid3.where_cond(pred, &zeros)?;
    let t = valid3.where_cond(&target.to_dtype(dtype)?, &zeros)?;
    let sum = (p - t)?.sqr()?.sum_all()?;
    let count = valid
        .to_dtype(DType::F32)?
        .sum_all()?
        .maximum(1.0)?
        .to_dtype(dtype)?;
    Ok(sum.div(&count)?)
}
