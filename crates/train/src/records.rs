//! The record of each epoch (one line of `log.jsonl`, one entry of `state.json`'s
//! history), and the tally of an epoch's steps that it is made from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One epoch in the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Mean of each weighted cost term over the epoch's steps (`landmark`, `elt`,
    /// `attribute:<head>`, `weight_decay`, `total`).
    pub train: BTreeMap<String, f64>,
    /// Validation mean error.
    pub valid_error: f64,
    /// Unit of `valid_error`: `px` or `fraction`.
    pub valid_unit: String,
    /// Validation accuracy per class head.
    pub valid_accuracy: BTreeMap<String, f64>,
    /// Training images per second.
    pub images_per_sec: f64,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// Whether this epoch is the best so far.
    pub best: bool,
    /// The global L2 norm of each step's gradients, before any clipping (absent in logs
    /// written by versions that did not record it).
    #[serde(default)]
    pub grad_norm: Option<GradNormStats>,
    /// The logit range `beta * (max - mean)` of the soft-argmax maps of the epoch's training
    /// images ([`landmark_ssl_losses::map_logit_range`]): how close the maps are to a hard
    /// argmax. Absent for models without soft-argmax maps and in older logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_logit_range: Option<MapRangeStats>,
}

/// The soft-argmax maps' logit ranges over an epoch's training steps.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MapRangeStats {
    /// Mean over the steps of the mean over the batch's maps.
    pub mean: f64,
    /// Largest range of any map in any step.
    pub max: f64,
}

/// The gradient norms of an epoch's steps.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GradNormStats {
    /// Mean over the steps.
    pub mean: f64,
    /// Largest of the steps.
    pub max: f64,
    /// Steps whose gradients were scaled down by `schedule.clip_grad_norm`.
    pub clipped_steps: usize,
}

/// What the steps of one epoch add up to: the sum and count of each cost term, and the
/// gradient norms of the steps that were taken.
#[derive(Debug, Default)]
pub(crate) struct EpochTally {
    sums: BTreeMap<String, (f64, usize)>,
    norms: Vec<f64>,
    clipped_steps: usize,
    /// Sum of the steps' mean map ranges, the number of steps, the largest range.
    map_ranges: (f64, usize, f64),
}

impl EpochTally {
    /// Adds one step: its weighted cost terms, and its gradient norm before clipping with
    /// whether it was clipped (`None` when no step was taken).
    pub(crate) fn add_step(
        &mut self,
        costs: &BTreeMap<String, f64>,
        grad_norm: Option<(f64, bool)>,
    ) {
        for (k, v) in costs {
            let e = self.sums.entry(k.clone()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
        if let Some((norm, clipped)) = grad_norm {
            self.norms.push(norm);
            self.clipped_steps += usize::from(clipped);
        }
    }

    /// Adds one step's map logit ranges: their mean and largest value.
    pub(crate) fn add_map_range(&mut self, mean: f64, max: f64) {
        let r = &mut self.map_ranges;
        r.0 += mean;
        r.1 += 1;
        r.2 = r.2.max(max);
    }

    /// The map ranges' statistics; `None` when no step measured them.
    pub(crate) fn map_range(&self) -> Option<MapRangeStats> {
        let (sum, n, max) = self.map_ranges;
        (n > 0).then(|| MapRangeStats {
            mean: sum / n as f64,
            max,
        })
    }

    /// The mean of each cost term over the steps that had it.
    pub(crate) fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(k, &(s, n))| (k.clone(), s / n.max(1) as f64))
            .collect()
    }

    /// The gradient norms' statistics; `None` when no step was taken.
    pub(crate) fn grad_norm(&self) -> Option<GradNormStats> {
        let norms = &self.norms;
        (!norms.is_empty()).then(|| GradNormStats {
            mean: norms.iter().sum::<f64>() / norms.len() as f64,
            max: norms.iter().copied().fold(0.0, f64::max),
            clipped_steps: self.clipped_steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_averages_each_term_over_the_steps_that_have_it() {
        let mut t = EpochTally::default();
        assert!(t.means().is_empty());
        assert_eq!(t.grad_norm(), None);
        let step = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
        };
        t.add_step(
            &step(&[("landmark", 2.0), ("total", 2.0)]),
            Some((3.0, false)),
        );
        t.add_step(
            &step(&[("landmark", 4.0), ("elt", 1.0), ("total", 5.0)]),
            Some((5.0, true)),
        );
        // A batch that carried no cost: no terms, no step.
        t.add_step(&BTreeMap::new(), None);
        let m = t.means();
        assert_eq!(m["landmark"], 3.0);
        assert_eq!(m["elt"], 1.0);
        assert_eq!(m["total"], 3.5);
        assert_eq!(
            t.grad_norm(),
            Some(GradNormStats {
                mean: 4.0,
                max: 5.0,
                clipped_steps: 1
            })
        );
    }
}
