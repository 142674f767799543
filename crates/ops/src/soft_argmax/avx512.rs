//! AVX-512 kernels of the f32 soft-argmax, one map at a time, written with intrinsics.
//!
//! They compute what `cpu::fwd_map_impl` and `cpu::bwd_map_impl` compute (the same
//! statistics), with instructions that the portable code cannot reach. Each exponential
//! takes 7 vector instructions (the portable kernels' take 13): `vreduceps` splits t into
//! its fraction f = t - floor(t) in one step, a degree-5 polynomial gives 2^f, and
//! `vscalefps` multiplies it by 2^floor(t) (see [`exp2`] for its accuracy). A masked load
//! covers the last partial vector of a map.
//!
//! The forward has three kernels, by map width; the backward two:
//! - rows of whole vectors (width 16, 32, ..., 128: the 64x64 and 80x80 maps of the paper's
//!   models) go through the forward's row kernels, which take the coordinates' part of the
//!   work out of the per-pixel loop: each exponential is added to its column's and its
//!   row's sums, and x and y weigh those sums once, at the end of a row or of 16 rows;
//! - widths whose lanes' coordinates repeat within 15 vectors (60, the Blocks maps: 15
//!   vectors are 4 rows) go through the period kernels, the row kernels' idea over a period
//!   of rows. The backward's period kernel takes rows of whole vectors too (a period of one
//!   row): a per-place vector plus a per-period constant is its linear factor;
//! - other widths take the flat kernels, which walk the map as one vector with per-pixel
//!   coordinates.
//!
//! The backward recomputes each exponential e exactly as the forward computed it (the same
//! instructions on the same rounded constants) and divides it by the forward's own sum of
//! them, folded into its linear factor (as the AVX2 kernels fold a scale there): one
//! instruction less per 16 values than forming the exponent (v - m) beta - ln S, and p
//! consistent with the forward's sums (measured in `docs/performance.md`, "The backward").
//!
//! Each forward kernel first finds the map's maximum (eight accumulators, see [`map_max`])
//! and, while it computes, prefetches the next map: into L1 when two maps fit in the
//! core's L1d with room to spare (60x60 and 64x64 maps in a 48 KiB L1d, 60x60 only in a
//! 32 KiB one; see `crate::cache`), so that the next maximum pass reads L1, into L2
//! otherwise. The backward writes its gradient with streaming stores when the maps and the
//! gradient together exceed the last-level cache (`crate::cache`).
//!
//! What the period kernels and the 7-instruction exponential save is measured in
//! `docs/performance.md` ("The exponential").
//!
//! Every function here needs AVX-512F and AVX-512DQ, which the caller has detected at run
//! time, and a compiler from Rust 1.89 on (when the AVX-512 intrinsics became stable);
//! `cpu` falls back to its portable kernels otherwise.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Values per block whose f32 lane sums are flushed into f64 (as in `cpu`).
const BLOCK: usize = 256;

/// Mask of the first `n` (< 16) lanes.
#[rustversion::since(1.89)]
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// 2^t lane by lane for t <= 0: f = t - floor(t) in [0, 1] by `vreduceps` (rounding down),
/// 2^f by a degree-5 polynomial, and `vscalefps`, which multiplies by 2^floor(t) itself (it
/// floors its second operand), so that n = t - f is never formed: 7 vector instructions.
/// `vscalefps` gives 0 far below -126 and for t = -inf (where f is 0); NaN propagates.
///
/// The coefficients minimise the relative error on [0, 1] (Lawson's iteration on 4000
/// Chebyshev nodes, rounded to f32). Evaluated in f32 with fused multiply-adds, the
/// polynomial is within 1.45e-7 (relative) of 2^f over 2e6 points of [0, 1]; over t in
/// [-126, 0] the whole function is within 1.73e-7 of 2^t (tested below: for t just below
/// 0, f = t + 1 is rounded to f32), against 8.2e-8 for the portable kernels' degree-6
/// polynomial on [-1/2, 1/2]. It is faster than a degree-6 polynomial on either interval
/// (`docs/performance.md`, "The exponential").
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn exp2(t: __m512) -> __m512 {
    let f = _mm512_reduce_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(t);
    let mut p = _mm512_set1_ps(1.867_130_5e-3);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.017_029e-3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.579_991_3e-2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.401_644_4e-1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931_513e-1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0));
    _mm512_scalef_ps(p, t)
}

