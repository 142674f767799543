//! What each weighted cost of a run's objective sends into its map network.
//!
//! ```text
//! cargo run --release --example term_gradients -- runs/table1/seqmt-L_ELT_A-10pct-seed0
//! ```
//!
//! Reads a run folder (its `state.json` and last epoch's files; nothing is written) and
//! measures at the optimised weights of its last epoch (`--averaged`: at their average,
//! when the run keeps one). It rebuilds the experiment's data, draws `--batches` steps as
//! the trainer composes them (the labelled images beside as many drawn from the whole
//! training set; whole-image crops, no jitter), and for each weighted term in force at the
//! saved epoch (lambda L, each A head, alpha ELT, the costs on the maps) prints the median
//! norm of its gradient into the landmark network (every variable outside the attribute
//! path: the heads, Heatmap-MT's branch) and its median value, and the median cosine
//! between A's gradient (every head's) and the sum of the others': near 1, A pushes where
//! the other costs push; near 0, it adds a direction of its own.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Tensor, Var};
use clap::Parser;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use candle_nn::{VarBuilder, VarMap};
use landmark_ssl::data::{BatchLoader, LoaderConfig, Preprocess};
use landmark_ssl::losses::Elt;
use landmark_ssl::models::{load_weights, LandmarkModel, ATTRIBUTE_PATH_PREFIXES};
use landmark_ssl::train::{
    build_splits, checkpoint, objective_weights, step_terms, DeviceChoice, ExperimentConfig,
};

#[derive(Parser, Debug)]
#[command(about = "Per-term gradient norms into the map network, from a run folder")]
struct Args {
    /// Run folders (`output.dir` of a `Trainer`, e.g. `runs/table1/<run>`); read only.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Steps measured.
    #[arg(long, default_value_t = 30)]
    batches: usize,
    /// Measure at the last epoch's averaged weights (those validated and kept) rather
    /// than the optimised ones the next step would start from.
    #[arg(long)]
    averaged: bool,
    /// Where to compute: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

fn flat_grad(grads: &candle_core::backprop::GradStore, ts: &[&Tensor]) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for t in ts {
        match grads.get(t) {
            Some(g) => v.extend(g.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?),
            None => v.extend(std::iter::repeat_n(0.0, t.elem_count())),
        }
    }
    Ok(v)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |s, x| s + x * x).sqrt()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    for dir in &args.runs {
        let state = checkpoint::read_state(dir)?
            .with_context(|| format!("{}: no state.json (not a run folder)", dir.display()))?;
        let mut cfg: ExperimentConfig = serde_json::from_str(&state.experiment)
            .with_context(|| format!("{}: the experiment of state.json", dir.display()))?;
        cfg.device = args.device;
        let model_cfg = cfg.resolved_model()?;
        let device = args.device.open()?;
        let varmap = VarMap::new();
        let model = LandmarkModel::new(
            &model_cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
        )?;
        let vars: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("variable map poisoned"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The last epoch's weights file holds what the run keeps (with a weight average,
        // the average); the optimiser file holds the optimised weights beside it.
        load_weights(dir.join(&state.weights), &varmap)?;
        let epoch = state.epoch;
        let at = if args.averaged || cfg.schedule.weight_average_decay == 0.0 {
            "kept weights"
        } else {
            let path = dir.join(&state.optimizer);
            let saved = candle_core::safetensors::load(&path, &device)
                .with_context(|| format!("reading {}", path.display()))?;
            for (name, var) in &vars {
                let raw = saved
                    .get(&format!("average.raw.{name}"))
                    .with_context(|| format!("{}: no average.raw.{name}", path.display()))?;
                var.set(raw)?;
            }
            "optimised weights"
        };
        // The landmark network: every variable outside the attribute path.
        let trunk: Vec<&Tensor> = vars
            .iter()
            .filter(|(k, _)| !ATTRIBUTE_PATH_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(_, v)| v.as_tensor())
            .collect();
        let splits = build_splits(&cfg)?;
        let train = splits.train.clone();
        let size = model.config().input_size().0;
        let loader = BatchLoader::new(
            Arc::clone(&train),
            LoaderConfig::new(cfg.schedule.batch_size, Preprocess::whole(size), cfg.seed),
        )?;
        let labelled: Vec<usize> = (0..train.len())
            .filter(|&i| train.samples[i].has_landmarks)
            .collect();
        let weights = objective_weights(&cfg.costs, &model_cfg)?;
        let active = cfg.costs.active(epoch);
        let elt = match cfg.costs.elt {
            true => Some(Elt::new(cfg.costs.elt_transform.clone())?),
            false => None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7e4d);
        let mut norms: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut cosines = Vec::new();
        for b in 0..args.batches {
            let mut idx: Vec<usize> = labelled
                .choose_multiple(&mut rng, cfg.schedule.labelled_per_batch)
                .copied()
                .collect();
            idx.extend((0..cfg.schedule.batch_size).map(|_| rng.random_range(0..train.len())));
            let batch = loader.batch(&idx, epoch as u64, &device)?;
            let out = model.forward_t(&batch.images, true)?;
            let mut erng = ChaCha8Rng::seed_from_u64(b as u64);
            let st = step_terms(&model, &out, &batch, &active, elt.as_ref(), &mut erng)?;
            let report = weights.combine(&st.terms)?;
            let mut grads: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for (k, t) in &report.weighted {
                let g = t.backward()?;
                let v = flat_grad(&g, &trunk)?;
                norms.entry(k.clone()).or_default().push(norm(&v));
                values
                    .entry(k.clone())
                    .or_default()
                    .push(t.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                grads.insert(k.clone(), v);
            }
            // A: every attribute head's term together; the rest: every other term.
            let n = trunk.iter().map(|t| t.elem_count()).sum();
            let (mut a, mut rest) = (vec![0.0; n], vec![0.0; n]);
            let mut has_a = false;
            for (k, v) in &grads {
                let sum = if k.starts_with("attribute") {
                    has_a = true;
                    &mut a
                } else {
                    &mut rest
                };
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            }
            if has_a {
                let dot: f64 = a.iter().zip(&rest).map(|(x, y)| x * y).sum();
                cosines.push(dot / (norm(&a) * norm(&rest)).max(1e-30));
            }
        }
        println!(
            "\n{} (epoch {epoch}, {at}, {} steps):",
            dir.display(),
            args.batches
        );
        println!("| term | gradient norm into the landmark network | value |\n|---|---|---|");
        for (k, v) in &norms {
            println!(
                "| {k} | {:.3e} | {:.4} |",
                median(v.clone()),
                median(values[k].clone())
            );
        }
        if !cosines.is_empty() {
            println!(
                "cosine between A's gradient and the others': {:.3}",
                median(cosines)
            );
        }
    }
    Ok(())
}
