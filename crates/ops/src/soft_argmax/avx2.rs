//! AVX2 + FMA kernels of the f32 soft-argmax, one map at a time, written with intrinsics:
//! the kernels of CPUs without AVX-512 (most laptops, AMD before Zen 4).
//!
//! They compute what `cpu::fwd_map_impl` and `cpu::bwd_map_impl` compute (the same
//! statistics), with the structure of the AVX-512 kernels (`super::avx512`) on 8-lane
//! vectors:
//! - the exponential is 11 vector instructions (the portable kernels' compiled code takes
//!   13 and a stack spill or two): see [`Exp2Affine`];
//! - maps whose lanes' coordinates repeat within 16 vectors go through period kernels: a
//!   period of P = w / gcd(w, 8) vectors is R = 8 / gcd(w, 8) whole rows (widths 8, 16,
//!   ..., 128 are one row a period: the 64x64 and 80x80 maps of the paper's models; 60,
//!   the Blocks maps, is 15 vectors in 2 rows). The forward adds each exponential to the
//!   accumulator of its place in the period and to the period's sum (x and y weigh those
//!   sums once per period or per flush), the backward adds a per-place vector to a
//!   per-period constant: two adds per 8 values, where the flat kernels spend an add and
//!   two multiply-adds with two coordinate loads. On CPUs that run a 256-bit multiply-add
//!   as two halves (Zen 1 and 2) the multiply-add units are the bottleneck, and this moves
//!   work onto the adders (`docs/performance.md`, "Without AVX-512");
//! - other widths take the flat kernels, which walk the map as one vector with per-pixel
//!   coordinates; masked loads cover a map's last partial vector.
//!
//! Each forward kernel first finds the map's maximum (eight accumulators, see [`map_max`])
//! and prefetches the next map while it computes, as the AVX-512 kernels do.
//!
//! Every function here needs AVX2 and FMA, which the caller has detected at run time.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Values per block whose f32 lane sums are flushed into f64 (as in `cpu`).
const BLOCK: usize = 256;

/// Periods summed in f32 lanes before they are flushed into f64 lanes: a lane of a place's
/// accumulator then adds 16 values, as in the AVX-512 kernels.
const PERIODS_PER_FLUSH: usize = 16;

/// Eight all-ones lanes then eight zero lanes: `TAIL[8 - n..]` masks the first n lanes.
static TAIL: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The mask of the first `n` lanes, 1 <= n <= 8.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes(n: usize) -> __m256i {
    debug_assert!((1..=8).contains(&n));
    _mm256_loadu_si256(TAIL.as_ptr().add(8 - n).cast())
}

/// 1.5 * 2^23: a float in [2^23, 2^24) holds an integer in its low mantissa bits, and
/// MAGIC + n for |n| < 2^22 is exact.
const MAGIC: f32 = 12_582_912.0;

/// 2^(v bl + c) lane by lane, for a per-map bl > 0 and an integer c, where v bl + c is at
/// most about 1/2 (the kernels' exponents are <= 0 up to rounding). Three instructions
/// find n = round(v bl + c) and f = v bl + c - n: k = fma(v, bl, MAGIC + c) rounds to
/// MAGIC + n, (MAGIC + c) - k = c - n exactly (both are integers in [2^23, 2^24)), and
/// f = fma(v, bl, c - n) is rounded once, so f is exact to half an ulp. A degree-5
/// polynomial gives 2^f, and shifting k left by 23 leaves exactly n << 23, which an integer
/// add puts into the result's exponent. Values below `lo` are raised to it first (so that
/// v bl + c is at least -125, n at least -126 and the exponent normal: n = -126 only when
/// f >= 0), so
/// 2^(-1e4) and a -inf logit give about 2.4e-38 instead of 0, which no sum can notice. NaN
/// stays NaN. 11 vector instructions, against 12 for an exponential of a ready t (whose
/// t = v bl + c costs one more and is rounded at |t|'s scale).
///
/// The coefficients minimise the relative error on [-1/2, 1/2] with p(0) = 1 exactly, so
/// that a map's maximum weighs exactly 1 (Lawson's iteration on 2000 Chebyshev nodes,
/// rounded to f32): 9.1e-8 before f32 rounding. Evaluated in f32, the whole function is
/// within 1.53e-7 of 2^t for bl = 1, c = 0, and within 1.73e-7 of 2^(v bl + c) for
/// beta = 1 and a maximum of 25.3 (tested below, over exponents in [-125, 0.4]), as the
/// AVX-512 kernels' exponential (1.73e-7); the portable kernels' degree-6 polynomial is
/// within 8.2e-8.
#[derive(Clone, Copy)]
struct Exp2Affine {
    bl: __m256,
    /// MAGIC + c.
    mc: __m256,
    lo: __m256,
}

