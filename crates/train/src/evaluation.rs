//! Prediction and evaluation: a model's landmarks and classes over a split ([`predict`]),
//! and their errors and accuracies ([`evaluate`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use landmark_ssl_data::{BatchLoader, Dataset, LoaderConfig, Preprocess};
use landmark_ssl_metrics as metrics;
use landmark_ssl_models::{HeadKind, LandmarkModel};

use crate::config::EvalConfig;
use crate::error::Result;

/// One class head's predictions over a split: predicted class, true class, and whether
/// the image has that attribute at all.
#[derive(Debug, Clone, Default)]
pub struct ClassPredictions {
    /// The predicted class of each image.
    pub predicted: Vec<usize>,
    /// The true class of each image (meaningless where `has_label` is false).
    pub truth: Vec<usize>,
    /// Whether each image has this attribute.
    pub has_label: Vec<bool>,
}

/// A split's predictions in crop pixels, with the ground truth.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Data-set index of each image.
    pub indices: Vec<usize>,
    /// Predicted landmarks per image, (x, y) crop pixels.
    pub landmarks: Vec<Vec<[f64; 2]>>,
    /// Ground-truth landmarks per image, crop pixels.
    pub truth: Vec<Vec<[f64; 2]>>,
    /// Ground-truth visibility per image.
    pub visible: Vec<Vec<bool>>,
    /// Class predictions and truth per head.
    pub classes: BTreeMap<String, ClassPredictions>,
}

/// Runs `model` over (the first `max` images of; 0: all) a data set in batches of
/// `batch_size` (no augmentation, no dropout).
pub fn predict(
    model: &LandmarkModel,
    ds: &Dataset,
    pre: &Preprocess,
    batch_size: usize,
    max: usize,
    device: &Device,
) -> Result<Predictions> {
    let n = if max == 0 {
        ds.len()
    } else {
        ds.len().min(max)
    };
    let loader = BatchLoader::new(Arc::new(ds.clone()), LoaderConfig::new(batch_size, *pre, 0))?;
    let mut p = Predictions::default();
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = loader.batch(chunk, 0, device)?;
        let out = model.forward_t(&batch.images, false)?;
        let pred = out.landmarks.to_dtype(DType::F32)?.to_vec3::<f32>()?;
        let gt = batch.landmarks.to_vec3::<f32>()?;
        let vis = batch.visible.to_vec2::<f32>()?;
        for i in 0..chunk.len() {
            p.indices.push(chunk[i]);
            p.landmarks
                .push(pred[i].iter().map(|q| [q[0] as f64, q[1] as f64]).collect());
            p.truth
                .push(gt[i].iter().map(|q| [q[0] as f64, q[1] as f64]).collect());
            p.visible.push(vis[i].iter().map(|&v| v >= 0.5).collect());
        }
        for head in model.config().heads() {
            if !matches!(head.kind, HeadKind::Class { .. }) {
                continue;
            }
            let (Some(logits), Some((labels, _))) = (
                out.attributes.get(&head.name),
                batch.classes.get(&head.name),
            ) else {
                continue;
            };
            let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
            let truth = labels.to_vec1::<u32>()?;
            let e = p.classes.entry(head.name.clone()).or_default();
            for (i, (&pr, &tr)) in predicted.iter().zip(&truth).enumerate() {
                // Evaluation uses the ground truth of every image, whatever the training
                // flags say; a sample without this attribute has no label at all.
                let has = ds.samples[chunk[i]].classes.contains_key(&head.name);
                e.predicted.push(pr as usize);
                e.truth.push(tr as usize);
                e.has_label.push(has);
            }
        }
    }
    Ok(p)
}

/// Errors and accuracies of one split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Mean per-image error (mean over each image's visible landmarks).
    pub mean_error: f64,
    /// Median per-image error.
    pub median_error: f64,
    /// `px` (normaliser `Pixels`) or `fraction` (of the normalising length).
    pub unit: String,
    /// Mean error of each landmark.
    pub per_landmark: Vec<f64>,
    /// Fraction of images whose error exceeds the threshold.
    pub failure_rate: f64,
    /// Area under the cumulative error curve up to the threshold, in [0, 1].
    pub auc: f64,
    /// The threshold of `failure_rate` and `auc`, in `unit`.
    pub threshold: f64,
    /// Failure rate and AUC at every threshold of [`EvalConfig::all_thresholds`].
    #[serde(default)]
    pub at_thresholds: Vec<AtThreshold>,
    /// The same figures on the data's subsets (300W common / challenging, WFLW's six
    /// attribute subsets), by name; empty where the data define none.
    #[serde(default)]
    pub subsets: BTreeMap<String, SubsetEvaluation>,
    /// Accuracy per class head, over the images that have that attribute.
    pub accuracy: BTreeMap<String, f64>,
    /// Every image's error, in data-set order of the evaluated images.
    pub per_image: Vec<f64>,
}

