//! The objective of Eq. 2: the weighted sum of the landmark, attribute, ELT and
//! weight-decay terms, with a per-term report for logging.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The weights of Eq. 2, named as in the paper.
///
/// `Cost = 1/N sum [Cost_attr + alpha/K sum_k ||T(L_k(I)) - L_k(T(I))||^2]
///        + lambda/(S K) sum ||GT_k - L_k(I)||^2 + gamma ||W||^2`.
///
/// `Default` is the paper's Seq-MT Blocks setting (lambda 1, alpha 1, beta 1; gamma is
/// not given for Blocks ("-" in the table) and is taken as 0; attribute weights 1, the
/// paper's unweighted `Cost_attr`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectiveWeights {
    /// Weight of the landmark term (mean squared error over labelled points, or the
    /// per-pixel cross-entropy for heat-map models).
    pub lambda: f64,
    /// Weight of the ELT term.
    pub alpha: f64,
    /// Weight decay: multiplies the sum of squared weights.
    pub gamma: f64,
    /// The soft-argmax multiplier (Eq. 1). Not a loss weight: kept here because the paper
    /// tabulates it with the others; the model reads it.
    pub beta: f64,
    /// Per-head attribute weights (`emotion`, `camera`, `pose`, ...).
    pub attributes: BTreeMap<String, f64>,
    /// Weight of a head not listed in `attributes` (default 1, the paper's unweighted
    /// `Cost_attr`).
    pub default_attribute_weight: f64,
    /// Weight of the maps' spread ([`crate::map_spread_mean`], squared pixels). Not in the
    /// paper: 0 (off) in every preset.
    pub spread: f64,
    /// Weight of the maps' overlap ([`crate::map_overlap_mean`]: of each pair of maps, the
    /// less concentrated one's mass near the other's point, in [0, 1]). Not in the paper:
    /// 0 (off) in every preset.
    pub overlap: f64,
}

impl Default for ObjectiveWeights {
    fn default() -> Self {
        Self::blocks()
    }
}

/// Names accepted by [`ObjectiveWeights::preset`].
pub const OBJECTIVE_PRESETS: &[&str] = &[
    "shapes",
    "blocks",
    "hgr1",
    "multi_pie",
    "300w_seq_mt",
    "300w_rcn_plus",
];

impl ObjectiveWeights {
    fn with(lambda: f64, alpha: f64, gamma: f64, beta: f64) -> Self {
        Self {
            lambda,
            alpha,
            gamma,
            beta,
            attributes: BTreeMap::new(),
            default_attribute_weight: 1.0,
            spread: 0.0,
            overlap: 0.0,
        }
    }

    /// Seq-MT on Shapes: attribute only (lambda 0, alpha 0, gamma 0, beta 1).
    pub fn shapes() -> Self {
        Self::with(0.0, 0.0, 0.0, 1.0)
    }

    /// Seq-MT on Blocks: lambda 1, alpha 1, gamma 0 (not given), beta 1.
    pub fn blocks() -> Self {
        Self::with(1.0, 1.0, 0.0, 1.0)
    }

    /// Seq-MT on HGR1: lambda 0.5, alpha 0.3, gamma 1e-5, beta 0.001.
    pub fn hgr1() -> Self {
        Self::with(0.5, 0.3, 1e-5, 0.001)
    }

    /// Seq-MT on Multi-PIE: lambda 2, alpha 0.3, gamma 1e-5, beta 0.001.
    pub fn multi_pie() -> Self {
        Self::with(2.0, 0.3, 1e-5, 0.001)
    }

    /// Seq-MT on 300W: lambda 2, alpha 2, gamma 1e-5, beta 0.01.
    pub fn w300_seq_mt() -> Self {
        Self::with(2.0, 2.0, 1e-5, 0.01)
    }

    /// RCN+ on 300W: lambda 1, alpha 0.5, gamma 0, beta 1 (the text; Fig. S3's caption
    /// says 100).
    pub fn w300_rcn_plus() -> Self {
        Self::with(1.0, 0.5, 0.0, 1.0)
    }

    /// The preset of the paper's hyper-parameter table named `name` (one of
    /// [`OBJECTIVE_PRESETS`]).
    pub fn preset(name: &str) -> Result<Self> {
        Ok(match name {
            "shapes" => Self::shapes(),
            "blocks" => Self::blocks(),
            "hgr1" => Self::hgr1(),
            "multi_pie" => Self::multi_pie(),
            "300w_seq_mt" => Self::w300_seq_mt(),
            "300w_rcn_plus" => Self::w300_rcn_plus(),
            other => {
                return Err(Error::InvalidArgument {
                    context: "ObjectiveWeights::preset",
                    field: "name",
                    value: other.to_string(),
                    reason: "unknown preset (see OBJECTIVE_PRESETS)",
                })
            }
        })
    }

    /// The weight of attribute head `head`.
    pub fn attribute_weight(&self, head: &str) -> f64 {
        self.attributes
            .get(head)
            .copied()
            .unwrap_or(self.default_attribute_weight)
    }

