//! Range checks of an experiment, run before any data are generated or loaded, and the
//! limits on what an experiment may make the pipeline allocate.

use landmark_ssl_metrics::Normalizer;

use super::{DataKind, ExperimentConfig};
use crate::error::{Error, Result};

/// The most images generated data may have over its three splits: they are held in memory
/// (60x60 bytes each, plus their labels), about 0.4 GB at the limit.
pub const MAX_GENERATED_IMAGES: usize = 100_000;

/// The largest batch: a step's memory grows with it (the paper trains with 32 to 64).
pub const MAX_BATCH_SIZE: usize = 1024;

/// The largest `data.crop_factor` (the crop's side over the object's box).
pub const MAX_CROP_FACTOR: f64 = 100.0;

/// The largest experiment file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl ExperimentConfig {
    /// Checks ranges that serde cannot, before any data are generated or loaded.
    pub fn validate(&self) -> Result<()> {
        self.validate_data()?;
        self.validate_schedule()?;
        self.validate_labels_and_costs()?;
        self.validate_eval()
    }

    fn validate_data(&self) -> Result<()> {
        let d = &self.data;
        if d.layout.is_some() && !matches!(d.kind, DataKind::GenericCsv | DataKind::GenericJson) {
            return invalid(
                "data.layout",
                format!(
                    "a layout file is for generic-csv and generic-json data; `{}` has its own layout",
                    d.kind
                ),
            );
        }
        if d.kind.is_file_format() && d.train.is_none() {
            return invalid(
                "data.train",
                format!("data kind `{}` needs a `train` path", d.kind),
            );
        }
        if !matches!(d.channels, 1 | 3) {
            return invalid(
                "data.channels",
                format!(
                    "{}: images are prepared with 1 (grey) or 3 (RGB) channels",
                    d.channels
                ),
            );
        }
        if d.kind.is_generated() {
            if let Some(i) = d.generated_sizes.iter().position(|&n| n == 0) {
                return invalid(
                    "data.generated_sizes",
                    format!(
                        "{:?}: the {} split has no images",
                        d.generated_sizes,
                        ["training", "validation", "test"][i]
                    ),
                );
            }
            let total = d
                .generated_sizes
                .iter()
                .try_fold(0usize, |acc, &n| acc.checked_add(n));
            let max = self.limits.generated_images();
            if total.is_none_or(|t| t > max) {
                return invalid(
                    "data.generated_sizes",
                    format!(
                        "{:?} images; generated data may have at most {max} in all (the images stay in memory; limits.max_generated_images)",
                        d.generated_sizes
                    ),
                );
            }
        }
        let held_out = |v: f64| v.is_finite() && (0.0..1.0).contains(&v);
        for (field, v) in [
            ("data.valid_fraction", d.valid_fraction),
            ("data.test_fraction", d.test_fraction),
        ] {
            if !held_out(v) {
                return invalid(field, format!("{v} is not in [0, 1)"));
            }
        }
        if d.test.is_none() && d.valid_fraction + d.test_fraction >= 1.0 {
            return invalid(
                "data.test_fraction",
                format!(
                    "valid_fraction {} + test_fraction {} leave no training images",
                    d.valid_fraction, d.test_fraction
                ),
            );
        }
        if !(d.crop_factor.is_finite() && d.crop_factor > 0.0 && d.crop_factor <= MAX_CROP_FACTOR) {
            return invalid(
                "data.crop_factor",
                format!("{} is not in (0, {MAX_CROP_FACTOR}]", d.crop_factor),
            );
        }
        if !(d.jitter_rotation_deg.is_finite() && (0.0..=180.0).contains(&d.jitter_rotation_deg)) {
            return invalid(
                "data.jitter_rotation_deg",
                format!("{} is not in [0, 180]", d.jitter_rotation_deg),
            );
        }
        if !held_out(d.jitter_shift) {
            return invalid(
                "data.jitter_shift",
                format!("{} is not in [0, 1)", d.jitter_shift),
            );
        }
        Ok(())
    }

    fn validate_eval(&self) -> Result<()> {
        let t = self.eval.threshold;
        if !(t.is_finite() && t > 0.0) {
            return invalid("eval.threshold", format!("{t} is not a positive number"));
        }
        if self.eval.thresholds.len() > 32 {
            return invalid(
                "eval.thresholds",
                format!("{} thresholds; at most 32", self.eval.thresholds.len()),
            );
        }
        if let Some(t) = self
            .eval
            .thresholds
            .iter()
            .find(|t| !(t.is_finite() && **t > 0.0))
        {
            return invalid("eval.thresholds", format!("{t} is not a positive number"));
        }
        let n = &self.eval.normalizer;
        if let Normalizer::FaceSize { width, height } | Normalizer::BoxDiagonal { width, height } =
            *n
        {
            if !(width.is_finite() && height.is_finite() && width > 0.0 && height > 0.0) {
                return invalid(
                    "eval.normalizer",
                    format!("{n:?}: the box's sides must be positive numbers"),
                );
            }
        }
        let highest = match *n {
            Normalizer::EyeCentres68 => Some(47),
            Normalizer::OuterEyeCorners68 => Some(45),
            Normalizer::EyeCentres5 => Some(1),
            Normalizer::WristWidth => Some(24),
            Normalizer::Points(i, j) => {
                if i == j {
                    return invalid(
                        "eval.normalizer",
                        format!("{n:?}: the two points must differ"),
                    );
                }
                Some(i.max(j))
            }
            _ => None,
        };
        if let Some(highest) = highest {
            let k = self.resolved_model()?.num_landmarks();
            if highest >= k {
                return invalid(
                    "eval.normalizer",
                    format!(
                        "{n:?} needs landmark index {highest} (0-based), the model has {k} landmarks"
                    ),
                );
            }
        }
        Ok(())
    }

    fn validate_schedule(&self) -> Result<()> {
        let s = &self.schedule;
        if s.epochs == 0 {
            return invalid("schedule.epochs", "must be at least 1".into());
        }
        let max_batch = self.limits.batch_size();
        if s.batch_size == 0 || s.batch_size > max_batch {
            return invalid(
                "schedule.batch_size",
                format!(
                    "{} is not in [1, {max_batch}] (limits.max_batch_size)",
                    s.batch_size
                ),
            );
        }
        if s.labelled_per_batch > max_batch {
            return invalid(
                "schedule.labelled_per_batch",
                format!(
                    "{} is more than {max_batch} (limits.max_batch_size)",
                    s.labelled_per_batch
                ),
            );
        }
        if self.costs.landmark && s.labelled_per_batch == 0 {
            return invalid(
                "schedule.labelled_per_batch",
                "is 0, but the landmark cost needs labelled images in every step".to_string(),
            );
        }
        s.adam.validate("schedule.adam")?;
        if !(s.lr_decay.is_finite() && s.lr_decay > 0.0) {
            return invalid(
                "schedule.lr_decay",
                format!("{} is not a positive number", s.lr_decay),
            );
        }
        if !(s.clip_grad_norm.is_finite() && s.clip_grad_norm >= 0.0) {
            return invalid(
                "schedule.clip_grad_norm",
                format!(
                    "{} is not a non-negative number (0 turns clipping off)",
                    s.clip_grad_norm
                ),
            );
        }
        let rel = s.clip_grad_relative;
        if !(rel == 0.0 || (rel.is_finite() && rel > 1.0)) {
            return invalid(
                "schedule.clip_grad_relative",
                format!("{rel} is neither 0 (off) nor a number above 1"),
            );
        }
        if !(0.0..1.0).contains(&s.weight_average_decay) {
            return invalid(
                "schedule.weight_average_decay",
                format!(
                    "{} is not in [0, 1) (0 turns the average off)",
                    s.weight_average_decay
                ),
            );
        }
        let scale = s.attribute_lr_scale;
        if !(scale.is_finite() && scale > 0.0 && scale <= 1.0) {
            return invalid(
                "schedule.attribute_lr_scale",
                format!("{scale} is not in (0, 1]"),
            );
        }
        Ok(())
    }

    fn validate_labels_and_costs(&self) -> Result<()> {
        let frac = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !frac(self.labels.landmark_fraction) {
            return invalid(
                "labels.landmark_fraction",
                format!("{} is not in [0, 1]", self.labels.landmark_fraction),
            );
        }
        if !frac(self.labels.attribute_fraction) {
            return invalid(
                "labels.attribute_fraction",
                format!("{} is not in [0, 1]", self.labels.attribute_fraction),
            );
        }
        for (field, v) in [
            ("costs.lambda", self.costs.lambda),
            ("costs.alpha", self.costs.alpha),
            ("costs.gamma", self.costs.gamma),
            ("costs.map_logit_bound", self.costs.map_logit_bound),
            ("costs.map_spread", self.costs.map_spread),
            ("costs.map_overlap", self.costs.map_overlap),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return invalid(field, format!("{v} is not a non-negative number"));
            }
        }
        let smoothing = self.costs.label_smoothing;
        if !(smoothing.is_finite() && (0.0..1.0).contains(&smoothing)) {
            return invalid(
                "costs.label_smoothing",
                format!("{smoothing} is not in [0, 1)"),
            );
        }
        let sigma = self.costs.map_overlap_sigma;
        if !(sigma.is_finite() && sigma > 0.0) {
            return invalid(
                "costs.map_overlap_sigma",
                format!("{sigma} is not a positive number of pixels"),
            );
        }
        for (head, &w) in &self.costs.attribute_weights {
            if !(w.is_finite() && w >= 0.0) {
                return invalid(
                    &format!("costs.attribute_weights.{head}"),
                    format!("{w} is not a non-negative number"),
                );
            }
        }
        if !(self.costs.landmark || self.costs.attribute || self.costs.elt) {
            return invalid("costs", "no cost term is enabled".into());
        }
        Ok(())
    }
}

fn invalid(field: &str, reason: String) -> Result<()> {
    Err(Error::InvalidSetting {
        field: field.to_string(),
        reason,
    })
}
