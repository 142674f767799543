//! Seeded initial weights: candle's CPU generator cannot be seeded, so the trainer redraws
//! every variable from its own generator after the model is built.

use std::collections::{BTreeSet, HashMap};

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Error, Result};
use crate::seeds::{derive_seed, PURPOSE_INIT};

/// The variables of `vm`, by name.
pub(crate) fn vars_of(vm: &VarMap) -> Result<HashMap<String, Var>> {
    let data = vm.data().lock().map_err(|_| Error::Checkpoint {
        what: "the VarMap's lock is poisoned".into(),
    })?;
    Ok(data.clone())
}

/// Redraws every variable from a seeded generator with candle-nn's default distributions
/// (weights: Kaiming normal, std sqrt(2 / fan_in); biases: uniform in +-1/sqrt(fan_in) of
/// their layer's weight), because candle's CPU generator cannot be seeded.
pub fn reinit_seeded(vm: &VarMap, seed: u64) -> Result<()> {
    let vars = vars_of(vm)?;
    let names: BTreeSet<&String> = vars.keys().collect();
    let fan_in = |name: &str| -> Option<usize> {
        let w = vars.get(name)?;
        let d = w.dims();
        (d.len() >= 2).then(|| d[1..].iter().product())
    };
    for (i, name) in names.into_iter().enumerate() {
        let var = &vars[name];
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, PURPOSE_INIT, i as u64, 0));
        let n = var.elem_count();
        let dims = var.dims().to_vec();
        let values: Vec<f32> = if dims.len() >= 2 {
            let fan: usize = dims[1..].iter().product();
            let std = (2.0 / fan.max(1) as f64).sqrt();
            let normal = Normal::new(0.0, std).map_err(|e| Error::InvalidSetting {
                field: name.clone(),
                reason: e.to_string(),
            })?;
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else if let Some(stem) = name.strip_suffix("bias") {
            let fan = fan_in(&format!("{stem}weight")).unwrap_or(n);
            let bound = 1.0 / (fan.max(1) as f64).sqrt();
            let uni = Uniform::new_inclusive(-bound, bound).map_err(|e| Error::InvalidSetting {
                field: name.clone(),
                reason: e.to_string(),
            })?;
            (0..n).map(|_| uni.sample(&mut rng) as f32).collect()
        } else {
            // Other vectors (the model zoo has none) keep their initial values.
            continue;
        };
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}
