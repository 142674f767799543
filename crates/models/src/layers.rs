//! Building blocks shared by the families: SAME convolutions (the ops crate's fast
//! [`Conv2d`]), 2x2 max-pooling and x2 nearest upsampling with correct gradients, MLP heads,
//! and the coordinate read-outs.

use candle_core::{DType, Module, Tensor};
use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_nn::{Linear, VarBuilder};
use landmark_ssl_ops::conv::{conv2d, Conv2d, Conv2dConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{CoordScale, HeadConfig, InputSize};
use crate::error::{Error, Result};

/// A stride-1 SAME convolution (`padding = kernel / 2`), weights `weight` (out, in, k, k)
/// and `bias` (out) under `vb`.
pub(crate) fn conv_same(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Ok(conv2d(
        in_ch,
        out_ch,
        kernel,
        Conv2dConfig::same(kernel),
        vb,
    )?)
}

/// 2x2 max-pool with stride 2: (B, C, H, W) -> (B, C, floor(H/2), floor(W/2)); an odd last
/// row / column is dropped (as candle's and PyTorch's default pooling do).
///
/// Built from candle ops whose backward is right: crop to even size, reshape to
/// (B, C, H/2, 2, W/2, 2), max over the two window axes. The gradient of each window goes to
/// its maximum (to every element of an exact tie). candle's own `max_pool2d` backward is not
/// used: it scales the gradient by the window's mean of the max mask (1/4 for a unique
/// maximum) and misplaces it on odd sizes (see `tests/gradients.rs`).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        return Err(Error::Shape {
            op: "max_pool2x2",
            arg: "x",
            expected: "(B, C, H, W) with H, W >= 2".into(),
            got: x.dims().to_vec(),
        });
    }
    let (h2, w2) = (h / 2, w / 2);
    let x = if 2 * h2 != h || 2 * w2 != w {
        x.narrow(2, 0, 2 * h2)?.narrow(3, 0, 2 * w2)?
    } else {
        x.clone()
    };
    Ok(x.reshape((b, c, h2, 2, w2, 2))?.max(5)?.max(3)?)
}

/// x2 nearest-neighbour upsampling, (B, C, H, W) -> (B, C, 2H, 2W), built from candle ops
/// whose gradient accumulates correctly: reshape to (B, C, H, 1, W, 1), broadcast to
/// (B, C, H, 2, W, 2), reshape. Its backward sums each 2x2 block of the output gradient and
/// *adds* it to the input's gradient (stock candle 0.11's `upsample_nearest2d` backward
/// overwrites the input's accumulated gradient instead, which is wrong when the input has
/// other consumers; the workspace's patched candle-core fixes that, but crates that use
/// this one may build on stock candle).
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    Ok(x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, 2 * h, 2 * w))?)
}

/// x2 nearest upsampling of `x` (B, C, h, w) to exactly (B, C, H, W) with H in {2h, 2h+1}
/// (likewise W): an odd target repeats the last row / column. Gradients accumulate.
pub(crate) fn upsample_to(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (_, _, xh, xw) = x.dims4()?;
    if h < 2 * xh || h > 2 * xh + 1 || w < 2 * xw || w > 2 * xw + 1 {
        return Err(Error::Shape {
            op: "upsample_to",
            arg: "x",
            expected: format!("(B, C, h, w) with {h} in [2h, 2h+1] and {w} in [2w, 2w+1]"),
            got: x.dims().to_vec(),
        });
    }
    let mut u = upsample_nearest2x(x)?;
    if h == 2 * xh + 1 {
        let last = u.narrow(2, 2 * xh - 1, 1)?;
        u = Tensor::cat(&[&u, &last], 2)?;
    }
    if w == 2 * xw + 1 {
        let last = u.narrow(3, 2 * xw - 1, 1)?;
        u = Tensor::cat(&[&u, &last], 3)?;
    }
    Ok(u)
}

thread_local! {
    /// The dropout masks' random stream of this thread (see [`seed_dropout`]).
    static DROPOUT_RNG: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0x5EED));
}

/// Seeds the dropout masks drawn on the calling thread from now on.
///
/// candle's own dropout draws from an unseedable generator, so training could not be
/// reproduced; the models' [`Dropout`] draws from a per-thread stream instead. The trainer
/// seeds it before each step from (experiment seed, epoch, step), which makes runs, and
/// runs resumed from a checkpoint, repeatable. Unseeded, each thread starts from a fixed
/// seed.
pub fn seed_dropout(seed: u64) {
    DROPOUT_RNG.with(|r| *r.borrow_mut() = ChaCha8Rng::seed_from_u64(seed));
}

