//! Landmarks for new images from a trained checkpoint.
//!
//! ```text
//! cargo run --release --example predict -- --checkpoint runs/blocks/L_ELT_A-5pct-seed0/best.safetensors \
//!     image1.png image2.jpg [--box x0,y0,x1,y1] [--crop-factor F] [--format json|csv] [--out overlays/]
//!     [--min-confidence C] [--device cpu|cuda:N] [--max-image-pixels N] [--max-image-side N]
//! ```
//!
//! Each image is read with the channels the model takes (grey for the paper's grey models,
//! RGB for a colour one: `in_channels` in the checkpoint's config); the object is cropped
//! from `--box` (in the image's pixels, e.g. `--box 10,5,90,75` or `--box -12,-4,80,70`;
//! without it the whole image is the crop) as training cropped it: a square of the box's longer side times the crop factor the
//! checkpoint records (`--crop-factor` overrides it), resized to the model's input and
//! normalised. The predicted landmarks are mapped back to the original image's pixels:
//! (x, y), x the column and y the row, 0-based, pixel centres at integers. JSON prints one
//! object per image (`{"image": .., "points": [[x, y], ...], "confidence": [..], "spread":
//! [[sx, sy], ...], "attributes": {..}}`, plus `"overlay"` with `--out`); CSV prints
//! `image,k,x,y,confidence,spread_x,spread_y`. Confidence is the peak probability of the
//! landmark's map, in (0, 1] (1: all mass on one pixel of the model's input); spread is the
//! standard deviation of that map's distribution along x and y, in the original image's
//! pixels; both are empty for models without maps (Comm-MT). `--out` writes overlays as PNG,
//! one per image, named after the image (`x.png`, then `x-2.png`, ... when two images share
//! a name), on the grey version of the image: points red, and orange rings where the
//! confidence is below `--min-confidence`.
//!
//! An image that cannot be read or predicted is reported on stderr and the others are still
//! processed; the exit status is 1 if any failed (or the checkpoint or arguments are bad).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use landmark_ssl::data::{Image, Limits};
use landmark_ssl::models::{Error, Prediction, Predictor, Region};
use landmark_ssl::train::{draw, DataConfig, DeviceChoice};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Csv,
}

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
    /// Negative coordinates are allowed: `--box -12,-4,80,70`.
    #[arg(long = "box", value_name = "X0,Y0,X1,Y1", allow_hyphen_values = true, value_parser = parse_box)]
    r#box: Option<Region>,
    /// The crop side as a factor of the box's longer side (default: the factor the
    /// checkpoint was trained with).
    #[arg(long, value_name = "F", allow_hyphen_values = true, value_parser = parse_crop_factor)]
    crop_factor: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Folder for overlay PNGs.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overlays draw points whose confidence is below this as orange rings.
    #[arg(long, value_name = "C", default_value_t = 0.0)]
    min_confidence: f32,
    /// Where the model runs: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// The largest image accepted, in pixels (width x height; default: the data crate's
    /// limit, 2^26). Raise it for larger photos; each pixel costs a few bytes per channel.
    #[arg(long, value_name = "N")]
    max_image_pixels: Option<u64>,
    /// The largest image side accepted, in pixels (default: the data crate's, 16384).
    #[arg(long, value_name = "N")]
    max_image_side: Option<u64>,
}

fn parse_box(s: &str) -> std::result::Result<Region, String> {
    s.parse::<Region>().map_err(|e| match e {
        // clap names the argument and the value already.
        Error::InvalidArgument { reason, .. } => {
            reason.trim_start_matches(&format!("`{s}`: ")).to_string()
        }
        other => other.to_string(),
    })
}

fn parse_crop_factor(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("`{s}` is not a finite positive number")),
    }
}

/// `dir/<stem>.png`, or `dir/<stem>-2.png`, `-3`, ... when an earlier image of this run
/// already took that name (compared case-insensitively, as some file systems do).
fn overlay_path(dir: &Path, image: &Path, used: &mut HashSet<String>) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "image".to_string());
    let mut name = format!("{stem}.png");
    let mut n = 2;
    while !used.insert(name.to_lowercase()) {
        name = format!("{stem}-{n}.png");
        n += 1;
    }
    dir.join(name)
}

/// Everything one image needs: read, predict, print, overlay.
struct Run {
    predictor: Predictor,
    region: Region,
    format: Format,
    out: Option<PathBuf>,
    min_confidence: f32,
    limits: Limits,
    used_names: HashSet<String>,
}

