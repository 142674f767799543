//! Training and inference throughput of any preset of the model zoo on random data. For the
//! Seq-MT presets it is the same work as `../shared/reference/torch_reference.py <preset>`,
//! for `rcnplus-300w` that of `benches/reference/torch_rcnplus.py`: one Adam step (lr 1e-3)
//! on a batch of random images, with the trainer's own objective for the costs L+A
//! (`landmark_ssl::train::step_terms`: the landmark distance, or the per-pixel cross-entropy
//! for softmax models, plus the cross-entropy of every class head and L1 for real-valued
//! heads), every image labelled.
//!
//! ```text
//! cargo run --release --example throughput -- --preset seqmt-blocks --batch 32 --steps 5 [--device cuda:0]
//! ```
//!
//! Prints `first_loss=L` (the warm-up step's objective: the same on every device, up to
//! float rounding, for the same seed), then `params=N`, `train_images_per_sec=X` and
//! `infer_images_per_sec=Y` last (medians over `--steps` steps, after one warm-up step).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use landmark_ssl::data::{Affine2, Batch};
use landmark_ssl::models::{preset, HeadKind, LandmarkModel};
use landmark_ssl::train::{
    objective_weights, step_terms, Adam, AdamConfig, DeviceChoice, ExperimentConfig,
};
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Seq-MT training / inference throughput on random data")]
struct Args {
    /// Model preset (`seqmt-blocks`, `seqmt-multipie`, or any other soft-argmax preset).
    #[arg(long, default_value = "seqmt-blocks")]
    preset: String,
    /// Images per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Seed of the random data and weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// The most timed steps (each keeps its time).
const MAX_STEPS: usize = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let max_batch = landmark_ssl::train::config::MAX_BATCH_SIZE;
    if args.batch == 0 || args.batch > max_batch {
        bail!(
            "--batch {} is not in [1, {max_batch}] (the largest batch the trainer accepts)",
            args.batch
        );
    }
    if args.steps == 0 || args.steps > MAX_STEPS {
        bail!("--steps {} is not in [1, {MAX_STEPS}]", args.steps);
    }
    let dev = args.device.open()?;
    let cfg = preset(&args.preset).with_context(|| format!("preset {}", args.preset))?;
    let vm = VarMap::new();
    let model = LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    // The same initial weights on every device.
    landmark_ssl::train::trainer::reinit_seeded(&vm, args.seed)?;
    let params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let (b, k) = (args.batch, cfg.num_landmarks());
    let (h, w) = cfg.input_size();
    let images: Vec<f32> = (0..b * h * w).map(|_| rng.random::<f32>()).collect();
    let images = Tensor::from_vec(images, (b, 1, h, w), &dev)?;
    let gt: Vec<f32> = (0..b * k * 2)
        .map(|_| rng.random::<f32>() * (h.min(w) as f32 - 1.0))
        .collect();
    let gt = Tensor::from_vec(gt, (b, k, 2), &dev)?;
    let ones_bk = Tensor::ones((b, k), DType::F32, &dev)?;
    let ones_b = Tensor::ones(b, DType::F32, &dev)?;
    // Class heads get random labels (cross-entropy), real heads random targets (L1).
    let mut classes = BTreeMap::new();
    let mut reals = BTreeMap::new();
    for head in cfg.heads() {
        match head.kind {
            HeadKind::Class { n } => {
                let l: Vec<u32> = (0..b).map(|_| rng.random_range(0..n as u32)).collect();
                classes.insert(
                    head.name.clone(),
                    (Tensor::from_vec(l, b, &dev)?, ones_b.clone()),
                );
            }
            HeadKind::Real { n } => {
                let v: Vec<f32> = (0..b * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                reals.insert(
                    head.name.clone(),
                    (Tensor::from_vec(v, (b, n), &dev)?, ones_b.clone()),
                );
            }
        }
    }
    let batch = Batch {
        images,
        pad_values: Tensor::zeros((b, 1), DType::F32, &dev)?,
        normalized: false,
        landmarks: gt,
        landmark_mask: ones_bk.clone(),
        visible: ones_bk,
        has_landmarks: ones_b,
        classes,
        reals,
        indices: (0..b).collect(),
        transforms: vec![Affine2::identity(); b],
    };
    let mut exp = ExperimentConfig::default();
    exp.costs.set_from_label("L+A")?;
    let costs = exp.costs.active(exp.costs.join_epoch());
    let weights = objective_weights(&costs, &cfg)?;
    let vars = vm
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("the VarMap's lock is poisoned"))?
        .clone();
    let mut adam = Adam::new(&vars, AdamConfig::default())?;
    println!(
        "preset={} batch={b} steps={} device={} threads={} conv_kernel={}",
        args.preset,
        args.steps,
        args.device,
        rayon_threads(),
        landmark_ssl::ops::conv::cpu_kernel()
    );

    let mut no_rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut step = || -> Result<(f64, f64)> {
        let t = Instant::now();
        let out = model.forward_t(&batch.images, true)?;
        let terms = step_terms(&model, &out, &batch, &costs, None, &mut no_rng)?.terms;
        let report = weights.combine(&terms)?;
        let loss = report.total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        adam.step_scaled(&report.total.backward()?, 1.0)?;
        Ok((t.elapsed().as_secs_f64(), loss))
    };
    let (_, first_loss) = step()?; // warm-up
    let train: Vec<f64> = (0..args.steps)
        .map(|_| step().map(|(t, _)| t))
        .collect::<Result<_>>()?;

    let infer = || -> Result<f64> {
        let t = Instant::now();
        let out = model.forward_t(&batch.images, false)?;
        // Materialise the outputs.
        out.landmarks.sum_all()?.to_scalar::<f32>()?;
        Ok(t.elapsed().as_secs_f64())
    };
    infer()?;
    let inf: Vec<f64> = (0..args.steps).map(|_| infer()).collect::<Result<_>>()?;

    println!("allocator={}", jemalloc::name());
    println!("first_loss={first_loss:.6e}");
    println!("params={params}");
    println!("train_images_per_sec={:.2}", b as f64 / median(train));
    println!("infer_images_per_sec={:.2}", b as f64 / median(inf));
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
