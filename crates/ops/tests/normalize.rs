//! Contrast normalisation: one plane in place, and batches (B, C, H, W) per image and
//! channel, against statistics computed here.

use approx::assert_abs_diff_eq;
use candle_core::{DType, Device, Tensor};
use landmark_ssl_ops::{normalize_image, normalize_images};
use rand::{Rng, SeedableRng};

/// Mean and (population) standard deviation in f64.
fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// (B, C, H, W) values with a different offset and spread per channel.
fn images(b: usize, c: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..b * c * h * w)
        .map(|i| {
            let ch = (i / (h * w)) % c;
            ch as f32 * 3.0 + (ch as f32 + 0.5) * rng.random::<f32>()
        })
        .collect()
}

#[test]
fn colour_images_are_normalised_per_channel() {
    let (b, c, h, w) = (3, 3, 7, 5);
    let v = images(b, c, h, w, 1);
    let x = Tensor::from_vec(v.clone(), (b, c, h, w), &Device::Cpu).unwrap();
    let y = normalize_images(&x).unwrap();
    assert_eq!(y.dims(), &[b, c, h, w]);
    let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let n = h * w;
    assert_eq!(v.chunks(n).count(), b * c);
    for (src, out) in v.chunks(n).zip(y.chunks(n)) {
        let (mean, std) = mean_std(src);
        for (s, o) in src.iter().zip(out) {
            assert_abs_diff_eq!(*o as f64, (*s as f64 - mean) / std, epsilon = 1e-5);
        }
        let (m2, s2) = mean_std(out);
        assert_abs_diff_eq!(m2, 0.0, epsilon = 1e-6);
        assert_abs_diff_eq!(s2, 1.0, epsilon = 1e-5);
        // The single-plane function gives the same plane.
        let mut one = src.to_vec();
        normalize_image(&mut one);
        for (a, b) in one.iter().zip(out) {
            assert_abs_diff_eq!(*a, *b, epsilon = 1e-6);
        }
    }
}

#[test]
fn a_flat_channel_is_only_centred() {
    // Channel 1 is flat: centred to 0, never divided by ~0; the others are normalised.
    let (h, w) = (4, 4);
    let mut v = images(1, 3, h, w, 2);
    v[h * w..2 * h * w].fill(0.25);
    let x = Tensor::from_vec(v, (1, 3, h, w), &Device::Cpu).unwrap();
    let y = normalize_images(&x).unwrap().flatten_all().unwrap();
    let y = y.to_vec1::<f32>().unwrap();
    assert!(y[h * w..2 * h * w].iter().all(|&v| v == 0.0));
    for ch in [0, 2] {
        let (m, s) = mean_std(&y[ch * h * w..(ch + 1) * h * w]);
        assert_abs_diff_eq!(m, 0.0, epsilon = 1e-6);
        assert_abs_diff_eq!(s, 1.0, epsilon = 1e-5);
    }
}

#[test]
fn grey_images_are_normalised_per_image_in_f64() {
    // C = 1: per image over H x W, as before; f64 inputs keep their dtype.
    let (b, h, w) = (2, 6, 9);
    let v = images(b, 1, h, w, 3);
    let x = Tensor::from_vec(v.clone(), (b, 1, h, w), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let y = normalize_images(&x).unwrap();
    assert_eq!(y.dtype(), DType::F64);
    let y = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (src, out) in v.chunks(h * w).zip(y.chunks(h * w)) {
        let (mean, std) = mean_std(src);
        for (s, o) in src.iter().zip(out) {
            assert_abs_diff_eq!(*o, (*s as f64 - mean) / std, epsilon = 1e-9);
        }
    }
    // Not (B, C, H, W): an error naming the function.
    let flat = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let e = normalize_images(&flat).unwrap_err().to_string();
    assert!(e.contains("normalize_images"), "{e}");
}
