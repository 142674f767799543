//! The main example: Table 1 of the paper on generated Blocks.
//!
//! ```text
//! cargo run --release --example blocks
//! ```
//!
//! Generates Blocks (3200 / 3200 / 3200 images, 60x60), trains Seq-MT (L) and Seq-MT
//! (L+ELT+A) with 5% of the training images carrying landmark labels (all carry the class
//! label), and prints both test errors in pixels beside the paper's. The default schedule
//! (20 epochs) is shorter than the paper's so that it finishes in about 15 minutes on a
//! 2-core CPU; `--full` runs 100 epochs with early stopping.
//!
//! Every run uses `ExperimentConfig::default()`, the Blocks recipe: 8 epochs of the
//! landmark cost alone on the same labelled part of each step as later, then A and ELT
//! join with weights that grow over 3 epochs; the labelled images are jittered (+-10
//! degrees, +-5%), a bound on the maps' logit range keeps the soft-argmax soft, ELT uses
//! `EltConfig::blocks()` (transforms that keep the figure in the frame, a Huber penalty),
//! Adam learns at 2e-3, A's cross-entropy is label-smoothed (0.1), and a moving average of
//! the weights is validated, kept and tested.
//! docs/experiments/elt-join.md and docs/experiments/table1-schedule.md give the
//! measurements behind each part; an experiment file (`examples/experiments/blocks.toml`,
//! run by `examples/train.rs`) changes any of them. The whole grid of Table 1 is
//! `examples/table1.rs`.
//!
//! More settings: `--labelled 0.01,0.05,0.1`, `--costs L,L+A,L+ELT,L+ELT+A`, `--seeds 5`;
//! `--json results.json` writes every run. Each run's checkpoints, log and Markdown report
//! (overlays, cumulative error curve) go to `runs/blocks/<run>/`.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use landmark_ssl::train::{DeviceChoice, ExperimentConfig, Trainer};

#[derive(Parser, Debug)]
#[command(
    about = "Seq-MT on Blocks: landmark error with few landmark labels (Table 1 of the paper)"
)]
struct Args {
    /// Fractions of training images with landmark labels, comma-separated.
    #[arg(long, default_value = "0.05", value_delimiter = ',')]
    labelled: Vec<f64>,
    /// Cost combinations, comma-separated: L, L+A, L+ELT, L+ELT+A.
    #[arg(long, default_value = "L,L+ELT+A", value_delimiter = ',')]
    costs: Vec<String>,
    /// Number of seeds per setting (seeds 0..N).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// The paper-length schedule: 100 epochs, early stopping after 15 without improvement.
    #[arg(long)]
    full: bool,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Training images (the paper: 3200; validation and test keep 3200 unless set too).
    #[arg(long, default_value_t = 3200)]
    train_images: usize,
    /// Validation and test images each.
    #[arg(long, default_value_t = 3200)]
    eval_images: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Output folder of the runs.
    #[arg(long, default_value = "runs/blocks")]
    out: PathBuf,
    /// Keep earlier results in the output folder and resume unfinished runs.
    #[arg(long)]
    resume: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Where to train: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Seq-MT rows of the paper's Table 1 (pixels, mean of 5 seeds).
fn paper_error(costs: &str, labelled: f64) -> Option<f64> {
    let cols = [0.01, 0.05, 0.1, 0.2, 0.5, 1.0];
    let row: [Option<f64>; 6] = match costs {
        "L" => [
            Some(8.33),
            Some(3.95),
            Some(3.35),
            Some(1.98),
            Some(1.19),
            Some(0.44),
        ],
        "L+A" => [
            Some(8.02),
            Some(3.45),
            Some(3.20),
            Some(1.67),
            Some(1.05),
            Some(0.38),
        ],
        "L+ELT" => [
            Some(6.42),
            Some(1.94),
            Some(1.37),
            Some(1.16),
            Some(0.85),
            None,
        ],
        "L+ELT+A" => [
            Some(6.25),
            Some(1.70),
            Some(1.26),
            Some(1.07),
            Some(0.74),
            None,
        ],
        _ => [None; 6],
    };
    cols.iter()
        .position(|c| (c - labelled).abs() < 1e-9)
        .and_then(|i| row[i])
}

/// One run's result, as `--json` writes it.
#[derive(serde::Serialize)]
struct Run {
    model: String,
    costs: String,
    labelled: f64,
    seed: u64,
    test_error_px: f64,
    test_accuracy: Option<f64>,
    paper_error_px: Option<f64>,
    epochs: usize,
    best_epoch: usize,
    seconds: f64,
    report: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let epochs = args.epochs.unwrap_or(if args.full { 100 } else { 20 });
    check_args(&args, epochs)?;
    print_plan(&args, epochs);
    let mut runs = Vec::new();
    let started = Instant::now();
    for &labelled in &args.labelled {
        for costs in &args.costs {
            for seed in 0..args.seeds {
                let cfg = run_config(&args, epochs, costs, labelled, seed)?;
                runs.push(train_run(&args, cfg, labelled, seed)?);
            }
        }
    }
    print_table(&args, &runs)?;
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        write_json(path, &runs)?;
    }
    Ok(())
}

