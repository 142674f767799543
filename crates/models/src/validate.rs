//! Validation of model configs: structure (positive sizes, odd kernels that fit the input,
//! K matching the last conv, ...) and [`ModelLimits`] (every declared size, the parameter
//! count and the largest feature map). Size limits are checked before any product of sizes
//! is formed, so no config can overflow an arithmetic operation or make us allocate.

use std::collections::BTreeSet;

use crate::config::{ConvSpec, HeadConfig, HeadKind, LayerSpec, ModelConfig, RcnConfig};
use crate::error::{Error, Result};
use crate::limits::ModelLimits;
use crate::plan::{plan, Plan};

/// Checks `cfg` against its structure and `limits`; returns its [`Plan`] (weights, parameter
/// count, largest feature map).
pub(crate) fn validate(cfg: &ModelConfig, limits: &ModelLimits) -> Result<Plan> {
    let (h, w) = cfg.input_size();
    if h == 0 || w == 0 {
        return Err(Error::config(
            "input_size",
            format!("must be positive, got {h}x{w}"),
        ));
    }
    if h > limits.max_input_side || w > limits.max_input_side {
        return Err(limit(
            "input_size",
            format!("{h}x{w}"),
            format!("{} pixels a side", limits.max_input_side),
            "max_input_side",
        ));
    }
    let in_ch = cfg.in_channels();
    if in_ch == 0 {
        return Err(Error::config(
            "in_channels",
            "images need at least 1 channel (1: grey, 3: RGB), got 0",
        ));
    }
    at_most(
        "in_channels",
        in_ch,
        limits.max_in_channels,
        "max_in_channels",
    )?;
    let k = cfg.num_landmarks();
    if k == 0 {
        return Err(Error::config(
            "num_landmarks",
            "K must be at least 1, got 0",
        ));
    }
    at_most("num_landmarks", k, limits.max_landmarks, "max_landmarks")?;
    if let Some(beta) = cfg.beta() {
        if !(beta.is_finite() && beta > 0.0) {
            return Err(Error::config(
                "beta",
                format!("must be finite and positive, got {beta}"),
            ));
        }
        if beta > limits.max_beta {
            return Err(limit(
                "beta",
                format!("{beta:?}"),
                limits.max_beta.to_string(),
                "max_beta",
            ));
        }
    }
    check_head_limits(cfg.heads(), limits)?;
    let min_side = h.min(w);
    match cfg {
        ModelConfig::SeqMt(c) => {
            check_convs("convs", &c.convs, min_side, limits)?;
            check_last_is_k("convs", &c.convs, k)?;
            check_slope(c.map_negative_slope)?;
        }
        ModelConfig::CommMt(c) => {
            let (ch, hh, ww) = check_layers("trunk", &c.trunk, in_ch, h, w, min_side, limits)?;
            if ch == 0 || hh == 0 || ww == 0 {
                return Err(Error::config("trunk", "the trunk output is empty"));
            }
            at_most(
                "shared_fc",
                c.shared_fc.len(),
                limits.max_layers,
                "max_layers",
            )?;
            for (i, &u) in c.shared_fc.iter().enumerate() {
                if u == 0 {
                    return Err(Error::config(
                        format!("shared_fc[{i}]"),
                        "an FC layer needs at least 1 unit",
                    ));
                }
                at_most(
                    &format!("shared_fc[{i}]"),
                    u,
                    limits.max_hidden_units,
                    "max_hidden_units",
                )?;
            }
            check_dropout("dropout", c.dropout)?;
        }
        ModelConfig::HeatmapMt(c) => {
            check_convs("convs", &c.convs, min_side, limits)?;
            check_last_is_k("convs", &c.convs, k)?;
            check_layers("branch", &c.branch, k, h, w, min_side, limits)?;
            check_slope(c.map_negative_slope)?;
        }
        ModelConfig::Rcn(c) => check_rcn(c, min_side, limits)?,
    }
    check_heads(cfg.heads())?;
    let p = plan(cfg)?;
    if p.params > limits.max_params {
        return Err(limit(
            "parameters",
            p.params.to_string(),
            limits.max_params.to_string(),
            "max_params",
        ));
    }
    let (field, n) = &p.largest_feature;
    if *n > limits.max_feature_elements {
        return Err(limit(
            field,
            format!("a feature map of {n} values per image"),
            limits.max_feature_elements.to_string(),
            "max_feature_elements",
        ));
    }
    Ok(p)
}

