//! Per-image contrast normalisation, shared by the data pipeline (training crops) and the
//! model zoo's inference (crops of new images), so both see the same inputs.

/// Normalises one image plane in place: `(x - mean) / std` over all its values (any layout,
/// e.g. a row-major H x W grey crop, or one channel of a colour crop), computed in f64. When the standard deviation is below
/// 1e-6 (a flat image) the values are only centred, never divided by ~0.
///
/// Returns `(mean, scale)`: a value `v` of the input became `(v - mean) * scale`, so a
/// caller can map other values (e.g. the black of pixels outside the image) the same way.
///
/// ```
/// let mut px = [0.0f32, 2.0, 4.0, 6.0];
/// landmark_ssl_ops::normalize_image(&mut px);
/// let mean: f32 = px.iter().sum::<f32>() / 4.0;
/// let var: f32 = px.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
/// assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
/// let mut flat = [3.0f32; 5];
/// landmark_ssl_ops::normalize_image(&mut flat);
/// assert_eq!(flat, [0.0; 5]);
/// ```
pub fn normalize_image(pixels: &mut [f32]) -> (f64, f64) {
    if pixels.is_empty() {
        return (0.0, 1.0);
    }
    let n = pixels.len() as f64;
    let mean = pixels.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = pixels
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    let inv = if std > 1e-6 { 1.0 / std } else { 1.0 };
    for v in pixels {
        *v = ((*v as f64 - mean) * inv) as f32;
    }
    (mean, inv)
}

/// Normalises each channel of each image of a (B, C, H, W) float tensor over its H x W
/// values, as [`normalize_image`] does one plane: `(x - mean) / std` per image and channel,
/// only centred when the standard deviation is below 1e-6. For grey images (C = 1) this is
/// per-image normalisation. Statistics in f64; the result has the input's dtype and device.
/// Not differentiable through the statistics (call it on data).
///
/// Errors: `images` not of rank 4 or not a float tensor.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[0f32, 2.0], [4.0, 6.0]]], [[[3.0, 3.0], [3.0, 3.0]]]], &Device::Cpu)?;
/// let y = landmark_ssl_ops::normalize_images(&x)?;
/// let mut first = [0f32, 2.0, 4.0, 6.0];
/// landmark_ssl_ops::normalize_image(&mut first);
/// assert_eq!(y.get(0)?.flatten_all()?.to_vec1::<f32>()?, first);
/// assert_eq!(y.get(1)?.flatten_all()?.to_vec1::<f32>()?, [0.0; 4]);
/// // Two channels: each has its own mean and standard deviation.
/// let rgb = Tensor::new(&[[[[0f32, 2.0]], [[10.0, 30.0]]]], &Device::Cpu)?;
/// let y = landmark_ssl_ops::normalize_images(&rgb)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [-1.0, 1.0, -1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn normalize_images(images: &candle_core::Tensor) -> crate::Result<candle_core::Tensor> {
    use candle_core::DType;
    let dims = images.dims();
    if dims.len() != 4 || !images.dtype().is_float() {
        return Err(crate::Error::Shape {
            op: "normalize_images",
            arg: "images",
            expected: "(B, C, H, W) float images".to_string(),
            got: dims.to_vec(),
        });
    }
    let planes = dims[0] * dims[1];
    let x = images.to_dtype(DType::F64)?.reshape((planes, ()))?;
    let mean = x.mean_keepdim(1)?;
    let centred = x.broadcast_sub(&mean)?;
    let std = centred.sqr()?.mean_keepdim(1)?.sqrt()?;
    let flat = std.lt(1e-6)?;
    let std = flat.where_cond(&std.ones_like()?, &std)?;
    Ok(centred
        .broadcast_div(&std)?
        .reshape(dims)?
        .to_dtype(images.dtype())?)
}
