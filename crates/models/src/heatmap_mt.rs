//! Heatmap-MT (Table S10): the Seq-MT trunk gives K maps; landmarks by a per-pixel softmax
//! (or soft-argmax, Table S4); the attribute branch reads the pre-softmax maps through pools
//! and convs, then FC heads.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use landmark_ssl_ops::conv::Conv2d;

use crate::comm_mt::{build_stack, run_stack, Stage};
use crate::config::{HeatmapMtConfig, LandmarkKind, Readout};
use crate::error::Result;
use crate::layers::{
    check_images, conv_same, conv_with_slope, flatten, hard_argmax, soft_argmax, AttributeHeads,
};
use crate::ModelOutput;

/// The Heatmap-MT network. Weights: `convs.{i}.*`, `branch.{layer}.*`, `heads.{name}.fc{j}.*`.
#[derive(Debug, Clone)]
pub struct HeatmapMt {
    cfg: HeatmapMtConfig,
    convs: Vec<Conv2d>,
    branch: Vec<Stage>,
    heads: AttributeHeads,
}

impl HeatmapMt {
    /// Creates the weights under `vb` (config validated by the caller).
    pub fn new(cfg: &HeatmapMtConfig, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::with_capacity(cfg.convs.len());
        let mut c = cfg.in_channels;
        for (i, s) in cfg.convs.iter().enumerate() {
            convs.push(conv_same(c, s.channels, s.kernel, vb.pp("convs").pp(i))?);
            c = s.channels;
        }
        let s = cfg.input_size;
        let (branch, (bc, bh, bw)) = build_stack(
            &cfg.branch,
            cfg.num_landmarks,
            s.height,
            s.width,
            vb.pp("branch"),
        )?;
        let d = bc * bh * bw;
        let heads = AttributeHeads::new(d, &cfg.heads, &vb)?;
        Ok(Self {
            cfg: cfg.clone(),
            convs,
            branch,
            heads,
        })
    }

    /// images (B, C, H, W) -> maps (B, K, H, W) (after the trunk's last activation, before any
    /// softmax), landmarks (B, K, 2) in input pixels (soft-argmax, or the `readout` of a
    /// softmax model), attributes (B, n) per head.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput> {
        check_images(images, self.cfg.in_channels, self.cfg.input_size)?;
        let mut maps = images.clone();
        let last = self.convs.len().saturating_sub(1);
        for (i, c) in self.convs.iter().enumerate() {
            maps = if i == last {
                conv_with_slope(c, &maps, self.cfg.map_negative_slope)?
            } else {
                c.forward_relu(&maps)?
            };
        }
        let landmarks = match (self.cfg.landmark_kind, self.cfg.readout) {
            (LandmarkKind::SoftArgmax, _) | (LandmarkKind::Softmax, Readout::SoftArgmax) => {
                soft_argmax(&maps, self.cfg.beta)?
            }
            (LandmarkKind::Softmax, Readout::HardArgmax) => hard_argmax(&maps)?,
        };
        let attributes = self
            .heads
            .forward_t(|| flatten(&run_stack(&self.branch, &maps)?), train)?;
        Ok(ModelOutput {
            maps: Some(maps),
            landmarks,
            attributes,
        })
    }
}