/// The last trunk activation's negative slope: 0 (ReLU) to 1 (linear).
fn check_slope(s: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&s) {
        return Err(Error::config(
            "map_negative_slope",
            format!("must be in [0, 1] (0: ReLU, 1: linear), got {s}"),
        ));
    }
    Ok(())
}

fn limit(field: &str, value: String, limit: String, setting: &'static str) -> Error {
    Error::LimitExceeded {
        path: None,
        field: field.to_string(),
        value,
        limit,
        setting,
    }
}

fn at_most(field: &str, value: usize, max: usize, setting: &'static str) -> Result<()> {
    if value > max {
        return Err(limit(field, value.to_string(), max.to_string(), setting));
    }
    Ok(())
}

/// The heads' sizes against `limits` (before anything multiplies them).
fn check_head_limits(heads: &[HeadConfig], limits: &ModelLimits) -> Result<()> {
    at_most("heads", heads.len(), limits.max_heads, "max_heads")?;
    for (i, h) in heads.iter().enumerate() {
        at_most(
            &format!("heads[{i}].kind"),
            h.kind.outputs(),
            limits.max_head_outputs,
            "max_head_outputs",
        )?;
        at_most(
            &format!("heads[{i}].hidden"),
            h.hidden.len(),
            limits.max_layers,
            "max_layers",
        )?;
        for (j, &u) in h.hidden.iter().enumerate() {
            at_most(
                &format!("heads[{i}].hidden[{j}]"),
                u,
                limits.max_hidden_units,
                "max_hidden_units",
            )?;
        }
    }
    Ok(())
}

fn check_kernel(field: &str, kernel: usize, min_side: usize) -> Result<()> {
    if kernel == 0 {
        return Err(Error::config(field, "kernel size must be at least 1"));
    }
    if kernel & 1 == 0 {
        return Err(Error::config(
            field,
            format!("kernel {kernel} is even; SAME padding needs an odd kernel"),
        ));
    }
    if kernel > min_side {
        return Err(Error::config(
            field,
            format!(
                "kernel {kernel} is larger than the input ({min_side} pixels on its short side)"
            ),
        ));
    }
    Ok(())
}

fn check_convs(
    field: &str,
    convs: &[ConvSpec],
    min_side: usize,
    limits: &ModelLimits,
) -> Result<()> {
    if convs.is_empty() {
        return Err(Error::config(field, "needs at least one convolution"));
    }
    at_most(field, convs.len(), limits.max_layers, "max_layers")?;
    for (i, c) in convs.iter().enumerate() {
        check_kernel(&format!("{field}[{i}].kernel"), c.kernel, min_side)?;
        if c.channels == 0 {
            return Err(Error::config(
                format!("{field}[{i}].channels"),
                "a convolution needs at least 1 output channel",
            ));
        }
        at_most(
            &format!("{field}[{i}].channels"),
            c.channels,
            limits.max_channels,
            "max_channels",
        )?;
    }
    Ok(())
}

fn check_last_is_k(field: &str, convs: &[ConvSpec], k: usize) -> Result<()> {
    let last = convs.len() - 1;
    if convs[last].channels != k {
        return Err(Error::config(
            format!("{field}[{last}].channels"),
            format!(
                "the last conv gives the landmark maps, so it needs K = {k} channels, got {}",
                convs[last].channels
            ),
        ));
    }
    Ok(())
}

