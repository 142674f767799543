//! The argument checks of the convolution: ranks, channels, bias length, kernel against
//! the padded input, stride.

use candle_core::Tensor;

use super::{Conv2dConfig, Geom};
use crate::check;
use crate::error::{Error, Result};

const OP: &str = "conv2d";

/// Fails with [`Error::InvalidArgument`] for stride 0.
pub(super) fn check_stride(cfg: Conv2dConfig) -> Result<()> {
    if cfg.stride == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            arg: "stride",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Checks ranks, channels and sizes; returns the stride-1 geometry (used only on the fast
/// path).
pub(super) fn check_shapes(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Geom> {
    check_stride(cfg)?;
    let (_, ci, h, wd) = check::rank4(OP, "x", x, "(B, I, H, W)")?;
    let (co, kh, kw) = match w.dims() {
        &[o, i, kh, kw] if i == ci && kh > 0 && kw > 0 => (o, kh, kw),
        _ => {
            return Err(Error::Shape {
                op: OP,
                arg: "w",
                expected: format!("(O, {ci}, kh, kw) with kh, kw >= 1 (x is {:?})", x.dims()),
                got: w.dims().to_vec(),
            })
        }
    };
    if let Some(b) = b {
        if b.dims() != [co] {
            return Err(Error::Shape {
                op: OP,
                arg: "b",
                expected: format!("({co})"),
                got: b.dims().to_vec(),
            });
        }
    }
    let p = cfg.padding;
    if h + 2 * p < kh || wd + 2 * p < kw {
        return Err(Error::Shape {
            op: OP,
            arg: "x",
            expected: format!("H + 2 * {p} >= {kh} and W + 2 * {p} >= {kw} (kernel {kh}x{kw})"),
            got: x.dims().to_vec(),
        });
    }
    Ok(Geom::of_layer((ci, h, wd), (co, kh, kw), p))
}
