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
//! `LANDMARK_SSL_CONV_NO_AVX512=1` the AVX2 ones.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

use crate::error::{Error, Result};

mod direct;

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

/// Checks ranks, channels and sizes; returns the stride-1 geometry (used only on the fast
/// path).
fn check_shapes(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Geom> {
    const OP: &str = "conv2d";
    if cfg.stride == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "stride",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let (_, ci, h, wd) = x.dims4().map_err(|_| Error::Shape {
        op: OP,
        arg: "x",
        expected: "(B, I, H, W)".into(),
        got: x.dims().to_vec(),
    })?;
    let (co, wci, kh, kw) = match w.dims() {
        &[o, i, kh, kw] if i == ci && kh > 0 && kw > 0 => (o, i, kh, kw),
        _ => {
            return Err(Error::Shape {
                op: OP,
                arg: "w",
                expected: format!("(O, {ci}, kh, kw) with kh, kw >= 1 (x is {:?})", x.dims()),
                got: w.dims().to_vec(),
            })
        }
    };
    if let Some(b) = b {
        if b.dims() != [co] {
            return Err(Error::Shape {
                op: OP,
                arg: "b",
                expected: format!("({co})"),
                got: b.dims().to_vec(),
            });
        }
    }
    let p = cfg.padding;
    if h + 2 * p < kh || wd + 2 * p < kw {
        return Err(Error::Shape {
            op: OP,
            arg: "x",
            expected: format!("H + 2 * {p} >= {kh} and W + 2 * {p} >= {kw} (kernel {kh}x{kw})"),
            got: x.dims().to_vec(),
        });
    }
    Ok(Geom::new(
        wci,
        h,
        wd,
        co,
        kh,
        kw,
        p.min(kh - 1),
        p.min(kw - 1),
    ))
}

// ---------------------------------------------------------------------------------------
// The CPU kernel.
//
// Stride 1. The output is computed on the padded width `wp = W + 2 pw`: output position
// p = y * wp + x (x < wp, the columns x >= W_out being discarded). With the padded input in
// channels-last order xcl[q][i] (q = row * wp + col), the input patch of output p at kernel
// offset (dy, dx) is xcl[p + dy * wp + dx][.], so for a fixed dy the whole (dx, i) patch row
// is contiguous: the im2col matrix is a strided view of xcl with row stride I (rows overlap),
// no copy. When kw * I is small (few channels), `r = kh` kernel rows are merged into one GEMM
// by replicating xcl kh times (e[q][rr][i] = xcl[q + rr * wp][i], the rows of the patch
// matrix then have stride kh * I), otherwise `r = 1` and kh GEMMs accumulate. Work is split
// into (image, band of output rows) tasks spread over rayon, each GEMM single-threaded.
// ---------------------------------------------------------------------------------------

/// Below this many elements per kernel row (kw * I), kernel rows are merged into one GEMM.
const MERGE_BELOW: usize = 256;
/// Target size (elements) of a task's patch buffer.
const BAND_TARGET: usize = 96 * 1024;

/// The CPU kernel the fast path uses for f32 in this process: `"avx512"` or `"avx2"` (the
/// direct kernels) or `"gemm"` (`LANDMARK_SSL_CONV_KERNEL=gemm`, or a CPU without AVX2;
/// f64 always uses it). `LANDMARK_SSL_CONV_NO_AVX512=1` disables the AVX-512 kernels.
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

#[derive(Debug, Clone, Copy)]
struct Geom {
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
    wp: usize,
    /// Kernel rows merged per GEMM: kh or 1.
    r: usize,
    /// Output rows per task.
    band: usize,
}

impl Geom {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ci: usize,
        h: usize,
        w: usize,
        co: usize,
        kh: usize,
        kw: usize,
        ph: usize,
        pw: usize,
    ) -> Self {
        let wp = w + 2 * pw;
        let ho = (h + 2 * ph + 1).saturating_sub(kh);
        let wo = (wp + 1).saturating_sub(kw);
        let r = if kw * ci < MERGE_BELOW { kh } else { 1 };
        let row_elems = (wp * r * ci).max(1);
        let band = (BAND_TARGET / row_elems).clamp(1, ho.max(1));
        // Even bands.
        let nb = ho.max(1).div_ceil(band);
        let band = ho.max(1).div_ceil(nb);
        Self {
            ci,
            h,
            w,
            co,
            kh,
            kw,
            ph,
            pw,
            ho,
            wo,
            wp,
            r,
            band,
        }
    }
    /// The geometry of the input gradient as a forward convolution of the output gradient
    /// (channels swapped, padding kh - 1 - ph).
    fn input_grad_geom(&self) -> Geom {
        Geom::new(
            self.co,
            self.ho,
            self.wo,
            self.ci,
            self.kh,
            self.kw,
            self.kh - 1 - self.ph,
            self.kw - 1 - self.pw,
        )
    }

    fn passes(&self) -> usize {
        self.kh / self.r
    }
    /// Inner GEMM dimension: kw * r * I.
    fn kdim(&self) -> usize {
        self.kw * self.r * self.ci
    }
    fn nbands(&self) -> usize {
        self.ho.div_ceil(self.band)
    }
    fn in_len(&self) -> usize {
        self.ci * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.co * self.ho * self.wo
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

/// Per-thread buffers.
struct Bufs<T> {
    xcl: Vec<T>,
    e: Vec<T>,
    c: Vec<T>,
}

impl<T: WithDType> Bufs<T> {
    fn new() -> Self {
        Self {
            xcl: Vec::new(),
            e: Vec::new(),
            c: Vec::new(),
        }
    }
}

/// Builds the patch buffer of output rows [y0, y0 + rows) of one image into `bufs.e` (when
/// r > 1) or `bufs.xcl` (r = 1); returns whether it is in `e`.
fn build_patches<T: WithDType>(
    g: &Geom,
    x: &[T],
    y0: usize,
    rows: usize,
    bufs: &mut Bufs<T>,
) -> bool {
    let zero = T::from_f64(0.0);
    let (ci, wp, r) = (g.ci, g.wp, g.r);
    // Positions q (relative to q0) needed by the band: rows * wp + kw - 1 plus the
    // (passes - 1) * wp rows of the later passes, plus (r - 1) * wp for the replication.
    let nq = rows * wp + g.kw - 1 + (g.passes() - 1) * wp;
    let nx = nq + (r - 1) * wp;
    let q0 = y0 * wp;
    let xcl = &mut bufs.xcl;
    xcl.clear();
    xcl.resize(nx * ci, zero);
    let (h, w) = (g.h, g.w);
    // Padded rows touched: [q0 / wp, (q0 + nx - 1) / wp].
    let prow_lo = q0 / wp;
    let prow_hi = (q0 + nx - 1) / wp;
    for prow in prow_lo..=prow_hi {
        if prow < g.ph || prow >= g.ph + h {
            continue;
        }
        let y = prow - g.ph;
        let qrow = prow * wp + g.pw; // position of x = 0
                                     // Valid x: q0 <= qrow + x < q0 + nx.
        let xs = q0.saturating_sub(qrow);
        let xe = (q0 + nx).saturating_sub(qrow).min(w);
        if xs >= xe {
            continue;
        }
        for i in 0..ci {
            let src = &x[i * h * w + y * w..i * h * w + y * w + w];
            let mut dst = (qrow + xs - q0) * ci + i;
            for &v in &src[xs..xe] {
                xcl[dst] = v;
                dst += ci;
            }
        }
    }
    if r == 1 {
        return false;
    }
    let e = &mut bufs.e;
    e.clear();
    e.resize(nq * r * ci, zero);
    for q in 0..nq {
        for rr in 0..r {
            let s = (q + rr * wp) * ci;
            let d = (q * r + rr) * ci;
            e[d..d + ci].copy_from_slice(&xcl[s..s + ci]);
        }
    }
    true
}

/// Packs an effective weight `weff(o, i, dy, dx)` into per-pass GEMM operands: pass t holds
/// the (K, O) column-major matrix with element (kk, o) at `t * O * K + o * K + kk`,
/// kk = dx * r * I + rr * I + i, dy = t * r + rr.
fn pack_weight<T: WithDType>(g: &Geom, weff: impl Fn(usize, usize, usize, usize) -> T) -> Vec<T> {
    let k = g.kdim();
    let mut out = vec![T::from_f64(0.0); g.passes() * g.co * k];
    for t in 0..g.passes() {
        for o in 0..g.co {
            for dx in 0..g.kw {
                for rr in 0..g.r {
                    for i in 0..g.ci {
                        let kk = dx * g.r * g.ci + rr * g.ci + i;
                        out[t * g.co * k + o * k + kk] = weff(o, i, t * g.r + rr, dx);
                    }
                }
            }
        }
    }
    out
}

/// Runs `m x n x k` GEMM `dst (+)= lhs * rhs` single-threaded.
///
/// # Safety
/// The pointers and strides must describe valid matrices of the given sizes.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_st<T: WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_cs: usize,
    accumulate: bool,
    lhs: *const T,
    lhs_cs: usize,
    lhs_rs: usize,
    rhs: *const T,
    rhs_cs: usize,
    rhs_rs: usize,
) {
    let one = T::from_f64(1.0);
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        1,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        one,
        one,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// The forward convolution of a batch: x (B, I, H, W) contiguous, packed weight, bias (O)
/// -> y (B, O, H_out, W_out).
fn conv_forward<T: WithDType>(
    g: &Geom,
    batch: usize,
    x: &[T],
    wpack: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let zero = T::from_f64(0.0);
    let mut y = crate::buffer::zeroed(batch * g.out_len(), zero);
    if y.is_empty() {
        return y;
    }
    let nb = g.nbands();
    let yp = SharedMut(y.as_mut_ptr());
    let k = g.kdim();
    (0..batch * nb)
        .into_par_iter()
        .for_each_init(Bufs::<T>::new, |bufs, task| {
            let _ftz = crate::denormal::FlushDenormals::new();
            let (img, bi) = (task / nb, task % nb);
            let y0 = bi * g.band;
            let rows = g.band.min(g.ho - y0);
            let xi = &x[img * g.in_len()..(img + 1) * g.in_len()];
            let in_e = build_patches(g, xi, y0, rows, bufs);
            let pb = rows * g.wp;
            bufs.c.clear();
            bufs.c.resize(pb * g.co, zero);
            let src = if in_e { &bufs.e } else { &bufs.xcl };
            let rstride = g.r * g.ci;
            for t in 0..g.passes() {
                // SAFETY: lhs rows p < pb read src[(p + t * wp) * rstride .. + k], within the
                // buffer built for this band; dst is pb x co; rhs is one packed pass.
                unsafe {
                    gemm_st(
                        pb,
                        g.co,
                        k,
                        bufs.c.as_mut_ptr(),
                        pb,
                        t > 0,
                        src.as_ptr().add(t * g.wp * rstride),
                        1,
                        rstride,
                        wpack.as_ptr().add(t * g.co * k),
                        k,
                        1,
                    );
                }
            }
            for o in 0..g.co {
                let bo = bias.map_or(zero, |b| b[o]);
                for yy in 0..rows {
                    let off = img * g.out_len() + o * g.ho * g.wo + (y0 + yy) * g.wo;
                    let crow = &bufs.c[o * pb + yy * g.wp..o * pb + yy * g.wp + g.wo];
                    // SAFETY: task (img, band) alone writes rows [y0, y0 + rows) of image img.
                    let dst = unsafe { std::slice::from_raw_parts_mut(yp.ptr().add(off), g.wo) };
                    if relu {
                        for (d, &c) in dst.iter_mut().zip(crow) {
                            let v = c + bo;
                            *d = if v > zero { v } else { zero };
                        }
                    } else {
                        for (d, &c) in dst.iter_mut().zip(crow) {
                            *d = c + bo;
                        }
                    }
                }
            }
        });
    y
}

/// Weight and bias gradients of a batch: x (B, I, H, W), gy (B, O, H_out, W_out) ->
/// (dw (O, I, kh, kw), db (O)).
fn conv_backward_weight<T: WithDType>(
    g: &Geom,
    batch: usize,
    x: &[T],
    gy: &[T],
) -> (Vec<T>, Vec<T>) {
    let zero = T::from_f64(0.0);
    let k = g.kdim();
    let np = g.passes();
    let nb = g.nbands();
    let acc_len = np * g.co * k + g.co;
    let acc = (0..batch * nb)
        .into_par_iter()
        .fold(
            || (Bufs::<T>::new(), vec![zero; acc_len]),
            |(mut bufs, mut acc), task| {
                let _ftz = crate::denormal::FlushDenormals::new();
                let (img, bi) = (task / nb, task % nb);
                let y0 = bi * g.band;
                let rows = g.band.min(g.ho - y0);
                let xi = &x[img * g.in_len()..(img + 1) * g.in_len()];
                let in_e = build_patches(g, xi, y0, rows, &mut bufs);
                let pb = rows * g.wp;
                bufs.c.clear();
                bufs.c.resize(pb * g.co, zero);
                for o in 0..g.co {
                    let mut s = zero;
                    for yy in 0..rows {
                        let off = img * g.out_len() + o * g.ho * g.wo + (y0 + yy) * g.wo;
                        let src = &gy[off..off + g.wo];
                        let d = o * pb + yy * g.wp;
                        bufs.c[d..d + g.wo].copy_from_slice(src);
                        for &v in src {
                            s += v;
                        }
                    }
                    acc[np * g.co * k + o] += s;
                }
                let src = if in_e { &bufs.e } else { &bufs.xcl };
                let rstride = g.r * g.ci;
                for t in 0..np {
                    // SAFETY: lhs is the transpose of the forward's patch matrix (k x pb),
                    // rhs the (pb x co) gradient, dst one (k x co) pass of acc.
                    unsafe {
                        gemm_st(
                            k,
                            g.co,
                            pb,
                            acc.as_mut_ptr().add(t * g.co * k),
                            k,
                            true,
                            src.as_ptr().add(t * g.wp * rstride),
                            rstride,
                            1,
                            bufs.c.as_ptr(),
                            pb,
                            1,
                        );
                    }
                }
                (bufs, acc)
            },
        )
        .map(|(_, acc)| acc)
        .reduce(
            || vec![zero; acc_len],
            |mut a, b| {
                for (u, v) in a.iter_mut().zip(b) {
                    *u += v;
                }
                a
            },
        );
    let mut dw = vec![zero; g.co * g.ci * g.kh * g.kw];
    for t in 0..np {
        for o in 0..g.co {
            for dx in 0..g.kw {
                for rr in 0..g.r {
                    for i in 0..g.ci {
                        let kk = dx * g.r * g.ci + rr * g.ci + i;
                        let dy = t * g.r + rr;
                        dw[((o * g.ci + i) * g.kh + dy) * g.kw + dx] =
                            acc[t * g.co * k + o * k + kk];
                    }
                }
            }
        }
    }
    let db = acc[np * g.co * k..].to_vec();
    (dw, db)
}

/// Input gradient: gy (B, O, H_out, W_out), w (O, I, kh, kw) -> dx (B, I, H, W), a forward
/// convolution of gy with the flipped, transposed kernel and padding kh - 1 - ph.
fn conv_backward_input<T: WithDType>(g: &Geom, batch: usize, gy: &[T], w: &[T]) -> Vec<T> {
    let gb = g.input_grad_geom();
    let (ci, kh, kw) = (g.ci, g.kh, g.kw);
    let wpack = pack_weight(&gb, |o, i, dy, dx| {
        // o: input channel of the forward, i: its output channel.
        w[((i * ci + o) * kh + (kh - 1 - dy)) * kw + (kw - 1 - dx)]
    });
    conv_forward(&gb, batch, gy, &wpack, None, false)
}

/// Whether the direct f32 kernels serve this geometry.
fn use_direct(_g: &Geom) -> bool {
    kernel_choice() == "direct" && direct::available()
}

/// Views a slice as f32 when `T` is f32 (empty otherwise, never reached: callers check).
fn as_f32<T: WithDType>(v: &[T]) -> &[f32] {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) }
    } else {
        &[]
    }
}

