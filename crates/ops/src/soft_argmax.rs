//! Soft-argmax (Eq. 1 of Honari et al., CVPR 2018): the expected pixel position under
//! `softmax(beta * map)`.
//!
//! For a map M of shape (H, W) and a multiplier `beta > 0`,
//!
//! ```text
//! p(i, j) = exp(beta * M(i, j)) / sum_{i', j'} exp(beta * M(i', j'))
//! (x, y)  = (sum_{i,j} p(i, j) * j,  sum_{i,j} p(i, j) * i)
//! ```
//!
//! x is the column and y the row, in pixels, 0-based, pixel centres at integers
//! 0..W-1 and 0..H-1 (the workspace convention, see [`crate::coords`] for the normalised
//! conventions of kornia and dsntnn). Large `beta` makes the distribution peaky (the paper
//! calls it a temperature, but it multiplies the logits).
//!
//! Three entry points:
//! - [`soft_argmax()`]: the point; a fused kernel (one read of each map, analytic backward,
//!   parallel over B*K) on CPU (and on CUDA with the `cuda` feature),
//!   [`soft_argmax_composite`] on other devices ([`has_fused_kernel`] tells which).
//! - [`soft_argmax_composite`]: the same from candle ops (the reference and the fallback).
//! - [`soft_argmax_detailed`]: the point plus the probability maps, a confidence and a
//!   spread per landmark.
//!
//! Environment (read once): `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512=1` runs the AVX2 CPU
//! kernels on a CPU that has AVX-512, `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2=1` the baseline
//! ones (as on a CPU without AVX2); [`cpu_kernel`] names the kernels in use.
//!
//! With the `cuda` feature, CUDA tensors run the same fused forward and backward as CUDA
//! kernels (compiled with NVRTC on first use; one block per map for the forward, one thread
//! per value for the backward). Those kernels are compiled in CI (the Rust side, and their
//! CUDA source with NVRTC) but have not yet run on a GPU: `tests/soft_argmax.rs` compares
//! them with an f64 reference and the CPU kernel when a CUDA device is present. Other
//! devices (Metal) use the composite path.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use crate::check;
use crate::error::{Error, Result};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor, D};

/// The fused forward as a candle custom op: (B, K, H, W) -> (B, K, 4) holding
/// `[x, y, max, ln S]` per map; the backward is [`SoftArgmaxBwdOp`].
struct SoftArgmaxOp {
    beta: f64,
}

impl CustomOp1 for SoftArgmaxOp {
    fn name(&self) -> &'static str {
        "landmark-ssl-soft-argmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, k, h, w) = layout.shape().dims4()?;
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::msg("soft_argmax kernel: `maps` must be contiguous")
        })?;
        let shape = Shape::from((b, k, 4));
        match storage {
            CpuStorage::F32(v) => Ok((
                CpuStorage::F32(cpu::forward(&v[start..end], h, w, self.beta)),
                shape,
            )),
            CpuStorage::F64(v) => Ok((
                CpuStorage::F64(cpu::forward(&v[start..end], h, w, self.beta)),
                shape,
            )),
            other => Err(Error::DType {
                op: "soft_argmax",
                arg: "maps",
                expected: "f32 or f64",
                got: other.dtype(),
            }
            .into()),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda::forward(storage, layout, self.beta)
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = arg.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad_res.contiguous()?,
            &SoftArgmaxBwdOp { beta: self.beta },
        )?;
        Ok(Some(g))
    }
}

/// The fused backward: (maps (B, K, H, W), stats (B, K, 4), grad (B, K, 4)) -> dL/dmaps.
struct SoftArgmaxBwdOp {
    beta: f64,
}

impl CustomOp3 for SoftArgmaxBwdOp {
    fn name(&self) -> &'static str {
        "landmark-ssl-soft-argmax-bwd"
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
        let (_, _, h, w) = l1.shape().dims4()?;
        let offsets = |l: &Layout| {
            l.contiguous_offsets().ok_or_else(|| {
                candle_core::Error::msg("soft_argmax backward: inputs must be contiguous")
            })
        };
        let (a0, a1) = offsets(l1)?;
        let (b0, b1) = offsets(l2)?;
        let (c0, c1) = offsets(l3)?;
        let shape = l1.shape().clone();
        match (s1, s2, s3) {
            (CpuStorage::F32(m), CpuStorage::F32(s), CpuStorage::F32(g)) => Ok((
                CpuStorage::F32(cpu::backward(
                    &m[a0..a1],
                    &s[b0..b1],
                    &g[c0..c1],
                    h,
                    w,
                    self.beta,
                )),
                shape,
            )),
            (CpuStorage::F64(m), CpuStorage::F64(s), CpuStorage::F64(g)) => Ok((
                CpuStorage::F64(cpu::backward(
                    &m[a0..a1],
                    &s[b0..b1],
                    &g[c0..c1],
                    h,
                    w,
                    self.beta,
                )),
                shape,
            )),
            _ => Err(candle_core::Error::msg(format!(
                "soft_argmax backward: dtypes {:?}, {:?}, {:?} of maps, result and gradient \
                 must all be f32 or all f64",
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ))),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda::backward(s1, l1, s2, l2, s3, l3, self.beta)
    }
}

