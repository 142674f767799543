//! The semi-supervised training loop (Eq. 2 of the paper): each step mixes images with
//! landmark labels, images with attribute labels and unlabelled images; evaluates on the
//! validation split every epoch, keeps the best checkpoint, stops early, and evaluates the
//! test split once at the end with the best weights. With `schedule.weight_average_decay`
//! (the default) the weights validated, checkpointed and tested are a moving average of the
//! optimised ones ([`crate::average`]); between epochs the model holds the optimised ones.
//!
//! This module is the loop; its parts live beside it: the batch plan (`plan.rs`) and the
//! seeds (`seeds.rs`) described below, the step's objective ([`crate::objective`]),
//! prediction and evaluation ([`predict`], [`crate::report::evaluate`]), the epoch records
//! and early stopping (`records.rs`, `state.rs`: [`crate::checkpoint::TrainState`]), the
//! seeded initial weights ([`reinit_seeded`]), the checkpoints ([`crate::checkpoint`]) and
//! the report ([`crate::report`]).
//!
//! # Batch composition
//! Each step has two parts. The first holds `schedule.labelled_per_batch` images with
//! landmark labels (a shuffled order, cycled as often as needed), for the landmark cost;
//! the second holds `schedule.batch_size` images of the pool, the images that A and ELT
//! read (all training images with ELT; those with attribute labels with A but not ELT), in
//! a shuffled order, each once an epoch: `ceil(N_pool / batch_size)` steps. With the
//! landmark cost alone there is no pool and an epoch has `ceil(N / batch_size)` steps.
//! The labelled part does not depend on the other costs: whether A and ELT are on or not,
//! a step holds the same labelled images, so switching them on adds to a step and takes
//! nothing from it (the pool's images that carry landmark labels also count in the
//! landmark cost, as every labelled image of a step does). During a warm-up
//! (`costs.warmup_epochs`) the steps keep their number and their labelled part, and the
//! pool's part waits for its costs: the warm-up is the landmark cost alone, and only A and
//! ELT arrive at the join (docs/experiments/elt-join.md); without the landmark cost, A
//! trains the warm-up and ELT joins (docs/experiments/shapes.md). Each cost term is
//! normalised by the number of samples (points) that carry it in the step (Eq. 2).
//!
//! # Determinism
//! Every random choice is drawn from the experiment seed, the epoch and the step: the
//! split, the batch composition, augmentation, ELT transforms, dropout and the initial
//! weights. A run resumed from its checkpoint (taken at the end of an epoch) therefore
//! continues exactly as the uninterrupted run would.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use landmark_ssl_data::{self as data, Batch, BatchLoader, Dataset, LoaderConfig, Preprocess};
use landmark_ssl_losses as losses;
use landmark_ssl_models::{self as models, HeadKind, LandmarkModel, ModelConfig};

use crate::adam::Adam;
use crate::average::WeightAverage;
use crate::checkpoint;
use crate::clip::RelativeClip;
use crate::config::{CropChoice, ExperimentConfig};
use crate::datasets::{build_splits, Splits};
use crate::error::{Error, Result};
use crate::evaluation::{evaluate, Evaluation};
use crate::init::vars_of;
use crate::objective;
use crate::plan::epoch_plan;
use crate::progress::Progress;
use crate::records::{EpochRecord, EpochTally};
use crate::report;
use crate::seeds::{derive_seed, PURPOSE_DROPOUT, PURPOSE_ELT, PURPOSE_INIT};
use crate::state::{selection_score, TrainState};

pub use crate::evaluation::{predict, ClassPredictions, Predictions};
pub use crate::init::reinit_seeded;

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
    /// The mean and largest logit range of the batch's soft-argmax maps, when the model
    /// has them.
    map_range: Option<(f64, f64)>,
}

/// The semi-supervised trainer. See the module docs.
pub struct Trainer {
    cfg: ExperimentConfig,
    model_cfg: ModelConfig,
    device: Device,
    varmap: VarMap,
    model: LandmarkModel,
    adam: Adam,
    /// The average of the weights that validation, checkpoints and the test use
    /// (`schedule.weight_average_decay`); `None`: the optimised weights themselves.
    average: Option<WeightAverage>,
    /// The bound on each step's gradient norm relative to the earlier steps'
    /// (`schedule.clip_grad_relative`).
    relative_clip: Option<RelativeClip>,
    splits: Splits,
    train_loader: BatchLoader,
    eval_pre: Preprocess,
    elt: Option<losses::Elt>,
    weights: losses::ObjectiveWeights,
    state: TrainState,
    out_dir: PathBuf,
    /// When this process started training (for [`Outcome::seconds`]).
    started: Option<Instant>,
    /// Whether [`Trainer::finish`] has run (the variables then hold the best weights).
    finished: bool,
}

