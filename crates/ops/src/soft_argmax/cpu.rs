//! The fused CPU kernels of the soft-argmax: one forward pass and one backward pass per
//! (b, k) map, parallel over the B*K maps with rayon.
//!
//! Forward, per map of n = H*W values v, two passes: the map's maximum m (four accumulators
//! of 16 SIMD lanes of vector maxima: the one read from memory), then, with the map in L1
//! or L2, the sums S = sum e, Sx = sum e (x - cx), Sy = sum e (y - cy) of
//! e = exp(beta (v - m)) <= 1 (coordinates centred on the map's centre (cx, cy) to keep
//! the sums small), over blocks of 256 values in 16 f32 lanes flushed into f64 lanes after
//! each block. A single maximum per map needs no rescaling, which running per-lane maxima
//! would need whenever they grow (in most blocks of a random map); the second pass reads
//! the map from cache (`docs/performance.md`, "One maximum per map, two passes"). Nothing
//! is allocated per map.
//!
//! The result per map is `[cx + Sx / S, cy + Sy / S, m, ln S]`; the last two entries let the
//! backward pass recompute p = exp(beta * (v - m) - ln S) in a single pass:
//! dL/dv = beta * p * ((x - mx) * gx + (y - my) * gy).
//!
//! f32 maps use a polynomial `exp2` (relative error ~1e-7) that compiles to SIMD code; f64
//! maps use `f64::exp2`. On x86-64 the per-map loops are compiled three times (AVX-512,
//! AVX2+FMA, baseline) and picked at run time; on AVX-512F+DQ CPUs f32 maps run the
//! intrinsics kernels of [`super::avx512`] instead, and on AVX2+FMA CPUs those of
//! [`super::avx2`], which compute the same thing in fewer instructions, with their own
//! exponential (a degree-5 polynomial: relative error 1.7e-7, where the one here is of
//! degree 6 on [-1/2, 1/2], 8.2e-8).
//!
//! The backward pass writes its (B, K, H, W) output without zeroing it first: every value
//! is written once by the kernel, so a large gradient pays for no memset.

use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::{Add, AddAssign, Mul, Sub};

/// The forward of one map (see [`fwd_map_impl`] for the arguments).
type FwdFn<F> = unsafe fn(&[F], usize, &[F], &[F], F, f64, f64) -> [f64; 4];
/// The backward of one map (see [`bwd_map_impl`] for the arguments).
type BwdFn<F> = unsafe fn(
    &[F],
    usize,
    &[F],
    &[F],
    f64,
    [f64; 4],
    [f64; 2],
    f64,
    f64,
    &mut [MaybeUninit<F>],
    bool,
);

/// SIMD lanes of the accumulators.
const LANES: usize = 16;
/// Values per block: each block is read once for its lane maxima, then again from L1 for
/// the exponentials; its f32 lane sums are then flushed into f64 lanes.
const BLOCK: usize = 256;

/// The float types the kernel runs on (f32 and f64).
pub(crate) trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    /// The most negative finite value.
    const LOWEST: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// 2^t for t <= 0 (any magnitude; results below ~1e-38 may be flushed). `FMA`: the
    /// caller is compiled with fused multiply-add instructions.
    fn exp2_nonpos<const FMA: bool>(t: Self) -> Self;
    /// `a * b + c` (fused when `FMA`).
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self;
    /// `v * bl + c`, the exponent of a value, rounded once: fused, or without `FMA` through
    /// f64 for f32 (the product of two f32 is exact there). Rounding `v * bl` first would
    /// cost an error of eps |v bl| in every exponent, large next to the result at large beta.
    fn exp_arg<const FMA: bool>(v: Self, bl: Self, c: Self) -> Self;
    /// The per-map kernels for AVX-512 CPUs.
    #[cfg(target_arch = "x86_64")]
    fn avx512_kernels() -> (FwdFn<Self>, BwdFn<Self>);
    /// The per-map kernels for AVX2 + FMA CPUs.
    #[cfg(target_arch = "x86_64")]
    fn avx2_kernels() -> (FwdFn<Self>, BwdFn<Self>);
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const LOWEST: Self = f32::MIN;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp2_nonpos<const FMA: bool>(t: Self) -> Self {
        fast_exp2_f32::<FMA>(t)
    }
    #[inline(always)]
    fn exp_arg<const FMA: bool>(v: Self, bl: Self, c: Self) -> Self {
        if FMA {
            v.mul_add(bl, c)
        } else {
            (v as f64 * bl as f64 + c as f64) as f32
        }
    }
    #[inline(always)]
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self {
        madd::<FMA>(a, b, c)
    }
    #[cfg(target_arch = "x86_64")]
    fn avx512_kernels() -> (FwdFn<Self>, BwdFn<Self>) {
        f32_avx512_kernels()
    }
    #[cfg(target_arch = "x86_64")]
    fn avx2_kernels() -> (FwdFn<Self>, BwdFn<Self>) {
        (super::avx2::fwd_map, super::avx2::bwd_map)
    }
}

