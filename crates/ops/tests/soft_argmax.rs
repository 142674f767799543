//! Soft-argmax: fused kernel against the composite path and an independent f64
//! computation, gradient checks, invariances, extremes and argument errors.

#[path = "common/maps.rs"]
mod maps;

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_ops::{soft_argmax, soft_argmax_composite, soft_argmax_detailed};
use maps::{flat, max_abs_diff, random_maps, reference, rng};
use rand::Rng;

#[test]
fn fused_matches_reference_and_composite_f32_f64() {
    // Shapes with H*W a multiple of the SIMD width, not a multiple, odd and tiny. On
    // AVX-512: widths of whole vectors (16, 64, 80) take the row kernels, 17 rows span two
    // of their flushes; 8, 9, 5, 1, 13 and 60 take the period kernel (20 rows of 13: one
    // period of 16 rows and 4 rows after it; 61 rows of 60: 15 periods of 4 rows and one
    // row after them); 19 and 100 take the flat kernel.
    for (i, &(b, k, h, w)) in [
        (2, 3, 8, 8),
        (1, 2, 7, 9),
        (3, 1, 1, 5),
        (1, 1, 1, 1),
        (2, 2, 20, 13),
        (1, 2, 5, 16),
        (1, 1, 17, 64),
        (2, 1, 3, 80),
        (2, 2, 60, 60),
        (1, 1, 61, 60),
        (1, 2, 7, 19),
        (1, 1, 9, 100),
    ]
    .iter()
    .enumerate()
    {
        for &beta in &[1e-3, 0.5, 1.0, 10.0, 1e3] {
            let v = random_maps(i as u64, b, k, h, w, 3.0);
            let want = reference(&v, b, k, h, w, beta);
            let t64 = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
            let got64 = soft_argmax(&t64, beta).unwrap();
            assert_eq!(got64.dims(), &[b, k, 2]);
            assert_eq!(got64.dtype(), DType::F64);
            let e64 = max_abs_diff(&flat(&got64), &want);
            assert!(e64 < 1e-9, "f64 {b}x{k}x{h}x{w} beta {beta}: {e64}");
            let comp64 = soft_argmax_composite(&t64, beta).unwrap();
            assert!(max_abs_diff(&flat(&comp64), &want) < 1e-9);

            let t32 = t64.to_dtype(DType::F32).unwrap();
            let got32 = soft_argmax(&t32, beta).unwrap();
            assert_eq!(got32.dtype(), DType::F32);
            // Reference on the f32-rounded values.
            let v32 = flat(&t32);
            let want32 = reference(&v32, b, k, h, w, beta);
            let e32 = max_abs_diff(&flat(&got32), &want32);
            // Measured: at most 1.9e-6 px over these shapes (60x60 at beta 1e3: 1.5e-6).
            let tol = 2e-6 * (w.max(h) as f64) * (1.0 + beta * 3.0 * 1e-4);
            assert!(
                e32 < tol.max(2e-6),
                "f32 {b}x{k}x{h}x{w} beta {beta}: {e32}"
            );
            // The composite's own f32 error grows with beta: each logit beta v carries a
            // rounding error of about eps beta |v| (1.2e-3 px at 60x60, beta 1e3).
            let comp32 = soft_argmax_composite(&t32, beta).unwrap();
            let ec = max_abs_diff(&flat(&got32), &flat(&comp32));
            let tol_c = 1e-3 + 1e-7 * beta * (w.max(h) as f64);
            assert!(
                ec < tol_c,
                "fused vs composite f32 {b}x{k}x{h}x{w} beta {beta}: {ec}"
            );
        }
    }
}

#[test]
fn detailed_matches_reference() {
    let (b, k, h, w) = (2, 2, 6, 5);
    let beta = 0.7;
    let v = random_maps(7, b, k, h, w, 2.0);
    let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap();
    let out = soft_argmax_detailed(&t, beta).unwrap();
    assert_eq!(out.probabilities.dims(), &[b, k, h, w]);
    assert_eq!(out.confidence.dims(), &[b, k]);
    assert_eq!(out.spread.dims(), &[b, k, 2]);
    let probs = flat(&out.probabilities);
    let conf = flat(&out.confidence);
    let spread = flat(&out.spread);
    let pts = flat(&out.points);
    let n = h * w;
    for (mi, m) in v.chunks(n).enumerate() {
        let mx = m.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = m.iter().map(|x| (beta * (x - mx)).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|x| x / s).collect();
        let px: f64 = p.iter().enumerate().map(|(i, q)| q * (i % w) as f64).sum();
        let py: f64 = p.iter().enumerate().map(|(i, q)| q * (i / w) as f64).sum();
        let vx: f64 = p
            .iter()
            .enumerate()
            .map(|(i, q)| q * ((i % w) as f64 - px).powi(2))
            .sum();
        let vy: f64 = p
            .iter()
            .enumerate()
            .map(|(i, q)| q * ((i / w) as f64 - py).powi(2))
            .sum();
        let pk = p.iter().cloned().fold(0.0, f64::max);
        assert!(max_abs_diff(&probs[mi * n..(mi + 1) * n], &p) < 1e-12);
        assert!((conf[mi] - pk).abs() < 1e-12);
        assert!((pts[2 * mi] - px).abs() < 1e-10 && (pts[2 * mi + 1] - py).abs() < 1e-10);
        assert!(
            (spread[2 * mi] - vx).abs() < 1e-9,
            "{} vs {vx}",
            spread[2 * mi]
        );
        assert!((spread[2 * mi + 1] - vy).abs() < 1e-9);
    }
}

