//! Experiments described by a TOML file.
//!
//! Every field has a default, so the smallest experiment file is
//!
//! ```toml
//! [data]
//! kind = "blocks"
//! ```
//!
//! which trains Seq-MT (L+ELT+A) on generated Blocks with 5% of the training images
//! carrying landmark labels. See `examples/experiments/*.toml` for real data sets.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adam::AdamConfig;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
mod data_kind;
mod limits;
mod validate;

pub use data_kind::{CropChoice, DataKind};
pub use limits::LimitsConfig;
pub use validate::{MAX_BATCH_SIZE, MAX_CONFIG_BYTES, MAX_CROP_FACTOR, MAX_GENERATED_IMAGES};

/// A whole experiment: data, model, labels, costs, schedule, output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// A name for reports and the output folder (default `experiment`).
    pub name: String,
    /// Seed for every random choice (splits, sampling, augmentation, ELT, init, dropout).
    pub seed: u64,
    /// Where training, the ELT warps and evaluation run: `"cpu"` (the default), `"cuda"` or
    /// `"cuda:N"` (a build with the `cuda` feature).
    pub device: DeviceChoice,
    /// `[data]`: the data set, its splits, the crop and the jitter.
    pub data: DataConfig,
    /// `[model]`: the network (a preset of the model zoo, or a whole config).
    pub model: ModelChoice,
    /// `[labels]`: which training images keep landmark and attribute labels.
    pub labels: LabelConfig,
    /// `[costs]`: the terms of the objective, their weights and when they join.
    pub costs: CostConfig,
    /// `[schedule]`: epochs, batches, the optimiser and early stopping.
    pub schedule: ScheduleConfig,
    /// `[eval]`: how errors are measured.
    pub eval: EvalConfig,
    /// `[output]`: the run folder, progress bars and overlays.
    pub output: OutputConfig,
    /// `[limits]`: the largest images, files, data sets, networks and batches accepted
    /// (each field optional; absent ones keep the library's defaults).
    pub limits: LimitsConfig,
}

/// How errors are measured on the validation and test splits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The normaliser of the per-image mean error (the metrics crate's `Normalizer`):
    /// `"Pixels"` (Blocks), `"EyeCentres68"` (300W, Multi-PIE), `"EyeCentres5"` (MTFL),
    /// `"WristWidth"` (HGR1), `"FaceSizeOfLandmarks"`, `{ Points = [i, j] }`. Errors are
    /// measured in the crop's pixels, which the normalisers make scale-free.
    pub normalizer: landmark_ssl_metrics::Normalizer,
    /// Failure threshold and the upper end of the cumulative error curve, in the errors'
    /// unit (pixels for `Pixels`, else a fraction: 0.08 or 0.1 on faces).
    pub threshold: f64,
    /// More thresholds at which the report gives the failure rate and the AUC, in the same
    /// unit. Normalised errors always get 0.08 and 0.1 too (the face benchmarks' FR and
    /// AUC at 8% and 10%).
    pub thresholds: Vec<f64>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            normalizer: landmark_ssl_metrics::Normalizer::Pixels,
            threshold: 5.0,
            thresholds: Vec::new(),
        }
    }
}

impl EvalConfig {
    /// Every threshold the evaluation reports, ascending and without repeats: `threshold`,
    /// `thresholds`, and 0.08 and 0.1 for normalised errors.
    pub fn all_thresholds(&self) -> Vec<f64> {
        let mut t = vec![self.threshold];
        t.extend(&self.thresholds);
        if self.normalizer.unit() != landmark_ssl_metrics::ErrorUnit::Pixels {
            t.extend([0.08, 0.1]);
        }
        t.sort_by(f64::total_cmp);
        t.dedup();
        t
    }
}