/// Inverted dropout with a seedable mask stream ([`seed_dropout`]): in training each
/// element is zeroed with probability `p` and the others scaled by 1 / (1 - p); identity
/// otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Dropout with probability `p` in [0, 1).
    pub fn new(p: f32) -> Self {
        Self { p }
    }

    /// x of any shape -> the same shape.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let n = x.elem_count();
        let mask: Vec<f32> = DROPOUT_RNG.with(|r| {
            let mut rng = r.borrow_mut();
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect()
        });
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// An MLP attribute head: `hidden` layers `fc0..` (linear, ReLU, dropout in training), then a
/// linear output layer `fc{hidden.len()}`. (B, in) -> (B, n).
#[derive(Debug, Clone)]
pub struct MlpHead {
    layers: Vec<Linear>,
    dropout: Option<Dropout>,
}

impl MlpHead {
    /// Creates the head's weights under `vb` (`fc{i}.weight` (out, in), `fc{i}.bias` (out));
    /// the output layer's are zeros when `cfg.zero_init_output`.
    pub fn new(in_dim: usize, cfg: &HeadConfig, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::new();
        let mut d = in_dim;
        for (i, &out) in cfg.hidden.iter().enumerate() {
            layers.push(candle_nn::linear(d, out, vb.pp(format!("fc{i}")))?);
            d = out;
        }
        let (n, vb_out) = (cfg.kind.outputs(), vb.pp(format!("fc{}", cfg.hidden.len())));
        layers.push(if cfg.zero_init_output {
            let zero = candle_nn::Init::Const(0.0);
            let w = vb_out.get_with_hints((n, d), "weight", zero)?;
            let b = vb_out.get_with_hints(n, "bias", zero)?;
            Linear::new(w, Some(b))
        } else {
            candle_nn::linear(d, n, vb_out)?
        });
        let dropout = (cfg.dropout > 0.0).then(|| Dropout::new(cfg.dropout as f32));
        Ok(Self { layers, dropout })
    }

    /// (B, in) -> (B, n); dropout after each hidden ReLU only when `train`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        fc_stack(&self.layers, self.dropout.as_ref(), x, train, false)
    }
}

/// A model's attribute heads: one [`MlpHead`] per configured head, in the config's order,
/// with weights under `heads.{name}.`.
#[derive(Debug, Clone)]
pub(crate) struct AttributeHeads(Vec<(String, MlpHead)>);