impl Trainer {
    /// Generates or loads the data `cfg.data` names ([`build_splits`]), then as
    /// [`Trainer::from_splits`].
    pub fn new(cfg: ExperimentConfig) -> Result<Self> {
        cfg.validate()?;
        let splits = build_splits(&cfg)?;
        Self::from_splits(cfg, splits)
    }

    /// Builds the model and optimiser for `cfg` around splits the program made itself
    /// ([`Splits::new`] or [`Splits::as_flagged`]; `cfg.data` then only says how images are
    /// cropped and jittered: set `data.kind = "in-memory"`). When `cfg.output.dir` holds a
    /// checkpoint of an unfinished run of the same experiment, training resumes from it.
    pub fn from_splits(cfg: ExperimentConfig, splits: Splits) -> Result<Self> {
        cfg.validate()?;
        let model_cfg = match &cfg.model.config {
            Some(c) => c.clone(),
            None => models::preset(&cfg.model.preset)?,
        };
        model_cfg.validate_within(&cfg.limits.model())?;
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
        if model_cfg.in_channels() != cfg.data.channels {
            return Err(Error::InvalidSetting {
                field: "data.channels".into(),
                reason: format!(
                    "the data are prepared with {} channel(s), the model takes {} (model in_channels)",
                    cfg.data.channels,
                    model_cfg.in_channels()
                ),
            });
        }
        check_heads(&model_cfg, &splits.train, cfg.costs.attribute)?;
        let device = cfg.device.open()?;
        let varmap = VarMap::new();
        let model = LandmarkModel::new(
            &model_cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
        )?;
        reinit_seeded(&varmap, derive_seed(cfg.seed, PURPOSE_INIT, 0, 0))?;
        let mut adam = Adam::new(&vars_of(&varmap)?, cfg.schedule.adam)?;
        if cfg.schedule.attribute_lr_scale != 1.0 {
            for prefix in models::ATTRIBUTE_PATH_PREFIXES {
                adam.scale_rate(prefix, cfg.schedule.attribute_lr_scale)?;
            }
        }
        let average = match cfg.schedule.weight_average_decay {
            d if d > 0.0 => Some(WeightAverage::new(&vars_of(&varmap)?, d)?),
            _ => None,
        };
        let relative_clip = match cfg.schedule.clip_grad_relative {
            f if f > 0.0 => Some(RelativeClip::new(f)?),
            _ => None,
        };
        let eval_pre = preprocess_for(&cfg, h);
        let mut loader_cfg = LoaderConfig::new(cfg.schedule.batch_size, eval_pre, cfg.seed);
        loader_cfg.augment = augment_for(&cfg);
        let train_loader = BatchLoader::new(splits.train.clone(), loader_cfg)?;
        let elt = if cfg.costs.elt {
            Some(losses::Elt::new(cfg.costs.elt_transform.clone())?)
        } else {
            None
        };
        let weights = objective::objective_weights(&cfg.costs, &model_cfg)?;
        let out_dir = cfg.output.dir.clone();
        let mut trainer = Self {
            state: TrainState::new(&cfg, &model_cfg),
            cfg,
            model_cfg,
            device,
            varmap,
            model,
            adam,
            average,
            relative_clip,
            splits,
            train_loader,
            eval_pre,
            elt,
            weights,
            out_dir,
            started: None,
            finished: false,
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

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
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
        if !state.same_experiment(&self.state) {
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
        let optimizer =
            checkpoint::load_training(&self.out_dir, &state, &self.varmap, &mut self.adam)?;
        if let Some(average) = &mut self.average {
            average.load_state(&optimizer)?;
        }
        if let Some(clip) = &mut self.relative_clip {
            clip.load_state(&optimizer)?;
        }
        self.adam.set_learning_rate(state.lr);
        checkpoint::reconcile_log(&self.out_dir, &state.history)?;
        checkpoint::restore_best(&self.out_dir, &state)?;
        checkpoint::remove_other_epoch_files(&self.out_dir, state.epoch);
        self.state = state;
        Ok(())
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
    /// gradient norm (clipped by `schedule.clip_grad_norm` and `clip_grad_relative`).
    fn step(
        &mut self,
        batch: &Batch,
        epoch: usize,
        step: usize,
        steps: usize,
    ) -> Result<StepOutcome> {
        let seed = self.cfg.seed;
        models::seed_dropout(derive_seed(
            seed,
            PURPOSE_DROPOUT,
            epoch as u64,
            step as u64,
        ));
        let out = self.model.forward_t(&batch.images, true)?;
        let map_range = self.map_range(&out)?;
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
            return Ok(StepOutcome {
                map_range,
                ..Default::default()
            });
        }
        let report =
            objective::weights_at(&self.cfg, &self.weights, epoch, step, steps).combine(&terms)?;
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
        let mut kept = norm;
        if self.cfg.schedule.clip_grad_norm > 0.0 {
            kept = kept.min(self.cfg.schedule.clip_grad_norm);
        }
        if let Some(clip) = &mut self.relative_clip {
            kept = clip.observe(kept);
        }
        let clipped = kept < norm;
        self.adam
            .step_scaled(&grads, if clipped { kept / norm } else { 1.0 })?;
        if let Some(average) = &mut self.average {
            average.update()?;
        }
        Ok(StepOutcome {
            costs: report.values,
            grad_norm: Some((norm, clipped)),
            map_range,
        })
    }

    /// The mean and largest logit range of the soft-argmax maps in `out`
    /// ([`losses::map_logit_range`]); `None` for models without them.
    fn map_range(&self, out: &models::ModelOutput) -> Result<Option<(f64, f64)>> {
        if self.model.landmark_kind() != models::LandmarkKind::SoftArgmax {
            return Ok(None);
        }
        let (Some(maps), Some(beta)) = (&out.maps, self.model_cfg.beta()) else {
            return Ok(None);
        };
        let range = losses::map_logit_range(&maps.detach(), beta)?
            .to_dtype(candle_core::DType::F64)?
            .flatten_all()?;
        let mean = range.mean_all()?.to_scalar::<f64>()?;
        let max = range.max(0)?.to_scalar::<f64>()?;
        Ok(Some((mean, max)))
    }

    /// Trains until the schedule ends or early stopping triggers, then evaluates the test
    /// split with the best weights and writes the report. Resumed runs continue from their
    /// last completed epoch.
    pub fn run(&mut self) -> Result<Outcome> {
        self.run_with(|_| ControlFlow::Continue(()))
    }

    /// As [`Trainer::run`], calling `on_epoch` after each epoch has been logged and
    /// checkpointed; `ControlFlow::Break(())` stops training there (the test evaluation and
    /// the report still follow, with the best weights so far). The run folder keeps the
    /// stopped run resumable: a later `run` continues it.
    pub fn run_with<F>(&mut self, mut on_epoch: F) -> Result<Outcome>
    where
        F: FnMut(&EpochRecord) -> ControlFlow<()>,
    {
        while let Some(record) = self.next_epoch()? {
            if on_epoch(&record).is_break() {
                break;
            }
        }
        self.finish()
    }

    /// Trains one epoch, validates, checkpoints and logs it, and returns its record; `None`
    /// once the schedule has ended or early stopping has triggered. With [`Trainer::finish`]
    /// this is the loop of [`Trainer::run`] for a program that drives it itself.
    pub fn next_epoch(&mut self) -> Result<Option<EpochRecord>> {
        if self.finished {
            return Err(Error::InvalidSetting {
                field: "trainer".into(),
                reason: "finish() has loaded the best weights; a new Trainer on the run folder \
                         continues the run"
                    .into(),
            });
        }
        self.started.get_or_insert_with(Instant::now);
        let total_epochs = self.cfg.schedule.epochs;
        if self.state.epoch >= total_epochs || self.state.stopped_early {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.out_dir).map_err(crate::error::io_err(&self.out_dir))?;
        let epoch = self.state.epoch;
        if self.cfg.schedule.restart_optimizer_at_join && self.cfg.costs.joins_at(epoch) {
            self.adam.restart()?;
        }
        let epoch_start = Instant::now();
        let plan = epoch_plan(&self.cfg, &self.splits.train, epoch);
        let n_steps = plan.len();
        let n_images: usize = plan.iter().map(Vec::len).sum();
        let rx = self.prefetch(plan, epoch);
        let mut progress =
            Progress::new(self.cfg.output.progress, epoch + 1, total_epochs, n_steps);
        let mut tally = EpochTally::default();
        let mut images_done = 0usize;
        for step in 0..n_steps {
            let batch = rx.recv().map_err(|_| Error::InvalidSetting {
                field: "data".into(),
                reason: "the batch producer stopped early".into(),
            })??;
            let factor = self.cfg.lr_rampup_factor(epoch, step, n_steps)
                * self.cfg.lr_anneal_factor(epoch, step, n_steps);
            self.adam.set_learning_rate(self.state.lr * factor);
            let outcome = self.step(&batch, epoch, step, n_steps)?;
            tally.add_step(&outcome.costs, outcome.grad_norm);
            if let Some((mean, max)) = outcome.map_range {
                tally.add_map_range(mean, max);
            }
            images_done += batch.len();
            let rate = images_done as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            progress.update(step + 1, &outcome.costs, rate);
        }
        let train_seconds = epoch_start.elapsed().as_secs_f64();
        // From validation to the checkpoint the variables hold the weights the run keeps;
        // they go back to the optimised weights even when that fails.
        self.swap_average()?;
        let committed = self.commit_epoch(progress, tally, n_images, train_seconds, epoch_start);
        self.swap_average()?;
        let record = committed?;
        // After the state commits the epoch: a kill in between leaves the line
        // missing, and the resume writes it from the state's history.
        report::append_epoch(&self.out_dir, &record)?;
        Ok(Some(record))
    }

    /// Validates the weights the run keeps, counts the epoch and writes its checkpoint;
    /// returns its record.
    fn commit_epoch(
        &mut self,
        mut progress: Progress,
        tally: EpochTally,
        n_images: usize,
        train_seconds: f64,
        epoch_start: Instant,
    ) -> Result<EpochRecord> {
        let valid = self.evaluate_split(
            &self.splits.valid.clone(),
            self.cfg.schedule.max_valid_images,
        )?;
        progress.finish(&format!(
            "valid error {:.4} {}",
            valid.mean_error, valid.unit
        ));
        let improved = self.state.count_epoch(selection_score(&self.cfg, &valid));
        let record = EpochRecord {
            epoch: self.state.epoch,
            lr: self.adam.learning_rate(),
            train: tally.means(),
            valid_error: valid.mean_error,
            valid_unit: valid.unit.clone(),
            valid_accuracy: valid.accuracy.clone(),
            images_per_sec: n_images as f64 / train_seconds.max(1e-9),
            seconds: epoch_start.elapsed().as_secs_f64(),
            best: improved,
            grad_norm: tally.grad_norm(),
            map_logit_range: tally.map_range(),
        };
        self.state
            .push_record(record.clone(), self.cfg.schedule.patience);
        self.state.lr *= self.cfg.schedule.lr_decay;
        self.adam.set_learning_rate(self.state.lr);
        self.state.seconds += epoch_start.elapsed().as_secs_f64();
        let mut extra = HashMap::new();
        if let Some(average) = &self.average {
            extra.extend(average.state()?);
        }
        if let Some(clip) = &self.relative_clip {
            extra.extend(clip.state()?);
        }
        checkpoint::save_training(
            &self.out_dir,
            &self.state,
            &self.model_cfg,
            &self.varmap,
            &self.adam,
            extra,
            improved,
            matches!(self.eval_pre.crop, data::CropMode::Object { .. })
                .then_some(self.cfg.data.crop_factor),
        )?;
        Ok(record)
    }

    /// Exchanges the optimised weights with their average, when the run keeps one.
    fn swap_average(&mut self) -> Result<()> {
        match &mut self.average {
            Some(average) => average.swap(),
            None => Ok(()),
        }
    }

    /// Loads the best weights, evaluates the test split once, writes the report. Call it
    /// after the epochs that [`Trainer::next_epoch`] ran.
    pub fn finish(&mut self) -> Result<Outcome> {
        let started = *self.started.get_or_insert_with(Instant::now);
        // Without a best checkpoint (no epoch improved) the last epoch's kept weights.
        if !self.finished {
            self.swap_average()?;
            self.finished = true;
        }
        checkpoint::load_best(&self.out_dir, &self.varmap)?;
        let test_ds = self.splits.test.clone();
        let predictions = self.predict_split(&test_ds, 0)?;
        let subsets = crate::subsets::subsets_of(&test_ds, self.cfg.data.kind);
        let test =
            crate::evaluation::evaluate_with_subsets(&predictions, &self.cfg.eval, &subsets)?;
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

    /// Predictions of the model's weights now on (the first `max` images of) a split:
    /// between epochs the optimised weights, not their average; after
    /// [`Trainer::finish`], the best.
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
        evaluate(&p, &self.cfg.eval)
    }
}

fn preprocess_for(cfg: &ExperimentConfig, size: usize) -> Preprocess {
    let crop = match cfg.data.crop {
        CropChoice::Auto => cfg.data.kind.auto_crop(),
        c => c,
    };
    let mut p = match crop {
        CropChoice::Whole | CropChoice::Auto => Preprocess::whole(size),
        CropChoice::Object => {
            let mut p = Preprocess::object(size);
            p.crop = data::CropMode::Object {
                box_scale: cfg.data.crop_factor as f32,
                landmark_scale: (cfg.data.crop_factor * 1.1) as f32,
            };
            p
        }
    };
    p.channels = cfg.data.channels;
    p
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
