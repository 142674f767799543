//! The semi-supervised training loop (Eq. 2 of the paper): each step mixes images with
//! landmark labels, images with attribute labels and unlabelled images; evaluates on the
//! validation split every epoch, keeps the best checkpoint, stops early, and evaluates the
//! test split once at the end with the best weights.
//!
//! # Batch composition
//! An epoch has `ceil(N_pool / batch_size)` steps, `N_pool` the number of images that can
//! contribute a cost (all training images with ELT; those with attribute labels with A but
//! not ELT; the landmark-labelled ones with L alone). Each step takes
//! `schedule.labelled_per_batch` images from the landmark-labelled images (a shuffled order,
//! cycled as often as needed) and fills the rest of the batch from the pool in a shuffled
//! order. With only the L cost, the whole batch is drawn from the labelled images, so the
//! (L) and (L+ELT+A) runs take the same number of steps. Each cost term is normalised by the
//! number of samples (points) that carry it in the step (Eq. 2).
//!
//! # Determinism
//! Every random choice is drawn from the experiment seed, the epoch and the step: the
//! split, the batch composition, augmentation, ELT transforms, dropout and the initial
//! weights. A run resumed from its checkpoint (taken at the end of an epoch) therefore
//! continues exactly as the uninterrupted run would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use landmark_ssl_data::{self as data, Batch, BatchLoader, Dataset, LoaderConfig, Preprocess};
use landmark_ssl_losses as losses;
use landmark_ssl_models::{self as models, HeadKind, LandmarkModel, ModelConfig};

use crate::adam::Adam;
use crate::checkpoint::{self, TrainState};
use crate::config::ExperimentConfig;
use crate::datasets::{build_splits, Splits};
use crate::error::{Error, Result};
use crate::objective;
use crate::progress::Progress;
use crate::report::{self, EpochRecord, Evaluation, GradNormStats};

/// Derives an independent seed for one purpose of one step (SplitMix64 finaliser).
pub(crate) fn derive_seed(seed: u64, purpose: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ a.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ b.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const PURPOSE_ORDER: u64 = 1;
const PURPOSE_ELT: u64 = 2;
const PURPOSE_INIT: u64 = 3;
const PURPOSE_DROPOUT: u64 = 4;

/// What a finished run gives back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Test-split evaluation with the best checkpoint.
    pub test: Evaluation,
    /// The epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Epochs run in total (including those before a resume).
    pub epochs: usize,
    /// Wall-clock seconds of training (this process only) and evaluation.
    pub seconds: f64,
    /// The report's path.
    pub report: PathBuf,
}

/// What one optimisation step reports.
#[derive(Default)]
struct StepOutcome {
    /// The weighted cost terms (`landmark`, `elt`, ..., `total`); empty when the batch
    /// carried no cost.
    costs: BTreeMap<String, f64>,
    /// The gradients' global L2 norm before clipping, and whether they were clipped
    /// (`None` when no step was taken).
    grad_norm: Option<(f64, bool)>,
}

/// The semi-supervised trainer. See the module docs.
pub struct Trainer {
    cfg: ExperimentConfig,
    model_cfg: ModelConfig,
    device: Device,
    varmap: VarMap,
    model: LandmarkModel,
    adam: Adam,
    splits: Splits,
    train_loader: BatchLoader,
    eval_pre: Preprocess,
    elt: Option<losses::Elt>,
    weights: losses::ObjectiveWeights,
    state: TrainState,
    out_dir: PathBuf,
}

