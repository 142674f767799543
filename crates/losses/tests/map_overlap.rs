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

/// The overlap on the host, (B, K, K): the masses from `values`, the points from
/// `points_from` (the same maps, or the unperturbed ones for finite differences, as the
/// points are held fixed).
#[allow(clippy::too_many_arguments)]
fn host(
    values: &[f64],
    points_from: &[f64],
    b: usize,
    k: usize,
    h: usize,
    w: usize,
    beta: f64,
    sigma: f64,
) -> Vec<Vec<Vec<f64>>> {
    let p = softmax(values, h * w, beta);
    let q = softmax(points_from, h * w, beta);
    let point = |m: &[f64]| -> (f64, f64) {
        m.iter().enumerate().fold((0.0, 0.0), |(x, y), (i, &v)| {
            (x + v * (i % w) as f64, y + v * (i / w) as f64)
        })
    };
    (0..b)
        .map(|img| {
            (0..k)
                .map(|i| {
                    (0..k)
                        .map(|j| {
                            let (mx, my) = point(&q[img * k + j]);
                            p[img * k + i]
                                .iter()
                                .enumerate()
                                .map(|(n, v)| {
                                    let dx = (n % w) as f64 - mx;
                                    let dy = (n / w) as f64 - my;
                                    v * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
                                })
                                .sum()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The mean over images and ordered pairs `i != j`.
/// The cost from the overlaps `o`: for each pair of maps, the overlap of the one with less
/// of its mass near its own point (read from `held`, the unperturbed overlaps) with the
/// other's point, both halves on a tie; the mean over pairs and images.
fn yielding_mean(o: &[Vec<Vec<f64>>], held: &[Vec<Vec<f64>>], k: usize) -> f64 {
    let per_image = o.iter().zip(held).map(|(m, h)| {
        let mut sum = 0.0;
        for i in 0..k {
            for j in i + 1..k {
                sum += if h[i][i] < h[j][j] {
                    m[i][j]
                } else if h[i][i] > h[j][j] {
                    m[j][i]
                } else {
                    (m[i][j] + m[j][i]) / 2.0
                };
            }
        }
        sum / (k * (k - 1) / 2) as f64
    });
    per_image.sum::<f64>() / o.len() as f64
}

#[test]
fn overlap_matches_the_host() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (b, k, h, w, beta, sigma) = (2, 3, 4, 5, 0.8, 1.7);
    let v = maps(&mut rng, b * k * h * w, 3.0);
    let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
    let want = host(&v, &v, b, k, h, w, beta, sigma);
    let got = map_overlap(&t, beta, sigma).unwrap();
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
    let mean = map_overlap_mean(&t, beta, sigma)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(mean, yielding_mean(&want, &want, k), max_relative = 1e-10);
}

/// A 1 x 21 strip: map 0 a peak at x = 2; map 1 split evenly between x = 2 and x = 18, so
/// its point is at x = 10, with nothing there.
fn split_map() -> Vec<f32> {
    let mut v = vec![-100f32; 2 * 21];
    v[2] = 10.0;
    v[21 + 2] = 10.0;
    v[21 + 18] = 10.0;
    v
}

#[test]
fn a_map_split_over_another_point_pays_and_is_pushed_off_it() {
    let dev = Device::Cpu;
    let var = Var::from_vec(split_map(), (1, 2, 1, 21), &dev).unwrap();
    let o = map_overlap(var.as_tensor(), 1.0, 2.0)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    // Half of map 1 sits on map 0's point; map 0 is 8 px (4 sigma) from map 1's point.
    assert_relative_eq!(o[0][1][0], 0.5, max_relative = 1e-5);
    assert_relative_eq!(o[0][0][1], (-8.0f32).exp(), max_relative = 1e-4);
    // The gradient moves map 1's mass from the shared place to its other part: to first
    // order, though the split is even (a cost symmetric in the two parts has no gradient
    // there).
    let grads = map_overlap_mean(var.as_tensor(), 1.0, 2.0)
        .unwrap()
        .backward()
        .unwrap();
    let g = grads.get(var.as_tensor()).expect("the maps get a gradient");
    let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(g[21 + 2] > 0.1, "shared part: {}", g[21 + 2]);
    assert!(g[21 + 18] < -0.1, "own part: {}", g[21 + 18]);
}

#[test]
fn of_two_maps_on_one_place_only_the_broader_moves() {
    // Both maps peak at x = 10 of a 1 x 21 strip; map 1 a little broader (its neighbours
    // higher). A cost symmetric in the two would lower the peak in both; this one asks
    // only map 1 to leave, so map 0 gets no gradient and keeps its peak.
    let mut v = vec![-100f32; 2 * 21];
    v[10] = 10.0;
    v[21 + 10] = 10.0;
    for x in [9, 11] {
        v[x] = 5.0;
        v[21 + x] = 6.0;
    }
    let var = Var::from_vec(v, (1, 2, 1, 21), &Device::Cpu).unwrap();
    let cost = map_overlap_mean(var.as_tensor(), 1.0, 2.0).unwrap();
    let o = map_overlap(var.as_tensor(), 1.0, 2.0)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    assert!(o[0][1][1] < o[0][0][0], "map 1 is the broader");
    assert_relative_eq!(
        cost.to_scalar::<f32>().unwrap(),
        o[0][1][0],
        max_relative = 1e-6
    );
    let grads = cost.backward().unwrap();
    let g = grads.get(var.as_tensor()).expect("the maps get a gradient");
    let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(g[..21].iter().all(|&x| x == 0.0), "map 0: {:?}", &g[..21]);
    assert!(g[21 + 10] > 1e-3, "map 1's peak is lowered: {}", g[21 + 10]);
}

#[test]
fn far_maps_cost_nothing_and_near_ones_cost_their_window() {
    let dev = Device::Cpu;
    let (h, w) = (5, 30);
    let peaks = |a: usize, c: usize| {
        let mut v = vec![-200f32; 2 * h * w];
        v[a] = 0.0;
        v[h * w + c] = 0.0;
        Tensor::from_vec(v, (1, 2, h, w), &dev).unwrap()
    };
    let mean = |t: &Tensor| {
        map_overlap_mean(t, 1.0, 2.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    // 25 px apart: 12.5 sigma.
    assert!(mean(&peaks(2, 27)) < 1e-20);
    // Neighbours, 1 px apart: exp(-1 / 8).
    assert_relative_eq!(mean(&peaks(2, 3)), (-0.125f32).exp(), max_relative = 1e-5);
    // One map, or no image: no pair.
    for shape in [(2, 1, h, w), (0, 3, h, w)] {
        let t = Tensor::zeros(shape, DType::F32, &dev).unwrap();
        let o = map_overlap_mean(&t, 1.0, 2.0).unwrap();
        assert_eq!(o.dims(), &[] as &[usize]);
        assert_eq!(o.to_scalar::<f32>().unwrap(), 0.0);
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, k, h, w, beta, sigma) = (2, 3, 3, 4, 1.3, 1.5);
    let v = maps(&mut rng, b * k * h * w, 2.0);
    let var = Var::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
    let g = map_overlap_mean(var.as_tensor(), beta, sigma)
        .unwrap()
        .backward()
        .unwrap();
    let g = g.get(var.as_tensor()).expect("the maps get a gradient");
    let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let held = host(&v, &v, b, k, h, w, beta, sigma);
    let step = 1e-6;
    for i in 0..v.len() {
        // The points stay where the unperturbed maps put them.
        let at = |d: f64| {
            let mut x = v.clone();
            x[i] += d;
            yielding_mean(&host(&x, &v, b, k, h, w, beta, sigma), &held, k)
        };
        let num = (at(step) - at(-step)) / (2.0 * step);
        assert_relative_eq!(g[i], num, epsilon = 1e-8, max_relative = 1e-5);
    }
}

#[test]
fn bad_inputs_are_named() {
    let dev = Device::Cpu;
    let rank3 = Tensor::zeros((1, 2, 3), DType::F32, &dev).unwrap();
    match map_overlap(&rank3, 1.0, 2.0) {
        Err(Error::Shape { func, got, .. }) => {
            assert_eq!(func, "map_overlap");
            assert_eq!(got, vec![1, 2, 3]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let ints = Tensor::zeros((1, 2, 2, 2), DType::U32, &dev).unwrap();
    assert!(matches!(
        map_overlap(&ints, 1.0, 2.0),
        Err(Error::DType { .. })
    ));
    let maps = Tensor::zeros((1, 2, 2, 2), DType::F32, &dev).unwrap();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            map_overlap_mean(&maps, bad, 2.0),
            Err(Error::InvalidArgument { field: "beta", .. })
        ));
        assert!(matches!(
            map_overlap_mean(&maps, 1.0, bad),
            Err(Error::InvalidArgument { field: "sigma", .. })
        ));
    }
}
