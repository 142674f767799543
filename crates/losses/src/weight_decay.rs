//! The weight-decay cost of Eq. 2: `gamma * ||W||^2`.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which parameters the weight decay sums over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightDecayConfig {
    /// Include biases (and other rank-<=1 parameters such as normalisation scales).
    /// Default `false`: the usual practice (biases do not cause over-fitting and decaying
    /// them only shifts activations); the paper's `||W||^2` does not say.
    pub include_biases: bool,
}

/// Whether a named parameter counts as a bias: its last `.`-separated name component is
/// `bias` (candle-nn's naming: `conv1.bias`), or it has rank <= 1 (biases, norm scales).
pub fn is_bias(name: &str, tensor: &Tensor) -> bool {
    name.rsplit('.').next() == Some("bias") || tensor.rank() <= 1
}

/// The output of [`weight_decay`].
#[derive(Debug, Clone)]
pub struct WeightDecayOutput {
    /// `sum ||w||^2` over the included parameters, a scalar f32 tensor (unweighted: the
    /// objective multiplies it by `gamma`).
    pub loss: Tensor,
    /// The number of parameter tensors included.
    pub n_tensors: usize,
    /// The number of scalar weights included.
    pub n_weights: usize,
}

/// The sum of squared weights over named parameters (e.g. a `VarMap`'s variables, or
/// `(name, tensor)` pairs of any model), unweighted.
///
/// * `params`: `(name, tensor)` pairs, any float dtype, any shape; the sum is taken in f32.
/// * `config.include_biases`: when false, parameters for which [`is_bias`] holds are
///   skipped.
/// * `device`: where the result lives (needed when no parameter is included, then the
///   result is 0).
///
/// Returns `sum_p sum_i p_i^2` (squared weight units), differentiable with respect to each
/// included parameter (gradient `2 p`).
pub fn weight_decay<'a, I>(
    params: I,
    config: WeightDecayConfig,
    device: &Device,
) -> Result<WeightDecayOutput>
where
    I: IntoIterator<Item = (&'a str, &'a Tensor)>,
{
    let mut total = Tensor::zeros((), DType::F32, device)?;
    let (mut n_tensors, mut n_weights) = (0usize, 0usize);
    for (name, t) in params {
        if !t.dtype().is_float() {
            return Err(Error::DType {
                func: "weight_decay",
                arg: name.to_string(),
                expected: "a floating-point parameter",
                got: t.dtype(),
            });
        }
        if !config.include_biases && is_bias(name, t) {
            continue;
        }
        let sq = t.to_dtype(DType::F32)?.sqr()?.sum_all()?;
        total = (total + sq)?;
        n_tensors += 1;
        n_weights += t.elem_count();
    }
    Ok(WeightDecayOutput {
        loss: total,
        n_tensors,
        n_weights,
    })
}

/// [`weight_decay`] over unnamed tensors (e.g. `var.as_tensor()` of a list of `Var`s):
/// with `include_biases` false, the tensors of rank <= 1 are skipped (see [`is_bias`]).
pub fn weight_decay_tensors<'a, I>(
    params: I,
    config: WeightDecayConfig,
    device: &Device,
) -> Result<WeightDecayOutput>
where
    I: IntoIterator<Item = &'a Tensor>,
{
    weight_decay(params.into_iter().map(|t| ("", t)), config, device)
}

/// [`weight_decay`] over every variable of a `candle_nn::VarMap` (names as given by the
/// `VarBuilder` paths, e.g. `conv1.weight`, `conv1.bias`), in name order.
pub fn weight_decay_varmap(
    varmap: &candle_nn::VarMap,
    config: WeightDecayConfig,
    device: &Device,
) -> Result<WeightDecayOutput> {
    let data = varmap.data().lock().map_err(|e| Error::Parameters {
        func: "weight_decay_varmap",
        reason: format!("the VarMap lock is poisoned: {e}"),
    })?;
    let mut named: Vec<(&str, &Tensor)> = data
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_tensor()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    weight_decay(named, config, device)
}
