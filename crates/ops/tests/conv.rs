//! The fast convolution against candle's conv2d (forward and all gradients), finite
//! differences in f64, the skipped input gradient, fallbacks and errors.

use candle_core::{DType, Device, Module, Tensor, Var};
use landmark_ssl_ops::conv::{conv2d, conv2d_fast, conv2d_reference, Conv2d, Conv2dConfig};
use landmark_ssl_ops::Error;
use rand::SeedableRng;

mod common;

use common::{check_case, max_abs_diff, rand_t};

#[test]
fn matches_candle_on_varied_shapes() {
    // (batch, in, out, h, w, kernel, padding, bias, relu)
    let cases = [
        (2, 1, 8, 13, 11, 9, 4, true, true),
        (1, 8, 8, 17, 15, 9, 4, true, false),
        (3, 5, 7, 9, 12, 3, 1, true, true),
        (2, 3, 6, 10, 7, 5, 2, false, false),
        (1, 4, 3, 8, 9, 7, 3, true, false),
        (2, 6, 5, 7, 7, 1, 0, true, true),
        (1, 70, 9, 6, 5, 3, 1, true, false),
        (1, 40, 33, 11, 12, 9, 4, true, true),
        (2, 3, 4, 9, 10, 5, 0, true, false),
        (1, 2, 3, 8, 8, 5, 3, true, false),
    ];
    for (i, &(b, ci, co, h, w, k, p, bias, relu)) in cases.iter().enumerate() {
        check_case(
            i as u64,
            b,
            ci,
            co,
            h,
            w,
            k,
            Conv2dConfig {
                padding: p,
                stride: 1,
            },
            bias,
            relu,
        );
    }
}

#[test]
fn matches_candle_batch_32() {
    check_case(100, 32, 8, 8, 20, 19, 9, Conv2dConfig::same(9), true, true);
}

#[test]
fn stride_two_matches_candle() {
    // Sizes where candle's own strided backward is right: (H + 2p - k) % 2 == 0.
    check_case(
        200,
        2,
        3,
        4,
        11,
        9,
        3,
        Conv2dConfig {
            padding: 1,
            stride: 2,
        },
        true,
        false,
    );
    // Other sizes (candle's backward fails there): forward against candle, gradient shapes.
    let mut rng = rand::rngs::StdRng::seed_from_u64(201);
    let x = Var::from_tensor(&rand_t(&mut rng, &[1, 2, 10, 10], DType::F32)).unwrap();
    let wt = rand_t(&mut rng, &[3, 2, 3, 3], DType::F32);
    let cfg = Conv2dConfig {
        padding: 1,
        stride: 2,
    };
    let y = conv2d_fast(x.as_tensor(), &wt, None, cfg).unwrap();
    let d = max_abs_diff(
        &y,
        &conv2d_reference(x.as_tensor(), &wt, None, cfg, false).unwrap(),
    );
    assert!(d < 1e-4, "diff {d}");
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(x.as_tensor()).unwrap().dims(), &[1, 2, 10, 10]);
}

#[test]
fn input_gradient_skipped_for_untracked_input() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x = rand_t(&mut rng, &[2, 3, 8, 8], DType::F32);
    let wt = Var::from_tensor(&rand_t(&mut rng, &[4, 3, 3, 3], DType::F32)).unwrap();
    let bt = Var::from_tensor(&rand_t(&mut rng, &[4], DType::F32)).unwrap();
    let cfg = Conv2dConfig::same(3);
    let y = conv2d_fast(&x, wt.as_tensor(), Some(bt.as_tensor()), cfg).unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none());
    let yr = conv2d_reference(&x, wt.as_tensor(), Some(bt.as_tensor()), cfg, false).unwrap();
    let gr = yr.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let d = max_abs_diff(
        g.get(wt.as_tensor()).unwrap(),
        gr.get(wt.as_tensor()).unwrap(),
    );
    assert!(d < 1e-3, "weight gradient diff {d}");
}

