//! Self-describing checkpoints: the weights of a `VarMap` as safetensors, with the model
//! config (JSON), the input size, K, and the landmark layout in the file's `__metadata__`.
//!
//! Metadata keys: `format` (= [`FORMAT`]), `config` (the [`ModelConfig`] as JSON),
//! `input_size` (`"HxW"`), `num_landmarks`, `landmark_layout` (when given), and
//! `extra.<key>` for caller-supplied strings (e.g. the epoch). Tensors keep the model's
//! weight names (`convs.0.weight`, ...), stored as f32.
//!
//! Files are written to a temporary file in the same directory, then renamed over the target,
//! so a crash never leaves a half-written checkpoint under the final name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::LandmarkModel;

/// The `format` metadata value of checkpoints written by this version.
pub const FORMAT: &str = "landmark-ssl-checkpoint/1";

/// Caller-supplied metadata saved beside the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// The landmark layout's name (e.g. the data crate's `Layout` in its serde JSON form).
    pub landmark_layout: Option<String>,
    /// Free-form strings (epoch, data set, ...), stored under `extra.<key>`.
    pub extra: BTreeMap<String, String>,
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// The model config.
    pub config: ModelConfig,
    /// Input size `(height, width)` in pixels.
    pub input_size: (usize, usize),
    /// Number of landmarks K.
    pub num_landmarks: usize,
    /// Landmark layout and extra strings.
    pub meta: CheckpointMeta,
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The variables of `vm` by name, sorted.
fn vars_of(vm: &VarMap, path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| ckpt_err(path, "the VarMap's lock is poisoned"))?;
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect())
}

/// Saves the weights of `vm` with `config` and `meta` in the metadata, to `path` (temp file
/// + rename).
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    config: &ModelConfig,
    vm: &VarMap,
    meta: &CheckpointMeta,
) -> Result<()> {
    let path = path.as_ref();
    let vars = vars_of(vm, path)?;
    let mut tensors = Vec::with_capacity(vars.len());
    for (name, t) in vars {
        let t = if t.dtype() == DType::F32 {
            t
        } else {
            t.to_dtype(DType::F32)?
        };
        tensors.push((name, t.to_device(&Device::Cpu)?.contiguous()?));
    }
    let (h, w) = config.input_size();
    let mut md = HashMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    md.insert("config".to_string(), config.to_json()?);
    md.insert("input_size".to_string(), format!("{h}x{w}"));
    md.insert(
        "num_landmarks".to_string(),
        config.num_landmarks().to_string(),
    );
    if let Some(l) = &meta.landmark_layout {
        md.insert("landmark_layout".to_string(), l.clone());
    }
    for (k, v) in &meta.extra {
        md.insert(format!("extra.{k}"), v.clone());
    }
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md))
        .map_err(|e| ckpt_err(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it to `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| ckpt_err(path, "the path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// Reads a checkpoint's metadata and tensors (on `device`, f32).
pub fn read_checkpoint(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(CheckpointInfo, HashMap<String, Tensor>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| ckpt_err(path, format!("not a safetensors file: {e}")))?;
    let md = header
        .metadata()
        .clone()
        .ok_or_else(|| ckpt_err(path, "no metadata: not a landmark-ssl checkpoint"))?;
    let get = |k: &str| {
        md.get(k).ok_or_else(|| {
            ckpt_err(
                path,
                format!("metadata lacks `{k}`: not a landmark-ssl checkpoint"),
            )
        })
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(ckpt_err(
            path,
            format!("unsupported format `{format}`, expected `{FORMAT}`"),
        ));
    }
    let config: ModelConfig = serde_json::from_str(get("config")?)
        .map_err(|e| ckpt_err(path, format!("bad `config` metadata: {e}")))?;
    config
        .validate()
        .map_err(|e| ckpt_err(path, format!("invalid `config` metadata: {e}")))?;
    let mut meta = CheckpointMeta {
        landmark_layout: md.get("landmark_layout").cloned(),
        extra: BTreeMap::new(),
    };
    for (k, v) in &md {
        if let Some(key) = k.strip_prefix("extra.") {
            meta.extra.insert(key.to_string(), v.clone());
        }
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| ckpt_err(path, format!("cannot read tensors: {e}")))?;
    let mut out = HashMap::with_capacity(tensors.len());
    for (k, t) in tensors {
        let t = if t.dtype() == DType::F32 {
            t
        } else {
            t.to_dtype(DType::F32)?
        };
        out.insert(k, t);
    }
    let info = CheckpointInfo {
        input_size: config.input_size(),
        num_landmarks: config.num_landmarks(),
        config,
        meta,
    };
    Ok((info, out))
}

/// Loads a checkpoint's weights into the variables of `vm` (which must hold exactly the same
/// names and shapes, e.g. a model built from the same config). The first mismatching tensor
/// in name order (missing from the file, missing from the model, or of another shape) is
/// reported as [`Error::TensorMismatch`]; nothing is changed then.
pub fn load_weights(path: impl AsRef<Path>, vm: &VarMap) -> Result<CheckpointInfo> {
    let path = path.as_ref();
    let device = {
        let data = vm
            .data()
            .lock()
            .map_err(|_| ckpt_err(path, "the VarMap's lock is poisoned"))?;
        data.values()
            .next()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu)
    };
    let (info, tensors) = read_checkpoint(path, &device)?;
    assign(path, &info, &tensors, vm)?;
    Ok(info)
}

/// Checks `tensors` against the variables of `vm` (names and shapes), then sets them.
fn assign(
    path: &Path,
    info: &CheckpointInfo,
    tensors: &HashMap<String, Tensor>,
    vm: &VarMap,
) -> Result<()> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| ckpt_err(path, "the VarMap's lock is poisoned"))?;
    let names: BTreeSet<&String> = data.keys().chain(tensors.keys()).collect();
    let mismatch = |tensor: &str, reason: String| Error::TensorMismatch {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason,
    };
    for name in &names {
        match (data.get(*name), tensors.get(*name)) {
            (Some(v), Some(t)) if v.dims() != t.dims() => {
                return Err(mismatch(
                    name,
                    format!(
                        "shape {:?} in the checkpoint (a {} model), {:?} in the model",
                        t.dims(),
                        info.config.family(),
                        v.dims()
                    ),
                ))
            }
            (Some(v), None) => {
                return Err(mismatch(
                    name,
                    format!(
                        "the model has it ({:?}) but the checkpoint does not",
                        v.dims()
                    ),
                ))
            }
            (None, Some(t)) => {
                return Err(mismatch(
                    name,
                    format!(
                        "the checkpoint has it ({:?}) but the model does not",
                        t.dims()
                    ),
                ))
            }
            _ => {}
        }
    }
    for (name, v) in data.iter() {
        if let Some(t) = tensors.get(name) {
            v.set(&t.to_dtype(v.dtype())?)?;
        }
    }
    Ok(())
}

/// Builds the model a checkpoint describes and loads its weights: returns the model, its
/// `VarMap` (for further training) and the checkpoint's info.
pub fn load_checkpoint(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(LandmarkModel, VarMap, CheckpointInfo)> {
    let path = path.as_ref();
    let (info, tensors) = read_checkpoint(path, device)?;
    let vm = VarMap::new();
    let model = LandmarkModel::new(
        &info.config,
        VarBuilder::from_varmap(&vm, DType::F32, device),
    )?;
    assign(path, &info, &tensors, &vm)?;
    Ok((model, vm, info))
}
