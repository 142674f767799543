//! Tests of the landmark, attribute, heat-map and weight-decay losses and of the objective,
//! against independent f64 computations and finite differences.

use std::collections::BTreeMap;

use approx::assert_relative_eq;
use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_losses::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn dev() -> Device {
    Device::Cpu
}

fn randv(rng: &mut ChaCha8Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Central finite differences of `f` at `x0` (f64), compared with candle's gradient.
fn grad_check(x0: &[f64], shape: &[usize], f: impl Fn(&Tensor) -> Tensor, tol: f64) {
    let var = Var::from_vec(x0.to_vec(), shape, &dev()).unwrap();
    let loss = f(var.as_tensor());
    let grads = loss.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let h = 1e-6;
    let mut max_err = 0f64;
    for i in 0..x0.len() {
        let mut xp = x0.to_vec();
        xp[i] += h;
        let mut xm = x0.to_vec();
        xm[i] -= h;
        let fp = f(&Tensor::from_vec(xp, shape, &dev()).unwrap())
            .to_scalar::<f64>()
            .unwrap();
        let fm = f(&Tensor::from_vec(xm, shape, &dev()).unwrap())
            .to_scalar::<f64>()
            .unwrap();
        let num = (fp - fm) / (2.0 * h);
        max_err = max_err.max((num - g[i]).abs() / (1.0 + num.abs()));
    }
    assert!(
        max_err < tol,
        "finite-difference gradient error {max_err} >= {tol}"
    );
}

// ---------------------------------------------------------------- landmark

#[test]
fn landmark_loss_matches_host_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (b, k) = (3, 4);
    let p = randv(&mut rng, b * k * 2, 0.0, 20.0);
    let t = randv(&mut rng, b * k * 2, 0.0, 20.0);
    let m: Vec<f64> = (0..b * k)
        .map(|i| if i % 3 == 1 { 0.0 } else { 1.0 })
        .collect();
    let (mut sum, mut cnt) = (0.0, 0.0);
    for i in 0..b * k {
        let d = (p[2 * i] - t[2 * i]).powi(2) + (p[2 * i + 1] - t[2 * i + 1]).powi(2);
        sum += m[i] * d;
        cnt += m[i];
    }
    let pt = Tensor::from_vec(p, (b, k, 2), &dev()).unwrap();
    let tt = Tensor::from_vec(t, (b, k, 2), &dev()).unwrap();
    let mt = Tensor::from_vec(m, (b, k), &dev()).unwrap();
    let l = landmark_loss(&pt, &tt, &mt)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(l, sum / cnt, max_relative = 1e-12);
    // f32 input with an f32 mask gives the same value.
    let l32 = landmark_loss(
        &pt.to_dtype(DType::F32).unwrap(),
        &tt.to_dtype(DType::F32).unwrap(),
        &mt.to_dtype(DType::F32).unwrap(),
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    assert_relative_eq!(l32 as f64, sum / cnt, max_relative = 1e-5);
}

#[test]
fn landmark_loss_fully_visible_is_lambda_over_sk_normalisation() {
    // Two images, two points, all visible: divisor S*K = 4.
    let p = Tensor::new(&[[[0f64, 0.], [1., 1.]], [[2., 2.], [3., 3.]]], &dev()).unwrap();
    let t = Tensor::new(&[[[1f64, 0.], [1., 3.]], [[2., 2.], [0., 7.]]], &dev()).unwrap();
    let m = Tensor::ones((2, 2), DType::F64, &dev()).unwrap();
    let l = landmark_loss(&p, &t, &m)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(l, (1.0 + 4.0 + 0.0 + 25.0) / 4.0, max_relative = 1e-12);
}

#[test]
fn landmark_loss_zero_mask_is_zero_with_finite_gradient_even_with_nan_targets() {
    let p = Var::from_vec(vec![1f64, 2., 3., 4.], (1, 2, 2), &dev()).unwrap();
    let t = Tensor::new(&[[[f64::NAN, 0.], [f64::NAN, f64::NAN]]], &dev()).unwrap();
    let m = Tensor::zeros((1, 2), DType::F64, &dev()).unwrap();
    let l = landmark_loss(p.as_tensor(), &t, &m).unwrap();
    assert_eq!(l.to_scalar::<f64>().unwrap(), 0.0);
    let g = l.backward().unwrap();
    let gp = g
        .get(p.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(gp.iter().all(|v| *v == 0.0), "{gp:?}");
    // A NaN target at a masked point does not leak into a partly masked batch either.
    let m = Tensor::new(&[[0f64, 1.]], &dev()).unwrap();
    let t = Tensor::new(&[[[f64::NAN, f64::NAN], [3., 0.]]], &dev()).unwrap();
    let l = landmark_loss(p.as_tensor(), &t, &m).unwrap();
    assert_relative_eq!(l.to_scalar::<f64>().unwrap(), 16.0);
    let g = l.backward().unwrap();
    let gp = g
        .get(p.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(gp, vec![0.0, 0.0, 0.0, 8.0]);
}

#[test]
fn landmark_loss_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (b, k) = (2, 3);
    let x0 = randv(&mut rng, b * k * 2, -5.0, 5.0);
    let t = Tensor::from_vec(randv(&mut rng, b * k * 2, -5.0, 5.0), (b, k, 2), &dev()).unwrap();
    let m = Tensor::new(&[[1f64, 0., 1.], [1., 1., 0.]], &dev()).unwrap();
    grad_check(&x0, &[b, k, 2], |x| landmark_loss(x, &t, &m).unwrap(), 1e-6);
}

#[test]
fn landmark_loss_bad_shapes_are_typed_errors() {
    let p = Tensor::zeros((2, 3, 2), DType::F32, &dev()).unwrap();
    let t = Tensor::zeros((2, 4, 2), DType::F32, &dev()).unwrap();
    let m = Tensor::zeros((2, 3), DType::F32, &dev()).unwrap();
    match landmark_loss(&p, &t, &m) {
        Err(e @ Error::Shape { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("target") && s.contains("[2, 4, 2]") && s.contains("[2, 3, 2]"),
                "{s}"
            );
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let bad_mask = Tensor::zeros((3, 2), DType::F32, &dev()).unwrap();
    let e = landmark_loss(&p, &p, &bad_mask).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { arg, .. } if arg == "mask"),
        "{e}"
    );
    let p3 = Tensor::zeros((2, 3, 3), DType::F32, &dev()).unwrap();
    let e = landmark_loss(&p3, &p3, &m).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { arg, .. } if arg == "pred"),
        "{e}"
    );
    let pu = Tensor::zeros((2, 3, 2), DType::U32, &dev()).unwrap();
    assert!(matches!(
        landmark_loss(&pu, &p, &m),
        Err(Error::DType { .. })
    ));
}