/// Finite-difference check of the fused backward in f64 for a random linear loss.
#[test]
fn fused_backward_matches_finite_differences() {
    let (b, k, h, w) = (2, 2, 5, 7);
    for &beta in &[0.01, 1.0, 5.0] {
        let v = random_maps(3, b, k, h, w, 1.0);
        let mut r = rng(11);
        let gw: Vec<f64> = (0..b * k * 2).map(|_| r.random_range(-1.0..1.0)).collect();
        let gwt = Tensor::from_vec(gw.clone(), (b, k, 2), &Device::Cpu).unwrap();
        let var =
            Var::from_tensor(&Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu).unwrap())
                .unwrap();
        let loss = (soft_argmax(var.as_tensor(), beta).unwrap() * &gwt)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let g = flat(grads.get(var.as_tensor()).unwrap());
        let f = |vals: &[f64]| -> f64 {
            reference(vals, b, k, h, w, beta)
                .iter()
                .zip(&gw)
                .map(|(a, c)| a * c)
                .sum()
        };
        let eps = 1e-6;
        let mut worst = 0f64;
        for i in 0..v.len() {
            let mut p = v.clone();
            p[i] += eps;
            let mut m = v.clone();
            m[i] -= eps;
            let fd = (f(&p) - f(&m)) / (2.0 * eps);
            worst = worst.max((fd - g[i]).abs());
        }
        assert!(worst < 1e-7, "beta {beta}: worst |fd - analytic| = {worst}");
        // And the composite path's autograd gradient agrees.
        let loss_c = (soft_argmax_composite(var.as_tensor(), beta).unwrap() * &gwt)
            .unwrap()
            .sum_all()
            .unwrap();
        let gc = flat(loss_c.backward().unwrap().get(var.as_tensor()).unwrap());
        assert!(max_abs_diff(&g, &gc) < 1e-10);
    }
}

#[test]
fn fused_backward_f32_matches_f64() {
    // On AVX-512, 12 and 60 wide: the period kernels (61 rows of 60: 15 periods of 4 rows
    // and a row after them); 32 wide: the forward's row kernel and the backward's period
    // kernel (a period of one row); 19 wide: the flat kernels.
    for (b, k, h, w) in [(2, 3, 16, 12), (1, 2, 61, 60), (2, 2, 5, 32), (2, 1, 6, 19)] {
        backward_f32_matches_f64(b, k, h, w);
    }
}

