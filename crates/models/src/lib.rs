//! Model zoo for landmark localization: Seq-MT, Comm-MT, Heatmap-MT, RCN, RCN+
//! (Honari et al., CVPR 2018, supplementary Tables S9-S13 and Fig. S3).
//!
//! * [`ModelConfig`]: a serde config per family (tagged by `family`); [`preset`] gives the
//!   paper's architectures by name ([`PRESET_NAMES`]).
//! * [`LandmarkModel`]: built from a config and a `VarBuilder`; [`LandmarkModel::forward_t`]
//!   maps images (B, C, H, W) f32 (C = the config's `in_channels`: 1 grey, the paper's, or 3
//!   RGB) to one [`ModelOutput`] type for every family.
//! * [`ModelLimits`]: upper bounds on a config's sizes (input, channels, FC widths, K, heads,
//!   parameters, feature maps), checked by [`ModelConfig::validate`] before anything is
//!   built.
//! * [`checkpoint`]: self-describing safetensors checkpoints (config in the metadata), read
//!   and checked from the header before any weight is.
//! * [`inference`]: load a checkpoint, predict landmarks on images of any size with boxes.
//!
//! Conventions (`docs/ARCHITECTURE.md`): points are (x, y), x the column, y the row, in
//! pixels of the model input, 0-based, pixel centres at integers. Dropout is active only in
//! `forward_t(.., train = true)`; the models never print and never touch files (checkpoints
//! and inference are separate modules).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};

//! use landmark_ssl_models::{preset, LandmarkModel};
//!
//! let cfg = preset("seqmt-blocks")?;
//! let vm = VarMap::new();
//! let model = LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))?;
//! let images = Tensor::zeros((2, 1, 60, 60), DType::F32, &Device::Cpu)?;
//! let out = model.forward_t(&images, false)?;
//! assert_eq!(out.landmarks.dims(), &[2, 5, 2]);
//! assert_eq!(out.attributes["config"].dims(), &[2, 15]);
//! # Ok::<(), landmark_ssl_models::Error>(())
//! ```

#![warn(missing_docs)]

mod atomic;
pub mod checkpoint;
pub mod comm_mt;
pub mod config;
pub mod error;
pub mod heatmap_mt;
pub mod inference;
pub mod layers;
pub mod limits;
mod plan;
pub mod presets;
pub mod rcn;
pub mod seq_mt;
mod validate;

use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::{VarBuilder, VarMap};

pub use checkpoint::{
    load_checkpoint, load_checkpoint_within, load_weights, read_checkpoint_info, save_checkpoint,
    CheckpointInfo, CheckpointMeta,
};
pub use comm_mt::CommMt;
pub use config::{
    CommMtConfig, ConvSpec, CoordScale, HeadConfig, HeadKind, HeatmapMtConfig, InputSize,
    LandmarkKind, LayerSpec, ModelConfig, RcnConfig, Readout, SeqMtConfig,
};
pub use error::{Error, Result};
pub use heatmap_mt::HeatmapMt;
pub use inference::{Prediction, Predictor, Region};
pub use layers::{max_pool2x2, seed_dropout, upsample_nearest2x, Dropout, MlpHead};
pub use limits::ModelLimits;
pub use presets::{preset, PRESET_NAMES, SEQMT_MAP_NEGATIVE_SLOPE};
pub use rcn::Rcn;
pub use seq_mt::SeqMt;

/// Name prefixes (in a model's `VarMap`) of the variables that only the attribute costs
/// train: every family's attribute heads (`heads.`) and Heatmap-MT's branch from the maps to
/// them (`branch.`). The landmark cost sends them no gradient; a trainer may give them a rate
/// of their own.
pub const ATTRIBUTE_PATH_PREFIXES: [&str; 2] = ["heads.", "branch."];

/// What every model returns.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// The K landmark maps (B, K, H, W) at input resolution, before any softmax (Seq-MT:
    /// after its last ReLU; RCN: linear). `None` for Comm-MT.
    pub maps: Option<Tensor>,
    /// Landmarks (B, K, 2) as (x, y) in input pixels. Differentiable for soft-argmax models
    /// and Comm-MT; a read-out (hard or soft argmax per config) for softmax models.
    pub landmarks: Tensor,
    /// Attribute outputs by head name: (B, n) logits for class heads, (B, n) values for real
    /// heads.
    pub attributes: BTreeMap<String, Tensor>,
}

#[derive(Debug, Clone)]
enum Net {
    SeqMt(SeqMt),
    CommMt(CommMt),
    HeatmapMt(HeatmapMt),
    Rcn(Rcn),
}

/// Any model of the zoo, with its config.
#[derive(Debug, Clone)]
pub struct LandmarkModel {
    config: ModelConfig,
    net: Net,
}

impl LandmarkModel {
    /// Validates `cfg` (within [`ModelLimits::DEFAULT`]) and creates (or, from a loaded
    /// `VarBuilder`, reads) its weights under `vb`. Weight names follow the layer fields
    /// (e.g. `convs.0.weight`, `heads.config.fc0.bias`;
    /// [`ModelConfig::weight_shapes`] lists them).
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_within(cfg, vb, &ModelLimits::DEFAULT)
    }

    /// [`Self::new`] with other size limits (for a model larger than the defaults allow).
    pub fn new_within(cfg: &ModelConfig, vb: VarBuilder, limits: &ModelLimits) -> Result<Self> {
        cfg.validate_within(limits)?;
        let net = match cfg {
            ModelConfig::SeqMt(c) => Net::SeqMt(SeqMt::new(c, vb)?),
            ModelConfig::CommMt(c) => Net::CommMt(CommMt::new(c, vb)?),
            ModelConfig::HeatmapMt(c) => Net::HeatmapMt(HeatmapMt::new(c, vb)?),
            ModelConfig::Rcn(c) => Net::Rcn(Rcn::new(c, vb)?),
        };
        Ok(Self {
            config: cfg.clone(),
            net,
        })
    }

    /// images (B, C, H, W) f32, C = the config's `in_channels` ([`ModelConfig::in_channels`]),
    /// (H, W) = the config's input size, normalised as the model was trained (the data crate
    /// and [`Predictor`]: each plane of each image to zero mean, unit std) ->
    /// [`ModelOutput`]. Dropout is applied only when `train` is true.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput> {
        match &self.net {
            Net::SeqMt(m) => m.forward_t(images, train),
            Net::CommMt(m) => m.forward_t(images, train),
            Net::HeatmapMt(m) => m.forward_t(images, train),
            Net::Rcn(m) => m.forward_t(images, train),
        }
    }

    /// `forward_t(images, false)`.
    pub fn forward(&self, images: &Tensor) -> Result<ModelOutput> {
        self.forward_t(images, false)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// How the landmarks are trained: [`LandmarkKind::Softmax`] (cross-entropy on `maps`) or
    /// [`LandmarkKind::SoftArgmax`] (a distance on `landmarks`; Comm-MT too).
    pub fn landmark_kind(&self) -> LandmarkKind {
        self.config.landmark_kind()
    }
}

/// Number of scalar parameters in a `VarMap` (sum of the element counts of its variables).
pub fn param_count(vm: &VarMap) -> usize {
    vm.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Number of parameters of a config's model, worked out from the config (nothing is built or
/// allocated; the config's structure is checked, not [`ModelLimits`]).
pub fn config_param_count(cfg: &ModelConfig) -> Result<usize> {
    Ok(validate::validate(cfg, &ModelLimits::UNBOUNDED)?.params)
}