/// Where the images come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// `blocks`, `shapes` (generated), a file format: `300w` (iBUG `.pts` folders),
    /// `mtfl`, `aflw` (sqlite), `generic-csv`, `generic-json`; or `in-memory` (splits
    /// given to `Trainer::from_splits`).
    pub kind: DataKind,
    /// How images are cropped to the model's input (`auto`: whole images for generated and
    /// in-memory data, the object's box for files).
    pub crop: CropChoice,
    /// Channels the images are prepared with: 1 (grey, the default and the paper's) or 3
    /// (RGB); the model's `in_channels` must match. Grey files give three equal planes,
    /// colour files their luma for 1.
    pub channels: usize,
    /// Training data: a folder (`300w`), a file (`mtfl` training.txt, `aflw.sqlite`,
    /// generic CSV/JSON). Unused for generated data.
    pub train: Option<PathBuf>,
    /// Test data in the same format; when absent, a fraction of `train` is held out.
    pub test: Option<PathBuf>,
    /// Folder that image paths in `train`/`test` are relative to (default: the file's folder).
    pub image_root: Option<PathBuf>,
    /// Generated data: images per split (train, validation, test). Paper: 3200 each.
    pub generated_sizes: [usize; 3],
    /// Fraction of the training images held out for validation when no separate validation
    /// data exist (0.1, as the paper's 300W protocol).
    pub valid_fraction: f64,
    /// Fraction held out for testing when `test` is absent.
    pub test_fraction: f64,
    /// Square crop around the object (`crop = object`): the box (or landmarks' extent)
    /// times this factor.
    pub crop_factor: f64,
    /// Per-epoch jitter: rotation range in degrees (+-), 0 disables (paper: 20 hands and
    /// Multi-PIE, 30 for 300W). Default 10, the Blocks recipe's (the range of
    /// `EltConfig::blocks()`): without it the landmark cost fits the few labelled images
    /// and some seeds end their warm-up far off (docs/experiments/elt-join.md).
    pub jitter_rotation_deg: f64,
    /// Per-epoch jitter of scale and translation, as a fraction of the box (paper: 0.1;
    /// default 0.05, the Blocks recipe's).
    pub jitter_shift: f64,
    /// Random horizontal flips with the layout's landmark permutation.
    pub jitter_flip: bool,
    /// Skip bad samples when loading (each is reported on stderr) instead of stopping.
    pub skip_bad: bool,
    /// Generic CSV/JSON files with 1-based coordinates (subtract 1 on reading).
    pub one_based: bool,
    /// AFLW: keep the 19-point protocol's points instead of all 21.
    pub aflw_points19: bool,
    /// Generic CSV/JSON: a layout file (point names, flip pairs, normaliser points;
    /// `landmark_ssl_data::LayoutFile`), so that `jitter_flip` swaps the right points.
    /// Relative to the experiment file. The normaliser points it names are for
    /// `eval.normalizer = { Points = [i, j] }` (`inspect` prints their indices).
    pub layout: Option<PathBuf>,
    /// COCO keypoints: the category to read, by name or id (needed when the file has several
    /// categories with keypoints).
    pub category: Option<String>,
    /// The class attribute the landmark-labelled subset is balanced over (default: the data
    /// set's first class attribute in name order; MTFL: set `pose`).
    pub balance_by: Option<String>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            kind: DataKind::Blocks,
            crop: CropChoice::Auto,
            channels: 1,
            train: None,
            test: None,
            image_root: None,
            generated_sizes: [3200, 3200, 3200],
            valid_fraction: 0.1,
            test_fraction: 0.1,
            crop_factor: 1.3,
            jitter_rotation_deg: 10.0,
            jitter_shift: 0.05,
            jitter_flip: false,
            skip_bad: false,
            one_based: false,
            aflw_points19: false,
            layout: None,
            category: None,
            balance_by: None,
        }
    }
}

/// Which network: a preset name, or a full model config (JSON/TOML of the model zoo).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelChoice {
    /// A model-zoo preset (`seqmt-blocks`, `rcnplus-300w`, ...); ignored when `config` is set.
    pub preset: String,
    /// A custom architecture, as the model zoo's `ModelConfig`.
    pub config: Option<landmark_ssl_models::ModelConfig>,
}