/// The intrinsics kernels where the CPU also has AVX-512DQ (their intrinsics are stable
/// since Rust 1.89), else the portable code compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
fn f32_avx512_kernels() -> (FwdFn<f32>, BwdFn<f32>) {
    if std::arch::is_x86_feature_detected!("avx512dq") {
        (super::avx512::fwd_map, super::avx512::bwd_map)
    } else {
        (fwd_map_avx512::<f32>, bwd_map_avx512::<f32>)
    }
}

#[cfg(target_arch = "x86_64")]
#[rustversion::before(1.89)]
fn f32_avx512_kernels() -> (FwdFn<f32>, BwdFn<f32>) {
    (fwd_map_avx512::<f32>, bwd_map_avx512::<f32>)
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const LOWEST: Self = f64::MIN;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp2_nonpos<const FMA: bool>(t: Self) -> Self {
        t.exp2()
    }
    #[inline(always)]
    fn exp_arg<const FMA: bool>(v: Self, bl: Self, c: Self) -> Self {
        Self::madd::<FMA>(v, bl, c)
    }
    #[inline(always)]
    fn madd<const FMA: bool>(a: Self, b: Self, c: Self) -> Self {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }
    #[cfg(target_arch = "x86_64")]
    fn avx512_kernels() -> (FwdFn<Self>, BwdFn<Self>) {
        (fwd_map_avx512::<f64>, bwd_map_avx512::<f64>)
    }
    #[cfg(target_arch = "x86_64")]
    fn avx2_kernels() -> (FwdFn<Self>, BwdFn<Self>) {
        (fwd_map_avx2::<f64>, bwd_map_avx2::<f64>)
    }
}

/// `a * b + c`, fused when the caller is compiled with FMA (`f32::mul_add` is a slow
/// library call otherwise).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// 2^t in f32: t = n + f with n = round(t), |f| <= 1/2; 2^f by a degree-6 polynomial
/// (interpolating 2^f at the Chebyshev nodes of [-1/2, 1/2]: relative error 2.5e-9 before
/// f32 rounding, ~1e-7 after), 2^n built from its bits. Inputs below -126 are clamped to
/// -126 (so 2^(-1e4) gives ~1.2e-38 instead of 0, which no sum can notice); inputs must be
/// <= 127; NaN stays NaN. Branch-free, so loops over it vectorise.
#[inline(always)]
pub(crate) fn fast_exp2_f32<const FMA: bool>(t: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let t = if t < -126.0 { -126.0 } else { t };
    let k = t + MAGIC;
    let n = k - MAGIC;
    let f = t - n;
    let mut p = 1.546_144_5e-4_f32;
    p = madd::<FMA>(p, f, 1.340_042_8e-3);
    p = madd::<FMA>(p, f, 9.618_057e-3);
    p = madd::<FMA>(p, f, 5.550_327e-2);
    p = madd::<FMA>(p, f, 2.402_265e-1);
    p = madd::<FMA>(p, f, 6.931_472e-1);
    p = madd::<FMA>(p, f, 1.0);
    // p * 2^n by adding n to p's exponent field, with n read from k's low mantissa bits
    // (an integer add, which keeps the multiply units free). p lies in [0.70, 1.42] and
    // n >= -126 only when f >= 0 (p >= 1), so the exponent never leaves the normal range.
    let n_bits = k.to_bits().wrapping_sub(MAGIC.to_bits()) << 23;
    f32::from_bits(p.to_bits().wrapping_add(n_bits))
}

/// `s` split into `[F; LANES]` chunks and the remainder (`slice::as_chunks`, stable only
/// since Rust 1.88, above this crate's MSRV).
#[inline(always)]
fn chunks<F>(s: &[F]) -> (&[[F; LANES]], &[F]) {
    let n = s.len() / LANES;
    let (head, tail) = s.split_at(n * LANES);
    // SAFETY: `[F; LANES]` has the size and alignment of LANES consecutive `F`s, and `head`
    // holds exactly `n * LANES` of them.
    let c = unsafe { std::slice::from_raw_parts(head.as_ptr().cast::<[F; LANES]>(), n) };
    (c, tail)
}