#[test]
fn finite_differences_f64() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (b, ci, co, h, w, k) = (2, 2, 3, 5, 6, 3);
    let cfg = Conv2dConfig::same(k);
    let x = rand_t(&mut rng, &[b, ci, h, w], DType::F64);
    let wt = rand_t(&mut rng, &[co, ci, k, k], DType::F64);
    let bt = rand_t(&mut rng, &[co], DType::F64);
    let r = rand_t(&mut rng, &[b, co, h, w], DType::F64);
    // Loss with a smooth nonlinearity so the check depends on every output.
    let loss = |x: &Tensor, wt: &Tensor, bt: &Tensor| -> Tensor {
        conv2d_fast(x, wt, Some(bt), cfg)
            .unwrap()
            .tanh()
            .unwrap()
            .mul(&r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let (xv, wv, bv) = (
        Var::from_tensor(&x).unwrap(),
        Var::from_tensor(&wt).unwrap(),
        Var::from_tensor(&bt).unwrap(),
    );
    let grads = loss(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())
        .backward()
        .unwrap();
    let eps = 1e-6;
    for (which, base) in [(0, &x), (1, &wt), (2, &bt)] {
        let analytic: Vec<f64> = grads
            .get([xv.as_tensor(), wv.as_tensor(), bv.as_tensor()][which])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let v: Vec<f64> = base.flatten_all().unwrap().to_vec1().unwrap();
        for idx in (0..v.len()).step_by(3) {
            let mut plus = v.clone();
            plus[idx] += eps;
            let mut minus = v.clone();
            minus[idx] -= eps;
            let mk = |d: Vec<f64>| Tensor::from_vec(d, base.dims(), &Device::Cpu).unwrap();
            let (lp, lm) = match which {
                0 => (loss(&mk(plus), &wt, &bt), loss(&mk(minus), &wt, &bt)),
                1 => (loss(&x, &mk(plus), &bt), loss(&x, &mk(minus), &bt)),
                _ => (loss(&x, &wt, &mk(plus)), loss(&x, &wt, &mk(minus))),
            };
            let num =
                (lp.to_scalar::<f64>().unwrap() - lm.to_scalar::<f64>().unwrap()) / (2.0 * eps);
            approx::assert_abs_diff_eq!(num, analytic[idx], epsilon = 1e-6 * (1.0 + num.abs()));
        }
    }
}

#[test]
fn layer_from_varbuilder_matches_candle_nn() {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let layer = conv2d(3, 5, 3, Conv2dConfig::same(3), vb.pp("c")).unwrap();
    let data = vm.data().lock().unwrap();
    assert_eq!(data["c.weight"].as_tensor().dims(), &[5, 3, 3, 3]);
    assert_eq!(data["c.bias"].as_tensor().dims(), &[5]);
    let reference = candle_nn::Conv2d::new(
        data["c.weight"].as_tensor().clone(),
        Some(data["c.bias"].as_tensor().clone()),
        candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
    );
    drop(data);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let x = rand_t(&mut rng, &[2, 3, 7, 9], DType::F32);
    let d = max_abs_diff(&layer.forward(&x).unwrap(), &reference.forward(&x).unwrap());
    assert!(d < 1e-4, "diff {d}");
    let d = max_abs_diff(
        &layer.forward_relu(&x).unwrap(),
        &reference.forward(&x).unwrap().relu().unwrap(),
    );
    assert!(d < 1e-4, "relu diff {d}");
    let no_bias = Conv2d::new(layer.weight().clone(), None, *layer.config());
    assert!(no_bias.bias().is_none());
    assert_eq!(no_bias.forward(&x).unwrap().dims(), &[2, 5, 7, 9]);
}

#[test]
fn errors_name_the_argument() {
    let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    match conv2d_fast(&x, &w, None, Conv2dConfig::default()) {
        Err(Error::Shape { arg: "w", .. }) => {}
        other => panic!("expected a shape error on w, got {other:?}"),
    }
    let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        conv2d_fast(&x, &w, Some(&b), Conv2dConfig::default()),
        Err(Error::Shape { arg: "b", .. })
    ));
    assert!(matches!(
        conv2d_fast(
            &x,
            &w,
            None,
            Conv2dConfig {
                padding: 0,
                stride: 0
            }
        ),
        Err(Error::InvalidArgument { arg: "stride", .. })
    ));
    let big = Tensor::zeros((4, 3, 9, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        conv2d_fast(&x, &big, None, Conv2dConfig::default()),
        Err(Error::Shape { arg: "x", .. })
    ));
    let x3 = Tensor::zeros((3, 5, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        conv2d_fast(&x3, &w, None, Conv2dConfig::default()),
        Err(Error::Shape { arg: "x", .. })
    ));
}