impl Default for ModelChoice {
    fn default() -> Self {
        Self {
            preset: "seqmt-blocks".to_string(),
            config: None,
        }
    }
}

/// Which training images keep which labels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LabelConfig {
    /// Fraction of training images that keep their landmark labels (class-balanced when the
    /// data have classes). Paper's Table 1: 0.01 to 1.
    pub landmark_fraction: f64,
    /// Fraction of training images that keep their attribute labels.
    pub attribute_fraction: f64,
}

impl Default for LabelConfig {
    fn default() -> Self {
        Self {
            landmark_fraction: 0.05,
            attribute_fraction: 1.0,
        }
    }
}

/// The cost terms of Eq. 2 and their weights.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CostConfig {
    /// Use the landmark cost (L).
    pub landmark: bool,
    /// Use the attribute costs (A).
    pub attribute: bool,
    /// Use the equivariant landmark transformation cost (ELT).
    pub elt: bool,
    /// Apply ELT to `unlabelled` images only (Blocks, HGR1, Multi-PIE) or to `all` (300W).
    pub elt_on: EltOn,
    /// Landmark weight lambda.
    pub lambda: f64,
    /// ELT weight alpha.
    pub alpha: f64,
    /// Weight decay gamma (on the squared weights, biases excluded).
    pub gamma: f64,
    /// Weight of each attribute head's cost (1 for every head not named).
    pub attribute_weights: std::collections::BTreeMap<String, f64>,
    /// Label smoothing of every class head's cross-entropy, in `[0, 1)`
    /// ([`landmark_ssl_losses::smoothed_cross_entropy_loss`]; 0 = the paper's plain
    /// cross-entropy). It bounds the margin that A asks of its head, and so how far A moves
    /// the landmarks the head reads once it classifies well: plain cross-entropy keeps
    /// widening its margins and, on Blocks, moved the points of the unlabelled images away
    /// from where ELT and L put them (docs/experiments/table1-schedule.md). Default 0.1.
    pub label_smoothing: f64,
    /// ELT's transforms and penalty. Default: `EltConfig::blocks()`, sized for the default
    /// experiment (Blocks); other data name theirs (`EltConfig::default()`'s face-sized
    /// ranges and the paper's squared penalty are written out in the face and hand
    /// experiment files).
    pub elt_transform: landmark_ssl_losses::EltConfig,
    /// Epochs trained with the landmark cost alone before A and ELT join (0 = from the
    /// start). A soft-argmax network starts from nearly uniform maps, whose points sit near
    /// the image centre; only labelled points pull the maps off that plateau, and the
    /// unlabelled costs can hold them there (a constant point is almost equivariant and
    /// tells the classifier nothing). The paper does not say how it started training.
    /// Without the landmark cost, A alone trains these epochs and ELT joins after them
    /// (with A and ELT both on; [`CostConfig::join_epoch`]).
    pub warmup_epochs: usize,
    /// Epochs over which the weights of the costs that join after the warm-up (A and ELT)
    /// grow linearly from `1 / (n * steps)` of their value to all of it, step by step
    /// ([`ExperimentConfig::cost_rampup_factor`]; 0 = at once), so that they join a trained
    /// landmark network gradually. Without a warm-up nothing is ramped (every cost starts
    /// together), and the landmark cost never is.
    pub rampup_epochs: usize,
    /// The bound on each soft-argmax map's logit range `beta * (max - mean)` (0 = no
    /// bound): maps beyond it pay the squared excess ([`landmark_ssl_losses::map_range_excess`],
    /// weight 1), in every epoch and on every image of a step. Nothing else bounds the
    /// maps' scale, and maps that grow to a hard argmax stop the points from moving
    /// (docs/experiments/elt-join.md). Models without soft-argmax maps ignore it.
    pub map_logit_bound: f64,
    /// The weight of the cost on each soft-argmax map's spread, the variance of its softmax
    /// in px^2 ([`landmark_ssl_losses::map_spread_mean`]; 0 = off), on every image of a
    /// step from the join (with ELT, ramped in as it is; every epoch without a warm-up).
    /// It asks each map to be a peak: without landmark labels a cost on the points alone
    /// also accepts maps spread over the background, whose points follow the figures from
    /// afar (docs/experiments/shapes.md). Models without soft-argmax maps ignore it.
    pub map_spread: f64,
    /// The weight of the cost on soft-argmax maps of an image that share their places
    /// ([`landmark_ssl_losses::map_overlap_mean`]: of each pair of maps, the mass of the
    /// less concentrated one within `map_overlap_sigma` pixels of the other's point, in
    /// [0, 1]; 0 = off), on every image
    /// of a step from the join, as `map_spread`. Without landmark labels nothing else stops
    /// a map from spreading over a figure that another map already holds
    /// (docs/experiments/shapes.md). Models without soft-argmax maps ignore it.
    pub map_overlap: f64,
    /// The width in pixels of the window around each point in which `map_overlap` counts
    /// the other maps' mass (a Gaussian's sigma; > 0). It should cover the other point's
    /// figure and its rim, or a map escapes the cost by circling that figure: on Shapes 5 px
    /// left such rings and 10 px did not (docs/experiments/shapes.md).
    pub map_overlap_sigma: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            landmark: true,
            attribute: true,
            elt: true,
            elt_on: EltOn::Unlabelled,
            lambda: 1.0,
            alpha: 1.0,
            gamma: 0.0,
            attribute_weights: Default::default(),
            label_smoothing: 0.1,
            elt_transform: landmark_ssl_losses::EltConfig::blocks(),
            warmup_epochs: 8,
            rampup_epochs: 3,
            map_logit_bound: 30.0,
            map_spread: 0.0,
            map_overlap: 0.0,
            map_overlap_sigma: 10.0,
        }
    }
}