/// Moves an f32 vector into a vector of a dtype known to be f32.
fn from_f32<T: WithDType>(v: Vec<f32>) -> Vec<T> {
    let b: Box<dyn std::any::Any> = Box::new(v);
    b.downcast::<Vec<T>>().map(|b| *b).unwrap_or_default()
}

/// Runs `f` on the contiguous data of a CPU tensor (copying only a non-contiguous one).
fn with_data<T: WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (st, l) = t.storage_and_layout();
    match &*st {
        candle_core::Storage::Cpu(c) => f(contiguous_slice::<T>(c, l, "tensor")?),
        _ => candle_core::bail!("conv2d: the fast convolution's backward runs on the CPU only"),
    }
}

/// Contiguous data of a CPU tensor.
fn cpu_data<T: WithDType>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

/// The custom op: x, w (and b) -> conv (+ b) (then ReLU).
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    pad: usize,
    relu: bool,
}

impl ConvOp {
    fn geom(&self, lx: &Layout, lw: &Layout) -> candle_core::Result<(usize, Geom)> {
        let (bsz, ci, h, w) = lx.shape().dims4()?;
        let (co, _, kh, kw) = lw.shape().dims4()?;
        Ok((
            bsz,
            Geom::new(
                ci,
                h,
                w,
                co,
                kh,
                kw,
                self.pad.min(kh - 1),
                self.pad.min(kw - 1),
            ),
        ))
    }

