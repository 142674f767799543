//! Gradients of the layers with hand-made backward paths: x2 nearest upsampling (stock
//! candle 0.11's `upsample_nearest2d` backward overwrites the accumulated gradient; the
//! workspace's patched candle-core fixes it) and 2x2 max-pooling on
//! odd sizes (candle's backward misplaces it there). Checked against central finite
//! differences in f64. (candle's max-pool backward is also off: see the last test.)

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_models::{max_pool2x2, upsample_nearest2x};

/// A loss where `x` is used twice: once through the upsampling, once directly. The weights
/// `w` make every output position count differently.
fn loss_with(
    x: &Tensor,
    up: &dyn Fn(&Tensor) -> Tensor,
    w_up: &Tensor,
    w_direct: &Tensor,
) -> Tensor {
    let a = (up(x) * w_up).unwrap().sum_all().unwrap();
    let b = (x.sqr().unwrap() * w_direct).unwrap().sum_all().unwrap();
    (a + b).unwrap()
}

/// Central finite differences of `f` at `x` (f64).
fn numeric_grad(x: &[f64], shape: &[usize], f: &dyn Fn(&Tensor) -> f64) -> Vec<f64> {
    let eps = 1e-5;
    (0..x.len())
        .map(|i| {
            let mut p = x.to_vec();
            p[i] += eps;
            let fp = f(&Tensor::from_vec(p.clone(), shape, &Device::Cpu).unwrap());
            p[i] -= 2.0 * eps;
            let fm = f(&Tensor::from_vec(p, shape, &Device::Cpu).unwrap());
            (fp - fm) / (2.0 * eps)
        })
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn rand(shape: &[usize], seed_offset: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| (i as f64 * 0.7 + seed_offset).sin() * 1.3)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn upsampling_gradient_accumulates_where_candles_does_not() {
    let shape = [2, 3, 2, 3];
    let x0 = rand(&shape, 0.3);
    let w_up = rand(&[2, 3, 4, 6], 1.1);
    let w_direct = rand(&shape, 2.7);
    let ours = |t: &Tensor| upsample_nearest2x(t).unwrap();
    let candles = |t: &Tensor| t.upsample_nearest2d(4, 6).unwrap();
    // Forward values agree.
    let d = (ours(&x0) - candles(&x0))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(d, 0.0);

    let x_vals = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let f = |t: &Tensor| {
        loss_with(t, &ours, &w_up, &w_direct)
            .to_scalar::<f64>()
            .unwrap()
    };
    let numeric = numeric_grad(&x_vals, &shape, &f);

    let analytic = |up: &dyn Fn(&Tensor) -> Tensor| {
        let v = Var::from_tensor(&x0).unwrap();
        let g = loss_with(v.as_tensor(), up, &w_up, &w_direct)
            .backward()
            .unwrap();
        g.get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    let g_ours = analytic(&ours);
    assert!(
        max_abs_diff(&g_ours, &numeric) < 1e-6,
        "ours: {g_ours:?} vs {numeric:?}"
    );
    // Stock candle 0.11's backward drops one of the two contributions; this workspace builds
    // on the patched candle-core of vendor/ (see vendor/README.md), whose backward adds it.
    // Downstream crates on stock candle keep `upsample_nearest2x`, correct on both.
    let g_candle = analytic(&candles);
    assert!(
        max_abs_diff(&g_candle, &numeric) < 1e-6,
        "the patched upsample_nearest2d backward does not accumulate: {g_candle:?}"
    );
}

#[test]
fn upsampled_tensor_used_twice() {
    // y = up(x) feeds two consumers; d/dx sum(a*y + b*y) = blocksum(a + b).
    let x0 = rand(&[1, 2, 3, 2], 0.9);
    let a = rand(&[1, 2, 6, 4], 0.1);
    let b = rand(&[1, 2, 6, 4], 5.0);
    let v = Var::from_tensor(&x0).unwrap();
    let y = upsample_nearest2x(v.as_tensor()).unwrap();
    let loss =
        ((&y * &a).unwrap().sum_all().unwrap() + (&y * &b).unwrap().sum_all().unwrap()).unwrap();
    let g = loss.backward().unwrap();
    let got = g
        .get(v.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let ab = (a + b)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec3::<f64>()
        .unwrap();
    let mut want = Vec::new();
    for plane in &ab {
        for i in 0..3 {
            for j in 0..2 {
                want.push(
                    plane[2 * i][2 * j]
                        + plane[2 * i][2 * j + 1]
                        + plane[2 * i + 1][2 * j]
                        + plane[2 * i + 1][2 * j + 1],
                );
            }
        }
    }
    assert!(max_abs_diff(&got, &want) < 1e-12, "{got:?} vs {want:?}");
}

#[test]
fn max_pool_gradient_on_odd_sizes() {
    for shape in [[1, 2, 5, 7], [2, 1, 4, 6], [1, 1, 3, 3]] {
        let (h, w) = (shape[2], shape[3]);
        let x0 = rand(&shape, 0.45 * h as f64);
        let w_out = rand(&[shape[0], shape[1], h / 2, w / 2], 3.3);
        let f_t = |t: &Tensor| {
            (max_pool2x2(t).unwrap() * &w_out)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        // Forward equals candle's max_pool2d (which also drops an odd last row / column).
        let d = (max_pool2x2(&x0).unwrap() - x0.max_pool2d(2).unwrap()).unwrap();
        assert_eq!(
            d.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            0.0
        );
        let v = Var::from_tensor(&x0).unwrap();
        let g = f_t(v.as_tensor()).backward().unwrap();
        let got = g
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let xs = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let numeric = numeric_grad(&xs, &shape, &|t: &Tensor| {
            f_t(t).to_scalar::<f64>().unwrap()
        });
        assert!(
            max_abs_diff(&got, &numeric) < 1e-6,
            "{shape:?}: {got:?} vs {numeric:?}"
        );
        // candle's max_pool2d backward is off (a factor 1/4 for unique maxima).
        let v = Var::from_tensor(&x0).unwrap();
        let g = (v.as_tensor().max_pool2d(2).unwrap() * &w_out)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let theirs = g
            .get(v.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert!(
            max_abs_diff(&theirs, &numeric) > 1e-2,
            "candle's max_pool2d backward is now right"
        );
    }
}

#[test]
fn f32_paths_run() {
    let x = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(upsample_nearest2x(&x).unwrap().dims(), &[1, 1, 6, 6]);
    assert!(max_pool2x2(&Tensor::ones((1, 1, 1, 3), DType::F32, &Device::Cpu).unwrap()).is_err());
}