/// Whether [`soft_argmax`] runs the fused kernel on `device` (CPU always; CUDA with the
/// `cuda` feature) rather than [`soft_argmax_composite`].
///
/// ```
/// assert!(landmark_ssl_ops::soft_argmax::has_fused_kernel(&candle_core::Device::Cpu));
/// ```
pub fn has_fused_kernel(device: &candle_core::Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// The CPU kernels [`soft_argmax`] runs in this process: `"avx512"` (AVX-512F; f32 maps
/// take intrinsics kernels where the CPU also has AVX-512DQ), `"avx2"` (AVX2 + FMA; f32
/// maps take intrinsics kernels) or `"generic"` (the x86-64 or other baseline), chosen once
/// from the CPU's features.
/// `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512=1`, set before the first call, skips AVX-512: to
/// measure what a CPU without it gets; `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2=1` skips AVX2 and
/// AVX-512 (`"generic"`). Every choice computes the same function; the last
/// bits differ (each has its own exponential).
///
/// ```
/// let k = landmark_ssl_ops::soft_argmax::cpu_kernel();
/// assert!(["avx512", "avx2", "generic"].contains(&k));
/// ```
pub fn cpu_kernel() -> &'static str {
    cpu::isa_name()
}

/// Soft-argmax of every map: (B, K, H, W) -> (B, K, 2) (x, y) in pixels.
///
/// `(x, y) = sum_{i,j} softmax(beta * maps[b, k])_{i,j} * (j, i)`: x is the column index,
/// y the row index, pixel centres at 0..W-1 and 0..H-1. `maps` is f32 or f64 on any
/// device; the result has the same dtype and device. Differentiable with respect to `maps`.
///
/// On CPU this runs a fused kernel: per map, one read from memory for the maximum, then
/// the exponentials and the three sums with the map in cache (accumulated in f64 per
/// block), parallel over B*K with rayon, with an analytic backward
/// `dL/dmap = beta * p * ((x - mx) * gx + (y - my) * gy)` that is itself one fused pass
/// (intrinsics kernels for f32 where the CPU has AVX-512F and DQ, or AVX2 and FMA). It is stable
/// for |beta * map| up to at least 1e4 (the maximum is subtracted first). With the `cuda`
/// feature, CUDA tensors run the same algorithm as CUDA kernels (see the module doc);
/// other devices use [`soft_argmax_composite`].
///
/// Errors (never panics): `maps` not of rank 4, K, H or W zero, a dtype other than f32/f64,
/// `beta` not finite or not > 0.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::soft_argmax;
/// // One 3x4 map whose mass sits on row 1, column 2.
/// let mut v = vec![0f32; 12];
/// v[4 + 2] = 10.0;
/// let maps = Tensor::from_vec(v, (1, 1, 3, 4), &Device::Cpu)?;
/// let p = soft_argmax(&maps, 10.0)?.to_vec3::<f32>()?;
/// assert!((p[0][0][0] - 2.0).abs() < 1e-3 && (p[0][0][1] - 1.0).abs() < 1e-3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn soft_argmax(maps: &Tensor, beta: f64) -> Result<Tensor> {
    check::maps("soft_argmax", maps, Some(beta))?;
    if !has_fused_kernel(maps.device()) {
        return composite(maps, beta);
    }
    let out = maps.contiguous()?.apply_op1(SoftArgmaxOp { beta })?;
    Ok(out.narrow(2, 0, 2)?.contiguous()?)
}

/// Soft-argmax from candle ops (scale, softmax over H*W, marginal sums, weighted sums):
/// (B, K, H, W) -> (B, K, 2), the same contract as [`soft_argmax`] on every device.
///
/// The reference for the fused kernel in tests and the path used on devices without a
/// kernel. Differentiable through candle's autograd (it keeps the (B, K, H, W)
/// probabilities and several intermediates alive, so it is slower and uses more memory).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::{soft_argmax, soft_argmax_composite};
/// let maps = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &Device::Cpu)?;
/// let a = soft_argmax(&maps, 2.0)?;
/// let b = soft_argmax_composite(&maps, 2.0)?;
/// let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn soft_argmax_composite(maps: &Tensor, beta: f64) -> Result<Tensor> {
    check::maps("soft_argmax_composite", maps, Some(beta))?;
    composite(maps, beta)
}

