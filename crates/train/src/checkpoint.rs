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
//!
//! With a weight average (`schedule.weight_average_decay`), the weight files hold the
//! average (the weights the run validates and ships) and the optimiser file also holds the
//! optimised weights (`average.raw.<var>`) and the average's update count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use landmark_ssl_models::{self as models, CheckpointMeta, ModelConfig};

use crate::adam::Adam;
use crate::error::{io_err, Error, Result};
use crate::io::write_atomic;
use crate::records::EpochRecord;
use crate::state::check_file_name;
pub use crate::state::{epoch_files, TrainState};

/// The largest `state.json` or `log.jsonl` read, in bytes (each epoch adds a few hundred).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}

/// The best checkpoint's path in an output folder.
pub fn best_path(dir: &Path) -> PathBuf {
    dir.join("best.safetensors")
}

/// `Some(path)` when `path` exists and its real path (symlinks resolved) lies inside the
/// real path of `dir`; `None` when it does not exist; an error when it leads outside.
fn inside_run(dir: &Path, path: &Path) -> Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let real = path.canonicalize().map_err(io_err(path))?;
    let real_dir = dir.canonicalize().map_err(io_err(dir))?;
    if !real.starts_with(&real_dir) {
        return Err(Error::Checkpoint {
            what: format!(
                "{} leads to {}, outside the run folder {}; refusing to use it",
                path.display(),
                real.display(),
                real_dir.display()
            ),
        });
    }
    Ok(Some(path.to_path_buf()))
}