/// Forward of one f32 map of width `w`: [mx, my, max, ln S] in f64, as
/// `cpu::fwd_map_impl`. `xs` and `ys` hold the centred coordinates of every pixel (same
/// length as `map`). Maps whose rows are whole vectors (w a multiple of 16, up to 128) take
/// [`fwd_map_rows`]; widths whose lane pattern repeats within 15 vectors (60, 30, 20, 40,
/// 120, 144, 160, ...: w / gcd(w, 16) <= 15) take [`fwd_map_period`]; the others
/// [`fwd_map_flat`].
///
/// # Safety
/// The CPU must support AVX-512F and DQ; `xs` and `ys` must be at least as long as `map`
/// (`w` is the map's width: a width that does not divide `map.len()` takes the flat
/// kernel).
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
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
    // A width that does not divide the map (never, from `cpu`) takes the flat kernel.
    let w = if w > 0 && map.len().is_multiple_of(w) {
        w
    } else {
        0
    };
    match w {
        16 => fwd_map_rows::<1>(map, xs, ys, beta, cx, cy),
        32 => fwd_map_rows::<2>(map, xs, ys, beta, cx, cy),
        48 => fwd_map_rows::<3>(map, xs, ys, beta, cx, cy),
        64 => fwd_map_rows::<4>(map, xs, ys, beta, cx, cy),
        80 => fwd_map_rows::<5>(map, xs, ys, beta, cx, cy),
        96 => fwd_map_rows::<6>(map, xs, ys, beta, cx, cy),
        112 => fwd_map_rows::<7>(map, xs, ys, beta, cx, cy),
        128 => fwd_map_rows::<8>(map, xs, ys, beta, cx, cy),
        0 => fwd_map_flat(map, xs, ys, beta, cx, cy),
        // Other widths repeat their lanes' coordinates every P = w / gcd(w, 16) vectors:
        // P of at most 15 keeps a period's accumulators in registers (P is odd but for
        // multiples of 32, whose even P up to 8 the row kernels take).
        w => match w / gcd16(w) {
            1 => fwd_map_period::<1>(map, w, xs, ys, beta, cx, cy),
            3 => fwd_map_period::<3>(map, w, xs, ys, beta, cx, cy),
            5 => fwd_map_period::<5>(map, w, xs, ys, beta, cx, cy),
            7 => fwd_map_period::<7>(map, w, xs, ys, beta, cx, cy),
            9 => fwd_map_period::<9>(map, w, xs, ys, beta, cx, cy),
            10 => fwd_map_period::<10>(map, w, xs, ys, beta, cx, cy),
            11 => fwd_map_period::<11>(map, w, xs, ys, beta, cx, cy),
            12 => fwd_map_period::<12>(map, w, xs, ys, beta, cx, cy),
            13 => fwd_map_period::<13>(map, w, xs, ys, beta, cx, cy),
            14 => fwd_map_period::<14>(map, w, xs, ys, beta, cx, cy),
            15 => fwd_map_period::<15>(map, w, xs, ys, beta, cx, cy),
            _ => fwd_map_flat(map, xs, ys, beta, cx, cy),
        },
    }
}

/// gcd(w, 16) for w > 0: the largest power of two up to 16 that divides w.
fn gcd16(w: usize) -> usize {
    1 << w.trailing_zeros().min(4)
}

/// The maximum of a non-empty map. Eight accumulators: `vmaxps` has a latency of 4 cycles
/// and two ports, so fewer leave this read-only pass latency-bound (`docs/performance.md`,
/// "The maximum pass"). The tail is masked in as LOWEST.
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn map_max(map: &[f32]) -> f32 {
    let n = map.len();
    let v = map.as_ptr();
    let low = _mm512_set1_ps(f32::MIN);
    let mut m = [low; 8];
    let mut i = 0;
    while i + 128 <= n {
        for (j, mj) in m.iter_mut().enumerate() {
            *mj = _mm512_max_ps(*mj, _mm512_loadu_ps(v.add(i + 16 * j)));
        }
        i += 128;
    }
    let mut j = 0;
    while i + 16 <= n {
        m[j] = _mm512_max_ps(m[j], _mm512_loadu_ps(v.add(i)));
        i += 16;
        j += 1;
    }
    if i < n {
        m[7] = _mm512_max_ps(m[7], _mm512_mask_loadu_ps(low, lanes(n - i), v.add(i)));
    }
    let a = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
    let b = _mm512_max_ps(_mm512_max_ps(m[4], m[5]), _mm512_max_ps(m[6], m[7]));
    _mm512_reduce_max_ps(_mm512_max_ps(a, b))
}