impl Run {
    /// Reads and predicts one image, and writes its overlay: the prediction and the
    /// overlay's path.
    fn image(&mut self, path: &Path) -> Result<(Prediction, Option<PathBuf>)> {
        // RGB for a colour model; grey otherwise (the predictor repeats a grey plane for a
        // model of another channel count).
        let channels = if self.predictor.in_channels() == 3 {
            3
        } else {
            1
        };
        // Within the limits: the header is checked before any pixel buffer is allocated.
        let img = Image::open_with_limits_channels(path, &self.limits, channels)
            .context("reading the image")?;
        let (h, w, channels) = (img.height, img.width, img.channels);
        // One f32 copy of the image (interleaved; for a grey image also the overlay's
        // background). An RGB image's bytes are kept only for its grey overlay.
        let pixels = img.to_f32();
        let rgb = (channels == 3 && self.out.is_some()).then_some(img);
        let p = self
            .predictor
            .predict_pixels_interleaved(&pixels, channels, h, w, self.region)
            .context("predicting")?;
        let overlay = match self.out.clone() {
            Some(dir) => {
                // Overlays are drawn on grey: an RGB image's luma, as the file decodes to grey.
                let grey = match rgb {
                    None => pixels,
                    Some(img) => {
                        drop(pixels);
                        img.to_channels(1).context("converting to grey")?.to_f32()
                    }
                };
                Some(self.write_overlay(&dir, path, &grey, h, w, &p)?)
            }
            None => None,
        };
        Ok((p, overlay))
    }

    fn print(
        &self,
        path: &Path,
        p: &Prediction,
        overlay: Option<PathBuf>,
        stdout: &mut impl Write,
    ) -> std::io::Result<()> {
        let image = path.to_string_lossy();
        match self.format {
            Format::Json => {
                let mut v = serde_json::json!({
                    "image": image,
                    "points": p.landmarks,
                    "confidence": p.confidence,
                    "spread": p.spread,
                    "attributes": p.attributes,
                });
                if let Some(o) = overlay {
                    v["overlay"] = serde_json::Value::from(o.to_string_lossy());
                }
                writeln!(stdout, "{v}")
            }
            Format::Csv => {
                for (k, q) in p.landmarks.iter().enumerate() {
                    let c = p.confidence.as_ref().map(|c| c[k].to_string());
                    let s = p.spread.as_ref().map(|s| s[k]);
                    writeln!(
                        stdout,
                        "{image},{k},{},{},{},{},{}",
                        q[0],
                        q[1],
                        c.unwrap_or_default(),
                        s.map(|s| s[0].to_string()).unwrap_or_default(),
                        s.map(|s| s[1].to_string()).unwrap_or_default(),
                    )?;
                }
                Ok(())
            }
        }
    }

    fn write_overlay(
        &mut self,
        dir: &Path,
        image: &Path,
        pixels: &[f32],
        h: usize,
        w: usize,
        p: &Prediction,
    ) -> Result<PathBuf> {
        let scale = (400 / w.max(h).max(1)).clamp(1, 8) as u32;
        let overlay = draw::overlay_with_confidence(
            pixels,
            h,
            w,
            &p.landmarks,
            p.confidence.as_deref(),
            self.min_confidence,
            scale,
        );
        let out = overlay_path(dir, image, &mut self.used_names);
        overlay
            .save(&out)
            .with_context(|| format!("writing the overlay {}", out.display()))?;
        Ok(out)
    }
}

fn run(args: Args) -> Result<usize> {
    let device = args.device.open()?;
    // The models crate's errors name the checkpoint file.
    let mut predictor = Predictor::from_checkpoint(&args.checkpoint, &device)?;
    let recorded = predictor.info().and_then(|i| i.meta.crop_factor);
    if matches!(args.r#box, Some(Region::Box(_))) {
        let factor = match (args.crop_factor, recorded) {
            (Some(f), _) | (None, Some(f)) => f,
            (None, None) => {
                let f = DataConfig::default().crop_factor;
                eprintln!(
                    "warning: {} does not record the crop factor it was trained with (written \
                     before checkpoints recorded it, or trained on whole images); using {f}, \
                     the training default; give --crop-factor to choose",
                    args.checkpoint.display()
                );
                f
            }
        };
        predictor = predictor.with_box_scale(factor);
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut limits = Limits::default();
    if let Some(n) = args.max_image_pixels {
        limits.max_image_pixels = n;
    }
    if let Some(n) = args.max_image_side {
        limits.max_image_width = n;
        limits.max_image_height = n;
    }
    let mut job = Run {
        predictor,
        region: args.r#box.unwrap_or(Region::Whole),
        format: args.format,
        out: args.out,
        min_confidence: args.min_confidence,
        limits,
        used_names: HashSet::new(),
    };
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    if job.format == Format::Csv {
        writeln!(stdout, "image,k,x,y,confidence,spread_x,spread_y")
            .context("writing to stdout")?;
    }
    let mut failed = 0;
    for path in &args.images {
        match job.image(path) {
            Ok((p, overlay)) => job
                .print(path, &p, overlay, &mut stdout)
                .context("writing to stdout")?,
            Err(e) => {
                eprintln!("error: {}: {}", path.display(), describe(&e));
                failed += 1;
            }
        }
    }
    stdout.flush().context("writing to stdout")?;
    Ok(failed)
}

/// An error and its causes on one line, each cause once: the data and model crates' errors
/// already include their sources' messages in their own.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version print to stdout and succeed; argument errors fail.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let n = args.images.len();
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("{failed} of {n} images failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}