impl Trainer {
    /// Builds data, model and optimiser for `cfg`; when `cfg.output.dir` holds a checkpoint
    /// of an unfinished run of the same experiment, training resumes from it.
    pub fn new(cfg: ExperimentConfig) -> Result<Self> {
        cfg.validate()?;
        let splits = build_splits(&cfg)?;
        let model_cfg = match &cfg.model.config {
            Some(c) => c.clone(),
            None => models::preset(&cfg.model.preset)?,
        };
        model_cfg.validate()?;
        let (h, w) = model_cfg.input_size();
        if h != w {
            return Err(Error::InvalidSetting {
                field: "model".into(),
                reason: format!("input {h}x{w}: the data pipeline makes square crops"),
            });
        }
        let k = splits.train.meta.num_landmarks();
        if k != model_cfg.num_landmarks() {
            return Err(Error::InvalidSetting {
                field: "model".into(),
                reason: format!(
                    "the model predicts {} landmarks, the data have {k}",
                    model_cfg.num_landmarks()
                ),
            });
        }
        check_heads(&model_cfg, &splits.train, cfg.costs.attribute)?;
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let model = LandmarkModel::new(
            &model_cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
        )?;
        reinit_seeded(&varmap, derive_seed(cfg.seed, PURPOSE_INIT, 0, 0))?;
        let adam = Adam::new(&vars_of(&varmap)?, cfg.schedule.adam)?;
        let eval_pre = preprocess_for(&cfg, h);
        let mut loader_cfg = LoaderConfig::new(cfg.schedule.batch_size, eval_pre, cfg.seed);
        loader_cfg.augment = augment_for(&cfg);
        let train_loader = BatchLoader::new(splits.train.clone(), loader_cfg)?;
        let elt = if cfg.costs.elt {
            Some(losses::Elt::new(cfg.costs.elt_transform.clone())?)
        } else {
            None
        };
        let weights = losses::ObjectiveWeights {
            lambda: cfg.costs.lambda,
            alpha: cfg.costs.alpha,
            gamma: cfg.costs.gamma,
            beta: model_cfg.beta().unwrap_or(1.0),
            attributes: cfg.costs.attribute_weights.clone(),
            default_attribute_weight: 1.0,
        };
        weights.validate()?;
        let out_dir = cfg.output.dir.clone();
        let mut trainer = Self {
            state: TrainState::new(&cfg, &model_cfg),
            cfg,
            model_cfg,
            device,
            varmap,
            model,
            adam,
            splits,
            train_loader,
            eval_pre,
            elt,
            weights,
            out_dir,
        };
        trainer.try_resume()?;
        Ok(trainer)
    }

    /// The experiment.
    pub fn config(&self) -> &ExperimentConfig {
        &self.cfg
    }

    /// The model being trained.
    pub fn model(&self) -> &LandmarkModel {
        &self.model
    }

    /// The model's variables (their names: `convs.*` the map network, `heads.*` the
    /// attribute heads).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The splits (with the label flags of the training split).
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// Epochs completed so far (after a resume, including the earlier ones).
    pub fn epochs_done(&self) -> usize {
        self.state.epoch
    }

    /// Resumes from the run folder's checkpoint, if any. Every start first removes the
    /// temporary files of a killed writer and drops the log lines of epochs no state
    /// committed; only files inside the run folder are read or removed.
    fn try_resume(&mut self) -> Result<()> {
        crate::io::remove_stale_temps(&self.out_dir)?;
        let Some(state) = checkpoint::read_state(&self.out_dir)? else {
            if self.out_dir.is_dir() {
                checkpoint::reconcile_log(&self.out_dir, &[])?;
            }
            return Ok(());
        };
        if state.experiment != self.state.experiment {
            return Err(Error::Checkpoint {
                what: format!(
                    "{} holds a run of a different experiment; choose another output.dir or delete it",
                    self.out_dir.display()
                ),
            });
        }
        state
            .check_schedule(&self.cfg)
            .map_err(|reason| Error::Checkpoint {
                what: format!("{}: {reason}", self.out_dir.join("state.json").display()),
            })?;
        checkpoint::load_training(&self.out_dir, &state, &self.varmap, &mut self.adam)?;
        self.adam.set_learning_rate(state.lr);
        checkpoint::reconcile_log(&self.out_dir, &state.history)?;
        checkpoint::remove_other_epoch_files(&self.out_dir, state.epoch);
        self.state = state;
        Ok(())
    }

