//! Shapes (section 4.1 of the paper): Seq-MT trained with class labels only.
//!
//! ```text
//! cargo run --release --example shapes
//! ```
//!
//! Each 60x60 image holds a triangle and a square; the class says which one is closer to
//! the top-left corner. The network must put its two landmarks somewhere useful to answer,
//! and no landmark label is ever used (lambda = 0, beta 1, as the paper; the `seqmt-shapes`
//! preset's last layer is linear, see its docs). The class alone is as well served by
//! points at a fixed offset from each shape, or by one shape and the midpoint between them,
//! so the defaults add what puts the points on the shapes (docs/experiments/shapes.md):
//! three 9x9 convs instead of the preset's six (a 25 px receptive field), and after 10
//! epochs of the class alone, ELT (rotations up to 45 degrees) with a cost on each map's
//! spread and one on the less concentrated map's mass near the other's point, for 10 more
//! epochs. The
//! paper's own setting is `--costs A --convs 6 --spread 0 --overlap 0 --epochs 12`.
//!
//! The example reports the test accuracy (paper: 99%) and how close the two learned
//! landmarks fall to the triangle's and the square's centres (each landmark is matched to
//! the shape it lands nearer on average over the test set): the mean and median distance
//! in pixels, and the share of test images where it is on its shape (on a bright pixel,
//! nearer its shape's centre than the other's). `--json <file>` writes
//! `{"test_accuracy": .., "landmark_to_shape_px": [triangle, square],
//! "landmark_to_shape_median_px": [..], "landmark_on_shape_fraction": [..], ...}`.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use landmark_ssl::metrics;
use landmark_ssl::train::{predict, DeviceChoice, ExperimentConfig, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Seq-MT on Shapes with class labels only (section 4.1 of the paper)")]
struct Args {
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Training images (validation and test: half as many each).
    #[arg(long, default_value_t = 3200)]
    train_images: usize,
    /// Soft-argmax multiplier beta (the paper's 1).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// The number of 9x9 convs before the preset's two 1x1 convs (3 see 25 px; the preset's
    /// 6 see 49 px, most of the image, docs/experiments/shapes.md).
    #[arg(long, default_value_t = 3)]
    convs: usize,
    /// The weight of the cost on each map's spread (`costs.map_spread`; 0 = off, as the
    /// paper). It joins with ELT.
    #[arg(long, default_value_t = 0.001)]
    spread: f64,
    /// The weight of the cost on a map's mass near another map's point
    /// (`costs.map_overlap`; 0 = off, as the paper). It joins with ELT.
    #[arg(long, default_value_t = 10.0)]
    overlap: f64,
    /// The overlap cost's window around each point, in pixels (`costs.map_overlap_sigma`):
    /// 10 covers a shape and its rim, so a map cannot keep its mass around the other's.
    #[arg(long, default_value_t = 10.0)]
    overlap_sigma: f64,
    /// With `--costs ELT+A`: the epochs that A trains alone before ELT joins.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// With `--costs ELT+A`: the largest rotation of ELT's transforms, in degrees.
    #[arg(long, default_value_t = 45.0)]
    elt_rotation: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Costs: `ELT+A` (the class and the equivariance of the points, which needs no label
    /// either) or `A` (the paper's: the class alone).
    #[arg(long, default_value = "ELT+A")]
    costs: String,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "runs/shapes")]
    out: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Where to train: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.epochs == 0 || args.train_images == 0 || args.convs == 0 {
        bail!("--epochs, --train-images and --convs must be at least 1");
    }
    let mut cfg = ExperimentConfig {
        name: "seqmt-shapes, class labels only".into(),
        seed: args.seed,
        device: args.device,
        ..Default::default()
    };
    cfg.data.kind = landmark_ssl::train::DataKind::Shapes;
    let eval_n = (args.train_images / 2).max(1);
    cfg.data.generated_sizes = [args.train_images, eval_n, eval_n];
    cfg.model.preset = "seqmt-shapes".into();
    let mut model = landmark_ssl::models::preset("seqmt-shapes")?;
    if let landmark_ssl::models::ModelConfig::SeqMt(c) = &mut model {
        c.beta = args.beta;
        // The preset's trunk: n 9x9 convs, then 1x1 x 8 and the linear 1x1 x 2.
        let nine = c.convs.first().copied();
        let tail = c.convs.split_off(c.convs.len().saturating_sub(2));
        if let Some(nine) = nine {
            c.convs = [vec![nine; args.convs], tail].concat();
        }
    }
    cfg.costs.map_spread = args.spread;
    cfg.costs.map_overlap = args.overlap;
    cfg.costs.map_overlap_sigma = args.overlap_sigma;
    cfg.model.config = Some(model);
    cfg.costs.set_from_label(&args.costs)?;
    if cfg.costs.landmark {
        bail!(
            "--costs {}: Shapes has no landmark labels (A or ELT+A)",
            args.costs
        );
    }
    if cfg.costs.elt && args.warmup >= args.epochs {
        bail!(
            "--warmup {} leaves no epoch of the {} for ELT to join",
            args.warmup,
            args.epochs
        );
    }
    cfg.costs.lambda = 0.0;
    // The paper's alpha is 0 (no ELT); with ELT, the Blocks recipe's weight.
    cfg.costs.alpha = if cfg.costs.elt { 1.0 } else { 0.0 };
    // No jitter: the class (which shape is nearer the top-left corner) is not invariant to
    // a rotation or a shift.
    cfg.data.jitter_rotation_deg = 0.0;
    cfg.data.jitter_shift = 0.0;
    cfg.labels.landmark_fraction = 0.0;
    cfg.labels.attribute_fraction = 1.0;
    // The class cost is all that moves the points here: the paper's plain cross-entropy,
    // with which this recipe was measured (docs/experiments/shapes.md).
    cfg.costs.label_smoothing = 0.0;
    cfg.schedule.epochs = args.epochs;
    // Class labels only: a constant rate from the first step; with ELT, A alone for the
    // warm-up's epochs, then ELT and the costs on the maps join (ramped in over the
    // default 3 epochs).
    cfg.costs.warmup_epochs = args.warmup;
    cfg.costs.elt_transform.max_rotation_deg = args.elt_rotation;
    cfg.schedule.lr_rampup_epochs = 0;
    cfg.schedule.restart_optimizer_at_join = false;
    cfg.schedule.labelled_per_batch = 0;
    cfg.schedule.adam.lr = args.lr;
    cfg.output.dir = args.out.clone();
    cfg.output.progress = !args.quiet;
    if cfg.output.dir.join("state.json").exists() {
        std::fs::remove_dir_all(&cfg.output.dir)
            .with_context(|| format!("removing the earlier run {}", cfg.output.dir.display()))?;
    }
    let mut trainer = Trainer::new(cfg)?;
    let outcome = trainer.run()?;
    let accuracy = outcome
        .test
        .accuracy
        .values()
        .next()
        .copied()
        .unwrap_or(f64::NAN);

    // Landmark k is matched to the shape it is nearer to on average (the network is free to
    // put either landmark on either shape).
    let test = trainer.splits().test.clone();
    let p = predict(
        trainer.model(),
        &test,
        &landmark_ssl::data::Preprocess::whole(60),
        64,
        0,
        trainer.device(),
    )?;
    // d[k][s][i]: landmark k to shape s's centre on test image i.
    let mut d = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for (pred, gt) in p.landmarks.iter().zip(&p.truth) {
        for (k, q) in pred.iter().enumerate().take(2) {
            for (s, g) in gt.iter().enumerate().take(2) {
                d[k][s].push(((q[0] - g[0]).powi(2) + (q[1] - g[1]).powi(2)).sqrt());
            }
        }
    }
    let total = |v: &Vec<f64>| v.iter().sum::<f64>();
    let straight = total(&d[0][0]) + total(&d[1][1]);
    let crossed = total(&d[0][1]) + total(&d[1][0]);
    // The landmark on the triangle, then on the square.
    let matched: [usize; 2] = if straight <= crossed { [0, 1] } else { [1, 0] };
    // On its shape: the pixel under the landmark is bright (part of a shape), and the
    // landmark is nearer its shape's centre than the other's.
    let mut on = [0usize; 2];
    for (i, &index) in p.indices.iter().enumerate() {
        let Some(sample) = test.samples.get(index) else {
            bail!(
                "prediction for test image {index} of {}",
                test.samples.len()
            );
        };
        let image = sample.load_image()?;
        for (s, &k) in matched.iter().enumerate() {
            let q = p.landmarks[i][k];
            let (x, y) = (q[0].round(), q[1].round());
            let inside = x >= 0.0 && y >= 0.0 && x < image.width as f64 && y < image.height as f64;
            let bright = inside && {
                let at = (y as usize * image.width + x as usize) * image.channels;
                image.pixels[at] >= 128
            };
            if bright && d[k][s][i] < d[k][1 - s][i] {
                on[s] += 1;
            }
        }
    }
    let n = p.indices.len().max(1) as f64;
    let mut to_shape = Vec::new();
    for (s, &k) in matched.iter().enumerate() {
        to_shape.push(DistanceSummary {
            mean: metrics::mean(&d[k][s])?,
            median: metrics::median(&d[k][s])?,
            on_shape: on[s] as f64 / n,
        });
    }
    println!(
        "test accuracy {:.1}% (paper: 99%), best epoch {}/{}, {:.0} s",
        accuracy * 100.0,
        outcome.best_epoch,
        outcome.epochs,
        outcome.seconds
    );
    for (name, t) in ["triangle", "square"].iter().zip(&to_shape) {
        println!(
            "landmark on the {name}: {:.2} px from its centre on average (median {:.2}), on the {name} in {:.1}% of the test images",
            t.mean,
            t.median,
            t.on_shape * 100.0
        );
    }
    println!("report: {}", outcome.report.display());
    if let Some(path) = &args.json {
        let v = serde_json::json!({
            "test_accuracy": accuracy,
            "landmark_to_shape_px": [to_shape[0].mean, to_shape[1].mean],
            "landmark_to_shape_median_px": [to_shape[0].median, to_shape[1].median],
            "landmark_on_shape_fraction": [to_shape[0].on_shape, to_shape[1].on_shape],
            "epochs": outcome.epochs,
            "best_epoch": outcome.best_epoch,
            "seconds": outcome.seconds,
        });
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A landmark's distances to its shape's centre over the test set, and the fraction of the
/// images where it is on its shape.
struct DistanceSummary {
    mean: f64,
    median: f64,
    on_shape: f64,
}
