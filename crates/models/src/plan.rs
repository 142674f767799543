//! The weights a config's model creates (names and shapes), its parameter count and its
//! largest feature map, worked out from the config alone: nothing of the model's size is
//! allocated, and every product is checked, so a config can be judged (against
//! [`crate::ModelLimits`], against a checkpoint's stored tensors) before it is built.
//!
//! The names and shapes are those the families' constructors create (`tests/
//! hostile_checkpoints.rs` compares them for every preset).

use crate::config::{ConvSpec, HeadConfig, LayerSpec, ModelConfig, RcnConfig};
use crate::error::{Error, Result};

/// What a (structurally valid) config's model holds.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Every weight's name and shape, in creation order.
    pub(crate) weights: Vec<(String, Vec<usize>)>,
    /// The total number of parameters.
    pub(crate) params: usize,
    /// The config field of the largest feature map of one image, and its number of values.
    pub(crate) largest_feature: (String, usize),
}

/// `a * b`, or a limit error naming `field` when the product does not fit a `usize`.
fn mul(field: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error::LimitExceeded {
        path: None,
        field: field.to_string(),
        value: format!("{a} x {b} (more than {})", usize::MAX),
        limit: usize::MAX.to_string(),
        setting: "usize",
    })
}

fn product(field: &str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |acc, &d| mul(field, acc, d))
}

struct Builder {
    plan: Plan,
}

impl Builder {
    fn new() -> Self {
        Self {
            plan: Plan {
                weights: Vec::new(),
                params: 0,
                largest_feature: (String::new(), 0),
            },
        }
    }

    fn weight(&mut self, name: String, shape: Vec<usize>) -> Result<()> {
        let n = product(&name, &shape)?;
        self.plan.params = self
            .plan
            .params
            .checked_add(n)
            .ok_or_else(|| Error::LimitExceeded {
                path: None,
                field: "parameters".into(),
                value: format!("more than {}", usize::MAX),
                limit: usize::MAX.to_string(),
                setting: "usize",
            })?;
        self.plan.weights.push((name, shape));
        Ok(())
    }

    /// A stride-1 SAME convolution: `{prefix}.weight` (out, in, k, k), `{prefix}.bias` (out).
    fn conv(&mut self, prefix: &str, cin: usize, cout: usize, k: usize) -> Result<()> {
        self.weight(format!("{prefix}.weight"), vec![cout, cin, k, k])?;
        self.weight(format!("{prefix}.bias"), vec![cout])
    }

    /// A linear layer: `{prefix}.weight` (out, in), `{prefix}.bias` (out).
    fn linear(&mut self, prefix: &str, din: usize, dout: usize) -> Result<()> {
        self.weight(format!("{prefix}.weight"), vec![dout, din])?;
        self.weight(format!("{prefix}.bias"), vec![dout])
    }

    /// A feature map of `dims` (per image) produced by the layer at `field`.
    fn feature(&mut self, field: &str, dims: &[usize]) -> Result<()> {
        let n = product(field, dims)?;
        if n > self.plan.largest_feature.1 {
            self.plan.largest_feature = (field.to_string(), n);
        }
        Ok(())
    }

    /// The MLP heads on `in_dim` inputs: `heads.{name}.fc{j}`.
    fn heads(&mut self, heads: &[HeadConfig], in_dim: usize) -> Result<()> {
        for (i, h) in heads.iter().enumerate() {
            let mut d = in_dim;
            let widths = h.hidden.iter().copied().chain([h.kind.outputs()]);
            for (j, out) in widths.enumerate() {
                self.linear(&format!("heads.{}.fc{j}", h.name), d, out)?;
                let field = if j < h.hidden.len() {
                    format!("heads[{i}].hidden[{j}]")
                } else {
                    format!("heads[{i}].kind")
                };
                self.feature(&field, &[out])?;
                d = out;
            }
        }
        Ok(())
    }

    /// A Seq-MT style stack of convs at full resolution on `in_ch` input channels:
    /// `{prefix}.{i}`.
    fn convs(
        &mut self,
        prefix: &str,
        convs: &[ConvSpec],
        in_ch: usize,
        h: usize,
        w: usize,
    ) -> Result<()> {
        let mut c = in_ch;
        for (i, s) in convs.iter().enumerate() {
            self.conv(&format!("{prefix}.{i}"), c, s.channels, s.kernel)?;
            self.feature(&format!("{prefix}[{i}]"), &[s.channels, h, w])?;
            c = s.channels;
        }
        Ok(())
    }

