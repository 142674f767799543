//! The terminal progress display (epoch, step, each cost term, images/s, ETA), kept out of
//! the training logic. Hidden when the output is not a terminal or when switched off.

use std::collections::BTreeMap;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One epoch's progress bar.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for epoch `epoch` of `epochs` with `steps` steps; `enabled = false` draws
    /// nothing.
    pub fn new(enabled: bool, epoch: usize, epochs: usize, steps: usize) -> Self {
        if !enabled {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:25}] {pos}/{len} steps {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        Self { bar: Some(bar) }
    }

    /// Shows the step count, the weighted cost terms of the last step and images/s.
    pub fn update(&mut self, step: usize, terms: &BTreeMap<String, f64>, images_per_sec: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            let mut msg: Vec<String> = terms
                .iter()
                .filter(|(k, _)| k.as_str() != "total")
                .map(|(k, v)| format!("{k}={v:.4}"))
                .collect();
            msg.push(format!("{images_per_sec:.0} img/s"));
            bar.set_message(msg.join(" "));
        }
    }

    /// Ends the bar, leaving `summary` on its line.
    pub fn finish(&mut self, summary: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_with_message(summary.to_string());
        }
    }
}
