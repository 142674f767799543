//! Direct (implicit-GEMM) convolution kernels for f32 on x86-64 with AVX2 and FMA.
//!
//! Stride 1, output on the padded width `wp` (see the parent module): with the input as
//! zero-padded NCHW planes `xp[i][q]` (q = row * wp + col), output position p at kernel
//! offset (i, dy, dx) reads `xp[i][p + dy * wp + dx]`, so 24 consecutive outputs read 24
//! consecutive inputs: the micro-kernel loads them as three 8-lane vectors straight from
//! the planes (no im2col, no packing) and multiplies them by 4 output channels' broadcast
//! weights, 12 accumulators. The weight gradient runs the same access pattern with the
//! output gradient as the other operand and reduces over p.

use rayon::prelude::*;

use super::{Geom, SharedMut};

/// Output pixels per micro-tile (three 8-lane vectors).
const TP: usize = 24;
/// Output channels per micro-tile.
const TC: usize = 4;
/// Pixels per chunk of the weight-gradient reduction.
const PC: usize = 1024;

/// Whether the kernels can run on this CPU.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sizes derived from a geometry.
struct Plan {
    /// Valid output positions on the padded-width grid: ho * wp.
    ptot: usize,
    /// ptot rounded up to whole tiles.
    ppad: usize,
    /// Length of one zero-padded input plane (covers every read of the last tile).
    plen: usize,
    /// Offset of each kernel tap (i, dy, dx) in the planes: i * plen + dy * wp + dx.
    offs: Vec<usize>,
}

impl Plan {
    fn new(g: &Geom) -> Self {
        let ptot = g.ho * g.wp;
        let ppad = ptot.div_ceil(TP) * TP;
        let plen = ppad + (g.kh - 1) * g.wp + g.kw - 1 + 8;
        let mut offs = Vec::with_capacity(g.ci * g.kh * g.kw);
        for i in 0..g.ci {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    offs.push(i * plen + dy * g.wp + dx);
                }
            }
        }
        Self {
            ptot,
            ppad,
            plen,
            offs,
        }
    }
}

/// Copies one image (I, H, W) into zero-padded planes.
fn build_planes(g: &Geom, plan: &Plan, x: &[f32], buf: &mut Vec<f32>) {
    buf.clear();
    buf.resize(g.ci * plan.plen, 0.0);
    for i in 0..g.ci {
        for y in 0..g.h {
            let d = i * plan.plen + (y + g.ph) * g.wp + g.pw;
            let s = (i * g.h + y) * g.w;
            buf[d..d + g.w].copy_from_slice(&x[s..s + g.w]);
        }
    }
}

/// Number of tasks per image so that a small batch still feeds every thread.
fn bands_per_image(batch: usize, ntiles: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    if batch >= 2 * threads {
        1
    } else {
        (4 * threads).div_ceil(batch.max(1)).clamp(1, ntiles.max(1))
    }
}

