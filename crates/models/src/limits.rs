//! Upper bounds on the size of a model config, in one place.
//!
//! A config comes from a file a user chose (an experiment, a checkpoint's metadata), so its
//! numbers decide how much memory building and running the model takes. [`ModelLimits`]
//! bounds every size a config declares, and the products of sizes (parameter count, one
//! image's largest feature map), so that a typo or a crafted checkpoint is an error naming
//! the field instead of a multi-gigabyte allocation, an abort or an overflow.
//!
//! [`crate::ModelConfig::validate`] applies [`ModelLimits::DEFAULT`]; where a larger model
//! is intended, raise the field that stops it and pass the limits to
//! [`crate::ModelConfig::validate_within`], [`crate::LandmarkModel::new_within`],
//! [`crate::checkpoint::load_checkpoint_within`] or
//! [`crate::Predictor::from_checkpoint_within`].
//!
//! | limit | default | bounds |
//! |---|---|---|
//! | `max_input_side` | 2048 | `input_size.height`, `input_size.width` |
//! | `max_in_channels` | 64 | `in_channels`, the input images' planes (1 grey, 3 RGB) |
//! | `max_channels` | 4096 | every convolution's output channels (RCN: `channels`) |
//! | `max_hidden_units` | 65536 | every FC width (`shared_fc`, heads' `hidden`) |
//! | `max_landmarks` | 1024 | `num_landmarks` |
//! | `max_heads` | 64 | the number of attribute heads |
//! | `max_head_outputs` | 65536 | a head's classes or values |
//! | `max_layers` | 256 | layers of a stack (`convs`, `trunk`, `branch`, `shared_fc`, a head's `hidden`), RCN convs per level |
//! | `max_params` | 2^26 = 67,108,864 | the model's parameter count (256 MiB of f32) |
//! | `max_feature_elements` | 2^25 = 33,554,432 | one image's largest feature map (128 MiB of f32) |
//! | `max_beta` | 1e4 | the soft-argmax `beta` (the ops crate's soft-argmax is stable for `beta * map` up to about 1e4) |
//!
//! A user with a reason (a larger input than the paper's) raises a field:
//!
//! ```
//! use landmark_ssl_models::{Error, ModelConfig, ModelLimits};
//! let json = r#"{ "family": "seq_mt", "input_size": { "height": 4096, "width": 4096 },
//!     "num_landmarks": 1, "beta": 1.0, "convs": [ { "kernel": 1, "channels": 1 } ] }"#;
//! // `from_json` validates within the defaults.
//! assert!(matches!(ModelConfig::from_json(json), Err(Error::LimitExceeded { .. })));
//! let cfg: ModelConfig = serde_json::from_str(json).unwrap();
//! let limits = ModelLimits { max_input_side: 4096, ..ModelLimits::DEFAULT };
//! cfg.validate_within(&limits)?;
//! # Ok::<(), Error>(())
//! ```
//!
//! Every preset is well within these: the most parameters, `commmt-multipie`'s, are about
//! 6 M; the largest feature map, `rcn-aflw`'s, holds 0.9 M values per image.

/// Upper bounds on a model config's sizes; see the [module docs](self) for what each bounds
/// and why. Fields are public so that a caller with a reason (a larger model than the
/// paper's) can raise one: `ModelLimits { max_input_side: 4096, ..ModelLimits::DEFAULT }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelLimits {
    /// Largest input height or width, in pixels.
    pub max_input_side: usize,
    /// Largest number of input image channels (`in_channels`).
    pub max_in_channels: usize,
    /// Largest number of output channels of a convolution.
    pub max_channels: usize,
    /// Largest width of a fully connected layer.
    pub max_hidden_units: usize,
    /// Largest number of landmarks K.
    pub max_landmarks: usize,
    /// Largest number of attribute heads.
    pub max_heads: usize,
    /// Largest number of classes or values of one head.
    pub max_head_outputs: usize,
    /// Largest number of layers in one stack.
    pub max_layers: usize,
    /// Largest total number of parameters.
    pub max_params: usize,
    /// Largest number of values in one feature map of one image (channels x height x width,
    /// or an FC layer's width).
    pub max_feature_elements: usize,
    /// Largest soft-argmax multiplier beta.
    pub max_beta: f64,
}

impl ModelLimits {
    /// The defaults (the module docs' table).
    pub const DEFAULT: ModelLimits = ModelLimits {
        max_input_side: 2048,
        max_in_channels: 64,
        max_channels: 4096,
        max_hidden_units: 1 << 16,
        max_landmarks: 1024,
        max_heads: 64,
        max_head_outputs: 1 << 16,
        max_layers: 256,
        max_params: 1 << 26,
        max_feature_elements: 1 << 25,
        max_beta: 1e4,
    };

    /// No bounds at all: only the config's structure is checked (and sizes whose products
    /// overflow `usize` are still errors). For tools that inspect configs, never for files a
    /// user gives.
    pub const UNBOUNDED: ModelLimits = ModelLimits {
        max_input_side: usize::MAX,
        max_in_channels: usize::MAX,
        max_channels: usize::MAX,
        max_hidden_units: usize::MAX,
        max_landmarks: usize::MAX,
        max_heads: usize::MAX,
        max_head_outputs: usize::MAX,
        max_layers: usize::MAX,
        max_params: usize::MAX,
        max_feature_elements: usize::MAX,
        max_beta: f64::INFINITY,
    };
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
