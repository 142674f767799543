//! The training loop's state between epochs, saved as `state.json`: the epochs done, the
//! best epoch and early stopping, the learning rate, the history of epoch records, and the
//! checkpoint files of the last epoch (their names and the checks a loaded state passes).

use std::path::Path;

use serde::{Deserialize, Serialize};

use landmark_ssl_models::ModelConfig;

use crate::config::ExperimentConfig;
use crate::evaluation::Evaluation;
use crate::records::EpochRecord;

/// The training loop's state, saved as `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// The experiment, as JSON, so a resume into a different experiment is refused. The
    /// model appears as the config it resolved to, so a preset that changed between builds
    /// counts as another experiment.
    pub experiment: String,
    /// Completed epochs.
    pub epoch: usize,
    /// Best validation error so far (in the evaluation's unit).
    pub best_valid: f64,
    /// The epoch (1-based) of the best validation error; 0 before the first.
    pub best_epoch: usize,
    /// Epochs since the best one.
    pub since_best: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The learning rate for the next epoch.
    pub lr: f64,
    /// Seconds spent training so far, over all resumed sessions.
    pub seconds: f64,
    /// Weight file of the last epoch, relative to the output folder.
    pub weights: String,
    /// Optimiser file of the last epoch.
    pub optimizer: String,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

/// Settings added after run folders had been written whose default changes what a run
/// computes, with the value that computes what the library did before they existed (section,
/// field, value): a folder without them is another experiment than today's default.
fn added_settings() -> [(&'static str, &'static str, serde_json::Value); 5] {
    [
        ("costs", "map_logit_bound", serde_json::json!(0.0)),
        ("costs", "rampup_epochs", serde_json::json!(0)),
        ("costs", "label_smoothing", serde_json::json!(0.0)),
        ("schedule", "weight_average_decay", serde_json::json!(0.0)),
        ("schedule", "clip_grad_relative", serde_json::json!(0.0)),
    ]
}

/// A saved experiment, with the settings it predates at their earlier behaviour.
fn parse_saved(text: &str) -> Option<ExperimentConfig> {
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    for (section, field, value) in added_settings() {
        if let Some(obj) = v
            .get_mut(section)
            .and_then(serde_json::Value::as_object_mut)
        {
            obj.entry(field).or_insert(value);
        }
    }
    serde_json::from_value(v).ok()
}

impl TrainState {
    /// Whether `self` (read from a run folder) belongs to the experiment of `current`: the
    /// two experiments compare equal as configs. A setting added to the library since the
    /// folder was written compares at the value that does what the library did before it
    /// existed (`added_settings`; its default otherwise).
    pub fn same_experiment(&self, current: &TrainState) -> bool {
        match (
            parse_saved(&self.experiment),
            parse_saved(&current.experiment),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => self.experiment == current.experiment,
        }
    }

    /// The state before the first epoch of `cfg`, whose model resolved to `model`.
    pub fn new(cfg: &ExperimentConfig, model: &ModelConfig) -> Self {
        // Output and display settings do not change the run.
        let mut key = cfg.clone();
        key.output = Default::default();
        // A run started on one device may continue on another, and with other limits.
        key.device = Default::default();
        key.limits = Default::default();
        key.schedule.epochs = 0;
        key.model.config = Some(model.clone());
        Self {
            experiment: serde_json::to_string(&key).unwrap_or_default(),
            epoch: 0,
            best_valid: f64::MAX,
            best_epoch: 0,
            since_best: 0,
            stopped_early: false,
            lr: cfg.schedule.adam.lr,
            seconds: 0.0,
            weights: String::new(),
            optimizer: String::new(),
            history: Vec::new(),
        }
    }
}