/// The mutable version of [`chunks`].
#[inline(always)]
fn chunks_mut<F>(s: &mut [F]) -> (&mut [[F; LANES]], &mut [F]) {
    let n = s.len() / LANES;
    let (head, tail) = s.split_at_mut(n * LANES);
    // SAFETY: as in `chunks`; `head` is borrowed mutably and exclusively.
    let c = unsafe { std::slice::from_raw_parts_mut(head.as_mut_ptr().cast::<[F; LANES]>(), n) };
    (c, tail)
}

/// Centred coordinates of every pixel of an (h, w) map, row-major: (x - cx, y - cy).
fn centred_coords<F: Float>(h: usize, w: usize) -> (Vec<F>, Vec<F>, f64, f64) {
    let cx = (w as f64 - 1.0) / 2.0;
    let cy = (h as f64 - 1.0) / 2.0;
    // One row of x, repeated (a memcpy per row); each row of y is one value, filled in
    // (a memset-like loop, much cheaper on the caller's thread than a flattened iterator).
    let row: Vec<F> = (0..w).map(|j| F::from_f64(j as f64 - cx)).collect();
    let xs = row.repeat(h);
    let mut ys = Vec::with_capacity(h * w);
    for i in 0..h {
        ys.resize(ys.len() + w, F::from_f64(i as f64 - cy));
    }
    (xs, ys, cx, cy)
}

/// Hints the CPU to bring `bytes` bytes from `ptr` into L2. A prefetch never faults, so
/// `ptr` may point past the end of a slice (it is only formed by wrapping arithmetic).
#[inline(always)]
pub(super) fn prefetch_l2<F>(ptr: *const F, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let p = ptr.cast::<i8>();
        for off in (0..bytes).step_by(64) {
            // SAFETY: PREFETCHT1 is part of x86-64's SSE baseline and is only a hint: it
            // reads nothing architecturally and cannot fault, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, bytes);
}

/// As [`prefetch_l2`], into L1 (and L2) when `into_l1`.
#[inline(always)]
pub(super) fn prefetch_next<F>(ptr: *const F, bytes: usize, into_l1: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if into_l1 {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = ptr.cast::<i8>();
            for off in (0..bytes).step_by(64) {
                // SAFETY: as in `prefetch_l2` (PREFETCHT0 is a hint of SSE, never faults).
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            }
            return;
        }
    }
    let _ = into_l1;
    prefetch_l2(ptr, bytes)
}

/// Accumulators of the portable maximum pass (each of `LANES` lanes).
const MAX_ACCUMULATORS: usize = 4;

/// `acc = max(acc, c)` lane by lane (a vector max). A NaN in `c` is skipped, so the maximum
/// of a map does not depend on the order its values are met in.
#[inline(always)]
fn lane_max<F: Float>(acc: &mut [F; LANES], c: &[F; LANES]) {
    for l in 0..LANES {
        acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
    }
}