/// Forward convolution of a batch: x (B, I, H, W) -> (B, O, H_out, W_out), with the
/// effective weight `weff(o, i, dy, dx)`, an optional bias (O) and ReLU.
pub(super) fn forward(
    g: &Geom,
    batch: usize,
    x: &[f32],
    weff: impl Fn(usize, usize, usize, usize) -> f32,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let plan = Plan::new(g);
    let k = plan.offs.len();
    let ng = g.co.div_ceil(TC);
    let mut wk = vec![0f32; ng * k * TC];
    for o in 0..g.co {
        for i in 0..g.ci {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let kk = (i * g.kh + dy) * g.kw + dx;
                    wk[((o / TC) * k + kk) * TC + o % TC] = weff(o, i, dy, dx);
                }
            }
        }
    }
    let mut y = vec![0f32; batch * g.out_len()];
    if y.is_empty() {
        return y;
    }
    let ntiles = plan.ppad / TP;
    let nb = bands_per_image(batch, ntiles);
    let yp = SharedMut(y.as_mut_ptr());
    let (in_len, out_len) = (g.in_len(), g.out_len());
    (0..batch * nb)
        .into_par_iter()
        .for_each_init(Vec::new, |buf, task| {
            let (img, band) = (task / nb, task % nb);
            let (t0, t1) = (band * ntiles / nb, (band + 1) * ntiles / nb);
            build_planes(g, &plan, &x[img * in_len..(img + 1) * in_len], buf);
            let mut tile = [0f32; TC * TP];
            for t in t0..t1 {
                let p0 = t * TP;
                // The tile's valid outputs as (index in tile, offset in the plane, length).
                let mut segs = [(0usize, 0usize, 0usize); TP + 1];
                let mut nseg = 0;
                let end = (p0 + TP).min(plan.ptot);
                let mut p = p0;
                while p < end {
                    let (r, col) = (p / g.wp, p % g.wp);
                    let row_end = ((r + 1) * g.wp).min(end);
                    if col < g.wo {
                        let n = g.wo.min(col + row_end - p) - col;
                        segs[nseg] = (p - p0, r * g.wo + col, n);
                        nseg += 1;
                    }
                    p = row_end;
                }
                for gi in 0..ng {
                    // SAFETY: the kernels were checked available; every read xp[off + p0 + j],
                    // j < 24, stays below ci * plen (plen covers the last tile's taps); wk holds
                    // k * 4 weights for group gi; tile holds 4 * 24 floats.
                    unsafe {
                        kernel_fwd(
                            buf.as_ptr().add(p0),
                            &plan.offs,
                            wk.as_ptr().add(gi * k * TC),
                            tile.as_mut_ptr(),
                        );
                    }
                    for c in 0..TC.min(g.co - gi * TC) {
                        let o = gi * TC + c;
                        let bo = bias.map_or(0.0, |b| b[o]);
                        let base = img * out_len + o * g.ho * g.wo;
                        for &(j, off, n) in &segs[..nseg] {
                            // SAFETY: task (img, band) alone writes the outputs of its tiles;
                            // each run lies in one output row.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(yp.ptr().add(base + off), n)
                            };
                            let src = &tile[c * TP + j..c * TP + j + n];
                            if relu {
                                for (d, &v) in dst.iter_mut().zip(src) {
                                    *d = (v + bo).max(0.0);
                                }
                            } else {
                                for (d, &v) in dst.iter_mut().zip(src) {
                                    *d = v + bo;
                                }
                            }
                        }
                    }
                }
            }
        });
    y
}

/// Weight and bias gradients: x (B, I, H, W), gy (B, O, H_out, W_out) -> (dw (O, I, kh,
/// kw), db (O)).
pub(super) fn backward_weight(
    g: &Geom,
    batch: usize,
    x: &[f32],
    gy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let plan = Plan::new(g);
    let k = plan.offs.len();
    let ktrip = k.div_ceil(3);
    let mut offs = plan.offs.clone();
    offs.resize(ktrip * 3, 0);
    let ng = g.co.div_ceil(TC);
    let copad = ng * TC;
    let acc_len = ng * ktrip * 16 + g.co;
    let nchunks = plan.ppad.div_ceil(PC);
    let nb = bands_per_image(batch, nchunks);
    let (in_len, out_len) = (g.in_len(), g.out_len());
    let acc = (0..batch * nb)
        .into_par_iter()
        .fold(
            || (Vec::new(), Vec::new(), vec![0f32; acc_len]),
            |(mut xp, mut gp, mut acc), task| {
                let (img, band) = (task / nb, task % nb);
                let (c0, c1) = (band * nchunks / nb, (band + 1) * nchunks / nb);
                build_planes(g, &plan, &x[img * in_len..(img + 1) * in_len], &mut xp);
                // The output gradient on the padded-width grid, zero at the discarded
                // columns, the tail and the padding channels.
                gp.clear();
                gp.resize(copad * plan.ppad, 0f32);
                let (q0, q1) = (c0 * PC, (c1 * PC).min(plan.ppad));
                for o in 0..g.co {
                    let mut s = 0f32;
                    for r in 0..g.ho {
                        let p = r * g.wp;
                        if p + g.wo <= q0 || p >= q1 {
                            continue;
                        }
                        let src = &gy[img * out_len + (o * g.ho + r) * g.wo..][..g.wo];
                        gp[o * plan.ppad + p..o * plan.ppad + p + g.wo].copy_from_slice(src);
                        // Bias gradient: rows counted by the band holding their first pixel.
                        if p >= q0 {
                            s += src.iter().sum::<f32>();
                        }
                    }
                    acc[ng * ktrip * 16 + o] += s;
                }
                for c in c0..c1 {
                    let p = c * PC;
                    let nvec = (PC.min(plan.ppad - p)) / 8;
                    for gi in 0..ng {
                        for t in 0..ktrip {
                            // SAFETY: reads gp[(4 gi + c) * ppad + p + 8 nvec] <= its length and
                            // xp[off + p + 8 nvec] within ci * plen; acc has 12 floats there.
                            unsafe {
                                kernel_wgrad(
                                    gp.as_ptr().add(gi * TC * plan.ppad + p),
                                    plan.ppad,
                                    xp.as_ptr().add(offs[3 * t] + p),
                                    xp.as_ptr().add(offs[3 * t + 1] + p),
                                    xp.as_ptr().add(offs[3 * t + 2] + p),
                                    nvec,
                                    acc.as_mut_ptr().add((gi * ktrip + t) * 16),
                                );
                            }
                        }
                    }
                }
                (xp, gp, acc)
            },
        )
        .map(|(_, _, acc)| acc)
        .reduce(
            || vec![0f32; acc_len],
            |mut a, b| {
                for (u, v) in a.iter_mut().zip(b) {
                    *u += v;
                }
                a
            },
        );
    let mut dw = vec![0f32; g.co * k];
    for o in 0..g.co {
        for kk in 0..k {
            let (gi, c, t, j) = (o / TC, o % TC, kk / 3, kk % 3);
            dw[o * k + kk] = acc[(gi * ktrip + t) * 16 + c * 3 + j];
        }
    }
    let db = acc[ng * ktrip * 16..].to_vec();
    (dw, db)
}