    /// Checks that every weight is finite and non-negative (beta finite and positive).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, v: f64, reason: &'static str| Error::InvalidArgument {
            context: "ObjectiveWeights",
            field,
            value: v.to_string(),
            reason,
        };
        for (field, v) in [
            ("lambda", self.lambda),
            ("alpha", self.alpha),
            ("gamma", self.gamma),
            ("default_attribute_weight", self.default_attribute_weight),
            ("spread", self.spread),
            ("overlap", self.overlap),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(bad(field, v, "must be finite and >= 0"));
            }
        }
        if !self.beta.is_finite() || self.beta <= 0.0 {
            return Err(bad("beta", self.beta, "must be finite and > 0"));
        }
        for (head, &v) in &self.attributes {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::InvalidArgument {
                    context: "ObjectiveWeights",
                    field: "attributes",
                    value: format!("{head} = {v}"),
                    reason: "must be finite and >= 0",
                });
            }
        }
        Ok(())
    }

    /// Combines the unweighted terms into the total cost and a per-term report.
    ///
    /// Each present term is multiplied by its weight (`landmark` by lambda, `elt` by
    /// alpha, `weight_decay` by gamma, `attributes[h]` by [`Self::attribute_weight`],
    /// `map_scale` by 1: its bound sets its strength, `map_spread` by `spread`,
    /// `map_overlap` by `overlap`) and summed. A term whose weight is 0 is left out of the total and of the report (so a
    /// NaN in a term switched off cannot poison the total). All terms are cast to the dtype
    /// of the first present one (landmark, attributes in name order, elt, weight_decay,
    /// map_scale, map_spread, map_overlap). Fails when no term is given at all.
    pub fn combine(&self, terms: &Terms) -> Result<LossReport> {
        self.validate()?;
        let mut present: Vec<(String, f64, &Tensor)> = Vec::new();
        if let Some(t) = &terms.landmark {
            present.push(("landmark".to_string(), self.lambda, t));
        }
        for (head, t) in &terms.attributes {
            present.push((format!("attribute:{head}"), self.attribute_weight(head), t));
        }
        if let Some(t) = &terms.elt {
            present.push(("elt".to_string(), self.alpha, t));
        }
        if let Some(t) = &terms.weight_decay {
            present.push(("weight_decay".to_string(), self.gamma, t));
        }
        if let Some(t) = &terms.map_scale {
            present.push(("map_scale".to_string(), 1.0, t));
        }
        if let Some(t) = &terms.map_spread {
            present.push(("map_spread".to_string(), self.spread, t));
        }
        if let Some(t) = &terms.map_overlap {
            present.push(("map_overlap".to_string(), self.overlap, t));
        }
        let first = present.first().map(|p| p.2).ok_or(Error::InvalidArgument {
            context: "ObjectiveWeights::combine",
            field: "terms",
            value: "none".to_string(),
            reason: "at least one term is needed",
        })?;
        let (dtype, device) = (first.dtype(), first.device().clone());
        let mut total = Tensor::zeros((), dtype, &device)?;
        let mut weighted = BTreeMap::new();
        let mut values = BTreeMap::new();
        let mut unweighted = BTreeMap::new();
        for (name, weight, t) in present {
            if t.elem_count() != 1 {
                return Err(Error::Shape {
                    func: "ObjectiveWeights::combine",
                    arg: name,
                    expected: "a scalar loss".to_string(),
                    got: t.dims().to_vec(),
                });
            }
            unweighted.insert(
                name.clone(),
                t.to_dtype(DType::F64)?.reshape(())?.to_scalar::<f64>()?,
            );
            if weight == 0.0 {
                continue;
            }
            let w = t.reshape(())?.to_dtype(dtype)?.affine(weight, 0.0)?;
            total = (total + &w)?;
            values.insert(name.clone(), w.to_dtype(DType::F64)?.to_scalar::<f64>()?);
            weighted.insert(name, w);
        }
        values.insert(
            "total".to_string(),
            total.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        );
        Ok(LossReport {
            total,
            weighted,
            values,
            unweighted,
        })
    }
}

/// The unweighted terms of one step, as returned by the loss functions. Absent terms are
/// `None` / missing.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    /// [`crate::landmark_loss`] (or [`crate::heatmap_cross_entropy`] for heat-map models).
    pub landmark: Option<Tensor>,
    /// Per head: [`crate::cross_entropy_loss`] or [`crate::l1_loss`].
    pub attributes: BTreeMap<String, Tensor>,
    /// [`crate::Elt::loss`].
    pub elt: Option<Tensor>,
    /// [`crate::weight_decay()`].
    pub weight_decay: Option<Tensor>,
    /// [`crate::map_range_excess`]: the bound on the soft-argmax maps' scale.
    pub map_scale: Option<Tensor>,
    /// [`crate::map_spread_mean`]: the spread of the soft-argmax maps.
    pub map_spread: Option<Tensor>,
    /// [`crate::map_overlap_mean`]: maps of an image that share their mass.
    pub map_overlap: Option<Tensor>,
}

/// The weighted terms of one step and their values, for the optimiser and for logging.
#[derive(Debug, Clone)]
pub struct LossReport {
    /// The total cost (scalar), to backpropagate.
    pub total: Tensor,
    /// Each weighted term (scalar tensors), keyed `landmark`, `attribute:<head>`, `elt`,
    /// `weight_decay`, `map_scale`, `map_spread`.
    pub weighted: BTreeMap<String, Tensor>,
    /// The values of the weighted terms and of `total`, as f64.
    pub values: BTreeMap<String, f64>,
    /// The values of every given term before weighting (zero-weight terms included), as
    /// f64, same keys as `values` less `total`.
    pub unweighted: BTreeMap<String, f64>,
}

impl LossReport {
    /// The names (keys of `values`, `total` included) whose value is NaN or infinite.
    pub fn non_finite(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(_, v)| !v.is_finite())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Whether every reported value is finite.
    pub fn is_finite(&self) -> bool {
        self.values.values().all(|v| v.is_finite())
    }

    /// A one-line summary `landmark=1.2345 elt=0.1234 ... total=1.3579` (total last).
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != "total")
            .map(|(k, v)| format!("{k}={v:.6}"))
            .collect();
        if let Some(t) = self.values.get("total") {
            parts.push(format!("total={t:.6}"));
        }
        parts.join(" ")
    }
}