/// What every forward kernel derives from its map and beta before the sums.
struct FwdSetup {
    /// The map's maximum.
    m: f32,
    /// beta log2(e), rounded to f32: exponents are in base 2.
    bl: f32,
    /// m bl, the common offset of every exponent.
    mb: f32,
    /// `bl` and `-mb` in every lane.
    blv: __m512,
    neg_mb: __m512,
    /// Whether the next map is prefetched into L1 (two maps fit in L1d, see
    /// `crate::cache::CacheSizes::prefetch_into_l1`: its maximum pass then reads L1)
    /// rather than into L2.
    l1: bool,
}

impl FwdSetup {
    /// [mx, my, max, ln S] from the f64 sums S, S (x - cx), S (y - cy).
    fn stats(&self, sums: [f64; 3], cx: f64, cy: f64) -> [f64; 4] {
        let [ts, tx, ty] = sums;
        // Each e summed is exp(beta (v - m)) * 2^d with d = m bl - round(m bl), as in `cpu`.
        let d = self.m as f64 * self.bl as f64 - self.mb as f64;
        [
            cx + tx / ts,
            cy + ty / ts,
            self.m as f64,
            ts.ln() - d * std::f64::consts::LN_2,
        ]
    }
}

/// [`FwdSetup`] for a non-empty map (the maximum is its one pass over memory).
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fwd_setup(map: &[f32], beta: f32) -> FwdSetup {
    let m = map_max(map);
    let bl = (beta as f64 * std::f64::consts::LOG2_E) as f32;
    let mb = m * bl;
    FwdSetup {
        m,
        bl,
        mb,
        blv: _mm512_set1_ps(bl),
        neg_mb: _mm512_set1_ps(-mb),
        l1: crate::cache::cache_sizes().prefetch_into_l1(std::mem::size_of_val(map)),
    }
}

/// `acc + v` in f64 lanes, for the 16 f32 lanes of `v`.
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn add_f64(acc: [__m512d; 2], v: __m512) -> [__m512d; 2] {
    let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
        _mm512_castps_pd(v),
    )));
    [_mm512_add_pd(acc[0], lo), _mm512_add_pd(acc[1], hi)]
}

/// The sum of the 16 f64 lanes of `acc`.
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn sum_f64(acc: [__m512d; 2]) -> f64 {
    _mm512_reduce_add_pd(_mm512_add_pd(acc[0], acc[1]))
}

/// [`sum_f64`] of each of the three accumulators S, S (x - cx), S (y - cy).
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn sum_f64x3(acc: [[__m512d; 2]; 3]) -> [f64; 3] {
    [sum_f64(acc[0]), sum_f64(acc[1]), sum_f64(acc[2])]
}

/// Rows summed in f32 lanes before they are flushed into f64 lanes. A lane of a column sum
/// then adds 16 values; the sum over the NV columns and the row sums add up to NV - 1 more
/// in a tree, so each f32 lane total covers at most 16 NV values (128), against 16 per
/// block of [`BLOCK`] in [`fwd_map_flat`]. Measured against an f64 reference on widths 16
/// to 128 and up to 128 rows: points within 9e-7 px, ln S within 5e-8.
const ROWS_PER_FLUSH: usize = 16;

/// [`fwd_map`] for maps whose rows are `NV` whole vectors. Each exponential e is added to
/// the accumulator of its column vector and to its row's sum (a tree of adds), and each
/// row's sum is weighted by its y once: S (x - cx) and S (y - cy) come out of the column and
/// row sums, so a value costs two adds instead of an add and two multiply-adds (and two
/// coordinate loads).
///
/// # Safety
/// As [`fwd_map`], with `map.len()` a non-zero multiple of 16 `NV`.
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fwd_map_rows<const NV: usize>(
    map: &[f32],
    xs: &[f32],
    ys: &[f32],
    beta: f32,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    let w = 16 * NV;
    let n = map.len();
    let h = n / w;
    let setup = fwd_setup(map, beta);
    let (blv, neg_mb) = (setup.blv, setup.neg_mb);
    let v = map.as_ptr();
    let zero = _mm512_setzero_ps();
    let zero2 = [_mm512_setzero_pd(); 2];
    let (mut s64, mut x64, mut y64) = (zero2, zero2, zero2);
    // x of each column vector (the same in every row).
    let mut xv = [zero; NV];
    for (j, x) in xv.iter_mut().enumerate() {
        *x = _mm512_loadu_ps(xs.as_ptr().add(16 * j));
    }
    let mut row = 0;
    while row < h {
        let end = (row + ROWS_PER_FLUSH).min(h);
        let mut col = [zero; NV];
        let mut yacc = zero;
        while row < end {
            let r = v.add(row * w);
            // The same row of the next map, into L1 or L2, while this one computes.
            super::cpu::prefetch_next(v.wrapping_add(n + row * w), w * 4, setup.l1);
            let mut e = [zero; NV];
            for j in 0..NV {
                e[j] = exp2(_mm512_fmadd_ps(_mm512_loadu_ps(r.add(16 * j)), blv, neg_mb));
                col[j] = _mm512_add_ps(col[j], e[j]);
            }
            // The row's sum as a tree: NV - 1 adds, no chain longer than log2 NV.
            let row_sum = tree_sum(e);
            yacc = _mm512_fmadd_ps(row_sum, _mm512_set1_ps(*ys.get_unchecked(row * w)), yacc);
            row += 1;
        }
        let mut cs = col[0];
        let mut cxs = _mm512_mul_ps(col[0], xv[0]);
        for j in 1..NV {
            cs = _mm512_add_ps(cs, col[j]);
            cxs = _mm512_fmadd_ps(col[j], xv[j], cxs);
        }
        s64 = add_f64(s64, cs);
        x64 = add_f64(x64, cxs);
        y64 = add_f64(y64, yacc);
    }
    setup.stats(sum_f64x3([s64, x64, y64]), cx, cy)
}