impl CostConfig {
    /// The costs in force during `epoch` (0-based): during the warm-up only L, or without
    /// L only A ([`Self::join_epoch`]); the costs on the maps' shape (`map_spread`,
    /// `map_overlap`) join with ELT.
    pub fn active(&self, epoch: usize) -> CostConfig {
        let mut c = self.clone();
        if epoch < self.join_epoch() {
            if self.landmark {
                c.attribute = false;
            }
            c.elt = false;
            c.map_spread = 0.0;
            c.map_overlap = 0.0;
        }
        c
    }

    /// The first epoch (0-based) of the costs that join after the warm-up (A and ELT after
    /// L, ELT after A): `warmup_epochs` when there is something to warm up with, else 0.
    /// The warm-up trains the landmark cost, or without it the attribute cost when ELT is
    /// on too (ELT asks the points to follow the image, and only after A has given them a
    /// meaning do they have something to follow). With L alone the warm-up's epochs still
    /// count (the learning-rate schedules start after them, so rows with and without A and
    /// ELT stay comparable).
    pub fn join_epoch(&self) -> usize {
        if self.landmark || (self.attribute && self.elt) {
            self.warmup_epochs
        } else {
            0
        }
    }

    /// Whether costs join at the start of `epoch` (0-based): the end of a warm-up, when A
    /// or ELT is on.
    pub fn joins_at(&self, epoch: usize) -> bool {
        epoch > 0 && epoch == self.join_epoch() && (self.attribute || self.elt)
    }