    /// The index lists of every step of `epoch` (see the module docs).
    fn epoch_plan(&self, epoch: usize) -> Vec<Vec<usize>> {
        let train = &self.splits.train;
        let costs = &self.cfg.costs.active(epoch);
        let mut rng =
            ChaCha8Rng::seed_from_u64(derive_seed(self.cfg.seed, PURPOSE_ORDER, epoch as u64, 0));
        let mut labelled: Vec<usize> = (0..train.len())
            .filter(|&i| train.samples[i].has_landmarks)
            .collect();
        let pool: Vec<usize> = if costs.elt {
            (0..train.len()).collect()
        } else if costs.attribute {
            (0..train.len())
                .filter(|&i| train.samples[i].has_attributes)
                .collect()
        } else {
            Vec::new()
        };
        let b = self.cfg.schedule.batch_size;
        let uses_landmarks = costs.landmark && !labelled.is_empty();
        let n_lab = if !uses_landmarks {
            0
        } else if pool.is_empty() {
            b
        } else {
            self.cfg.schedule.labelled_per_batch.min(b)
        };
        let rest = b - n_lab;
        let steps = if rest > 0 && !pool.is_empty() {
            pool.len().div_ceil(rest)
        } else {
            train.len().div_ceil(b).max(1)
        };
        let steps = match self.cfg.schedule.max_steps_per_epoch {
            0 => steps,
            cap => steps.min(cap),
        };
        labelled.shuffle(&mut rng);
        let mut pool_order = pool.clone();
        pool_order.shuffle(&mut rng);
        let (mut li, mut pi) = (0usize, 0usize);
        let mut plan = Vec::with_capacity(steps);
        for _ in 0..steps {
            let mut idx = Vec::with_capacity(b);
            for _ in 0..n_lab {
                if li == labelled.len() {
                    labelled.shuffle(&mut rng);
                    li = 0;
                }
                idx.push(labelled[li]);
                li += 1;
            }
            for _ in 0..rest {
                if pool_order.is_empty() || pi == pool_order.len() {
                    break;
                }
                idx.push(pool_order[pi]);
                pi += 1;
            }
            if !idx.is_empty() {
                plan.push(idx);
            }
        }
        plan
    }

