//! An exponential moving average of the weights (Polyak averaging), kept beside the
//! optimised weights and used in their place for validation, checkpoints and the test.
//!
//! At a constant learning rate Adam's iterates wander around a minimum, and one unlucky
//! batch can throw them off for a few steps; the average over the last few hundred steps
//! is a better estimate of the minimum and hardly moves in such a spike
//! (docs/experiments/elt-join.md, "Averaged weights").
//!
//! After update `t` (counting from 0) the average is `a = d a + (1 - d) w` with
//! `d = min(decay, (1 + t) / (10 + t))`: early on the average follows the weights closely,
//! so it does not keep the initial weights for hundreds of steps.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Tensor, Var};

use crate::error::{Error, Result};

/// The key of the update count in [`WeightAverage::state`].
const UPDATES_KEY: &str = "average.updates";

struct Slot {
    name: String,
    var: Var,
    /// The average while `var` holds the optimised weights; the optimised weights while
    /// `var` holds the average (after [`WeightAverage::swap`]).
    other: Tensor,
}

/// The moving average of a set of named variables. See the module docs.
pub struct WeightAverage {
    slots: Vec<Slot>,
    decay: f64,
    updates: u64,
    swapped: bool,
}

impl WeightAverage {
    /// Starts the average at the current values of `vars` (name -> variable); `decay` in
    /// [0, 1).
    pub fn new(vars: &HashMap<String, Var>, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::InvalidSetting {
                field: "schedule.weight_average_decay".into(),
                reason: format!("{decay} is not in [0, 1)"),
            });
        }
        let names: BTreeMap<&String, &Var> = vars.iter().collect();
        let mut slots = Vec::with_capacity(names.len());
        for (name, var) in names {
            if !var.dtype().is_float() {
                continue;
            }
            slots.push(Slot {
                name: name.clone(),
                var: var.clone(),
                other: var.as_tensor().detach().copy()?,
            });
        }
        Ok(Self {
            slots,
            decay,
            updates: 0,
            swapped: false,
        })
    }

    /// The decay of update `t` (0-based).
    fn decay_at(&self, t: u64) -> f64 {
        self.decay.min((1.0 + t as f64) / (10.0 + t as f64))
    }

    /// Moves the average towards the variables' current values (after an optimiser step).
    pub fn update(&mut self) -> Result<()> {
        if self.swapped {
            return Err(Error::Checkpoint {
                what: "the weight average was updated while it stood in for the weights".into(),
            });
        }
        let d = self.decay_at(self.updates);
        for slot in &mut self.slots {
            // Detached: an op on a variable records its graph, which would keep every
            // step's average alive until the next swap.
            let w = slot.var.as_tensor().detach();
            slot.other = ((&slot.other * d)? + (w * (1.0 - d))?)?.detach();
        }
        self.updates += 1;
        Ok(())
    }

    /// Exchanges the variables' values with the average: after one call the variables
    /// hold the average, after the next the optimised weights again.
    pub fn swap(&mut self) -> Result<()> {
        // Every copy first: a failed copy leaves nothing half swapped.
        let held = self
            .slots
            .iter()
            .map(|slot| slot.var.as_tensor().detach().copy())
            .collect::<candle_core::Result<Vec<_>>>()?;
        for (slot, held) in self.slots.iter_mut().zip(held) {
            slot.var.set(&slot.other)?;
            slot.other = held;
        }
        self.swapped = !self.swapped;
        Ok(())
    }

    /// Whether the variables hold the average now.
    pub fn is_swapped(&self) -> bool {
        self.swapped
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// For a checkpoint written while the variables hold the average (the weights a run
    /// ships): the optimised weights, as `average.raw.<var>`, and the update count.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        if !self.swapped {
            return Err(Error::Checkpoint {
                what: "the weight average's state is saved while it stands in for the weights"
                    .into(),
            });
        }
        let mut out = HashMap::new();
        for slot in &self.slots {
            out.insert(format!("average.raw.{}", slot.name), slot.other.clone());
        }
        let n = Tensor::new(&[self.updates as f64], &candle_core::Device::Cpu)?;
        out.insert(UPDATES_KEY.to_string(), n);
        Ok(out)
    }

    /// Restores a [`WeightAverage::state`] after the variables were loaded with the
    /// averaged weights of the same checkpoint; afterwards the variables hold the optimised
    /// weights again and the average is kept aside. A missing or misshapen tensor is an
    /// error naming it.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut raw = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let key = format!("average.raw.{}", slot.name);
            let t = state.get(&key).ok_or_else(|| Error::Checkpoint {
                what: format!(
                    "optimiser state has no tensor `{key}` (a run without weight averaging?)"
                ),
            })?;
            if t.dims() != slot.var.dims() {
                return Err(Error::Checkpoint {
                    what: format!(
                        "optimiser tensor `{key}` has shape {:?}, the model's is {:?}",
                        t.dims(),
                        slot.var.dims()
                    ),
                });
            }
            let t = t.to_dtype(slot.var.dtype())?.to_device(slot.var.device())?;
            let bad = t
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .into_iter()
                .find(|v| !v.is_finite());
            if let Some(v) = bad {
                return Err(Error::Checkpoint {
                    what: format!("optimiser tensor `{key}` holds {v}"),
                });
            }
            raw.push(t);
        }
        let updates = crate::adam::whole_number(state, UPDATES_KEY, u32::MAX as u64)?;
        for (slot, raw) in self.slots.iter_mut().zip(raw) {
            slot.other = slot.var.as_tensor().detach().copy()?;
            slot.var.set(&raw)?;
        }
        self.updates = updates;
        self.swapped = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn vars(values: &[f32]) -> (Var, HashMap<String, Var>) {
        let v = Var::new(values, &Device::Cpu).unwrap();
        let mut m = HashMap::new();
        m.insert("w".to_string(), v.clone());
        (v, m)
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1::<f32>().unwrap()
    }

    /// The average follows the recursion of the module docs, computed here by hand.
    #[test]
    fn the_average_follows_its_recursion() -> Result<()> {
        let (w, vm) = vars(&[0.0, 10.0]);
        let decay = 0.5;
        let mut avg = WeightAverage::new(&vm, decay)?;
        let mut expected = [0.0f64, 10.0];
        for t in 0..6u64 {
            let next = [t as f64 + 1.0, 10.0 - 2.0 * t as f64];
            w.set(&Tensor::new(
                &[next[0] as f32, next[1] as f32],
                &Device::Cpu,
            )?)?;
            avg.update()?;
            let d = decay.min((1.0 + t as f64) / (10.0 + t as f64));
            for (e, x) in expected.iter_mut().zip(next) {
                *e = d * *e + (1.0 - d) * x;
            }
        }
        assert_eq!(avg.updates(), 6);
        let last = values(&w);
        avg.swap()?;
        for (a, e) in values(&w).iter().zip(expected) {
            approx::assert_abs_diff_eq!(*a as f64, e, epsilon = 1e-5);
        }
        avg.swap()?;
        assert_eq!(values(&w), last);
        Ok(())
    }

    /// Saving while swapped and loading into a fresh average over the same variables
    /// (loaded with the averaged weights) gives back both sets of weights and the count.
    #[test]
    fn state_round_trips() -> Result<()> {
        let (w, vm) = vars(&[1.0, 2.0]);
        let mut avg = WeightAverage::new(&vm, 0.9)?;
        for x in [3.0f32, 5.0, 7.0] {
            w.set(&Tensor::new(&[x, -x], &Device::Cpu)?)?;
            avg.update()?;
        }
        assert!(avg.state().is_err(), "saved while not swapped");
        let raw = values(&w);
        avg.swap()?;
        let averaged = values(&w);
        let state = avg.state()?;

        let (w2, vm2) = vars(&averaged);
        let mut restored = WeightAverage::new(&vm2, 0.9)?;
        restored.load_state(&state)?;
        assert_eq!(values(&w2), raw);
        assert_eq!(restored.updates(), 3);
        restored.swap()?;
        assert_eq!(values(&w2), averaged);

        let mut missing = state.clone();
        missing.remove("average.raw.w");
        let err = restored.load_state(&missing).unwrap_err().to_string();
        assert!(err.contains("average.raw.w"), "{err}");
        let mut bad = state.clone();
        bad.insert(
            "average.raw.w".into(),
            Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu)?,
        );
        let err = restored.load_state(&bad).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
        let mut shape = state;
        shape.insert(
            "average.raw.w".into(),
            Tensor::new(&[1.0f32], &Device::Cpu)?,
        );
        let err = restored.load_state(&shape).unwrap_err().to_string();
        assert!(err.contains("shape"), "{err}");
        Ok(())
    }

    #[test]
    fn a_decay_outside_its_range_is_refused() {
        let (_, vm) = vars(&[1.0]);
        for d in [-0.1, 1.0, f64::NAN] {
            assert!(WeightAverage::new(&vm, d).is_err(), "{d}");
        }
    }
}