/// 4 channels x 24 pixels: out[c * 24 + j] = sum_kk wk[kk * 4 + c] * xp[offs[kk] + j].
///
/// # Safety
/// AVX2 and FMA must be available; every `xp + offs[kk] + 0..24` and `wk + 0..4 * offs.len()`
/// readable, `out + 0..96` writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_fwd(xp: *const f32, offs: &[usize], wk: *const f32, out: *mut f32) {
    use std::arch::x86_64::*;
    let mut c00 = _mm256_setzero_ps();
    let mut c01 = _mm256_setzero_ps();
    let mut c02 = _mm256_setzero_ps();
    let mut c10 = _mm256_setzero_ps();
    let mut c11 = _mm256_setzero_ps();
    let mut c12 = _mm256_setzero_ps();
    let mut c20 = _mm256_setzero_ps();
    let mut c21 = _mm256_setzero_ps();
    let mut c22 = _mm256_setzero_ps();
    let mut c30 = _mm256_setzero_ps();
    let mut c31 = _mm256_setzero_ps();
    let mut c32 = _mm256_setzero_ps();
    let mut w = wk;
    for &off in offs {
        let p = xp.add(off);
        let x0 = _mm256_loadu_ps(p);
        let x1 = _mm256_loadu_ps(p.add(8));
        let x2 = _mm256_loadu_ps(p.add(16));
        let w0 = _mm256_broadcast_ss(&*w);
        c00 = _mm256_fmadd_ps(x0, w0, c00);
        c01 = _mm256_fmadd_ps(x1, w0, c01);
        c02 = _mm256_fmadd_ps(x2, w0, c02);
        let w1 = _mm256_broadcast_ss(&*w.add(1));
        c10 = _mm256_fmadd_ps(x0, w1, c10);
        c11 = _mm256_fmadd_ps(x1, w1, c11);
        c12 = _mm256_fmadd_ps(x2, w1, c12);
        let w2 = _mm256_broadcast_ss(&*w.add(2));
        c20 = _mm256_fmadd_ps(x0, w2, c20);
        c21 = _mm256_fmadd_ps(x1, w2, c21);
        c22 = _mm256_fmadd_ps(x2, w2, c22);
        let w3 = _mm256_broadcast_ss(&*w.add(3));
        c30 = _mm256_fmadd_ps(x0, w3, c30);
        c31 = _mm256_fmadd_ps(x1, w3, c31);
        c32 = _mm256_fmadd_ps(x2, w3, c32);
        w = w.add(4);
    }
    _mm256_storeu_ps(out, c00);
    _mm256_storeu_ps(out.add(8), c01);
    _mm256_storeu_ps(out.add(16), c02);
    _mm256_storeu_ps(out.add(24), c10);
    _mm256_storeu_ps(out.add(32), c11);
    _mm256_storeu_ps(out.add(40), c12);
    _mm256_storeu_ps(out.add(48), c20);
    _mm256_storeu_ps(out.add(56), c21);
    _mm256_storeu_ps(out.add(64), c22);
    _mm256_storeu_ps(out.add(72), c30);
    _mm256_storeu_ps(out.add(80), c31);
    _mm256_storeu_ps(out.add(88), c32);
}