    /// Prepares the batches of a plan on a background thread, a few steps ahead.
    fn prefetch(&self, plan: Vec<Vec<usize>>, epoch: usize) -> Receiver<Result<Batch>> {
        let (tx, rx) = sync_channel(3);
        let loader = self.train_loader.clone();
        let device = self.device.clone();
        std::thread::spawn(move || {
            for idx in plan {
                let r = loader
                    .batch(&idx, epoch as u64, &device)
                    .map_err(Error::from);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    break;
                }
            }
        });
        rx
    }

    /// One optimisation step on `batch`; returns the weighted terms' values and the
    /// gradient norm (clipped to `schedule.clip_grad_norm` where it exceeds it).
    fn step(&mut self, batch: &Batch, epoch: usize, step: usize) -> Result<StepOutcome> {
        let seed = self.cfg.seed;
        models::seed_dropout(derive_seed(
            seed,
            PURPOSE_DROPOUT,
            epoch as u64,
            step as u64,
        ));
        let out = self.model.forward_t(&batch.images, true)?;
        let costs = &self.cfg.costs.active(epoch);
        let mut rng =
            ChaCha8Rng::seed_from_u64(derive_seed(seed, PURPOSE_ELT, epoch as u64, step as u64));
        let mut terms =
            objective::step_terms(&self.model, &out, batch, costs, self.elt.as_ref(), &mut rng)?
                .terms;
        if costs.gamma > 0.0 {
            let wd = losses::weight_decay_varmap(&self.varmap, Default::default(), &self.device)?;
            terms.weight_decay = Some(wd.loss);
        }
        if terms.landmark.is_none() && terms.attributes.is_empty() && terms.elt.is_none() {
            // Nothing in this batch carries a cost (e.g. A only and no attribute labels).
            return Ok(StepOutcome::default());
        }
        let report = self.weights.combine(&terms)?;
        if let Some(name) = report.non_finite().first() {
            return Err(Error::NonFinite {
                term: name.to_string(),
                value: report.values.get(*name).copied().unwrap_or(f64::NAN),
                epoch: epoch + 1,
                step: step + 1,
            });
        }
        let grads = report.total.backward()?;
        let norm = self.adam.grad_norm(&grads)?;
        if !norm.is_finite() {
            // Finite costs can still have an overflowing gradient; stepping on it would
            // write NaN into every weight.
            return Err(Error::NonFinite {
                term: "gradient norm".to_string(),
                value: norm,
                epoch: epoch + 1,
                step: step + 1,
            });
        }
        let clip = self.cfg.schedule.clip_grad_norm;
        let clipped = clip > 0.0 && norm > clip;
        self.adam
            .step_scaled(&grads, if clipped { clip / norm } else { 1.0 })?;
        Ok(StepOutcome {
            costs: report.values,
            grad_norm: Some((norm, clipped)),
        })
    }

    /// Trains until the schedule ends or early stopping triggers, then evaluates the test
    /// split with the best weights and writes the report. Resumed runs continue from their
    /// last completed epoch.
    pub fn run(&mut self) -> Result<Outcome> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.out_dir).map_err(crate::error::io_err(&self.out_dir))?;
        let total_epochs = self.cfg.schedule.epochs;
        while self.state.epoch < total_epochs && !self.state.stopped_early {
            let epoch = self.state.epoch;
            if self.cfg.schedule.restart_optimizer_at_join && self.cfg.costs.joins_at(epoch) {
                self.adam.restart()?;
            }
            let epoch_start = Instant::now();
            let plan = self.epoch_plan(epoch);
            let n_steps = plan.len();
            let n_images: usize = plan.iter().map(Vec::len).sum();
            let rx = self.prefetch(plan, epoch);
            let mut progress =
                Progress::new(self.cfg.output.progress, epoch + 1, total_epochs, n_steps);
            let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            let mut images_done = 0usize;
            let (mut norms, mut clipped_steps) = (Vec::with_capacity(n_steps), 0usize);
            for step in 0..n_steps {
                let batch = rx.recv().map_err(|_| Error::InvalidSetting {
                    field: "data".into(),
                    reason: "the batch producer stopped early".into(),
                })??;
                let ramp = self.cfg.lr_rampup_factor(epoch, step, n_steps);
                self.adam.set_learning_rate(self.state.lr * ramp);
                let outcome = self.step(&batch, epoch, step)?;
                let values = outcome.costs;
                for (k, v) in &values {
                    let e = sums.entry(k.clone()).or_insert((0.0, 0));
                    e.0 += v;
                    e.1 += 1;
                }
                if let Some((norm, clipped)) = outcome.grad_norm {
                    norms.push(norm);
                    clipped_steps += usize::from(clipped);
                }
                images_done += batch.len();
                let rate = images_done as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
                progress.update(step + 1, &values, rate);
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let valid = self.evaluate_split(
                &self.splits.valid.clone(),
                self.cfg.schedule.max_valid_images,
            )?;
            progress.finish(&format!(
                "valid error {:.4} {}",
                valid.mean_error, valid.unit
            ));
            let means: BTreeMap<String, f64> = sums
                .into_iter()
                .map(|(k, (s, n))| (k, s / n.max(1) as f64))
                .collect();
            self.state.epoch += 1;
            let score = self.selection_score(&valid);
            let improved = score < self.state.best_valid;
            if improved {
                self.state.best_valid = score;
                self.state.best_epoch = self.state.epoch;
                self.state.since_best = 0;
            } else {
                self.state.since_best += 1;
            }
            let record = EpochRecord {
                epoch: self.state.epoch,
                lr: self.adam.learning_rate(),
                train: means,
                valid_error: valid.mean_error,
                valid_unit: valid.unit.clone(),
                valid_accuracy: valid.accuracy.clone(),
                images_per_sec: n_images as f64 / train_seconds.max(1e-9),
                seconds: epoch_start.elapsed().as_secs_f64(),
                best: improved,
                grad_norm: (!norms.is_empty()).then(|| GradNormStats {
                    mean: norms.iter().sum::<f64>() / norms.len() as f64,
                    max: norms.iter().copied().fold(0.0, f64::max),
                    clipped_steps,
                }),
            };
            self.state.history.push(record.clone());
            let patience = self.cfg.schedule.patience;
            if patience > 0 && self.state.since_best >= patience {
                self.state.stopped_early = true;
            }
            self.state.lr *= self.cfg.schedule.lr_decay;
            self.adam.set_learning_rate(self.state.lr);
            self.state.seconds += epoch_start.elapsed().as_secs_f64();
            checkpoint::save_training(
                &self.out_dir,
                &self.state,
                &self.model_cfg,
                &self.varmap,
                &self.adam,
                improved,
                matches!(self.eval_pre.crop, data::CropMode::Object { .. })
                    .then_some(self.cfg.data.crop_factor),
            )?;
            // After the state commits the epoch: a kill in between leaves the line
            // missing, and the resume writes it from the state's history.
            report::append_epoch(&self.out_dir, &record)?;
        }
        self.finish(started)
    }

    /// The validation score the best checkpoint is chosen by (lower is better): the mean
    /// landmark error, or, when the landmark cost is off (the paper's Shapes: class labels
    /// only, landmarks never labelled), one minus the mean class accuracy.
    fn selection_score(&self, valid: &Evaluation) -> f64 {
        if self.cfg.costs.landmark || valid.accuracy.is_empty() {
            valid.mean_error
        } else {
            1.0 - valid.accuracy.values().sum::<f64>() / valid.accuracy.len() as f64
        }
    }

    /// Loads the best weights, evaluates the test split once, writes the report.
    fn finish(&mut self, started: Instant) -> Result<Outcome> {
        checkpoint::load_best(&self.out_dir, &self.varmap)?;
        let test_ds = self.splits.test.clone();
        let predictions = self.predict_split(&test_ds, 0)?;
        let test = report::evaluate(&predictions, &self.cfg.eval)?;
        report::write_overlays(
            &self.out_dir,
            &test_ds,
            &self.eval_pre,
            &predictions,
            self.cfg.output.overlays,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let report_path = report::write_report(&report::ReportInput {
            out_dir: &self.out_dir,
            cfg: &self.cfg,
            model_cfg: &self.model_cfg,
            labels: &self.splits.labels,
            history: &self.state.history,
            test: &test,
            train_images: self.splits.train.len(),
            best_epoch: self.state.best_epoch,
        })?;
        Ok(Outcome {
            test,
            best_epoch: self.state.best_epoch,
            epochs: self.state.epoch,
            seconds,
            report: report_path,
        })
    }

    /// Predictions of the current weights on (the first `max` images of) a split.
    pub fn predict_split(&self, ds: &Dataset, max: usize) -> Result<Predictions> {
        predict(
            &self.model,
            ds,
            &self.eval_pre,
            self.cfg.schedule.batch_size.max(32),
            max,
            &self.device,
        )
    }

    /// Errors and attribute accuracies of the current weights on a split.
    pub fn evaluate_split(&self, ds: &Dataset, max: usize) -> Result<Evaluation> {
        let p = self.predict_split(ds, max)?;
        report::evaluate(&p, &self.cfg.eval)
    }
}

