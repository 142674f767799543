//! Landmark data: synthetic Shapes and Blocks, real formats, preprocessing, augmentation,
//! semi-supervised splits and batches.
//!
//! Conventions (the workspace's, `docs/ARCHITECTURE.md`): points are (x, y) in pixels,
//! x the column and y the row, 0-based, with pixel centres at integers (the top-left pixel
//! covers [-0.5, 0.5]^2). Every loader returns points in the original image's pixels in
//! this convention (1-based formats such as iBUG `.pts` have 1 subtracted on reading).
//!
//! The flow: a loader or generator gives a [`Dataset`] of [`Sample`]s; [`split`] marks
//! which samples keep landmark / attribute labels and splits by subject; a [`BatchLoader`]
//! crops, resizes, normalises and jitters samples ([`prepare()`]) on a background thread and
//! yields [`Batch`]es of candle tensors.
//!
//! Images are grey by default; [`Preprocess::channels`] = 3 takes them in colour (files
//! decoded as RGB, grey images repeated in three channels), giving (B, 3, S, S) batches
//! normalised per image and channel. Generated data (Shapes, Blocks) are grey.
//!
//! Inputs are untrusted: the readers and the image loader check what a file declares
//! (image size, point and class counts, entries, file size) against one set of [`Limits`]
//! before allocating for it, reject truncated images, and answer with typed errors that
//! name the file and line.
//!
//! Cargo feature `aflw` (off by default): the AFLW reader ([`formats::aflw`]), the only part
//! that needs SQLite; without it the reader answers [`Error::FeatureDisabled`].
//!
//! ```
//! use std::sync::Arc;
//! use landmark_ssl_data::{blocks, semi_supervised, BatchLoader, LoaderConfig, Preprocess};
//! let mut train = blocks::generate(60, 0)?; // 60x60 images, 5 landmarks, 15 classes
//! let labels = semi_supervised(&mut train, 0.25, 1.0, 0)?; // 25% keep landmarks
//! assert_eq!(labels.with_landmarks, 15);
//! let loader = BatchLoader::new(Arc::new(train), LoaderConfig::new(16, Preprocess::whole(60), 0))?;
//! for batch in loader.epoch(0, &candle_core::Device::Cpu) {
//!     let b = batch?;
//!     assert_eq!(b.images.dims()[1..], [1, 60, 60]); // (B, 1, H, W)
//!     assert_eq!(b.landmarks.dims()[1..], [5, 2]); // (B, K, 2)
//! }
//! # Ok::<(), landmark_ssl_data::Error>(())
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod blocks;
pub mod crop;
pub mod error;
pub mod formats;
pub mod image_file;
pub mod layout;
pub mod layout_file;
pub mod limits;
pub mod loader;
pub mod prepare;
mod render;
mod rng;
pub mod sample;
pub mod shapes;
pub mod split;

pub use batch::Batch;
pub use crop::CropMode;
pub use error::{Error, Result, Skipped};
pub use formats::{LoadOptions, LoadReport};
pub use image_file::{GreyImage, Image};
pub use landmark_ssl_ops::Affine2;
pub use layout::Layout;
pub use layout_file::LayoutFile;
pub use limits::Limits;
pub use loader::{BatchLoader, EpochIter, LoaderConfig};
pub use prepare::{prepare, Augment, Jitter, Occlusion, PreparedSample, Preprocess};
pub use sample::{Dataset, DatasetMeta, ImageSource, Sample};
pub use split::{semi_supervised, semi_supervised_by, LabelSummary};
