//! Tests of the bound on the soft-argmax maps' scale against an independent f64
//! computation and finite differences.

use approx::assert_relative_eq;
use candle_core::{Device, Tensor, Var};
use landmark_ssl_losses::{map_logit_range, map_range_excess, Error};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn maps(rng: &mut ChaCha8Rng, shape: (usize, usize, usize, usize), scale: f64) -> Vec<f64> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// `beta * (max - mean)` of each map, and the penalty, computed on the host.
fn host(values: &[f64], maps: usize, beta: f64, bound: f64) -> (Vec<f64>, f64) {
    let per = values.len() / maps;
    let ranges: Vec<f64> = values
        .chunks(per)
        .map(|m| {
            let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = m.iter().sum::<f64>() / per as f64;
            beta * (max - mean)
        })
        .collect();
    let penalty = ranges
        .iter()
        .map(|r| (r - bound).max(0.0).powi(2))
        .sum::<f64>()
        / maps as f64;
    (ranges, penalty)
}

#[test]
fn range_and_penalty_match_the_host() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let shape = (3, 2, 5, 7);
    let v = maps(&mut rng, shape, 20.0);
    let t = Tensor::from_vec(v.clone(), shape, &Device::Cpu).unwrap();
    let (want_ranges, _) = host(&v, 6, 0.5, 0.0);
    let got = map_logit_range(&t, 0.5).unwrap();
    assert_eq!(got.dims(), &[3, 2]);
    let got = got.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (g, w) in got.iter().zip(&want_ranges) {
        assert_relative_eq!(*g, *w, max_relative = 1e-12);
    }
    // A bound between the smallest and the largest range: some maps pay, some do not.
    let bound = want_ranges.iter().sum::<f64>() / 6.0;
    let (_, want) = host(&v, 6, 0.5, bound);
    assert!(want > 0.0);
    let got = map_range_excess(&t, 0.5, bound).unwrap();
    assert_relative_eq!(got.to_scalar::<f64>().unwrap(), want, max_relative = 1e-12);
}

#[test]
fn within_the_bound_the_penalty_and_its_gradient_are_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let v = maps(&mut rng, (2, 3, 4, 4), 1.0);
    let var = Var::from_vec(v, (2, 3, 4, 4), &Device::Cpu).unwrap();
    let p = map_range_excess(var.as_tensor(), 1.0, 2.0).unwrap();
    assert_eq!(p.to_scalar::<f64>().unwrap(), 0.0);
    let g = p.backward().unwrap();
    let g = g.get(var.as_tensor()).unwrap();
    let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!(g.iter().all(|&x| x == 0.0));
}

#[test]
fn the_range_ignores_a_shift_like_the_softmax() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let v = maps(&mut rng, (1, 2, 6, 6), 5.0);
    let t = Tensor::from_vec(v, (1, 2, 6, 6), &Device::Cpu).unwrap();
    let shifted = (&t + 1000.0).unwrap();
    let a = map_range_excess(&t, 2.0, 1.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let b = map_range_excess(&shifted, 2.0, 1.0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(a, b, max_relative = 1e-9);
}

#[test]
fn gradient_matches_finite_differences_and_lowers_the_peak() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let shape = (2, 2, 3, 4);
    let v = maps(&mut rng, shape, 10.0);
    let (beta, bound) = (1.5, 5.0);
    let f = |x: &Tensor| map_range_excess(x, beta, bound).unwrap();
    let var = Var::from_vec(v.clone(), shape, &Device::Cpu).unwrap();
    let g = f(var.as_tensor()).backward().unwrap();
    let g = g.get(var.as_tensor()).unwrap();
    let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-6;
    for i in 0..v.len() {
        let at = |d: f64| {
            let mut x = v.clone();
            x[i] += d;
            host(&x, 4, beta, bound).1
        };
        let num = (at(h) - at(-h)) / (2.0 * h);
        assert_relative_eq!(g[i], num, epsilon = 1e-5, max_relative = 1e-5);
    }
    // The gradient of each map over the bound is positive at its peak (a step against it
    // lowers the peak) and sums to zero over the map (the mean's share).
    let (ranges, _) = host(&v, 4, beta, bound);
    for (m, chunk) in g.chunks(12).enumerate() {
        let sum: f64 = chunk.iter().sum();
        if ranges[m] > bound {
            let peak = v[m * 12..(m + 1) * 12]
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, &x)| if x > a.1 { (i, x) } else { a },
                )
                .0;
            assert!(chunk[peak] > 0.0);
            assert!(sum.abs() < 1e-9, "map {m}: gradient sums to {sum}");
        } else {
            assert!(chunk.iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let t = Tensor::zeros((2, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(map_logit_range(&t, 1.0), Err(Error::Shape { .. })));
    let t = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    for beta in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            map_logit_range(&t, beta),
            Err(Error::InvalidArgument { field: "beta", .. })
        ));
    }
    for bound in [-1.0, f64::INFINITY] {
        assert!(matches!(
            map_range_excess(&t, 1.0, bound),
            Err(Error::InvalidArgument { field: "bound", .. })
        ));
    }
    let ints = Tensor::zeros((1, 1, 2, 2), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert!(matches!(
        map_logit_range(&ints, 1.0),
        Err(Error::DType { .. })
    ));
}