/// Adds the values `v[i..min(i + 16, end)]` (one vector, masked) to the sums
/// `[S, S (x - cx), S (y - cy)]` in `acc`, with each pixel's own coordinates from `px` and
/// `py`; `scale` is (beta log2 e, -m beta log2 e) as in the kernels.
///
/// # Safety
/// `i < end`, and `v`, `px` and `py` are valid for reads of `end` values.
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn add_masked(
    v: *const f32,
    px: *const f32,
    py: *const f32,
    i: usize,
    end: usize,
    scale: (__m512, __m512),
    acc: [__m512; 3],
) -> [__m512; 3] {
    let k = if end - i >= 16 {
        0xffff
    } else {
        lanes(end - i)
    };
    // Masked-off lanes load LOWEST: their exponential is 0 (t is -inf), and it is masked
    // out of the sums anyway.
    let x = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::MIN), k, v.add(i));
    let e = _mm512_maskz_mov_ps(k, exp2(_mm512_fmadd_ps(x, scale.0, scale.1)));
    [
        _mm512_add_ps(acc[0], e),
        _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k, px.add(i)), acc[1]),
        _mm512_fmadd_ps(e, _mm512_maskz_loadu_ps(k, py.add(i)), acc[2]),
    ]
}

/// Periods summed in f32 lanes before they are flushed into f64 lanes: a lane of a period
/// accumulator adds 16 values, as a column accumulator of [`fwd_map_rows`] does.
const PERIODS_PER_FLUSH: usize = 16;

/// The sum of `v[..]` as a tree of adds (no chain longer than log2 P).
#[rustversion::since(1.89)]
#[inline(always)]
unsafe fn tree_sum<const P: usize>(mut v: [__m512; P]) -> __m512 {
    let mut k = P;
    while k > 1 {
        let half = k / 2;
        for j in 0..half {
            v[j] = _mm512_add_ps(v[j], v[j + half]);
        }
        if k % 2 == 1 {
            v[0] = _mm512_add_ps(v[0], v[k - 1]);
        }
        k = half;
    }
    v[0]
}

