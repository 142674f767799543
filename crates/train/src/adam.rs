//! Adam (Kingma and Ba, 2015) with a state that can be saved and restored.
//!
//! candle-nn's `AdamW` keeps its moments private, so a resumed run could not continue
//! exactly where it stopped; this optimiser keys its moments by the variable names of a
//! `VarMap`, so they can be written beside the weights and read back.

use std::collections::{BTreeMap, HashMap};

use candle_core::{backprop::GradStore, DType, Tensor, Var};

use crate::error::{Error, Result};

/// Adam hyper-parameters (PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges in which Adam is defined: a finite positive learning rate,
    /// moment decays in [0, 1) (at 1 the bias correction divides by zero, above it the
    /// moments grow without bound) and a finite positive `eps`. `field` prefixes the names
    /// in the error (`schedule.adam`).
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |name: &str, reason: String| {
            Err(Error::InvalidSetting {
                field: format!("{field}.{name}"),
                reason,
            })
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} is not a positive number", self.lr));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(name, format!("{beta} is not in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", format!("{} is not a positive number", self.eps));
        }
        Ok(())
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
    /// This variable's rate as a multiple of the optimiser's ([`Adam::scale_rate`]).
    rate_scale: f64,
}

/// Adam over named variables.
pub struct Adam {
    slots: Vec<Slot>,
    config: AdamConfig,
    step: u64,
}

impl Adam {
    /// Builds the optimiser over `vars` (name -> variable); the order of updates is the
    /// names' order, so runs are reproducible.
    pub fn new(vars: &HashMap<String, Var>, config: AdamConfig) -> Result<Self> {
        config.validate("adam")?;
        let names: BTreeMap<&String, &Var> = vars.iter().collect();
        let mut slots = Vec::with_capacity(names.len());
        for (name, var) in names {
            if !var.dtype().is_float() {
                continue;
            }
            let zeros = var.zeros_like()?;
            slots.push(Slot {
                name: name.clone(),
                var: var.clone(),
                m: Var::from_tensor(&zeros)?,
                v: Var::from_tensor(&zeros)?,
                rate_scale: 1.0,
            });
        }
        Ok(Self {
            slots,
            config,
            step: 0,
        })
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate (for schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Multiplies the rate of the variables whose names start with `prefix` by `factor`
    /// from the next step on (a group with a rate of its own, as PyTorch's parameter
    /// groups); returns how many variables that is. The factor is part of the setup, not
    /// of [`Adam::state`]. A factor that is not a positive finite number is refused.
    pub fn scale_rate(&mut self, prefix: &str, factor: f64) -> Result<usize> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(Error::InvalidSetting {
                field: format!("rate scale of `{prefix}*`"),
                reason: format!("{factor} is not a positive number"),
            });
        }
        let mut n = 0;
        for slot in self.slots.iter_mut().filter(|s| s.name.starts_with(prefix)) {
            slot.rate_scale *= factor;
            n += 1;
        }
        Ok(n)
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One Adam update from the gradients; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_scaled(grads, 1.0)
    }

    /// The global L2 norm of the optimised variables' gradients (as one vector), the
    /// quantity gradient clipping bounds.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        // One read back per step, not one per variable (each is a sync on a GPU).
        let sums = self
            .slots
            .iter()
            .filter_map(|slot| grads.get(&slot.var))
            .map(|g| g.to_dtype(DType::F64)?.sqr()?.sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if sums.is_empty() {
            return Ok(0.0);
        }
        Ok(Tensor::stack(&sums, 0)?
            .sum_all()?
            .to_scalar::<f64>()?
            .sqrt())
    }

