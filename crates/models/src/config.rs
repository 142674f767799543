//! Model configurations: one serde struct per family, and [`ModelConfig`], the enum over them
//! (tagged by `family`). Presets ([`crate::preset`]) are just named values of these types.
//!
//! A config reads from JSON or TOML, e.g. (JSON):
//!
//! ```json
//! { "family": "seq_mt", "input_size": { "height": 60, "width": 60 }, "num_landmarks": 5,
//!   "beta": 1.0, "convs": [ { "kernel": 9, "channels": 8 }, { "kernel": 1, "channels": 5 } ],
//!   "coord_scale": "pixels",
//!   "heads": [ { "name": "config", "kind": { "class": { "n": 15 } },
//!                "hidden": [256, 256], "dropout": 0.25 } ] }
//! ```
//!
//! `in_channels` (every family; default 1, grey) is the number of planes of the input
//! images: 3 for RGB. Only the first convolution's weights depend on it.
//!
//! Every convolution is stride 1 with SAME zero padding (`kernel / 2` on each side, so the
//! kernel must be odd) and is followed by a ReLU unless the family says otherwise; every
//! pooling is a 2x2 max-pool with stride 2 that drops an odd last row / column
//! (`floor(H / 2)`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::ModelLimits;

/// Height and width of a model's input images, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSize {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl InputSize {
    /// A square input of `n` x `n` pixels.
    pub const fn square(n: usize) -> Self {
        Self {
            height: n,
            width: n,
        }
    }
}

/// A stride-1 SAME convolution: a `kernel` x `kernel` window, `channels` output maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Kernel size (odd, so that SAME padding is symmetric).
    pub kernel: usize,
    /// Number of output feature maps.
    pub channels: usize,
}

impl ConvSpec {
    /// A `kernel` x `kernel` convolution with `channels` outputs.
    pub const fn new(kernel: usize, channels: usize) -> Self {
        Self { kernel, channels }
    }
}

/// One layer of a conv + pool stack (Comm-MT's trunk, Heatmap-MT's classifier branch).
/// In JSON: `{"conv": {"kernel": 9, "channels": 8}}` or `"pool"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerSpec {
    /// A stride-1 SAME convolution followed by a ReLU.
    Conv {
        /// Kernel size (odd).
        kernel: usize,
        /// Number of output feature maps.
        channels: usize,
    },
    /// A 2x2 max-pool with stride 2 (an odd last row / column is dropped).
    Pool,
}

/// What an attribute head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// `n` classes: the head outputs `n` logits (B, n); the loss applies the softmax.
    Class {
        /// Number of classes (>= 2).
        n: usize,
    },
    /// `n` real values (B, n) (e.g. head pose yaw, pitch, roll), linear output.
    Real {
        /// Number of values (>= 1).
        n: usize,
    },
}

impl HeadKind {
    /// The head's output width `n`.
    pub fn outputs(&self) -> usize {
        match *self {
            HeadKind::Class { n } | HeadKind::Real { n } => n,
        }
    }
}

/// An attribute head: an MLP (hidden ReLU layers, each followed by dropout in training, then
/// a linear output layer of `kind.outputs()` units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// The attribute's name (the key of [`crate::ModelOutput::attributes`] and of the data
    /// crate's attribute maps). Letters, digits, `_` and `-` only (it names weights too).
    pub name: String,
    /// Classes or real values.
    pub kind: HeadKind,
    /// Widths of the hidden layers (may be empty: a single linear layer).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer, in training only (0 <= p < 1).
    #[serde(default)]
    pub dropout: f64,
    /// Start the output layer's weights and bias at 0 (false: candle-nn's random
    /// initialisation). The head then outputs 0 for every image (uniform class
    /// probabilities) and sends no gradient into the network until its own weights have
    /// learned from the features. A randomly initialised head on a deep trunk starts with
    /// large logits (standard deviation up to 5 on Blocks), whose first steps can drive the
    /// trunk's units dead before the class is found (docs/experiments/commmt-heatmapmt.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zero_init_output: bool,
}

impl HeadConfig {
    /// A classification head of `n` classes with the given hidden widths and dropout.
    pub fn class(name: &str, n: usize, hidden: &[usize], dropout: f64) -> Self {
        Self {
            name: name.to_string(),
            kind: HeadKind::Class { n },
            hidden: hidden.to_vec(),
            dropout,
            zero_init_output: false,
        }
    }