/// Forward of one map of width `_w` (unused here; the AVX-512 kernels walk its rows):
/// returns [mx, my, max, ln S] in f64.
///
/// Two passes. The first finds the map's maximum m (four accumulators of 16 lanes of vector
/// maxima: the map's one read from memory). The second sums e = 2^(v bl - m bl)
/// (bl = beta log2 e; one fused multiply-add per value) and e (x - cx), e (y - cy) over
/// blocks of [`BLOCK`] values in F lanes, flushed into f64 lanes after each block; the map
/// is then in L1 or L2. Rounding m bl to F scales every e of the map by one common factor
/// 2^d; it cancels in the coordinates and is taken out of ln S exactly, so ln S is that of
/// sum exp(beta (v - m)), as the backward pass expects.
#[inline(always)]
fn fwd_map_impl<F: Float, const FMA: bool>(
    map: &[F],
    _w: usize,
    xs: &[F],
    ys: &[F],
    beta: F,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    if map.is_empty() {
        return [cx, cy, 0.0, 0.0];
    }
    // exp(beta d) = 2^(d * beta * log2(e)).
    let bl = F::from_f64(beta.to_f64() * std::f64::consts::LOG2_E);
    // Four independent accumulators of LANES lanes: with one, each vector max waited on
    // the one before it (AVX2 f32: two dependency chains, latency-bound).
    let (cv, rv) = chunks(map);
    let mut acc = [[F::LOWEST; LANES]; MAX_ACCUMULATORS];
    let mut quads = cv.chunks_exact(MAX_ACCUMULATORS);
    for q in &mut quads {
        for (a, c) in acc.iter_mut().zip(q) {
            lane_max(a, c);
        }
    }
    for (a, c) in acc.iter_mut().zip(quads.remainder()) {
        lane_max(a, c);
    }
    let mut m = F::LOWEST;
    for &v in acc.iter().flatten().chain(rv) {
        if v > m {
            m = v;
        }
    }
    let mb = m * bl;
    let neg_mb = F::ZERO - mb;
    let mut s = [0f64; LANES];
    let mut sx = [0f64; LANES];
    let mut sy = [0f64; LANES];
    for (((blk, bx), by), start) in map
        .chunks(BLOCK)
        .zip(xs.chunks(BLOCK))
        .zip(ys.chunks(BLOCK))
        .zip((0..).step_by(BLOCK))
    {
        // This pass is compute-bound and leaves memory idle: fetch the same block of the
        // next map (the next one this thread takes, in the common case) into L2 meanwhile.
        prefetch_l2(
            map.as_ptr().wrapping_add(map.len() + start),
            std::mem::size_of_val(blk),
        );
        let (cv, rv) = chunks(blk);
        let (cxs, rx) = chunks(bx);
        let (cys, ry) = chunks(by);
        let mut a_s = [F::ZERO; LANES];
        let mut a_x = [F::ZERO; LANES];
        let mut a_y = [F::ZERO; LANES];
        for ((c, px), py) in cv.iter().zip(cxs).zip(cys) {
            for l in 0..LANES {
                let e = F::exp2_nonpos::<FMA>(F::exp_arg::<FMA>(c[l], bl, neg_mb));
                a_s[l] += e;
                a_x[l] = F::madd::<FMA>(e, px[l], a_x[l]);
                a_y[l] = F::madd::<FMA>(e, py[l], a_y[l]);
            }
        }
        for (((&v, &px), &py), l) in rv.iter().zip(rx).zip(ry).zip(0..) {
            let e = F::exp2_nonpos::<FMA>(F::exp_arg::<FMA>(v, bl, neg_mb));
            a_s[l] += e;
            a_x[l] = F::madd::<FMA>(e, px, a_x[l]);
            a_y[l] = F::madd::<FMA>(e, py, a_y[l]);
        }
        for l in 0..LANES {
            s[l] += a_s[l].to_f64();
            sx[l] += a_x[l].to_f64();
            sy[l] += a_y[l].to_f64();
        }
    }
    let (ts, tx, ty): (f64, f64, f64) = (s.iter().sum(), sx.iter().sum(), sy.iter().sum());
    // Each e above is exp(beta (v - m)) * 2^d with d = m bl - round(m bl).
    let d = m.to_f64() * bl.to_f64() - mb.to_f64();
    [
        cx + tx / ts,
        cy + ty / ts,
        m.to_f64(),
        ts.ln() - d * std::f64::consts::LN_2,
    ]
}