    fn fwd_t<T: WithDType>(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (bsz, g) = self.geom(lx, lw)?;
        let x = contiguous_slice::<T>(sx, lx, "x")?;
        let w = contiguous_slice::<T>(sw, lw, "w")?;
        let b = match sb {
            Some((s, l)) => Some(contiguous_slice::<T>(s, l, "b")?),
            None => None,
        };
        let (ci, kh, kw) = (g.ci, g.kh, g.kw);
        let wpack = pack_weight(&g, |o, i, dy, dx| w[((o * ci + i) * kh + dy) * kw + dx]);
        let y = conv_forward(&g, bsz, x, &wpack, b, self.relu);
        Ok((
            T::to_cpu_storage_owned(y),
            Shape::from((bsz, g.co, g.ho, g.wo)),
        ))
    }

    fn fwd_direct(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (bsz, g) = self.geom(lx, lw)?;
        let x = contiguous_slice::<f32>(sx, lx, "x")?;
        let w = contiguous_slice::<f32>(sw, lw, "w")?;
        let b = match sb {
            Some((s, l)) => Some(contiguous_slice::<f32>(s, l, "b")?),
            None => None,
        };
        let (ci, kh, kw) = (g.ci, g.kh, g.kw);
        let y = direct::forward(
            &g,
            bsz,
            x,
            None,
            |o, i, dy, dx| w[((o * ci + i) * kh + dy) * kw + dx],
            b,
            self.relu,
        );
        Ok((CpuStorage::F32(y), Shape::from((bsz, g.co, g.ho, g.wo))))
    }