    /// A real-valued head of `n` outputs with the given hidden widths and dropout.
    pub fn real(name: &str, n: usize, hidden: &[usize], dropout: f64) -> Self {
        Self {
            name: name.to_string(),
            kind: HeadKind::Real { n },
            hidden: hidden.to_vec(),
            dropout,
            zero_init_output: false,
        }
    }
}

/// How landmark coordinates are scaled where a network layer reads or writes them as
/// numbers (the attribute MLPs of Seq-MT / RCN+ read the 2K coordinates; Comm-MT's
/// regression branch writes them).
///
/// * `pixels`: raw input pixels, x in 0..W-1, y in 0..H-1 (the torch reference's Seq-MT).
/// * `unit`: `u = 2 x / (W - 1) - 1`, `v = 2 y / (H - 1) - 1`, so the image spans [-1, 1]
///   (better conditioned for training). Comm-MT's branch then outputs (u, v) and the model
///   maps them back to pixels.
///
/// [`crate::ModelOutput::landmarks`] is always in input pixels, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordScale {
    /// Raw input pixels (the reference behaviour).
    #[default]
    Pixels,
    /// Scaled to [-1, 1] by the input size.
    Unit,
}

/// How a model's landmarks are trained, so the trainer can pick the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandmarkKind {
    /// Per-pixel softmax over each map: train with cross-entropy of
    /// [`crate::ModelOutput::maps`] (pre-softmax) against the ground-truth pixel
    /// (Heatmap-MT, RCN). `landmarks` is then a read-out ([`Readout`]).
    #[default]
    Softmax,
    /// Differentiable coordinates: train with a distance loss on
    /// [`crate::ModelOutput::landmarks`] (soft-argmax models: Seq-MT, RCN+, Heatmap-MT of
    /// Table S4; also Comm-MT, whose FC branch regresses the coordinates directly).
    SoftArgmax,
}

/// How a softmax-trained heat-map model reports its landmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// The pixel of the largest map value, refined to sub-pixel by the ops crate.
    #[default]
    HardArgmax,
    /// Soft-argmax with the config's `beta`.
    SoftArgmax,
}

/// Seq-MT (Tables S11-S13): stride-1 SAME convs with ReLU (the last one too, before the
/// soft-argmax), no pooling; soft-argmax gives K points; one MLP head per attribute reads the
/// 2K coordinates `(x0, y0, x1, y1, ...)` scaled by `coord_scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqMtConfig {
    /// Input image size.
    pub input_size: InputSize,
    /// Channels of the input images: 1 (grey, the paper's; configs and checkpoints written
    /// without this field are grey) or 3 (RGB; the data crate and the predictor read 1 or
    /// 3, the model takes up to [`crate::ModelLimits::max_in_channels`]). Only the first
    /// convolution depends on it.
    #[serde(default = "default_one")]
    pub in_channels: usize,
    /// Number of landmarks K (= the last conv's channels).
    pub num_landmarks: usize,
    /// Soft-argmax multiplier: `softmax(beta * M)`.
    pub beta: f64,
    /// The convolutions, input first; the last has K channels.
    pub convs: Vec<ConvSpec>,
    /// Slope below zero of the last conv's activation, in [0, 1]: 0 is the paper's ReLU
    /// (the default, and what configs without this field get), a value between a leaky ReLU,
    /// 1 a linear layer. `seqmt-blocks` uses [`crate::SEQMT_MAP_NEGATIVE_SLOPE`] (see the
    /// presets' docs for why).
    #[serde(default)]
    pub map_negative_slope: f64,
    /// Scale of the coordinates fed to the heads (default `pixels`, the torch reference).
    #[serde(default)]
    pub coord_scale: CoordScale,
    /// Attribute heads (may be empty).
    #[serde(default)]
    pub heads: Vec<HeadConfig>,
}

fn unit_scale() -> CoordScale {
    CoordScale::Unit
}

