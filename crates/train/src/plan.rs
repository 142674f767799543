//! The batch plan of an epoch: which training images each step takes (the rules are in the
//! [`crate::trainer`] module docs, "Batch composition").

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use landmark_ssl_data::Dataset;

use crate::config::ExperimentConfig;
use crate::seeds::{derive_seed, PURPOSE_ORDER};

/// The index lists (into `train`) of every step of `epoch` (0-based), drawn from the
/// experiment seed and the epoch: the landmark-labelled part of each step first, then the
/// pool's part.
pub(crate) fn epoch_plan(cfg: &ExperimentConfig, train: &Dataset, epoch: usize) -> Vec<Vec<usize>> {
    let costs = &cfg.costs.active(epoch);
    // Two streams: the labelled order does not depend on the pool, so the labelled part of
    // each step is the same whatever other costs are on.
    let mut labelled_rng =
        ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, PURPOSE_ORDER, epoch as u64, 0));
    let mut pool_rng =
        ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, PURPOSE_ORDER, epoch as u64, 1));
    let mut labelled: Vec<usize> = (0..train.len())
        .filter(|&i| train.samples[i].has_landmarks)
        .collect();
    // The number of steps follows the experiment's costs, not the epoch's: during a
    // warm-up the landmark cost sees as many steps as after the join; only the pool's part
    // of each step waits for its costs.
    let pool_len = pool(&cfg.costs, train).len();
    let mut pool_order = pool(costs, train);
    let b = cfg.schedule.batch_size.max(1);
    let n_lab = if costs.landmark && !labelled.is_empty() {
        cfg.schedule.labelled_per_batch
    } else {
        0
    };
    let steps = if pool_len > 0 {
        pool_len.div_ceil(b)
    } else {
        train.len().div_ceil(b).max(1)
    };
    let steps = match cfg.schedule.max_steps_per_epoch {
        0 => steps,
        cap => steps.min(cap),
    };
    labelled.shuffle(&mut labelled_rng);
    pool_order.shuffle(&mut pool_rng);
    let mut pool_parts = pool_order.chunks(b);
    let mut li = 0usize;
    let mut plan = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut idx = Vec::with_capacity(n_lab + b);
        for _ in 0..n_lab {
            if li == labelled.len() {
                labelled.shuffle(&mut labelled_rng);
                li = 0;
            }
            idx.push(labelled[li]);
            li += 1;
        }
        if let Some(part) = pool_parts.next() {
            idx.extend_from_slice(part);
        }
        if !idx.is_empty() {
            plan.push(idx);
        }
    }
    plan
}

/// The images of the pool's part of a step under `costs`: every training
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 50 training images, 10 with landmark labels, all with attribute labels.
    fn train_set() -> Dataset {
        let mut d = landmark_ssl_data::shapes::generate(50, 3).expect("shapes");
        for (i, s) in d.samples.iter_mut().enumerate() {
            s.has_landmarks = i % 5 == 0;
            s.has_attributes = true;
        }
        d
    }

    fn config(costs: &str) -> ExperimentConfig {
        let mut cfg = ExperimentConfig::default();
        cfg.costs.set_from_label(costs).expect("costs");
        cfg.costs.warmup_epochs = 2;
        cfg.schedule.batch_size = 8;
        cfg.schedule.labelled_per_batch = 3;
        cfg
    }

    /// The labelled part of every step is the same whatever other costs are on, and the
    /// pool's part comes after it.
    #[test]
    fn other_costs_add_to_a_step_and_take_no_labelled_image_away() {
        let train = train_set();
        for epoch in [0, 1, 2, 5] {
            let alone = epoch_plan(&config("L"), &train, epoch);
            for costs in ["L+A", "L+ELT", "L+ELT+A"] {
                let mixed = epoch_plan(&config(costs), &train, epoch);
                assert_eq!(alone.len(), mixed.len(), "{costs}, epoch {epoch}");
                for (a, m) in alone.iter().zip(&mixed) {
                    assert_eq!(a.len(), 3);
                    assert_eq!(a[..], m[..3], "{costs}, epoch {epoch}");
                    assert!(a.iter().all(|&i| train.samples[i].has_landmarks));
                }
            }
        }
    }

    /// After the warm-up each pool image is in exactly one step of an epoch, `batch_size`
    /// a step; during it the steps hold the labelled part alone.
    #[test]
    fn the_pool_is_one_pass_an_epoch_and_waits_for_the_join() {
        let train = train_set();
        let cfg = config("L+ELT+A");
        let warm = epoch_plan(&cfg, &train, 1);
        assert_eq!(warm.len(), 50usize.div_ceil(8));
        assert!(warm.iter().all(|s| s.len() == 3));
        let joined = epoch_plan(&cfg, &train, 2);
        assert_eq!(joined.len(), warm.len());
        let mut seen: Vec<usize> = joined.iter().flat_map(|s| s[3..].to_vec()).collect();
        assert!(joined[..joined.len() - 1].iter().all(|s| s.len() == 3 + 8));
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    /// Without the landmark cost a step is the pool's part alone.
    #[test]
    fn without_the_landmark_cost_a_step_is_the_pool_part() {
        let train = train_set();
        let mut cfg = config("A");
        cfg.schedule.labelled_per_batch = 0;
        let plan = epoch_plan(&cfg, &train, 0);
        assert_eq!(plan.len(), 7);
        assert_eq!(plan.iter().map(Vec::len).sum::<usize>(), 50);
    }
}