// ---------------------------------------------------------------- attributes

/// Cross-entropy on the host, in f64, against the label-smoothed target
/// `(1 - eps) one_hot + eps / n` (eps = 0: the plain one), written out class by class.
fn host_ce(logits: &[f64], n: usize, labels: &[u32], mask: &[f64], eps: f64) -> f64 {
    let (mut sum, mut cnt) = (0.0, 0.0);
    for (i, row) in logits.chunks(n).enumerate() {
        if mask[i] < 0.5 {
            continue;
        }
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
        for (j, &z) in row.iter().enumerate() {
            let hot = if j == labels[i] as usize { 1.0 } else { 0.0 };
            let target = (1.0 - eps) * hot + eps / n as f64;
            sum += target * (lse - z);
        }
        cnt += 1.0;
    }
    if cnt == 0.0 {
        0.0
    } else {
        sum / cnt
    }
}

#[test]
fn cross_entropy_matches_host_f64_and_is_stable() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, n) = (5, 4);
    let mut logits = randv(&mut rng, b * n, -3.0, 3.0);
    logits[0] = 1000.0; // would overflow a naive exp
    logits[5] = -1000.0;
    let labels = vec![0u32, 2, 3, 9, 1]; // sample 3 is masked out, its label ignored
    let mask = vec![1.0, 1.0, 1.0, 0.0, 1.0];
    let want = host_ce(&logits, n, &labels, &mask, 0.0);
    let lt = Tensor::from_vec(logits, (b, n), &dev()).unwrap();
    let labt = Tensor::from_vec(labels, b, &dev()).unwrap();
    let mt = Tensor::from_vec(mask, b, &dev()).unwrap();
    let got = cross_entropy_loss("emotion", &lt, &labt, &mt)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(got.is_finite());
    assert_relative_eq!(got, want, max_relative = 1e-12);
    let got32 = cross_entropy_loss("emotion", &lt.to_dtype(DType::F32).unwrap(), &labt, &mt)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_relative_eq!(got32 as f64, want, max_relative = 1e-5);
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (b, n) = (4, 3);
    let x0 = randv(&mut rng, b * n, -2.0, 2.0);
    let labels = Tensor::new(&[2u32, 0, 1, 1], &dev()).unwrap();
    let mask = Tensor::new(&[1f64, 1., 0., 1.], &dev()).unwrap();
    grad_check(
        &x0,
        &[b, n],
        |x| cross_entropy_loss("camera", x, &labels, &mask).unwrap(),
        1e-6,
    );
}

