//! Training checkpoints: the model weights (self-describing safetensors of the model zoo),
//! the optimiser state and the loop state, all written to temporary files and renamed.
//!
//! Layout of the output folder:
//! - `state.json`: the loop state; written last, it names the weight and optimiser files
//!   of the epoch it describes, so an interrupted write leaves the previous checkpoint
//!   whole.
//! - `epoch-NNNN.safetensors`, `epoch-NNNN.optim.safetensors`: the last epoch's weights and
//!   Adam moments (older ones are removed once `state.json` points past them).
//! - `best.safetensors`: the weights of the best validation epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use landmark_ssl_models::{self as models, CheckpointMeta, ModelConfig};

use crate::adam::Adam;
use crate::config::ExperimentConfig;
use crate::error::{io_err, Error, Result};
use crate::io::write_atomic;
use crate::report::EpochRecord;

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

impl TrainState {
    /// The state before the first epoch of `cfg`, whose model resolved to `model`.
    pub fn new(cfg: &ExperimentConfig, model: &ModelConfig) -> Self {
        // Output and display settings do not change the run.
        let mut key = cfg.clone();
        key.output = Default::default();
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

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The best checkpoint's path in an output folder.
pub fn best_path(dir: &Path) -> PathBuf {
    dir.join("best.safetensors")
}

/// Reads `state.json` if the folder has one.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    let p = state_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    let state = serde_json::from_str(&text).map_err(|source| Error::Json { path: p, source })?;
    Ok(Some(state))
}

/// Writes the end-of-epoch checkpoint (and `best.safetensors` when `is_best`), then the
/// state that points at it, then removes the previous epoch's files.
pub fn save_training(
    dir: &Path,
    state: &TrainState,
    model_cfg: &ModelConfig,
    vm: &VarMap,
    adam: &Adam,
    is_best: bool,
) -> Result<()> {
    let mut meta = CheckpointMeta::default();
    meta.extra.insert("epoch".into(), state.epoch.to_string());
    let weights = format!("epoch-{:04}.safetensors", state.epoch);
    let optim = format!("epoch-{:04}.optim.safetensors", state.epoch);
    // The model zoo's writer is atomic itself (temporary file, rename).
    models::save_checkpoint(dir.join(&weights), model_cfg, vm, &meta)?;
    if is_best {
        models::save_checkpoint(best_path(dir), model_cfg, vm, &meta)?;
    }
    let adam_state = adam.state()?;
    let bytes = safetensors_bytes(&adam_state, &dir.join(&optim))?;
    write_atomic(&dir.join(&optim), &bytes)?;
    let previous = read_state(dir)?;
    let mut new_state = state.clone();
    new_state.weights = weights.clone();
    new_state.optimizer = optim.clone();
    let json = serde_json::to_vec_pretty(&new_state).map_err(|source| Error::Json {
        path: state_path(dir),
        source,
    })?;
    write_atomic(&state_path(dir), &json)?;
    if let Some(prev) = previous {
        for f in [prev.weights, prev.optimizer] {
            if !f.is_empty() && f != weights && f != optim {
                // A leftover file costs only disk space; the checkpoint is already whole.
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    }
    Ok(())
}

fn safetensors_bytes(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<Vec<u8>> {
    let mut views = Vec::with_capacity(tensors.len());
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        views.push((
            name.clone(),
            tensors[name].to_device(&Device::Cpu)?.contiguous()?,
        ));
    }
    let refs: Vec<(&str, &Tensor)> = views.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::tensor::serialize(refs, None).map_err(|e| Error::Checkpoint {
        what: format!("{}: {e}", path.display()),
    })
}

/// Loads the weights and optimiser state a `state.json` names.
pub fn load_training(dir: &Path, state: &TrainState, vm: &VarMap, adam: &mut Adam) -> Result<()> {
    models::load_weights(dir.join(&state.weights), vm)?;
    let p = dir.join(&state.optimizer);
    let tensors =
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| Error::Checkpoint {
            what: format!("{}: {e}", p.display()),
        })?;
    adam.load_state(&tensors)
}

/// Loads `best.safetensors` into `vm` (the last epoch's weights when no epoch improved).
pub fn load_best(dir: &Path, vm: &VarMap) -> Result<()> {
    let best = best_path(dir);
    if best.exists() {
        models::load_weights(&best, vm)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
