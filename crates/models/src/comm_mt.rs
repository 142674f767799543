//! Comm-MT (Table S9): a conv + pool trunk, shared FC layers, then a landmark-regression
//! branch (FC, 2K linear outputs) and one classification / regression head per attribute.

use candle_core::Tensor;
use candle_nn::{Linear, VarBuilder};
use landmark_ssl_ops::conv::Conv2d;

use crate::config::{CommMtConfig, LayerSpec};
use crate::error::Result;
use crate::layers::{
    check_images, conv_same, fc_stack, features_to_coords, flatten, max_pool2x2, AttributeHeads,
    Dropout,
};
use crate::ModelOutput;

/// One trunk layer.
#[derive(Debug, Clone)]
pub(crate) enum Stage {
    Conv(Conv2d),
    Pool,
}

/// Builds a conv/pool stack under `vb` (`{i}.weight` for the conv at layer index `i`) and
/// returns it with its output (channels, height, width).
pub(crate) fn build_stack(
    layers: &[LayerSpec],
    in_ch: usize,
    h: usize,
    w: usize,
    vb: VarBuilder,
) -> Result<(Vec<Stage>, (usize, usize, usize))> {
    let (mut c, mut h, mut w) = (in_ch, h, w);
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        match *l {
            LayerSpec::Conv { kernel, channels } => {
                out.push(Stage::Conv(conv_same(c, channels, kernel, vb.pp(i))?));
                c = channels;
            }
            LayerSpec::Pool => {
                out.push(Stage::Pool);
                h /= 2;
                w /= 2;
            }
        }
    }
    Ok((out, (c, h, w)))
}

/// Runs a conv (ReLU) / pool stack.
pub(crate) fn run_stack(stack: &[Stage], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for s in stack {
        x = match s {
            Stage::Conv(c) => c.forward_relu(&x)?,
            Stage::Pool => max_pool2x2(&x)?,
        };
    }
    Ok(x)
}

/// The Comm-MT network. Weights: `trunk.{layer}.*`, `shared.fc{i}.*`, `landmark_fc.*`,
/// `heads.{name}.fc{j}.*`.
#[derive(Debug, Clone)]
pub struct CommMt {
    cfg: CommMtConfig,
    trunk: Vec<Stage>,
    shared: Vec<Linear>,
    dropout: Option<Dropout>,
    landmark_fc: Linear,
    heads: AttributeHeads,
}

impl CommMt {
    /// Creates the weights under `vb` (config validated by the caller).
    pub fn new(cfg: &CommMtConfig, vb: VarBuilder) -> Result<Self> {
        let s = cfg.input_size;
        let (trunk, (c, h, w)) = build_stack(
            &cfg.trunk,
            cfg.in_channels,
            s.height,
            s.width,
            vb.pp("trunk"),
        )?;
        let mut d = c * h * w;
        let mut shared = Vec::with_capacity(cfg.shared_fc.len());
        for (i, &u) in cfg.shared_fc.iter().enumerate() {
            shared.push(candle_nn::linear(
                d,
                u,
                vb.pp("shared").pp(format!("fc{i}")),
            )?);
            d = u;
        }
        let landmark_fc = candle_nn::linear(d, 2 * cfg.num_landmarks, vb.pp("landmark_fc"))?;
        let heads = AttributeHeads::new(d, &cfg.heads, &vb)?;
        let dropout = (cfg.dropout > 0.0).then(|| Dropout::new(cfg.dropout as f32));
        Ok(Self {
            cfg: cfg.clone(),
            trunk,
            shared,
            dropout,
            landmark_fc,
            heads,
        })
    }

    /// images (B, C, H, W) -> landmarks (B, K, 2) in input pixels (the branch's output
    /// rescaled per `coord_scale`), attributes (B, n) per head; `maps` is None.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput> {
        check_images(images, self.cfg.in_channels, self.cfg.input_size)?;
        let x = flatten(&run_stack(&self.trunk, images)?)?;
        let f = fc_stack(&self.shared, self.dropout.as_ref(), &x, train, true)?;
        let raw = candle_core::Module::forward(&self.landmark_fc, &f)?;
        let landmarks = features_to_coords(
            &raw,
            self.cfg.num_landmarks,
            self.cfg.coord_scale,
            self.cfg.input_size,
        )?;
        let attributes = self.heads.forward_t(|| Ok(f), train)?;
        Ok(ModelOutput {
            maps: None,
            landmarks,
            attributes,
        })
    }
}
