//! Direct (implicit-GEMM) convolution kernels for f32 on x86-64 (AVX-512F, else AVX2 + FMA).
//!
//! Stride 1, output on the padded width `wp` (see the parent module): with the input as
//! zero-padded NCHW planes `xp[i][q]` (q = row * wp + col), output position p at kernel
//! offset (i, dy, dx) reads `xp[i][p + dy * wp + dx]`, so TP consecutive outputs read TP
//! consecutive inputs: the micro-kernel loads them as vectors straight from the planes (no
//! im2col, no packing) and multiplies them by TC output channels' broadcast weights
//! (AVX-512: 48 pixels x 8 channels, 24 accumulators; AVX2: 24 x 4, 12 accumulators). Large
//! kernels (many input channels) are split into blocks of input channels whose weights stay
//! in L1, accumulating into a per-image output buffer. The weight gradient runs the same
//! access pattern with the output gradient as the other operand and reduces over p.
//!
//! The AVX-512 kernels are inline assembly (the crate's MSRV predates the AVX-512
//! intrinsics); they run only when the CPU reports AVX-512F and the build itself does not
//! enable AVX-512 (their zmm16-31 are then free); otherwise the AVX2 kernels run. The AVX2
//! forward and weight-gradient loops are inline assembly too: their tiles use all 16 ymm
//! registers, and the compiler's register allocation of the intrinsics version spilled an
//! accumulator on every step (`docs/performance.md`, "Convolution").

use rayon::prelude::*;

use super::{Geom, SharedMut};

/// Pixels per chunk of the weight-gradient reduction.
const PC: usize = 1008;
/// Weights per channel group kept in L1 by the input-channel blocking (taps x TC floats).
const BLOCK_TAPS: usize = 405;

/// The instruction set of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// Output pixels per micro-tile.
    fn tp(self) -> usize {
        match self {
            Isa::Avx512 => 48,
            Isa::Avx2 => 24,
        }
    }
    /// Output channels per micro-tile.
    fn tc(self) -> usize {
        match self {
            Isa::Avx512 => 8,
            Isa::Avx2 => 4,
        }
    }
    /// Lanes per vector.
    fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
    /// Floats of weight-gradient accumulator per (channel group, tap triple).
    fn acc_slots(self) -> usize {
        match self {
            Isa::Avx512 => 24,
            Isa::Avx2 => 16,
        }
    }
}

