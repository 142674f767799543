//! Helpers shared by the convolution tests: random tensors and one case checked against
//! candle's conv2d (forward and every gradient). The kernel variants live in separate test
//! binaries because the kernel choice is read once per process.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_ops::conv::{conv2d_fast, conv2d_fast_relu, conv2d_reference, Conv2dConfig};
use rand::{Rng, SeedableRng};

pub fn rand_t(rng: &mut rand::rngs::StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    a.to_dtype(DType::F64)
        .unwrap()
        .sub(&b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f64 {
    a.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Compares forward and the gradients of x, w, b (loss = sum(y * r)) with candle's conv2d.
#[allow(clippy::too_many_arguments)]
pub fn check_case(
    seed: u64,
    b: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    k: usize,
    cfg: Conv2dConfig,
    bias: bool,
    relu: bool,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x = Var::from_tensor(&rand_t(&mut rng, &[b, ci, h, w], DType::F32)).unwrap();
    let wt = Var::from_tensor(&rand_t(&mut rng, &[co, ci, k, k], DType::F32)).unwrap();
    let bt = Var::from_tensor(&rand_t(&mut rng, &[co], DType::F32)).unwrap();
    let bref = if bias { Some(bt.as_tensor()) } else { None };
    let ours = if relu {
        conv2d_fast_relu(x.as_tensor(), wt.as_tensor(), bref, cfg).unwrap()
    } else {
        conv2d_fast(x.as_tensor(), wt.as_tensor(), bref, cfg).unwrap()
    };
    let refy = conv2d_reference(x.as_tensor(), wt.as_tensor(), bref, cfg, relu).unwrap();
    let scale = 1.0 + max_abs(&refy);
    let d = max_abs_diff(&ours, &refy);
    assert!(
        d <= 1e-4 * scale,
        "forward {b}x{ci}->{co} {h}x{w} k{k} {cfg:?}: diff {d} (scale {scale})"
    );
    let r = rand_t(&mut rng, ours.dims(), DType::F32);
    let g1 = ours.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = refy.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut names = vec![("x", x.as_tensor()), ("w", wt.as_tensor())];
    if bias {
        names.push(("b", bt.as_tensor()));
    }
    for (name, t) in names {
        let a = g1
            .get(t)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let e = g2.get(t).unwrap();
        let scale = 1.0 + max_abs(e);
        let d = max_abs_diff(a, e);
        assert!(
            d <= 2e-4 * scale,
            "grad {name} {b}x{ci}->{co} {h}x{w} k{k} {cfg:?} relu={relu}: diff {d} (scale {scale})"
        );
    }
}

/// One convolution case: (batch, in, out, h, w, kernel, padding, bias, relu).
pub type Case = (usize, usize, usize, usize, usize, usize, usize, bool, bool);

/// The cases both kernel variants run.
pub const KERNEL_CASES: [Case; 6] = [
    (2, 1, 8, 13, 11, 9, 4, true, true),
    (3, 8, 8, 17, 15, 9, 4, true, false),
    (2, 6, 5, 7, 7, 1, 0, true, true),
    (1, 40, 33, 11, 12, 9, 4, true, true),
    (2, 3, 4, 9, 10, 5, 0, false, false),
    (1, 2, 3, 8, 8, 5, 3, true, false),
];

/// Runs [`KERNEL_CASES`] through [`check_case`].
pub fn check_kernel_cases() {
    for (i, &(b, ci, co, h, w, k, p, bias, relu)) in KERNEL_CASES.iter().enumerate() {
        let cfg = Conv2dConfig {
            padding: p,
            stride: 1,
        };
        check_case(i as u64, b, ci, co, h, w, k, cfg, bias, relu);
    }
}
