//! The layer: [`Conv2d`] (a drop-in for `candle_nn::Conv2d`), its [`Conv2dConfig`] and the
//! constructors [`conv2d`] and [`conv2d_no_bias`] that create its variables.

use candle_core::{Module, Tensor};

use super::{conv2d_fast, conv2d_fast_relu};

/// Padding and stride of a [`Conv2d`] (the same padding on all four sides, the same stride
/// along both axes). The default is padding 0, stride 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Zero padding added on each side of the input, in pixels.
    pub padding: usize,
    /// Step between output pixels, in input pixels (>= 1).
    pub stride: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
        }
    }
}

impl Conv2dConfig {
    /// SAME padding for an odd `kernel` at stride 1: padding `kernel / 2`, so the output
    /// keeps the input's height and width.
    pub fn same(kernel: usize) -> Self {
        Self {
            padding: kernel / 2,
            stride: 1,
        }
    }
}

/// A 2-D convolution layer, a drop-in for `candle_nn::Conv2d` (weight `weight` (O, I, kh, kw),
/// optional `bias` (O)). `forward` maps (B, I, H, W) to (B, O, H_out, W_out).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Conv2d {
    /// A layer from its weight (O, I, kh, kw), optional bias (O) and configuration.
    pub fn new(weight: Tensor, bias: Option<Tensor>, cfg: Conv2dConfig) -> Self {
        Self { weight, bias, cfg }
    }

    /// The weight (O, I, kh, kw).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias (O), if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The padding and stride.
    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }

    /// `relu(conv(x) + bias)`: (B, I, H, W) -> (B, O, H_out, W_out), with the ReLU fused into
    /// the convolution on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(conv2d_fast_relu(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.cfg,
        )?)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(conv2d_fast(x, &self.weight, self.bias.as_ref(), self.cfg)?)
    }
}

/// A [`Conv2d`] with `weight` (out, in, k, k) and `bias` (out) created under `vb`, with the
/// same initialisation as `candle_nn::conv2d` (Kaiming normal weights, uniform bias in
/// +-1/sqrt(in)).
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: Conv2dConfig,
    vb: candle_nn::VarBuilder,
) -> candle_core::Result<Conv2d> {
    let ws = vb.get_with_hints(
        (out_channels, in_channels, kernel_size, kernel_size),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    let bound = 1. / (in_channels.max(1) as f64).sqrt();
    let bs = vb.get_with_hints(
        out_channels,
        "bias",
        candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    Ok(Conv2d::new(ws, Some(bs), cfg))
}

/// A [`Conv2d`] without bias, `weight` (out, in, k, k) created under `vb` as in
/// `candle_nn::conv2d_no_bias`.
pub fn conv2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: Conv2dConfig,
    vb: candle_nn::VarBuilder,
) -> candle_core::Result<Conv2d> {
    let ws = vb.get_with_hints(
        (out_channels, in_channels, kernel_size, kernel_size),
        "weight",
        candle_nn::init::DEFAULT_KAIMING_NORMAL,
    )?;
    Ok(Conv2d::new(ws, None, cfg))
}