/// [`fwd_map`] for maps of width `w` whose lanes' coordinates repeat every `P` vectors:
/// 16 P = R w, a period of P vectors is R whole rows (w = 60: P = 15, R = 4). Each
/// exponential is added to the accumulator of its place in the period and to the period's
/// sum, which is weighted once by the y of the period's first row; at each flush the
/// accumulators are weighted by the x and the in-period row offset of their lanes. That is
/// the row kernels' saving (two adds per 16 values instead of an add, two multiply-adds and
/// two coordinate loads) for widths that are not whole vectors. Rows after the last whole
/// period (h not a multiple of R) take per-pixel coordinates, as [`fwd_map_flat`] does.
///
/// # Safety
/// As [`fwd_map`], with `map` not empty and `w` dividing `map.len()` and 16 `P`.
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fwd_map_period<const P: usize>(
    map: &[f32],
    w: usize,
    xs: &[f32],
    ys: &[f32],
    beta: f32,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    let n = map.len();
    let plen = 16 * P;
    debug_assert!(plen.is_multiple_of(w) && n.is_multiple_of(w));
    let periods = n / plen;
    let setup = fwd_setup(map, beta);
    let (blv, neg_mb) = (setup.blv, setup.neg_mb);
    let v = map.as_ptr();
    let zero = _mm512_setzero_ps();
    let zero2 = [_mm512_setzero_pd(); 2];
    let (mut s64, mut x64, mut y64) = (zero2, zero2, zero2);
    let (px, py) = (xs.as_ptr(), ys.as_ptr());
    // Each place's x and its row's offset from the period's first row (0..R), the same in
    // every period; both are small integers or half-integers, exact in f32.
    let y0 = _mm512_set1_ps(*py);
    // (Read only when the map holds a whole period: `ys` may be shorter than one.)
    let mut dy = [zero; P];
    if periods > 0 {
        for (p, d) in dy.iter_mut().enumerate() {
            *d = _mm512_sub_ps(_mm512_loadu_ps(py.add(16 * p)), y0);
        }
    }
    let mut q = 0;
    while q < periods {
        let end = (q + PERIODS_PER_FLUSH).min(periods);
        let mut acc = [zero; P];
        let mut yacc = zero;
        while q < end {
            let base = v.add(q * plen);
            // The same period of the next map, into L1 or L2, while this one computes.
            super::cpu::prefetch_next(v.wrapping_add(n + q * plen), plen * 4, setup.l1);
            // One chain for the period's sum, started at its first exponential (0 + e is e
            // for every e here, which the compiler cannot assume); consecutive periods'
            // chains are independent.
            let mut period = zero;
            for (p, a) in acc.iter_mut().enumerate() {
                let e = exp2(_mm512_fmadd_ps(
                    _mm512_loadu_ps(base.add(16 * p)),
                    blv,
                    neg_mb,
                ));
                *a = _mm512_add_ps(*a, e);
                period = if p == 0 { e } else { _mm512_add_ps(period, e) };
            }
            yacc = _mm512_fmadd_ps(period, _mm512_set1_ps(*py.add(q * plen)), yacc);
            q += 1;
        }
        let mut sx = [zero; P];
        let mut sy = [zero; P];
        for p in 0..P {
            sx[p] = _mm512_mul_ps(acc[p], _mm512_loadu_ps(px.add(16 * p)));
            sy[p] = _mm512_mul_ps(acc[p], dy[p]);
        }
        s64 = add_f64(s64, tree_sum(acc));
        x64 = add_f64(x64, tree_sum(sx));
        y64 = add_f64(y64, _mm512_add_ps(tree_sum(sy), yacc));
    }
    // The rows after the last whole period (fewer than P vectors).
    let mut i = periods * plen;
    if i < n {
        let mut t = [zero; 3];
        while i < n {
            t = add_masked(v, px, py, i, n, (blv, neg_mb), t);
            i += 16;
        }
        s64 = add_f64(s64, t[0]);
        x64 = add_f64(x64, t[1]);
        y64 = add_f64(y64, t[2]);
    }
    setup.stats(sum_f64x3([s64, x64, y64]), cx, cy)
}

/// [`fwd_map`] for any map: the sums S, S (x - cx), S (y - cy) in f32 lanes per block of
/// [`BLOCK`] values, flushed into f64 lanes.
///
/// # Safety
/// As [`fwd_map`], with `map` not empty.
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fwd_map_flat(
    map: &[f32],
    xs: &[f32],
    ys: &[f32],
    beta: f32,
    cx: f64,
    cy: f64,
) -> [f64; 4] {
    let n = map.len();
    let v = map.as_ptr();
    let setup = fwd_setup(map, beta);
    let (blv, neg_mb) = (setup.blv, setup.neg_mb);

    // Pass 2: the sums, in f32 lanes per block, flushed into f64 lanes.
    let (px, py) = (xs.as_ptr(), ys.as_ptr());
    let zero = _mm512_setzero_ps();
    // Lane by lane in f64, summed in lane order at the end.
    let mut s = [0f64; 16];
    let mut sx = [0f64; 16];
    let mut sy = [0f64; 16];
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        // The same block of the next map, into L1 or L2, while this one computes.
        super::cpu::prefetch_next(v.wrapping_add(n + start), (end - start) * 4, setup.l1);
        let (mut s0, mut x0, mut y0) = (zero, zero, zero);
        let (mut s1, mut x1, mut y1) = (zero, zero, zero);
        let mut i = start;
        while i + 32 <= end {
            let e0 = exp2(_mm512_fmadd_ps(_mm512_loadu_ps(v.add(i)), blv, neg_mb));
            let e1 = exp2(_mm512_fmadd_ps(_mm512_loadu_ps(v.add(i + 16)), blv, neg_mb));
            s0 = _mm512_add_ps(s0, e0);
            x0 = _mm512_fmadd_ps(e0, _mm512_loadu_ps(px.add(i)), x0);
            y0 = _mm512_fmadd_ps(e0, _mm512_loadu_ps(py.add(i)), y0);
            s1 = _mm512_add_ps(s1, e1);
            x1 = _mm512_fmadd_ps(e1, _mm512_loadu_ps(px.add(i + 16)), x1);
            y1 = _mm512_fmadd_ps(e1, _mm512_loadu_ps(py.add(i + 16)), y1);
            i += 32;
        }
        while i < end {
            [s0, x0, y0] = add_masked(v, px, py, i, end, (blv, neg_mb), [s0, x0, y0]);
            i += 16;
        }
        let mut a = [[0f32; 16]; 3];
        _mm512_storeu_ps(a[0].as_mut_ptr(), _mm512_add_ps(s0, s1));
        _mm512_storeu_ps(a[1].as_mut_ptr(), _mm512_add_ps(x0, x1));
        _mm512_storeu_ps(a[2].as_mut_ptr(), _mm512_add_ps(y0, y1));
        for l in 0..16 {
            s[l] += a[0][l] as f64;
            sx[l] += a[1][l] as f64;
            sy[l] += a[2][l] as f64;
        }
        start = end;
    }
    let sums = [s.iter().sum(), sx.iter().sum(), sy.iter().sum()];
    setup.stats(sums, cx, cy)
}

