//! See what a loader or generator reads.
//!
//! ```text
//! cargo run --release --example inspect -- --format 300w <dir>
//! cargo run --release --example inspect -- --format mtfl MTFL/training.txt --json
//! cargo run --release --example inspect -- --format aflw aflw/data/aflw.sqlite --points19
//! cargo run --release --example inspect -- --format wflw \
//!     WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt \
//!     --images WFLW_images
//! cargo run --release --example inspect -- --format coco \
//!     annotations/person_keypoints_val2017.json --images val2017
//! cargo run --release --example inspect -- --format generic-csv list.csv --out overlays/
//! cargo run --release --example inspect -- --format blocks --count 20 --out overlays/
//! ```
//!
//! Prints a summary (images, points per image, boxes, attributes, skipped files and why) and
//! the first `--show` samples. `--json` prints instead one JSON object per sample:
//! `{"image": path, "points": [[x, y], ...], ...}`, points in the original image's pixels,
//! 0-based with pixel centres at integers (the loaders' documented convention; `.pts`
//! files are 1-based on disk and have 1 subtracted). `--out DIR` writes PNG overlays of the
//! crops the training pipeline sees (`--size`, `--rotate` to try the jitter), with numbered
//! landmarks (green: visible, red: outside the crop or not annotated).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use landmark_ssl::data::formats::generic::{load_csv, load_json, GenericOptions};
use landmark_ssl::data::formats::{aflw, coco, mtfl, pts, wflw};
use landmark_ssl::data::{
    blocks, prepare, shapes, Augment, Dataset, ImageSource, Jitter, LoadOptions, LoadReport,
    Preprocess,
};
use rand::SeedableRng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    #[value(name = "300w")]
    W300,
    Mtfl,
    Aflw,
    Wflw,
    Coco,
    GenericCsv,
    GenericJson,
    Blocks,
    Shapes,
}

#[derive(Parser, Debug)]
#[command(about = "Print (and draw) what a landmark data loader reads")]
struct Args {
    /// The format.
    #[arg(long, value_enum)]
    format: Format,
    /// Directory (300w), list file (mtfl, wflw, generic-*), JSON file (coco) or database
    /// (aflw). Not used by blocks / shapes.
    path: Option<PathBuf>,
    /// Images to generate (blocks, shapes).
    #[arg(long, default_value_t = 20)]
    count: usize,
    /// Seed of the generators and of the jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object per sample instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write PNG overlays of the crops here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Crop side in pixels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Rotation jitter (degrees) for the overlays (0: no jitter).
    #[arg(long, default_value_t = 0.0)]
    rotate: f32,
    /// Samples listed in the summary and drawn with --out.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Fail on the first bad sample instead of skipping and reporting.
    #[arg(long)]
    strict: bool,
    /// Generic formats: coordinates are 1-based.
    #[arg(long)]
    one_based: bool,
    /// AFLW: the 19-point protocol.
    #[arg(long)]
    points19: bool,
    /// WFLW, COCO: the directory image paths are relative to (default: the annotation
    /// file's directory).
    #[arg(long)]
    images: Option<PathBuf>,
    /// COCO: the category to read, by name or id (default: the only one with keypoints).
    #[arg(long)]
    category: Option<String>,
    /// COCO: keep annotations without a labelled keypoint.
    #[arg(long)]
    keep_unlabelled: bool,
}

fn load(args: &Args) -> Result<(Dataset, LoadReport, f64)> {
    let opts = LoadOptions {
        skip_bad: !args.strict,
        check_images: true,
        ..LoadOptions::default()
    };
    let path = || -> Result<&Path> {
        args.path
            .as_deref()
            .context("this format needs a path (see --help)")
    };
    let gopts = GenericOptions {
        one_based: args.one_based,
        layout: None,
    };
    let t = Instant::now();
    let (d, r) = match args.format {
        Format::W300 => pts::load_dir(path()?, &opts)?,
        Format::Mtfl => mtfl::load(path()?, &opts)?,
        Format::Aflw => aflw::load(
            path()?,
            &opts,
            &aflw::AflwOptions {
                points19: args.points19,
                ..Default::default()
            },
        )?,
        Format::Wflw => wflw::load(path()?, args.images.as_deref(), &opts)?,
        Format::Coco => coco::load(
            path()?,
            &opts,
            &coco::CocoOptions {
                category: args.category.clone(),
                image_root: args.images.clone(),
                keep_unlabelled: args.keep_unlabelled,
            },
        )?,
        Format::GenericCsv => load_csv(path()?, &opts, &gopts)?,
        Format::GenericJson => load_json(path()?, &opts, &gopts)?,
        Format::Blocks => (
            blocks::generate(args.count, args.seed)?,
            LoadReport::default(),
        ),
        Format::Shapes => (
            shapes::generate(args.count, args.seed)?,
            LoadReport::default(),
        ),
    };
    Ok((d, r, t.elapsed().as_secs_f64()))
}

