//! Argument checks shared by the ops (private). Each names the op and the argument at
//! fault, and a shape error carries the shape it got.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// Checks that `t` is (B, K, 2) points and returns (B, K).
pub(crate) fn points(op: &'static str, arg: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[b, k, 2] => Ok((b, k)),
        d => Err(Error::Shape {
            op,
            arg,
            expected: "(B, K, 2)".into(),
            got: d.to_vec(),
        }),
    }
}

/// Checks that `t` has rank 4 and returns its dimensions; `what` names them, e.g.
/// "(B, C, H, W)".
pub(crate) fn rank4(
    op: &'static str,
    arg: &'static str,
    t: &Tensor,
    what: &str,
) -> Result<(usize, usize, usize, usize)> {
    match t.dims() {
        &[b, c, h, w] => Ok((b, c, h, w)),
        d => Err(Error::Shape {
            op,
            arg,
            expected: format!("rank 4 {what}"),
            got: d.to_vec(),
        }),
    }
}

/// Checks that `mats` batches B = `mb` transforms for the `b` items of `of` (B equal or 1).
pub(crate) fn batch_of(
    op: &'static str,
    mats: &Tensor,
    mb: usize,
    b: usize,
    of: &str,
) -> Result<()> {
    if mb != b && mb != 1 {
        return Err(Error::Shape {
            op,
            arg: "mats",
            expected: format!("(B, 2, 3) with B = {b} (the batch of `{of}`) or 1"),
            got: mats.dims().to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`Error::DType`] unless `t` is f32 or f64.
pub(crate) fn f32_or_f64(op: &'static str, arg: &'static str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F32 | DType::F64 => Ok(()),
        got => Err(Error::DType {
            op,
            arg,
            expected: "f32 or f64",
            got,
        }),
    }
}

/// Fails with [`Error::DType`] unless `t` has a floating-point type (f32, f64, f16, bf16).
pub(crate) fn float(op: &'static str, arg: &'static str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Ok(()),
        got => Err(Error::DType {
            op,
            arg,
            expected: "a float type",
            got,
        }),
    }
}

/// Fails with [`Error::InvalidArgument`] when a size is 0.
pub(crate) fn nonzero(op: &'static str, arg: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::InvalidArgument {
            op,
            arg,
            value: "0".into(),
            reason: "must be > 0",
        });
    }
    Ok(())
}

/// Fails with [`Error::InvalidArgument`] unless `v` is finite and > 0; `reason` says so
/// (with the unit where there is one).
pub(crate) fn finite_positive(
    op: &'static str,
    arg: &'static str,
    v: f64,
    reason: &'static str,
) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(Error::InvalidArgument {
            op,
            arg,
            value: format!("{v}"),
            reason,
        });
    }
    Ok(())
}

/// Checks `maps` (B, K, H, W) f32/f64 with K, H, W > 0 and, when given, `beta` finite and
/// > 0; returns (B, K, H, W).
pub(crate) fn maps(
    op: &'static str,
    maps: &Tensor,
    beta: Option<f64>,
) -> Result<(usize, usize, usize, usize)> {
    let (b, k, h, w) = rank4(op, "maps", maps, "(B, K, H, W)")?;
    if k == 0 || h == 0 || w == 0 {
        return Err(Error::Shape {
            op,
            arg: "maps",
            expected: "(B, K, H, W) with K, H and W > 0".into(),
            got: maps.dims().to_vec(),
        });
    }
    f32_or_f64(op, "maps", maps)?;
    if let Some(beta) = beta {
        finite_positive(op, "beta", beta, "must be finite and > 0")?;
    }
    Ok((b, k, h, w))
}