impl Exp2Affine {
    /// The exponential 2^(v bl + c) for an integer `c`; `None` when bl is not finite and
    /// positive or |c| is not below 2^21 (the exactness above needs |c|, |n| < 2^22).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn new(bl: f32, c: f64) -> Option<Self> {
        if !(bl.is_finite() && bl > 0.0 && c.abs() < (1u32 << 21) as f64) {
            return None;
        }
        debug_assert_eq!(c, c.round());
        Some(Exp2Affine {
            bl: _mm256_set1_ps(bl),
            mc: _mm256_set1_ps(MAGIC + c as f32),
            lo: _mm256_set1_ps(((-125.0 - c) / bl as f64) as f32),
        })
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eval(&self, v: __m256) -> __m256 {
        // max(lo, v): `vmaxps` returns its second operand when either is NaN.
        let v = _mm256_max_ps(self.lo, v);
        let k = _mm256_fmadd_ps(v, self.bl, self.mc);
        let f = _mm256_fmadd_ps(v, self.bl, _mm256_sub_ps(self.mc, k));
        let mut p = _mm256_set1_ps(1.326_472_7e-3);
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.671_513e-3));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550_733_6e-2));
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402_224_2e-1));
        // The fitted coefficient, not ln 2 (which it is close to).
        #[allow(clippy::approx_constant)]
        let c1 = _mm256_set1_ps(6.931_47e-1);
        p = _mm256_fmadd_ps(p, f, c1);
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0));
        let n_bits = _mm256_slli_epi32::<23>(_mm256_castps_si256(k));
        _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), n_bits))
    }
}

/// The maximum of a non-empty map; NaNs are skipped (`vmaxps` returns its second operand,
/// the accumulator, when the value is NaN). Eight accumulators keep this read-only pass
/// from waiting on `vmaxps`'s latency.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_max(map: &[f32]) -> f32 {
    let n = map.len();
    let v = map.as_ptr();
    let low = _mm256_set1_ps(f32::MIN);
    let mut m = [low; 8];
    let mut i = 0;
    while i + 64 <= n {
        for (j, mj) in m.iter_mut().enumerate() {
            *mj = _mm256_max_ps(_mm256_loadu_ps(v.add(i + 8 * j)), *mj);
        }
        i += 64;
    }
    let mut j = 0;
    while i + 8 <= n {
        m[j] = _mm256_max_ps(_mm256_loadu_ps(v.add(i)), m[j]);
        i += 8;
        j += 1;
    }
    if i < n {
        let k = lanes(n - i);
        let x = _mm256_blendv_ps(low, _mm256_maskload_ps(v.add(i), k), _mm256_castsi256_ps(k));
        m[7] = _mm256_max_ps(x, m[7]);
    }
    let a = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
    let b = _mm256_max_ps(_mm256_max_ps(m[4], m[5]), _mm256_max_ps(m[6], m[7]));
    let mut lane = [0f32; 8];
    _mm256_storeu_ps(lane.as_mut_ptr(), _mm256_max_ps(a, b));
    lane.iter()
        .fold(f32::MIN, |acc, &x| if x > acc { x } else { acc })
}

/// What every forward kernel derives from its map and beta before the sums.
struct FwdSetup {
    /// The map's maximum.
    m: f32,
    /// beta log2(e), rounded to f32: exponents are in base 2.
    bl: f32,
    /// round(m bl), the common offset of every exponent.
    mb: f64,
    /// e = 2^(v bl - mb).
    exp: Exp2Affine,
    /// Whether the next map is prefetched into L1 rather than L2 (as in `super::avx512`).
    l1: bool,
}

