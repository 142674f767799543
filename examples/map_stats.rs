//! The shape of a soft-argmax model's landmark maps, per landmark, on generated Blocks or
//! Shapes.
//!
//! ```text
//! cargo run --release --example map_stats -- runs/blocks/L_ELT_A-5pct-seed0/best.safetensors
//! cargo run --release --example map_stats -- --data shapes --show 2 runs/shapes/best.safetensors
//! ```
//!
//! For each checkpoint, on `--images` generated images (a fixed seed): the mean over
//! images of each map's largest and smallest value (the soft-argmax's logits at beta 1),
//! the probability of its peak pixel, the entropy of its softmax (nats; a uniform map over
//! 60x60 pixels has ln 3600 = 8.19), its spread (the variance of its softmax about its
//! point, px^2, `losses::map_spread`), and each landmark's mean distance to its labelled
//! point in pixels (Shapes: the triangle's and the square's centres; its network may put
//! either landmark on either shape). A map that is negative everywhere, or nearly uniform,
//! is one that the landmark cost can hardly move; logits in the hundreds or thousands make
//! the soft-argmax a hard argmax whose gradient is zero except where the peak jumps
//! (docs/experiments/elt-join.md).
//!
//! `--show N` draws each map of the first N images as text, one character per 2x2 pixels:
//! its softmax's mass against a uniform map's (`#` over 20 times, `+` over 5, `:` over 1.5,
//! `.` over 0.5), `o` where the image is brighter than its mean and the map has less, and
//! `@` at the landmark (docs/experiments/shapes.md reads Shapes' maps this way).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Tensor};
use clap::{Parser, ValueEnum};
use landmark_ssl::data::{self, BatchLoader, LoaderConfig, Preprocess};
use landmark_ssl::train::DeviceChoice;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Data {
    Blocks,
    Shapes,
}

#[derive(Parser, Debug)]
#[command(about = "Per-landmark statistics of a soft-argmax model's maps on Blocks or Shapes")]
struct Args {
    /// Checkpoints (`.safetensors` written by the trainer).
    #[arg(required = true)]
    checkpoints: Vec<PathBuf>,
    /// The generated data to measure on (60x60, as the models' presets).
    #[arg(long, value_enum, default_value_t = Data::Blocks)]
    data: Data,
    /// Images to measure on.
    #[arg(long, default_value_t = 256)]
    images: usize,
    /// Draw the maps of this many of the images as text.
    #[arg(long, default_value_t = 0)]
    show: usize,
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

/// One map as text: `p` its softmax (H, W), `image` the image's first channel (H, W),
/// `point` the landmark (x, y).
fn draw(p: &[Vec<f32>], image: &[Vec<f32>], point: [f32; 2]) -> Vec<String> {
    let (h, w) = (p.len(), p.first().map_or(0, Vec::len));
    let uniform = (h * w) as f32;
    let n = (h * w).max(1) as f32;
    let mean = image.iter().flatten().sum::<f32>() / n;
    let (px, py) = ((point[0] / 2.0).round(), (point[1] / 2.0).round());
    (0..h)
        .step_by(2)
        .map(|y| {
            (0..w)
                .step_by(2)
                .map(|x| {
                    let q = p[y][x] * uniform;
                    if (x / 2) as f32 == px && (y / 2) as f32 == py {
                        '@'
                    } else if q > 20.0 {
                        '#'
                    } else if q > 5.0 {
                        '+'
                    } else if q > 1.5 {
                        ':'
                    } else if q > 0.5 {
                        '.'
                    } else if image[y][x] > mean {
                        'o'
                    } else {
                        ' '
                    }
                })
                .collect()
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (1..=4096).contains(&args.images),
        "--images takes 1 to 4096"
    );
    let dev = args.device.open()?;
    let ds = match args.data {
        Data::Blocks => data::blocks::generate(args.images, 0x6d61_7073)?,
        Data::Shapes => data::shapes::generate(args.images, 0x6d61_7073)?,
    };
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
        let spread = landmark_ssl::losses::map_spread(&maps.to_dtype(DType::F64)?, 1.0)?;
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
        println!("  spread (px^2)  {}", fmt(&per_landmark(&spread)?));
        println!("  error (px)     {}", fmt(&per_landmark(&err)?));
        let points = out.landmarks.to_dtype(DType::F32)?.to_vec3::<f32>()?;
        let p = p.to_dtype(DType::F32)?.reshape((b, k, h, w))?;
        for (i, image_points) in points.iter().enumerate().take(args.show) {
            let image = batch.images.get(i)?.get(0)?.to_dtype(DType::F32)?;
            let image = image.to_vec2::<f32>()?;
            for (j, point) in image_points.iter().enumerate() {
                let point = [point[0], point[1]];
                println!(
                    "  image {i}, map {j}: landmark at ({:.1}, {:.1})",
                    point[0], point[1]
                );
                for line in draw(&p.get(i)?.get(j)?.to_vec2::<f32>()?, &image, point) {
                    println!("  |{line}|");
                }
            }
        }
    }
    Ok(())
}
