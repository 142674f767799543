//! Seq-MT (Tables S11-S13): a localisation network of stride-1 SAME convs (ReLU on every
//! one, the last included; `seqmt-blocks` makes the last one leaky, see
//! [`crate::SEQMT_MAP_NEGATIVE_SLOPE`]) giving K maps at input resolution, a soft-argmax
//! giving K points, and one MLP head per attribute reading the 2K coordinates.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use landmark_ssl_ops::conv::Conv2d;

use crate::config::SeqMtConfig;
use crate::error::Result;
use crate::layers::{
    check_images, conv_same, conv_with_slope, coords_to_features, soft_argmax, AttributeHeads,
};
use crate::ModelOutput;

/// The Seq-MT network. Weights: `convs.{i}.{weight,bias}`, `heads.{name}.fc{j}.{weight,bias}`.
#[derive(Debug, Clone)]
pub struct SeqMt {
    cfg: SeqMtConfig,
    convs: Vec<Conv2d>,
    heads: AttributeHeads,
}

impl SeqMt {
    /// Creates the weights under `vb`. The config should be validated
    /// ([`crate::ModelConfig::validate`]; [`crate::LandmarkModel::new`] does it).
    pub fn new(cfg: &SeqMtConfig, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::with_capacity(cfg.convs.len());
        let mut c = cfg.in_channels;
        for (i, s) in cfg.convs.iter().enumerate() {
            convs.push(conv_same(c, s.channels, s.kernel, vb.pp("convs").pp(i))?);
            c = s.channels;
        }
        let in_dim = 2 * cfg.num_landmarks;
        let heads = AttributeHeads::new(in_dim, &cfg.heads, &vb)?;
        Ok(Self {
            cfg: cfg.clone(),
            convs,
            heads,
        })
    }

    /// The K maps (B, K, H, W) after the last activation (ReLU, leaky ReLU or linear, by
    /// `map_negative_slope`), from images (B, C, H, W).
    pub fn maps(&self, images: &Tensor) -> Result<Tensor> {
        let mut x = images.clone();
        let slope = self.cfg.map_negative_slope;
        let last = self.convs.len().saturating_sub(1);
        for (i, c) in self.convs.iter().enumerate() {
            x = if i == last {
                conv_with_slope(c, &x, slope)?
            } else {
                c.forward_relu(&x)?
            };
        }
        Ok(x)
    }

    /// images (B, C, H, W) -> maps (B, K, H, W), landmarks (B, K, 2) in input pixels
    /// (soft-argmax with `beta`), one (B, n) output per head (dropout only when `train`).
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput> {
        check_images(images, self.cfg.in_channels, self.cfg.input_size)?;
        let maps = self.maps(images)?;
        let landmarks = soft_argmax(&maps, self.cfg.beta)?;
        let attributes = self.heads.forward_t(
            || coords_to_features(&landmarks, self.cfg.coord_scale, self.cfg.input_size),
            train,
        )?;
        Ok(ModelOutput {
            maps: Some(maps),
            landmarks,
            attributes,
        })
    }
}