/// acc[c * 3 + j] (16 slots, 12 used) += sum_{v < nvec} sum_lanes g[c * gs + 8 v ..] * x_j[8 v ..] for 4 gradient
/// rows c and 3 input rows j.
///
/// # Safety
/// AVX2 and FMA must be available; `g + c * gs + 0..8 nvec` (c < 4) and `x_j + 0..8 nvec`
/// readable, `acc + 0..16` writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_wgrad(
    g: *const f32,
    gs: usize,
    xa: *const f32,
    xb: *const f32,
    xc: *const f32,
    nvec: usize,
    acc: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut a = [_mm256_setzero_ps(); 16];
    for v in 0..nvec {
        let o = 8 * v;
        let x0 = _mm256_loadu_ps(xa.add(o));
        let x1 = _mm256_loadu_ps(xb.add(o));
        let x2 = _mm256_loadu_ps(xc.add(o));
        let g0 = _mm256_loadu_ps(g.add(o));
        a[0] = _mm256_fmadd_ps(g0, x0, a[0]);
        a[1] = _mm256_fmadd_ps(g0, x1, a[1]);
        a[2] = _mm256_fmadd_ps(g0, x2, a[2]);
        let g1 = _mm256_loadu_ps(g.add(gs + o));
        a[3] = _mm256_fmadd_ps(g1, x0, a[3]);
        a[4] = _mm256_fmadd_ps(g1, x1, a[4]);
        a[5] = _mm256_fmadd_ps(g1, x2, a[5]);
        let g2 = _mm256_loadu_ps(g.add(2 * gs + o));
        a[6] = _mm256_fmadd_ps(g2, x0, a[6]);
        a[7] = _mm256_fmadd_ps(g2, x1, a[7]);
        a[8] = _mm256_fmadd_ps(g2, x2, a[8]);
        let g3 = _mm256_loadu_ps(g.add(3 * gs + o));
        a[9] = _mm256_fmadd_ps(g3, x0, a[9]);
        a[10] = _mm256_fmadd_ps(g3, x1, a[10]);
        a[11] = _mm256_fmadd_ps(g3, x2, a[11]);
    }
    // Horizontal sums of 8 vectors at once: [sum a0, .., sum a7].
    let hsum8 = |v: &[__m256]| -> __m256 {
        let t0 = _mm256_hadd_ps(v[0], v[1]);
        let t1 = _mm256_hadd_ps(v[2], v[3]);
        let t2 = _mm256_hadd_ps(v[4], v[5]);
        let t3 = _mm256_hadd_ps(v[6], v[7]);
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        _mm256_add_ps(
            _mm256_permute2f128_ps(u0, u1, 0x20),
            _mm256_permute2f128_ps(u0, u1, 0x31),
        )
    };
    let lo = hsum8(&a[..8]);
    let hi = hsum8(&a[8..]);
    _mm256_storeu_ps(acc, _mm256_add_ps(_mm256_loadu_ps(acc), lo));
    _mm256_storeu_ps(acc.add(8), _mm256_add_ps(_mm256_loadu_ps(acc.add(8)), hi));
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel_fwd(_: *const f32, _: &[usize], _: *const f32, _: *mut f32) {
    unreachable!("direct kernels are only dispatched on x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel_wgrad(
    _: *const f32,
    _: usize,
    _: *const f32,
    _: *const f32,
    _: *const f32,
    _: usize,
    _: *mut f32,
) {
    unreachable!("direct kernels are only dispatched on x86-64")
}