    /// The short name of the enabled costs, as the paper's tables write them
    /// (`L`, `L+A`, `L+ELT`, `L+ELT+A`).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.landmark {
            parts.push("L");
        }
        if self.elt {
            parts.push("ELT");
        }
        if self.attribute {
            parts.push("A");
        }
        parts.join("+")
    }

    /// Parses `L`, `L+A`, `L+ELT`, `L+ELT+A` (any order, `A` alone too) into the switches.
    pub fn set_from_label(&mut self, label: &str) -> Result<()> {
        let (mut l, mut a, mut e) = (false, false, false);
        for part in label.split('+').map(str::trim) {
            match part.to_ascii_uppercase().as_str() {
                "L" => l = true,
                "A" => a = true,
                "ELT" => e = true,
                other => {
                    return Err(Error::InvalidSetting {
                        field: "costs".into(),
                        reason: format!("unknown cost `{other}` in `{label}` (expected L, A, ELT)"),
                    })
                }
            }
        }
        self.landmark = l;
        self.attribute = a;
        self.elt = e;
        Ok(())
    }
}

/// Which images the ELT cost sees.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EltOn {
    /// Only images without landmark labels (the paper's Blocks, HGR1, Multi-PIE).
    Unlabelled,
    /// Every image (the paper's 300W).
    All,
}

/// Epochs, batches, optimiser and stopping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Maximum number of epochs. An epoch is one pass over the pool of the costs A and ELT
    /// read (with the landmark cost alone, as many steps as one pass over the training
    /// images would take); labelled images are drawn again as needed.
    pub epochs: usize,
    /// Images per step from the pool (every training image with ELT, those with attribute
    /// labels with A alone); with the landmark cost alone, the steps per epoch are counted
    /// as if it were `ceil(N_train / batch_size)`.
    pub batch_size: usize,
    /// Images with landmark labels in each step, beside the pool's `batch_size`. This part
    /// of a step is the same whatever other costs are on: switching A or ELT on adds images
    /// to a step and never takes labelled ones away (the pool's images that carry landmark
    /// labels count in the landmark cost too, as any labelled image in a step). The paper
    /// does not give the mix; a fixed number keeps the landmark cost in every step even at
    /// 1% labels.
    pub labelled_per_batch: usize,
    /// Adam settings (learning rate, moments). Default: [`AdamConfig::default`] at a rate
    /// of 2e-3, twice Adam's usual: at 1e-3 the Blocks runs still descended at their last
    /// epoch, and 2e-3 lowered the test error on 9 of 10 seeds for Seq-MT (L) and (L+ELT+A)
    /// with no run falling back (docs/experiments/table1-schedule.md).
    pub adam: AdamConfig,
    /// Multiply the learning rate by this after every epoch (1 = constant).
    pub lr_decay: f64,
    /// How the learning rate falls after the warm-up: `none` (constant) or `cosine` (from
    /// the rate at the end of `costs.warmup_epochs` down to 0 at the last step, by
    /// [`ExperimentConfig::lr_anneal_factor`]; the whole run without a warm-up).
    pub lr_anneal: LrAnneal,
    /// Stop when the validation error has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Epochs over which the learning rate grows linearly from `lr / (n * steps)` to the
    /// scheduled rate after each fresh start of Adam: the first step, and the join when
    /// `restart_optimizer_at_join` (0 = no ramp). A fresh Adam's first steps are full size
    /// for every weight, whatever its gradient ([`ExperimentConfig::lr_rampup_factor`]).
    pub lr_rampup_epochs: usize,
    /// Restart Adam (moments and step count back to zero) when the unlabelled costs join,
    /// at the end of `costs.warmup_epochs`. Adam's second moments then forget the warm-up's
    /// gradient scale, and the heads, which had no gradient in the warm-up, get their bias
    /// correction from their first step (without it, their first steps are several times
    /// the learning rate). Use with `lr_rampup_epochs`: a fresh Adam's first steps are full
    /// size for every weight (docs/experiments/blocks.md, "The join").
    pub restart_optimizer_at_join: bool,
    /// Gradient clipping: when the global L2 norm of all gradients of a step exceeds
    /// this, they are scaled down to it before Adam sees them (0 = off). Each epoch's
    /// record reports the norms before clipping (`grad_norm`); on Blocks one bound did not
    /// suit every seed (docs/experiments/blocks.md, "Gradient norms and clipping").
    pub clip_grad_norm: f64,
    /// Gradient clipping relative to the run's own gradients: a step's global norm is
    /// bounded by this factor (above 1) times a running mean of the earlier steps' norms
    /// (about the last 50; default 3, 0 = off), so one outlier batch cannot throw Adam off
    /// ([`crate::clip`]; docs/experiments/elt-join.md, "One outlier step"). Steps it clips
    /// count in the epoch record's `grad_norm.clipped_steps`.
    pub clip_grad_relative: f64,
    /// Decay of an exponential moving average of the weights (Polyak averaging; 0 = off)
    /// that takes their place in validation, checkpoints and the test: at a constant
    /// learning rate it hardly moves when one batch throws the optimised weights off
    /// ([`crate::average`]; docs/experiments/elt-join.md, "Averaged weights"). Its horizon
    /// is about `1 / (1 - decay)` steps, fewer in the first thousand steps.
    pub weight_average_decay: f64,
    /// The learning rate of the attribute path (the variables only A trains:
    /// [`landmark_ssl_models::ATTRIBUTE_PATH_PREFIXES`]) as a multiple of the schedule's,
    /// in (0, 1]. A class head that starts on features that cannot yet predict its labels
    /// is driven to a constant output at a rate that suits the landmark network: on Blocks,
    /// Heatmap-MT's class branch stays at the uniform prediction at 1e-3 and learns at
    /// 0.3 times that, while its landmarks need 1e-3 (docs/experiments/commmt-heatmapmt.md).
    #[serde(skip_serializing_if = "is_one")]
    pub attribute_lr_scale: f64,
    /// Cap on the steps of an epoch (0 = no cap), for quick runs and tests.
    pub max_steps_per_epoch: usize,
    /// Cap on the validation images evaluated each epoch (0 = all).
    pub max_valid_images: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 32,
            labelled_per_batch: 32,
            adam: AdamConfig {
                lr: 2e-3,
                ..AdamConfig::default()
            },
            lr_decay: 1.0,
            lr_anneal: LrAnneal::None,
            patience: 0,
            lr_rampup_epochs: 1,
            restart_optimizer_at_join: false,
            clip_grad_norm: 0.0,
            clip_grad_relative: 3.0,
            weight_average_decay: 0.99,
            attribute_lr_scale: 1.0,
            max_steps_per_epoch: 0,
            max_valid_images: 0,
        }
    }
}

