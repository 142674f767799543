//! CUDA kernels of the fused soft-argmax (feature `cuda`), compiled at run time with NVRTC
//! on first use and cached per device by candle.
//!
//! Forward: one thread block per (b, k) map; the threads stride over the map for its
//! maximum (warp shuffles, then shared memory), then for S, Sx, Sy accumulated in f64;
//! thread 0 writes `[x, y, max, ln S]`, the layout of the CPU kernel. Backward: maps along
//! the grid's y axis, their values along x, `dL/dv = beta * p * ((x - mx) gx + (y - my) gy)`
//! with p recomputed from the forward's statistics. Both walk a map's columns and rows
//! without a division per value (a 64-bit division is a long instruction sequence on a GPU),
//! so a map holds at most 2^31 - 1 values.
//!
//! Compiled, not yet run on a GPU: CI compiles the Rust side (`cargo check --features
//! cuda`) and the kernel source below with NVRTC, as at run time, then assembles its PTX for
//! sm_90 (`.ci/nvrtc-check.py`, `ptxas`; see `docs/cuda.md`). On a machine with a GPU,
//! `cuda_matches_composite` (`tests/soft_argmax.rs`) compares the kernels with an f64
//! reference and the CPU kernel.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorage, CudaStorageSlice, WrapErr};
use candle_core::{Layout, Result, Shape};
use std::sync::OnceLock;

const MODULE: &str = "landmark_ssl_soft_argmax";
const THREADS: u32 = 256;

const SRC: &str = r#"
template <typename T> __device__ __forceinline__ T sa_exp(T x);
template <> __device__ __forceinline__ float sa_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double sa_exp<double>(double x) { return exp(x); }
// -infinity from its bits (NVRTC has no math.h, so no INFINITY macro).
template <typename T> __device__ __forceinline__ T sa_neg_inf();
template <> __device__ __forceinline__ float sa_neg_inf<float>() { return __int_as_float((int)0xff800000u); }
template <> __device__ __forceinline__ double sa_neg_inf<double>() { return __longlong_as_double((long long)0xfff0000000000000ull); }

// Block-wide reduction of one value per thread (max when is_max, else sum); every thread
// gets the result. blockDim.x is a multiple of 32 and at most 1024; `shared` holds 33.
template <typename T>
__device__ T block_reduce(T v, bool is_max, T* shared) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? (u > v ? u : v) : v + u;
    }
    __syncthreads();  // `shared` may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const unsigned warps = blockDim.x >> 5;
        v = lane < warps ? shared[lane] : (is_max ? shared[0] : (T)0);
        for (int o = 16; o > 0; o >>= 1) {
            T u = __shfl_xor_sync(0xffffffffu, v, o);
            v = is_max ? (u > v ? u : v) : v + u;
        }
        if (lane == 0) shared[32] = v;
    }
    __syncthreads();
    return shared[32];
}

// Column and row of value i of a w-wide map, walked in steps of `step` values without a
// division per value (one at the start). Unsigned: the step after a thread's last value
// may pass 2^31 on a map of nearly 2^31 values (unused, but signed overflow is undefined).
struct Pixel {
    unsigned x, y, dx, dy, w;
    __device__ Pixel(unsigned i, unsigned step, unsigned w_) : x(i % w_), y(i / w_), dx(step % w_), dy(step / w_), w(w_) {}
    __device__ void advance() {
        x += dx;
        y += dy;
        if (x >= w) { x -= w; y += 1; }
    }
};

template <typename T>
__device__ void fwd(const T* maps, T* out, int h, int w, double beta) {
    __shared__ T sh_t[33];
    __shared__ double sh_d[33];
    const int n = h * w;  // checked to fit in an int on the host (indices run in 64 bits)
    const T* m = maps + (long long)blockIdx.x * n;
    // Start below every value and skip NaN (`>` is false for it), as the CPU kernels do.
    T mx = sa_neg_inf<T>();
    for (long long i = threadIdx.x; i < n; i += blockDim.x) mx = m[i] > mx ? m[i] : mx;
    mx = block_reduce<T>(mx, true, sh_t);
    const double cx = (w - 1) * 0.5, cy = (h - 1) * 0.5;
    double s = 0.0, sx = 0.0, sy = 0.0;
    Pixel px(threadIdx.x, blockDim.x, w);
    for (long long i = threadIdx.x; i < n; i += blockDim.x, px.advance()) {
        const double e = (double)sa_exp<T>((T)(beta * (double)(m[i] - mx)));
        s += e;
        sx += e * ((double)px.x - cx);
        sy += e * ((double)px.y - cy);
    }
    s = block_reduce<double>(s, false, sh_d);
    sx = block_reduce<double>(sx, false, sh_d);
    sy = block_reduce<double>(sy, false, sh_d);
    if (threadIdx.x == 0) {
        T* o = out + 4LL * blockIdx.x;
        o[0] = (T)(cx + sx / s);
        o[1] = (T)(cy + sy / s);
        o[2] = mx;
        o[3] = (T)log(s);
    }
}

