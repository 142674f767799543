//! Fast 2-D convolution for the CPU, with bias and optional fused ReLU, as candle custom ops.
//!
//! Tensors are NCHW: input `x` (B, I, H, W), weight `w` (O, I, kh, kw), bias `b` (O), output
//! (B, O, H_out, W_out) with `H_out = (H + 2 padding - kh) / stride + 1` (cross-correlation,
//! as in candle and PyTorch). [`Conv2d`] is a drop-in for `candle_nn::Conv2d` (same variable
//! names `weight` and `bias`, same initialisation in [`conv2d`]).
//!
//! Paths ([`conv2d_fast`]):
//! * CPU, f32/f64, `padding < kernel`, any stride: a candle `CustomOp2`/`CustomOp3` with a
//!   multi-threaded (rayon) forward and backward. Backward returns the weight and bias
//!   gradients, and the input gradient only when the input is tracked (a `Var` or the result
//!   of a tracked op): the first layer on images skips it. ReLU ([`Conv2d::forward_relu`]) is
//!   fused: applied when writing the output, its mask applied while reading the gradient.
//!   Stride 1 is computed directly; larger strides subsample the stride-1 result.
//! * f32 kernels ([`cpu_kernel`]): direct convolution with AVX-512F (inline assembly) or
//!   AVX2 + FMA micro-kernels that read the zero-padded input planes in place (no im2col);
//!   otherwise, and for f64, GEMMs through the `gemm` crate on strided views of a
//!   channels-last copy of the input.
//! * Other devices (CUDA: cuDNN), dtypes or paddings: candle's `conv2d` ([`conv2d_reference`]).
//!
//! Environment (read once): `LANDMARK_SSL_CONV_KERNEL=gemm` forces the GEMM kernels,
//! `LANDMARK_SSL_CONV_NO_AVX512=1` the AVX2 ones, `LANDMARK_SSL_CONV_NO_AVX2=1` the GEMM
//! ones (as on a CPU without AVX2, which has no AVX-512 either).
//!
//! This file holds the entry points and the choice of path; the rest lives in `conv/`:
//! `layer.rs` ([`Conv2d`], [`Conv2dConfig`], [`conv2d`], [`conv2d_no_bias`]), `shapes.rs`
//! (the argument checks), `geom.rs` (the stride-1 geometry both CPU kernel families
//! share), `op.rs` (the candle custom op: one forward for both kernel families, the input
//! gradient as a forward convolution with the flipped weight), `gemm.rs` (the GEMM kernels)
//! and `direct.rs` (the AVX-512 and AVX2 kernels).

use candle_core::{DType, Tensor};

use crate::error::Result;

mod direct;
mod gemm;
mod geom;
mod layer;
mod op;
mod shapes;

use geom::Geom;
pub use layer::{conv2d, conv2d_no_bias, Conv2d, Conv2dConfig};
use op::ConvOp;
use shapes::{check_shapes, check_stride};

/// `conv(x, w) + b`: x (B, I, H, W), w (O, I, kh, kw), b (O) -> (B, O, H_out, W_out).
///
/// On the CPU, for f32 and f64 with `padding < min(kh, kw)` (SAME padding of odd kernels
/// included), this runs the GEMM-based kernel of this module, multi-threaded with rayon,
/// with a backward pass that computes the input gradient only when `x` is tracked (a `Var`
/// or the result of a tracked op). Strides above 1 compute the stride-1 convolution and
/// subsample it (correct, not fast: no model of the paper uses them). Other paddings,
/// dtypes and devices defer to candle's `conv2d` (cuDNN on CUDA).
///
/// Errors: `Shape` when the ranks, channels or bias length disagree or the kernel is larger
/// than the padded input; `InvalidArgument` for stride 0.
pub fn conv2d_fast(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_impl(x, w, b, cfg, false)
}

/// `relu(conv(x, w) + b)`, shapes, paths and errors as in [`conv2d_fast`]; on the CPU fast
/// path the ReLU is fused into the convolution's forward and backward.
pub fn conv2d_fast_relu(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_impl(x, w, b, cfg, true)
}

fn conv2d_impl(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
    relu: bool,
) -> Result<Tensor> {
    let geom = check_shapes(x, w, b, cfg)?;
    let dtype_ok = matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && b.is_none_or(|b| b.dtype() == x.dtype());
    let fast = x.device().is_cpu() && dtype_ok && cfg.padding < geom.kh && cfg.padding < geom.kw;
    if !fast {
        return conv2d_reference(x, w, b, cfg, relu);
    }
    if cfg.stride > 1 {
        // The stride-1 convolution subsampled (candle's strided backward mis-sizes the input
        // gradient when (H + 2p - kh) is not a multiple of the stride).
        let full = conv2d_impl(x, w, b, Conv2dConfig { stride: 1, ..cfg }, relu)?;
        let pick = |n: usize| -> Result<Tensor> {
            let idx: Vec<u32> = (0..n).step_by(cfg.stride).map(|i| i as u32).collect();
            Ok(Tensor::new(idx, x.device())?)
        };
        let full = full.index_select(&pick(geom.ho)?, 2)?;
        return Ok(full.index_select(&pick(geom.wo)?, 3)?);
    }
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    let op = ConvOp {
        pad: cfg.padding,
        relu,
    };
    let y = match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op)?,
        None => x.apply_op2(&w, op)?,
    };
    Ok(y)
}

/// The CPU kernel the fast path uses for f32 in this process: `"avx512"` or `"avx2"` (the
/// direct kernels) or `"gemm"` (`LANDMARK_SSL_CONV_KERNEL=gemm`, or a CPU without AVX2;
/// f64 always uses it). `LANDMARK_SSL_CONV_NO_AVX512=1` disables the AVX-512 kernels,
/// `LANDMARK_SSL_CONV_NO_AVX2=1` the AVX2 and AVX-512 ones; set them before the first
/// convolution.
pub fn cpu_kernel() -> &'static str {
    if kernel_choice() == "direct" {
        direct::isa_name().unwrap_or("gemm")
    } else {
        "gemm"
    }
}

/// The kernel family chosen by `LANDMARK_SSL_CONV_KERNEL`: `direct` (default where the CPU
/// has AVX2 + FMA or AVX-512F) or `gemm` (im2col-free GEMM through the `gemm` crate).
fn kernel_choice() -> &'static str {
    static CHOICE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    CHOICE.get_or_init(
        || match std::env::var("LANDMARK_SSL_CONV_KERNEL").as_deref() {
            Ok("gemm") => "gemm",
            _ => "direct",
        },
    )
}

/// The kernel family a convolution of one dtype runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// The direct f32 kernels of [`direct`] (AVX-512F or AVX2 + FMA).
    Direct,
    /// The GEMMs of [`gemm`] (f64, and f32 without the direct kernels).
    Gemm,
}

impl Kernels {
    fn for_dtype(dtype: DType) -> Self {
        if dtype == DType::F32 && kernel_choice() == "direct" && direct::available() {
            Kernels::Direct
        } else {
            Kernels::Gemm
        }
    }
}

/// A raw pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: only used to write disjoint regions from different tasks, see the call sites.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// candle's own convolution (plus bias and ReLU), the path for non-CPU devices and the
/// reference of the tests.
pub fn conv2d_reference(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
    relu: bool,
) -> Result<Tensor> {
    check_stride(cfg)?;
    let mut y = x.conv2d(w, cfg.padding, cfg.stride, 1, 1)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}
