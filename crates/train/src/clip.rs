//! Gradient clipping relative to the recent gradient norms.
//!
//! At a constant learning rate one batch whose gradient is ten times the usual norm is
//! enough to throw Adam off: the second moments of most weights are small next to that
//! gradient, so every weight moves by about three learning rates in that batch's direction
//! at once, and the cost then climbs for a whole epoch (docs/experiments/elt-join.md,
//! "One outlier step"). Bounding each step's global gradient norm by `factor` times a running
//! mean of the earlier steps' (bounded) norms removes such outliers whatever the scale of
//! the gradients, which a fixed bound cannot (it changes by orders of magnitude over a run).

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// The key of the running norm in the optimiser file.
const RUNNING_KEY: &str = "clip.running_norm";

/// The weight of each new step in the running mean of the norms (a horizon of about 50
/// steps).
const RATE: f64 = 0.02;

/// The bound on the gradient norm relative to the running mean of earlier norms. See the
/// module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeClip {
    factor: f64,
    /// The running mean of the steps' norms after clipping; `None` before the first step.
    running: Option<f64>,
}

impl RelativeClip {
    /// A bound of `factor` (> 1) times the running mean of the norms.
    pub fn new(factor: f64) -> Result<Self> {
        if !(factor.is_finite() && factor > 1.0) {
            return Err(Error::InvalidSetting {
                field: "schedule.clip_grad_relative".into(),
                reason: format!("{factor} is not a number above 1"),
            });
        }
        Ok(Self {
            factor,
            running: None,
        })
    }

    /// The bound for the next step; `None` on the first step (nothing to compare with).
    pub fn bound(&self) -> Option<f64> {
        self.running.map(|r| self.factor * r)
    }

    /// Counts a step whose gradient norm was `norm` and returns the norm it may keep (the
    /// bound where `norm` exceeds it).
    pub fn observe(&mut self, norm: f64) -> f64 {
        let kept = match self.bound() {
            Some(b) => norm.min(b),
            None => norm,
        };
        self.running = Some(match self.running {
            Some(r) => (1.0 - RATE) * r + RATE * kept,
            None => kept,
        });
        kept
    }

    /// The running mean, for the optimiser file (absent before the first step).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        if let Some(r) = self.running {
            let t = Tensor::new(&[r], &candle_core::Device::Cpu)?;
            out.insert(RUNNING_KEY.to_string(), t);
        }
        Ok(out)
    }

    /// Restores [`RelativeClip::state`]; a missing entry means no step was taken.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.running = match state.get(RUNNING_KEY) {
            None => None,
            Some(t) => match t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[..] {
                [r] if r.is_finite() && r >= 0.0 => Some(r),
                ref other => {
                    return Err(Error::Checkpoint {
                        what: format!("`{RUNNING_KEY}` is {other:?}, not one finite norm"),
                    })
                }
            },
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound follows the running mean of the kept norms, computed here by hand, and an
    /// outlier is cut to it.
    #[test]
    fn outliers_are_cut_to_the_running_mean_times_the_factor() -> Result<()> {
        let mut clip = RelativeClip::new(3.0)?;
        assert_eq!(clip.bound(), None);
        assert_eq!(clip.observe(100.0), 100.0);
        let mut mean = 100.0;
        for norm in [120.0, 80.0, 90.0] {
            approx::assert_abs_diff_eq!(clip.bound().unwrap(), 3.0 * mean, epsilon = 1e-9);
            assert_eq!(clip.observe(norm), norm);
            mean = (1.0 - RATE) * mean + RATE * norm;
        }
        let bound = 3.0 * mean;
        approx::assert_abs_diff_eq!(clip.observe(1000.0), bound, epsilon = 1e-9);
        mean = (1.0 - RATE) * mean + RATE * bound;
        approx::assert_abs_diff_eq!(clip.bound().unwrap(), 3.0 * mean, epsilon = 1e-9);
        Ok(())
    }

    #[test]
    fn state_round_trips_and_bad_values_are_refused() -> Result<()> {
        let mut clip = RelativeClip::new(2.0)?;
        assert!(clip.state()?.is_empty());
        clip.observe(5.0);
        clip.observe(7.0);
        let state = clip.state()?;
        let mut back = RelativeClip::new(2.0)?;
        back.load_state(&state)?;
        assert_eq!(back, clip);
        let mut bad = HashMap::new();
        bad.insert(
            RUNNING_KEY.to_string(),
            Tensor::new(&[f64::NAN], &candle_core::Device::Cpu)?,
        );
        let err = back.load_state(&bad).unwrap_err().to_string();
        assert!(err.contains(RUNNING_KEY), "{err}");
        for f in [1.0, 0.5, f64::NAN, f64::INFINITY] {
            assert!(RelativeClip::new(f).is_err(), "{f}");
        }
        Ok(())
    }
}
