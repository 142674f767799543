//! Tests of the soft-argmax maps' spread against an independent f64 computation and finite
//! differences.

use approx::assert_relative_eq;
use candle_core::{Device, Tensor, Var};
use landmark_ssl_losses::{map_spread, map_spread_mean, Error};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn maps(rng: &mut ChaCha8Rng, shape: (usize, usize, usize, usize), scale: f64) -> Vec<f64> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// The variance of each map's softmax over its (x, y) pixel coordinates, on the host.
fn host(values: &[f64], h: usize, w: usize, beta: f64) -> Vec<f64> {
    values
        .chunks(h * w)
        .map(|m| {
            let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = m.iter().map(|v| (beta * (v - max)).exp()).collect();
            let z: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / z).collect();
            let at = |i: usize| ((i % w) as f64, (i / w) as f64);
            let (mut mx, mut my) = (0.0, 0.0);
            for (i, q) in p.iter().enumerate() {
                mx += q * at(i).0;
                my += q * at(i).1;
            }
            p.iter()
                .enumerate()
                .map(|(i, q)| q * ((at(i).0 - mx).powi(2) + (at(i).1 - my).powi(2)))
                .sum()
        })
        .collect()
}

#[test]
fn spread_matches_the_host() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let shape = (3, 2, 5, 7);
    let v = maps(&mut rng, shape, 3.0);
    let t = Tensor::from_vec(v.clone(), shape, &Device::Cpu).unwrap();
    let want = host(&v, 5, 7, 0.7);
    let got = map_spread(&t, 0.7).unwrap();
    assert_eq!(got.dims(), &[3, 2]);
    let got = got.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_relative_eq!(*g, *w, max_relative = 1e-10);
    }
    let mean = map_spread_mean(&t, 0.7)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(mean, want.iter().sum::<f64>() / 6.0, max_relative = 1e-10);
}

#[test]
fn a_flat_map_and_a_peak_have_the_closed_form_spreads() {
    let (h, w) = (6, 9);
    let flat = Tensor::zeros((1, 1, h, w), candle_core::DType::F32, &Device::Cpu).unwrap();
    let s = map_spread_mean(&flat, 1.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let want = ((w * w - 1) + (h * h - 1)) as f32 / 12.0;
    assert_relative_eq!(s, want, max_relative = 1e-5);
    // One pixel far above the rest: the mass is on it and the spread vanishes.
    let mut v = vec![0f32; h * w];
    v[2 * w + 5] = 60.0;
    let peak = Tensor::from_vec(v, (1, 1, h, w), &Device::Cpu).unwrap();
    let s = map_spread_mean(&peak, 1.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(s < 1e-6, "{s}");
}

#[test]
fn the_spread_ignores_a_shift_of_the_map() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let v = maps(&mut rng, (1, 2, 6, 6), 5.0);
    let t = Tensor::from_vec(v, (1, 2, 6, 6), &Device::Cpu).unwrap();
    let shifted = (&t + 1000.0).unwrap();
    let a = map_spread_mean(&t, 2.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let b = map_spread_mean(&shifted, 2.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(a, b, max_relative = 1e-9);
}

#[test]
fn gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let shape = (2, 2, 3, 4);
    let v = maps(&mut rng, shape, 2.0);
    let beta = 1.5;
    let var = Var::from_vec(v.clone(), shape, &Device::Cpu).unwrap();
    let g = map_spread_mean(var.as_tensor(), beta)
        .unwrap()
        .backward()
        .unwrap();
    let g = g.get(var.as_tensor()).expect("the maps get a gradient");
    let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let cost = |x: &[f64]| host(x, 3, 4, beta).iter().sum::<f64>() / 4.0;
    let h = 1e-6;
    for i in 0..v.len() {
        let at = |d: f64| {
            let mut x = v.clone();
            x[i] += d;
            cost(&x)
        };
        let num = (at(h) - at(-h)) / (2.0 * h);
        assert_relative_eq!(g[i], num, epsilon = 1e-6, max_relative = 1e-5);
    }
}

#[test]
fn bad_inputs_are_named() {
    let dev = Device::Cpu;
    let rank3 = Tensor::zeros((1, 2, 3), candle_core::DType::F32, &dev).unwrap();
    match map_spread(&rank3, 1.0) {
        Err(Error::Shape { func, got, .. }) => {
            assert_eq!(func, "map_spread");
            assert_eq!(got, vec![1, 2, 3]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let ints = Tensor::zeros((1, 1, 2, 2), candle_core::DType::U32, &dev).unwrap();
    assert!(matches!(map_spread(&ints, 1.0), Err(Error::DType { .. })));
    let maps = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &dev).unwrap();
    for beta in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            map_spread(&maps, beta),
            Err(Error::InvalidArgument { field: "beta", .. })
        ));
    }
}
