//! The semi-supervised training pipeline of landmark-ssl (Honari et al., CVPR 2018, Eq. 2):
//! experiments described by TOML ([`ExperimentConfig`]), the [`Trainer`] (costs L, A and
//! ELT, Adam, validation every epoch, early stopping, best checkpoint, resume), and
//! reports (JSON-lines log, Markdown report with overlays and the cumulative error curve).
//!
//! ```no_run
//! use landmark_ssl_train::{ExperimentConfig, Trainer};
//! let mut cfg = ExperimentConfig::default(); // Seq-MT (L+ELT+A) on Blocks, 5% labels
//! cfg.schedule.epochs = 2;
//! let outcome = Trainer::new(cfg)?.run()?;
//! println!("test error {:.2} px", outcome.test.mean_error);
//! # Ok::<(), landmark_ssl_train::Error>(())
//! ```

#![warn(missing_docs)]

pub mod adam;
pub mod average;
pub mod checkpoint;
pub mod clip;
pub mod config;
mod datasets;
pub mod device;
pub mod draw;
pub mod error;
mod evaluation;
mod formats;
mod init;
pub mod io;
pub mod objective;
mod plan;
pub mod progress;
mod records;
pub mod report;
mod seeds;
mod state;
pub mod subsets;
pub mod trainer;

pub use adam::{Adam, AdamConfig};
pub use average::WeightAverage;
pub use config::{
    CostConfig, CropChoice, DataConfig, DataKind, EltOn, EvalConfig, ExperimentConfig, LabelConfig,
    LimitsConfig, LrAnneal, ModelChoice, OutputConfig, ScheduleConfig,
};
pub use datasets::{build_splits, Splits};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use objective::{objective_weights, step_terms, weights_at, StepTerms};
pub use report::{
    AtThreshold, EpochRecord, Evaluation, GradNormStats, MapRangeStats, SubsetEvaluation,
};
pub use trainer::{predict, ClassPredictions, Outcome, Predictions, Trainer};
