//! What each cost does to the network at the join of a semi-supervised run.
//!
//! ```text
//! cargo run --release --example elt_diagnostics -- examples/experiments/blocks.toml --seed 4
//! ```
//!
//! Trains (or resumes) the experiment's warm-up alone (`warmup_epochs` epochs of the
//! landmark cost; `schedule.epochs` is set to that) in its `output.dir`, then, on `--batches` mixed batches of the join epoch,
//! measures with the warm-up's best weights (with a weight average, the best average: the
//! weights the run keeps, close to but not those the optimiser continues from):
//! - the gradient norm that each weighted term (lambda L, each A head, alpha ELT) sends
//!   into the map network (`convs.*`) and into the predicted points;
//! - the distribution of ELT's per-term distances `||T(L(I)) - L(T(I))||` (pixels), for
//!   the three ELT inputs below, split by whether the warp cut the figure (lost more than
//!   2% of its bright pixels);
//! - where the points sit: the mean distance between the K points of an image, and of each
//!   point to the image's centre of brightness.
//!
//! ELT inputs compared: `zero` (warp the normalised image, fill with 0), `black` (fill with
//! the image's own black, normalise the warped image again: what the trainer does), and
//! `black` with the ranges of `--rotation/--scale/--shift`. The face-sized ranges and the
//! squared penalty are `EltConfig::default()`, whatever the experiment's ELT.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Tensor, Var};
use clap::Parser;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use landmark_ssl::data::{BatchLoader, LoaderConfig, Preprocess};
use landmark_ssl::losses::{self, Elt, EltConfig, EltImages};
use landmark_ssl::train::{step_terms, DeviceChoice, ExperimentConfig, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Per-term gradient norms and ELT errors at the join of a run")]
struct Args {
    /// The experiment (TOML).
    experiment: PathBuf,
    /// Override the experiment's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Batches measured.
    #[arg(long, default_value_t = 40)]
    batches: usize,
    /// Alternative ELT ranges: rotation (degrees), scale (+-), shift (fraction of the side).
    #[arg(long, default_value_t = 10.0)]
    rotation: f64,
    #[arg(long, default_value_t = 0.05)]
    scale: f64,
    #[arg(long, default_value_t = 0.05)]
    shift: f64,
    /// Huber delta (pixels) of the robust variant.
    #[arg(long, default_value_t = 3.0)]
    huber: f64,
    /// Where to compute: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Quantiles of a sample (sorted in place).
fn quantiles(v: &mut [f64], qs: &[f64]) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    qs.iter()
        .map(|q| {
            if v.is_empty() {
                f64::NAN
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize]
            }
        })
        .collect()
}

