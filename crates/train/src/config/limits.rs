//! `[limits]`: the library's size limits, raised (or lowered) where a user has a reason.
//! Every field is optional; an absent one keeps the default of the crate that owns it
//! (`landmark_ssl_data::Limits` for files and images, `landmark_ssl_models::ModelLimits`
//! for networks, this crate's `MAX_*` constants for generated data and batches).

use serde::{Deserialize, Serialize};

use landmark_ssl_data::Limits;
use landmark_ssl_models::ModelLimits;

use super::validate::{MAX_BATCH_SIZE, MAX_GENERATED_IMAGES};

/// Overrides of the size limits (`[limits]` in an experiment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest image width, in pixels.
    pub max_image_width: Option<u64>,
    /// Largest image height, in pixels.
    pub max_image_height: Option<u64>,
    /// Largest image area, in pixels.
    pub max_image_pixels: Option<u64>,
    /// Most landmarks in one sample.
    pub max_points: Option<u64>,
    /// Most classes of one class attribute.
    pub max_classes: Option<u64>,
    /// Most entries in one data set.
    pub max_samples: Option<u64>,
    /// Largest file read, in bytes.
    pub max_file_bytes: Option<u64>,
    /// Most parameters of the network.
    pub max_params: Option<usize>,
    /// Largest input side of the network, in pixels.
    pub max_input_side: Option<usize>,
    /// Most channels of one layer.
    pub max_channels: Option<usize>,
    /// Most values of one feature map per image.
    pub max_feature_elements: Option<usize>,
    /// Most images of generated data over its three splits.
    pub max_generated_images: Option<usize>,
    /// Largest batch.
    pub max_batch_size: Option<usize>,
}

impl LimitsConfig {
    /// The data crate's limits with these overrides.
    pub fn data(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_image_width: self.max_image_width.unwrap_or(d.max_image_width),
            max_image_height: self.max_image_height.unwrap_or(d.max_image_height),
            max_image_pixels: self.max_image_pixels.unwrap_or(d.max_image_pixels),
            max_points: self.max_points.unwrap_or(d.max_points),
            max_classes: self.max_classes.unwrap_or(d.max_classes),
            max_samples: self.max_samples.unwrap_or(d.max_samples),
            max_file_bytes: self.max_file_bytes.unwrap_or(d.max_file_bytes),
        }
    }

    /// The model crate's limits with these overrides.
    pub fn model(&self) -> ModelLimits {
        let d = ModelLimits::DEFAULT;
        ModelLimits {
            max_params: self.max_params.unwrap_or(d.max_params),
            max_input_side: self.max_input_side.unwrap_or(d.max_input_side),
            max_channels: self.max_channels.unwrap_or(d.max_channels),
            max_feature_elements: self.max_feature_elements.unwrap_or(d.max_feature_elements),
            ..d
        }
    }

    /// The most generated images.
    pub fn generated_images(&self) -> usize {
        self.max_generated_images.unwrap_or(MAX_GENERATED_IMAGES)
    }

    /// The largest batch.
    pub fn batch_size(&self) -> usize {
        self.max_batch_size.unwrap_or(MAX_BATCH_SIZE)
    }
}
