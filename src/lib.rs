//! # landmark-ssl
//!
//! Semi-supervised landmark localization (Honari et al., "Improving Landmark Localization
//! with Semi-Supervised Learning", CVPR 2018) on the candle ML framework.
//!
//! This facade re-exports the workspace's crates:
//!
//! | module | crate | holds |
//! |---|---|---|
//! | [`ops`] | `landmark-ssl-ops` | soft-argmax, heat maps, affine warps, fast convolution |
//! | [`models`] | `landmark-ssl-models` | Seq-MT, Comm-MT, Heatmap-MT, RCN, RCN+ |
//! | [`losses`] | `landmark-ssl-losses` | landmark, attribute, ELT and heat-map losses |
//! | [`data`] | `landmark-ssl-data` | formats, synthetic Shapes and Blocks, augmentation, splits |
//! | [`metrics`] | `landmark-ssl-metrics` | normalised errors, failure rate, AUC, AMI |
//! | [`train`] | `landmark-ssl-train` | the semi-supervised training pipeline |
//!
//! ## Conventions
//! Points are (x, y) in pixels: x is the column, y the row, 0-based, with the origin at the
//! centre of the top-left pixel (pixel centres at integers). Images are (B, C, H, W) f32,
//! landmarks (B, K, 2). Affine matrices (B, 2, 3) map source pixels to destination pixels.
//!
//! ## Speed
//! A library leaves the allocator to the program. A program that trains on large maps runs
//! faster on one that keeps freed large blocks mapped: the examples use jemalloc, set as in
//! `examples/support/jemalloc.rs` (copy it into your binary and add `tikv-jemallocator`);
//! `docs/performance.md` ("Allocator") has the measured difference.

#![warn(missing_docs)]

pub use landmark_ssl_data as data;
pub use landmark_ssl_losses as losses;
pub use landmark_ssl_metrics as metrics;
pub use landmark_ssl_models as models;
pub use landmark_ssl_ops as ops;
pub use landmark_ssl_train as train;

/// The README's code samples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