#[test]
fn cross_entropy_masks_and_errors() {
    let logits = Tensor::new(&[[1f32, 2., 3.], [0., 0., 0.]], &dev()).unwrap();
    // All masked: 0, not NaN, even with garbage labels.
    let labels = Tensor::new(&[77u32, 99], &dev()).unwrap();
    let zero = Tensor::zeros(2, DType::F32, &dev()).unwrap();
    let l = cross_entropy_loss("emotion", &logits, &labels, &zero).unwrap();
    assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0);
    // A carried out-of-range label names the head, the sample and the label.
    let mask = Tensor::new(&[0f32, 1.], &dev()).unwrap();
    match cross_entropy_loss("emotion", &logits, &labels, &mask) {
        Err(e @ Error::LabelOutOfRange { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("emotion")
                    && s.contains("99")
                    && s.contains("sample 1")
                    && s.contains("3 classes"),
                "{s}"
            );
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    let neg = Tensor::new(&[-1i64, 0], &dev()).unwrap();
    let ones = Tensor::ones(2, DType::F32, &dev()).unwrap();
    assert!(matches!(
        cross_entropy_loss("pose", &logits, &neg, &ones),
        Err(Error::LabelOutOfRange { label: -1, .. })
    ));
    let flabels = Tensor::new(&[0f32, 1.], &dev()).unwrap();
    assert!(matches!(
        cross_entropy_loss("pose", &logits, &flabels, &ones),
        Err(Error::DType { .. })
    ));
    let short = Tensor::new(&[0u32], &dev()).unwrap();
    let e = cross_entropy_loss("pose", &logits, &short, &ones).unwrap_err();
    assert!(e.to_string().contains("labels[pose]"), "{e}");
    let e = cross_entropy_loss("pose", &logits.flatten_all().unwrap(), &short, &ones).unwrap_err();
    assert!(e.to_string().contains("logits[pose]"), "{e}");
}

#[test]
fn smoothed_cross_entropy_matches_host_f64_and_its_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, n) = (5, 4);
    let logits = randv(&mut rng, b * n, -3.0, 3.0);
    let labels = vec![1u32, 3, 0, 7, 2]; // sample 3 is masked out
    let mask = vec![1.0, 1.0, 1.0, 0.0, 1.0];
    let lt = Tensor::from_vec(logits.clone(), (b, n), &dev()).unwrap();
    let labt = Tensor::from_vec(labels.clone(), b, &dev()).unwrap();
    let mt = Tensor::from_vec(mask.clone(), b, &dev()).unwrap();
    for eps in [0.0, 0.1, 0.5] {
        let got = smoothed_cross_entropy_loss("config", &lt, &labt, &mt, eps)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want = host_ce(&logits, n, &labels, &mask, eps);
        assert_relative_eq!(got, want, max_relative = 1e-12);
    }
    // 0 is the plain cross-entropy, bit for bit.
    let plain = cross_entropy_loss("config", &lt, &labt, &mt).unwrap();
    let zero = smoothed_cross_entropy_loss("config", &lt, &labt, &mt, 0.0).unwrap();
    assert_eq!(
        plain.to_scalar::<f64>().unwrap(),
        zero.to_scalar::<f64>().unwrap()
    );
    let labels = Tensor::new(&[2u32, 0, 1, 1], &dev()).unwrap();
    let mask = Tensor::new(&[1f64, 1., 0., 1.], &dev()).unwrap();
    grad_check(
        &randv(&mut rng, 4 * 3, -2.0, 2.0),
        &[4, 3],
        |x| smoothed_cross_entropy_loss("camera", x, &labels, &mask, 0.2).unwrap(),
        1e-6,
    );
}