/// Comm-MT (Table S9): a conv + pool trunk, flattened, shared FC layers (ReLU, dropout),
/// then one linear landmark branch of 2K outputs and one MLP head per attribute, all reading
/// the last shared layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommMtConfig {
    /// Input image size.
    pub input_size: InputSize,
    /// Channels of the input images: 1 (grey, the paper's; configs and checkpoints written
    /// without this field are grey) or 3 (RGB; the data crate and the predictor read 1 or
    /// 3, the model takes up to [`crate::ModelLimits::max_in_channels`]). Only the first
    /// convolution depends on it.
    #[serde(default = "default_one")]
    pub in_channels: usize,
    /// Number of landmarks K.
    pub num_landmarks: usize,
    /// The trunk (convs with ReLU, pools), input first.
    pub trunk: Vec<LayerSpec>,
    /// Widths of the shared FC layers (ReLU + dropout each).
    pub shared_fc: Vec<usize>,
    /// Dropout probability after each shared FC layer, in training only.
    #[serde(default)]
    pub dropout: f64,
    /// Scale of the regressed coordinates (default `unit`: the branch outputs [-1, 1]).
    #[serde(default = "unit_scale")]
    pub coord_scale: CoordScale,
    /// Attribute heads (read the last shared FC layer).
    #[serde(default)]
    pub heads: Vec<HeadConfig>,
}

fn default_hard() -> Readout {
    Readout::HardArgmax
}

/// Heat-map-MT (Table S10): the Seq-MT trunk (convs with ReLU, no pooling, last = K maps);
/// landmarks by a per-pixel softmax (or soft-argmax, Table S4); the attribute branch reads
/// the K maps (pre-softmax) through `branch` (pools and convs), is flattened, and feeds one
/// MLP head per attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatmapMtConfig {
    /// Input image size.
    pub input_size: InputSize,
    /// Channels of the input images: 1 (grey, the paper's; configs and checkpoints written
    /// without this field are grey) or 3 (RGB; the data crate and the predictor read 1 or
    /// 3, the model takes up to [`crate::ModelLimits::max_in_channels`]). Only the first
    /// convolution depends on it.
    #[serde(default = "default_one")]
    pub in_channels: usize,
    /// Number of landmarks K (= the last conv's channels).
    pub num_landmarks: usize,
    /// Soft-argmax multiplier (for `landmark_kind = soft_argmax` or `readout = soft_argmax`).
    pub beta: f64,
    /// The trunk's convolutions, input first; the last has K channels.
    pub convs: Vec<ConvSpec>,
    /// The attribute branch on the maps: pools and convs (ReLU).
    pub branch: Vec<LayerSpec>,
    /// Attribute heads (MLPs on the flattened branch output).
    #[serde(default)]
    pub heads: Vec<HeadConfig>,
    /// Softmax (Table S10, default) or soft-argmax (Table S4).
    #[serde(default)]
    pub landmark_kind: LandmarkKind,
    /// Landmark read-out of a softmax model (default hard argmax).
    #[serde(default = "default_hard")]
    pub readout: Readout,
    /// Slope below zero of the trunk's last activation, as Seq-MT's (0, the default: the
    /// paper's ReLU; 1: linear, what `heatmapmt-*` presets use).
    #[serde(default)]
    pub map_negative_slope: f64,
}

fn default_one() -> usize {
    1
}
fn default_two() -> usize {
    2
}