// Maps stride over blockIdx.y, values within a map over blockIdx.x and the threads.
template <typename T>
__device__ void bwd(const T* maps, const T* stats, const T* grads, T* out, int h, int w,
                    long long n_maps, double beta) {
    const int n = h * w;  // checked to fit in an int on the host
    const int step = gridDim.x * blockDim.x;
    const int first = blockIdx.x * blockDim.x + threadIdx.x;
    for (long long map = blockIdx.y; map < n_maps; map += gridDim.y) {
        const T* st = stats + 4 * map;
        const T* g = grads + 4 * map;
        const double mx = (double)st[0], my = (double)st[1], gx = (double)g[0], gy = (double)g[1];
        const T top = st[2];
        const double ln_s = (double)st[3];
        const T* m = maps + map * n;
        T* o = out + map * n;
        Pixel px(first, step, w);
        for (long long i = first; i < n; i += step, px.advance()) {
            const double p = (double)sa_exp<T>((T)(beta * (double)(m[i] - top) - ln_s));
            o[i] = (T)(beta * p * (((double)px.x - mx) * gx + ((double)px.y - my) * gy));
        }
    }
}

extern "C" __global__ void soft_argmax_fwd_f32(const float* maps, float* out, int h, int w, double beta) { fwd<float>(maps, out, h, w, beta); }
extern "C" __global__ void soft_argmax_fwd_f64(const double* maps, double* out, int h, int w, double beta) { fwd<double>(maps, out, h, w, beta); }
extern "C" __global__ void soft_argmax_bwd_f32(const float* maps, const float* stats, const float* grads, float* out, int h, int w, long long n_maps, double beta) { bwd<float>(maps, stats, grads, out, h, w, n_maps, beta); }
extern "C" __global__ void soft_argmax_bwd_f64(const double* maps, const double* stats, const double* grads, double* out, int h, int w, long long n_maps, double beta) { bwd<double>(maps, stats, grads, out, h, w, n_maps, beta); }
"#;

/// The kernels' PTX, compiled once per process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SRC)
            .map(|p| p.to_src())
            .map_err(|e| format!("{e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(format!("soft_argmax CUDA kernels: NVRTC failed: {e}")))
}

fn offsets(l: &Layout) -> Result<(usize, usize)> {
    l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::msg("soft_argmax CUDA kernel: inputs must be contiguous")
    })
}

fn dim_i32(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        candle_core::Error::msg(format!(
            "soft_argmax CUDA kernel: {what} = {v} is too large"
        ))
    })
}