    /// [`Adam::step`] with every gradient multiplied by `scale` first (gradient clipping
    /// passes `max_norm / norm`): the moments see the scaled gradients.
    pub fn step_scaled(&mut self, grads: &GradStore, scale: f64) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        let step_size = c.lr / bias1;
        for slot in &self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let scaled;
            let g = if scale == 1.0 {
                g
            } else {
                scaled = (g * scale)?;
                &scaled
            };
            let m = ((slot.m.as_tensor() * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((slot.v.as_tensor() * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((v.clone() / bias2)?.sqrt()? + c.eps)?;
            let update = ((&m / denom)? * (step_size * slot.rate_scale))?;
            slot.var.set(&slot.var.as_tensor().sub(&update)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(())
    }

    /// Forgets the moments and the step count, as a fresh optimiser over the same
    /// variables (the learning rate is kept).
    pub fn restart(&mut self) -> Result<()> {
        for slot in &self.slots {
            slot.m.set(&slot.m.zeros_like()?)?;
            slot.v.set(&slot.v.zeros_like()?)?;
        }
        self.step = 0;
        Ok(())
    }

    /// The optimiser's state as named tensors (`m.<var>`, `v.<var>`, `step`), for a
    /// checkpoint.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for slot in &self.slots {
            out.insert(format!("m.{}", slot.name), slot.m.as_tensor().clone());
            out.insert(format!("v.{}", slot.name), slot.v.as_tensor().clone());
        }
        let step = Tensor::new(&[self.step as f64], &candle_core::Device::Cpu)?;
        out.insert("step".to_string(), step);
        Ok(out)
    }

    /// Restores a state written by [`Adam::state`]; a missing or misshapen moment is an
    /// error naming the variable.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for slot in &self.slots {
            for (prefix, target) in [("m", &slot.m), ("v", &slot.v)] {
                let key = format!("{prefix}.{}", slot.name);
                let t = state.get(&key).ok_or_else(|| Error::Checkpoint {
                    what: format!("optimiser state has no tensor `{key}`"),
                })?;
                if t.dims() != target.dims() {
                    return Err(Error::Checkpoint {
                        what: format!(
                            "optimiser tensor `{key}` has shape {:?}, the model's is {:?}",
                            t.dims(),
                            target.dims()
                        ),
                    });
                }
                let values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                // A second moment is a mean of squares; NaN, infinite or negative moments
                // would turn every weight into NaN at the next step.
                if let Some(v) = values
                    .iter()
                    .find(|v| !v.is_finite() || (prefix == "v" && **v < 0.0))
                {
                    return Err(Error::Checkpoint {
                        what: format!("optimiser tensor `{key}` holds {v}"),
                    });
                }
                target.set(&t.to_dtype(target.dtype())?.to_device(target.device())?)?;
            }
        }
        // The bias correction raises the betas to the step count as an i32.
        let step = whole_number(state, "step", i32::MAX as u64)?;
        self.step = step;
        Ok(())
    }
}