fn image_name(d: &Dataset, i: usize) -> String {
    match &d.samples[i].image {
        ImageSource::File(p) => p.display().to_string(),
        ImageSource::Memory(_) => format!("<{} #{i}>", d.meta.name),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (d, report, secs) = load(&args)?;
    if args.json {
        for (i, s) in d.samples.iter().enumerate() {
            let mut o = serde_json::json!({
                "image": image_name(&d, i),
                "points": s.original_landmarks().iter().map(|p| [short(p[0]), short(p[1])]).collect::<Vec<_>>(),
            });
            if s.visible.iter().any(|v| !v) {
                o["visible"] = serde_json::json!(s.visible);
            }
            if let Some(b) = s.bbox {
                o["box"] = serde_json::json!(b);
            }
            if !s.classes.is_empty() {
                o["classes"] = serde_json::json!(s.classes);
            }
            if !s.reals.is_empty() {
                o["reals"] = serde_json::json!(s.reals);
            }
            if let Some(id) = &s.subject {
                o["subject"] = serde_json::json!(id);
            }
            println!("{o}");
        }
        for s in &report.skipped {
            eprintln!("skipped {}: {}", s.path.display(), s.error);
        }
    } else {
        let k = d.meta.num_landmarks();
        println!("data set: {}", d.meta.name);
        println!(
            "images: {} ({} entries read in {secs:.3} s), layout {} ({k} points per image, flippable: {})",
            d.len(),
            report.entries.max(d.len()),
            d.meta.layout.name(),
            d.meta.layout.flip_permutation().is_some()
        );
        let boxes = d.samples.iter().filter(|s| s.bbox.is_some()).count();
        let visible: usize = d
            .samples
            .iter()
            .map(|s| s.visible.iter().filter(|&&v| v).count())
            .sum();
        println!(
            "boxes: {boxes}; visible points: {visible} of {}",
            d.len() * k
        );
        for (name, n) in &d.meta.classes {
            println!(
                "class attribute `{name}` ({n} classes): counts {}",
                class_counts(&d.class_counts(name))
            );
        }
        for (name, a) in &d.meta.reals {
            let n = d
                .samples
                .iter()
                .filter(|s| s.reals.contains_key(name))
                .count();
            println!("real attribute `{name}` ({a} values): on {n} samples");
        }
        let subjects: std::collections::BTreeSet<_> = d
            .samples
            .iter()
            .filter_map(|s| s.subject.as_ref())
            .collect();
        if !subjects.is_empty() {
            println!("subjects: {}", subjects.len());
        }
        if report.filtered > 0 {
            println!(
                "left out on purpose: {} (e.g. COCO crowd or unlabelled annotations)",
                report.filtered
            );
        }
        println!("skipped: {}", report.skipped.len());
        for s in &report.skipped {
            println!("  {}: {}", s.path.display(), s.error);
        }
        for (i, s) in d.samples.iter().enumerate().take(args.show) {
            let size = s
                .image_size
                .map(|(w, h)| format!("{w}x{h}"))
                .unwrap_or_else(|| "?".into());
            let first: Vec<String> = s
                .landmarks
                .iter()
                .take(3)
                .map(|p| format!("({:.1}, {:.1})", p[0], p[1]))
                .collect();
            println!(
                "  #{i} {} [{size}] {} points, first {}{}{}",
                image_name(&d, i),
                s.landmarks.len(),
                first.join(" "),
                s.bbox
                    .map(|b| format!(", box [{:.1} {:.1} {:.1} {:.1}]", b[0], b[1], b[2], b[3]))
                    .unwrap_or_default(),
                if s.classes.is_empty() {
                    String::new()
                } else {
                    format!(", classes {:?}", s.classes)
                },
            );
        }
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let generated = matches!(args.format, Format::Blocks | Format::Shapes);
        let pre = Preprocess {
            normalize: false,
            ..if generated {
                Preprocess::whole(args.size)
            } else {
                Preprocess::object(args.size)
            }
        };
        let aug = Augment::paper(args.rotate);
        let can_flip = d.meta.layout.flip_permutation().is_some();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
        let mut written = 0;
        for i in 0..d.len().min(args.show) {
            let j = if args.rotate > 0.0 {
                Jitter::draw(&aug, can_flip, &mut rng)
            } else {
                Jitter::none()
            };
            let p = match prepare(&d.samples[i], i, &d.meta, &pre, &j, None) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("#{i}: {e}");
                    continue;
                }
            };
            let grey = landmark_ssl::train::report::grey_plane(&p.image, p.channels);
            let img = overlay(&grey, p.size, &p.landmarks, &p.visible);
            let file = out.join(format!("{i:05}.png"));
            let tmp = out.join(format!(".{i:05}.png.tmp"));
            img.save_with_format(&tmp, image::ImageFormat::Png)?;
            std::fs::rename(&tmp, &file)?;
            written += 1;
        }
        if written == 0 && !d.is_empty() {
            bail!("no overlay could be written");
        }
        eprintln!("wrote {written} overlays to {}", out.display());
    }
    Ok(())
}

