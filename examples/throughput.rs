//! Training and inference throughput of any preset of the model zoo on random data. For the
//! Seq-MT presets it is the same work as `../shared/reference/torch_reference.py <preset>`,
//! for `rcnplus-300w` that of `benches/reference/torch_rcnplus.py`: one Adam step (lr 1e-3)
//! on a batch of random images, landmark MSE (the per-pixel cross-entropy for softmax models)
//! plus the cross-entropy of every class head (L1 for real-valued heads).
//!
//! ```text
//! cargo run --release --example throughput -- --preset seqmt-blocks --batch 32 --steps 5
//! ```
//!
//! Prints `params=N`, `train_images_per_sec=X` and `infer_images_per_sec=Y` last (medians
//! over `--steps` steps, after one warm-up step).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use clap::Parser;
use landmark_ssl::models::{preset, HeadKind, LandmarkKind, LandmarkModel};
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
    let dev = Device::Cpu;
    let cfg = preset(&args.preset).with_context(|| format!("preset {}", args.preset))?;
    let vm = VarMap::new();
    let model = LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
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
    let ones = Tensor::ones((b, k), DType::F32, &dev)?;
    // One label vector per attribute head, sized from a forward pass.
    let out = model.forward_t(&images, false)?;
    // Class heads get random labels (cross-entropy), real heads random targets (L1).
    let mut labels = Vec::new();
    for head in cfg.heads() {
        let Some(logits) = out.attributes.get(&head.name) else {
            continue;
        };
        let n = logits.dim(1)?;
        let target = match head.kind {
            HeadKind::Class { .. } => {
                let l: Vec<u32> = (0..b).map(|_| rng.random_range(0..n as u32)).collect();
                Tensor::from_vec(l, b, &dev)?
            }
            HeadKind::Real { .. } => {
                let v: Vec<f32> = (0..b * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                Tensor::from_vec(v, (b, n), &dev)?
            }
        };
        labels.push((head.name.clone(), target));
    }
    let mut opt = candle_nn::AdamW::new(
        vm.all_vars(),
        candle_nn::ParamsAdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    println!(
        "preset={} batch={b} steps={} threads={} conv_kernel={}",
        args.preset,
        args.steps,
        rayon_threads(),
        landmark_ssl::ops::conv::cpu_kernel()
    );

    let mut step = || -> Result<f64> {
        let t = Instant::now();
        let out = model.forward_t(&images, true)?;
        // Soft-argmax models (and Comm-MT) train a distance on the points; softmax models
        // (RCN, Heatmap-MT) the per-pixel cross-entropy on their maps.
        let mut loss = match (model.landmark_kind(), &out.maps) {
            (LandmarkKind::Softmax, Some(maps)) => {
                landmark_ssl::losses::heatmap_cross_entropy(maps, &gt, &ones)?.loss
            }
            _ => candle_nn::loss::mse(&out.landmarks, &gt)?,
        };
        for (name, y) in &labels {
            let pred = &out.attributes[name];
            let term = if y.dtype() == DType::U32 {
                candle_nn::loss::cross_entropy(pred, y)?
            } else {
                (pred - y)?.abs()?.mean_all()?
            };
            loss = (loss + term)?;
        }
        opt.backward_step(&loss)?;
        Ok(t.elapsed().as_secs_f64())
    };
    step()?; // warm-up
    let train: Vec<f64> = (0..args.steps).map(|_| step()).collect::<Result<_>>()?;

    let infer = || -> Result<f64> {
        let t = Instant::now();
        let out = model.forward_t(&images, false)?;
        // Materialise the outputs.
        out.landmarks.sum_all()?.to_scalar::<f32>()?;
        Ok(t.elapsed().as_secs_f64())
    };
    infer()?;
    let inf: Vec<f64> = (0..args.steps).map(|_| infer()).collect::<Result<_>>()?;

    println!("allocator={}", jemalloc::name());
    println!("params={params}");
    println!("train_images_per_sec={:.2}", b as f64 / median(train));
    println!("infer_images_per_sec={:.2}", b as f64 / median(inf));
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