#[test]
fn smoothed_cross_entropy_stops_at_a_finite_margin() {
    // Two of n = 15 classes' logits: the true one at m, the rest at 0. The cost's slope in m
    // is zero at m = ln(1 + n (1 - eps) / eps), where plain cross-entropy still descends.
    let (n, eps) = (15usize, 0.1);
    let m_star = (1.0 + n as f64 * (1.0 - eps) / eps).ln();
    let labels = Tensor::new(&[0u32], &dev()).unwrap();
    let mask = Tensor::new(&[1f64], &dev()).unwrap();
    let slope = |m: f64, eps: f64| {
        let mut row = vec![0.0; n];
        row[0] = m;
        let v = Var::from_vec(row, (1, n), &dev()).unwrap();
        let c = smoothed_cross_entropy_loss("config", v.as_tensor(), &labels, &mask, eps).unwrap();
        let g = c.backward().unwrap();
        g.get(v.as_tensor()).unwrap().to_vec2::<f64>().unwrap()[0][0]
    };
    assert!(slope(m_star, eps).abs() < 1e-12, "{}", slope(m_star, eps));
    assert!(slope(m_star - 1.0, eps) < 0.0 && slope(m_star + 1.0, eps) > 0.0);
    assert!(slope(m_star + 1.0, 0.0) < 0.0);
}

#[test]
fn smoothed_cross_entropy_rejects_smoothing_outside_0_1() {
    let logits = Tensor::new(&[[1f32, 2., 3.]], &dev()).unwrap();
    let labels = Tensor::new(&[0u32], &dev()).unwrap();
    let mask = Tensor::new(&[1f32], &dev()).unwrap();
    for bad in [-0.1, 1.0, f64::NAN] {
        match smoothed_cross_entropy_loss("config", &logits, &labels, &mask, bad) {
            Err(e @ Error::InvalidArgument { .. }) => {
                assert!(e.to_string().contains("smoothing"), "{e}")
            }
            other => panic!("expected InvalidArgument for {bad}, got {other:?}"),
        }
    }
}

#[test]
fn l1_matches_host_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (b, a) = (4, 3);
    let p = randv(&mut rng, b * a, -30.0, 30.0);
    let mut t = randv(&mut rng, b * a, -30.0, 30.0);
    t[3] = f64::NAN; // sample 1 is masked out
    let mask = vec![1.0, 0.0, 1.0, 1.0];
    let mut sum = 0.0;
    for bi in [0usize, 2, 3] {
        for j in 0..a {
            sum += (p[bi * a + j] - t[bi * a + j]).abs();
        }
    }
    let tt = Tensor::from_vec(t, (b, a), &dev()).unwrap();
    let mt = Tensor::from_vec(mask, b, &dev()).unwrap();
    let pt = Tensor::from_vec(p.clone(), (b, a), &dev()).unwrap();
    let got = l1_loss("pose", &pt, &tt, &mt)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_relative_eq!(got, sum / 3.0, max_relative = 1e-12);
    grad_check(&p, &[b, a], |x| l1_loss("pose", x, &tt, &mt).unwrap(), 1e-6);
    let z = Tensor::zeros(b, DType::F64, &dev()).unwrap();
    assert_eq!(
        l1_loss("pose", &pt, &tt, &z)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap(),
        0.0
    );
    let e = l1_loss("pose", &pt, &tt.narrow(1, 0, 2).unwrap(), &mt).unwrap_err();
    assert!(e.to_string().contains("target[pose]"), "{e}");
}