/// Backward of one map of width `_w` (unused here, as in [`fwd_map_impl`]):
/// out = beta * p * ((x - mx) gx + (y - my) gy), with
/// p = exp(beta (v - max) - ln S) recomputed from the forward's statistics. `_stream`
/// asks for streaming stores (see [`backward`]); these portable kernels write normally.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bwd_map_impl<F: Float, const FMA: bool>(
    map: &[F],
    _w: usize,
    xs: &[F],
    ys: &[F],
    beta: f64,
    stats: [f64; 4],
    g: [f64; 2],
    cx: f64,
    cy: f64,
    out: &mut [MaybeUninit<F>],
    _stream: bool,
) {
    let [mx, my, m, lse] = stats;
    let a = F::from_f64(beta * g[0]);
    let b = F::from_f64(beta * g[1]);
    let c0 = F::from_f64(-beta * ((mx - cx) * g[0] + (my - cy) * g[1]));
    let bl = F::from_f64(beta * std::f64::consts::LOG2_E);
    let mf = F::from_f64(m);
    let nl = F::from_f64(-lse * std::f64::consts::LOG2_E);
    let (cv, rv) = chunks(map);
    let (cxs, rx) = chunks(xs);
    let (cys, ry) = chunks(ys);
    let (co, ro) = chunks_mut(out);
    let next = map.as_ptr().wrapping_add(map.len());
    for ((((c, px), py), o), i) in cv.iter().zip(cxs).zip(cys).zip(co.iter_mut()).zip(0..) {
        // As in the forward pass: the next map streams into L2 while this one computes.
        if i % (BLOCK / LANES) == 0 {
            prefetch_l2(
                next.wrapping_add(i * LANES),
                BLOCK * std::mem::size_of::<F>(),
            );
        }
        for l in 0..LANES {
            let p = F::exp2_nonpos::<FMA>(F::madd::<FMA>(c[l] - mf, bl, nl));
            o[l] = MaybeUninit::new(p * F::madd::<FMA>(a, px[l], F::madd::<FMA>(b, py[l], c0)));
        }
    }
    for (((&v, &px), &py), o) in rv.iter().zip(rx).zip(ry).zip(ro.iter_mut()) {
        let p = F::exp2_nonpos::<FMA>(F::madd::<FMA>(v - mf, bl, nl));
        *o = MaybeUninit::new(p * F::madd::<FMA>(a, px, F::madd::<FMA>(b, py, c0)));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Generic,
}

/// The kernels this process runs, detected once: AVX-512 where the CPU has it (unless
/// `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512=1` or `..._NO_AVX2=1`), else AVX2 + FMA (unless
/// `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2=1`), else the baseline code.
fn detect_isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let off = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
        // Without AVX2 there is no AVX-512 either: NO_AVX2 leaves the baseline code only.
        let no2 = off("LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2");
        let no512 = no2 || off("LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512");
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx512() && !no512 {
                return Isa::Avx512;
            }
            if !no2
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        let _ = no512;
        Isa::Generic
    })
}

/// The name of [`detect_isa`]'s choice: `"avx512"`, `"avx2"` or `"generic"`.
pub(crate) fn isa_name() -> &'static str {
    match detect_isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => "avx512",
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => "avx2",
        Isa::Generic => "generic",
    }
}

/// AVX-512 (`#[target_feature(enable = "avx512f")]` is stable since Rust 1.89; older
/// compilers use the AVX2 code).
#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(target_arch = "x86_64")]
#[rustversion::before(1.89)]
fn has_avx512() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[rustversion::before(1.89)]
unsafe fn fwd_map_avx512<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: F,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    fwd_map_avx2(map, w, xs, ys, beta, cx, cy)
}

#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[rustversion::before(1.89)]
unsafe fn bwd_map_avx512<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: f64,
    stats: [f64; 4],
    g: [f64; 2],
    cx: f64,
    cy: f64,
    out: &mut [MaybeUninit<F>],
    stream: bool,
) {
    bwd_map_avx2(map, w, xs, ys, beta, stats, g, cx, cy, out, stream)
}

#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f")]
unsafe fn fwd_map_avx512<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: F,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    fwd_map_impl::<F, true>(map, w, xs, ys, beta, cx, cy)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fwd_map_avx2<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: F,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    fwd_map_impl::<F, true>(map, w, xs, ys, beta, cx, cy)
}

#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f")]
unsafe fn bwd_map_avx512<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: f64,
    stats: [f64; 4],
    g: [f64; 2],
    cx: f64,
    cy: f64,
    out: &mut [MaybeUninit<F>],
    stream: bool,
) {
    bwd_map_impl::<F, true>(map, w, xs, ys, beta, stats, g, cx, cy, out, stream)
}

#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn bwd_map_avx2<F: Float>(
    map: &[F],
    w: usize,
    xs: &[F],
    ys: &[F],
    beta: f64,
    stats: [f64; 4],
    g: [f64; 2],
    cx: f64,
    cy: f64,
    out: &mut [MaybeUninit<F>],
    stream: bool,
) {
    bwd_map_impl::<F, true>(map, w, xs, ys, beta, stats, g, cx, cy, out, stream)
}

/// The forward and backward kernels of one map for `isa`.
fn kernels<F: Float>(isa: Isa) -> (FwdFn<F>, BwdFn<F>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => F::avx512_kernels(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => F::avx2_kernels(),
        Isa::Generic => (fwd_map_impl::<F, false>, bwd_map_impl::<F, false>),
    }
}

