//! Builds the train / validation / test splits an experiment names.

use std::sync::Arc;

use landmark_ssl_data::{self as data, Dataset};

use crate::config::{DataKind, ExperimentConfig};
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

impl Splits {
    /// Splits a program built itself, labelled as the experiment asks: the first
    /// `cfg.labels` fractions of a class-balanced order of `train` keep their landmark and
    /// attribute labels (deterministic for `cfg.seed`), the rest are unlabelled; `valid` and
    /// `test` keep every label. The three must have the same landmarks (K) and attributes.
    pub fn new(
        mut train: Dataset,
        valid: Dataset,
        test: Dataset,
        cfg: &ExperimentConfig,
    ) -> Result<Self> {
        check_alike(&train, &valid, &test)?;
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

    /// Splits a program built itself, labelled as its samples say: a training sample's
    /// `has_landmarks` and `has_attributes` decide which costs it feeds (images with no
    /// annotation at all: `has_landmarks = false`, any landmarks of the right count);
    /// `cfg.labels` is not used. `valid` and `test` keep every label.
    pub fn as_flagged(train: Dataset, valid: Dataset, test: Dataset) -> Result<Self> {
        check_alike(&train, &valid, &test)?;
        let labels = data::LabelSummary {
            with_landmarks: train.samples.iter().filter(|s| s.has_landmarks).count(),
            with_attributes: train.samples.iter().filter(|s| s.has_attributes).count(),
            landmarks_per_class: Vec::new(),
            balanced_by: None,
        };
        Ok(Splits {
            train: Arc::new(train),
            valid: Arc::new(valid),
            test: Arc::new(test),
            labels,
        })
    }
}

/// Each split has images, and the three have the same landmarks and attributes.
fn check_alike(train: &Dataset, valid: &Dataset, test: &Dataset) -> Result<()> {
    let shape = |ds: &Dataset| {
        (
            ds.meta.num_landmarks(),
            ds.meta.classes.clone(),
            ds.meta.reals.clone(),
        )
    };
    for (name, ds) in [("train", train), ("valid", valid), ("test", test)] {
        if ds.is_empty() {
            return Err(Error::InvalidSetting {
                field: format!("splits.{name}"),
                reason: "the split has no images".into(),
            });
        }
        if shape(ds) != shape(train) {
            return Err(Error::InvalidSetting {
                field: format!("splits.{name}"),
                reason: format!(
                    "{} landmarks, classes {:?}, reals {:?}; the training split has {} landmarks, classes {:?}, reals {:?}",
                    ds.meta.num_landmarks(),
                    ds.meta.classes,
                    ds.meta.reals,
                    train.meta.num_landmarks(),
                    train.meta.classes,
                    train.meta.reals
                ),
            });
        }
        ds.validate()?;
    }
    Ok(())
}

/// Generates or loads the data that `cfg.data` names, splits it, and marks the labelled
/// subsets of the training split ([`Splits::new`]).
pub fn build_splits(cfg: &ExperimentConfig) -> Result<Splits> {
    let d = &cfg.data;
    let [train, valid, test] = match d.kind {
        DataKind::Blocks => data::blocks::generate_splits(d.generated_sizes, cfg.seed)?,
        DataKind::Shapes => {
            let [a, b, c] = d.generated_sizes;
            [
                data::shapes::generate(a, cfg.seed)?,
                data::shapes::generate(b, cfg.seed.wrapping_add(1_000_003))?,
                data::shapes::generate(c, cfg.seed.wrapping_add(2_000_006))?,
            ]
        }
        DataKind::InMemory => {
            return Err(Error::InvalidSetting {
                field: "data.kind".into(),
                reason: "`in-memory` data are given to `Trainer::from_splits`, not loaded".into(),
            })
        }
        _ => load_real(cfg)?,
    };
    Splits::new(train, valid, test, cfg)
}

/// Real data: the training file split into train / valid (and test when no test file is
/// given), by subject when subjects are known.
fn load_real(cfg: &ExperimentConfig) -> Result<[Dataset; 3]> {
    let d = &cfg.data;
    let train_path = d.train.as_ref().ok_or_else(|| Error::InvalidSetting {
        field: "data.train".into(),
        reason: format!("data kind `{}` needs a `train` path", d.kind),
    })?;
    let load =
        |path: &std::path::Path| -> Result<Dataset> { crate::formats::load(d, &cfg.limits, path) };
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