/// Backward of one f32 map of width `w` into `out` (every element written), as
/// `cpu::bwd_map_impl`: out = beta p ((x - mx) gx + (y - my) gy),
/// p = exp(beta (v - max) - ln S). Each p is computed as the forward computed it: the same
/// exponential e of the same exponent (one multiply-add of v with the forward's rounded
/// constants) times 1 / S, where S is the forward's own sum, recovered from `stats`; 1 / S
/// is folded into the linear factor's constants, so a value costs one multiply-add, the
/// exponential, an add and a multiply. Widths whose lanes' coordinates repeat within 15
/// vectors (rows of whole vectors, up to 128 wide, and widths such as 60) take
/// [`bwd_map_period`], the others [`bwd_map_flat`]. With `stream`, and `out` 64-byte
/// aligned, whole vectors are written with streaming stores (the same values), fenced
/// before returning.
///
/// # Safety
/// The CPU must support AVX-512F and DQ; `xs`, `ys` and `out` must be at least as long as
/// `map` (`w` as in [`fwd_map`]).
#[allow(clippy::too_many_arguments)]
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
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
    // Streaming stores need 64-byte aligned addresses: every vector store below starts a
    // multiple of 16 values into `out`.
    let stream = stream && (out.as_ptr() as usize).is_multiple_of(64);
    // As in `fwd_map`: the period kernel only sees non-empty maps whose width divides
    // them, so that every output value is written and `xs` holds a whole row.
    let w = if !map.is_empty() && w > 0 && map.len().is_multiple_of(w) {
        w
    } else {
        0
    };
    let s = BwdSetup::new(beta, stats, g, cx, cy);
    let args = (map, xs, ys, s, out, stream);
    // Rows of whole vectors are periods of one row (P = w / 16), so the period kernel takes
    // them too: its per-place vectors are then per-column ones.
    match w {
        0 => bwd_map_flat(args, 0),
        w => match w / gcd16(w) {
            1 => bwd_map_period::<1>(args, w),
            2 => bwd_map_period::<2>(args, w),
            3 => bwd_map_period::<3>(args, w),
            4 => bwd_map_period::<4>(args, w),
            5 => bwd_map_period::<5>(args, w),
            6 => bwd_map_period::<6>(args, w),
            7 => bwd_map_period::<7>(args, w),
            8 => bwd_map_period::<8>(args, w),
            9 => bwd_map_period::<9>(args, w),
            10 => bwd_map_period::<10>(args, w),
            11 => bwd_map_period::<11>(args, w),
            12 => bwd_map_period::<12>(args, w),
            13 => bwd_map_period::<13>(args, w),
            14 => bwd_map_period::<14>(args, w),
            15 => bwd_map_period::<15>(args, w),
            _ => bwd_map_flat(args, 0),
        },
    }
    if stream {
        // Streaming stores are weakly ordered: fence them before the map's task ends, so
        // that whoever synchronises with it (rayon's join) sees the gradient.
        _mm_sfence();
    }
}

