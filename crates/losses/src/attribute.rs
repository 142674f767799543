//! Attribute costs of Eq. 2: `-log P(a | I)` for class labels, `|a - a(I)|` (L1) for
//! real-valued attributes, each masked to the samples that carry the attribute.

use candle_core::{DType, Tensor};

use crate::{check, Error, Result};

/// Masked softmax cross-entropy of one classifier head (e.g. `emotion`, `camera`),
/// unweighted (the objective multiplies it by the head's weight).
///
/// * `head`: the head's name, used in errors.
/// * `logits`: (B, n) unnormalised class scores, float.
/// * `labels`: (B,) class indices in `0..n` (u32, as in `data::Batch`; u8 and i64 are
///   accepted too). Labels of samples whose mask is 0 are ignored (any value).
/// * `mask`: (B,) 1 where the sample carries this attribute, 0 elsewhere (`>= 0.5` counts).
///
/// Returns a scalar tensor in logits' dtype, in nats:
/// `-sum_b mask[b] * log_softmax(logits[b])[labels[b]] / max(1, sum_b mask[b])`,
/// i.e. normalised by the number of samples that carry the attribute; 0 (with a zero
/// gradient) when none does. The log-softmax subtracts the row maximum before `exp`, so
/// large logits do not overflow, and every op has a backward pass.
///
/// The labels are checked on the host: a carried label `>= n` is an
/// [`Error::LabelOutOfRange`] naming the head, the sample and the label.
///
/// ```
/// # use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// let logits = Tensor::new(&[[0f32, 0.], [5., -5.]], &dev)?;
/// let labels = Tensor::new(&[1u32, 7], &dev)?; // 7 is ignored: sample 1 is masked out
/// let mask = Tensor::new(&[1f32, 0.], &dev)?;
/// let ce = landmark_ssl_losses::cross_entropy_loss("emotion", &logits, &labels, &mask)?;
/// assert!((ce.to_scalar::<f32>()? - 2f32.ln()).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cross_entropy_loss(
    head: &str,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    masked_cross_entropy("cross_entropy_loss", head, logits, labels, mask, 0.0)
}

/// [`cross_entropy_loss`] against a label-smoothed target: the true class gets
/// `1 - smoothing` of the mass and every class `smoothing / n`, so the cost is
/// `(1 - smoothing) * (-log p_label) + smoothing * mean_j(-log p_j)` per sample, masked and
/// normalised as [`cross_entropy_loss`]. Its minimum sits at a finite margin, the true
/// logit `ln(1 + n (1 - smoothing) / smoothing)` above the others (4.9 nats for 15 classes
/// at 0.1), so once a head classifies a sample well the cost stops widening its margin,
/// and with it stops moving the inputs the head reads. `smoothing` must lie in `[0, 1)`; 0 is
/// [`cross_entropy_loss`] exactly.
pub fn smoothed_cross_entropy_loss(
    head: &str,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    smoothing: f64,
) -> Result<Tensor> {
    const F: &str = "smoothed_cross_entropy_loss";
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::InvalidArgument {
            context: F,
            field: "smoothing",
            value: smoothing.to_string(),
            reason: "must lie in [0, 1)",
        });
    }
    masked_cross_entropy(F, head, logits, labels, mask, smoothing)
}

