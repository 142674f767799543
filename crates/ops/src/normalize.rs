//! Per-image contrast normalisation, shared by the data pipeline (training crops) and the
//! model zoo's inference (crops of new images), so both see the same inputs.

/// Normalises one image in place: `(x - mean) / std` over all its values (any layout, e.g.
/// a row-major H x W grey crop), computed in f64. When the standard deviation is below
/// 1e-6 (a flat image) the values are only centred, never divided by ~0.
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
pub fn normalize_image(pixels: &mut [f32]) {
    if pixels.is_empty() {
        return;
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
}