/// The constants of one map's backward, in f32: the forward's exponent
/// t = v bl - m bl (`bl` and `mb` rounded exactly as [`fwd_setup`] rounds them, so that
/// e = 2^t is the forward's e bit for bit), and the linear factor divided by the forward's
/// sum S of those e: out = e (a x + b y + c) with x, y the centred coordinates.
#[derive(Clone, Copy)]
struct BwdSetup {
    blv: __m512,
    neg_mb: __m512,
    /// beta gx / S, beta gy / S and -beta ((mx - cx) gx + (my - cy) gy) / S.
    a: f32,
    b: f32,
    c: f32,
}

impl BwdSetup {
    #[rustversion::since(1.89)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn new(beta: f64, stats: [f64; 4], g: [f64; 2], cx: f64, cy: f64) -> Self {
        let [mx, my, m, lse] = stats;
        // As `fwd_setup` with the forward's f32 beta and the map's maximum (an f32 value).
        let bl = ((beta as f32) as f64 * std::f64::consts::LOG2_E) as f32;
        let m = m as f32;
        let mb = m * bl;
        // `FwdSetup::stats` reported ln S - d ln 2 (d = m bl - mb, the rounding of the
        // common offset): the forward's own sum of e is S = exp(ln S) 2^d.
        let d = m as f64 * bl as f64 - mb as f64;
        let inv_s = (-lse - d * std::f64::consts::LN_2).exp();
        let (gx, gy) = (beta * g[0] * inv_s, beta * g[1] * inv_s);
        BwdSetup {
            blv: _mm512_set1_ps(bl),
            neg_mb: _mm512_set1_ps(-mb),
            a: gx as f32,
            b: gy as f32,
            c: (-((mx - cx) * gx + (my - cy) * gy)) as f32,
        }
    }

    /// The forward's e for the 16 values `x`.
    #[rustversion::since(1.89)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn exp(&self, x: __m512) -> __m512 {
        exp2(_mm512_fmadd_ps(x, self.blv, self.neg_mb))
    }
}

/// The arguments of [`bwd_map`] after its setup (the last: streaming stores, on a 64-byte
/// aligned `out`).
type BwdArgs<'a> = (
    &'a [f32],
    &'a [f32],
    &'a [f32],
    BwdSetup,
    &'a mut [MaybeUninit<f32>],
    bool,
);

/// Stores the 16 values `x` at `o`: a streaming store when `stream` (`o` then 64-byte
/// aligned), else an ordinary one.
#[rustversion::since(1.89)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store(o: *mut f32, x: __m512, stream: bool) {
    if stream {
        _mm512_stream_ps(o, x);
    } else {
        _mm512_storeu_ps(o, x);
    }
}

/// [`bwd_map`] for maps of width `w` whose lanes' coordinates repeat every `P` vectors
/// (16 P = R w, as in [`fwd_map_period`]): the linear factor is a per-place vector
/// (a x + b dy + c, dy the lane's row offset in its period) plus b times the y of the
/// period's first row. Rows after the last whole period take [`bwd_map_flat`]'s loop.
///
/// # Safety
/// As [`bwd_map`], with `map` not empty and `w` dividing `map.len()` and 16 `P`.
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn bwd_map_period<const P: usize>(args: BwdArgs<'_>, w: usize) {
    let (map, xs, ys, s, out, stream) = args;
    let n = map.len();
    let plen = 16 * P;
    debug_assert!(plen.is_multiple_of(w) && n.is_multiple_of(w));
    let periods = n / plen;
    let (v, px, py) = (map.as_ptr(), xs.as_ptr(), ys.as_ptr());
    let o = out.as_mut_ptr().cast::<f32>();
    let next = v.wrapping_add(n);
    if periods > 0 {
        let y0 = _mm512_set1_ps(*py);
        let (a, b, c) = (
            _mm512_set1_ps(s.a),
            _mm512_set1_ps(s.b),
            _mm512_set1_ps(s.c),
        );
        let mut place = [_mm512_setzero_ps(); P];
        for (p, pl) in place.iter_mut().enumerate() {
            let dy = _mm512_sub_ps(_mm512_loadu_ps(py.add(16 * p)), y0);
            *pl = _mm512_fmadd_ps(
                a,
                _mm512_loadu_ps(px.add(16 * p)),
                _mm512_fmadd_ps(b, dy, c),
            );
        }
        for q in 0..periods {
            let base = q * plen;
            super::cpu::prefetch_l2(next.wrapping_add(base), plen * 4);
            let rowc = _mm512_set1_ps(s.b * *py.add(base));
            for (p, pl) in place.iter().enumerate() {
                let e = s.exp(_mm512_loadu_ps(v.add(base + 16 * p)));
                store(
                    o.add(base + 16 * p),
                    _mm512_mul_ps(e, _mm512_add_ps(*pl, rowc)),
                    stream,
                );
            }
        }
    }
    bwd_map_flat((map, xs, ys, s, out, stream), periods * plen);
}