/// Refuses settings that cannot run: fractions outside (0, 1], no seed or epoch, and data
/// sizes past the library's limit.
fn check_args(args: &Args, epochs: usize) -> Result<()> {
    if args
        .labelled
        .iter()
        .any(|f| !(0.0..=1.0).contains(f) || *f == 0.0)
    {
        bail!(
            "--labelled takes fractions in (0, 1], got {:?}",
            args.labelled
        );
    }
    if args.seeds == 0 || epochs == 0 {
        bail!("--seeds and --epochs must be at least 1");
    }
    let limit = landmark_ssl::train::config::MAX_GENERATED_IMAGES;
    let images = args
        .eval_images
        .checked_mul(2)
        .and_then(|n| n.checked_add(args.train_images));
    if args.train_images == 0 || args.eval_images == 0 || images.is_none_or(|n| n > limit) {
        bail!(
            "--train-images and --eval-images must be at least 1 and at most {limit} in all (train + 2 x eval)"
        );
    }
    Ok(())
}

/// The first line: the data sizes and the schedule.
fn print_plan(args: &Args, epochs: usize) {
    println!(
        "Blocks: {} training, {} validation, {} test images; {} epochs{}.",
        args.train_images,
        args.eval_images,
        args.eval_images,
        epochs,
        if args.full {
            " (the paper-length schedule, early stopping after 15 epochs without improvement)"
        } else {
            " (a shorter schedule than the paper's, to finish in about 15 minutes on 2 cores; --full for the long one)"
        }
    );
}

/// The experiment of one run: the Blocks recipe with the flags' settings, the costs
/// `costs`, a fraction `labelled` of landmark labels and the seed `seed`.
fn run_config(
    args: &Args,
    epochs: usize,
    costs: &str,
    labelled: f64,
    seed: u64,
) -> Result<ExperimentConfig> {
    let mut cfg = ExperimentConfig::default();
    cfg.costs.set_from_label(costs)?;
    let costs = cfg.costs.label();
    cfg.name = format!(
        "seqmt-blocks {costs} {:.0}% labels seed {seed}",
        labelled * 100.0
    );
    cfg.seed = seed;
    cfg.device = args.device;
    cfg.data.kind = landmark_ssl::train::DataKind::Blocks;
    cfg.data.generated_sizes = [args.train_images, args.eval_images, args.eval_images];
    cfg.labels.landmark_fraction = labelled;
    cfg.labels.attribute_fraction = 1.0;
    cfg.schedule.epochs = epochs;
    cfg.schedule.patience = if args.full { 15 } else { 0 };
    cfg.output.progress = !args.quiet;
    cfg.output.dir = args.out.join(format!(
        "{}-{:.0}pct-seed{seed}",
        costs.replace('+', "_"),
        labelled * 100.0
    ));
    Ok(cfg)
}