impl FwdSetup {
    /// The setup of a non-empty map (the maximum is its one pass over memory); `None` when
    /// m bl is not finite or too large for [`Exp2Affine`] (|beta m| above 1.4e6).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn new(map: &[f32], beta: f32) -> Option<Self> {
        let m = map_max(map);
        let bl = (beta as f64 * std::f64::consts::LOG2_E) as f32;
        let mb = (m as f64 * bl as f64).round();
        Some(FwdSetup {
            m,
            bl,
            mb,
            exp: Exp2Affine::new(bl, -mb)?,
            l1: crate::cache::cache_sizes().prefetch_into_l1(std::mem::size_of_val(map)),
        })
    }

    /// [mx, my, max, ln S] from the f64 sums S, S (x - cx), S (y - cy).
    fn stats(&self, sums: [f64; 3], cx: f64, cy: f64) -> [f64; 4] {
        let [ts, tx, ty] = sums;
        // Each e summed is exp(beta (v - m)) * 2^d with d = m bl - round(m bl), as in `cpu`.
        let d = self.m as f64 * self.bl as f64 - self.mb;
        [
            cx + tx / ts,
            cy + ty / ts,
            self.m as f64,
            ts.ln() - d * std::f64::consts::LN_2,
        ]
    }
}

/// Forward of one f32 map of width `w`: [mx, my, max, ln S] in f64, as
/// `cpu::fwd_map_impl`. `xs` and `ys` hold the centred coordinates of every pixel (same
/// length as `map`). Widths whose lane pattern repeats within 16 vectors
/// (w / gcd(w, 8) <= 16: every multiple of 8 up to 128, and 60, 20, 12, 6, 3, ...) take
/// [`fwd_map_period`], the others [`fwd_map_flat`]. Maps whose maximum times beta is not
/// finite or above 1.4e6 in size take the portable kernel.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `xs` and `ys` must be at least as long as `map` (a
/// width that does not divide `map.len()` takes the flat kernel).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fwd_map(
    map: &[f32],
    w: usize,
    xs: &[f32],
    ys: &[f32],
    beta: f32,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    if map.is_empty() {
        return [cx, cy, 0.0, 0.0];
    }
    debug_assert!(xs.len() >= map.len() && ys.len() >= map.len());
    let Some(setup) = FwdSetup::new(map, beta) else {
        return super::cpu::fwd_map_avx2(map, w, xs, ys, beta, cx, cy);
    };
    if w == 0 || !map.len().is_multiple_of(w) {
        return fwd_map_flat(map, xs, ys, &setup, cx, cy);
    }
    let a = (map, w, xs, ys, &setup, cx, cy);
    match period(w) {
        1 => fwd_map_period::<1>(a),
        2 => fwd_map_period::<2>(a),
        3 => fwd_map_period::<3>(a),
        4 => fwd_map_period::<4>(a),
        5 => fwd_map_period::<5>(a),
        6 => fwd_map_period::<6>(a),
        7 => fwd_map_period::<7>(a),
        8 => fwd_map_period::<8>(a),
        9 => fwd_map_period::<9>(a),
        10 => fwd_map_period::<10>(a),
        11 => fwd_map_period::<11>(a),
        12 => fwd_map_period::<12>(a),
        13 => fwd_map_period::<13>(a),
        14 => fwd_map_period::<14>(a),
        15 => fwd_map_period::<15>(a),
        16 => fwd_map_period::<16>(a),
        _ => fwd_map_flat(map, xs, ys, &setup, cx, cy),
    }
}

/// The vectors after which the lanes' coordinates of a width-`w` map repeat: w / gcd(w, 8).
fn period(w: usize) -> usize {
    w >> w.trailing_zeros().min(3)
}

/// The arguments of [`fwd_map`], with the map's [`FwdSetup`] for beta.
type FwdArgs<'a> = (
    &'a [f32],
    usize,
    &'a [f32],
    &'a [f32],
    &'a FwdSetup,
    f64,
    f64,
);

/// `acc + v` in f64 lanes, for the 8 f32 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_f64(acc: [__m256d; 2], v: __m256) -> [__m256d; 2] {
    let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
    [_mm256_add_pd(acc[0], lo), _mm256_add_pd(acc[1], hi)]
}