impl TrainState {
    /// Counts one more finished epoch whose validation score (lower is better; see
    /// [`selection_score`]) is `score`; returns whether it is the best so far, which then
    /// becomes the best epoch.
    pub(crate) fn count_epoch(&mut self, score: f64) -> bool {
        self.epoch += 1;
        let improved = score < self.best_valid;
        if improved {
            self.best_valid = score;
            self.best_epoch = self.epoch;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        improved
    }

    /// Adds the record of the epoch just counted to the history, and stops the run early
    /// once `patience` epochs (0: never) have passed without improvement.
    pub(crate) fn push_record(&mut self, record: EpochRecord, patience: usize) {
        self.history.push(record);
        if patience > 0 && self.since_best >= patience {
            self.stopped_early = true;
        }
    }
}

/// The validation score the best checkpoint is chosen by (lower is better): the mean
/// landmark error, or, when the landmark cost is off (the paper's Shapes: class labels
/// only, landmarks never labelled), one minus the mean class accuracy.
pub(crate) fn selection_score(cfg: &ExperimentConfig, valid: &Evaluation) -> f64 {
    if cfg.costs.landmark || valid.accuracy.is_empty() {
        valid.mean_error
    } else {
        1.0 - valid.accuracy.values().sum::<f64>() / valid.accuracy.len() as f64
    }
}

/// The weight and optimiser files of the end of `epoch` (1-based).
pub fn epoch_files(epoch: usize) -> (String, String) {
    (
        format!("epoch-{epoch:04}.safetensors"),
        format!("epoch-{epoch:04}.optim.safetensors"),
    )
}

impl TrainState {
    /// Checks what a `state.json` may not say, whatever the experiment: an error names the
    /// field.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.epoch == 0 {
            return Err("`epoch` is 0; a saved state has at least one epoch".into());
        }
        if self.history.len() != self.epoch {
            return Err(format!(
                "`epoch` is {}, but `history` has {} records",
                self.epoch,
                self.history.len()
            ));
        }
        for (i, r) in self.history.iter().enumerate() {
            if r.epoch != i + 1 {
                return Err(format!(
                    "`history[{i}]` is epoch {}, not {}",
                    r.epoch,
                    i + 1
                ));
            }
        }
        if self.best_epoch > self.epoch || self.since_best > self.epoch {
            return Err(format!(
                "`best_epoch` {} or `since_best` {} exceeds `epoch` {}",
                self.best_epoch, self.since_best, self.epoch
            ));
        }
        // A long decay may take the rate down to 0; [`TrainState::check_schedule`] checks
        // it against the experiment's schedule.
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!("`lr` {} is not a non-negative number", self.lr));
        }
        if self.best_valid.is_nan() || self.best_valid < 0.0 {
            return Err(format!(
                "`best_valid` {} is not a non-negative number",
                self.best_valid
            ));
        }
        if !(self.seconds.is_finite() && self.seconds >= 0.0) {
            return Err(format!(
                "`seconds` {} is not a non-negative number",
                self.seconds
            ));
        }
        let (weights, optimizer) = epoch_files(self.epoch);
        for (field, name, want) in [
            ("weights", &self.weights, weights),
            ("optimizer", &self.optimizer, optimizer),
        ] {
            check_file_name(field, name)?;
            if *name != want {
                return Err(format!(
                    "`{field}` is `{name}`; epoch {} wrote `{want}`",
                    self.epoch
                ));
            }
        }
        Ok(())
    }

    /// Checks the state against the experiment resumed: the learning rate is the one its
    /// schedule gives after `epoch` epochs, and early stopping is one its patience allows.
    pub fn check_schedule(&self, cfg: &ExperimentConfig) -> std::result::Result<(), String> {
        let s = &cfg.schedule;
        // The same products the training loop forms, one epoch at a time.
        let mut lr = s.adam.lr;
        for _ in 0..self.epoch {
            lr *= s.lr_decay;
        }
        if (self.lr - lr).abs() > 1e-9 * lr {
            return Err(format!(
                "`lr` is {}, the schedule gives {lr} after {} epochs",
                self.lr, self.epoch
            ));
        }
        if self.stopped_early && (s.patience == 0 || self.since_best < s.patience) {
            return Err(format!(
                "`stopped_early` is set, but patience {} and `since_best` {} do not stop",
                s.patience, self.since_best
            ));
        }
        Ok(())
    }
}

