//! The batch plan of an epoch: which training images each step takes (the rules are in the
//! [`crate::trainer`] module docs, "Batch composition").

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use landmark_ssl_data::Dataset;

use crate::config::ExperimentConfig;
use crate::seeds::{derive_seed, PURPOSE_ORDER};

/// The index lists (into `train`) of every step of `epoch` (0-based), drawn from the
/// experiment seed and the epoch.
pub(crate) fn epoch_plan(cfg: &ExperimentConfig, train: &Dataset, epoch: usize) -> Vec<Vec<usize>> {
    let costs = &cfg.costs.active(epoch);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, PURPOSE_ORDER, epoch as u64, 0));
    let mut labelled: Vec<usize> = (0..train.len())
        .filter(|&i| train.samples[i].has_landmarks)
        .collect();
    // The labelled share and the number of steps follow the experiment's costs, not the
    // epoch's: during a warm-up the landmark cost sees the same images per step, and as
    // many steps, as after the join; only the pool's share of the batch waits for its
    // costs.
    let pool_len = pool(&cfg.costs, train).len();
    let pool = pool(costs, train);
    let b = cfg.schedule.batch_size;
    let uses_landmarks = costs.landmark && !labelled.is_empty();
    let n_lab = if !uses_landmarks {
        0
    } else if pool_len == 0 {
        b
    } else {
        cfg.schedule.labelled_per_batch.min(b)
    };
    let rest = b - n_lab;
    let steps = if rest > 0 && pool_len > 0 {
        pool_len.div_ceil(rest)
    } else {
        train.len().div_ceil(b).max(1)
    };
    let steps = match cfg.schedule.max_steps_per_epoch {
        0 => steps,
        cap => steps.min(cap),
    };
    labelled.shuffle(&mut rng);
    let mut pool_order = pool.clone();
    pool_order.shuffle(&mut rng);
    let (mut li, mut pi) = (0usize, 0usize);
    let mut plan = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut idx = Vec::with_capacity(b);
        for _ in 0..n_lab {
            if li == labelled.len() {
                labelled.shuffle(&mut rng);
                li = 0;
            }
            idx.push(labelled[li]);
            li += 1;
        }
        for _ in 0..rest {
            if pool_order.is_empty() || pi == pool_order.len() {
                break;
            }
            idx.push(pool_order[pi]);
            pi += 1;
        }
        if !idx.is_empty() {
            plan.push(idx);
        }
    }
    plan
}

/// The images that fill the batch beside the labelled share under `costs`: every training
/// image with ELT, those with attribute labels with A but not ELT, none otherwise.
fn pool(costs: &crate::config::CostConfig, train: &Dataset) -> Vec<usize> {
    if costs.elt {
        (0..train.len()).collect()
    } else if costs.attribute {
        (0..train.len())
            .filter(|&i| train.samples[i].has_attributes)
            .collect()
    } else {
        Vec::new()
    }
}