    fn fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match sx.dtype() {
            DType::F32 if use_direct(&self.geom(lx, lw)?.1) => self.fwd_direct(sx, lx, sw, lw, sb),
            DType::F32 => self.fwd_t::<f32>(sx, lx, sw, lw, sb),
            DType::F64 => self.fwd_t::<f64>(sx, lx, sw, lw, sb),
            dt => Err(Error::DType {
                op: "conv2d",
                arg: "x",
                expected: "f32 or f64",
                got: dt,
            }
            .into()),
        }
    }

    fn bwd_t<T: WithDType>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (bsz, g) = self.geom(x.layout(), w.layout())?;
        // The gradient through the fused ReLU: zero where the output was clipped.
        let direct = T::DTYPE == DType::F32 && use_direct(&g);
        // (The direct kernels apply the mask while copying their operands.)
        let masked: Option<Vec<T>> = if self.relu && !direct {
            Some(with_data(grad, |gs: &[T]| {
                with_data(res, |rs: &[T]| {
                    let zero = T::from_f64(0.0);
                    Ok(gs
                        .iter()
                        .zip(rs)
                        .map(|(&gv, &rv)| if rv > zero { gv } else { zero })
                        .collect())
                })
            })?)
        } else {
            None
        };
        let need_w = w.track_op();
        let need_b = b.is_some_and(|b| b.track_op());
        let need_x = x.track_op();
        let dev = x.device();
        with_data(grad, |graw: &[T]| {
            let gy = masked.as_deref().unwrap_or(graw);
            type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);
            let body = |mask: Option<&[f32]>| -> candle_core::Result<Grads> {
                let (mut dw, mut db) = (None, None);
                if need_w || need_b {
                    let (dwv, dbv) = with_data(x, |xs: &[T]| {
                        Ok(if direct {
                            let (a, b) =
                                direct::backward_weight(&g, bsz, as_f32(xs), as_f32(gy), mask);
                            (from_f32::<T>(a), from_f32::<T>(b))
                        } else {
                            conv_backward_weight(&g, bsz, xs, gy)
                        })
                    })?;
                    if need_w {
                        dw = Some(Tensor::from_vec(dwv, w.shape(), dev)?);
                    }
                    if need_b {
                        db = Some(Tensor::from_vec(dbv, g.co, dev)?);
                    }
                }
                let dx = if need_x {
                    let ws = cpu_data::<T>(w)?;
                    let dxv = if direct {
                        let gb = g.input_grad_geom();
                        let (ci, kh, kw) = (g.ci, g.kh, g.kw);
                        let wf = as_f32(&ws);
                        from_f32::<T>(direct::forward(
                            &gb,
                            bsz,
                            as_f32(gy),
                            mask,
                            |o, i, dy, dx| {
                                wf[((i * ci + o) * kh + (kh - 1 - dy)) * kw + (kw - 1 - dx)]
                            },
                            None,
                            false,
                        ))
                    } else {
                        conv_backward_input(&g, bsz, gy, &ws)
                    };
                    Some(Tensor::from_vec(dxv, x.shape(), dev)?)
                } else {
                    None
                };
                Ok((dx, dw, db))
            };
            if self.relu && direct {
                // The ReLU output masks the gradient inside the direct kernels.
                with_data(res, |r: &[f32]| body(Some(r)))
            } else {
                body(None)
            }
        })
    }

    fn bwd_any(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if !x.device().is_cpu() {
            candle_core::bail!("conv2d: the fast convolution's backward runs on the CPU only");
        }
        match x.dtype() {
            DType::F32 => self.bwd_t::<f32>(x, w, b, res, grad),
            DType::F64 => self.bwd_t::<f64>(x, w, b, res, grad),
            dt => Err(Error::DType {
                op: "conv2d",
                arg: "x",
                expected: "f32 or f64",
                got: dt,
            }
            .into()),
        }
    }
}

/// The contiguous slice of a CPU storage described by `l`.
fn contiguous_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    arg: &'static str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) if b <= data.len() => Ok(&data[a..b]),
        _ => Err(Error::Unsupported {
            op: "conv2d",
            what: format!("non-contiguous argument `{arg}` (shape {:?})", l.dims()),
        }
        .into()),
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        if self.relu {
            "conv2d-relu-fast"
        } else {
            "conv2d-fast"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd(s1, l1, s2, l2, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.bwd_any(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        if self.relu {
            "conv2d-bias-relu-fast"
        } else {
            "conv2d-bias-fast"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd(s1, l1, s2, l2, Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.bwd_any(x, w, Some(b), res, grad)
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
    if cfg.stride == 0 {
        return Err(Error::InvalidArgument {
            op: "conv2d",
            arg: "stride",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let mut y = x.conv2d(w, cfg.padding, cfg.stride, 1, 1)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}