/// The sum of the 8 f64 lanes of `acc`, in lane order.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_f64(acc: [__m256d; 2]) -> f64 {
    let mut l = [0f64; 4];
    _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(acc[0], acc[1]));
    l.iter().sum()
}

/// The sum of `v[..]` as a tree of adds (no chain longer than log2 P).
#[inline(always)]
unsafe fn tree_sum<const P: usize>(mut v: [__m256; P]) -> __m256 {
    let mut k = P;
    while k > 1 {
        let half = k / 2;
        for j in 0..half {
            v[j] = _mm256_add_ps(v[j], v[j + half]);
        }
        if k % 2 == 1 {
            v[0] = _mm256_add_ps(v[0], v[k - 1]);
        }
        k = half;
    }
    v[0]
}

/// Adds the values `v[i..min(i + 8, end)]` (one vector, masked) to the sums
/// `[S, S (x - cx), S (y - cy)]` in `acc`, with each pixel's own coordinates from `px` and
/// `py`.
///
/// # Safety
/// `i < end`, and `v`, `px` and `py` are valid for reads of `end` values.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_masked(
    v: *const f32,
    px: *const f32,
    py: *const f32,
    i: usize,
    end: usize,
    setup: &FwdSetup,
    acc: [__m256; 3],
) -> [__m256; 3] {
    let k = lanes((end - i).min(8));
    let mask = _mm256_castsi256_ps(k);
    // Masked-off lanes load 0; their exponential is masked out of the sums.
    let x = _mm256_maskload_ps(v.add(i), k);
    let e = _mm256_and_ps(mask, setup.exp.eval(x));
    [
        _mm256_add_ps(acc[0], e),
        _mm256_fmadd_ps(e, _mm256_maskload_ps(px.add(i), k), acc[1]),
        _mm256_fmadd_ps(e, _mm256_maskload_ps(py.add(i), k), acc[2]),
    ]
}

/// [`fwd_map`] for maps of width `w` whose lanes' coordinates repeat every `P` vectors:
/// 8 P = R w, a period of P vectors is R whole rows (w = 60: P = 15, R = 2; w = 64: P = 8,
/// R = 1). Each exponential is added to the accumulator of its place in the period and to
/// the period's sum, which is weighted once by the y of the period's first row; at each
/// flush the accumulators are weighted by the x and the in-period row offset of their
/// lanes. Rows after the last whole period (h not a multiple of R) take per-pixel
/// coordinates, as [`fwd_map_flat`] does.
///
/// # Safety
/// As [`fwd_map`], with `map` not empty and `w` dividing `map.len()` and 8 `P`.
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_map_period<const P: usize>(args: FwdArgs<'_>) -> [f64; 4] {
    let (map, w, xs, ys, setup, cx, cy) = args;
    let n = map.len();
    let plen = 8 * P;
    debug_assert!(plen.is_multiple_of(w) && n.is_multiple_of(w));
    let periods = n / plen;
    let v = map.as_ptr();
    let zero = _mm256_setzero_ps();
    let zero2 = [_mm256_setzero_pd(); 2];
    let (mut s64, mut x64, mut y64) = (zero2, zero2, zero2);
    let (px, py) = (xs.as_ptr(), ys.as_ptr());
    let mut q = 0;
    while q < periods {
        let end = (q + PERIODS_PER_FLUSH).min(periods);
        let mut acc = [zero; P];
        let mut yacc = zero;
        while q < end {
            let base = v.add(q * plen);
            // The same period of the next map, into L1 or L2, while this one computes.
            super::cpu::prefetch_next(v.wrapping_add(n + q * plen), plen * 4, setup.l1);
            // One chain for the period's sum, started at its first exponential;
            // consecutive periods' chains are independent.
            let mut sum = zero;
            for (p, a) in acc.iter_mut().enumerate() {
                let e = setup.exp.eval(_mm256_loadu_ps(base.add(8 * p)));
                *a = _mm256_add_ps(*a, e);
                sum = if p == 0 { e } else { _mm256_add_ps(sum, e) };
            }
            yacc = _mm256_fmadd_ps(sum, _mm256_set1_ps(*py.add(q * plen)), yacc);
            q += 1;
        }
        // Each place's x and its row's offset from the period's first row (0..R), the
        // same in every period: small integers or half-integers, exact in f32.
        let y0 = _mm256_set1_ps(*py);
        let mut sx = [zero; P];
        let mut sy = [zero; P];
        for p in 0..P {
            sx[p] = _mm256_mul_ps(acc[p], _mm256_loadu_ps(px.add(8 * p)));
            sy[p] = _mm256_mul_ps(acc[p], _mm256_sub_ps(_mm256_loadu_ps(py.add(8 * p)), y0));
        }
        s64 = add_f64(s64, tree_sum(acc));
        x64 = add_f64(x64, tree_sum(sx));
        y64 = add_f64(y64, _mm256_add_ps(tree_sum(sy), yacc));
    }
    // The rows after the last whole period (fewer than P vectors).
    let mut i = periods * plen;
    if i < n {
        let mut t = [zero; 3];
        while i < n {
            t = add_masked(v, px, py, i, n, setup, t);
            i += 8;
        }
        s64 = add_f64(s64, t[0]);
        x64 = add_f64(x64, t[1]);
        y64 = add_f64(y64, t[2]);
    }
    setup.stats([sum_f64(s64), sum_f64(x64), sum_f64(y64)], cx, cy)
}

