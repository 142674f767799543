//! Self-describing checkpoints: the weights of a `VarMap` as safetensors, with the model
//! config (JSON), the input size, K, and the landmark layout in the file's `__metadata__`.
//!
//! Metadata keys: `format` (= [`FORMAT`]), `config` (the [`ModelConfig`] as JSON, its
//! `in_channels` included: a config without it is grey, 1 channel), and, for tools that
//! read headers, copies of the config's `input_size` (`"HxW"`), `in_channels` and
//! `num_landmarks` (reading goes by the config); `landmark_layout` (when given), `crop_factor`
//! (when given: the training crop's factor on an object box), and `extra.<key>` for
//! caller-supplied strings (e.g. the epoch). Tensors keep the model's weight names
//! (`convs.0.weight`, ...), stored as f32.
//!
//! Reading never trusts the file: the header is read alone (at most [`MAX_HEADER_BYTES`]),
//! its config is checked against [`ModelLimits`], the weights that config's model would have
//! are worked out from the config and compared, name by name and shape by shape, with the
//! stored tensors and the file's length, all before any tensor is read or any model built.
//! Every weight must then be finite, and a built model must give finite outputs.
//!
//! Files are written to a temporary file in the same directory, flushed, then renamed over
//! the target, so a crash never leaves a half-written checkpoint under the final name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;

use crate::atomic::write_atomic;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::limits::ModelLimits;
use crate::LandmarkModel;

/// The `format` metadata value of checkpoints written by this version.
pub const FORMAT: &str = "landmark-ssl-checkpoint/1";

/// The largest safetensors header (its JSON) a checkpoint may have. Ours are a few KB (the
/// config and one entry per tensor).
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// Caller-supplied metadata saved beside the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointMeta {
    /// The landmark layout's name (e.g. the data crate's `Layout` in its serde JSON form).
    pub landmark_layout: Option<String>,
    /// The factor on an object box's longer side that gave the square training crop (the
    /// experiment's `data.crop_factor`), when training cropped around boxes; prediction with
    /// a box must crop the same way. `None` for whole-image training and for checkpoints
    /// written before this was recorded.
    pub crop_factor: Option<f64>,
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
    /// Channels of the input images (the config's `in_channels`: 1 grey, 3 RGB).
    pub in_channels: usize,
    /// Number of landmarks K.
    pub num_landmarks: usize,
    /// Landmark layout, crop factor and extra strings.
    pub meta: CheckpointMeta,
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn mismatch(path: &Path, tensor: &str, reason: String) -> Error {
    Error::TensorMismatch {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        reason,
    }
}