/// One subset's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetEvaluation {
    /// Images of the subset evaluated.
    pub images: usize,
    /// Mean per-image error.
    pub mean_error: f64,
    /// Mean error of each landmark.
    pub per_landmark: Vec<f64>,
    /// Failure rate and AUC at every threshold.
    pub at_thresholds: Vec<AtThreshold>,
    /// Every image's error.
    pub per_image: Vec<f64>,
}

/// The failure rate and the AUC of the cumulative error curve at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AtThreshold {
    /// The threshold, in the errors' unit.
    pub threshold: f64,
    /// Fraction of images whose error exceeds it.
    pub failure_rate: f64,
    /// Area under the cumulative error curve up to it, in [0, 1].
    pub auc: f64,
}

/// Errors of `p` under `eval`'s normaliser. Images without a visible landmark are skipped.
pub fn evaluate(p: &Predictions, eval: &EvalConfig) -> Result<Evaluation> {
    evaluate_with_subsets(p, eval, &BTreeMap::new())
}

/// [`evaluate`], plus the same figures on each named subset of the images: `subsets` maps
/// a subset's name to a membership flag per data-set index (see [`crate::subsets`]).
pub fn evaluate_with_subsets(
    p: &Predictions,
    eval: &EvalConfig,
    subsets: &BTreeMap<String, Vec<bool>>,
) -> Result<Evaluation> {
    let all = errors_of(p, eval, |_| true)?;
    let mut accuracy = BTreeMap::new();
    for (head, c) in &p.classes {
        if c.has_label.iter().any(|&h| h) {
            accuracy.insert(
                head.clone(),
                metrics::accuracy_masked(&c.predicted, &c.truth, &c.has_label)?,
            );
        }
    }
    let mut subset_figures = BTreeMap::new();
    for (name, member) in subsets {
        let inside = |i: usize| member.get(i).copied().unwrap_or(false);
        let evaluable = p
            .indices
            .iter()
            .zip(&p.visible)
            .any(|(&i, vis)| inside(i) && vis.iter().any(|&v| v));
        if !evaluable {
            continue;
        }
        let sub = errors_of(p, eval, inside)?;
        if sub.per_image.is_empty() {
            continue;
        }
        subset_figures.insert(
            name.clone(),
            SubsetEvaluation {
                images: sub.per_image.len(),
                mean_error: sub.mean,
                per_landmark: sub.per_landmark,
                at_thresholds: at_thresholds(&sub.per_image, eval)?,
                per_image: sub.per_image,
            },
        );
    }
    Ok(Evaluation {
        images: all.per_image.len(),
        mean_error: all.mean,
        median_error: all.median,
        unit: match eval.normalizer.unit() {
            metrics::ErrorUnit::Pixels => "px".to_string(),
            _ => "fraction".to_string(),
        },
        per_landmark: all.per_landmark,
        failure_rate: metrics::failure_rate(&all.per_image, eval.threshold)?,
        auc: metrics::auc(&all.per_image, eval.threshold)?,
        threshold: eval.threshold,
        at_thresholds: at_thresholds(&all.per_image, eval)?,
        subsets: subset_figures,
        accuracy,
        per_image: all.per_image,
    })
}

/// The errors of the images of `p` whose data-set index `keep` accepts.
struct Errors {
    per_image: Vec<f64>,
    mean: f64,
    median: f64,
    per_landmark: Vec<f64>,
}

fn errors_of(p: &Predictions, eval: &EvalConfig, keep: impl Fn(usize) -> bool) -> Result<Errors> {
    let mut acc = metrics::ErrorAccumulator::new();
    for (((pred, gt), vis), &idx) in p
        .landmarks
        .iter()
        .zip(&p.truth)
        .zip(&p.visible)
        .zip(&p.indices)
    {
        if !keep(idx) || !vis.iter().any(|&v| v) {
            continue;
        }
        acc.push(pred, gt, Some(vis), &eval.normalizer)?;
    }
    let summary = acc.summary()?;
    Ok(Errors {
        per_image: acc.per_image().to_vec(),
        mean: summary.mean,
        median: summary.median,
        per_landmark: summary
            .per_landmark_mean
            .iter()
            .map(|m| m.unwrap_or(f64::NAN))
            .collect(),
    })
}

fn at_thresholds(errors: &[f64], eval: &EvalConfig) -> Result<Vec<AtThreshold>> {
    eval.all_thresholds()
        .into_iter()
        .map(|t| {
            Ok(AtThreshold {
                threshold: t,
                failure_rate: metrics::failure_rate(errors, t)?,
                auc: metrics::auc(errors, t)?,
            })
        })
        .collect()
}