/// [`fwd_map`] for any map: the sums S, S (x - cx), S (y - cy) in f32 lanes per block of
/// [`BLOCK`] values, flushed into f64 lanes.
///
/// # Safety
/// As [`fwd_map`], with `map` not empty.
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_map_flat(
    map: &[f32],
    xs: &[f32],
    ys: &[f32],
    setup: &FwdSetup,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    let n = map.len();
    let v = map.as_ptr();
    let (px, py) = (xs.as_ptr(), ys.as_ptr());
    let zero = _mm256_setzero_ps();
    let zero2 = [_mm256_setzero_pd(); 2];
    let (mut s64, mut x64, mut y64) = (zero2, zero2, zero2);
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        // The same block of the next map, into L1 or L2, while this one computes.
        super::cpu::prefetch_next(v.wrapping_add(n + start), (end - start) * 4, setup.l1);
        let mut a0 = [zero; 3];
        let mut a1 = [zero; 3];
        let mut i = start;
        while i + 16 <= end {
            let e0 = setup.exp.eval(_mm256_loadu_ps(v.add(i)));
            let e1 = setup.exp.eval(_mm256_loadu_ps(v.add(i + 8)));
            a0[0] = _mm256_add_ps(a0[0], e0);
            a0[1] = _mm256_fmadd_ps(e0, _mm256_loadu_ps(px.add(i)), a0[1]);
            a0[2] = _mm256_fmadd_ps(e0, _mm256_loadu_ps(py.add(i)), a0[2]);
            a1[0] = _mm256_add_ps(a1[0], e1);
            a1[1] = _mm256_fmadd_ps(e1, _mm256_loadu_ps(px.add(i + 8)), a1[1]);
            a1[2] = _mm256_fmadd_ps(e1, _mm256_loadu_ps(py.add(i + 8)), a1[2]);
            i += 16;
        }
        while i < end {
            a0 = add_masked(v, px, py, i, end, setup, a0);
            i += 8;
        }
        s64 = add_f64(s64, _mm256_add_ps(a0[0], a1[0]));
        x64 = add_f64(x64, _mm256_add_ps(a0[1], a1[1]));
        y64 = add_f64(y64, _mm256_add_ps(a0[2], a1[2]));
        start = end;
    }
    setup.stats([sum_f64(s64), sum_f64(x64), sum_f64(y64)], cx, cy)
}

/// The arguments of [`bwd_map`] but `w`.
type BwdArgs<'a> = (
    &'a [f32],
    &'a [f32],
    &'a [f32],
    f64,
    [f64; 4],
    [f64; 2],
    f64,
    f64,
    &'a mut [MaybeUninit<f32>],
    bool,
);

/// Stores the 8 values `x` at `o`: a streaming store when `stream` (`o` then 32-byte
/// aligned), else an ordinary one.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn store(o: *mut f32, x: __m256, stream: bool) {
    if stream {
        _mm256_stream_ps(o, x);
    } else {
        _mm256_storeu_ps(o, x);
    }
}