fn masked_cross_entropy(
    func: &'static str,
    head: &str,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    smoothing: f64,
) -> Result<Tensor> {
    let dims = check::rank(
        func,
        &format!("logits[{head}]"),
        logits,
        2,
        "(B, n_classes) logits",
    )?;
    let (b, n) = (dims[0], dims[1]);
    check::float(func, &format!("logits[{head}]"), logits)?;
    check::dims(
        func,
        &format!("labels[{head}]"),
        labels,
        &[b],
        "(B,) like `logits`",
    )?;
    check::labels(func, &format!("labels[{head}]"), labels)?;
    check::dims(
        func,
        &format!("mask[{head}]"),
        mask,
        &[b],
        "(B,) like `logits`",
    )?;
    if n == 0 {
        return Err(Error::Shape {
            func,
            arg: format!("logits[{head}]"),
            expected: "(B, n_classes) with n_classes >= 1".to_string(),
            got: logits.dims().to_vec(),
        });
    }
    let host_labels = check::labels_to_host(labels)?;
    let host_mask = check::mask_to_host(mask)?;
    let mut safe = Vec::with_capacity(b);
    let mut count = 0usize;
    for (sample, (&label, &present)) in host_labels.iter().zip(&host_mask).enumerate() {
        if present {
            if label < 0 || label as u64 >= n as u64 {
                return Err(Error::LabelOutOfRange {
                    func,
                    head: head.to_string(),
                    sample,
                    label,
                    n_classes: n,
                });
            }
            count += 1;
            safe.push(label as u32);
        } else {
            safe.push(0u32);
        }
    }
    let dtype = logits.dtype();
    let device = logits.device();
    let logp = check::log_softmax_last(logits)?; // (B, n)
    let idx = Tensor::from_vec(safe, (b, 1), device)?;
    let mut picked = logp.gather(&idx, 1)?.squeeze(1)?; // (B,)
    if smoothing > 0.0 {
        let uniform = logp.mean(1)?; // (B,)
        picked = ((picked * (1.0 - smoothing))? + (uniform * smoothing)?)?;
    }
    let valid = check::binarise(mask)?;
    let picked = valid.where_cond(&picked, &picked.zeros_like()?)?;
    let denom = count.max(1) as f64;
    Ok(picked
        .sum_all()?
        .to_dtype(dtype)?
        .affine(-1.0 / denom, 0.0)?)
}

/// Masked L1 cost of a real-valued attribute vector (e.g. head pose yaw, pitch, roll),
/// unweighted.
///
/// * `head`: the attribute's name, used in errors.
/// * `pred`: (B, A) predicted values, float, in the attribute's units.
/// * `target`: (B, A) true values (ignored, and may be NaN, where the mask is 0).
/// * `mask`: (B,) 1 where the sample carries the attribute (`>= 0.5` counts).
///
/// Returns a scalar tensor `sum_b mask[b] * sum_a |pred[b,a] - target[b,a]| / max(1,
/// sum_b mask[b])`: the L1 norm of the error vector (summed over the A components, as the
/// paper's `|a - a(I)|`), averaged over the samples that carry the attribute; 0 when none
/// does. The gradient of `|x|` at exactly 0 is taken as +1 (candle's convention).
pub fn l1_loss(head: &str, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const F: &str = "l1_loss";
    let dims = check::rank(
        F,
        &format!("pred[{head}]"),
        pred,
        2,
        "(B, A) real attributes",
    )?;
    let (b, a) = (dims[0], dims[1]);
    check::float(F, &format!("pred[{head}]"), pred)?;
    check::dims(
        F,
        &format!("target[{head}]"),
        target,
        &[b, a],
        "(B, A) like `pred`",
    )?;
    check::float(F, &format!("target[{head}]"), target)?;
    check::dims(F, &format!("mask[{head}]"), mask, &[b], "(B,) like `pred`")?;
    let dtype = pred.dtype();
    let valid = check::binarise(mask)?;
    let valid2 = valid.unsqueeze(1)?.broadcast_as((b, a))?.contiguous()?;
    let zeros = pred.zeros_like()?;
    let p = valid2.where_cond(pred, &zeros)?;
    let t = valid2.where_cond(&target.to_dtype(dtype)?, &zeros)?;
    let sum = (p - t)?.abs()?.sum_all()?;
    let count = valid
        .to_dtype(DType::F32)?
        .sum_all()?
        .maximum(1.0)?
        .to_dtype(dtype)?;
    Ok(sum.div(&count)?)
}
