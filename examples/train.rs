//! Trains on any data set in a supported format, as an experiment file describes.
//!
//! ```text
//! cargo run --release --example train -- examples/experiments/blocks.toml
//! ```
//!
//! The experiment file (TOML) names the data (format and paths), the model preset, the
//! label fractions, the costs and their weights, the schedule and the output folder; every
//! field has a documented default (`landmark_ssl::train::ExperimentConfig`). Example files
//! for 300W, AFLW, MTFL and HGR1 layouts are in `examples/experiments/`. A run interrupted
//! (Ctrl-C, a crash) resumes from its last epoch when started again with the same file.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use landmark_ssl::train::{DeviceChoice, ExperimentConfig, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Train a landmark model from an experiment file (TOML)")]
struct Args {
    /// The experiment file.
    experiment: PathBuf,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Where to train (overrides the experiment's `device`): cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// Print the experiment with every default filled in, and exit.
    #[arg(long)]
    show: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut cfg = ExperimentConfig::from_toml_file(&args.experiment)?;
    if let Some(e) = args.epochs {
        cfg.schedule.epochs = e;
    }
    if let Some(d) = args.device {
        cfg.device = d;
    }
    if args.show {
        println!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let mut trainer = Trainer::new(cfg)?;
    let s = &trainer.splits();
    println!(
        "train {} images ({} with landmark labels, {} with attribute labels), valid {}, test {}",
        s.train.len(),
        s.labels.with_landmarks,
        s.labels.with_attributes,
        s.valid.len(),
        s.test.len()
    );
    if trainer.epochs_done() > 0 {
        println!("resuming after epoch {}", trainer.epochs_done());
    }
    let o = trainer.run()?;
    let (scale, unit) = if o.test.unit == "px" {
        (1.0, "px")
    } else {
        (100.0, "%")
    };
    println!(
        "test: mean error {:.3} {unit}, median {:.3} {unit}, failure rate {:.2}% at {}, AUC {:.4}",
        o.test.mean_error * scale,
        o.test.median_error * scale,
        o.test.failure_rate * 100.0,
        o.test.threshold * scale,
        o.test.auc
    );
    for (head, a) in &o.test.accuracy {
        println!("test accuracy `{head}`: {:.2}%", a * 100.0);
    }
    println!(
        "best epoch {} of {}; report {}",
        o.best_epoch,
        o.epochs,
        o.report.display()
    );
    Ok(())
}
