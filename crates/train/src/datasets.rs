//! Builds the train / validation / test splits an experiment names.

use std::sync::Arc;

use landmark_ssl_data::{self as data, Dataset};

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};

/// The three splits of an experiment; the training split carries the semi-supervised label
/// flags (`has_landmarks`, `has_attributes`).
#[derive(Debug, Clone)]
pub struct Splits {
    /// The training split, with its label flags.
    pub train: Arc<Dataset>,
    /// The validation split (every label kept), which chooses the best epoch.
    pub valid: Arc<Dataset>,
    /// The test split (every label kept), evaluated once at the end.
    pub test: Arc<Dataset>,
    /// How many training images kept which labels.
    pub labels: data::LabelSummary,
}

/// Generates or loads the data of `cfg.data`, splits it, and marks the labelled subsets of
/// the training split (`cfg.labels`, class-balanced, deterministic for `cfg.seed`).
pub fn build_splits(cfg: &ExperimentConfig) -> Result<Splits> {
    let d = &cfg.data;
    let [mut train, valid, test] = match d.kind.as_str() {
        "blocks" => data::blocks::generate_splits(d.generated_sizes, cfg.seed)?,
        "shapes" => {
            let [a, b, c] = d.generated_sizes;
            [
                data::shapes::generate(a, cfg.seed)?,
                data::shapes::generate(b, cfg.seed.wrapping_add(1_000_003))?,
                data::shapes::generate(c, cfg.seed.wrapping_add(2_000_006))?,
            ]
        }
        _ => load_real(cfg)?,
    };
    // Balanced over the named class attribute, else over the data's first one (the paper
    // balances the labelled Blocks images over the 15 configurations).
    let balance_by = cfg
        .data
        .balance_by
        .clone()
        .or_else(|| train.meta.classes.keys().next().cloned());
    let labels = data::semi_supervised_by(
        &mut train,
        cfg.labels.landmark_fraction,
        cfg.labels.attribute_fraction,
        cfg.seed,
        balance_by.as_deref(),
    )?;
    Ok(Splits {
        train: Arc::new(train),
        valid: Arc::new(valid),
        test: Arc::new(test),
        labels,
    })
}

/// Real data: the training file split into train / valid (and test when no test file is
/// given), by subject when subjects are known.
fn load_real(cfg: &ExperimentConfig) -> Result<[Dataset; 3]> {
    let d = &cfg.data;
    let train_path = d.train.as_ref().ok_or_else(|| Error::InvalidSetting {
        field: "data.train".into(),
        reason: format!("data kind `{}` needs a `train` path", d.kind),
    })?;
    let load = |path: &std::path::Path| -> Result<Dataset> { crate::formats::load(d, path) };
    let full = load(train_path)?;
    let by_subject = full.samples.iter().all(|s| s.subject.is_some());
    let split = |ds: &Dataset, fr: &[f64]| -> Result<Vec<Dataset>> {
        Ok(if by_subject {
            data::split::split_by_subject(ds, fr, cfg.seed)?
        } else {
            data::split::random_split(ds, fr, cfg.seed)?
        })
    };
    match &d.test {
        Some(test_path) => {
            let test = load(test_path)?;
            let v = d.valid_fraction;
            let mut parts = split(&full, &[1.0 - v, v])?.into_iter();
            match (parts.next(), parts.next()) {
                (Some(a), Some(b)) => Ok([a, b, test]),
                _ => Err(Error::InvalidSetting {
                    field: "data.valid_fraction".into(),
                    reason: "the split gave fewer than two parts".into(),
                }),
            }
        }
        None => {
            let (v, t) = (d.valid_fraction, d.test_fraction);
            let mut parts = split(&full, &[1.0 - v - t, v, t])?.into_iter();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), Some(c)) => Ok([a, b, c]),
                _ => Err(Error::InvalidSetting {
                    field: "data.test_fraction".into(),
                    reason: "the split gave fewer than three parts".into(),
                }),
            }
        }
    }
}