/// Whether a setting is at 1, its default: not written, so that configs written before
/// the setting existed keep their serialised form.
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// A linear ramp over `ramp` epochs from the start of epoch `start`: the share of the ramp's
/// steps done at `step` of the `steps` of `epoch`, counting the current one; 1 when `ramp`
/// is 0, before `start` and after the ramp.
fn linear_ramp(ramp: usize, start: usize, epoch: usize, step: usize, steps: usize) -> f64 {
    if ramp == 0 || steps == 0 || epoch < start {
        return 1.0;
    }
    // In f64: a large ramp times the steps would overflow a usize.
    let done = (epoch - start) as f64 * steps as f64 + (step.min(steps - 1) + 1) as f64;
    (done / (ramp as f64 * steps as f64)).min(1.0)
}

/// The learning rate's fall after the warm-up ([`ScheduleConfig::lr_anneal`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LrAnneal {
    /// A constant rate (apart from `lr_decay` and the ramp).
    #[default]
    None,
    /// Half a cosine from 1 to 0 over the steps after the warm-up.
    Cosine,
}

/// Where results go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Output folder: checkpoints, the JSON-lines log, the report and its pictures.
    pub dir: PathBuf,
    /// Show a progress bar on the terminal.
    pub progress: bool,
    /// Test images drawn as overlays in the report.
    pub overlays: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs/experiment"),
            progress: true,
            overlays: 8,
        }
    }
}