// ---------------------------------------------------------------- heat maps

#[test]
fn nearest_pixel_rounding_and_borders() {
    assert_eq!(nearest_pixel(2.4, 3.6, 10, 8), Some((2, 4)));
    assert_eq!(nearest_pixel(2.5, 0.5, 10, 8), Some((3, 1))); // halves round up
    assert_eq!(nearest_pixel(-0.5, -0.5, 10, 8), Some((0, 0)));
    assert_eq!(nearest_pixel(7.5, 9.5, 10, 8), Some((7, 9))); // closed upper border
    assert_eq!(nearest_pixel(-0.51, 0.0, 10, 8), None);
    assert_eq!(nearest_pixel(0.0, 9.51, 10, 8), None);
    assert_eq!(nearest_pixel(f64::NAN, 0.0, 10, 8), None);
}

#[test]
fn heatmap_ce_matches_host_and_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (b, k, h, w) = (2, 2, 3, 4);
    let x0 = randv(&mut rng, b * k * h * w, -2.0, 2.0);
    // Points: (1.4, 2.2) -> pixel (1, 2); (3.5, 0.0) -> (3, 0) after clamping; one outside;
    // one masked.
    let pts = Tensor::new(
        &[[[1.4f64, 2.2], [3.5, 0.0]], [[-0.7, 1.0], [2.0, 1.0]]],
        &dev(),
    )
    .unwrap();
    let mask = Tensor::new(&[[1f64, 1.], [1., 0.]], &dev()).unwrap();
    let hw = h * w;
    let term = |map: usize, pix: usize| {
        let row = &x0[map * hw..(map + 1) * hw];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - row[pix]
    };
    let want = (term(0, 2 * w + 1) + term(1, 3)) / 2.0;
    let maps = Tensor::from_vec(x0.clone(), (b, k, h, w), &dev()).unwrap();
    let out = heatmap_cross_entropy(&maps, &pts, &mask).unwrap();
    assert_eq!(out.n_points, 2);
    assert_relative_eq!(
        out.loss.to_scalar::<f64>().unwrap(),
        want,
        max_relative = 1e-12
    );
    grad_check(
        &x0,
        &[b, k, h, w],
        |x| heatmap_cross_entropy(x, &pts, &mask).unwrap().loss,
        1e-6,
    );
    // Nothing valid: 0, not NaN.
    let z = Tensor::zeros((b, k), DType::F64, &dev()).unwrap();
    let out = heatmap_cross_entropy(&maps, &pts, &z).unwrap();
    assert_eq!(
        (out.n_points, out.loss.to_scalar::<f64>().unwrap()),
        (0, 0.0)
    );
    let e = heatmap_cross_entropy(&maps, &pts.narrow(1, 0, 1).unwrap(), &mask).unwrap_err();
    assert!(e.to_string().contains("points"), "{e}");
}

// ---------------------------------------------------------------- weight decay