/// What the backward kernels derive from a map's statistics [mx, my, m, ln S]:
/// p = 2^(v bl - T) with bl = beta log2 e and T = m bl + ln S log2 e, computed as
/// 2^(v bl - round(T)) times `scale` = 2^(round(T) - T), and `scale` goes into the linear
/// factor beta ((x - mx) gx + (y - my) gy) once per map.
struct BwdSetup {
    exp: Exp2Affine,
    scale: f64,
}

impl BwdSetup {
    /// `None` when T is not finite or too large for [`Exp2Affine`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn new(beta: f64, stats: [f64; 4]) -> Option<Self> {
        let bl = (beta * std::f64::consts::LOG2_E) as f32;
        let t = stats[2] * bl as f64 + stats[3] * std::f64::consts::LOG2_E;
        let ti = t.round();
        Some(BwdSetup {
            exp: Exp2Affine::new(bl, -ti)?,
            scale: (ti - t).exp2(),
        })
    }
}

/// Backward of one f32 map of width `w` into `out` (every element written), as
/// `cpu::bwd_map_impl`: out = beta p ((x - mx) gx + (y - my) gy),
/// p = exp(beta (v - max) - ln S). Widths taken by [`fwd_map_period`] take
/// [`bwd_map_period`], the others [`bwd_map_flat`]. With `stream`, and `out` 32-byte
/// aligned, whole vectors are written with streaming stores (the same values), fenced
/// before returning.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `xs`, `ys` and `out` must be at least as long as
/// `map` (`w` as in [`fwd_map`]).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn bwd_map(
    map: &[f32],
    w: usize,
    xs: &[f32],
    ys: &[f32],
    beta: f64,
    stats: [f64; 4],
    g: [f64; 2],
    cx: f64,
    cy: f64,
    out: &mut [MaybeUninit<f32>],
    stream: bool,
) {
    debug_assert!(xs.len() >= map.len() && ys.len() >= map.len() && out.len() >= map.len());
    let Some(setup) = BwdSetup::new(beta, stats) else {
        return super::cpu::bwd_map_avx2(map, w, xs, ys, beta, stats, g, cx, cy, out, stream);
    };
    // Streaming stores need 32-byte aligned addresses: every whole-vector store below
    // starts a multiple of 8 values into `out`.
    let stream = stream && (out.as_ptr() as usize).is_multiple_of(32);
    let args = (map, xs, ys, beta, stats, g, cx, cy, out, stream);
    // As in `fwd_map`: the period kernels only see non-empty maps whose width divides them.
    if map.is_empty() || w == 0 || !map.len().is_multiple_of(w) {
        bwd_map_flat(args, &setup, 0);
        if stream {
            _mm_sfence();
        }
        return;
    }
    let s = &setup;
    match period(w) {
        1 => bwd_map_period::<1>(args, s, w),
        2 => bwd_map_period::<2>(args, s, w),
        3 => bwd_map_period::<3>(args, s, w),
        4 => bwd_map_period::<4>(args, s, w),
        5 => bwd_map_period::<5>(args, s, w),
        6 => bwd_map_period::<6>(args, s, w),
        7 => bwd_map_period::<7>(args, s, w),
        8 => bwd_map_period::<8>(args, s, w),
        9 => bwd_map_period::<9>(args, s, w),
        10 => bwd_map_period::<10>(args, s, w),
        11 => bwd_map_period::<11>(args, s, w),
        12 => bwd_map_period::<12>(args, s, w),
        13 => bwd_map_period::<13>(args, s, w),
        14 => bwd_map_period::<14>(args, s, w),
        15 => bwd_map_period::<15>(args, s, w),
        16 => bwd_map_period::<16>(args, s, w),
        _ => bwd_map_flat(args, s, 0),
    }
    if stream {
        // Streaming stores are weakly ordered: fence them before the map's task ends.
        _mm_sfence();
    }
}