impl ExperimentConfig {
    /// The factor (0, 1] on the learning rate at step `step` of the `steps` of `epoch` (both
    /// 0-based), from [`ScheduleConfig::lr_rampup_epochs`]: the rate grows linearly over
    /// the ramp's steps after each fresh start of Adam, from `1 / (lr_rampup_epochs *
    /// steps)` on the first step to 1 on the last, and is 1 elsewhere. Adam starts fresh at
    /// the first step, and again at the join ([`CostConfig::join_epoch`]) when
    /// `schedule.restart_optimizer_at_join` restarts it there.
    pub fn lr_rampup_factor(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let join = self.costs.join_epoch();
        let restarted = self.schedule.restart_optimizer_at_join && self.costs.joins_at(join);
        let start = if restarted && epoch >= join { join } else { 0 };
        linear_ramp(self.schedule.lr_rampup_epochs, start, epoch, step, steps)
    }

    /// The factor (0, 1] on the weights of A and ELT at step `step` of the `steps` of
    /// `epoch` (both 0-based), from [`CostConfig::rampup_epochs`]: from the join
    /// ([`CostConfig::join_epoch`]) the share of the ramp's steps done, counting the current
    /// one; 1 before the join, after the ramp, and when there is no warm-up or nothing joins
    /// after it.
    pub fn cost_rampup_factor(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let start = self.costs.join_epoch();
        if !self.costs.joins_at(start) {
            return 1.0; // no warm-up, or nothing joins after it
        }
        linear_ramp(self.costs.rampup_epochs, start, epoch, step, steps)
    }

    /// The factor [0, 1] on the learning rate at step `step` of the `steps` of `epoch` (both
    /// 0-based) from [`ScheduleConfig::lr_anneal`]: 1 during the warm-up
    /// ([`CostConfig::join_epoch`]), then for `cosine` `(1 + cos(pi t)) / 2`, where `t`
    /// is the share of the steps after the warm-up already done (0 on its first step), so
    /// that the last step of the schedule runs at nearly 0.
    pub fn lr_anneal_factor(&self, epoch: usize, step: usize, steps: usize) -> f64 {
        let start = self.costs.join_epoch();
        let epochs = self.schedule.epochs;
        if self.schedule.lr_anneal == LrAnneal::None || steps == 0 || epoch < start {
            return 1.0;
        }
        let total = (epochs.saturating_sub(start)) as f64 * steps as f64;
        if total <= 0.0 {
            return 1.0;
        }
        let done = (epoch - start) as f64 * steps as f64 + step.min(steps - 1) as f64;
        let t = (done / total).min(1.0);
        0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    /// Reads an experiment from a TOML file; errors name the file and the field.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let config_err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| config_err(e.to_string()))?
            .len();
        if len > MAX_CONFIG_BYTES {
            return Err(config_err(format!(
                "{len} bytes; an experiment file may have at most {MAX_CONFIG_BYTES}"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| config_err(e.to_string()))?;
        let mut cfg = Self::from_toml_str(&text).map_err(|e| config_err(e.to_string()))?;
        // Relative data paths are relative to the experiment file.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut cfg.data.train,
            &mut cfg.data.test,
            &mut cfg.data.image_root,
            &mut cfg.data.layout,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses an experiment from TOML text without validating it (the fields' names and
    /// types are checked; [`ExperimentConfig::validate`] checks the ranges).
    pub fn from_toml_str(text: &str) -> std::result::Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The model the experiment trains: `model.config`, else the preset it names.
    pub fn resolved_model(&self) -> Result<landmark_ssl_models::ModelConfig> {
        match &self.model.config {
            Some(c) => Ok(c.clone()),
            None => Ok(landmark_ssl_models::preset(&self.model.preset)?),
        }
    }
}

#[cfg(test)]
mod tests;
