//! Argument checks shared by the loss functions (private).

use candle_core::{DType, Tensor};

use crate::{Error, Result};

/// Fails with [`Error::Shape`] unless `t` has exactly the dimensions `dims`.
pub(crate) fn dims(
    func: &'static str,
    arg: &str,
    t: &Tensor,
    dims: &[usize],
    what: &str,
) -> Result<()> {
    if t.dims() != dims {
        return Err(Error::Shape {
            func,
            arg: arg.to_string(),
            expected: format!("{what} = {dims:?}"),
            got: t.dims().to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`Error::Shape`] unless `t` has rank `rank`; returns its dimensions.
pub(crate) fn rank<'a>(
    func: &'static str,
    arg: &str,
    t: &'a Tensor,
    rank: usize,
    what: &str,
) -> Result<&'a [usize]> {
    if t.rank() != rank {
        return Err(Error::Shape {
            func,
            arg: arg.to_string(),
            expected: what.to_string(),
            got: t.dims().to_vec(),
        });
    }
    Ok(t.dims())
}

/// Checks that `t` is (B, K, 2) and returns (B, K).
pub(crate) fn points(func: &'static str, arg: &str, t: &Tensor) -> Result<(usize, usize)> {
    match t.dims() {
        &[b, k, 2] => Ok((b, k)),
        d => Err(Error::Shape {
            func,
            arg: arg.to_string(),
            expected: "(B, K, 2) points (x, y)".to_string(),
            got: d.to_vec(),
        }),
    }
}

/// Fails with [`Error::DType`] unless `t` has a floating-point element type.
pub(crate) fn float(func: &'static str, arg: &str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_float() {
        return Err(Error::DType {
            func,
            arg: arg.to_string(),
            expected: "a floating-point type (f32, f64, f16, bf16)",
            got: t.dtype(),
        });
    }
    Ok(())
}

/// Fails with [`Error::DType`] unless `t` holds integer class labels (u32, u8 or i64).
pub(crate) fn labels(func: &'static str, arg: &str, t: &Tensor) -> Result<()> {
    if !matches!(t.dtype(), DType::U32 | DType::U8 | DType::I64) {
        return Err(Error::DType {
            func,
            arg: arg.to_string(),
            expected: "integer class labels (u32, u8 or i64)",
            got: t.dtype(),
        });
    }
    Ok(())
}

/// A mask tensor as a boolean (u8) tensor: an entry counts as present when it is >= 0.5.
/// Works for float and integer masks.
pub(crate) fn binarise(mask: &Tensor) -> Result<Tensor> {
    Ok(mask.to_dtype(DType::F32)?.ge(0.5)?)
}

/// A numerically stable log-softmax over the last dimension, built from candle ops that all
/// have a backward pass. The row maximum is detached (its gradient cancels exactly).
pub(crate) fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(candle_core::D::Minus1)?.detach();
    let diff = x.broadcast_sub(&max)?;
    let lse = diff.exp()?.sum_keepdim(candle_core::D::Minus1)?.log()?;
    Ok(diff.broadcast_sub(&lse)?)
}

/// Labels of an integer tensor (B,) on the host, as i64 (so negative i64 labels survive to
/// be reported as out of range).
pub(crate) fn labels_to_host(t: &Tensor) -> Result<Vec<i64>> {
    Ok(match t.dtype() {
        DType::U32 => t.to_vec1::<u32>()?.into_iter().map(i64::from).collect(),
        DType::U8 => t.to_vec1::<u8>()?.into_iter().map(i64::from).collect(),
        _ => t.to_dtype(DType::I64)?.to_vec1::<i64>()?,
    })
}

/// A mask (B,) or (B, K) on the host as booleans (>= 0.5 is present).
pub(crate) fn mask_to_host(t: &Tensor) -> Result<Vec<bool>> {
    Ok(t.to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|v| v >= 0.5)
        .collect())
}

/// Fails with [`Error::InvalidArgument`] unless `beta` is finite and > 0.
pub(crate) fn beta(func: &'static str, beta: f64) -> Result<()> {
    positive(func, "beta", beta)
}

/// Fails with [`Error::InvalidArgument`] unless `v` is finite and > 0.
pub(crate) fn positive(func: &'static str, field: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::InvalidArgument {
            context: func,
            field,
            value: v.to_string(),
            reason: "must be finite and > 0",
        });
    }
    Ok(())
}

/// Fails with [`Error::InvalidArgument`] unless `v` is finite and >= 0.
pub(crate) fn non_negative(func: &'static str, field: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::InvalidArgument {
            context: func,
            field,
            value: v.to_string(),
            reason: "must be finite and >= 0",
        });
    }
    Ok(())
}