/// A file named by `state.json` must be a plain file name in the run folder: not empty,
/// not absolute, no `..`, no folders.
pub(crate) fn check_file_name(field: &str, name: &str) -> std::result::Result<(), String> {
    use std::path::Component;
    let path = Path::new(name);
    let reason = if name.is_empty() {
        "is empty"
    } else if path.has_root() || path.is_absolute() {
        "is an absolute path"
    } else if path.components().any(|c| c == Component::ParentDir) {
        "has a `..` component"
    } else if path.components().count() != 1
        || !matches!(path.components().next(), Some(Component::Normal(_)))
    {
        "is not a plain file name"
    } else {
        return Ok(());
    };
    Err(format!(
        "`{field}` = `{name}` {reason}; it must name a file in the run folder"
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use landmark_ssl_models as models;

    pub(crate) fn record(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 1e-3,
            train: Default::default(),
            valid_error: epoch as f64,
            valid_unit: "px".into(),
            valid_accuracy: Default::default(),
            images_per_sec: 1.0,
            seconds: 1.0,
            best: true,
            grad_norm: None,
            map_logit_range: None,
        }
    }

    /// A state as `save_training` writes it after `epochs` epochs of the default experiment.
    pub(crate) fn saved_state(epochs: usize) -> TrainState {
        let cfg = ExperimentConfig::default();
        let mut s = TrainState::new(&cfg, &cfg.resolved_model().unwrap());
        s.epoch = epochs;
        s.history = (1..=epochs).map(record).collect();
        s.best_epoch = epochs;
        s.best_valid = 1.0;
        (s.weights, s.optimizer) = epoch_files(epochs);
        s
    }

    #[test]
    fn state_fields_are_checked() {
        let cfg = ExperimentConfig::default();
        saved_state(2).check().unwrap();
        saved_state(2).check_schedule(&cfg).unwrap();
        type Edit = fn(&mut TrainState);
        let cases: [(&str, Edit); 12] = [
            ("absolute", |s| s.weights = "/etc/passwd".into()),
            ("`..`", |s| s.weights = "../outside.safetensors".into()),
            ("`..`", |s| s.optimizer = "a/../../b".into()),
            ("plain file name", |s| {
                s.weights = "sub/epoch-0002.safetensors".into()
            }),
            ("empty", |s| s.optimizer = String::new()),
            ("epoch 2 wrote", |s| s.weights = "best.safetensors".into()),
            ("`lr`", |s| s.lr = -0.05),
            ("`lr`", |s| s.lr = f64::INFINITY),
            ("`epoch`", |s| s.epoch = 0),
            ("`history`", |s| s.epoch = 7),
            ("`best_valid`", |s| s.best_valid = -1.0),
            ("`best_epoch`", |s| s.best_epoch = 3),
        ];
        for (want, edit) in cases {
            let mut s = saved_state(2);
            edit(&mut s);
            let err = s.check().unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        // In range, but not what the schedule gives.
        let mut s = saved_state(2);
        s.lr = 0.5;
        assert!(s.check_schedule(&cfg).unwrap_err().contains("`lr`"));
        let mut s = saved_state(2);
        s.stopped_early = true;
        assert!(s
            .check_schedule(&cfg)
            .unwrap_err()
            .contains("stopped_early"));
    }

    /// A run names its model as the config the preset resolved to: the same preset name
    /// with another resolved config (a preset changed between builds) is another experiment.
    #[test]
    fn experiment_key_holds_the_resolved_model() {
        let cfg = ExperimentConfig::default();
        let a = models::preset(&cfg.model.preset).unwrap();
        let mut b = a.clone();
        if let ModelConfig::SeqMt(c) = &mut b {
            c.map_negative_slope = 0.0;
        }
        assert_ne!(a, b);
        let key = |m: &ModelConfig| TrainState::new(&cfg, m).experiment;
        assert_eq!(key(&a), key(&a.clone()));
        assert_ne!(key(&a), key(&b));
    }

    /// A folder written before a setting existed resumes: the setting compares at its
    /// default. The device never matters; the seed does.
    #[test]
    fn older_folders_and_other_devices_are_the_same_experiment() {
        let cfg = ExperimentConfig::default();
        let m = models::preset(&cfg.model.preset).unwrap();
        let now = TrainState::new(&cfg, &m);
        let mut v: serde_json::Value = serde_json::from_str(&now.experiment).unwrap();
        v.as_object_mut().unwrap().remove("device");
        v["data"].as_object_mut().unwrap().remove("crop");
        let mut old = now.clone();
        old.experiment = v.to_string();
        assert_ne!(old.experiment, now.experiment);
        assert!(old.same_experiment(&now));
        let mut gpu = cfg.clone();
        gpu.device = crate::DeviceChoice::Cuda(1);
        assert!(TrainState::new(&gpu, &m).same_experiment(&now));
        let mut other = cfg.clone();
        other.seed += 1;
        assert!(!TrainState::new(&other, &m).same_experiment(&now));
    }

    /// A folder written before a setting whose default changes the run existed compares at
    /// the setting's earlier behaviour, not at today's default.
    #[test]
    fn older_folders_predate_the_weight_average_the_ramps_and_smoothing() {
        let cfg = ExperimentConfig::default();
        let m = models::preset(&cfg.model.preset).unwrap();
        let now = TrainState::new(&cfg, &m);
        let mut v: serde_json::Value = serde_json::from_str(&now.experiment).unwrap();
        for (section, field) in [
            ("schedule", "weight_average_decay"),
            ("costs", "map_logit_bound"),
            ("costs", "rampup_epochs"),
            ("costs", "label_smoothing"),
        ] {
            v[section].as_object_mut().unwrap().remove(field);
        }
        let mut old = now.clone();
        old.experiment = v.to_string();
        assert!(!old.same_experiment(&now));
        let mut before = cfg.clone();
        before.schedule.weight_average_decay = 0.0;
        before.costs.map_logit_bound = 0.0;
        before.costs.rampup_epochs = 0;
        before.costs.label_smoothing = 0.0;
        assert!(old.same_experiment(&TrainState::new(&before, &m)));
    }

    #[test]
    fn the_best_epoch_and_early_stopping_are_counted() {
        let cfg = ExperimentConfig::default();
        let mut s = TrainState::new(&cfg, &cfg.resolved_model().unwrap());
        let patience = 2;
        for (score, improves, stops) in [
            (5.0, true, false),
            (4.0, true, false),
            (4.0, false, false),
            (3.0, true, false),
            (3.5, false, false),
            (3.5, false, true),
        ] {
            assert!(!s.stopped_early);
            assert_eq!(s.count_epoch(score), improves, "epoch {}", s.epoch);
            s.push_record(record(s.epoch), patience);
            assert_eq!(s.stopped_early, stops, "epoch {}", s.epoch);
        }
        assert_eq!(
            (s.epoch, s.best_epoch, s.best_valid, s.since_best),
            (6, 4, 3.0, 2)
        );
        assert_eq!(s.history.len(), 6);
        // Patience 0 never stops.
        let mut s = TrainState::new(&cfg, &cfg.resolved_model().unwrap());
        for _ in 0..5 {
            s.count_epoch(1.0);
            s.push_record(record(s.epoch), 0);
        }
        assert!(!s.stopped_early);
        assert_eq!(s.since_best, 4);
    }

    #[test]
    fn the_score_is_the_class_error_when_landmarks_are_off() {
        let mut cfg = ExperimentConfig::default();
        let valid = Evaluation {
            images: 2,
            mean_error: 2.5,
            median_error: 2.5,
            unit: "px".into(),
            per_landmark: vec![2.5],
            failure_rate: 0.0,
            auc: 0.5,
            threshold: 5.0,
            at_thresholds: vec![],
            subsets: Default::default(),
            accuracy: [("a".to_string(), 0.5), ("b".to_string(), 1.0)].into(),
            per_image: vec![2.0, 3.0],
        };
        assert_eq!(selection_score(&cfg, &valid), 2.5);
        cfg.costs.landmark = false;
        assert_eq!(selection_score(&cfg, &valid), 0.25);
    }
}