/// Maps per rayon task: at least ~16k values per task so that small maps are batched.
fn min_len(n: usize) -> usize {
    (16_384 / n.max(1)).max(1)
}

/// Fused forward over `data` = n_maps contiguous (h, w) maps. Returns n_maps * 4 values:
/// per map `[x, y, max, ln S]` (see the module doc).
pub(crate) fn forward<F: Float>(data: &[F], h: usize, w: usize, beta: f64) -> Vec<F> {
    forward_isa(detect_isa(), data, h, w, beta)
}

fn forward_isa<F: Float>(isa: Isa, data: &[F], h: usize, w: usize, beta: f64) -> Vec<F> {
    let n = h * w;
    if n == 0 {
        return Vec::new();
    }
    let n_maps = data.len() / n;
    let (xs, ys, cx, cy) = centred_coords::<F>(h, w);
    let bf = F::from_f64(beta);
    let (fwd, _) = kernels::<F>(isa);
    let mut out = vec![F::ZERO; n_maps * 4];
    out.par_chunks_mut(4)
        .zip(data.par_chunks_exact(n))
        .with_min_len(min_len(n))
        // Flush-to-zero once per rayon task, not per map: MXCSR writes serialise the core.
        .for_each_init(crate::denormal::FlushDenormals::new, |_ftz, (o, map)| {
            // SAFETY: `kernels` picked a kernel whose CPU features `detect_isa` found at
            // run time; `xs` and `ys` hold one value per pixel of `map`.
            let r = unsafe { fwd(map, w, &xs, &ys, bf, cx, cy) };
            for (d, s) in o.iter_mut().zip(r) {
                *d = F::from_f64(s);
            }
        });
    out
}

/// Fused backward: `stats` and `grads` are n_maps * 4 values (the forward's output and the
/// gradient with respect to it; only the first two gradient entries, for x and y, are
/// used). Returns dL/dmaps, laid out like `data`.
pub(crate) fn backward<F: Float>(
    data: &[F],
    stats: &[F],
    grads: &[F],
    h: usize,
    w: usize,
    beta: f64,
) -> Vec<F> {
    backward_isa(detect_isa(), data, stats, grads, h, w, beta)
}

fn backward_isa<F: Float>(
    isa: Isa,
    data: &[F],
    stats: &[F],
    grads: &[F],
    h: usize,
    w: usize,
    beta: f64,
) -> Vec<F> {
    let n = h * w;
    if n == 0 || !data.len().is_multiple_of(n) {
        return vec![F::ZERO; data.len()];
    }
    let mut out = crate::buffer::for_overwrite::<F>(data.len());
    // Where the maps and their gradient exceed the last-level cache, the gradient would
    // reach memory anyway: streaming stores then save reading each line before writing it
    // (the kernels use them only where the buffer is aligned to their vectors).
    let bytes = std::mem::size_of_val(data);
    let stream = crate::cache::cache_sizes().stream_output(bytes, bytes);
    let spare = &mut out.spare_capacity_mut()[..data.len()];
    backward_into(isa, data, stats, grads, h, w, beta, stream, spare);
    // SAFETY: `backward_into`'s chunks cover the first `data.len()` slots exactly
    // (`data.len()` is a multiple of `n`), and every kernel writes each slot of its chunk.
    unsafe { out.set_len(data.len()) };
    out
}