/// The Recombinator Network (RCN, Fig. S3) and RCN+.
///
/// * Down: at level 0 (input resolution) `down_convs` convs of kernel `down_kernels[0]`
///   (`in_channels` -> C, then C -> C); at each level `l = 1..=levels`: 2x2 max-pool of
///   level `l-1`'s features, then `down_convs` convs of kernel `down_kernels[l]` (C -> C).
///   All ReLU.
/// * Up: for `l = levels-1` down to 0: x2 nearest upsampling of the level-`l+1` features (an
///   odd level-`l` size is matched by repeating the last row / column), concatenated (upsampled
///   first) with level `l`'s down features taken before their pooling (2C channels), then
///   `up_convs` convs of kernel `up_kernels[l]` (2C -> C, then C -> C), ReLU.
/// * Output: a linear conv of kernel `output_kernel`, C -> K maps at input resolution.
/// * Landmarks: per-pixel softmax (RCN) or soft-argmax (RCN+); optional attribute heads read
///   the 2K coordinates as in Seq-MT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RcnConfig {
    /// Input image size.
    pub input_size: InputSize,
    /// Channels of the input images: 1 (grey, the paper's; configs and checkpoints written
    /// without this field are grey) or 3 (RGB; the data crate and the predictor read 1 or
    /// 3, the model takes up to [`crate::ModelLimits::max_in_channels`]). Only the first
    /// convolution depends on it.
    #[serde(default = "default_one")]
    pub in_channels: usize,
    /// Number of landmarks K.
    pub num_landmarks: usize,
    /// Soft-argmax multiplier.
    pub beta: f64,
    /// Feature maps per conv layer C (64 for 300W, 70 for AFLW).
    pub channels: usize,
    /// Number of 2x2 poolings from the input to the coarsest level.
    pub levels: usize,
    /// Kernel of the down convs at each level (`levels + 1` entries, finest first).
    pub down_kernels: Vec<usize>,
    /// Kernel of the up convs at each level (`levels` entries, finest first).
    pub up_kernels: Vec<usize>,
    /// Convs per level on the way down (default 1).
    #[serde(default = "default_one")]
    pub down_convs: usize,
    /// Convs per level on the way up (default 2).
    #[serde(default = "default_two")]
    pub up_convs: usize,
    /// Kernel of the final linear conv to K maps (default 1).
    #[serde(default = "default_one")]
    pub output_kernel: usize,
    /// Softmax (RCN) or soft-argmax (RCN+).
    #[serde(default)]
    pub landmark_kind: LandmarkKind,
    /// Landmark read-out of a softmax model (default hard argmax).
    #[serde(default = "default_hard")]
    pub readout: Readout,
    /// Scale of the coordinates fed to the heads (default `pixels`).
    #[serde(default)]
    pub coord_scale: CoordScale,
    /// Attribute heads reading the 2K coordinates (RCN+ with attributes).
    #[serde(default)]
    pub heads: Vec<HeadConfig>,
}

/// Any model of the zoo, tagged by `family` in serde: `seq_mt`, `comm_mt`, `heatmap_mt`,
/// `rcn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Seq-MT.
    SeqMt(SeqMtConfig),
    /// Comm-MT.
    CommMt(CommMtConfig),
    /// Heatmap-MT.
    HeatmapMt(HeatmapMtConfig),
    /// RCN / RCN+.
    Rcn(RcnConfig),
}

