//! The shape of a soft-argmax model's landmark maps, per landmark, on generated Blocks.
//!
//! ```text
//! cargo run --release --example map_stats -- runs/blocks/L_ELT_A-5pct-seed0/best.safetensors
//! ```
//!
//! For each checkpoint, on `--images` validation-like Blocks images (a fixed seed): the mean
//! over images of each map's largest and smallest value (the soft-argmax's logits at beta
//! 1), the probability of its peak pixel and the entropy of its softmax (nats; a uniform map
//! over 60x60 pixels has ln 3600 = 8.19), and each landmark's mean error in pixels. A map
//! that is negative everywhere, or nearly uniform, is one that the landmark cost can hardly
//! move; logits in the hundreds or thousands make the soft-argmax a hard argmax whose
//! gradient is zero except where the peak jumps (docs/experiments/elt-join.md).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Tensor};
use clap::Parser;
use landmark_ssl::data::{self, BatchLoader, LoaderConfig, Preprocess};
use landmark_ssl::train::DeviceChoice;

#[derive(Parser, Debug)]
#[command(about = "Per-landmark statistics of a soft-argmax model's maps on Blocks")]
struct Args {
    /// Checkpoints (`.safetensors` written by the trainer).
    #[arg(required = true)]
    checkpoints: Vec<PathBuf>,
    /// Blocks images to measure on.
    #[arg(long, default_value_t = 256)]
    images: usize,
    /// Where to compute: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Per-landmark means over the batch of a (B, K) tensor.
fn per_landmark(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.mean(0)?.to_vec1::<f32>()?)
}

fn fmt(v: &[f32]) -> String {
    v.iter()
        .map(|x| format!("{x:9.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=4096).contains(&args.images),
        "--images takes 1 to 4096"
    );
    let dev = args.device.open()?;
    let ds = data::blocks::generate(args.images, 0x6d61_7073)?;
    let loader = BatchLoader::new(
        Arc::new(ds),
        LoaderConfig::new(args.images, Preprocess::whole(60), 0),
    )?;
    let idx: Vec<usize> = (0..args.images).collect();
    let batch = loader.batch(&idx, 0, &dev)?;
    for path in &args.checkpoints {
        let (model, _, _) = landmark_ssl::models::load_checkpoint(path, &dev)
            .with_context(|| format!("loading {}", path.display()))?;
        let out = model.forward(&batch.images)?;
        let maps = out
            .maps
            .clone()
            .context("the model returns no maps (not a soft-argmax model)")?;
        let (b, k, h, w) = maps.dims4()?;
        let flat = maps.to_dtype(DType::F64)?.reshape((b, k, h * w))?;
        let e = flat.broadcast_sub(&flat.max_keepdim(2)?)?.exp()?;
        let p = e.broadcast_div(&e.sum_keepdim(2)?)?;
        let entropy = (&p * p.clamp(1e-300, 1.0)?.log()?)?.sum(2)?.neg()?;
        let err = (out.landmarks.to_dtype(DType::F64)? - batch.landmarks.to_dtype(DType::F64)?)?
            .sqr()?
            .sum(2)?
            .sqrt()?;
        println!("{}", path.display());
        println!(
            "  landmark       {}",
            fmt(&(0..k).map(|i| i as f32).collect::<Vec<_>>())
        );
        println!("  max logit      {}", fmt(&per_landmark(&flat.max(2)?)?));
        println!("  min logit      {}", fmt(&per_landmark(&flat.min(2)?)?));
        println!("  peak prob      {}", fmt(&per_landmark(&p.max(2)?)?));
        println!("  entropy (nat)  {}", fmt(&per_landmark(&entropy)?));
        println!("  error (px)     {}", fmt(&per_landmark(&err)?));
    }
    Ok(())
}
