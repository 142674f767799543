//! What a run reports: the JSON-lines log of every epoch, and at the end a Markdown report
//! with the metrics table, prediction overlays (ground truth green, prediction red, a
//! yellow line between, as in the paper's figures) and the cumulative error curve.

use std::path::{Path, PathBuf};

use landmark_ssl_data::{self as data, Dataset, Preprocess};
use landmark_ssl_metrics as metrics;
use landmark_ssl_models::ModelConfig;

use crate::config::ExperimentConfig;
use crate::draw;
use crate::error::{Error, Result};
use crate::evaluation::Predictions;
use crate::io::{append_line, write_atomic};

pub use crate::evaluation::{
    evaluate, evaluate_with_subsets, AtThreshold, Evaluation, SubsetEvaluation,
};
pub use crate::records::{EpochRecord, GradNormStats, MapRangeStats};

/// Appends one epoch to `log.jsonl` in the output folder.
pub fn append_epoch(dir: &Path, record: &EpochRecord) -> Result<()> {
    let path = dir.join("log.jsonl");
    let line = serde_json::to_string(record).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    append_line(&path, &line)
}

/// Everything the final report needs.
pub struct ReportInput<'a> {
    /// The run folder the report, the curve and the overlays go to.
    pub out_dir: &'a Path,
    /// The experiment.
    pub cfg: &'a ExperimentConfig,
    /// The model config the experiment's model resolved to.
    pub model_cfg: &'a ModelConfig,
    /// How many training images kept which labels.
    pub labels: &'a data::LabelSummary,
    /// Every epoch's record.
    pub history: &'a [EpochRecord],
    /// The test split's evaluation with the best weights.
    pub test: &'a Evaluation,
    /// Images in the training split.
    pub train_images: usize,
    /// The epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
}

fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Writes `report.md`, `overlays/*.png`, `ced.png`, `ced.csv` and `evaluation.json` (the
/// test split's [`Evaluation`]); returns the report's path.
/// The overlays need the test predictions, which the caller passes through
/// [`write_overlays`]; this function draws the curve and the tables.
pub fn write_report(input: &ReportInput) -> Result<PathBuf> {
    let dir = input.out_dir;
    let t = input.test;
    let curve = metrics::ced_curve(&t.per_image, t.threshold, 101)?;
    let pts: Vec<(f64, f64)> = curve.iter().map(|c| (c.error, c.fraction)).collect();
    save_png(
        &draw::plot_curves(&[pts], t.threshold),
        &dir.join("ced.png"),
    )?;
    write_ced_csv(dir, t)?;
    let json = serde_json::to_vec_pretty(t).map_err(|source| Error::Json {
        path: dir.join("evaluation.json"),
        source,
    })?;
    write_atomic(&dir.join("evaluation.json"), &json)?;
    let mut md = String::new();
    let name = if input.cfg.name.is_empty() {
        "experiment"
    } else {
        &input.cfg.name
    };
    md.push_str(&format!("# {name}\n\n"));
    md.push_str(&format!(
        "Model `{}` ({}), costs {}, data `{}`; {} of {} training images with landmark labels, {} with attribute labels; seed {}.\n\n",
        input.cfg.model.preset,
        input.model_cfg.family(),
        input.cfg.costs.label(),
        input.cfg.data.kind,
        input.labels.with_landmarks,
        input.train_images,
        input.labels.with_attributes,
        input.cfg.seed,
    ));
    let unit = if t.unit == "px" {
        "px"
    } else {
        "% of the normaliser"
    };
    let scale = if t.unit == "px" { 1.0 } else { 100.0 };
    md.push_str(&format!(
        "## Test split ({} images, best epoch {})\n\n",
        t.images, input.best_epoch
    ));
    md.push_str("| metric | value |\n|---|---|\n");
    md.push_str(&format!(
        "| mean error ({unit}) | {:.3} |\n",
        t.mean_error * scale
    ));
    md.push_str(&format!(
        "| median error ({unit}) | {:.3} |\n",
        t.median_error * scale
    ));
    let at: Vec<AtThreshold> = if t.at_thresholds.is_empty() {
        vec![AtThreshold {
            threshold: t.threshold,
            failure_rate: t.failure_rate,
            auc: t.auc,
        }]
    } else {
        t.at_thresholds.clone()
    };
    let at_label = |threshold: f64| {
        if t.unit == "px" {
            format!("{} px", threshold)
        } else {
            format!("{}%", threshold * 100.0)
        }
    };
    for a in &at {
        md.push_str(&format!(
            "| failure rate at {} | {:.2}% |\n",
            at_label(a.threshold),
            a.failure_rate * 100.0
        ));
        md.push_str(&format!(
            "| AUC up to {} | {:.4} |\n",
            at_label(a.threshold),
            a.auc
        ));
    }
    for (head, a) in &t.accuracy {
        md.push_str(&format!("| accuracy `{head}` | {:.2}% |\n", a * 100.0));
    }
    if !t.subsets.is_empty() {
        md.push_str(&format!("\n| subset | images | mean error ({unit}) |"));
        for a in &at {
            md.push_str(&format!(
                " FR at {} | AUC to {} |",
                at_label(a.threshold),
                at_label(a.threshold)
            ));
        }
        md.push_str("\n|---|---|---|");
        md.push_str(&"---|---|".repeat(at.len()));
        md.push('\n');
        for (name, s) in &t.subsets {
            md.push_str(&format!(
                "| {name} | {} | {:.3} |",
                s.images,
                s.mean_error * scale
            ));
            for a in &s.at_thresholds {
                md.push_str(&format!(" {:.2}% | {:.4} |", a.failure_rate * 100.0, a.auc));
            }
            md.push('\n');
        }
    }
    let per_landmark = |v: &[f64]| {
        v.iter()
            .map(|e| format!("{:.3}", e * scale))
            .collect::<Vec<_>>()
            .join(", ")
    };
    md.push_str("\nPer landmark mean error: ");
    md.push_str(&per_landmark(&t.per_landmark));
    for (name, s) in &t.subsets {
        md.push_str(&format!(
            "\n\nPer landmark mean error, {name}: {}",
            per_landmark(&s.per_landmark)
        ));
    }
    md.push_str("\n\nEvery figure of this section, per image too: `evaluation.json`.");
    md.push_str("\n\n![cumulative error curve](ced.png)\n\nCumulative error curve: the fraction of test images (y) whose error is at most x (`ced.csv`: the curve up to the largest threshold, as numbers).\n\n");
    md.push_str("## Training\n\n| epoch | lr | total cost | valid error | img/s | s |\n|---|---|---|---|---|---|\n");
    for r in input.history {
        md.push_str(&format!(
            "| {}{} | {:.2e} | {:.4} | {:.4} | {:.1} | {:.1} |\n",
            r.epoch,
            if r.best { " *" } else { "" },
            r.lr,
            r.train.get("total").copied().unwrap_or(f64::NAN),
            r.valid_error * scale,
            r.images_per_sec,
            r.seconds
        ));
    }
    md.push_str(
        "\n(* = best validation error so far.) Every epoch's terms are in `log.jsonl`.\n\n",
    );
    md.push_str(
        "## Test predictions\n\nGround truth green, prediction red, a yellow line between.\n\n",
    );
    let overlays_dir = dir.join("overlays");
    let mut n = 0;
    for entry in std::fs::read_dir(&overlays_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "png") {
            n += 1;
        }
    }
    for i in 0..n {
        md.push_str(&format!("![test image {i}](overlays/test-{i:03}.png) "));
    }
    md.push('\n');
    let path = dir.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

/// Draws the first `count` test predictions as overlays `overlays/test-NNN.png`.
pub fn write_overlays(
    dir: &Path,
    ds: &Dataset,
    pre: &Preprocess,
    p: &Predictions,
    count: usize,
) -> Result<()> {
    let n = count.min(p.indices.len());
    if n == 0 {
        return Ok(());
    }
    let loader = data::BatchLoader::new(
        std::sync::Arc::new(ds.clone()),
        data::LoaderConfig::new(n, *pre, 0),
    )?;
    let prepared = loader.prepare_indices(&p.indices[..n], 0)?;
    for (i, s) in prepared.iter().enumerate() {
        let gt: Vec<[f32; 2]> = p.truth[i]
            .iter()
            .zip(&p.visible[i])
            .filter(|(_, v)| **v)
            .map(|(q, _)| [q[0] as f32, q[1] as f32])
            .collect();
        let pred: Vec<[f32; 2]> = p.landmarks[i]
            .iter()
            .zip(&p.visible[i])
            .filter(|(_, v)| **v)
            .map(|(q, _)| [q[0] as f32, q[1] as f32])
            .collect();
        let img = draw::overlay(
            &grey_plane(&s.image, s.channels),
            s.size,
            s.size,
            &gt,
            &pred,
            4,
        );
        save_png(&img, &dir.join("overlays").join(format!("test-{i:03}.png")))?;
    }
    Ok(())
}

/// The mean of a planar C x S x S crop's planes (the crop itself for C = 1), for drawing.
pub fn grey_plane(planar: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return planar.to_vec();
    }
    let n = planar.len() / channels;
    (0..n)
        .map(|i| (0..channels).map(|c| planar[c * n + i]).sum::<f32>() / channels as f32)
        .collect()
}

/// `ced.csv`: the cumulative error curve of the test split, 201 rows from 0 to the largest
/// reported threshold: `error_<unit>` (in the evaluation's unit), `fraction` (of the
/// test images with at most that error), then `fraction_<subset>` for each subset.
pub fn write_ced_csv(dir: &Path, t: &Evaluation) -> Result<()> {
    let top = t
        .at_thresholds
        .iter()
        .map(|a| a.threshold)
        .fold(t.threshold, f64::max);
    let mut curves = vec![metrics::ced_curve(&t.per_image, top, 201)?];
    let mut csv = format!("error_{},fraction", t.unit);
    for (name, s) in &t.subsets {
        curves.push(metrics::ced_curve(&s.per_image, top, 201)?);
        csv.push_str(&format!(",fraction_{name}"));
    }
    csv.push('\n');
    for (i, c) in curves[0].iter().enumerate() {
        csv.push_str(&format!("{}", c.error));
        for curve in &curves {
            csv.push_str(&format!(",{}", curve[i].fraction));
        }
        csv.push('\n');
    }
    write_atomic(&dir.join("ced.csv"), csv.as_bytes())
}