impl ModelConfig {
    /// The family's serde tag: `"seq_mt"`, `"comm_mt"`, `"heatmap_mt"` or `"rcn"`.
    pub fn family(&self) -> &'static str {
        match self {
            ModelConfig::SeqMt(_) => "seq_mt",
            ModelConfig::CommMt(_) => "comm_mt",
            ModelConfig::HeatmapMt(_) => "heatmap_mt",
            ModelConfig::Rcn(_) => "rcn",
        }
    }

    /// The input size `(height, width)` in pixels.
    pub fn input_size(&self) -> (usize, usize) {
        let s = match self {
            ModelConfig::SeqMt(c) => c.input_size,
            ModelConfig::CommMt(c) => c.input_size,
            ModelConfig::HeatmapMt(c) => c.input_size,
            ModelConfig::Rcn(c) => c.input_size,
        };
        (s.height, s.width)
    }

    /// The channels of the input images (1: grey, 3: RGB), as [`LandmarkModel::forward_t`]
    /// takes them: images (B, C, H, W).
    ///
    /// [`LandmarkModel::forward_t`]: crate::LandmarkModel::forward_t
    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::SeqMt(c) => c.in_channels,
            ModelConfig::CommMt(c) => c.in_channels,
            ModelConfig::HeatmapMt(c) => c.in_channels,
            ModelConfig::Rcn(c) => c.in_channels,
        }
    }

    /// The same config for images of `channels` channels (e.g. a grey preset made colour:
    /// `preset("seqmt-blocks")?.with_in_channels(3)`). Not validated here.
    pub fn with_in_channels(mut self, channels: usize) -> Self {
        match &mut self {
            ModelConfig::SeqMt(c) => c.in_channels = channels,
            ModelConfig::CommMt(c) => c.in_channels = channels,
            ModelConfig::HeatmapMt(c) => c.in_channels = channels,
            ModelConfig::Rcn(c) => c.in_channels = channels,
        }
        self
    }

    /// The number of landmarks K.
    pub fn num_landmarks(&self) -> usize {
        match self {
            ModelConfig::SeqMt(c) => c.num_landmarks,
            ModelConfig::CommMt(c) => c.num_landmarks,
            ModelConfig::HeatmapMt(c) => c.num_landmarks,
            ModelConfig::Rcn(c) => c.num_landmarks,
        }
    }

    /// The soft-argmax multiplier beta (None for Comm-MT, which has no maps).
    pub fn beta(&self) -> Option<f64> {
        match self {
            ModelConfig::SeqMt(c) => Some(c.beta),
            ModelConfig::CommMt(_) => None,
            ModelConfig::HeatmapMt(c) => Some(c.beta),
            ModelConfig::Rcn(c) => Some(c.beta),
        }
    }

    /// The attribute heads.
    pub fn heads(&self) -> &[HeadConfig] {
        match self {
            ModelConfig::SeqMt(c) => &c.heads,
            ModelConfig::CommMt(c) => &c.heads,
            ModelConfig::HeatmapMt(c) => &c.heads,
            ModelConfig::Rcn(c) => &c.heads,
        }
    }

    /// Mutable access to the attribute heads (e.g. to drop them for an L-only run).
    pub fn heads_mut(&mut self) -> &mut Vec<HeadConfig> {
        match self {
            ModelConfig::SeqMt(c) => &mut c.heads,
            ModelConfig::CommMt(c) => &mut c.heads,
            ModelConfig::HeatmapMt(c) => &mut c.heads,
            ModelConfig::Rcn(c) => &mut c.heads,
        }
    }

    /// How the landmarks are trained (softmax on maps, or a distance on coordinates).
    pub fn landmark_kind(&self) -> LandmarkKind {
        match self {
            ModelConfig::SeqMt(_) | ModelConfig::CommMt(_) => LandmarkKind::SoftArgmax,
            ModelConfig::HeatmapMt(c) => c.landmark_kind,
            ModelConfig::Rcn(c) => c.landmark_kind,
        }
    }

    /// Whether the model outputs K maps at input resolution (all but Comm-MT).
    pub fn has_maps(&self) -> bool {
        !matches!(self, ModelConfig::CommMt(_))
    }

    /// Checks the config against [`ModelLimits::DEFAULT`]: see [`Self::validate_within`].
    pub fn validate(&self) -> Result<()> {
        self.validate_within(&ModelLimits::DEFAULT)
    }

    /// Checks the config: positive sizes and channel counts (`in_channels` included), odd
    /// kernels no larger than the input, K >= 1 and matching the last conv, pools that keep
    /// maps non-empty, finite positive beta, valid and unique head names, dropout in [0, 1);
    /// and every size, the parameter count and one image's largest feature map within
    /// `limits` (an [`Error::LimitExceeded`] naming the field). Nothing is allocated for the
    /// model.
    pub fn validate_within(&self, limits: &ModelLimits) -> Result<()> {
        crate::validate::validate(self, limits).map(|_| ())
    }

    /// The name and shape of every weight the model of this config has (as
    /// [`crate::LandmarkModel::new`] creates them), worked out from the config alone. Checks
    /// the config's structure (not [`ModelLimits`]; sizes whose products overflow are
    /// errors).
    pub fn weight_shapes(&self) -> Result<BTreeMap<String, Vec<usize>>> {
        let plan = crate::validate::validate(self, &ModelLimits::UNBOUNDED)?;
        Ok(plan.weights.into_iter().collect())
    }

    /// Parses a config from JSON (the `family`-tagged form) and validates it.
    pub fn from_json(s: &str) -> Result<Self> {
        let c: ModelConfig = serde_json::from_str(s).map_err(|e| Error::Parse {
            format: "json",
            path: None,
            reason: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Parses a config from TOML (`family = "seq_mt"` at the top level) and validates it.
    pub fn from_toml(s: &str) -> Result<Self> {
        let c: ModelConfig = toml::from_str(s).map_err(|e| Error::Parse {
            format: "toml",
            path: None,
            reason: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a config file: TOML if the name ends in `.toml`, JSON otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        let r = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        };
        r.map_err(|e| match e {
            Error::Parse { format, reason, .. } => Error::Parse {
                format,
                path: Some(path.to_path_buf()),
                reason,
            },
            other => other,
        })
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Parse {
            format: "json",
            path: None,
            reason: e.to_string(),
        })
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Parse {
            format: "toml",
            path: None,
            reason: e.to_string(),
        })
    }
}