/// The count stored under `key` in an optimiser file: one whole number in [0, `max`]; a
/// missing or other entry is an error naming it.
pub(crate) fn whole_number(state: &HashMap<String, Tensor>, key: &str, max: u64) -> Result<u64> {
    let t = state.get(key).ok_or_else(|| Error::Checkpoint {
        what: format!("optimiser state has no `{key}`"),
    })?;
    let values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    match values.as_slice() {
        [v] if v.fract() == 0.0 && (0.0..=max as f64).contains(v) => Ok(*v as u64),
        other => Err(Error::Checkpoint {
            what: format!("optimiser `{key}` is {other:?}, not one whole number in [0, {max}]"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The gradient norm is the norm of all gradients as one vector, and a scaled step
    /// is the step on the scaled gradients.
    #[test]
    fn grad_norm_and_scaled_steps() -> Result<()> {
        let a = Var::new(&[3.0f32, 0.0], &Device::Cpu)?;
        let b = Var::new(&[[2.0f32]], &Device::Cpu)?;
        let mut vars = HashMap::new();
        vars.insert("a".to_string(), a.clone());
        vars.insert("b".to_string(), b.clone());
        let cfg = AdamConfig {
            lr: 0.1,
            ..Default::default()
        };
        // f = sum(a^2) / 2 + sum(b^2) / 2: the gradients are a and b, norm sqrt(9 + 4).
        let loss = |a: &Var, b: &Var| -> Result<candle_core::Tensor> {
            Ok(((a.as_tensor().sqr()?.sum_all()? + b.as_tensor().sqr()?.sum_all()?)? * 0.5)?)
        };
        let mut opt = Adam::new(&vars, cfg)?;
        let grads = loss(&a, &b)?.backward()?;
        approx::assert_abs_diff_eq!(opt.grad_norm(&grads)?, 13f64.sqrt(), epsilon = 1e-6);
        // Two steps with scale 0.5 on one copy against two steps on halved gradients by
        // hand (f scaled by 1/2 has gradients a / 2 and b / 2).
        opt.step_scaled(&grads, 0.5)?;
        opt.step_scaled(&loss(&a, &b)?.backward()?, 0.5)?;
        let a2 = Var::new(&[3.0f32, 0.0], &Device::Cpu)?;
        let b2 = Var::new(&[[2.0f32]], &Device::Cpu)?;
        let mut vars2 = HashMap::new();
        vars2.insert("a".to_string(), a2.clone());
        vars2.insert("b".to_string(), b2.clone());
        let mut opt2 = Adam::new(&vars2, cfg)?;
        for _ in 0..2 {
            let half = (loss(&a2, &b2)? * 0.5)?;
            opt2.step(&half.backward()?)?;
        }
        for (x, y) in [(&a, &a2), (&b, &b2)] {
            let (x, y) = (
                x.flatten_all()?.to_vec1::<f32>()?,
                y.flatten_all()?.to_vec1::<f32>()?,
            );
            for (p, q) in x.iter().zip(&y) {
                approx::assert_abs_diff_eq!(*p, *q, epsilon = 1e-6);
            }
        }
        // And the scaled steps did move the weights.
        assert!(a.as_tensor().to_vec1::<f32>()?[0] < 3.0);
        Ok(())
    }

    /// Settings outside Adam's domain are refused with the field's name, by the config
    /// check and by the optimiser itself; the boundaries inside it are accepted.
    #[test]
    fn settings_outside_adams_domain_are_refused() -> Result<()> {
        let base = AdamConfig::default();
        let cases = [
            ("beta1", AdamConfig { beta1: 1.5, ..base }),
            ("beta1", AdamConfig { beta1: 1.0, ..base }),
            (
                "beta2",
                AdamConfig {
                    beta2: -1.0,
                    ..base
                },
            ),
            (
                "beta2",
                AdamConfig {
                    beta2: f64::NAN,
                    ..base
                },
            ),
            ("eps", AdamConfig { eps: 0.0, ..base }),
            (
                "eps",
                AdamConfig {
                    eps: f64::INFINITY,
                    ..base
                },
            ),
            ("lr", AdamConfig { lr: -0.05, ..base }),
            (
                "lr",
                AdamConfig {
                    lr: f64::NAN,
                    ..base
                },
            ),
        ];
        let w = Var::new(&[1.0f32], &Device::Cpu)?;
        let vars = HashMap::from([("w".to_string(), w)]);
        for (field, cfg) in cases {
            let err = cfg.validate("schedule.adam").unwrap_err().to_string();
            assert!(err.contains(&format!("schedule.adam.{field}")), "{err}");
            assert!(Adam::new(&vars, cfg).is_err(), "{cfg:?}");
        }
        AdamConfig {
            beta1: 0.0,
            beta2: 0.0,
            ..base
        }
        .validate("adam")?;
        Ok(())
    }

    /// An optimiser file with non-finite or negative second moments, or a step count the
    /// bias correction cannot take, is refused.
    #[test]
    fn damaged_optimiser_state_is_refused() -> Result<()> {
        let w = Var::new(&[0.5f32, 1.5], &Device::Cpu)?;
        let vars = HashMap::from([("w".to_string(), w.clone())]);
        let mut opt = Adam::new(&vars, AdamConfig::default())?;
        opt.step(&w.as_tensor().sqr()?.sum_all()?.backward()?)?;
        let good = opt.state()?;
        let with = |key: &str, values: &[f64]| -> Result<HashMap<String, Tensor>> {
            let mut s = good.clone();
            s.insert(key.to_string(), Tensor::new(values, &Device::Cpu)?);
            Ok(s)
        };
        let bad = [
            with("m.w", &[f64::NAN, 0.0])?,
            with("v.w", &[-1.0, 0.0])?,
            with("v.w", &[f64::INFINITY, 0.0])?,
            with("step", &[-1.0])?,
            with("step", &[1e12])?,
            with("step", &[2.5])?,
            with("step", &[1.0, 2.0])?,
        ];
        for state in bad {
            let mut fresh = Adam::new(&vars, AdamConfig::default())?;
            let err = fresh.load_state(&state).unwrap_err().to_string();
            assert!(err.contains("optimiser"), "{err}");
        }
        let mut fresh = Adam::new(&vars, AdamConfig::default())?;
        fresh.load_state(&good)?;
        assert_eq!(fresh.steps(), 1);
        Ok(())
    }

    /// Adam's first steps on f(w) = sum(w^2), against the update computed by hand.
    #[test]
    fn matches_hand_computed_updates() -> Result<()> {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut vars = HashMap::new();
        vars.insert("w".to_string(), w.clone());
        let cfg = AdamConfig {
            lr: 0.1,
            ..Default::default()
        };
        let mut opt = Adam::new(&vars, cfg)?;
        let (mut m, mut v, mut x) = ([0f64; 2], [0f64; 2], [1.0f64, -2.0]);
        for t in 1..=3 {
            let loss = w.as_tensor().sqr()?.sum_all()?;
            opt.step(&loss.backward()?)?;
            for i in 0..2 {
                let g = 2.0 * x[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                x[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = w.as_tensor().to_vec1::<f32>()?;
        for i in 0..2 {
            approx::assert_abs_diff_eq!(got[i] as f64, x[i], epsilon = 1e-5);
        }
        Ok(())
    }

    #[test]
    fn state_round_trip_continues_identically() -> Result<()> {
        let make = || -> Result<(Var, Adam)> {
            let w = Var::new(&[0.5f32, 1.5, -1.0], &Device::Cpu)?;
            let mut vars = HashMap::new();
            vars.insert("w".to_string(), w.clone());
            Ok((w, Adam::new(&vars, AdamConfig::default())?))
        };
        let (w1, mut a1) = make()?;
        for _ in 0..2 {
            a1.step(&w1.as_tensor().sqr()?.sum_all()?.backward()?)?;
        }
        let (w2, mut a2) = make()?;
        w2.set(w1.as_tensor())?;
        a2.load_state(&a1.state()?)?;
        for _ in 0..2 {
            a1.step(&w1.as_tensor().sqr()?.sum_all()?.backward()?)?;
            a2.step(&w2.as_tensor().sqr()?.sum_all()?.backward()?)?;
        }
        assert_eq!(
            w1.as_tensor().to_vec1::<f32>()?,
            w2.as_tensor().to_vec1::<f32>()?
        );
        assert_eq!(a2.steps(), 4);
        Ok(())
    }

    /// A variable group with a scaled rate takes the same steps as an optimiser of that
    /// rate; the others keep theirs.
    #[test]
    fn a_scaled_group_steps_at_its_own_rate() -> Result<()> {
        let start = [1.0f32, -2.0];
        let vars = |names: &[&str]| -> Result<HashMap<String, Var>> {
            names
                .iter()
                .map(|n| Ok((n.to_string(), Var::new(&start, &Device::Cpu)?)))
                .collect()
        };
        let loss = |vs: &HashMap<String, Var>| -> Result<GradStore> {
            let mut total = Tensor::zeros((), DType::F32, &Device::Cpu)?;
            for v in vs.values() {
                total = (total + v.as_tensor().sqr()?.sum_all()?)?;
            }
            Ok(total.backward()?)
        };
        let cfg = AdamConfig {
            lr: 0.1,
            ..Default::default()
        };
        let both = vars(&["heads.c.w", "trunk.w"])?;
        let mut opt = Adam::new(&both, cfg)?;
        assert_eq!(opt.scale_rate("heads.", 0.3)?, 1);
        let slow = vars(&["w"])?;
        let mut slow_opt = Adam::new(&slow, AdamConfig { lr: 0.03, ..cfg })?;
        let fast = vars(&["w"])?;
        let mut fast_opt = Adam::new(&fast, cfg)?;
        for _ in 0..3 {
            opt.step(&loss(&both)?)?;
            slow_opt.step(&loss(&slow)?)?;
            fast_opt.step(&loss(&fast)?)?;
        }
        let values = |v: &Var| v.as_tensor().to_vec1::<f32>();
        for (a, b) in [
            (&both["heads.c.w"], &slow["w"]),
            (&both["trunk.w"], &fast["w"]),
        ] {
            for (x, y) in values(a)?.iter().zip(values(b)?) {
                approx::assert_abs_diff_eq!(*x, y, epsilon = 1e-6);
            }
        }
        assert_ne!(values(&both["heads.c.w"])?, values(&both["trunk.w"])?);
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(opt.scale_rate("heads.", bad).is_err());
        }
        assert_eq!(opt.scale_rate("nothing.", 2.0)?, 0);
        Ok(())
    }

    /// After `restart`, the steps are those of a fresh optimiser started from the same
    /// weights (and differ from those of the optimiser that kept its moments).
    #[test]
    fn restart_continues_as_a_fresh_optimiser() -> Result<()> {
        let make = |x: &Tensor| -> Result<(Var, Adam)> {
            let w = Var::from_tensor(x)?;
            let mut vars = HashMap::new();
            vars.insert("w".to_string(), w.clone());
            Ok((w, Adam::new(&vars, AdamConfig::default())?))
        };
        let loss = |w: &Var| w.as_tensor().sqr()?.sum_all()?.backward();
        let start = Tensor::new(&[0.5f32, 1.5, -1.0], &Device::Cpu)?;
        let (w1, mut a1) = make(&start)?;
        let (w3, mut a3) = make(&start)?;
        for _ in 0..5 {
            a1.step(&loss(&w1)?)?;
            a3.step(&loss(&w3)?)?;
        }
        a1.restart()?;
        assert_eq!(a1.steps(), 0);
        let (w2, mut a2) = make(w1.as_tensor())?;
        for _ in 0..3 {
            a1.step(&loss(&w1)?)?;
            a2.step(&loss(&w2)?)?;
            a3.step(&loss(&w3)?)?;
        }
        let kept = w3.as_tensor().to_vec1::<f32>()?;
        let restarted = w1.as_tensor().to_vec1::<f32>()?;
        assert_eq!(restarted, w2.as_tensor().to_vec1::<f32>()?);
        assert_ne!(restarted, kept);
        Ok(())
    }
}