/// Trains one run (after removing an earlier run in its folder unless `--resume`), prints
/// its labels and its result beside the paper's.
fn train_run(args: &Args, cfg: ExperimentConfig, labelled: f64, seed: u64) -> Result<Run> {
    let costs = cfg.costs.label();
    if !args.resume && cfg.output.dir.join("state.json").exists() {
        std::fs::remove_dir_all(&cfg.output.dir)
            .with_context(|| format!("removing the earlier run {}", cfg.output.dir.display()))?;
    }
    println!(
        "\n== Seq-MT ({costs}), {:.0}% landmark labels, seed {seed}",
        labelled * 100.0
    );
    let mut trainer = Trainer::new(cfg.clone())?;
    let s = &trainer.splits().labels;
    println!(
        "{} training images with landmark labels ({} per class), {} with class labels",
        s.with_landmarks,
        s.landmarks_per_class
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        s.with_attributes
    );
    let outcome = trainer.run()?;
    // The classifier is trained only with the A cost; without it its accuracy means
    // nothing and is not reported.
    let acc = if cfg.costs.attribute {
        outcome.test.accuracy.get("config").copied()
    } else {
        None
    };
    println!(
        "test error {:.2} px (paper {}), class accuracy {}, best epoch {}/{}, {:.0} s; report {}",
        outcome.test.mean_error,
        paper_error(&costs, labelled).map_or("-".to_string(), |p| format!("{p:.2}")),
        acc.map_or("-".to_string(), |a| format!("{:.1}%", a * 100.0)),
        outcome.best_epoch,
        outcome.epochs,
        outcome.seconds,
        outcome.report.display()
    );
    let warmup = cfg.costs.warmup_epochs;
    if (cfg.costs.attribute || cfg.costs.elt) && warmup > 0 && outcome.best_epoch <= warmup {
        println!(
            "note: the best validation epoch ({}) is in the landmark-only warm-up, so A and ELT did not improve on it in this run: see docs/experiments/elt-join.md",
            outcome.best_epoch
        );
    }
    Ok(Run {
        model: "seq-mt".into(),
        costs: costs.clone(),
        labelled,
        seed,
        test_error_px: outcome.test.mean_error,
        test_accuracy: acc,
        paper_error_px: paper_error(&costs, labelled),
        epochs: outcome.epochs,
        best_epoch: outcome.best_epoch,
        seconds: outcome.seconds,
        report: outcome.report,
    })
}

/// The summary table: each setting's mean test error over its seeds beside the paper's.
fn print_table(args: &Args, runs: &[Run]) -> Result<()> {
    println!("\nSeq-MT on Blocks, test error in pixels (mean over seeds):");
    println!("| costs | labelled | ours | paper | runs |");
    println!("|---|---|---|---|---|");
    for &labelled in &args.labelled {
        for costs in &args.costs {
            let mut c = ExperimentConfig::default().costs;
            c.set_from_label(costs)?;
            let label = c.label();
            let sel: Vec<&Run> = runs
                .iter()
                .filter(|r| r.costs == label && r.labelled == labelled)
                .collect();
            let mean = sel.iter().map(|r| r.test_error_px).sum::<f64>() / sel.len().max(1) as f64;
            println!(
                "| Seq-MT ({label}) | {:.0}% | {mean:.2} | {} | {} |",
                labelled * 100.0,
                paper_error(&label, labelled).map_or("-".to_string(), |p| format!("{p:.2}")),
                sel.len()
            );
        }
    }
    Ok(())
}

/// Writes every run to `path` as JSON (a temporary file, then renamed).
fn write_json(path: &Path, runs: &[Run]) -> Result<()> {
    let text = serde_json::to_string_pretty(&serde_json::json!({ "runs": runs }))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