fn norm_of(grads: &candle_core::backprop::GradStore, ts: &[&Tensor]) -> Result<f64> {
    let mut s = 0.0;
    for t in ts {
        if let Some(g) = grads.get(t) {
            s += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(s.sqrt())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut cfg = ExperimentConfig::from_toml_file(&args.experiment)?;
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    cfg.device = args.device;
    let join = cfg.costs.join_epoch();
    anyhow::ensure!(
        join > 0,
        "the experiment has no warm-up (costs.warmup_epochs)"
    );
    cfg.schedule.epochs = join;
    let mut trainer = Trainer::new(cfg.clone())?;
    let outcome = trainer.run()?;
    println!(
        "warm-up of seed {}: best epoch {} of {}, test {:.3} {}",
        cfg.seed, outcome.best_epoch, join, outcome.test.mean_error, outcome.test.unit
    );

    let model = trainer.model();
    let vars: Vec<(String, Var)> = trainer
        .varmap()
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("variable map poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let trunk: Vec<&Tensor> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("convs"))
        .map(|(_, v)| v.as_tensor())
        .collect();

    let train = trainer.splits().train.clone();
    let size = model.config().input_size().0;
    let loader = BatchLoader::new(
        Arc::clone(&train),
        LoaderConfig::new(cfg.schedule.batch_size, Preprocess::whole(size), cfg.seed),
    )?;
    let labelled: Vec<usize> = (0..train.len())
        .filter(|&i| train.samples[i].has_landmarks)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xd1a6);
    let costs = cfg.costs.active(join);
    // The comparison does not depend on the experiment's ELT: face-sized ranges with the
    // paper's squared penalty, the ranges of the flags, then those with a Huber penalty.
    let elt_default = Elt::new(EltConfig::default())?;
    let elt_small = Elt::new(EltConfig {
        max_rotation_deg: args.rotation,
        min_scale: 1.0 - args.scale,
        max_scale: 1.0 + args.scale,
        max_translation: args.shift,
        ..EltConfig::default()
    })?;
    let elt_huber = Elt::new(EltConfig {
        penalty: losses::EltPenalty::Huber { delta: args.huber },
        ..elt_small.config.clone()
    })?;
    let device = args.device.open()?;
    // Per term: its gradient norms into the map network, one per batch.
    let mut grad_rows: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    // Per ELT variant: (distances on uncut warps, on cut warps).
    let names = [
        "zero fill",
        "black fill + renormalise",
        "black, small ranges",
    ];
    let mut dists: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); 3];
    let (mut spread, mut to_centre) = (Vec::new(), Vec::new());
    for b in 0..args.batches {
        let mut idx: Vec<usize> = labelled
            .choose_multiple(&mut rng, cfg.schedule.labelled_per_batch)
            .copied()
            .collect();
        // The pool's part of a step, as the trainer draws it beside the labelled part.
        idx.extend((0..cfg.schedule.batch_size).map(|_| rng.random_range(0..train.len())));
        let batch = loader.batch(&idx, join as u64, &device)?;
        let out = model.forward_t(&batch.images, true)?;
        let mut erng = ChaCha8Rng::seed_from_u64(b as u64);
        let st = step_terms(model, &out, &batch, &costs, Some(&elt_default), &mut erng)?;
        let mut weighted: Vec<(String, Tensor)> = Vec::new();
        if let Some(l) = &st.terms.landmark {
            weighted.push(("lambda L".into(), l.affine(cfg.costs.lambda, 0.0)?));
        }
        for (h, t) in &st.terms.attributes {
            let w = cfg.costs.attribute_weights.get(h).copied().unwrap_or(1.0);
            weighted.push((format!("A {h}"), t.affine(w, 0.0)?));
        }
        if let Some(e) = &st.terms.elt {
            weighted.push((
                "alpha ELT, black fill, face ranges".into(),
                e.affine(cfg.costs.alpha, 0.0)?,
            ));
        }
        {
            let locate = |x: &Tensor| {
                model
                    .forward_t(x, true)
                    .map(|o| o.landmarks)
                    .map_err(candle_core::Error::wrap)
            };
            let black = EltImages {
                images: &batch.images,
                pad_values: Some(&batch.pad_values),
                renormalize: batch.normalized,
            };
            let mask = (1.0 - &batch.has_landmarks)?;
            let mut r2 = ChaCha8Rng::seed_from_u64(b as u64);
            let e2 = elt_small.loss(locate, black, &out.landmarks, &mask, &mut r2)?;
            weighted.push((
                "alpha ELT, black, small ranges".into(),
                e2.loss.affine(cfg.costs.alpha, 0.0)?,
            ));
            let mut r3 = ChaCha8Rng::seed_from_u64(b as u64);
            let e3 = elt_huber.loss(locate, black, &out.landmarks, &mask, &mut r3)?;
            weighted.push((
                format!("alpha ELT, black, small, Huber {}", args.huber),
                e3.loss.affine(cfg.costs.alpha, 0.0)?,
            ));
        }
        for (name, t) in &weighted {
            let g = t.backward()?;
            grad_rows
                .entry(name.clone())
                .or_default()
                .push(norm_of(&g, &trunk)?);
        }
        // ELT distances for the three inputs, on the same transforms.
        let mask = (1.0 - &batch.has_landmarks)?;
        let transforms = st
            .elt
            .as_ref()
            .map(|e| e.transforms.clone())
            .unwrap_or_default();
        let n_sel = transforms.len();
        let mut srng = ChaCha8Rng::seed_from_u64(1000 + b as u64);
        let small = elt_small.sample_transforms(n_sel, size, size, &mut srng);
        let locate = |x: &Tensor| {
            model
                .forward_t(x, true)
                .map(|o| o.landmarks)
                .map_err(candle_core::Error::wrap)
        };
        let black = EltImages {
            images: &batch.images,
            pad_values: Some(&batch.pad_values),
            renormalize: batch.normalized,
        };
        let outs = [
            elt_default.loss_with(locate, &batch.images, &out.landmarks, &mask, &transforms)?,
            elt_default.loss_with(locate, black, &out.landmarks, &mask, &transforms)?,
            elt_small.loss_with(locate, black, &out.landmarks, &mask, &small)?,
        ];
        // Bright pixels of each selected image, before and after its warps.
        let k = out.landmarks.dim(1)?;
        // Blocks is grey: one pad value per image (the first channel's otherwise).
        let pads = batch
            .pad_values
            .narrow(1, 0, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (v, e) in outs.iter().enumerate() {
            let idx_t = Tensor::from_vec(
                e.sample_indices
                    .iter()
                    .map(|&i| i as u32)
                    .collect::<Vec<_>>(),
                e.sample_indices.len(),
                &device,
            )?;
            let imgs = batch.images.index_select(&idx_t, 0)?;
            let p = batch.pad_values.index_select(&idx_t, 0)?.reshape((
                e.sample_indices.len(),
                batch.channels(),
                1,
                1,
            ))?;
            let mats = landmark_ssl::ops::affine_to_tensor(&e.transforms, &device)?;
            let warped =
                landmark_ssl::ops::warp_images(&imgs.broadcast_sub(&p)?, &mats, size, size)?;
            let src = imgs.broadcast_sub(&p)?.flatten_from(1)?;
            let bright = |x: &Tensor| -> Result<Vec<f32>> {
                Ok(x.flatten_from(1)?.relu()?.sum(1)?.to_vec1::<f32>()?)
            };
            let before = bright(&src)?;
            let after = bright(&warped)?;
            for (m, t) in e.transforms.iter().enumerate() {
                let area = t.m[0] * t.m[4] - t.m[1] * t.m[3]; // the warp scales areas by det
                let lost = 1.0 - after[m] as f64 / (before[m] as f64 * area.abs()).max(1.0);
                let cut = lost > 0.02;
                for kk in 0..k {
                    let d2 = e.sq_distances[m * k + kk];
                    if d2.is_finite() {
                        let d = (d2 as f64).sqrt();
                        if cut {
                            dists[v].1.push(d)
                        } else {
                            dists[v].0.push(d)
                        }
                    }
                }
            }
        }
        // Where the points sit.
        let pts = out.landmarks.to_dtype(DType::F64)?.to_vec3::<f64>()?;
        let imgs = batch
            .images
            .to_dtype(DType::F64)?
            .flatten_from(1)?
            .to_vec2::<f64>()?;
        for (i, p) in pts.iter().enumerate() {
            let mut s = 0.0;
            let mut n = 0.0;
            for a in 0..k {
                for c in a + 1..k {
                    s += ((p[a][0] - p[c][0]).powi(2) + (p[a][1] - p[c][1]).powi(2)).sqrt();
                    n += 1.0;
                }
            }
            spread.push(s / n);
            let (mut cx, mut cy, mut w) = (0.0, 0.0, 0.0);
            for (j, &v) in imgs[i].iter().enumerate() {
                let v = (v - pads[i] as f64).max(0.0);
                cx += v * (j % size) as f64;
                cy += v * (j / size) as f64;
                w += v;
            }
            let (cx, cy) = (cx / w, cy / w);
            for q in p {
                to_centre.push(((q[0] - cx).powi(2) + (q[1] - cy).powi(2)).sqrt());
            }
        }
    }
    let qs = [0.1, 0.5, 0.9, 0.99, 1.0];
    println!(
        "\ngradient norms over {} batches (median, 90th percentile):",
        args.batches
    );
    println!("| term | into convs.* |\n|---|---|");
    for (name, t) in grad_rows.iter_mut() {
        let a = quantiles(t, &[0.5, 0.9]);
        println!("| {name} | {:.3e} / {:.3e} |", a[0], a[1]);
    }
    println!("\nELT distances, pixels (p10 / p50 / p90 / p99 / max; share over 5 px):");
    println!("| input | warps | terms | distances | > 5 px |\n|---|---|---|---|---|");
    for (v, (uncut, cut)) in dists.iter_mut().enumerate() {
        for (label, d) in [("uncut", uncut), ("cut", cut)] {
            let over = d.iter().filter(|&&x| x > 5.0).count() as f64 / d.len().max(1) as f64;
            let q = quantiles(d, &qs);
            println!(
                "| {} | {label} | {} | {:.2} / {:.2} / {:.2} / {:.2} / {:.2} | {:.1}% |",
                names[v],
                d.len(),
                q[0],
                q[1],
                q[2],
                q[3],
                q[4],
                100.0 * over
            );
        }
    }
    let s = quantiles(&mut spread, &[0.1, 0.5, 0.9]);
    let c = quantiles(&mut to_centre, &[0.1, 0.5, 0.9]);
    println!(
        "\nmean distance between an image's points: {:.2} / {:.2} / {:.2} px (p10/p50/p90)",
        s[0], s[1], s[2]
    );
    println!(
        "distance of a point to its image's centre of brightness: {:.2} / {:.2} / {:.2} px",
        c[0], c[1], c[2]
    );
    Ok(())
}
