//! The objective of one training step (Eq. 2 of the paper): from the model's output on a
//! batch and the costs in force, the unweighted terms that
//! [`landmark_ssl_losses::ObjectiveWeights::combine`] weighs and sums.
//!
//! The [`crate::Trainer`] calls [`step_terms`] for every step and weighs the terms with
//! [`weights_at`]; a program with its own loop calls both to optimise exactly the trainer's
//! objective.

use candle_core::Tensor;
use rand::Rng;

use landmark_ssl_data::Batch;
use landmark_ssl_losses as losses;
use landmark_ssl_models::{HeadKind, LandmarkKind, LandmarkModel, ModelOutput};

use crate::config::{CostConfig, EltOn, ExperimentConfig};
use crate::error::{Error, Result};

/// The unweighted terms of one step, and what ELT drew and measured.
#[derive(Debug, Default)]
pub struct StepTerms {
    /// The terms for [`landmark_ssl_losses::ObjectiveWeights::combine`].
    pub terms: losses::Terms,
    /// ELT's transforms and per-term errors, when ELT ran on this batch.
    pub elt: Option<losses::EltOutput>,
}

impl StepTerms {
    /// Whether no term applies to the batch (e.g. A alone and no attribute label in it).
    pub fn is_empty(&self) -> bool {
        let t = &self.terms;
        t.landmark.is_none()
            && t.attributes.is_empty()
            && t.elt.is_none()
            && t.weight_decay.is_none()
    }
}

/// The terms of Eq. 2 for `batch`, whose model output (training mode) is `out`.
///
/// * `costs`: the costs in force this step (`CostConfig::active(epoch)`): L on the
///   landmark-labelled points (the squared error for soft-argmax models, the per-pixel
///   cross-entropy of the maps for heat-map models), A on every head with labels in the
///   batch, ELT (`elt`, which must be `Some` when `costs.elt`) on the images `costs.elt_on`
///   selects, and the bound on the maps' scale (`costs.map_logit_bound`) and the cost on
///   their spread (`costs.map_spread`) and overlap (`costs.map_overlap`) on every image of
///   the batch. Weight decay is left to the caller (it reads the variables, not the batch).
/// * `rng`: draws ELT's transforms.
///
/// ELT warps the batch's images as the pipeline would have warped the original image: it
/// fills outside the frame with the batch's [`Batch::pad_values`] and normalises the warped
/// images again when the batch's images were normalised (see [`losses::EltImages`]).
pub fn step_terms<R: Rng + ?Sized>(
    model: &LandmarkModel,
    out: &ModelOutput,
    batch: &Batch,
    costs: &CostConfig,
    elt: Option<&losses::Elt>,
    rng: &mut R,
) -> Result<StepTerms> {
    let mut st = StepTerms::default();
    if costs.landmark && has_any(&batch.landmark_mask)? {
        st.terms.landmark = Some(match model.landmark_kind() {
            LandmarkKind::Softmax => {
                let maps = out.maps.as_ref().ok_or_else(|| Error::InvalidSetting {
                    field: "model".into(),
                    reason: "a softmax model returned no maps".into(),
                })?;
                losses::heatmap_cross_entropy(maps, &batch.landmarks, &batch.landmark_mask)?.loss
            }
            LandmarkKind::SoftArgmax => {
                losses::landmark_loss(&out.landmarks, &batch.landmarks, &batch.landmark_mask)?
            }
        });
    }
    if costs.attribute {
        for head in model.config().heads() {
            let Some(pred) = out.attributes.get(&head.name) else {
                continue;
            };
            let term = match head.kind {
                HeadKind::Class { .. } => match batch.classes.get(&head.name) {
                    Some((labels, mask)) if has_any(mask)? => {
                        Some(losses::smoothed_cross_entropy_loss(
                            &head.name,
                            pred,
                            labels,
                            mask,
                            costs.label_smoothing,
                        )?)
                    }
                    _ => None,
                },
                HeadKind::Real { .. } => match batch.reals.get(&head.name) {
                    Some((values, mask)) if has_any(mask)? => {
                        Some(losses::l1_loss(&head.name, pred, values, mask)?)
                    }
                    _ => None,
                },
            };
            if let Some(t) = term {
                st.terms.attributes.insert(head.name.clone(), t);
            }
        }
    }
    if costs.map_logit_bound > 0.0 && model.landmark_kind() == LandmarkKind::SoftArgmax {
        if let (Some(maps), Some(beta)) = (&out.maps, model.config().beta()) {
            st.terms.map_scale = Some(losses::map_range_excess(maps, beta, costs.map_logit_bound)?);
        }
    }
    if costs.map_spread > 0.0 && model.landmark_kind() == LandmarkKind::SoftArgmax {
        if let (Some(maps), Some(beta)) = (&out.maps, model.config().beta()) {
            st.terms.map_spread = Some(losses::map_spread_mean(maps, beta)?);
        }
    }
    if costs.map_overlap > 0.0 && model.landmark_kind() == LandmarkKind::SoftArgmax {
        if let (Some(maps), Some(beta)) = (&out.maps, model.config().beta()) {
            st.terms.map_overlap = Some(losses::map_overlap_mean(
                maps,
                beta,
                costs.map_overlap_sigma,
            )?);
        }
    }
    if costs.elt {
        let elt = elt.ok_or_else(|| Error::InvalidSetting {
            field: "costs.elt".into(),
            reason: "the ELT cost is on but no ELT settings were given".into(),
        })?;
        let mask = match costs.elt_on {
            EltOn::All => batch.has_landmarks.ones_like()?,
            EltOn::Unlabelled => (1.0 - &batch.has_landmarks)?,
        };
        if has_any(&mask)? {
            let locate = |x: &Tensor| -> candle_core::Result<Tensor> {
                model
                    .forward_t(x, true)
                    .map(|o| o.landmarks)
                    .map_err(candle_core::Error::wrap)
            };
            let images = losses::EltImages {
                images: &batch.images,
                pad_values: Some(&batch.pad_values),
                renormalize: batch.normalized,
            };
            let e = elt.loss(locate, images, &out.landmarks, &mask, rng)?;
            st.terms.elt = Some(e.loss.clone());
            st.elt = Some(e);
        }
    }
    Ok(st)
}