impl AttributeHeads {
    /// Creates the heads of `configs`, each reading `in_dim` features, under `vb.pp("heads")`.
    pub(crate) fn new(in_dim: usize, configs: &[HeadConfig], vb: &VarBuilder) -> Result<Self> {
        let vb = vb.pp("heads");
        let heads = configs
            .iter()
            .map(|h| Ok((h.name.clone(), MlpHead::new(in_dim, h, vb.pp(&h.name))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(heads))
    }

    /// Each head's (B, n) output by name. `features` gives the heads' (B, in_dim) input and
    /// is called only when there is a head; dropout only when `train`.
    pub(crate) fn forward_t(
        &self,
        features: impl FnOnce() -> Result<Tensor>,
        train: bool,
    ) -> Result<BTreeMap<String, Tensor>> {
        let mut outputs = BTreeMap::new();
        if self.0.is_empty() {
            return Ok(outputs);
        }
        let f = features()?;
        for (name, h) in &self.0 {
            outputs.insert(name.clone(), h.forward_t(&f, train)?);
        }
        Ok(outputs)
    }
}

/// Applies linear layers; every layer but the last (or every layer when `all_relu`) is
/// followed by ReLU and, when training, dropout.
pub(crate) fn fc_stack(
    layers: &[Linear],
    dropout: Option<&Dropout>,
    x: &Tensor,
    train: bool,
    all_relu: bool,
) -> Result<Tensor> {
    let mut x = x.clone();
    let n = layers.len();
    for (i, l) in layers.iter().enumerate() {
        x = l.forward(&x)?;
        if all_relu || i + 1 < n {
            x = x.relu()?;
            if let Some(d) = dropout {
                x = d.forward(&x, train)?;
            }
        }
    }
    Ok(x)
}

/// Checks that `images` is (B, C, H, W) f32 with C = the model's `in_channels` and (H, W)
/// = its input size.
pub(crate) fn check_images(images: &Tensor, in_channels: usize, size: InputSize) -> Result<()> {
    let d = images.dims();
    let ok = d.len() == 4
        && d[0] > 0
        && d[1] == in_channels
        && d[2] == size.height
        && d[3] == size.width
        && images.dtype() == DType::F32;
    if !ok {
        return Err(Error::Shape {
            op: "LandmarkModel::forward_t",
            arg: "images",
            expected: format!(
                "(B >= 1, C = {in_channels}, {}, {}) f32: the model takes \
                 {in_channels}-channel images (got dtype {:?})",
                size.height,
                size.width,
                images.dtype()
            ),
            got: d.to_vec(),
        });
    }
    Ok(())
}

/// The last trunk conv with its activation: a ReLU for `slope` 0, a leaky ReLU
/// `max(z, slope z)` for `slope` in (0, 1), linear for 1.
pub(crate) fn conv_with_slope(conv: &Conv2d, x: &Tensor, slope: f64) -> Result<Tensor> {
    if slope <= 0.0 {
        return Ok(conv.forward_relu(x)?);
    }
    let z = conv.forward(x)?;
    if slope >= 1.0 {
        Ok(z)
    } else {
        Ok(z.maximum(&(&z * slope)?)?)
    }
}

/// Soft-argmax (Eq. 1): (B, K, H, W) maps -> (B, K, 2) points (x, y) in map pixels,
/// `sum_ij softmax(beta M)_ij (j, i)`. Delegates to the ops crate's fused kernel.
pub(crate) fn soft_argmax(maps: &Tensor, beta: f64) -> Result<Tensor> {
    Ok(landmark_ssl_ops::soft_argmax(maps, beta)?)
}

/// Hard argmax read-out: (B, K, H, W) -> (B, K, 2) (x, y) of each map's largest value,
/// refined to sub-pixel (quarter pixel towards the larger neighbour) by the ops crate. Not
/// differentiable.
pub(crate) fn hard_argmax(maps: &Tensor) -> Result<Tensor> {
    Ok(landmark_ssl_ops::hard_argmax_subpixel(&maps.detach())?)
}

/// Pixels -> the network's coordinate scale: (B, K, 2) -> (B, 2K) flattened
/// `(x0, y0, x1, y1, ...)`.
pub(crate) fn coords_to_features(
    points: &Tensor,
    scale: CoordScale,
    size: InputSize,
) -> Result<Tensor> {
    let (b, k, _) = points.dims3()?;
    let p = match scale {
        CoordScale::Pixels => points.clone(),
        CoordScale::Unit => {
            let (sx, sy) = unit_factors(size);
            let s = Tensor::new(&[sx as f32, sy as f32], points.device())?.reshape((1, 1, 2))?;
            points.broadcast_mul(&s)?.affine(1.0, -1.0)?
        }
    };
    Ok(p.reshape((b, 2 * k))?)
}

/// The network's coordinate scale -> pixels: (B, 2K) `(x0, y0, ...)` -> (B, K, 2).
pub(crate) fn features_to_coords(
    f: &Tensor,
    k: usize,
    scale: CoordScale,
    size: InputSize,
) -> Result<Tensor> {
    let b = f.dim(0)?;
    let p = f.reshape((b, k, 2))?;
    Ok(match scale {
        CoordScale::Pixels => p,
        CoordScale::Unit => {
            let (sx, sy) = unit_factors(size);
            let s = Tensor::new(&[(1.0 / sx) as f32, (1.0 / sy) as f32], f.device())?
                .reshape((1, 1, 2))?;
            p.affine(1.0, 1.0)?.broadcast_mul(&s)?
        }
    })
}

/// `u = sx * x - 1` maps 0..W-1 to [-1, 1]: `sx = 2 / (W - 1)` (2 when W = 1).
fn unit_factors(size: InputSize) -> (f64, f64) {
    let f = |n: usize| 2.0 / (n.max(2) - 1) as f64;
    (f(size.width), f(size.height))
}

/// Flattens (B, C, H, W) to (B, C*H*W).
pub(crate) fn flatten(x: &Tensor) -> Result<Tensor> {
    Ok(x.flatten_from(1)?)
}