/// One class head's predictions over a split: predicted class, true class, and whether
/// the image has that attribute at all.
#[derive(Debug, Clone, Default)]
pub struct ClassPredictions {
    pub predicted: Vec<usize>,
    pub truth: Vec<usize>,
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

/// Runs `model` over a data set in batches (no augmentation, no dropout).
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
    let loader = BatchLoader::new(
        std::sync::Arc::new(ds.clone()),
        LoaderConfig::new(batch_size, *pre, 0),
    )?;
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

fn vars_of(vm: &VarMap) -> Result<std::collections::HashMap<String, candle_core::Var>> {
    let data = vm.data().lock().map_err(|_| Error::Checkpoint {
        what: "the VarMap's lock is poisoned".into(),
    })?;
    Ok(data.clone())
}

/// Redraws every variable from a seeded generator with candle-nn's default distributions
/// (weights: Kaiming normal, std sqrt(2 / fan_in); biases: uniform in +-1/sqrt(fan_in) of
/// their layer's weight), because candle's CPU generator cannot be seeded.
pub fn reinit_seeded(vm: &VarMap, seed: u64) -> Result<()> {
    use rand_distr::{Distribution, Normal, Uniform};
    let vars = vars_of(vm)?;
    let names: std::collections::BTreeSet<&String> = vars.keys().collect();
    let fan_in = |name: &str| -> Option<usize> {
        let w = vars.get(name)?;
        let d = w.dims();
        (d.len() >= 2).then(|| d[1..].iter().product())
    };
    for (i, name) in names.into_iter().enumerate() {
        let var = &vars[name];
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, PURPOSE_INIT, i as u64, 0));
        let n = var.elem_count();
        let dims = var.dims().to_vec();
        let values: Vec<f32> = if dims.len() >= 2 {
            let fan: usize = dims[1..].iter().product();
            let std = (2.0 / fan.max(1) as f64).sqrt();
            let normal = Normal::new(0.0, std).map_err(|e| Error::InvalidSetting {
                field: name.clone(),
                reason: e.to_string(),
            })?;
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else if let Some(stem) = name.strip_suffix("bias") {
            let fan = fan_in(&format!("{stem}weight")).unwrap_or(n);
            let bound = 1.0 / (fan.max(1) as f64).sqrt();
            let uni = Uniform::new_inclusive(-bound, bound).map_err(|e| Error::InvalidSetting {
                field: name.clone(),
                reason: e.to_string(),
            })?;
            (0..n).map(|_| uni.sample(&mut rng) as f32).collect()
        } else {
            // Other vectors (none in the zoo today) keep their initial values.
            continue;
        };
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

fn preprocess_for(cfg: &ExperimentConfig, size: usize) -> Preprocess {
    match cfg.data.kind.as_str() {
        "blocks" | "shapes" => Preprocess::whole(size),
        _ => {
            let mut p = Preprocess::object(size);
            p.crop = data::CropMode::Object {
                box_scale: cfg.data.crop_factor as f32,
                landmark_scale: (cfg.data.crop_factor * 1.1) as f32,
            };
            p
        }
    }
}

fn augment_for(cfg: &ExperimentConfig) -> Option<data::Augment> {
    let d = &cfg.data;
    if d.jitter_rotation_deg == 0.0 && d.jitter_shift == 0.0 && !d.jitter_flip {
        return None;
    }
    let mut a = data::Augment::paper(d.jitter_rotation_deg as f32);
    a.scale = d.jitter_shift as f32;
    a.translate = d.jitter_shift as f32;
    a.flip = d.jitter_flip;
    Some(a)
}

/// Every attribute head of the model must name an attribute of the data (with the right
/// number of classes) when the A cost is on.
fn check_heads(model_cfg: &ModelConfig, train: &Dataset, attribute_cost: bool) -> Result<()> {
    if !attribute_cost {
        return Ok(());
    }
    for head in model_cfg.heads() {
        match head.kind {
            HeadKind::Class { n } => match train.meta.classes.get(&head.name) {
                Some(&c) if c == n => {}
                Some(&c) => {
                    return Err(Error::InvalidSetting {
                        field: format!("model head `{}`", head.name),
                        reason: format!("the head has {n} classes, the data's attribute has {c}"),
                    })
                }
                None => {
                    return Err(Error::InvalidSetting {
                        field: format!("model head `{}`", head.name),
                        reason: format!(
                            "the data have no class attribute `{}` (they have: {:?})",
                            head.name,
                            train.meta.classes.keys().collect::<Vec<_>>()
                        ),
                    })
                }
            },
            HeadKind::Real { n } => match train.meta.reals.get(&head.name) {
                Some(&c) if c == n => {}
                _ => {
                    return Err(Error::InvalidSetting {
                        field: format!("model head `{}`", head.name),
                        reason: format!(
                            "the data have no real attribute `{}` with {n} values",
                            head.name
                        ),
                    })
                }
            },
        }
    }
    Ok(())
}

/// The trainer's default output folder for an experiment name.
pub fn default_out_dir(name: &str) -> PathBuf {
    Path::new("runs").join(name)
}