    /// A conv / pool stack: `{prefix}.{i}` for the conv at layer `i`. Returns its output
    /// (channels, height, width).
    fn stack(
        &mut self,
        prefix: &str,
        layers: &[LayerSpec],
        in_ch: usize,
        h: usize,
        w: usize,
    ) -> Result<(usize, usize, usize)> {
        let (mut c, mut h, mut w) = (in_ch, h, w);
        for (i, l) in layers.iter().enumerate() {
            match *l {
                LayerSpec::Conv { kernel, channels } => {
                    self.conv(&format!("{prefix}.{i}"), c, channels, kernel)?;
                    c = channels;
                }
                LayerSpec::Pool => {
                    h /= 2;
                    w /= 2;
                }
            }
            self.feature(&format!("{prefix}[{i}]"), &[c, h, w])?;
        }
        Ok((c, h, w))
    }

    fn rcn(&mut self, cfg: &RcnConfig) -> Result<()> {
        let c = cfg.channels;
        let (h, w) = (cfg.input_size.height, cfg.input_size.width);
        for (l, &k) in cfg.down_kernels.iter().enumerate() {
            for j in 0..cfg.down_convs {
                let cin = if l == 0 && j == 0 { cfg.in_channels } else { c };
                self.conv(&format!("down.{l}.{j}"), cin, c, k)?;
            }
        }
        for (l, &k) in cfg.up_kernels.iter().enumerate() {
            for j in 0..cfg.up_convs {
                let cin = if j == 0 { mul("channels", 2, c)? } else { c };
                self.conv(&format!("up.{l}.{j}"), cin, c, k)?;
            }
        }
        self.conv("output", c, cfg.num_landmarks, cfg.output_kernel)?;
        // The largest maps are at full resolution: C down features, 2C after the first
        // concatenation (when there is a level to come up from), K outputs.
        let widest = if cfg.levels > 0 {
            mul("channels", 2, c)?
        } else {
            c
        };
        self.feature("channels", &[widest, h, w])?;
        self.feature("num_landmarks", &[cfg.num_landmarks, h, w])?;
        self.heads(&cfg.heads, mul("num_landmarks", 2, cfg.num_landmarks)?)
    }
}

/// The plan of a structurally valid config (see [`crate::ModelConfig::validate_within`];
/// sizes beyond any limit only make products overflow, which is an error here too).
pub(crate) fn plan(cfg: &ModelConfig) -> Result<Plan> {
    let mut b = Builder::new();
    let (h, w) = cfg.input_size();
    let in_ch = cfg.in_channels();
    b.feature("input_size", &[in_ch, h, w])?;
    let two_k = mul("num_landmarks", 2, cfg.num_landmarks())?;
    match cfg {
        ModelConfig::SeqMt(c) => {
            b.convs("convs", &c.convs, in_ch, h, w)?;
            b.heads(&c.heads, two_k)?;
        }
        ModelConfig::CommMt(c) => {
            let (ch, hh, ww) = b.stack("trunk", &c.trunk, in_ch, h, w)?;
            let mut d = product("trunk", &[ch, hh, ww])?;
            for (i, &u) in c.shared_fc.iter().enumerate() {
                b.linear(&format!("shared.fc{i}"), d, u)?;
                b.feature(&format!("shared_fc[{i}]"), &[u])?;
                d = u;
            }
            b.linear("landmark_fc", d, two_k)?;
            b.heads(&c.heads, d)?;
        }
        ModelConfig::HeatmapMt(c) => {
            b.convs("convs", &c.convs, in_ch, h, w)?;
            let (bc, bh, bw) = b.stack("branch", &c.branch, c.num_landmarks, h, w)?;
            let d = product("branch", &[bc, bh, bw])?;
            b.heads(&c.heads, d)?;
        }
        ModelConfig::Rcn(c) => b.rcn(c)?,
    }
    Ok(b.plan)
}

/// The name of the weight of the convolution that reads the input images, (out,
/// `in_channels`, k, k): `convs.0.weight` (Seq-MT, Heatmap-MT), `trunk.{i}.weight` for the
/// first conv of Comm-MT's trunk, `down.0.0.weight` (RCN). `None` for a Comm-MT trunk
/// without a conv (its first FC layer then reads the flattened images).
pub(crate) fn first_conv_weight(cfg: &ModelConfig) -> Option<String> {
    match cfg {
        ModelConfig::SeqMt(_) | ModelConfig::HeatmapMt(_) => Some("convs.0.weight".into()),
        ModelConfig::CommMt(c) => c
            .trunk
            .iter()
            .position(|l| matches!(l, LayerSpec::Conv { .. }))
            .map(|i| format!("trunk.{i}.weight")),
        ModelConfig::Rcn(_) => Some("down.0.0.weight".into()),
    }
}