/// [`bwd_map`] for any map from value `start` on, one vector of pixels at a time.
///
/// # Safety
/// As [`bwd_map`].
#[rustversion::since(1.89)]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn bwd_map_flat(args: BwdArgs<'_>, start: usize) {
    let (map, xs, ys, s, out, stream) = args;
    let n = map.len();
    debug_assert!(xs.len() >= n && ys.len() >= n && out.len() >= n);
    let (a, b, c) = (
        _mm512_set1_ps(s.a),
        _mm512_set1_ps(s.b),
        _mm512_set1_ps(s.c),
    );
    let (v, px, py) = (map.as_ptr(), xs.as_ptr(), ys.as_ptr());
    let o = out.as_mut_ptr().cast::<f32>();
    let next = v.wrapping_add(n);
    let mut i = start;
    while i < n {
        if i.is_multiple_of(BLOCK) {
            // As in the forward pass: the next map streams into L2 while this one computes.
            super::cpu::prefetch_l2(next.wrapping_add(i), BLOCK * 4);
        }
        let k = if n - i >= 16 { 0xffff } else { lanes(n - i) };
        let e = s.exp(_mm512_maskz_loadu_ps(k, v.add(i)));
        let lin = _mm512_fmadd_ps(
            a,
            _mm512_maskz_loadu_ps(k, px.add(i)),
            _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(k, py.add(i)), c),
        );
        let r = _mm512_mul_ps(e, lin);
        if k == 0xffff {
            // `start` and `i` are multiples of 16, so `o + i` is aligned where `o` is.
            store(o.add(i), r, stream);
        } else {
            _mm512_mask_storeu_ps(o.add(i), k, r);
        }
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_avx512() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq")
    }

    /// [`exp2`] lane by lane.
    #[rustversion::since(1.89)]
    fn exp2_lanes(t: [f32; 16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        // SAFETY: the callers detected AVX-512F and DQ first; both pointers hold 16 f32s.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp2(_mm512_loadu_ps(t.as_ptr()))) };
        out
    }

    #[rustversion::since(1.89)]
    #[test]
    fn exp2_matches_std_and_handles_special_values() {
        if !has_avx512() {
            return;
        }
        // Dense over [-126, 0] (every fraction many times), then [-1, 0] and just above 0.
        let ts = (0..=1_000_000)
            .map(|i| -126.0 * i as f64 / 1e6)
            .chain((0..=100_000).map(|i| -(i as f64) / 1e5))
            .chain([1e-7, 1e-30, -1e-10, -1e-30])
            .map(|t| t as f32)
            .collect::<Vec<_>>();
        let mut worst = 0f64;
        for c in ts.chunks(16) {
            let mut t = [0f32; 16];
            t[..c.len()].copy_from_slice(c);
            for (&ti, &got) in t.iter().zip(&exp2_lanes(t)) {
                let want = (ti as f64).exp2();
                worst = worst.max((got as f64 / want - 1.0).abs());
            }
        }
        // Measured: 1.73e-7 (the polynomial's 1.45e-7 and the rounding of f near t = 0).
        assert!(worst < 1.8e-7, "relative error {worst:e}");
        let mut t = [0f32; 16];
        let special = [0.0, -1.0, -3.0, f32::NEG_INFINITY, f32::NAN, -1e4, f32::MIN];
        t[..special.len()].copy_from_slice(&special);
        let got = exp2_lanes(t);
        assert_eq!(got[..3], [1.0, 0.5, 0.125]);
        assert_eq!(got[3], 0.0);
        assert!(got[4].is_nan());
        assert_eq!(got[5], 0.0);
        assert_eq!(got[6], 0.0);
    }

    #[rustversion::since(1.89)]
    #[test]
    fn map_max_finds_the_maximum_wherever_it_is() {
        if !has_avx512() {
            return;
        }
        // Every length up to 300 (whole 128-value blocks, leftover vectors, a masked tail),
        // with the maximum at every position: a lane or an accumulator that is never
        // reduced would miss some of them.
        for n in 1..=300usize {
            let base: Vec<f32> = (0..n).map(|i| -((i * 7919 % 1000) as f32) - 1.0).collect();
            for at in 0..n {
                let mut map = base.clone();
                map[at] = 0.5;
                // SAFETY: AVX-512F and DQ were detected above; `map` is not empty.
                let got = unsafe { map_max(&map) };
                assert_eq!(got, 0.5, "n = {n}, maximum at {at}");
            }
        }
    }
}
