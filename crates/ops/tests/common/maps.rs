//! Helpers shared by the soft-argmax and geometry tests: random maps, an independent f64
//! soft-argmax, and tensor-to-f64 comparisons.

#![allow(dead_code)]

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

pub fn random_maps(seed: u64, b: usize, k: usize, h: usize, w: usize, scale: f64) -> Vec<f64> {
    let mut r = rng(seed);
    (0..b * k * h * w)
        .map(|_| r.random_range(-1.0..1.0) * scale)
        .collect()
}

/// Independent f64 soft-argmax (log-sum-exp with the max subtracted).
pub fn reference(maps: &[f64], b: usize, k: usize, h: usize, w: usize, beta: f64) -> Vec<f64> {
    let n = h * w;
    let mut out = Vec::new();
    for m in maps.chunks(n).take(b * k) {
        let mx = m.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = m.iter().map(|v| (beta * (v - mx)).exp()).collect();
        let s: f64 = e.iter().sum();
        let (mut x, mut y) = (0.0, 0.0);
        for (i, ei) in e.iter().enumerate() {
            x += ei / s * (i % w) as f64;
            y += ei / s * (i / w) as f64;
        }
        out.push(x);
        out.push(y);
    }
    out
}

pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
