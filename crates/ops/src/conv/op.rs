//! The candle custom-op glue: [`ConvOp`] runs the CPU kernels as a `CustomOp2` (x, w) or
//! `CustomOp3` (x, w, b), forward and backward, on contiguous CPU storage.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType};

use super::{direct, gemm, Geom, Kernels};
use crate::error::Error;

/// How a convolution reads the layer's weight w (O, I, kh, kw).
#[derive(Debug, Clone, Copy)]
enum Taps {
    /// As stored: the layer's forward.
    Forward,
    /// Flipped along both axes with the channels swapped: the input gradient, computed as a
    /// forward convolution of the output gradient (geometry [`Geom::input_grad_geom`]).
    FlippedTransposed,
}

/// The weight of tap (o, i, dy, dx) of a convolution of geometry `g` reading `w` as `taps`
/// says.
fn tap_reader<'w, U: Copy>(
    w: &'w [U],
    g: &Geom,
    taps: Taps,
) -> impl Fn(usize, usize, usize, usize) -> U + 'w {
    let (ci, co, kh, kw) = (g.ci, g.co, g.kh, g.kw);
    move |o, i, dy, dx| match taps {
        Taps::Forward => w[((o * ci + i) * kh + dy) * kw + dx],
        // o: an input channel of the layer, i: one of its output channels.
        Taps::FlippedTransposed => w[((i * co + o) * kh + (kh - 1 - dy)) * kw + (kw - 1 - dx)],
    }
}

/// The forward convolution of a batch with either kernel family: x (B, I, H, W) contiguous,
/// the weight `w` read as `taps`, bias (O) and ReLU -> (B, O, H_out, W_out). `x_mask` (the
/// layout of x, direct kernels only: the GEMM path is handed inputs already masked) zeroes
/// the inputs where it is not positive.
#[allow(clippy::too_many_arguments)]
fn convolve<T: WithDType>(
    kernels: Kernels,
    g: &Geom,
    batch: usize,
    x: &[T],
    x_mask: Option<&[f32]>,
    w: &[T],
    taps: Taps,
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    match kernels {
        Kernels::Direct => from_f32(direct::forward(
            g,
            batch,
            as_f32(x),
            x_mask,
            tap_reader(as_f32(w), g, taps),
            bias.map(as_f32),
            relu,
        )),
        Kernels::Gemm => {
            debug_assert!(x_mask.is_none(), "the GEMM path takes masked inputs");
            let wpack = gemm::pack_weight(g, tap_reader(w, g, taps));
            gemm::forward(g, batch, x, &wpack, bias, relu)
        }
    }
}

/// Weight and bias gradients with either kernel family: x (B, I, H, W), gy (B, O, H_out,
/// W_out) -> (dw (O, I, kh, kw), db (O)); `gy_mask` as `x_mask` in [`convolve`].
fn weight_grads<T: WithDType>(
    kernels: Kernels,
    g: &Geom,
    batch: usize,
    x: &[T],
    gy: &[T],
    gy_mask: Option<&[f32]>,
) -> (Vec<T>, Vec<T>) {
    match kernels {
        Kernels::Direct => {
            let (dw, db) = direct::backward_weight(g, batch, as_f32(x), as_f32(gy), gy_mask);
            (from_f32(dw), from_f32(db))
        }
        Kernels::Gemm => {
            debug_assert!(gy_mask.is_none(), "the GEMM path takes masked inputs");
            gemm::backward_weight(g, batch, x, gy)
        }
    }
}

/// Views a slice as f32 when `T` is f32 (empty otherwise, never reached: the direct
/// kernels are chosen for f32 only, see [`Kernels::for_dtype`]).
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

/// The error for a dtype the CPU kernels do not take.
fn dtype_error(dt: DType) -> candle_core::Error {
    Error::DType {
        op: "conv2d",
        arg: "x",
        expected: "f32 or f64",
        got: dt,
    }
    .into()
}

/// The custom op: x, w (and b) -> conv (+ b) (then ReLU), stride 1, padding `pad`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConvOp {
    pub(super) pad: usize,
    pub(super) relu: bool,
}

/// Gradients of (x, w, b), each only where it is needed.
type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl ConvOp {
    fn geom(&self, lx: &Layout, lw: &Layout) -> candle_core::Result<(usize, Geom)> {
        let (bsz, ci, h, w) = lx.shape().dims4()?;
        let (co, _, kh, kw) = lw.shape().dims4()?;
        Ok((bsz, Geom::of_layer((ci, h, w), (co, kh, kw), self.pad)))
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
            DType::F32 => self.fwd_t::<f32>(sx, lx, sw, lw, sb),
            DType::F64 => self.fwd_t::<f64>(sx, lx, sw, lw, sb),
            dt => Err(dtype_error(dt)),
        }
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
        let kernels = Kernels::for_dtype(T::DTYPE);
        let y = convolve(kernels, &g, bsz, x, None, w, Taps::Forward, b, self.relu);
        Ok((
            T::to_cpu_storage_owned(y),
            Shape::from((bsz, g.co, g.ho, g.wo)),
        ))
    }

    fn bwd_t<T: WithDType>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Grads> {
        let (bsz, g) = self.geom(x.layout(), w.layout())?;
        let kernels = Kernels::for_dtype(T::DTYPE);
        // The gradient through the fused ReLU is zero where the output was clipped. The
        // direct kernels apply that mask while copying their operands; the GEMM path gets
        // the gradient masked once here.
        let direct = kernels == Kernels::Direct;
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
            let body = |mask: Option<&[f32]>| -> candle_core::Result<Grads> {
                let (mut dw, mut db) = (None, None);
                if need_w || need_b {
                    let (dwv, dbv) = with_data(x, |xs: &[T]| {
                        Ok(weight_grads(kernels, &g, bsz, xs, gy, mask))
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
                    let gb = g.input_grad_geom();
                    let taps = Taps::FlippedTransposed;
                    let dxv = convolve(kernels, &gb, bsz, gy, mask, &ws, taps, None, false);
                    Some(Tensor::from_vec(dxv, x.shape(), dev)?)
                } else {
                    None
                };
                Ok((dx, dw, db))
            };
            if self.relu && direct {
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
    ) -> candle_core::Result<Grads> {
        if !x.device().is_cpu() {
            candle_core::bail!("conv2d: the fast convolution's backward runs on the CPU only");
        }
        match x.dtype() {
            DType::F32 => self.bwd_t::<f32>(x, w, b, res, grad),
            DType::F64 => self.bwd_t::<f64>(x, w, b, res, grad),
            dt => Err(dtype_error(dt)),
        }
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
    ) -> candle_core::Result<Grads> {
        self.bwd_any(x, w, Some(b), res, grad)
    }
}