/// Reads a file of the run folder that must stay inside it, up to `MAX_STATE_BYTES`.
fn read_run_text(dir: &Path, path: &Path) -> Result<Option<String>> {
    let Some(path) = inside_run(dir, path)? else {
        return Ok(None);
    };
    let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
    if len > MAX_STATE_BYTES {
        return Err(Error::Checkpoint {
            what: format!(
                "{} has {len} bytes, more than the {MAX_STATE_BYTES} read",
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(Some(text))
}

/// Reads `state.json` if the folder has one, and checks it: the files it names are the
/// plain file names this module writes for its epoch, and its numbers are in range.
pub fn read_state(dir: &Path) -> Result<Option<TrainState>> {
    let p = state_path(dir);
    let Some(text) = read_run_text(dir, &p)? else {
        return Ok(None);
    };
    let state: TrainState = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: p.clone(),
        source,
    })?;
    state.check().map_err(|reason| Error::Checkpoint {
        what: format!("{}: {reason}", p.display()),
    })?;
    Ok(Some(state))
}

/// Writes the end-of-epoch checkpoint (and `best.safetensors` when `is_best`), then the
/// state that points at it, then removes the earlier epochs' files. `crop_factor` (the box
/// crop's factor when training cropped around boxes) is recorded in the weights' metadata.
/// `extra` goes into the optimiser file beside Adam's state: with a weight average, `vm`
/// holds the averaged weights (those the run validates and ships) and `extra` the optimised
/// ones ([`crate::WeightAverage::state`]); the running norm of relative clipping
/// ([`crate::clip::RelativeClip::state`]).
#[allow(clippy::too_many_arguments)]
pub fn save_training(
    dir: &Path,
    state: &TrainState,
    model_cfg: &ModelConfig,
    vm: &VarMap,
    adam: &Adam,
    extra: HashMap<String, Tensor>,
    is_best: bool,
    crop_factor: Option<f64>,
) -> Result<()> {
    let mut meta = CheckpointMeta {
        crop_factor,
        ..CheckpointMeta::default()
    };
    meta.extra.insert("epoch".into(), state.epoch.to_string());
    let (weights, optim) = epoch_files(state.epoch);
    // The model zoo's writer is atomic itself (temporary file, rename).
    models::save_checkpoint(dir.join(&weights), model_cfg, vm, &meta)?;
    let mut adam_state = adam.state()?;
    adam_state.extend(extra);
    let bytes = safetensors_bytes(&adam_state, &dir.join(&optim))?;
    write_atomic(&dir.join(&optim), &bytes)?;
    let mut new_state = state.clone();
    new_state.weights = weights;
    new_state.optimizer = optim;
    let json = serde_json::to_vec_pretty(&new_state).map_err(|source| Error::Json {
        path: state_path(dir),
        source,
    })?;
    write_atomic(&state_path(dir), &json)?;
    // Only a committed epoch becomes the best checkpoint: a kill before this line leaves
    // `best.safetensors` at the committed best, and a kill during it is repaired on resume
    // ([`restore_best`]).
    if is_best {
        copy_atomic(&dir.join(&new_state.weights), &best_path(dir))?;
    }
    remove_other_epoch_files(dir, state.epoch);
    Ok(())
}

/// After a resume: when the committed epoch is the best one, `best.safetensors` is made a
/// copy of its weights (a kill between the state's commit and the copy left the previous
/// best there).
pub fn restore_best(dir: &Path, state: &TrainState) -> Result<()> {
    if state.epoch == 0 || state.best_epoch != state.epoch {
        return Ok(());
    }
    check_file_name("weights", &state.weights).map_err(|what| Error::Checkpoint { what })?;
    let src = dir.join(&state.weights);
    match inside_run(dir, &src)? {
        Some(src) => copy_atomic(&src, &best_path(dir)),
        None => Ok(()),
    }
}

/// Copies `src` to `dst` through a temporary file and a rename.
fn copy_atomic(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).map_err(io_err(src))?;
    write_atomic(dst, &bytes)
}

/// Removes the weight and optimiser files of every epoch but `keep` (those `state.json`
/// points past, and those of an epoch a kill left uncommitted). Only names of the form
/// this module writes are touched, and only in `dir` itself.
pub fn remove_other_epoch_files(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let (weights, optim) = epoch_files(keep);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let epoch_digits = name
            .strip_prefix("epoch-")
            .and_then(|r| {
                r.strip_suffix(".optim.safetensors")
                    .or_else(|| r.strip_suffix(".safetensors"))
            })
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if epoch_digits.is_some() && is_file && name != weights && name != optim {
            // A leftover file costs only disk space; the checkpoint is already whole.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Makes `log.jsonl` hold exactly one line per committed epoch of `history`: lines of
/// epochs beyond it (written before a kill stopped the commit), repeated and unreadable
/// lines are dropped, missing ones are written from `history`. The original text of every
/// kept line stays; the file is replaced atomically, and only when it changes.
pub fn reconcile_log(dir: &Path, history: &[EpochRecord]) -> Result<()> {
    let path = log_path(dir);
    let text = read_run_text(dir, &path)?.unwrap_or_default();
    let mut lines: Vec<Option<&str>> = vec![None; history.len()];
    for line in text.lines() {
        let epoch = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("epoch").and_then(serde_json::Value::as_u64));
        if let Some(slot) = epoch
            .and_then(|e| usize::try_from(e).ok()?.checked_sub(1))
            .and_then(|i| lines.get_mut(i))
        {
            slot.get_or_insert(line);
        }
    }
    let mut out = String::with_capacity(text.len());
    for (line, record) in lines.iter().zip(history) {
        match line {
            Some(l) => out.push_str(l),
            None => out.push_str(
                &serde_json::to_string(record).map_err(|source| Error::Json {
                    path: path.clone(),
                    source,
                })?,
            ),
        }
        out.push('\n');
    }
    if out != text && (path.exists() || !out.is_empty()) {
        write_atomic(&path, out.as_bytes())?;
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

/// Loads the weights and optimiser state a `state.json` names; both must be files of
/// `dir` (also after following symlinks). Returns the optimiser file's tensors, for the
/// state saved beside Adam's ([`crate::WeightAverage::load_state`],
/// [`crate::clip::RelativeClip::load_state`]).
pub fn load_training(
    dir: &Path,
    state: &TrainState,
    vm: &VarMap,
    adam: &mut Adam,
) -> Result<HashMap<String, Tensor>> {
    let run_file = |field: &str, name: &str| -> Result<PathBuf> {
        check_file_name(field, name).map_err(|what| Error::Checkpoint { what })?;
        let p = dir.join(name);
        inside_run(dir, &p)?.ok_or_else(|| Error::Checkpoint {
            what: format!("{} (named by state.json) is missing", p.display()),
        })
    };
    let weights = run_file("weights", &state.weights)?;
    let p = run_file("optimizer", &state.optimizer)?;
    models::load_weights(weights, vm)?;
    let tensors =
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| Error::Checkpoint {
            what: format!("{}: {e}", p.display()),
        })?;
    adam.load_state(&tensors)?;
    Ok(tensors)
}

/// Loads `best.safetensors` into `vm`; leaves `vm` as it is when there is none (no epoch
/// improved).
pub fn load_best(dir: &Path, vm: &VarMap) -> Result<()> {
    if let Some(best) = inside_run(dir, &best_path(dir))? {
        models::load_weights(&best, vm)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{record, saved_state};

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lssl-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_state_file_may_not_lead_outside_the_run_folder() {
        let d = scratch("symlink");
        let outside = d.with_extension("outside.json");
        let text = serde_json::to_string(&saved_state(1)).unwrap();
        std::fs::write(&outside, &text).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("state.json")).unwrap();
        let err = read_state(&d).unwrap_err().to_string();
        assert!(err.contains("outside the run folder"), "{err}");
        std::fs::remove_file(d.join("state.json")).unwrap();
        std::fs::write(d.join("state.json"), &text).unwrap();
        assert_eq!(read_state(&d).unwrap().unwrap().epoch, 1);
        std::fs::remove_file(outside).unwrap();
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_log_keeps_one_line_per_committed_epoch() {
        let d = scratch("log");
        let history: Vec<EpochRecord> = (1..=3).map(record).collect();
        let line = |e: usize| serde_json::to_string(&record(e)).unwrap();
        let epochs_of = |d: &Path| -> Vec<u64> {
            std::fs::read_to_string(d.join("log.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        // Lines beyond the commit, a repeated line, a torn line; epoch 3's line missing.
        let text = format!(
            "{}\n{}\n{}\n{}\n{{\"epoch\": 4, \"lr",
            line(1),
            line(2),
            line(2),
            line(5)
        );
        std::fs::write(d.join("log.jsonl"), &text).unwrap();
        reconcile_log(&d, &history).unwrap();
        assert_eq!(epochs_of(&d), [1, 2, 3]);
        // A whole log is left as it is, byte for byte.
        let kept = format!("{} \n{}\n{}\n", line(1), line(2), line(3));
        std::fs::write(d.join("log.jsonl"), &kept).unwrap();
        reconcile_log(&d, &history).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("log.jsonl")).unwrap(), kept);
        // Nothing committed: no line stays.
        reconcile_log(&d, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("log.jsonl")).unwrap(), "");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn only_other_epochs_files_are_removed() {
        let d = scratch("epochs");
        let removed = [
            "epoch-0001.safetensors",
            "epoch-0001.optim.safetensors",
            "epoch-12345.safetensors",
        ];
        let kept = [
            "epoch-0002.safetensors",
            "epoch-0002.optim.safetensors",
            "best.safetensors",
            "epoch-x.safetensors",
            "epoch-.safetensors",
            "epoch-0001.safetensors.bak",
        ];
        for f in removed.iter().chain(&kept) {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        remove_other_epoch_files(&d, 2);
        for f in removed {
            assert!(!d.join(f).exists(), "{f} is left");
        }
        for f in kept {
            assert!(d.join(f).exists(), "{f} was removed");
        }
        std::fs::remove_dir_all(d).unwrap();
    }
}