fn backward_f32_matches_f64(b: usize, k: usize, h: usize, w: usize) {
    let beta = 3.0;
    let v = random_maps(5, b, k, h, w, 1.0);
    let gw = Tensor::from_vec(random_maps(6, b, k, 1, 2, 1.0), (b, k, 2), &Device::Cpu).unwrap();
    let mut gs = Vec::new();
    for dt in [DType::F64, DType::F32] {
        let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let var = Var::from_tensor(&t).unwrap();
        let loss = (soft_argmax(var.as_tensor(), beta).unwrap() * gw.to_dtype(dt).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        let g = g.get(var.as_tensor()).unwrap();
        assert_eq!(g.dtype(), dt);
        assert_eq!(g.dims(), &[b, k, h, w]);
        gs.push(flat(g));
    }
    let scale = gs[0].iter().fold(0f64, |a, x| a.max(x.abs()));
    assert!(scale > 1e-3);
    assert!(
        max_abs_diff(&gs[0], &gs[1]) < 1e-5 * scale.max(1.0),
        "{b}x{k}x{h}x{w}"
    );
}

#[test]
fn invariant_to_adding_a_constant() {
    let (b, k, h, w) = (1, 3, 9, 11);
    let v = random_maps(9, b, k, h, w, 2.0);
    for dt in [DType::F32, DType::F64] {
        let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let a = flat(&soft_argmax(&t, 2.0).unwrap());
        let shifted = (&t + 100.0).unwrap();
        let c = flat(&soft_argmax(&shifted, 2.0).unwrap());
        let tol = if dt == DType::F32 { 2e-4 } else { 1e-10 };
        assert!(max_abs_diff(&a, &c) < tol, "{dt:?}");
    }
}

#[test]
fn one_hot_maps_give_their_pixel() {
    let (h, w) = (7, 10);
    let pixels = [
        (0, 0),
        (0, w - 1),
        (h - 1, 0),
        (h - 1, w - 1),
        (h / 2, w / 2),
    ];
    let k = pixels.len();
    let mut v = vec![0f32; k * h * w];
    for (i, &(y, x)) in pixels.iter().enumerate() {
        v[i * h * w + y * w + x] = 1.0;
    }
    let t = Tensor::from_vec(v, (1, k, h, w), &Device::Cpu).unwrap();
    for &beta in &[100.0, 1000.0] {
        let p = soft_argmax(&t, beta).unwrap().to_vec3::<f32>().unwrap();
        for (i, &(y, x)) in pixels.iter().enumerate() {
            assert!((p[0][i][0] - x as f32).abs() < 1e-4, "{:?} vs {x}", p[0][i]);
            assert!((p[0][i][1] - y as f32).abs() < 1e-4, "{:?} vs {y}", p[0][i]);
        }
    }
    // A flat map gives the centre.
    let flat_map = Tensor::zeros((1, 1, h, w), DType::F32, &Device::Cpu).unwrap();
    let p = soft_argmax(&flat_map, 1.0)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    assert!((p[0][0][0] - 4.5).abs() < 1e-5 && (p[0][0][1] - 3.0).abs() < 1e-5);
}

#[test]
fn extreme_logits_stay_finite() {
    // On AVX-512, 12 wide: the period kernels; 16 wide: the forward's row kernel; 17 wide:
    // the flat kernels.
    for (b, k, h, w) in [(2, 2, 12, 12), (2, 2, 12, 16), (2, 2, 12, 17)] {
        extreme_logits(b, k, h, w);
    }
}

fn extreme_logits(b: usize, k: usize, h: usize, w: usize) {
    for &beta in &[1e-3, 1.0, 1e3] {
        // |beta * map| up to 1e4.
        let v = random_maps(13, b, k, h, w, 1e4 / beta);
        for dt in [DType::F32, DType::F64] {
            let t = Tensor::from_vec(v.clone(), (b, k, h, w), &Device::Cpu)
                .unwrap()
                .to_dtype(dt)
                .unwrap();
            let var = Var::from_tensor(&t).unwrap();
            let p = soft_argmax(var.as_tensor(), beta).unwrap();
            let pv = flat(&p);
            assert!(
                pv.iter().all(|x| x.is_finite()),
                "beta {beta} {dt:?}: {pv:?}"
            );
            let edge = (h.max(w) - 1) as f64 + 1e-3;
            assert!(pv.iter().all(|&x| (-1e-3..=edge).contains(&x)));
            let want = reference(&flat(&t), b, k, h, w, beta);
            assert!(max_abs_diff(&pv, &want) < 1e-3, "beta {beta} {dt:?}");
            let g = p.sum_all().unwrap().backward().unwrap();
            let gv = flat(g.get(var.as_tensor()).unwrap());
            assert!(gv.iter().all(|x| x.is_finite()));
            let d = soft_argmax_detailed(&t, beta).unwrap();
            for x in [d.probabilities, d.confidence, d.spread] {
                assert!(flat(&x).iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[test]
fn non_contiguous_and_empty_batch() {
    let v = random_maps(21, 2, 3, 5, 6, 1.0);
    let t = Tensor::from_vec(v, (2, 3, 5, 6), &Device::Cpu).unwrap();
    let tt = t.transpose(2, 3).unwrap(); // (2, 3, 6, 5), not contiguous
    let a = flat(&soft_argmax(&tt, 2.0).unwrap());
    let c = flat(&soft_argmax(&tt.contiguous().unwrap(), 2.0).unwrap());
    assert!(max_abs_diff(&a, &c) < 1e-12);
    let empty = Tensor::zeros((0, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(soft_argmax(&empty, 1.0).unwrap().dims(), &[0, 3, 2]);
}

#[test]
fn bad_arguments_are_named_errors() {
    let dev = Device::Cpu;
    let ok = Tensor::zeros((1, 2, 3, 3), DType::F32, &dev).unwrap();
    type F = fn(&Tensor, f64) -> landmark_ssl_ops::Result<Tensor>;
    let detailed: F = |m, b| soft_argmax_detailed(m, b).map(|o| o.points);
    for (name, f) in [
        ("soft_argmax", soft_argmax as F),
        ("soft_argmax_composite", soft_argmax_composite as F),
        ("soft_argmax_detailed", detailed),
    ] {
        let msg = |t: &Tensor, beta: f64| match f(t, beta) {
            Ok(_) => panic!("{name}: expected an error"),
            Err(e) => e.to_string(),
        };
        let m = msg(&Tensor::zeros((2, 3, 3), DType::F32, &dev).unwrap(), 1.0);
        assert!(
            m.contains(name) && m.contains("maps") && m.contains("rank 4"),
            "{m}"
        );
        for shape in [(1, 0, 3, 3), (1, 2, 0, 3), (1, 2, 3, 0)] {
            let m = msg(&Tensor::zeros(shape, DType::F32, &dev).unwrap(), 1.0);
            assert!(m.contains("maps") && m.contains("K, H and W > 0"), "{m}");
        }
        let m = msg(&Tensor::zeros((1, 2, 3, 3), DType::U32, &dev).unwrap(), 1.0);
        assert!(
            m.contains("maps") && m.contains("dtype") && m.contains("U32"),
            "{m}"
        );
        for beta in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let m = msg(&ok, beta);
            assert!(m.contains("beta") && m.contains("finite and > 0"), "{m}");
        }
    }
}

/// The CUDA kernels against an f64 reference, the CPU kernel and the composite path, when a
/// GPU is present.
#[cfg(feature = "cuda")]
#[test]
fn cuda_matches_composite() {
    let Ok(dev) = Device::new_cuda(0) else {
        eprintln!("no CUDA device: cuda_matches_composite skipped");
        return;
    };
    assert!(landmark_ssl_ops::soft_argmax::has_fused_kernel(&dev));
    // Maps smaller than a thread block (256), not a multiple of it, and larger than 2^16
    // values; beta across the supported range.
    for dt in [DType::F32, DType::F64] {
        // Gradients relative to their size; points in pixels (f64: to its rounding).
        let (grad_tol, px_tol) = if dt == DType::F32 {
            (1e-4, 1e-3)
        } else {
            (1e-9, 1e-9)
        };
        for &(b, k, h, w) in &[(2, 3, 8, 8), (1, 2, 7, 9), (2, 2, 33, 47), (1, 1, 300, 257)] {
            let cpu =
                Tensor::from_vec(random_maps(17, b, k, h, w, 3.0), (b, k, h, w), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dt)
                    .unwrap();
            // The reference takes the values as rounded to `dt`.
            let values = flat(&cpu);
            let gpu = cpu.to_device(&dev).unwrap();
            let gw = Tensor::from_vec(random_maps(18, b, k, 1, 2, 1.0), (b, k, 2), &Device::Cpu)
                .unwrap()
                .to_dtype(dt)
                .unwrap();
            for beta in [1e-3, 2.5, 1e3] {
                let at = format!("{dt:?} {b}x{k}x{h}x{w} beta {beta}");
                let want = reference(&values, b, k, h, w, beta);
                let a = flat(
                    &soft_argmax(&gpu, beta)
                        .unwrap()
                        .to_device(&Device::Cpu)
                        .unwrap(),
                );
                assert!(max_abs_diff(&a, &want) < px_tol, "{at}: forward");
                // Gradients: against the CPU's fused kernel.
                let grad = |t: &Tensor| {
                    let var = Var::from_tensor(t).unwrap();
                    let p = soft_argmax(var.as_tensor(), beta).unwrap();
                    let gwd = gw.to_device(t.device()).unwrap();
                    let g = (p * gwd).unwrap().sum_all().unwrap().backward().unwrap();
                    flat(
                        &g.get(var.as_tensor())
                            .unwrap()
                            .to_device(&Device::Cpu)
                            .unwrap(),
                    )
                };
                let (gg, gc) = (grad(&gpu), grad(&cpu));
                let scale = gc.iter().fold(1e-12f64, |a, x| a.max(x.abs()));
                assert!(max_abs_diff(&gg, &gc) < grad_tol * scale, "{at}: backward");
            }
        }
        // A view that starts inside its buffer (the second batch item of two).
        let (b, k, h, w) = (2, 2, 9, 11);
        let cpu = Tensor::from_vec(random_maps(19, b, k, h, w, 2.0), (b, k, h, w), &Device::Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let want = reference(&flat(&cpu)[k * h * w..], 1, k, h, w, 2.0);
        let gpu = cpu.to_device(&dev).unwrap().narrow(0, 1, 1).unwrap();
        let a = flat(
            &soft_argmax(&gpu, 2.0)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap(),
        );
        assert!(
            max_abs_diff(&a, &want) < 1e-4,
            "{dt:?} offset view: forward"
        );
        // composite and fused agree on the device itself.
        let c = flat(
            &soft_argmax_composite(&gpu, 2.0)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap(),
        );
        assert!(max_abs_diff(&a, &c) < 1e-4, "{dt:?} offset view: composite");
    }
}