/// Pixel-centre coordinates 0..n-1 as a 1-D tensor of `dtype` on `maps`' device.
fn arange(n: usize, like: &Tensor) -> Result<Tensor> {
    let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
    Ok(Tensor::from_vec(v, n, like.device())?.to_dtype(like.dtype())?)
}

/// softmax(beta * maps) over each (H, W) map, from candle ops (differentiable).
fn probabilities(maps: &Tensor, beta: f64) -> Result<Tensor> {
    let (b, k, h, w) = maps.dims4()?;
    let flat = maps.affine(beta, 0.0)?.reshape((b, k, h * w))?;
    Ok(candle_nn::ops::softmax(&flat, D::Minus1)?.reshape((b, k, h, w))?)
}

fn composite(maps: &Tensor, beta: f64) -> Result<Tensor> {
    let (_, _, h, w) = maps.dims4()?;
    let p = probabilities(maps, beta)?;
    let xs = arange(w, maps)?;
    let ys = arange(h, maps)?;
    let x = p.sum(2)?.broadcast_mul(&xs)?.sum(D::Minus1)?;
    let y = p.sum(3)?.broadcast_mul(&ys)?.sum(D::Minus1)?;
    Ok(Tensor::stack(&[x, y], 2)?)
}

/// Everything [`soft_argmax_detailed`] computes for maps (B, K, H, W).
#[derive(Debug, Clone)]
pub struct SoftArgmaxOutput {
    /// (B, K, 2): (x, y) in pixels, as [`soft_argmax`] returns.
    pub points: Tensor,
    /// (B, K, H, W): softmax(beta * map) per map; each map sums to 1.
    pub probabilities: Tensor,
    /// (B, K): the peak probability of each map, in (0, 1]; 1/(H*W) for a flat map, 1 for a
    /// one-hot one.
    pub confidence: Tensor,
    /// (B, K, 2): the variance of the distribution along x and along y, in pixels squared:
    /// `sum p * (x - mx)^2`, `sum p * (y - my)^2`.
    pub spread: Tensor,
}

/// Soft-argmax with the probability maps, a confidence and a spread per landmark.
///
/// maps (B, K, H, W) f32/f64 -> [`SoftArgmaxOutput`] (points (B, K, 2), probabilities
/// (B, K, H, W), confidence (B, K), spread (B, K, 2)), same dtype and device, all
/// differentiable. The points come from [`soft_argmax`] (fused kernel on CPU); the other
/// fields are built from candle ops. Same errors as [`soft_argmax`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use landmark_ssl_ops::soft_argmax_detailed;
/// let maps = Tensor::zeros((1, 2, 4, 5), candle_core::DType::F64, &Device::Cpu)?;
/// let out = soft_argmax_detailed(&maps, 1.0)?;
/// // A flat map: centre point, confidence 1/20, variance of a uniform over 0..4 along x.
/// let p = out.points.to_vec3::<f64>()?;
/// assert!((p[0][0][0] - 2.0).abs() < 1e-12 && (p[0][0][1] - 1.5).abs() < 1e-12);
/// let c = out.confidence.to_vec2::<f64>()?;
/// assert!((c[0][1] - 0.05).abs() < 1e-12);
/// let s = out.spread.to_vec3::<f64>()?;
/// assert!((s[0][0][0] - 2.0).abs() < 1e-12 && (s[0][0][1] - 1.25).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn soft_argmax_detailed(maps: &Tensor, beta: f64) -> Result<SoftArgmaxOutput> {
    let (b, k, h, w) = check::maps("soft_argmax_detailed", maps, Some(beta))?;
    let points = soft_argmax(maps, beta)?;
    let probabilities = probabilities(maps, beta)?;
    let confidence = probabilities.reshape((b, k, h * w))?.max(D::Minus1)?;
    let xs = arange(w, maps)?.reshape((1, 1, w))?;
    let ys = arange(h, maps)?.reshape((1, 1, h))?;
    let mx = points.narrow(2, 0, 1)?; // (B, K, 1)
    let my = points.narrow(2, 1, 1)?;
    let dx2 = xs.broadcast_sub(&mx)?.sqr()?; // (B, K, W)
    let dy2 = ys.broadcast_sub(&my)?.sqr()?; // (B, K, H)
    let vx = (probabilities.sum(2)? * dx2)?.sum(D::Minus1)?;
    let vy = (probabilities.sum(3)? * dy2)?.sum(D::Minus1)?;
    let spread = Tensor::stack(&[vx, vy], 2)?;
    Ok(SoftArgmaxOutput {
        points,
        probabilities,
        confidence,
        spread,
    })
}
