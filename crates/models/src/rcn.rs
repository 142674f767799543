//! The Recombinator Network (RCN, Honari et al. CVPR 2016; Fig. S3) and RCN+ (the same with
//! soft-argmax, plus optional attribute heads on the coordinates). See
//! [`crate::RcnConfig`] for the exact layer structure.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use landmark_ssl_ops::conv::Conv2d;

use crate::config::{LandmarkKind, RcnConfig, Readout};
use crate::error::Result;
use crate::layers::{
    check_images, conv_same, coords_to_features, hard_argmax, max_pool2x2, soft_argmax,
    upsample_to, AttributeHeads,
};
use crate::ModelOutput;

/// The RCN / RCN+ network. Weights: `down.{level}.{j}.*`, `up.{level}.{j}.*`, `output.*`,
/// `heads.{name}.fc{j}.*`.
#[derive(Debug, Clone)]
pub struct Rcn {
    cfg: RcnConfig,
    /// `down[l]`: the convs at level l (l = 0 is the input resolution).
    down: Vec<Vec<Conv2d>>,
    /// `up[l]`: the convs after the concatenation at level l (l < levels).
    up: Vec<Vec<Conv2d>>,
    output: Conv2d,
    heads: AttributeHeads,
}

impl Rcn {
    /// Creates the weights under `vb` (config validated by the caller).
    pub fn new(cfg: &RcnConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.channels;
        let mut down = Vec::with_capacity(cfg.levels + 1);
        for (l, &k) in cfg.down_kernels.iter().enumerate() {
            let vbl = vb.pp("down").pp(l);
            let mut convs = Vec::with_capacity(cfg.down_convs);
            for j in 0..cfg.down_convs {
                let cin = if l == 0 && j == 0 { cfg.in_channels } else { c };
                convs.push(conv_same(cin, c, k, vbl.pp(j))?);
            }
            down.push(convs);
        }
        let mut up = Vec::with_capacity(cfg.levels);
        for (l, &k) in cfg.up_kernels.iter().enumerate() {
            let vbl = vb.pp("up").pp(l);
            let mut convs = Vec::with_capacity(cfg.up_convs);
            for j in 0..cfg.up_convs {
                let cin = if j == 0 { 2 * c } else { c };
                convs.push(conv_same(cin, c, k, vbl.pp(j))?);
            }
            up.push(convs);
        }
        let output = conv_same(c, cfg.num_landmarks, cfg.output_kernel, vb.pp("output"))?;
        let in_dim = 2 * cfg.num_landmarks;
        let heads = AttributeHeads::new(in_dim, &cfg.heads, &vb)?;
        Ok(Self {
            cfg: cfg.clone(),
            down,
            up,
            output,
            heads,
        })
    }

    /// The K linear maps (B, K, H, W) from images (B, C, H, W).
    pub fn maps(&self, images: &Tensor) -> Result<Tensor> {
        let mut feats: Vec<Tensor> = Vec::with_capacity(self.down.len());
        let mut x = images.clone();
        for (l, convs) in self.down.iter().enumerate() {
            if l > 0 {
                x = max_pool2x2(&x)?;
            }
            for c in convs {
                x = c.forward_relu(&x)?;
            }
            feats.push(x.clone());
        }
        let mut g = x;
        for l in (0..self.up.len()).rev() {
            let skip = &feats[l];
            let (_, _, h, w) = skip.dims4()?;
            let u = upsample_to(&g, h, w)?;
            g = Tensor::cat(&[&u, skip], 1)?;
            for c in &self.up[l] {
                g = c.forward_relu(&g)?;
            }
        }
        Ok(self.output.forward(&g)?)
    }

    /// images (B, C, H, W) -> maps (B, K, H, W) (linear, pre-softmax), landmarks (B, K, 2)
    /// in input pixels (soft-argmax for RCN+, the `readout` for RCN), attributes per head.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<ModelOutput> {
        check_images(images, self.cfg.in_channels, self.cfg.input_size)?;
        let maps = self.maps(images)?;
        let landmarks = match (self.cfg.landmark_kind, self.cfg.readout) {
            (LandmarkKind::SoftArgmax, _) | (LandmarkKind::Softmax, Readout::SoftArgmax) => {
                soft_argmax(&maps, self.cfg.beta)?
            }
            (LandmarkKind::Softmax, Readout::HardArgmax) => hard_argmax(&maps)?,
        };
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