/// [`bwd_map`] for maps whose lanes' coordinates repeat every `P` vectors (as in
/// [`fwd_map_period`]): the linear factor is a per-place vector, beta gx (x - mx) plus
/// beta gy times the row's offset in the period, plus a per-period constant, beta gy times
/// (y - my) of the period's first row: one add per 8 values instead of two multiply-adds
/// and two coordinate loads. Rows after the last whole period go through
/// [`bwd_map_flat`].
///
/// # Safety
/// As [`bwd_map`], with `map` not empty and `w` dividing `map.len()` and 8 `P`.
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_map_period<const P: usize>(args: BwdArgs<'_>, setup: &BwdSetup, w: usize) {
    let (map, xs, ys, beta, stats, g, cx, cy, out, stream) = args;
    let n = map.len();
    let plen = 8 * P;
    debug_assert!(plen.is_multiple_of(w) && n.is_multiple_of(w));
    let periods = n / plen;
    let [mx, my, ..] = stats;
    let (gx, gy) = (beta * g[0] * setup.scale, beta * g[1] * setup.scale);
    let (v, px, py) = (map.as_ptr(), xs.as_ptr(), ys.as_ptr());
    let o = out.as_mut_ptr().cast::<f32>();
    let next = v.wrapping_add(n);
    let mut place = [_mm256_setzero_ps(); P];
    if periods > 0 {
        let y0 = _mm256_set1_ps(*py);
        let c = _mm256_set1_ps((-gx * (mx - cx)) as f32);
        for (p, pl) in place.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(px.add(8 * p));
            let dy = _mm256_sub_ps(_mm256_loadu_ps(py.add(8 * p)), y0);
            *pl = _mm256_fmadd_ps(
                _mm256_set1_ps(gx as f32),
                x,
                _mm256_fmadd_ps(_mm256_set1_ps(gy as f32), dy, c),
            );
        }
    }
    for q in 0..periods {
        let off = q * plen;
        // As in the forward pass: the next map streams into L2 while this one computes.
        super::cpu::prefetch_l2(next.wrapping_add(off), plen * 4);
        let per = _mm256_set1_ps((gy * (*py.add(off) as f64 + cy - my)) as f32);
        for (p, pl) in place.iter().enumerate() {
            let prob = setup.exp.eval(_mm256_loadu_ps(v.add(off + 8 * p)));
            store(
                o.add(off + 8 * p),
                _mm256_mul_ps(prob, _mm256_add_ps(*pl, per)),
                stream,
            );
        }
    }
    let done = periods * plen;
    if done < n {
        bwd_map_flat(
            (map, xs, ys, beta, stats, g, cx, cy, out, stream),
            setup,
            done,
        );
    }
}

