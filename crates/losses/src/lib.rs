//! Losses for semi-supervised landmark localization (Honari et al., CVPR 2018, Eq. 2):
//! landmark regression, attribute costs, the equivariant landmark transformation (ELT),
//! the per-pixel softmax cost of heat-map models, a bound on the soft-argmax maps' scale,
//! costs on their spread and their overlap, and weight decay, combined by
//! [`ObjectiveWeights`] into a total with a per-term [`LossReport`].
//!
//! ```text
//! Cost = 1/N sum_{(I,a)} [ Cost_attr(I,a) + alpha/K sum_k ||T(L_k(I)) - L_k(T(I))||^2 ]
//!      + lambda/(S K) sum_{labelled} sum_k ||GT_k - L_k(I)||^2 + gamma ||W||^2
//! ```
//!
//! Every loss function returns the **unweighted** term (a scalar tensor, normalised by the
//! number of entries that carry it); [`ObjectiveWeights::combine`] applies the weights.
//!
//! ```
//! use std::collections::BTreeMap;
//! use candle_core::{Device, Tensor};
//! use landmark_ssl_losses::{cross_entropy_loss, landmark_loss, ObjectiveWeights, Terms};
//! let dev = Device::Cpu;
//! let pred = Tensor::new(&[[[1f32, 1.]], [[5., 5.]]], &dev)?; // (B=2, K=1, 2)
//! let gt = Tensor::new(&[[[1f32, 3.]], [[0., 0.]]], &dev)?;
//! let lm_mask = Tensor::new(&[[1f32], [0.]], &dev)?; // image 1 is unlabelled
//! let logits = Tensor::new(&[[0f32, 0.], [0., 0.]], &dev)?;
//! let labels = Tensor::new(&[0u32, 1], &dev)?;
//! let has_class = Tensor::new(&[1f32, 1.], &dev)?;
//! let mut attributes = BTreeMap::new();
//! attributes.insert("class".to_string(), cross_entropy_loss("class", &logits, &labels, &has_class)?);
//! let terms = Terms {
//!     landmark: Some(landmark_loss(&pred, &gt, &lm_mask)?),
//!     attributes,
//!     ..Default::default()
//! };
//! let report = ObjectiveWeights::blocks().combine(&terms)?;
//! assert_eq!(report.values["landmark"], 4.0);
//! assert!((report.values["total"] - (4.0 + 2f64.ln())).abs() < 1e-6);
//! assert!(report.non_finite().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Conventions (see `docs/ARCHITECTURE.md`): points are (x, y) in pixels, x the column and
//! y the row, 0-based, pixel centres at integers; a point is inside an (H, W) image when
//! `-0.5 <= x <= W - 0.5` and `-0.5 <= y <= H - 0.5`. Landmarks (B, K, 2), landmark masks
//! (B, K) and per-sample masks (B,) in {0, 1} (an entry counts when `>= 0.5`), class labels
//! (B,) u32, real attributes (B, A).

#![warn(missing_docs)]

pub mod attribute;
mod check;
pub mod elt;
pub mod error;
pub mod heatmap;
pub mod landmark;
pub mod map_overlap;
pub mod map_scale;
pub mod map_spread;
pub mod objective;
pub mod weight_decay;

pub use attribute::{cross_entropy_loss, l1_loss, smoothed_cross_entropy_loss};
pub use elt::{Elt, EltConfig, EltImages, EltOutput, EltPenalty};
pub use error::{Error, Result};
pub use heatmap::{heatmap_cross_entropy, nearest_pixel, HeatmapCeOutput};
pub use landmark::landmark_loss;
pub use map_overlap::{map_overlap, map_overlap_mean};
pub use map_scale::{map_logit_range, map_range_excess};
pub use map_spread::{map_spread, map_spread_mean};
pub use objective::{LossReport, ObjectiveWeights, Terms, OBJECTIVE_PRESETS};
pub use weight_decay::{
    is_bias, weight_decay, weight_decay_tensors, weight_decay_varmap, WeightDecayConfig,
    WeightDecayOutput,
};