fn check_crop_factor(path: &Path, f: f64) -> Result<()> {
    if !(f.is_finite() && f > 0.0) {
        return Err(ckpt_err(
            path,
            format!("metadata `crop_factor` = `{f}`: must be a finite positive number"),
        ));
    }
    Ok(())
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

/// Compares `got` (name -> shape) with `want` in name order; the first difference is a
/// [`Error::TensorMismatch`]. `got_is`/`want_is` say in words where each comes from.
fn compare_shapes(
    path: &Path,
    got: &BTreeMap<String, Vec<usize>>,
    got_is: &str,
    want: &BTreeMap<String, Vec<usize>>,
    want_is: &str,
) -> Result<()> {
    let names: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    for name in names {
        match (got.get(name), want.get(name)) {
            (Some(g), Some(w)) if g != w => {
                return Err(mismatch(
                    path,
                    name,
                    format!("shape {g:?} in {got_is}, {w:?} in {want_is}"),
                ))
            }
            (None, Some(w)) => {
                return Err(mismatch(
                    path,
                    name,
                    format!("{want_is} has it ({w:?}) but {got_is} does not"),
                ))
            }
            (Some(g), None) => {
                return Err(mismatch(
                    path,
                    name,
                    format!("{got_is} has it ({g:?}) but {want_is} does not"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Saves the weights of `vm` with `config` and `meta` in the metadata, to `path` (temp file,
/// fsync, rename). The weights must be those of `config`'s model (names and shapes), so the
/// file can be read back.
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    config: &ModelConfig,
    vm: &VarMap,
    meta: &CheckpointMeta,
) -> Result<()> {
    let path = path.as_ref();
    let vars = vars_of(vm, path)?;
    let shapes: BTreeMap<String, Vec<usize>> = vars
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let want = config.weight_shapes()?;
    compare_shapes(path, &shapes, "the VarMap", &want, "the config's model")?;
    if let Some(f) = meta.crop_factor {
        check_crop_factor(path, f)?;
    }
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
    md.insert("in_channels".to_string(), config.in_channels().to_string());
    md.insert(
        "num_landmarks".to_string(),
        config.num_landmarks().to_string(),
    );
    if let Some(l) = &meta.landmark_layout {
        md.insert("landmark_layout".to_string(), l.clone());
    }
    if let Some(f) = meta.crop_factor {
        md.insert("crop_factor".to_string(), f.to_string());
    }
    for (k, v) in &meta.extra {
        md.insert(format!("extra.{k}"), v.clone());
    }
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md))
        .map_err(|e| ckpt_err(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// A checkpoint's header, checked: its info, and its tensors in file order.
struct Header {
    info: CheckpointInfo,
    /// (name, stored dtype, shape, byte range in the data section), by offset.
    tensors: Vec<(String, TensorInfo)>,
    /// Where the data section starts in the file.
    data_start: u64,
}

/// Reads and checks the header of the checkpoint `file` (at `path`): the safetensors
/// framing, the metadata, the config against `limits`, and the stored tensors (names,
/// shapes, float types, the file's length) against the config's model. Reads nothing else.
fn read_header(path: &Path, file: &mut File, limits: &ModelLimits) -> Result<Header> {
    let file_len = file.metadata().map_err(io_err(path))?.len();
    if file_len < 8 {
        return Err(ckpt_err(
            path,
            format!("not a safetensors file: {file_len} bytes, less than its 8-byte header length"),
        ));
    }
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io_err(path))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES {
        return Err(ckpt_err(
            path,
            format!("not a safetensors file: a header of {n} bytes (at most {MAX_HEADER_BYTES})"),
        ));
    }
    if n > file_len - 8 {
        return Err(ckpt_err(
            path,
            format!(
                "truncated: the header needs {n} bytes, the file has {} after its length",
                file_len - 8
            ),
        ));
    }
    // n <= MAX_HEADER_BYTES, so this allocation is bounded.
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io_err(path))?;
    let text = std::str::from_utf8(&header).map_err(|e| {
        ckpt_err(
            path,
            format!("not a safetensors file: the header is not UTF-8: {e}"),
        )
    })?;
    let st: Metadata = serde_json::from_str(text)
        .map_err(|e| ckpt_err(path, format!("not a safetensors file: bad header: {e}")))?;
    let data_start = 8 + n;
    let data_len = st.data_len() as u64;
    if data_start.checked_add(data_len) != Some(file_len) {
        return Err(ckpt_err(
            path,
            format!(
                "the header describes {data_len} bytes of tensors, the file holds {} (truncated, or bytes added)",
                file_len - data_start
            ),
        ));
    }
    let md = st
        .metadata()
        .clone()
        .ok_or_else(|| ckpt_err(path, "no metadata: not a landmark-ssl checkpoint"))?;
    let info = parse_info(path, &md, limits)?;

    let mut tensors: Vec<(String, TensorInfo)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    tensors.sort_by_key(|(_, t)| t.data_offsets);
    let stored: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    check_input_channels(path, &info.config, &stored)?;
    let want = info.config.weight_shapes()?;
    let model = format!("its config (a {} model)", info.config.family());
    compare_shapes(path, &stored, "the checkpoint", &want, &model)?;
    let mut by_name: Vec<&(String, TensorInfo)> = tensors.iter().collect();
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in by_name {
        if !matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16) {
            return Err(mismatch(
                path,
                name,
                format!(
                    "stored as {:?}; weights are F32 (or F64, F16, BF16)",
                    t.dtype
                ),
            ));
        }
    }
    Ok(Header {
        info,
        tensors,
        data_start,
    })
}

/// The stored weight of the convolution that reads the images, (out, C, k, k), against the
/// config's `in_channels`: a config that says colour over weights trained on grey (or the
/// reverse) is named as such, before the general shape comparison and before any tensor is
/// read. (A missing tensor is left to that comparison.)
fn check_input_channels(
    path: &Path,
    config: &ModelConfig,
    stored: &BTreeMap<String, Vec<usize>>,
) -> Result<()> {
    let Some(name) = crate::plan::first_conv_weight(config) else {
        return Ok(());
    };
    let Some(shape) = stored.get(&name) else {
        return Ok(());
    };
    let c = config.in_channels();
    if shape.len() != 4 || shape[1] != c {
        let stored_for = match shape.get(1) {
            Some(n) if shape.len() == 4 => format!("stored for {n}-channel images"),
            _ => "not stored as a convolution's (out, in, k, k) weight".to_string(),
        };
        return Err(mismatch(
            path,
            &name,
            format!(
                "shape {shape:?} in the checkpoint, {stored_for}, but its config's \
                 `in_channels` is {c}: the first convolution's weight must be (out, {c}, k, k)"
            ),
        ));
    }
    Ok(())
}

/// The checkpoint info of a metadata map: format, config (checked against `limits`), crop
/// factor, layout, extras.
fn parse_info(
    path: &Path,
    md: &HashMap<String, String>,
    limits: &ModelLimits,
) -> Result<CheckpointInfo> {
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
        .validate_within(limits)
        .map_err(|e| e.in_checkpoint(path))?;
    let crop_factor = match md.get("crop_factor") {
        None => None,
        Some(s) => {
            let f: f64 = s.trim().parse().map_err(|_| {
                ckpt_err(
                    path,
                    format!("metadata `crop_factor` = `{s}`: not a number"),
                )
            })?;
            check_crop_factor(path, f).map_err(|_| {
                ckpt_err(
                    path,
                    format!("metadata `crop_factor` = `{s}`: must be a finite positive number"),
                )
            })?;
            Some(f)
        }
    };
    let mut meta = CheckpointMeta {
        landmark_layout: md.get("landmark_layout").cloned(),
        crop_factor,
        extra: BTreeMap::new(),
    };
    for (k, v) in md {
        if let Some(key) = k.strip_prefix("extra.") {
            meta.extra.insert(key.to_string(), v.clone());
        }
    }
    Ok(CheckpointInfo {
        input_size: config.input_size(),
        in_channels: config.in_channels(),
        num_landmarks: config.num_landmarks(),
        config,
        meta,
    })
}

/// One stored tensor as finite f32 values, or an error naming it.
fn decode(path: &Path, name: &str, t: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>> {
    let non_finite = |i: usize, v: String| Error::NonFinite {
        path: path.to_path_buf(),
        what: format!("tensor `{name}`"),
        reason: format!("element {i} of {:?} is {v}", t.shape),
    };
    let values: Vec<f32> = match t.dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => {
            let mut v = Vec::with_capacity(bytes.len() / 8);
            for (i, b) in bytes.chunks_exact(8).enumerate() {
                let x = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                let y = x as f32;
                if x.is_finite() && !y.is_finite() {
                    return Err(non_finite(i, format!("{x}, beyond the f32 range")));
                }
                v.push(y);
            }
            v
        }
        Dtype::F16 | Dtype::BF16 => {
            let dtype = if t.dtype == Dtype::F16 {
                DType::F16
            } else {
                DType::BF16
            };
            Tensor::from_raw_buffer(bytes, dtype, &t.shape, &Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
        }
        other => {
            return Err(mismatch(
                path,
                name,
                format!("stored as {other:?}; weights are F32 (or F64, F16, BF16)"),
            ))
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(non_finite(i, values[i].to_string()));
    }
    Ok(values)
}

/// Reads the tensors a checked header describes, one at a time, as finite f32 values:
/// (name, shape, values) in file order.
#[allow(clippy::type_complexity)]
fn read_values(
    path: &Path,
    file: &mut File,
    header: &Header,
) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
    file.seek(SeekFrom::Start(header.data_start))
        .map_err(io_err(path))?;
    let mut out = Vec::with_capacity(header.tensors.len());
    let mut bytes = Vec::new();
    for (name, t) in &header.tensors {
        // The header was checked: ranges are contiguous, sizes match the config's shapes
        // (within the limits) and the file's length.
        let (s, e) = t.data_offsets;
        bytes.resize(e - s, 0);
        file.read_exact(&mut bytes).map_err(io_err(path))?;
        let values = decode(path, name, t, &bytes)?;
        out.push((name.clone(), t.shape.clone(), values));
    }
    Ok(out)
}

fn open(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(io_err(path))?;
    if file.metadata().map_err(io_err(path))?.is_dir() {
        return Err(ckpt_err(path, "is a folder, not a checkpoint file"));
    }
    Ok(file)
}

/// Reads what a checkpoint says about itself from its header alone (the metadata, checked
/// against [`ModelLimits::DEFAULT`] and the stored tensors' shapes), without reading the
/// weights.
pub fn read_checkpoint_info(path: impl AsRef<Path>) -> Result<CheckpointInfo> {
    let path = path.as_ref();
    let mut file = open(path)?;
    Ok(read_header(path, &mut file, &ModelLimits::DEFAULT)?.info)
}

/// Reads a checkpoint's metadata and tensors (on `device`, f32), checked against
/// [`ModelLimits::DEFAULT`] (see [`read_checkpoint_within`]).
pub fn read_checkpoint(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(CheckpointInfo, HashMap<String, Tensor>)> {
    read_checkpoint_within(path, device, &ModelLimits::DEFAULT)
}

/// Reads a checkpoint's metadata and tensors (on `device`, f32). The config must be within
/// `limits` and the stored tensors exactly those of its model ([`Error::LimitExceeded`],
/// [`Error::TensorMismatch`]); every value must be finite ([`Error::NonFinite`]).
pub fn read_checkpoint_within(
    path: impl AsRef<Path>,
    device: &Device,
    limits: &ModelLimits,
) -> Result<(CheckpointInfo, HashMap<String, Tensor>)> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let header = read_header(path, &mut file, limits)?;
    let values = read_values(path, &mut file, &header)?;
    let mut out = HashMap::with_capacity(values.len());
    for (name, shape, v) in values {
        out.insert(name, Tensor::from_vec(v, shape, device)?);
    }
    Ok((header.info, out))
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
    let mut file = open(path)?;
    let header = read_header(path, &mut file, &ModelLimits::DEFAULT)?;
    // The model's variables against the file's tensors, before reading any of them.
    let model: BTreeMap<String, Vec<usize>> = vars_of(vm, path)?
        .into_iter()
        .map(|(k, t)| (k, t.dims().to_vec()))
        .collect();
    let stored: BTreeMap<String, Vec<usize>> = header
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    compare_shapes(path, &stored, "the checkpoint", &model, "the model")?;
    let values = read_values(path, &mut file, &header)?;
    let data = vm
        .data()
        .lock()
        .map_err(|_| ckpt_err(path, "the VarMap's lock is poisoned"))?;
    for (name, shape, v) in values {
        if let Some(var) = data.get(&name) {
            let t = Tensor::from_vec(v, shape, &device)?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
    }
    Ok(header.info)
}

/// Builds the model a checkpoint describes and loads its weights, within
/// [`ModelLimits::DEFAULT`] (see [`load_checkpoint_within`]).
pub fn load_checkpoint(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(LandmarkModel, VarMap, CheckpointInfo)> {
    load_checkpoint_within(path, device, &ModelLimits::DEFAULT)
}

/// Builds the model a checkpoint describes and loads its weights: returns the model, its
/// `VarMap` (for further training) and the checkpoint's info. The header is checked first
/// (config within `limits`, stored tensors exactly those of the config's model), then the
/// weights are read (each finite), then the model is built on them, and it must give
/// finite outputs on a test image ([`Error::NonFinite`], e.g. for a beta that makes the
/// soft-argmax overflow with these weights).
pub fn load_checkpoint_within(
    path: impl AsRef<Path>,
    device: &Device,
    limits: &ModelLimits,
) -> Result<(LandmarkModel, VarMap, CheckpointInfo)> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let header = read_header(path, &mut file, limits)?;
    let values = read_values(path, &mut file, &header)?;
    let vm = VarMap::new();
    {
        let mut data = vm
            .data()
            .lock()
            .map_err(|_| ckpt_err(path, "the VarMap's lock is poisoned"))?;
        for (name, shape, v) in values {
            data.insert(name, Var::from_vec(v, shape, device)?);
        }
    }
    // The VarMap already holds every weight with its checked shape, so building the model
    // takes them as they are and initialises nothing.
    let model = LandmarkModel::new_within(
        &header.info.config,
        VarBuilder::from_varmap(&vm, DType::F32, device),
        limits,
    )?;
    crate::inference::check_finite_outputs(path, &model, device)?;
    Ok((model, vm, header.info))
}