/// Per-class counts for the summary: all of them for up to 64 classes, else the first 32
/// non-empty classes as `class: count` (the loaders bound class counts, but a summary line
/// should stay a line).
fn class_counts(counts: &[usize]) -> String {
    const ALL: usize = 64;
    const SHOWN: usize = 32;
    if counts.len() <= ALL {
        return format!("{counts:?}");
    }
    let used: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(k, c)| format!("{k}: {c}"))
        .collect();
    let more = used.len().saturating_sub(SHOWN);
    format!(
        "{{{}{}}} ({} classes empty)",
        used[..used.len().min(SHOWN)].join(", "),
        if more > 0 {
            format!(", ... {more} more")
        } else {
            String::new()
        },
        counts.len() - used.len()
    )
}

/// An f32 as the f64 with the same shortest decimal form (so JSON shows `158.744`, not
/// `158.74400329589844`).
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// 3x5 digits, one row per u8 (3 low bits, left = bit 2).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// The crop (values in [0, 1]) scaled x4 in RGB, each landmark a cross and its index.
fn overlay(pixels: &[f32], s: usize, pts: &[[f32; 2]], visible: &[bool]) -> image::RgbImage {
    const Z: usize = 4;
    let n = (s * Z) as u32;
    let mut img = image::RgbImage::from_fn(n, n, |x, y| {
        let v = pixels[(y as usize / Z) * s + x as usize / Z];
        let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        image::Rgb([g, g, g])
    });
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && x < n as i64 && y < n as i64 {
            img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    };
    for (k, (p, &v)) in pts.iter().zip(visible).enumerate() {
        let col = if v { [0, 230, 0] } else { [230, 0, 0] };
        // Pixel centre x maps to Z x + (Z - 1) / 2 in the zoomed image.
        let cx = (p[0] as f64 * Z as f64 + (Z as f64 - 1.0) / 2.0).round() as i64;
        let cy = (p[1] as f64 * Z as f64 + (Z as f64 - 1.0) / 2.0).round() as i64;
        for d in -3..=3 {
            put(cx + d, cy, col);
            put(cx, cy + d, col);
        }
        let label = k.to_string();
        for (ci, ch) in label.bytes().enumerate() {
            let glyph = DIGITS[(ch - b'0') as usize];
            for (r, bits) in glyph.iter().enumerate() {
                for b in 0..3 {
                    if bits >> (2 - b) & 1 == 1 {
                        let x = cx + 4 + (ci as i64) * 4 + b;
                        let y = cy + 2 + r as i64;
                        put(x, y, [255, 220, 0]);
                    }
                }
            }
        }
    }
    img
}
