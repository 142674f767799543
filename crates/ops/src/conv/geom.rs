//! The geometry of a stride-1 convolution as the CPU kernels see it: sizes, the effective
//! padding, the output on the padded width, and the GEMM path's split into tasks.
//!
//! Stride 1. The output is computed on the padded width `wp = W + 2 pw`: output position
//! p = y * wp + x (x < wp, the columns x >= W_out being discarded), so the input patch of
//! output p at kernel offset (dy, dx) starts at padded position p + dy * wp + dx. Both
//! kernel families ([`super::gemm`], [`super::direct`]) rely on this layout.

/// Below this many elements per kernel row (kw * I), kernel rows are merged into one GEMM.
const MERGE_BELOW: usize = 256;
/// Target size (elements) of a task's patch buffer.
const BAND_TARGET: usize = 96 * 1024;

/// Sizes of a stride-1 convolution of one image: input (ci, h, w), output (co, ho, wo),
/// kernel (kh, kw), padding (ph, pw) with ph < kh and pw < kw.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    pub(super) ci: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) co: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) ph: usize,
    pub(super) pw: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    /// Padded width W + 2 pw: the row stride of the output grid the kernels compute.
    pub(super) wp: usize,
    /// Kernel rows merged per GEMM: kh or 1.
    pub(super) r: usize,
    /// Output rows per task.
    pub(super) band: usize,
}

impl Geom {
    /// The geometry of a layer with kernel (kh, kw) >= 1 and padding `pad` on every side.
    /// The fast path only runs with pad < kh and pad < kw; the clamp to kh - 1 and kw - 1
    /// keeps the sizes in range for any layout the custom op is handed.
    pub(super) fn of_layer(
        (ci, h, w): (usize, usize, usize),
        (co, kh, kw): (usize, usize, usize),
        pad: usize,
    ) -> Self {
        Geom::new(ci, h, w, co, kh, kw, pad.min(kh - 1), pad.min(kw - 1))
    }

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
    pub(super) fn input_grad_geom(&self) -> Geom {
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

    /// GEMM passes per task: kh / r.
    pub(super) fn passes(&self) -> usize {
        self.kh / self.r
    }
    /// Inner GEMM dimension: kw * r * I.
    pub(super) fn kdim(&self) -> usize {
        self.kw * self.r * self.ci
    }
    /// Tasks per image (bands of output rows).
    pub(super) fn nbands(&self) -> usize {
        self.ho.div_ceil(self.band)
    }
    /// Values of one input image.
    pub(super) fn in_len(&self) -> usize {
        self.ci * self.h * self.w
    }
    /// Values of one output image.
    pub(super) fn out_len(&self) -> usize {
        self.co * self.ho * self.wo
    }
}
