//! Tests of the soft-argmax maps' overlap against an independent f64 computation and
//! finite differences.

use approx::assert_relative_eq;
use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_losses::{map_overlap, map_overlap_mean, Error};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn maps(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Each map's softmax, on the host.
fn softmax(values: &[f64], hw: usize, beta: f64) -> Vec<Vec<f64>> {
    values
        .chunks(hw)
        .map(|m| {
            let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = m.iter().map(|v| (beta * (v - max)).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|v| v / z).collect()
        })
        .collect()
}

/// The Bhattacharyya coefficient of every two maps of each image, on the host: (B, K, K).
fn host(values: &[f64], b: usize, k: usize, hw: usize, beta: f64) -> Vec<Vec<Vec<f64>>> {
    let p = softmax(values, hw, beta);
    (0..b)
        .map(|img| {
            (0..k)
                .map(|i| {
                    (0..k)
                        .map(|j| {
                            let (a, c) = (&p[img * k + i], &p[img * k + j]);
                            a.iter().zip(c).map(|(x, y)| (x * y).sqrt()).sum()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn host_mean(values: &[f64], b: usize, k: usize, hw: usize, beta: f64) -> f64 {
    let o = host(values, b, k, hw, beta);
    let mut total = 0.0;
    for m in &o {
        let sum: f64 = m
            .iter()
            .enumerate()
            .map(|(i, row)| row[i + 1..].iter().sum::<f64>())
            .sum();
        total += sum / (k * (k - 1) / 2) as f64;
    }
    total / b as f64
}

#[test]
fn overlap_matches_the_host() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (b, k, h, w) = (2, 3, 4, 5);
    let v = maps(&mut rng, b * k * h * w, 3.0);
    let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
    let want = host(&v, b, k, h * w, 0.8);
    let got = map_overlap(&t, 0.8).unwrap();
    assert_eq!(got.dims(), &[b, k, k]);
    let got = got.to_vec3::<f64>().unwrap();
    for (g, w) in got
        .iter()
        .flatten()
        .flatten()
        .zip(want.iter().flatten().flatten())
    {
        assert_relative_eq!(*g, *w, max_relative = 1e-10);
    }
    let mean = map_overlap_mean(&t, 0.8)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(mean, host_mean(&v, b, k, h * w, 0.8), max_relative = 1e-10);
}

#[test]
fn equal_maps_overlap_fully_and_disjoint_ones_not_at_all() {
    let dev = Device::Cpu;
    let (h, w) = (5, 6);
    // Two equal maps: 1 (the diagonal is 1 too).
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let one = maps(&mut rng, h * w, 2.0);
    let v: Vec<f64> = one.iter().chain(&one).copied().collect();
    let t = Tensor::from_vec(v, (1, 2, h, w), &dev).unwrap();
    let o = map_overlap_mean(&t, 1.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(o, 1.0, max_relative = 1e-12);
    // Peaks on different pixels: 0 (to underflow), whatever the distance between them.
    let mut v = vec![0f32; 2 * h * w];
    v[3] = 200.0;
    v[h * w + 4] = 200.0;
    let t = Tensor::from_vec(v, (1, 2, h, w), &dev).unwrap();
    let o = map_overlap_mean(&t, 1.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(o < 1e-20, "{o}");
    // One map, or no image: no pair.
    for shape in [(2, 1, h, w), (0, 3, h, w)] {
        let t = Tensor::zeros(shape, DType::F32, &dev).unwrap();
        let o = map_overlap_mean(&t, 1.0).unwrap();
        assert_eq!(o.dims(), &[] as &[usize]);
        assert_eq!(o.to_scalar::<f32>().unwrap(), 0.0);
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, k, h, w, beta) = (2, 3, 3, 4, 1.3);
    let v = maps(&mut rng, b * k * h * w, 2.0);
    let var = Var::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
    let g = map_overlap_mean(var.as_tensor(), beta)
        .unwrap()
        .backward()
        .unwrap();
    let g = g.get(var.as_tensor()).expect("the maps get a gradient");
    let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let step = 1e-6;
    for i in 0..v.len() {
        let at = |d: f64| {
            let mut x = v.clone();
            x[i] += d;
            host_mean(&x, b, k, h * w, beta)
        };
        let num = (at(step) - at(-step)) / (2.0 * step);
        assert_relative_eq!(g[i], num, epsilon = 1e-8, max_relative = 1e-5);
    }
}

#[test]
fn bad_inputs_are_named() {
    let dev = Device::Cpu;
    let rank3 = Tensor::zeros((1, 2, 3), DType::F32, &dev).unwrap();
    match map_overlap(&rank3, 1.0) {
        Err(Error::Shape { func, got, .. }) => {
            assert_eq!(func, "map_overlap");
            assert_eq!(got, vec![1, 2, 3]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let ints = Tensor::zeros((1, 2, 2, 2), DType::U32, &dev).unwrap();
    assert!(matches!(map_overlap(&ints, 1.0), Err(Error::DType { .. })));
    let maps = Tensor::zeros((1, 2, 2, 2), DType::F32, &dev).unwrap();
    for beta in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            map_overlap_mean(&maps, beta),
            Err(Error::InvalidArgument { field: "beta", .. })
        ));
    }
}