/// Checks a conv/pool stack and returns its output (channels, height, width).
fn check_layers(
    field: &str,
    layers: &[LayerSpec],
    in_ch: usize,
    h: usize,
    w: usize,
    min_side: usize,
    limits: &ModelLimits,
) -> Result<(usize, usize, usize)> {
    at_most(field, layers.len(), limits.max_layers, "max_layers")?;
    let (mut c, mut h, mut w) = (in_ch, h, w);
    for (i, l) in layers.iter().enumerate() {
        match *l {
            LayerSpec::Conv { kernel, channels } => {
                check_kernel(&format!("{field}[{i}].conv.kernel"), kernel, min_side)?;
                if channels == 0 {
                    return Err(Error::config(
                        format!("{field}[{i}].conv.channels"),
                        "a convolution needs at least 1 output channel",
                    ));
                }
                at_most(
                    &format!("{field}[{i}].conv.channels"),
                    channels,
                    limits.max_channels,
                    "max_channels",
                )?;
                c = channels;
            }
            LayerSpec::Pool => {
                if h < 2 || w < 2 {
                    return Err(Error::config(
                        format!("{field}[{i}]"),
                        format!("cannot 2x2-pool a {h}x{w} map"),
                    ));
                }
                h /= 2;
                w /= 2;
            }
        }
    }
    Ok((c, h, w))
}

fn check_rcn(c: &RcnConfig, min_side: usize, limits: &ModelLimits) -> Result<()> {
    if c.channels == 0 {
        return Err(Error::config("channels", "needs at least 1 feature map"));
    }
    at_most("channels", c.channels, limits.max_channels, "max_channels")?;
    for (field, n) in [("down_convs", c.down_convs), ("up_convs", c.up_convs)] {
        if n == 0 {
            return Err(Error::config(field, "needs at least 1 conv per level"));
        }
        at_most(field, n, limits.max_layers, "max_layers")?;
    }
    at_most("levels", c.levels, limits.max_layers, "max_layers")?;
    // The poolings first: they bound `levels` by the input size (at most 63 halvings of a
    // usize), so `levels + 1` below cannot overflow.
    let (mut h, mut w) = (c.input_size.height, c.input_size.width);
    for l in 1..=c.levels {
        if h < 2 || w < 2 {
            return Err(Error::config(
                "levels",
                format!("pooling {l} of {} would pool a {h}x{w} map", c.levels),
            ));
        }
        h /= 2;
        w /= 2;
    }
    if c.down_kernels.len() != c.levels + 1 {
        return Err(Error::config(
            "down_kernels",
            format!(
                "needs levels + 1 = {} entries, got {}",
                c.levels + 1,
                c.down_kernels.len()
            ),
        ));
    }
    if c.up_kernels.len() != c.levels {
        return Err(Error::config(
            "up_kernels",
            format!(
                "needs levels = {} entries, got {}",
                c.levels,
                c.up_kernels.len()
            ),
        ));
    }
    for (i, &k) in c.down_kernels.iter().enumerate() {
        check_kernel(&format!("down_kernels[{i}]"), k, min_side)?;
    }
    for (i, &k) in c.up_kernels.iter().enumerate() {
        check_kernel(&format!("up_kernels[{i}]"), k, min_side)?;
    }
    check_kernel("output_kernel", c.output_kernel, min_side)?;
    Ok(())
}

fn check_dropout(field: &str, p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::config(
            field,
            format!("dropout probability must be in [0, 1), got {p}"),
        ));
    }
    Ok(())
}

fn check_heads(heads: &[HeadConfig]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (i, h) in heads.iter().enumerate() {
        let ok = !h.name.is_empty()
            && h.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(Error::config(
                format!("heads[{i}].name"),
                format!(
                    "`{}` must be non-empty ASCII letters, digits, `_` or `-`",
                    h.name
                ),
            ));
        }
        if !seen.insert(h.name.as_str()) {
            return Err(Error::config(
                format!("heads[{i}].name"),
                format!("duplicate head name `{}`", h.name),
            ));
        }
        let n = h.kind.outputs();
        let min = match h.kind {
            HeadKind::Class { .. } => 2,
            HeadKind::Real { .. } => 1,
        };
        if n < min {
            return Err(Error::config(
                format!("heads[{i}].kind"),
                format!("needs at least {min} outputs, got {n}"),
            ));
        }
        for (j, &u) in h.hidden.iter().enumerate() {
            if u == 0 {
                return Err(Error::config(
                    format!("heads[{i}].hidden[{j}]"),
                    "a hidden layer needs at least 1 unit",
                ));
            }
        }
        check_dropout(&format!("heads[{i}].dropout"), h.dropout)?;
    }
    Ok(())
}
