//! The GEMM path: convolution as GEMMs through the `gemm` crate, for f64 and for f32 where
//! the direct kernels do not run (`LANDMARK_SSL_CONV_KERNEL=gemm`, a CPU without AVX2).
//!
//! With the padded input in channels-last order `xcl[q][i]` (q = row * wp + col, see
//! [`Geom`]), the input patch of output p at kernel offset (dy, dx) is
//! `xcl[p + dy * wp + dx][.]`, so for a fixed dy the whole (dx, i) patch row is contiguous: the im2col matrix is a
//! strided view of xcl with row stride I (rows overlap), no copy. When kw * I is small (few
//! channels), `r = kh` kernel rows are merged into one GEMM by replicating xcl kh times
//! (`e[q][rr][i] = xcl[q + rr * wp][i]`, the rows of the patch matrix then have stride
//! kh * I), otherwise `r = 1` and kh GEMMs accumulate. Work is split into (image, band of
//! output rows) tasks spread over rayon, each GEMM single-threaded.

use candle_core::WithDType;
use rayon::prelude::*;

use super::{Geom, SharedMut};

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
pub(super) fn pack_weight<T: WithDType>(
    g: &Geom,
    weff: impl Fn(usize, usize, usize, usize) -> T,
) -> Vec<T> {
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
    ::gemm::gemm(
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
        ::gemm::Parallelism::None,
    )
}

/// The forward convolution of a batch: x (B, I, H, W) contiguous, packed weight, bias (O)
/// -> y (B, O, H_out, W_out).
pub(super) fn forward<T: WithDType>(
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
pub(super) fn backward_weight<T: WithDType>(
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