/// [`bwd_map`] for any map from value `from` on, one vector of pixels at a time.
///
/// # Safety
/// As [`bwd_map`].
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_map_flat(args: BwdArgs<'_>, setup: &BwdSetup, from: usize) {
    let (map, xs, ys, beta, stats, g, cx, cy, out, stream) = args;
    let n = map.len();
    debug_assert!(xs.len() >= n && ys.len() >= n && out.len() >= n);
    let [mx, my, ..] = stats;
    let bs = beta * setup.scale;
    let a = _mm256_set1_ps((bs * g[0]) as f32);
    let b = _mm256_set1_ps((bs * g[1]) as f32);
    let c0 = _mm256_set1_ps((-bs * ((mx - cx) * g[0] + (my - cy) * g[1])) as f32);
    let (v, px, py) = (map.as_ptr(), xs.as_ptr(), ys.as_ptr());
    let o = out.as_mut_ptr().cast::<f32>();
    let next = v.wrapping_add(n);
    let mut i = from;
    while i + 8 <= n {
        if i.is_multiple_of(BLOCK) {
            // As in the forward pass: the next map streams into L2 while this one computes.
            super::cpu::prefetch_l2(next.wrapping_add(i), BLOCK * 4);
        }
        let p = setup.exp.eval(_mm256_loadu_ps(v.add(i)));
        let lin = _mm256_fmadd_ps(
            a,
            _mm256_loadu_ps(px.add(i)),
            _mm256_fmadd_ps(b, _mm256_loadu_ps(py.add(i)), c0),
        );
        // `from` and `i` are multiples of 8, so `o + i` is aligned where `o` is.
        store(o.add(i), _mm256_mul_ps(p, lin), stream);
        i += 8;
    }
    if i < n {
        let k = lanes(n - i);
        let p = setup.exp.eval(_mm256_maskload_ps(v.add(i), k));
        let lin = _mm256_fmadd_ps(
            a,
            _mm256_maskload_ps(px.add(i), k),
            _mm256_fmadd_ps(b, _mm256_maskload_ps(py.add(i), k), c0),
        );
        _mm256_maskstore_ps(o.add(i), k, _mm256_mul_ps(p, lin));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// 2^(v bl + c) of each lane by [`Exp2Affine`].
    fn exp2_lanes(v: [f32; 8], bl: f32, c: f64) -> [f32; 8] {
        let mut out = [0f32; 8];
        // SAFETY: the caller checked AVX2 and FMA.
        unsafe {
            let e = Exp2Affine::new(bl, c).unwrap();
            _mm256_storeu_ps(out.as_mut_ptr(), e.eval(_mm256_loadu_ps(v.as_ptr())));
        }
        out
    }

    #[test]
    fn exp2_matches_std_and_handles_special_values() {
        if !has_avx2() {
            return;
        }
        // bl = 1, c = 0 (t itself) and a map's setting: beta = 1, maximum 25.3.
        let beta_bl = std::f64::consts::LOG2_E as f32;
        for (bl, c) in [(1f32, 0f64), (beta_bl, -(25.3 * beta_bl as f64).round())] {
            let mut worst = 0f64;
            let mut t = -124.99f64;
            while t <= 0.4 {
                let vs: [f32; 8] =
                    std::array::from_fn(|l| ((t - l as f64 * 1.1e-3 - c) / bl as f64) as f32);
                for (got, &v) in exp2_lanes(vs, bl, c).iter().zip(&vs) {
                    let want = (v as f64 * bl as f64 + c).exp2();
                    worst = worst.max(((*got as f64 - want) / want).abs());
                }
                t += 0.0071;
            }
            assert!(worst < 2e-7, "bl {bl}, c {c}: worst relative error {worst}");
        }
        let s = exp2_lanes(
            [
                0.0,
                -1.0,
                -3.0,
                -1e4,
                f32::NEG_INFINITY,
                f32::NAN,
                1e-4,
                -0.5,
            ],
            1.0,
            0.0,
        );
        assert_eq!(&s[..3], &[1.0, 0.5, 0.125]);
        assert!((0.0..1e-37).contains(&s[3]) && (0.0..1e-37).contains(&s[4]));
        assert!(s[5].is_nan());
        assert!((s[6] as f64 - 1e-4f64.exp2()).abs() < 2e-7);
        assert!((s[7] as f64 - 0.5f64.sqrt()).abs() < 2e-7);
        // Settings the exactness argument does not cover are refused.
        unsafe {
            assert!(Exp2Affine::new(1.0, (1u32 << 21) as f64).is_none());
            assert!(Exp2Affine::new(0.0, 0.0).is_none());
            assert!(Exp2Affine::new(f32::NAN, 0.0).is_none());
            assert!(Exp2Affine::new(1.0, f64::NEG_INFINITY).is_none());
        }
    }

    #[test]
    fn map_max_finds_the_maximum_and_skips_nan() {
        if !has_avx2() {
            return;
        }
        for n in 1..=140usize {
            let base: Vec<f32> = (0..n).map(|i| -((i * 7919 % 1000) as f32) - 1.0).collect();
            for at in 0..n {
                let mut map = base.clone();
                map[at] = 0.5;
                // SAFETY: AVX2 and FMA checked above.
                assert_eq!(unsafe { map_max(&map) }, 0.5, "n = {n}, maximum at {at}");
                map[(at + 1) % n] = f32::NAN;
                let m = unsafe { map_max(&map) };
                assert!(m == 0.5 || n == 1, "n = {n}: {m} with a NaN");
            }
        }
    }

    #[test]
    fn periods_of_widths() {
        assert_eq!(
            [1, 3, 6, 8, 12, 20, 60, 64, 80, 100, 128, 136].map(period),
            [1, 3, 3, 1, 3, 5, 15, 8, 10, 25, 16, 17]
        );
    }
}
