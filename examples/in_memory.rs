//! A program's own data, in memory: train on it, reload the checkpoint, predict with
//! confidences.
//!
//! ```text
//! cargo run --release --example in_memory [-- --device cuda:0]
//! ```
//!
//! The images are made here (a bright disc on a dark 32x32 image; its centre is the one
//! landmark); a real program builds its `Sample`s from its own images and labels the same
//! way. 20% of the training images keep their landmark; ELT uses the others. About a
//! minute on a laptop CPU.

use anyhow::{Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use landmark_ssl::data::{Dataset, DatasetMeta, GreyImage, ImageSource, Layout, Sample};
use landmark_ssl::models::{
    ConvSpec, CoordScale, InputSize, ModelConfig, Predictor, Region, SeqMtConfig,
};
use landmark_ssl::train::checkpoint::best_path;
use landmark_ssl::train::{DataKind, DeviceChoice, ExperimentConfig, Splits, Trainer};

const SIDE: usize = 32;

#[derive(Parser)]
struct Args {
    /// Where to train and predict: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// `n` images of a disc at a random place, each with its centre as the landmark.
fn discs(n: usize, seed: u64) -> Result<Dataset> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (cx, cy) = (
            rng.random_range(6.0..26.0f32),
            rng.random_range(6.0..26.0f32),
        );
        let mut pixels = vec![30u8; SIDE * SIDE];
        for (i, p) in pixels.iter_mut().enumerate() {
            let (x, y) = ((i % SIDE) as f32, (i / SIDE) as f32);
            if (x - cx).powi(2) + (y - cy).powi(2) <= 9.0 {
                *p = 220;
            }
        }
        let image = ImageSource::Memory(GreyImage::new(SIDE, SIDE, pixels)?);
        samples.push(Sample::new(image, vec![[cx, cy]]));
    }
    let meta = DatasetMeta {
        name: "discs".into(),
        layout: Layout::Generic { n: 1, flip: None },
        classes: Default::default(),
        reals: Default::default(),
    };
    Ok(Dataset::new(samples, meta)?)
}

pub fn main() -> Result<()> {
    let args = Args::parse();
    let mut cfg = ExperimentConfig {
        device: args.device,
        ..Default::default()
    };
    cfg.data.kind = DataKind::InMemory;
    cfg.model.config = Some(ModelConfig::SeqMt(SeqMtConfig {
        in_channels: 1,
        input_size: InputSize::square(SIDE),
        num_landmarks: 1,
        beta: 1.0,
        convs: vec![
            ConvSpec::new(9, 8),
            ConvSpec::new(9, 8),
            ConvSpec::new(1, 1),
        ],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![],
    }));
    cfg.costs.set_from_label("L+ELT")?;
    cfg.costs.warmup_epochs = 1;
    cfg.labels.landmark_fraction = 0.2;
    cfg.schedule.epochs = 4;
    cfg.output.dir = "runs/in_memory".into();
    let run_dir = cfg.output.dir.clone();
    // A fresh run each time: an earlier run there (of this or an older recipe) would be
    // resumed or refused.
    if run_dir.join("state.json").exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing the earlier run {}", run_dir.display()))?;
    }

    let splits = Splits::new(discs(600, 1)?, discs(100, 2)?, discs(100, 3)?, &cfg)?;
    let mut trainer = Trainer::from_splits(cfg, splits)?;
    let outcome = trainer.run_with(|epoch| {
        println!(
            "epoch {}: valid error {:.2} px",
            epoch.epoch, epoch.valid_error
        );
        std::ops::ControlFlow::Continue(())
    })?;
    println!(
        "test error {:.2} px (best epoch {}), report {}",
        outcome.test.mean_error,
        outcome.best_epoch,
        outcome.report.display()
    );

    // Reload the best weights as any program would, and predict on a new image.
    let predictor = Predictor::from_checkpoint(best_path(&run_dir), &args.device.open()?)?;
    let new = discs(1, 99)?;
    let truth = new.samples[0].landmarks[0];
    let image = new.samples[0].load_image()?;
    let p = predictor.predict_pixels(&image.to_f32(), SIDE, SIDE, Region::Whole)?;
    let (conf, spread) = (
        p.confidence.unwrap_or_default(),
        p.spread.unwrap_or_default(),
    );
    println!(
        "new image: predicted ({:.1}, {:.1}), truth ({:.1}, {:.1}), confidence {:.3}, spread {:.2} x {:.2} px",
        p.landmarks[0][0], p.landmarks[0][1], truth[0], truth[1], conf[0], spread[0][0], spread[0][1]
    );
    Ok(())
}