/// Forward: maps (B, K, H, W) contiguous -> (B, K, 4) `[x, y, max, ln S]`.
pub(crate) fn forward(
    storage: &CudaStorage,
    layout: &Layout,
    beta: f64,
) -> Result<(CudaStorage, Shape)> {
    let (b, k, h, w) = layout.shape().dims4()?;
    let (start, end) = offsets(layout)?;
    let n_maps = b * k;
    let shape = Shape::from((b, k, 4));
    let dev = storage.device().clone();
    let (hi, wi) = (dim_i32(h, "H")?, dim_i32(w, "W")?);
    dim_i32(h * w, "H * W")?;
    // One block per map: gridDim.x is at most 2^31 - 1.
    let grid = dim_i32(n_maps, "B * K")?.max(1) as u32;
    let cfg = LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    macro_rules! run {
        ($slice:expr, $t:ty, $name:literal, $variant:ident) => {{
            let src = $slice.slice(start..end);
            // SAFETY: every element is written by the kernel below (one block per map).
            let out = unsafe { dev.alloc::<$t>(n_maps * 4) }?;
            if n_maps > 0 {
                let func = dev.get_or_load_custom_func($name, MODULE, ptx()?)?;
                let mut builder = func.builder();
                builder.arg(&src);
                builder.arg(&out);
                builder.arg(&hi);
                builder.arg(&wi);
                builder.arg(&beta);
                // SAFETY: the arguments match the kernel's signature; sizes checked above.
                unsafe { builder.launch(cfg) }.w()?;
            }
            Ok((
                CudaStorage {
                    slice: CudaStorageSlice::$variant(out),
                    device: dev,
                },
                shape,
            ))
        }};
    }
    match &storage.slice {
        CudaStorageSlice::F32(s) => run!(s, f32, "soft_argmax_fwd_f32", F32),
        CudaStorageSlice::F64(s) => run!(s, f64, "soft_argmax_fwd_f64", F64),
        _ => Err(candle_core::Error::msg(format!(
            "soft_argmax: `maps` has dtype {:?}, expected f32 or f64",
            storage.dtype()
        ))),
    }
}

/// Backward: (maps, stats (B, K, 4), grads (B, K, 4)) -> dL/dmaps (B, K, H, W).
pub(crate) fn backward(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    s3: &CudaStorage,
    l3: &Layout,
    beta: f64,
) -> Result<(CudaStorage, Shape)> {
    let (b, k, h, w) = l1.shape().dims4()?;
    let (a0, a1) = offsets(l1)?;
    let (b0, b1) = offsets(l2)?;
    let (c0, c1) = offsets(l3)?;
    let n_maps = (b * k) as i64;
    let total = b * k * h * w;
    // The kernel reads 4 values of the result and of its gradient per map.
    for (l, what) in [(l2, "result"), (l3, "gradient")] {
        if l.shape().elem_count() != 4 * b * k {
            return Err(candle_core::Error::msg(format!(
                "soft_argmax CUDA backward: the {what} has shape {:?}, expected ({b}, {k}, 4)",
                l.shape().dims()
            )));
        }
    }
    let dev = s1.device().clone();
    let (hi, wi) = (dim_i32(h, "H")?, dim_i32(w, "W")?);
    let n = dim_i32(h * w, "H * W")? as usize;
    // Blocks across a map (up to 1024; the threads stride over the rest), and maps across
    // blockIdx.y (up to 65535, its limit; the blocks stride over the rest).
    let blocks_x = n.div_ceil(THREADS as usize).clamp(1, 1024) as u32;
    let blocks_y = (b * k).clamp(1, 65_535) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks_x, blocks_y, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    macro_rules! run {
        ($m:expr, $s:expr, $g:expr, $t:ty, $name:literal, $variant:ident) => {{
            let (m, s, g) = ($m.slice(a0..a1), $s.slice(b0..b1), $g.slice(c0..c1));
            // SAFETY: every element is written by the kernel below (grid-stride loop).
            let out = unsafe { dev.alloc::<$t>(total) }?;
            if total > 0 {
                let func = dev.get_or_load_custom_func($name, MODULE, ptx()?)?;
                let mut builder = func.builder();
                builder.arg(&m);
                builder.arg(&s);
                builder.arg(&g);
                builder.arg(&out);
                builder.arg(&hi);
                builder.arg(&wi);
                builder.arg(&n_maps);
                builder.arg(&beta);
                // SAFETY: the arguments match the kernel's signature.
                unsafe { builder.launch(cfg) }.w()?;
            }
            Ok((
                CudaStorage {
                    slice: CudaStorageSlice::$variant(out),
                    device: dev,
                },
                l1.shape().clone(),
            ))
        }};
    }
    match (&s1.slice, &s2.slice, &s3.slice) {
        (CudaStorageSlice::F32(m), CudaStorageSlice::F32(s), CudaStorageSlice::F32(g)) => {
            run!(m, s, g, f32, "soft_argmax_bwd_f32", F32)
        }
        (CudaStorageSlice::F64(m), CudaStorageSlice::F64(s), CudaStorageSlice::F64(g)) => {
            run!(m, s, g, f64, "soft_argmax_bwd_f64", F64)
        }
        _ => Err(candle_core::Error::msg(
            "soft_argmax backward: maps, result and gradient must all be f32 or all f64",
        )),
    }
}