/// The weights that combine a step's terms (Eq. 2): lambda, alpha, gamma and the attribute
/// weights of `costs`, beta of the model (1 for models without one). Validated.
pub fn objective_weights(
    costs: &CostConfig,
    model_cfg: &landmark_ssl_models::ModelConfig,
) -> Result<losses::ObjectiveWeights> {
    let weights = losses::ObjectiveWeights {
        lambda: costs.lambda,
        alpha: costs.alpha,
        gamma: costs.gamma,
        beta: model_cfg.beta().unwrap_or(1.0),
        attributes: costs.attribute_weights.clone(),
        default_attribute_weight: 1.0,
        spread: costs.map_spread,
        overlap: costs.map_overlap,
    };
    weights.validate()?;
    Ok(weights)
}

/// The weights of step `step` of the `steps` of `epoch` (all 0-based), as the trainer
/// weighs every step: `weights` ([`objective_weights`]) with the weights of the costs that
/// join after the warm-up (A and ELT after L, ELT after A, and the costs on the maps'
/// shape) scaled by
/// [`ExperimentConfig::cost_rampup_factor`] while they ramp in.
pub fn weights_at(
    cfg: &ExperimentConfig,
    weights: &losses::ObjectiveWeights,
    epoch: usize,
    step: usize,
    steps: usize,
) -> losses::ObjectiveWeights {
    let f = cfg.cost_rampup_factor(epoch, step, steps);
    let mut w = weights.clone();
    if f < 1.0 {
        w.alpha *= f;
        w.spread *= f;
        w.overlap *= f;
        if cfg.costs.landmark {
            w.default_attribute_weight *= f;
            w.attributes.values_mut().for_each(|v| *v *= f);
        }
    }
    w
}

/// Whether a (B,) or (B, K) 0/1 mask has any 1.
pub(crate) fn has_any(mask: &Tensor) -> Result<bool> {
    Ok(mask
        .to_dtype(candle_core::DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?
        > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A and ELT ramp in over `costs.rampup_epochs` from the join; L and gamma do not.
    #[test]
    fn a_and_elt_ramp_in_after_the_warm_up() -> Result<()> {
        let mut cfg = ExperimentConfig::default();
        cfg.costs.warmup_epochs = 2;
        cfg.costs.rampup_epochs = 1;
        cfg.costs.attribute_weights.insert("config".into(), 2.0);
        let model = landmark_ssl_models::preset("seqmt-blocks")?;
        let base = objective_weights(&cfg.costs, &model)?;
        let steps = 4;
        let at = |epoch, step| weights_at(&cfg, &base, epoch, step, steps);
        assert_eq!(at(1, 3).alpha, base.alpha);
        for step in 0..steps {
            let w = at(2, step);
            let f = (step + 1) as f64 / steps as f64;
            approx::assert_abs_diff_eq!(w.alpha, base.alpha * f, epsilon = 1e-12);
            approx::assert_abs_diff_eq!(w.attributes["config"], 2.0 * f, epsilon = 1e-12);
            approx::assert_abs_diff_eq!(w.default_attribute_weight, f, epsilon = 1e-12);
            assert_eq!((w.lambda, w.gamma), (base.lambda, base.gamma));
        }
        assert_eq!(at(3, 0).alpha, base.alpha);
        // Without L, A trains through the warm-up and only ELT ramps in.
        cfg.costs.set_from_label("ELT+A")?;
        cfg.costs.map_spread = 0.001;
        cfg.costs.map_overlap = 1.0;
        let base = objective_weights(&cfg.costs, &model)?;
        let at = |epoch, step| weights_at(&cfg, &base, epoch, step, steps);
        let w = at(2, 1);
        approx::assert_abs_diff_eq!(w.alpha, base.alpha * 0.5, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(w.spread, 0.0005, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(w.overlap, 0.5, epsilon = 1e-12);
        assert_eq!(w.attributes["config"], 2.0);
        assert_eq!(w.default_attribute_weight, 1.0);
        Ok(())
    }
}