fn isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let off = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
            // Without AVX2 there is no AVX-512 either: NO_AVX2 leaves the GEMM path only.
            let no2 = off("LANDMARK_SSL_CONV_NO_AVX2");
            let no512 = no2 || off("LANDMARK_SSL_CONV_NO_AVX512");
            // The assembly kernels leave zmm16-31 undeclared: only sound when the compiled
            // code cannot use them, i.e. when the build does not enable AVX-512 itself.
            let asm_ok = !cfg!(target_feature = "avx512f");
            if asm_ok && std::is_x86_feature_detected!("avx512f") && !no512 {
                Some(Isa::Avx512)
            } else if !no2
                && std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
            {
                Some(Isa::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The name of the instruction set the kernels use here, if any.
pub(super) fn isa_name() -> Option<&'static str> {
    isa().map(|i| match i {
        Isa::Avx512 => "avx512",
        Isa::Avx2 => "avx2",
    })
}

/// Whether the kernels can run on this CPU.
pub(super) fn available() -> bool {
    isa().is_some()
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
    fn new(g: &Geom, isa: Isa) -> Self {
        let ptot = g.ho * g.wp;
        let ppad = ptot.div_ceil(isa.tp()) * isa.tp();
        let plen = ppad + (g.kh - 1) * g.wp + g.kw - 1 + 16;
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

/// Copies one image (I, H, W) into zero-padded planes, zeroing the values whose `mask`
/// (same layout) is not positive when a mask is given (the gradient through a ReLU).
fn build_planes(g: &Geom, plan: &Plan, x: &[f32], mask: Option<&[f32]>, buf: &mut Vec<f32>) {
    buf.clear();
    buf.resize(g.ci * plan.plen, 0.0);
    for i in 0..g.ci {
        for y in 0..g.h {
            let d = i * plan.plen + (y + g.ph) * g.wp + g.pw;
            let s = (i * g.h + y) * g.w;
            copy_masked(
                &mut buf[d..d + g.w],
                &x[s..s + g.w],
                mask.map(|m| &m[s..s + g.w]),
            );
        }
    }
}

/// dst = src where mask > 0 (or everywhere without a mask), else 0.
fn copy_masked(dst: &mut [f32], src: &[f32], mask: Option<&[f32]>) {
    match mask {
        None => dst.copy_from_slice(src),
        Some(m) => {
            for ((d, &v), &mv) in dst.iter_mut().zip(src).zip(m) {
                *d = if mv > 0.0 { v } else { 0.0 };
            }
        }
    }
}

/// Number of tasks per image so that a small batch still feeds every thread.
fn bands_per_image(batch: usize, units: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    if batch >= 2 * threads {
        1
    } else {
        (4 * threads).div_ceil(batch.max(1)).clamp(1, units.max(1))
    }
}

/// Runs the forward micro-kernel:
/// `out[c * TP + j] (+)= sum_kk wk[kk * TC + c] * xp[offs[kk] + j]`.
///
/// # Safety
/// The ISA must be available; `xp + offs[kk] + 0..TP` and `wk + 0..TC * offs.len()` readable,
/// `out + 0..TC * TP` writable.
unsafe fn run_fwd(
    isa: Isa,
    xp: *const f32,
    offs: &[usize],
    wk: *const f32,
    out: *mut f32,
    acc: bool,
) {
    match isa {
        Isa::Avx512 => kernel_fwd512(xp, offs.as_ptr(), offs.len(), wk, out, acc),
        Isa::Avx2 => kernel_fwd(xp, offs, wk, out, acc),
    }
}

/// Forward convolution of a batch: x (B, I, H, W) -> (B, O, H_out, W_out), with the
/// effective weight `weff(o, i, dy, dx)`, an optional bias (O) and ReLU; `x_mask` (the
/// layout of x) zeroes the inputs where it is not positive.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    g: &Geom,
    batch: usize,
    x: &[f32],
    x_mask: Option<&[f32]>,
    weff: impl Fn(usize, usize, usize, usize) -> f32,
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let Some(isa) = isa() else {
        return Vec::new();
    };
    let (tp, tc) = (isa.tp(), isa.tc());
    let plan = Plan::new(g, isa);
    let k = plan.offs.len();
    let ng = g.co.div_ceil(tc);
    let mut wk = vec![0f32; ng * k * tc];
    for o in 0..g.co {
        for i in 0..g.ci {
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let kk = (i * g.kh + dy) * g.kw + dx;
                    wk[((o / tc) * k + kk) * tc + o % tc] = weff(o, i, dy, dx);
                }
            }
        }
    }
    let mut y = crate::buffer::zeroed(batch * g.out_len(), 0f32);
    if y.is_empty() {
        return y;
    }
    // Input-channel blocks: taps [kb * blk, (kb + 1) * blk).
    let taps_per_i = g.kh * g.kw;
    let icb = (BLOCK_TAPS / taps_per_i).clamp(1, g.ci);
    let blk = icb * taps_per_i;
    let nblk = k.div_ceil(blk);
    let ntiles = plan.ppad / tp;
    let nb = bands_per_image(batch, ntiles);
    let yp = SharedMut(y.as_mut_ptr());
    let (in_len, out_len) = (g.in_len(), g.out_len());
    (0..batch * nb).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(buf, cbuf), task| {
            let _ftz = crate::denormal::FlushDenormals::new();
            let (img, band) = (task / nb, task % nb);
            let (t0, t1) = (band * ntiles / nb, (band + 1) * ntiles / nb);
            let r = img * in_len..(img + 1) * in_len;
            build_planes(g, &plan, &x[r.clone()], x_mask.map(|m| &m[r]), buf);
            // Output tiles of the band: [tile][group][TC][TP].
            cbuf.clear();
            cbuf.resize((t1 - t0) * ng * tc * tp, 0f32);
            for kb in 0..nblk {
                let (k0, k1) = (kb * blk, ((kb + 1) * blk).min(k));
                for t in t0..t1 {
                    for gi in 0..ng {
                        // SAFETY: isa() is available; reads xp[offs[kk] + t * tp + j],
                        // j < tp, stay below ci * plen (plen covers the last tile's
                        // taps); wk holds k * tc weights per group; the tile buffer
                        // holds tc * tp floats.
                        unsafe {
                            run_fwd(
                                isa,
                                buf.as_ptr().add(t * tp),
                                &plan.offs[k0..k1],
                                wk.as_ptr().add((gi * k + k0) * tc),
                                cbuf.as_mut_ptr().add(((t - t0) * ng + gi) * tc * tp),
                                kb > 0,
                            );
                        }
                    }
                }
            }
            for t in t0..t1 {
                let p0 = t * tp;
                // The tile's valid outputs as (index in tile, offset in the plane, length).
                let mut segs = [(0usize, 0usize, 0usize); 8];
                let mut nseg = 0;
                let end = (p0 + tp).min(plan.ptot);
                let mut p = p0;
                while p < end {
                    let (r, col) = (p / g.wp, p % g.wp);
                    let row_end = ((r + 1) * g.wp).min(end);
                    if col < g.wo && nseg < segs.len() {
                        let n = g.wo.min(col + row_end - p) - col;
                        segs[nseg] = (p - p0, r * g.wo + col, n);
                        nseg += 1;
                    }
                    p = row_end;
                }
                for o in 0..g.co {
                    let (gi, c) = (o / tc, o % tc);
                    let tile = &cbuf[(((t - t0) * ng + gi) * tc + c) * tp..][..tp];
                    let bo = bias.map_or(0.0, |b| b[o]);
                    let base = img * out_len + o * g.ho * g.wo;
                    for &(j, off, n) in &segs[..nseg] {
                        // SAFETY: task (img, band) alone writes the outputs of its tiles;
                        // each run lies in one output row.
                        let dst =
                            unsafe { std::slice::from_raw_parts_mut(yp.ptr().add(base + off), n) };
                        let src = &tile[j..j + n];
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
        },
    );
    y
}

/// Weight and bias gradients: x (B, I, H, W), gy (B, O, H_out, W_out) -> (dw (O, I, kh,
/// kw), db (O)); `gy_mask` (the layout of gy) zeroes gy where it is not positive.
pub(super) fn backward_weight(
    g: &Geom,
    batch: usize,
    x: &[f32],
    gy: &[f32],
    gy_mask: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let Some(isa) = isa() else {
        return (Vec::new(), Vec::new());
    };
    let (tc, lanes, slots) = (isa.tc(), isa.lanes(), isa.acc_slots());
    let plan = Plan::new(g, isa);
    let k = plan.offs.len();
    let ktrip = k.div_ceil(3);
    let mut offs = plan.offs.clone();
    offs.resize(ktrip * 3, 0);
    let ng = g.co.div_ceil(tc);
    let copad = ng * tc;
    let acc_len = ng * ktrip * slots + g.co;
    // Chunks of the reduction (a multiple of 48 pixels).
    let pc = PC.min(plan.ppad);
    let nchunks = plan.ppad.div_ceil(pc);
    let nb = bands_per_image(batch, nchunks);
    let ntasks = batch * nb;
    let threads = rayon::current_num_threads().max(1);
    let (in_len, out_len) = (g.in_len(), g.out_len());
    let acc = (0..ntasks)
        .into_par_iter()
        .with_min_len(ntasks.div_ceil(threads))
        .fold(
            || (Vec::new(), Vec::new(), vec![0f32; acc_len]),
            |(mut xp, mut gp, mut acc), task| {
                let _ftz = crate::denormal::FlushDenormals::new();
                let (img, band) = (task / nb, task % nb);
                let (c0, c1) = (band * nchunks / nb, (band + 1) * nchunks / nb);
                build_planes(
                    g,
                    &plan,
                    &x[img * in_len..(img + 1) * in_len],
                    None,
                    &mut xp,
                );
                // The output gradient on the padded-width grid, zero at the discarded
                // columns, the tail and the padding channels.
                gp.clear();
                gp.resize(copad * plan.ppad, 0f32);
                let (q0, q1) = (c0 * pc, (c1 * pc).min(plan.ppad));
                for o in 0..g.co {
                    let mut s = 0f32;
                    for r in 0..g.ho {
                        let p = r * g.wp;
                        if p + g.wo <= q0 || p >= q1 {
                            continue;
                        }
                        let so = img * out_len + (o * g.ho + r) * g.wo;
                        let dst = &mut gp[o * plan.ppad + p..o * plan.ppad + p + g.wo];
                        copy_masked(dst, &gy[so..so + g.wo], gy_mask.map(|m| &m[so..so + g.wo]));
                        // Bias gradient: rows counted by the band holding their first pixel.
                        if p >= q0 {
                            s += dst.iter().sum::<f32>();
                        }
                    }
                    acc[ng * ktrip * slots + o] += s;
                }
                let mut scratch = [0f32; 24 * 16];
                for c in c0..c1 {
                    let p = c * pc;
                    let nvec = pc.min(plan.ppad - p) / lanes;
                    // Gradient rows of a group stay in L1 while the taps stream by.
                    for gi in 0..ng {
                        for t in 0..ktrip {
                            // SAFETY: reads gp[(tc gi + c) * ppad + p + lanes nvec] within its
                            // length and xp[off + p + lanes nvec] within ci * plen; acc has
                            // `slots` floats there.
                            unsafe {
                                let gptr = gp.as_ptr().add(gi * tc * plan.ppad + p);
                                let xa = xp.as_ptr().add(offs[3 * t] + p);
                                let xb = xp.as_ptr().add(offs[3 * t + 1] + p);
                                let xc = xp.as_ptr().add(offs[3 * t + 2] + p);
                                let a = acc.as_mut_ptr().add((gi * ktrip + t) * slots);
                                match isa {
                                    Isa::Avx512 => {
                                        kernel_wgrad512(
                                            gptr,
                                            plan.ppad,
                                            xa,
                                            xb,
                                            xc,
                                            nvec,
                                            scratch.as_mut_ptr(),
                                        );
                                        reduce24(scratch.as_ptr(), a);
                                    }
                                    Isa::Avx2 => kernel_wgrad(gptr, plan.ppad, xa, xb, xc, nvec, a),
                                }
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
            let (gi, c, t, j) = (o / tc, o % tc, kk / 3, kk % 3);
            dw[o * k + kk] = acc[(gi * ktrip + t) * slots + c * 3 + j];
        }
    }
    let db = acc[ng * ktrip * slots..].to_vec();
    (dw, db)
}

/// 8 channels x 48 pixels: `out[c * 48 + j] (+)= sum_kk wk[kk * 8 + c] * xp[offs[kk] + j]`.
///
/// # Safety
/// AVX-512F must be available; every `xp + offs[kk] + 0..48` (kk < k) and `wk + 0..8 k`
/// readable, `out + 0..384` readable and writable.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel_fwd512(
    xp: *const f32,
    offs: *const usize,
    k: usize,
    wk: *const f32,
    out: *mut f32,
    acc: bool,
) {
    // zmm16-31 are not used by this crate's compiled code (built without AVX-512); the
    // kernel zeroes them and the upper halves of zmm0-15 (vzeroupper) before returning.
    std::arch::asm!(
            "test {acc}, {acc}",
            "jz 2f",
            "vmovups zmm0, zmmword ptr [{out} + 0]",
            "vmovups zmm1, zmmword ptr [{out} + 64]",
            "vmovups zmm2, zmmword ptr [{out} + 128]",
            "vmovups zmm3, zmmword ptr [{out} + 192]",
            "vmovups zmm4, zmmword ptr [{out} + 256]",
            "vmovups zmm5, zmmword ptr [{out} + 320]",
            "vmovups zmm6, zmmword ptr [{out} + 384]",
            "vmovups zmm7, zmmword ptr [{out} + 448]",
            "vmovups zmm8, zmmword ptr [{out} + 512]",
            "vmovups zmm9, zmmword ptr [{out} + 576]",
            "vmovups zmm10, zmmword ptr [{out} + 640]",
            "vmovups zmm11, zmmword ptr [{out} + 704]",
            "vmovups zmm12, zmmword ptr [{out} + 768]",
            "vmovups zmm13, zmmword ptr [{out} + 832]",
            "vmovups zmm14, zmmword ptr [{out} + 896]",
            "vmovups zmm15, zmmword ptr [{out} + 960]",
            "vmovups zmm16, zmmword ptr [{out} + 1024]",
            "vmovups zmm17, zmmword ptr [{out} + 1088]",
            "vmovups zmm18, zmmword ptr [{out} + 1152]",
            "vmovups zmm19, zmmword ptr [{out} + 1216]",
            "vmovups zmm20, zmmword ptr [{out} + 1280]",
            "vmovups zmm21, zmmword ptr [{out} + 1344]",
            "vmovups zmm22, zmmword ptr [{out} + 1408]",
            "vmovups zmm23, zmmword ptr [{out} + 1472]",
            "jmp 3f",
            "2:",
            "vpxord zmm0, zmm0, zmm0",
            "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4",
            "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6",
            "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10",
            "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12",
            "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14",
            "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "3:",
            "test {k}, {k}",
            "jz 5f",
            "4:",
            "mov {t}, qword ptr [{offs}]",
            "vmovups zmm24, zmmword ptr [{xp} + {t}*4]",
            "vmovups zmm25, zmmword ptr [{xp} + {t}*4 + 64]",
            "vmovups zmm26, zmmword ptr [{xp} + {t}*4 + 128]",
            "vbroadcastss zmm27, dword ptr [{w} + 0]",
            "vfmadd231ps zmm0, zmm24, zmm27",
            "vfmadd231ps zmm1, zmm25, zmm27",
            "vfmadd231ps zmm2, zmm26, zmm27",
            "vbroadcastss zmm28, dword ptr [{w} + 4]",
            "vfmadd231ps zmm3, zmm24, zmm28",
            "vfmadd231ps zmm4, zmm25, zmm28",
            "vfmadd231ps zmm5, zmm26, zmm28",
            "vbroadcastss zmm27, dword ptr [{w} + 8]",
            "vfmadd231ps zmm6, zmm24, zmm27",
            "vfmadd231ps zmm7, zmm25, zmm27",
            "vfmadd231ps zmm8, zmm26, zmm27",
            "vbroadcastss zmm28, dword ptr [{w} + 12]",
            "vfmadd231ps zmm9, zmm24, zmm28",
            "vfmadd231ps zmm10, zmm25, zmm28",
            "vfmadd231ps zmm11, zmm26, zmm28",
            "vbroadcastss zmm27, dword ptr [{w} + 16]",
            "vfmadd231ps zmm12, zmm24, zmm27",
            "vfmadd231ps zmm13, zmm25, zmm27",
            "vfmadd231ps zmm14, zmm26, zmm27",
            "vbroadcastss zmm28, dword ptr [{w} + 20]",
            "vfmadd231ps zmm15, zmm24, zmm28",
            "vfmadd231ps zmm16, zmm25, zmm28",
            "vfmadd231ps zmm17, zmm26, zmm28",
            "vbroadcastss zmm27, dword ptr [{w} + 24]",
            "vfmadd231ps zmm18, zmm24, zmm27",
            "vfmadd231ps zmm19, zmm25, zmm27",
            "vfmadd231ps zmm20, zmm26, zmm27",
            "vbroadcastss zmm28, dword ptr [{w} + 28]",
            "vfmadd231ps zmm21, zmm24, zmm28",
            "vfmadd231ps zmm22, zmm25, zmm28",
            "vfmadd231ps zmm23, zmm26, zmm28",
            "add {offs}, 8",
            "add {w}, 32",
            "dec {k}",
            "jnz 4b",
            "5:",
            "vmovups zmmword ptr [{out} + 0], zmm0",
            "vmovups zmmword ptr [{out} + 64], zmm1",
            "vmovups zmmword ptr [{out} + 128], zmm2",
            "vmovups zmmword ptr [{out} + 192], zmm3",
            "vmovups zmmword ptr [{out} + 256], zmm4",
            "vmovups zmmword ptr [{out} + 320], zmm5",
            "vmovups zmmword ptr [{out} + 384], zmm6",
            "vmovups zmmword ptr [{out} + 448], zmm7",
            "vmovups zmmword ptr [{out} + 512], zmm8",
            "vmovups zmmword ptr [{out} + 576], zmm9",
            "vmovups zmmword ptr [{out} + 640], zmm10",
            "vmovups zmmword ptr [{out} + 704], zmm11",
            "vmovups zmmword ptr [{out} + 768], zmm12",
            "vmovups zmmword ptr [{out} + 832], zmm13",
            "vmovups zmmword ptr [{out} + 896], zmm14",
            "vmovups zmmword ptr [{out} + 960], zmm15",
            "vmovups zmmword ptr [{out} + 1024], zmm16",
            "vmovups zmmword ptr [{out} + 1088], zmm17",
            "vmovups zmmword ptr [{out} + 1152], zmm18",
            "vmovups zmmword ptr [{out} + 1216], zmm19",
            "vmovups zmmword ptr [{out} + 1280], zmm20",
            "vmovups zmmword ptr [{out} + 1344], zmm21",
            "vmovups zmmword ptr [{out} + 1408], zmm22",
            "vmovups zmmword ptr [{out} + 1472], zmm23",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "vpxord zmm24, zmm24, zmm24",
            "vpxord zmm25, zmm25, zmm25",
            "vpxord zmm26, zmm26, zmm26",
            "vpxord zmm27, zmm27, zmm27",
            "vpxord zmm28, zmm28, zmm28",
            "vpxord zmm29, zmm29, zmm29",
            "vpxord zmm30, zmm30, zmm30",
            "vpxord zmm31, zmm31, zmm31",
            "vzeroupper",
            xp = in(reg) xp,
            offs = inout(reg) offs => _,
            k = inout(reg) k => _,
            w = inout(reg) wk => _,
            out = in(reg) out,
            acc = in(reg) usize::from(acc),
            t = out(reg) _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
    );
}

/// out[(c * 3 + j) * 16 + lane] = sum_{v < nvec} g[c * gs + 16 v + lane] * x_j[16 v + lane]
/// for 8 gradient rows c and 3 input rows j (16 partial sums each).
///
/// # Safety
/// AVX-512F must be available; `g + c * gs + 0..16 nvec` (c < 8) and `x_j + 0..16 nvec`
/// readable, `acc + 0..384` writable.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel_wgrad512(
    g: *const f32,
    gs: usize,
    xa: *const f32,
    xb: *const f32,
    xc: *const f32,
    nvec: usize,
    acc: *mut f32,
) {
    let gsb = gs * 4;
    std::arch::asm!(
            "vpxord zmm0, zmm0, zmm0",
            "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4",
            "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6",
            "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10",
            "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12",
            "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14",
            "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "test {n}, {n}",
            "jz 5f",
            "4:",
            "vmovups zmm24, zmmword ptr [{xa}]",
            "vmovups zmm25, zmmword ptr [{xb}]",
            "vmovups zmm26, zmmword ptr [{xc}]",
            "vmovups zmm27, zmmword ptr [{g}]",
            "vfmadd231ps zmm0, zmm24, zmm27",
            "vfmadd231ps zmm1, zmm25, zmm27",
            "vfmadd231ps zmm2, zmm26, zmm27",
            "vmovups zmm28, zmmword ptr [{g} + {gs}]",
            "vfmadd231ps zmm3, zmm24, zmm28",
            "vfmadd231ps zmm4, zmm25, zmm28",
            "vfmadd231ps zmm5, zmm26, zmm28",
            "vmovups zmm27, zmmword ptr [{g} + {gs}*2]",
            "vfmadd231ps zmm6, zmm24, zmm27",
            "vfmadd231ps zmm7, zmm25, zmm27",
            "vfmadd231ps zmm8, zmm26, zmm27",
            "vmovups zmm28, zmmword ptr [{g3}]",
            "vfmadd231ps zmm9, zmm24, zmm28",
            "vfmadd231ps zmm10, zmm25, zmm28",
            "vfmadd231ps zmm11, zmm26, zmm28",
            "vmovups zmm27, zmmword ptr [{g} + {gs}*4]",
            "vfmadd231ps zmm12, zmm24, zmm27",
            "vfmadd231ps zmm13, zmm25, zmm27",
            "vfmadd231ps zmm14, zmm26, zmm27",
            "vmovups zmm28, zmmword ptr [{g3} + {gs}*2]",
            "vfmadd231ps zmm15, zmm24, zmm28",
            "vfmadd231ps zmm16, zmm25, zmm28",
            "vfmadd231ps zmm17, zmm26, zmm28",
            "vmovups zmm27, zmmword ptr [{g6}]",
            "vfmadd231ps zmm18, zmm24, zmm27",
            "vfmadd231ps zmm19, zmm25, zmm27",
            "vfmadd231ps zmm20, zmm26, zmm27",
            "vmovups zmm28, zmmword ptr [{g6} + {gs}]",
            "vfmadd231ps zmm21, zmm24, zmm28",
            "vfmadd231ps zmm22, zmm25, zmm28",
            "vfmadd231ps zmm23, zmm26, zmm28",
            "add {xa}, 64",
            "add {xb}, 64",
            "add {xc}, 64",
            "add {g}, 64",
            "add {g3}, 64",
            "add {g6}, 64",
            "dec {n}",
            "jnz 4b",
            "5:",
            "vmovups zmmword ptr [{acc} + 0], zmm0",
            "vmovups zmmword ptr [{acc} + 64], zmm1",
            "vmovups zmmword ptr [{acc} + 128], zmm2",
            "vmovups zmmword ptr [{acc} + 192], zmm3",
            "vmovups zmmword ptr [{acc} + 256], zmm4",
            "vmovups zmmword ptr [{acc} + 320], zmm5",
            "vmovups zmmword ptr [{acc} + 384], zmm6",
            "vmovups zmmword ptr [{acc} + 448], zmm7",
            "vmovups zmmword ptr [{acc} + 512], zmm8",
            "vmovups zmmword ptr [{acc} + 576], zmm9",
            "vmovups zmmword ptr [{acc} + 640], zmm10",
            "vmovups zmmword ptr [{acc} + 704], zmm11",
            "vmovups zmmword ptr [{acc} + 768], zmm12",
            "vmovups zmmword ptr [{acc} + 832], zmm13",
            "vmovups zmmword ptr [{acc} + 896], zmm14",
            "vmovups zmmword ptr [{acc} + 960], zmm15",
            "vmovups zmmword ptr [{acc} + 1024], zmm16",
            "vmovups zmmword ptr [{acc} + 1088], zmm17",
            "vmovups zmmword ptr [{acc} + 1152], zmm18",
            "vmovups zmmword ptr [{acc} + 1216], zmm19",
            "vmovups zmmword ptr [{acc} + 1280], zmm20",
            "vmovups zmmword ptr [{acc} + 1344], zmm21",
            "vmovups zmmword ptr [{acc} + 1408], zmm22",
            "vmovups zmmword ptr [{acc} + 1472], zmm23",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "vpxord zmm24, zmm24, zmm24",
            "vpxord zmm25, zmm25, zmm25",
            "vpxord zmm26, zmm26, zmm26",
            "vpxord zmm27, zmm27, zmm27",
            "vpxord zmm28, zmm28, zmm28",
            "vpxord zmm29, zmm29, zmm29",
            "vpxord zmm30, zmm30, zmm30",
            "vpxord zmm31, zmm31, zmm31",
            "vzeroupper",
            g = inout(reg) g => _,
            gs = in(reg) gsb,
            g3 = inout(reg) g.add(3 * gs) => _,
            g6 = inout(reg) g.add(6 * gs) => _,
            xa = inout(reg) xa => _,
            xb = inout(reg) xb => _,
            xc = inout(reg) xc => _,
            n = inout(reg) nvec => _,
            acc = in(reg) acc,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack),
    );
}

/// `acc[r] += sum of the 16 floats of part[16 r..]`, r < 24.
///
/// # Safety
/// AVX2 must be available; `part + 0..384` readable, `acc + 0..24` readable and writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn reduce24(part: *const f32, acc: *mut f32) {
    use std::arch::x86_64::*;
    for blk in 0..3 {
        let mut v = [_mm256_setzero_ps(); 8];
        for (r, vr) in v.iter_mut().enumerate() {
            let q = part.add((blk * 8 + r) * 16);
            *vr = _mm256_add_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(8)));
        }
        let t0 = _mm256_hadd_ps(v[0], v[1]);
        let t1 = _mm256_hadd_ps(v[2], v[3]);
        let t2 = _mm256_hadd_ps(v[4], v[5]);
        let t3 = _mm256_hadd_ps(v[6], v[7]);
        let u0 = _mm256_hadd_ps(t0, t1);
        let u1 = _mm256_hadd_ps(t2, t3);
        let sums = _mm256_add_ps(
            _mm256_permute2f128_ps(u0, u1, 0x20),
            _mm256_permute2f128_ps(u0, u1, 0x31),
        );
        let a = acc.add(blk * 8);
        _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), sums));
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn reduce24(_: *const f32, _: *mut f32) {
    unreachable!("direct kernels are only dispatched on x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel_fwd512(
    _: *const f32,
    _: *const usize,
    _: usize,
    _: *const f32,
    _: *mut f32,
    _: bool,
) {
    unreachable!("direct kernels are only dispatched on x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel_wgrad512(
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

/// 4 channels x 24 pixels: `out[c * 24 + j] (+)= sum_kk wk[kk * 4 + c] * xp[offs[kk] + j]`.
///
/// # Safety
/// AVX2 and FMA must be available; every `xp + offs[kk] + 0..24` and `wk + 0..4 * offs.len()`
/// readable, `out + 0..96` readable and writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_fwd(xp: *const f32, offs: &[usize], wk: *const f32, out: *mut f32, acc: bool) {
    // Inline assembly, not intrinsics: the tile needs all 16 ymm registers (12
    // accumulators, 3 input vectors, 1 broadcast weight), and LLVM spilled an accumulator to
    // the stack on every tap, which put a store-to-load round trip in its dependency chain.
    std::arch::asm!(
        "test {acc}, {acc}",
        "jz 2f",
        "vmovups ymm0, ymmword ptr [{out} + 0]",
        "vmovups ymm1, ymmword ptr [{out} + 32]",
        "vmovups ymm2, ymmword ptr [{out} + 64]",
        "vmovups ymm3, ymmword ptr [{out} + 96]",
        "vmovups ymm4, ymmword ptr [{out} + 128]",
        "vmovups ymm5, ymmword ptr [{out} + 160]",
        "vmovups ymm6, ymmword ptr [{out} + 192]",
        "vmovups ymm7, ymmword ptr [{out} + 224]",
        "vmovups ymm8, ymmword ptr [{out} + 256]",
        "vmovups ymm9, ymmword ptr [{out} + 288]",
        "vmovups ymm10, ymmword ptr [{out} + 320]",
        "vmovups ymm11, ymmword ptr [{out} + 352]",
        "jmp 3f",
        "2:",
        "vxorps ymm0, ymm0, ymm0",
        "vxorps ymm1, ymm1, ymm1",
        "vxorps ymm2, ymm2, ymm2",
        "vxorps ymm3, ymm3, ymm3",
        "vxorps ymm4, ymm4, ymm4",
        "vxorps ymm5, ymm5, ymm5",
        "vxorps ymm6, ymm6, ymm6",
        "vxorps ymm7, ymm7, ymm7",
        "vxorps ymm8, ymm8, ymm8",
        "vxorps ymm9, ymm9, ymm9",
        "vxorps ymm10, ymm10, ymm10",
        "vxorps ymm11, ymm11, ymm11",
        "3:",
        "test {k}, {k}",
        "jz 5f",
        "4:",
        "mov {t}, qword ptr [{offs}]",
        "vmovups ymm12, ymmword ptr [{xp} + {t}*4]",
        "vmovups ymm13, ymmword ptr [{xp} + {t}*4 + 32]",
        "vmovups ymm14, ymmword ptr [{xp} + {t}*4 + 64]",
        "vbroadcastss ymm15, dword ptr [{w} + 0]",
        "vfmadd231ps ymm0, ymm12, ymm15",
        "vfmadd231ps ymm1, ymm13, ymm15",
        "vfmadd231ps ymm2, ymm14, ymm15",
        "vbroadcastss ymm15, dword ptr [{w} + 4]",
        "vfmadd231ps ymm3, ymm12, ymm15",
        "vfmadd231ps ymm4, ymm13, ymm15",
        "vfmadd231ps ymm5, ymm14, ymm15",
        "vbroadcastss ymm15, dword ptr [{w} + 8]",
        "vfmadd231ps ymm6, ymm12, ymm15",
        "vfmadd231ps ymm7, ymm13, ymm15",
        "vfmadd231ps ymm8, ymm14, ymm15",
        "vbroadcastss ymm15, dword ptr [{w} + 12]",
        "vfmadd231ps ymm9, ymm12, ymm15",
        "vfmadd231ps ymm10, ymm13, ymm15",
        "vfmadd231ps ymm11, ymm14, ymm15",
        "add {offs}, 8",
        "add {w}, 16",
        "dec {k}",
        "jnz 4b",
        "5:",
        "vmovups ymmword ptr [{out} + 0], ymm0",
        "vmovups ymmword ptr [{out} + 32], ymm1",
        "vmovups ymmword ptr [{out} + 64], ymm2",
        "vmovups ymmword ptr [{out} + 96], ymm3",
        "vmovups ymmword ptr [{out} + 128], ymm4",
        "vmovups ymmword ptr [{out} + 160], ymm5",
        "vmovups ymmword ptr [{out} + 192], ymm6",
        "vmovups ymmword ptr [{out} + 224], ymm7",
        "vmovups ymmword ptr [{out} + 256], ymm8",
        "vmovups ymmword ptr [{out} + 288], ymm9",
        "vmovups ymmword ptr [{out} + 320], ymm10",
        "vmovups ymmword ptr [{out} + 352], ymm11",
        "vzeroupper",
        xp = in(reg) xp,
        offs = inout(reg) offs.as_ptr() => _,
        k = inout(reg) offs.len() => _,
        w = inout(reg) wk => _,
        out = in(reg) out,
        acc = in(reg) usize::from(acc),
        t = out(reg) _,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
        out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
        out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        options(nostack),
    );
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
    // Inline assembly for the reason given at `kernel_fwd`: 12 accumulators, 3 input rows
    // and 1 gradient row fill the 16 ymm registers.
    let mut a = [_mm256_setzero_ps(); 16];
    std::arch::asm!(
        "vxorps ymm0, ymm0, ymm0",
        "vxorps ymm1, ymm1, ymm1",
        "vxorps ymm2, ymm2, ymm2",
        "vxorps ymm3, ymm3, ymm3",
        "vxorps ymm4, ymm4, ymm4",
        "vxorps ymm5, ymm5, ymm5",
        "vxorps ymm6, ymm6, ymm6",
        "vxorps ymm7, ymm7, ymm7",
        "vxorps ymm8, ymm8, ymm8",
        "vxorps ymm9, ymm9, ymm9",
        "vxorps ymm10, ymm10, ymm10",
        "vxorps ymm11, ymm11, ymm11",
        "test {k}, {k}",
        "jz 5f",
        "4:",
        "vmovups ymm12, ymmword ptr [{xa}]",
        "vmovups ymm13, ymmword ptr [{xb}]",
        "vmovups ymm14, ymmword ptr [{xc}]",
        "vmovups ymm15, ymmword ptr [{g}]",
        "vfmadd231ps ymm0, ymm15, ymm12",
        "vfmadd231ps ymm1, ymm15, ymm13",
        "vfmadd231ps ymm2, ymm15, ymm14",
        "vmovups ymm15, ymmword ptr [{g} + {s1}]",
        "vfmadd231ps ymm3, ymm15, ymm12",
        "vfmadd231ps ymm4, ymm15, ymm13",
        "vfmadd231ps ymm5, ymm15, ymm14",
        "vmovups ymm15, ymmword ptr [{g} + {s1}*2]",
        "vfmadd231ps ymm6, ymm15, ymm12",
        "vfmadd231ps ymm7, ymm15, ymm13",
        "vfmadd231ps ymm8, ymm15, ymm14",
        "vmovups ymm15, ymmword ptr [{g} + {s3}]",
        "vfmadd231ps ymm9, ymm15, ymm12",
        "vfmadd231ps ymm10, ymm15, ymm13",
        "vfmadd231ps ymm11, ymm15, ymm14",
        "add {xa}, 32",
        "add {xb}, 32",
        "add {xc}, 32",
        "add {g}, 32",
        "dec {k}",
        "jnz 4b",
        "5:",
        "vmovups ymmword ptr [{scr} + 0], ymm0",
        "vmovups ymmword ptr [{scr} + 32], ymm1",
        "vmovups ymmword ptr [{scr} + 64], ymm2",
        "vmovups ymmword ptr [{scr} + 96], ymm3",
        "vmovups ymmword ptr [{scr} + 128], ymm4",
        "vmovups ymmword ptr [{scr} + 160], ymm5",
        "vmovups ymmword ptr [{scr} + 192], ymm6",
        "vmovups ymmword ptr [{scr} + 224], ymm7",
        "vmovups ymmword ptr [{scr} + 256], ymm8",
        "vmovups ymmword ptr [{scr} + 288], ymm9",
        "vmovups ymmword ptr [{scr} + 320], ymm10",
        "vmovups ymmword ptr [{scr} + 352], ymm11",
        "vzeroupper",
        g = inout(reg) g => _,
        s1 = in(reg) gs * 4,
        s3 = in(reg) gs * 12,
        xa = inout(reg) xa => _,
        xb = inout(reg) xb => _,
        xc = inout(reg) xc => _,
        k = inout(reg) nvec => _,
        scr = in(reg) a.as_mut_ptr(),
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
        out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
        out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        options(nostack),
    );
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
unsafe fn kernel_fwd(_: *const f32, _: &[usize], _: *const f32, _: *mut f32, _: bool) {
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