#[test]
fn weight_decay_sums_squares_with_bias_choice() {
    let w = Var::new(&[[1f32, -2.], [3., 0.5]], &dev()).unwrap();
    let bias = Var::new(&[4f32, -1.], &dev()).unwrap();
    let params = [
        ("conv1.weight", w.as_tensor()),
        ("conv1.bias", bias.as_tensor()),
    ];
    let no_b = weight_decay(params, WeightDecayConfig::default(), &dev()).unwrap();
    assert_relative_eq!(
        no_b.loss.to_scalar::<f32>().unwrap(),
        1.0 + 4.0 + 9.0 + 0.25
    );
    assert_eq!((no_b.n_tensors, no_b.n_weights), (1, 4));
    let with_b = weight_decay(
        params,
        WeightDecayConfig {
            include_biases: true,
        },
        &dev(),
    )
    .unwrap();
    assert_relative_eq!(with_b.loss.to_scalar::<f32>().unwrap(), 14.25 + 17.0);
    let g = with_b.loss.backward().unwrap();
    let gw = g
        .get(w.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(gw, vec![2.0, -4.0, 6.0, 1.0]);
    let gb = g.get(bias.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(gb, vec![8.0, -2.0]);
    let unnamed = weight_decay_tensors(
        [w.as_tensor(), bias.as_tensor()],
        WeightDecayConfig::default(),
        &dev(),
    )
    .unwrap();
    assert_eq!(
        (unnamed.n_tensors, unnamed.loss.to_scalar::<f32>().unwrap()),
        (1, 14.25)
    );
    let empty = weight_decay(std::iter::empty(), WeightDecayConfig::default(), &dev()).unwrap();
    assert_eq!(empty.loss.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn weight_decay_over_a_varmap() {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &dev());
    let _ = candle_nn::linear(3, 2, vb.pp("fc")).unwrap();
    let data = vm.data().lock().unwrap();
    let wsum = data["fc.weight"]
        .as_tensor()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let bsum = data["fc.bias"]
        .as_tensor()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    drop(data);
    let out = weight_decay_varmap(&vm, WeightDecayConfig::default(), &dev()).unwrap();
    assert_relative_eq!(
        out.loss.to_scalar::<f32>().unwrap(),
        wsum,
        max_relative = 1e-6
    );
    let out = weight_decay_varmap(
        &vm,
        WeightDecayConfig {
            include_biases: true,
        },
        &dev(),
    )
    .unwrap();
    assert_relative_eq!(
        out.loss.to_scalar::<f32>().unwrap(),
        wsum + bsum,
        max_relative = 1e-6
    );
}

// ---------------------------------------------------------------- objective

fn scalar(v: f32) -> Tensor {
    Tensor::new(v, &dev()).unwrap()
}

#[test]
fn objective_weights_terms_and_reports_each() {
    let mut weights = ObjectiveWeights::hgr1();
    weights.attributes.insert("camera".into(), 0.5);
    weights.spread = 0.01;
    weights.overlap = 3.0;
    let mut attributes = BTreeMap::new();
    attributes.insert("emotion".to_string(), scalar(2.0));
    attributes.insert("camera".to_string(), scalar(4.0));
    let terms = Terms {
        landmark: Some(scalar(10.0)),
        attributes,
        elt: Some(scalar(3.0)),
        weight_decay: Some(scalar(1000.0)),
        map_scale: Some(scalar(7.0)),
        map_spread: Some(scalar(20.0)),
        map_overlap: Some(scalar(0.5)),
    };
    let r = weights.combine(&terms).unwrap();
    let want =
        0.5 * 10.0 + 2.0 + 0.5 * 4.0 + 0.3 * 3.0 + 1e-5 * 1000.0 + 7.0 + 0.01 * 20.0 + 3.0 * 0.5;
    assert_relative_eq!(r.values["total"], want, max_relative = 1e-6);
    assert_relative_eq!(
        r.total.to_scalar::<f32>().unwrap() as f64,
        want,
        max_relative = 1e-6
    );
    assert_relative_eq!(r.values["landmark"], 5.0, max_relative = 1e-6);
    assert_relative_eq!(r.values["attribute:emotion"], 2.0, max_relative = 1e-6);
    assert_relative_eq!(r.values["attribute:camera"], 2.0, max_relative = 1e-6);
    assert_relative_eq!(r.values["elt"], 0.9, max_relative = 1e-6);
    assert_relative_eq!(r.values["weight_decay"], 0.01, max_relative = 1e-4);
    assert!(r.is_finite() && r.non_finite().is_empty());
    assert!(r
        .summary()
        .ends_with(&format!("total={:.6}", r.values["total"])));
    assert_relative_eq!(r.values["map_scale"], 7.0, max_relative = 1e-6);
    assert_relative_eq!(r.values["map_spread"], 0.2, max_relative = 1e-6);
    assert_relative_eq!(r.values["map_overlap"], 1.5, max_relative = 1e-6);
    assert_relative_eq!(r.unweighted["map_spread"], 20.0, max_relative = 1e-6);
    assert_eq!(r.weighted.len(), 8);
    assert_relative_eq!(r.unweighted["attribute:camera"], 4.0);
}

#[test]
fn objective_names_the_non_finite_term_and_skips_zero_weights() {
    let terms = Terms {
        landmark: Some(scalar(1.0)),
        elt: Some(scalar(f32::NAN)),
        ..Default::default()
    };
    let r = ObjectiveWeights::blocks().combine(&terms).unwrap();
    assert_eq!(r.non_finite(), vec!["elt", "total"]);
    assert!(!r.is_finite());
    // Shapes: lambda = alpha = 0, so the NaN ELT term is left out.
    let mut terms = terms;
    terms.attributes.insert("closer".into(), scalar(0.7));
    let r = ObjectiveWeights::shapes().combine(&terms).unwrap();
    assert!(r.is_finite());
    assert_relative_eq!(r.values["total"], 0.7, max_relative = 1e-6);
    assert!(!r.values.contains_key("elt"));
    assert!(r.unweighted["elt"].is_nan() && r.unweighted["landmark"] == 1.0);
    assert!(ObjectiveWeights::blocks()
        .combine(&Terms::default())
        .is_err());
    let bad = Terms {
        landmark: Some(Tensor::zeros(2, DType::F32, &dev()).unwrap()),
        ..Default::default()
    };
    assert!(matches!(
        ObjectiveWeights::blocks().combine(&bad),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn objective_gradient_flows_with_weights() {
    let x = Var::new(&[[[1f32, 2.]]], &dev()).unwrap();
    let t = Tensor::new(&[[[0f32, 0.]]], &dev()).unwrap();
    let m = Tensor::ones((1, 1), DType::F32, &dev()).unwrap();
    let terms = Terms {
        landmark: Some(landmark_loss(x.as_tensor(), &t, &m).unwrap()),
        ..Default::default()
    };
    let r = ObjectiveWeights::multi_pie().combine(&terms).unwrap();
    let g = r.total.backward().unwrap();
    let gx = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(gx, vec![4.0, 8.0]); // lambda 2 * 2x
}

#[test]
fn objective_weights_defaults_presets_and_serde() {
    let d = ObjectiveWeights::default();
    assert_eq!((d.lambda, d.alpha, d.gamma, d.beta), (1.0, 1.0, 0.0, 1.0));
    for name in OBJECTIVE_PRESETS {
        ObjectiveWeights::preset(name).unwrap().validate().unwrap();
    }
    assert!(ObjectiveWeights::preset("nope").is_err());
    let w300 = ObjectiveWeights::preset("300w_seq_mt").unwrap();
    assert_eq!(
        (w300.lambda, w300.alpha, w300.gamma, w300.beta),
        (2.0, 2.0, 1e-5, 0.01)
    );
    let bad = ObjectiveWeights {
        alpha: -1.0,
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    assert_eq!(d.attribute_weight("anything"), 1.0);
}

#[test]
fn configs_round_trip_through_serde_with_defaults() {
    let d = ObjectiveWeights::default();
    let s = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<ObjectiveWeights>(&s).unwrap(), d);
    let partial: ObjectiveWeights = serde_json::from_str(r#"{"alpha": 0.3}"#).unwrap();
    assert_eq!((partial.lambda, partial.alpha), (1.0, 0.3));
    let e: EltConfig = serde_json::from_str(r#"{"max_rotation_deg": 5}"#).unwrap();
    assert_eq!(
        e,
        EltConfig {
            max_rotation_deg: 5.0,
            ..Default::default()
        }
    );
    let wd: WeightDecayConfig = serde_json::from_str("{}").unwrap();
    assert!(!wd.include_biases);
}
