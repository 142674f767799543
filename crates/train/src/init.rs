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
/// their layer's weight), because candle's CPU generator cannot be seeded. A variable the
/// model built as all zeros (an output layer with
/// [`zero_init_output`](landmark_ssl_models::HeadConfig::zero_init_output)) is a choice,
/// not a draw, and stays zero; the others' draws do not depend on it.
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
        if is_all_zero(var)? {
            continue;
        }
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

/// Whether every element of `var` is exactly 0 (false for an empty variable).
fn is_all_zero(var: &Var) -> Result<bool> {
    if var.elem_count() == 0 {
        return Ok(false);
    }
    let largest = var.as_tensor().abs()?.flatten_all()?.max(0)?;
    Ok(largest
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarBuilder};

    /// A VarMap with `a.weight` (random) and `b.weight`, built as `b_init`.
    fn two_layers(b_init: Init) -> VarMap {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        vb.get_with_hints((3, 4), "a.weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)
            .unwrap();
        vb.get_with_hints((2, 3), "b.weight", b_init).unwrap();
        vm
    }

    fn values(vm: &VarMap, name: &str) -> Vec<f32> {
        let data = vm.data().lock().unwrap();
        data[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn zero_variables_stay_zero_and_the_others_draw_as_before() {
        let zeroed = two_layers(Init::Const(0.0));
        let drawn = two_layers(candle_nn::init::DEFAULT_KAIMING_NORMAL);
        reinit_seeded(&zeroed, 7).unwrap();
        reinit_seeded(&drawn, 7).unwrap();
        assert!(values(&zeroed, "b.weight").iter().all(|&v| v == 0.0));
        assert!(values(&drawn, "b.weight").iter().any(|&v| v != 0.0));
        assert_eq!(values(&zeroed, "a.weight"), values(&drawn, "a.weight"));
        // Seeded: the same seed gives the same draw, another seed another.
        let again = two_layers(Init::Const(0.0));
        reinit_seeded(&again, 7).unwrap();
        assert_eq!(values(&again, "a.weight"), values(&zeroed, "a.weight"));
        reinit_seeded(&again, 8).unwrap();
        assert_ne!(values(&again, "a.weight"), values(&zeroed, "a.weight"));
    }
}