/// [`backward_isa`] into `out` (as long as `data`, every slot written), with streaming
/// stores where `stream` and the kernel has them.
#[allow(clippy::too_many_arguments)]
fn backward_into<F: Float>(
    isa: Isa,
    data: &[F],
    stats: &[F],
    grads: &[F],
    h: usize,
    w: usize,
    beta: f64,
    stream: bool,
    out: &mut [MaybeUninit<F>],
) {
    let n = h * w;
    let (xs, ys, cx, cy) = centred_coords::<F>(h, w);
    let (_, bwd) = kernels::<F>(isa);
    out.par_chunks_mut(n)
        .zip(data.par_chunks_exact(n))
        .zip(stats.par_chunks_exact(4))
        .zip(grads.par_chunks_exact(4))
        .with_min_len(min_len(n))
        .for_each_init(
            crate::denormal::FlushDenormals::new,
            |_ftz, (((o, map), st), gr)| {
                let st = [
                    st[0].to_f64(),
                    st[1].to_f64(),
                    st[2].to_f64(),
                    st[3].to_f64(),
                ];
                let g = [gr[0].to_f64(), gr[1].to_f64()];
                // SAFETY: as in `forward_isa`; `o` has one slot per pixel of `map`.
                unsafe { bwd(map, w, &xs, &ys, beta, st, g, cx, cy, o, stream) };
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp2_matches_std() {
        let mut worst = 0f64;
        let mut t = -125.0f32;
        while t <= 0.0 {
            let want = (t as f64).exp2();
            for got in [fast_exp2_f32::<false>(t), fast_exp2_f32::<true>(t)] {
                worst = worst.max(((got as f64 - want) / want).abs());
            }
            t += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(fast_exp2_f32::<false>(0.0), 1.0);
        assert_eq!(fast_exp2_f32::<false>(-3.0), 0.125);
        let tiny = fast_exp2_f32::<false>(-1e4);
        assert!((0.0..1e-37).contains(&tiny));
        assert!(fast_exp2_f32::<false>(f32::NAN).is_nan());
    }

    fn available_isas() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2);
            }
            if has_avx512() {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    fn check_isas<F: Float>(tol: f64) {
        // Sizes around the SIMD width and the block size, several maps. On AVX-512: widths
        // of whole vectors (16 to 128) take the forward's row kernels (and the backward's
        // period kernel), and 17 rows of 48 or 80 span two flushes of their f32 sums;
        // widths with w / gcd(w, 16) <= 15 take the period kernel (60: 4 rows a period, so
        // 61 rows end in a partial period, 3 rows hold none, 69 rows are 17 periods, two
        // flushes, and a row; 8: 20 periods of one vector over 40 rows; 144: 9 vectors, one
        // row; 160: 10 vectors); 17, 19 and 100 (25 vectors a period) take the flat kernel.
        // AVX2's kernels: see the sizes at the end.
        let sizes = [
            (1, 1),
            (3, 5),
            (4, 4),
            (7, 9),
            (17, 19),
            (3, 17),
            (16, 32),
            (1, 16),
            (17, 48),
            (5, 64),
            (17, 80),
            (2, 96),
            (3, 112),
            (2, 128),
            (2, 144),
            (61, 60),
            (69, 60),
            (40, 8),
            (3, 160),
            (3, 60),
            (9, 20),
            (5, 24),
            (17, 30),
            (2, 100),
            // AVX2: periods of 8-lane vectors (12: 3 vectors in 2 rows, 33 rows end in a
            // partial period; 6: 3 vectors in 4 rows; 120: 15 vectors, one row); 136 is 17
            // vectors, the flat kernel.
            (33, 12),
            (35, 6),
            (34, 120),
            (3, 136),
        ];
        for &(h, w) in &sizes {
            let n_maps = 3;
            let data: Vec<F> = (0..n_maps * h * w)
                .map(|i| F::from_f64(((i * 37 % 11) as f64) * 0.3 - (i % 5) as f64 * 0.1))
                .collect();
            let grads: Vec<F> = (0..n_maps * 4)
                .map(|i| F::from_f64(0.5 - (i % 3) as f64))
                .collect();
            let f0 = forward_isa(Isa::Generic, &data, h, w, 2.0);
            let b0 = backward_isa(Isa::Generic, &data, &f0, &grads, h, w, 2.0);
            for isa in available_isas() {
                let f = forward_isa(isa, &data, h, w, 2.0);
                let b = backward_isa(isa, &data, &f, &grads, h, w, 2.0);
                for (x, y) in f.iter().zip(&f0).chain(b.iter().zip(&b0)) {
                    assert!((x.to_f64() - y.to_f64()).abs() < tol, "{isa:?} {h}x{w}");
                }
            }
            // The point lies inside the map.
            for m in f0.chunks(4) {
                assert!(m[0].to_f64() >= 0.0 && m[0].to_f64() <= (w - 1) as f64);
                assert!(m[1].to_f64() >= 0.0 && m[1].to_f64() <= (h - 1) as f64);
            }
        }
    }

    /// Streaming stores write the values ordinary stores write, bit for bit, on every
    /// kernel (rows of whole vectors, periods, flat maps, partial last vectors), into an
    /// output aligned for them and into one that is not (which takes ordinary stores).
    #[test]
    fn streaming_stores_write_the_same_gradient() {
        for &(h, w) in &[
            (5, 64),
            (17, 80),
            (61, 60),
            (9, 20),
            (7, 9),
            (3, 17),
            (33, 12),
        ] {
            let n_maps = 3;
            let data: Vec<f32> = (0..n_maps * h * w)
                .map(|i| ((i * 37 % 11) as f32) * 0.3 - (i % 5) as f32 * 0.1)
                .collect();
            let grads: Vec<f32> = (0..n_maps * 4).map(|i| 0.5 - (i % 3) as f32).collect();
            for isa in available_isas() {
                let f = forward_isa(isa, &data, h, w, 2.0);
                let mut got = Vec::new();
                // Offsets 0 and 1 from a 64-byte boundary: aligned, and not.
                for (offset, stream) in [(0, false), (0, true), (1, true)] {
                    let mut buf = vec![MaybeUninit::<f32>::uninit(); data.len() + 32];
                    let skip = buf.as_ptr().align_offset(64) + offset;
                    let out = &mut buf[skip..skip + data.len()];
                    backward_into(isa, &data, &f, &grads, h, w, 2.0, stream, out);
                    // SAFETY: `backward_into` wrote every slot of `out`.
                    let vals: Vec<u32> = out
                        .iter()
                        .map(|v| unsafe { v.assume_init() }.to_bits())
                        .collect();
                    got.push(vals);
                }
                assert_eq!(got[0], got[1], "{isa:?} {h}x{w}, aligned");
                assert_eq!(got[0], got[2], "{isa:?} {h}x{w}, unaligned");
            }
        }
    }

    #[test]
    fn nan_propagates_and_minus_infinity_is_ignored_on_every_isa() {
        // 5x7: 35 values, two full vectors and a masked tail (on AVX-512, the period
        // kernel's tail: a period of 7 is 112 values); 5x17: the flat kernel; 8x12: two
        // whole periods of 3 vectors, so the NaN and the -inf fall inside them.
        for (h, w) in [(5, 7), (5, 17), (8, 12)] {
            nan_and_minus_infinity(h, w);
        }
    }

    fn nan_and_minus_infinity(h: usize, w: usize) {
        for isa in available_isas() {
            let mut data = vec![0f32; 2 * h * w];
            data[3] = 4.0;
            data[h * w + 33] = f32::NAN; // in the second map
            let mut cut = data.clone();
            cut[10] = f32::NEG_INFINITY;
            let f = forward_isa(isa, &data, h, w, 1.0);
            assert!(f[4].is_nan() && f[5].is_nan(), "{isa:?} {h}x{w}: {f:?}");
            assert!(
                f[0].is_finite() && f[1].is_finite(),
                "{isa:?} {h}x{w}: {f:?}"
            );
            // A -inf logit has probability 0: the point moves as if the pixel were absent.
            let g = forward_isa(isa, &cut, h, w, 1.0);
            let (mut sx, mut sy, mut s) = (0f64, 0f64, 0f64);
            for (i, &v) in cut[..h * w].iter().enumerate() {
                let e = f64::from(v).exp();
                s += e;
                sx += e * (i % w) as f64;
                sy += e * (i / w) as f64;
            }
            assert!((f64::from(g[0]) - sx / s).abs() < 1e-5, "{isa:?}: {g:?}");
            assert!((f64::from(g[1]) - sy / s).abs() < 1e-5, "{isa:?}: {g:?}");
            let b = backward_isa(
                isa,
                &cut,
                &g,
                &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                h,
                w,
                1.0,
            );
            assert!(b[..h * w].iter().all(|v| v.is_finite()), "{isa:?}: {b:?}");
            assert!(b[10].abs() < 1e-30, "{isa:?}: {}", b[10]);
        }
    }

    #[test]
    fn isa_variants_agree() {
        check_isas::<f32>(1e-5);
        check_isas::<f64>(1e-12);
    }

    #[test]
    fn every_isa_finds_the_maximum_wherever_it_is() {
        // The stored maximum (entry 2 of each map's statistics) on every length up to 300
        // (whole groups of the accumulators, leftover vectors, a scalar tail), with the
        // maximum at every position: an accumulator left out of the reduction misses some.
        for isa in available_isas() {
            for n in 1..=300usize {
                let base: Vec<f32> = (0..n).map(|i| -((i * 7919 % 1000) as f32) - 1.0).collect();
                for at in 0..n {
                    let mut map = base.clone();
                    map[at] = 0.5;
                    let stats = forward_isa(isa, &map, 1, n, 1.0);
                    assert_eq!(stats[2], 0.5, "{isa:?}, n = {n}, maximum at {at}");
                }
            }
        }
    }
}
