//! Landmarks for new images from a trained checkpoint.
//!
//! ```text
//! cargo run --release --example predict -- --checkpoint runs/blocks/L_ELT_A-5pct-seed0/best.safetensors \
//!     image1.png image2.jpg [--box x0,y0,x1,y1] [--format json|csv] [--out overlays/]
//! ```
//!
//! Each image is read as grey; the object is cropped from `--box` (in the image's pixels;
//! without it the whole image is the crop), resized to the model's input, normalised, and
//! the predicted landmarks are mapped back to the original image's pixels: (x, y), x the
//! column and y the row, 0-based, pixel centres at integers. JSON prints one object per
//! image (`{"image": .., "points": [[x, y], ...], "attributes": {..}}`); CSV prints
//! `image,k,x,y`. `--out` writes overlays (predictions in red) as PNG.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use landmark_ssl::data::GreyImage;
use landmark_ssl::models::{Predictor, Region};
use landmark_ssl::train::draw;

#[derive(Parser, Debug)]
#[command(about = "Predict landmarks with a landmark-ssl checkpoint")]
struct Args {
    /// A checkpoint written by training (e.g. best.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images (PNG or JPEG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Object box x0,y0,x1,y1 in image pixels, for every image (default: the whole image).
    #[arg(long, value_delimiter = ',', num_args = 4)]
    r#box: Option<Vec<f32>>,
    /// Output format: json or csv.
    #[arg(long, default_value = "json")]
    format: String,
    /// Folder for overlay PNGs.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.format != "json" && args.format != "csv" {
        bail!("--format must be json or csv, got `{}`", args.format);
    }
    let device = candle_core::Device::Cpu;
    let predictor = Predictor::from_checkpoint(&args.checkpoint, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let region = match &args.r#box {
        Some(b) => Region::Box([b[0], b[1], b[2], b[3]]),
        None => Region::Whole,
    };
    if args.format == "csv" {
        println!("image,k,x,y");
    }
    for path in &args.images {
        let img = GreyImage::open(path)?;
        let pixels = img.to_f32();
        let t = candle_core::Tensor::from_vec(pixels.clone(), (img.height, img.width), &device)?;
        let pred = predictor
            .predict(&[t], &[region])
            .with_context(|| format!("predicting {}", path.display()))?;
        let Some(p) = pred.into_iter().next() else {
            bail!("no prediction for {}", path.display());
        };
        if args.format == "json" {
            let v = serde_json::json!({
                "image": path,
                "points": p.landmarks,
                "attributes": p.attributes,
            });
            println!("{v}");
        } else {
            for (k, q) in p.landmarks.iter().enumerate() {
                println!("{},{k},{},{}", path.display(), q[0], q[1]);
            }
        }
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let scale = (400 / img.width.max(img.height).max(1)).clamp(1, 8) as u32;
            let overlay = draw::overlay(&pixels, img.height, img.width, &[], &p.landmarks, scale);
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let out = dir.join(format!("{name}.png"));
            overlay
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}
