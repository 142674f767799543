//! Tests of the ELT cost: equivariant and constant models, masks, gradients.

use approx::assert_relative_eq;
use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_losses::{Elt, EltConfig, Error};
use landmark_ssl_ops::{soft_argmax, Affine2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

fn dev() -> Device {
    Device::Cpu
}

/// Images (B, K, H, W) with one Gaussian blob (peak 1, std `sigma` px) per channel.
fn blob_images(centres: &[Vec<(f64, f64)>], h: usize, w: usize, sigma: f64) -> Tensor {
    let (b, k) = (centres.len(), centres[0].len());
    let mut v = vec![0f32; b * k * h * w];
    for (bi, cs) in centres.iter().enumerate() {
        for (ki, &(cx, cy)) in cs.iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    let r2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                    v[((bi * k + ki) * h + y) * w + x] = (-r2 / (2.0 * sigma * sigma)).exp() as f32;
                }
            }
        }
    }
    Tensor::from_vec(v, (b, k, h, w), &dev()).unwrap()
}

fn test_centres() -> Vec<Vec<(f64, f64)>> {
    vec![
        vec![(20.0, 22.0), (27.3, 18.6), (17.5, 28.2)],
        vec![(24.0, 24.0), (19.2, 29.9), (29.0, 21.4)],
    ]
}

#[test]
fn equivariant_model_has_near_zero_cost() {
    let (h, w) = (48, 48);
    let images = blob_images(&test_centres(), h, w, 4.0);
    let beta = 20.0;
    let locate = |x: &Tensor| -> candle_core::Result<Tensor> { Ok(soft_argmax(x, beta)?) };
    let landmarks = locate(&images).unwrap();
    // The model is right on the original images.
    let pts = landmarks.to_vec3::<f32>().unwrap();
    for (bi, cs) in test_centres().iter().enumerate() {
        for (ki, &(cx, cy)) in cs.iter().enumerate() {
            assert!(
                (pts[bi][ki][0] as f64 - cx).abs() < 0.05
                    && (pts[bi][ki][1] as f64 - cy).abs() < 0.05
            );
        }
    }
    let elt = Elt::new(EltConfig {
        transforms_per_image: 3,
        ..Default::default()
    })
    .unwrap();
    let mask = Tensor::ones(2, DType::F32, &dev()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let out = elt
        .loss(locate, &images, &landmarks, &mask, &mut rng)
        .unwrap();
    assert_eq!(
        (
            out.n_images,
            out.transforms.len(),
            out.n_terms,
            out.n_dropped
        ),
        (2, 6, 18, 0)
    );
    let v = out.loss.to_scalar::<f32>().unwrap();
    assert!(v < 0.02, "ELT cost of an equivariant model: {v} px^2");
    // The transforms were not trivial: a constant model gets a large cost on them.
    let idx: Vec<u32> = out.sample_indices.iter().map(|&i| i as u32).collect();
    let constant = landmarks
        .detach()
        .index_select(&Tensor::new(idx.as_slice(), &dev()).unwrap(), 0)
        .unwrap();
    let out_c = elt
        .loss_with(
            |_x: &Tensor| Ok(constant.clone()),
            &images,
            &landmarks,
            &mask,
            &out.transforms,
        )
        .unwrap();
    assert!(out_c.loss.to_scalar::<f32>().unwrap() > 5.0);
}

/// Mean over (transform, landmark) of ||A c - c||^2, on the host.
fn host_constant_cost(transforms: &[Affine2], c: &[(f64, f64)]) -> f64 {
    let mut s = 0.0;
    for t in transforms {
        for &(x, y) in c {
            let (u, v) = t.apply(x, y);
            s += (u - x).powi(2) + (v - y).powi(2);
        }
    }
    s / (transforms.len() * c.len()) as f64
}

#[test]
fn constant_model_cost_grows_with_transform_magnitude() {
    let (h, w) = (40, 40);
    let b = 4;
    let images = Tensor::zeros((b, 1, h, w), DType::F32, &dev()).unwrap();
    let c = [(12.0f64, 15.0f64), (25.0, 22.0)];
    let lm: Vec<f32> = (0..b)
        .flat_map(|_| c.iter().flat_map(|&(x, y)| [x as f32, y as f32]))
        .collect();
    let landmarks = Tensor::from_vec(lm, (b, 2, 2), &dev()).unwrap();
    let mask = Tensor::ones(b, DType::F32, &dev()).unwrap();
    let mut costs = Vec::new();
    for s in [0.0, 0.25, 0.5, 1.0] {
        let cfg = EltConfig {
            max_rotation_deg: 20.0 * s,
            min_scale: 1.0 - 0.1 * s,
            max_scale: 1.0 + 0.1 * s,
            max_translation: 0.1 * s,
            transforms_per_image: 4,
            ..Default::default()
        };
        let elt = Elt::new(cfg).unwrap();
        let lmc = landmarks.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let out = elt
            .loss(
                move |_x: &Tensor| lmc.clone().repeat((4, 1, 1)),
                &images,
                &landmarks,
                &mask,
                &mut rng,
            )
            .unwrap();
        assert_eq!(out.n_terms, 32);
        let v = out.loss.to_scalar::<f32>().unwrap() as f64;
        assert_relative_eq!(
            v,
            host_constant_cost(&out.transforms, &c),
            max_relative = 1e-4,
            epsilon = 1e-6
        );
        costs.push(v);
    }
    assert_eq!(costs[0], 0.0);
    assert!(costs.windows(2).all(|p| p[1] > p[0]), "{costs:?}");
    assert!(costs[3] > 4.0, "{costs:?}");
}

#[test]
fn points_moved_out_of_the_image_are_dropped() {
    let (h, w) = (20, 30);
    let images = Tensor::zeros((1, 1, h, w), DType::F32, &dev()).unwrap();
    let landmarks = Tensor::new(&[[[1f32, 5.], [15., 10.], [28., 19.]]], &dev()).unwrap();
    let located = Tensor::new(&[[[0f32, 0.], [10., 10.], [0., 0.]]], &dev()).unwrap();
    let mask = Tensor::ones(1, DType::F32, &dev()).unwrap();
    let elt = Elt::new(EltConfig::default()).unwrap();
    // Shift left by 2: x = 1 -> -1 is outside (< -0.5); 15 -> 13 and 28 -> 26 stay.
    let t = [Affine2::translation(-2.0, 0.0)];
    let out = elt
        .loss_with(
            |_x: &Tensor| Ok(located.clone()),
            &images,
            &landmarks,
            &mask,
            &t,
        )
        .unwrap();
    assert_eq!((out.n_terms, out.n_dropped), (2, 1));
    let want = ((13.0f64 - 10.0).powi(2) + 0.0 + 26f64.powi(2) + 19f64.powi(2)) / 2.0;
    assert_relative_eq!(
        out.loss.to_scalar::<f32>().unwrap() as f64,
        want,
        max_relative = 1e-6
    );
    // A margin of 1 px also drops y = 19 (> 20 - 0.5 - 1).
    let elt = Elt::new(EltConfig {
        margin: 1.0,
        ..Default::default()
    })
    .unwrap();
    let out = elt
        .loss_with(
            |_x: &Tensor| Ok(located.clone()),
            &images,
            &landmarks,
            &mask,
            &t,
        )
        .unwrap();
    assert_eq!((out.n_terms, out.n_dropped), (1, 2));
    assert_relative_eq!(
        out.loss.to_scalar::<f32>().unwrap(),
        9.0,
        max_relative = 1e-6
    );
}

#[test]
fn sample_mask_selects_images_and_repeats_transforms() {
    let (h, w) = (16, 16);
    let images = Tensor::zeros((3, 1, h, w), DType::F32, &dev()).unwrap();
    let landmarks = Tensor::new(&[[[5f32, 5.]], [[6., 6.]], [[7., 7.]]], &dev()).unwrap();
    let elt = Elt::new(EltConfig {
        transforms_per_image: 2,
        ..Default::default()
    })
    .unwrap();
    let seen = RefCell::new(Vec::new());
    let locate = |x: &Tensor| -> candle_core::Result<Tensor> {
        seen.borrow_mut().push(x.dims().to_vec());
        Tensor::new(&[[[8f32, 8.]]], &dev())?.repeat((x.dim(0)?, 1, 1))
    };
    let mask = Tensor::new(&[1f32, 0., 1.], &dev()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let out = elt
        .loss(locate, &images, &landmarks, &mask, &mut rng)
        .unwrap();
    assert_eq!(seen.borrow().as_slice(), &[vec![4, 1, h, w]]);
    assert_eq!(out.sample_indices, vec![0, 0, 2, 2]);
    assert_eq!((out.n_images, out.n_terms), (2, 4));
    let mut want = 0.0;
    for (t, &b) in out.transforms.iter().zip(&out.sample_indices) {
        let c = 5.0 + b as f64;
        let (u, v) = t.apply(c, c);
        want += (u - 8.0).powi(2) + (v - 8.0).powi(2);
    }
    assert_relative_eq!(
        out.loss.to_scalar::<f32>().unwrap() as f64,
        want / 4.0,
        max_relative = 1e-5
    );
    // No selected image: 0 and `locate` is not called.
    seen.borrow_mut().clear();
    let zero = Tensor::zeros(3, DType::F32, &dev()).unwrap();
    let out = elt
        .loss(locate, &images, &landmarks, &zero, &mut rng)
        .unwrap();
    assert_eq!(
        (out.n_terms, out.loss.to_scalar::<f32>().unwrap()),
        (0, 0.0)
    );
    assert!(seen.borrow().is_empty());
}

/// A small parametric model, f64: `L(x) = soft_argmax(s * x, beta) + o`, params = [s, o..].
fn param_model(p: &Tensor, x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let s = p.narrow(0, 0, 1)?.reshape((1, 1, 1, 1))?;
    let o = p.narrow(0, 1, 2 * k)?.reshape((1, k, 2))?;
    let l = soft_argmax(&x.broadcast_mul(&s)?, 1.0)?;
    l.broadcast_add(&o)
}

fn elt_loss_of(
    p_model: &Tensor,
    p_target: &Tensor,
    images: &Tensor,
    t: &[Affine2],
    detach: bool,
) -> Tensor {
    let k = images.dim(1).unwrap();
    let elt = Elt::new(EltConfig {
        detach_target: detach,
        ..Default::default()
    })
    .unwrap();
    let landmarks = param_model(p_target, images, k).unwrap();
    let mask = Tensor::ones(images.dim(0).unwrap(), DType::F64, &dev()).unwrap();
    elt.loss_with(
        |x: &Tensor| param_model(p_model, x, k),
        images,
        &landmarks,
        &mask,
        t,
    )
    .unwrap()
    .loss
}

#[test]
fn gradient_flows_through_both_branches_unless_detached() {
    let (h, w) = (24, 24);
    let centres = vec![
        vec![(9.0, 11.0), (14.5, 13.0)],
        vec![(12.0, 9.5), (10.0, 15.0)],
    ];
    let images = blob_images(&centres, h, w, 3.0)
        .to_dtype(DType::F64)
        .unwrap();
    let t = [
        Affine2::from_params(0.3, 1.1, 1.5, -1.0, (11.5, 11.5)),
        Affine2::from_params(-0.2, 0.9, -1.0, 2.0, (11.5, 11.5)),
    ];
    let p0 = vec![4.0f64, 0.3, -0.2, 0.5, 0.1];
    for detach in [false, true] {
        let var = Var::from_vec(p0.clone(), 5, &dev()).unwrap();
        let loss = elt_loss_of(var.as_tensor(), var.as_tensor(), &images, &t, detach);
        let g = loss
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // Finite differences; with `detach` the target's parameters stay at p0.
        let h_ = 1e-5;
        let p0t = Tensor::from_vec(p0.clone(), 5, &dev()).unwrap();
        for i in 0..5 {
            let f = |d: f64| {
                let mut p = p0.clone();
                p[i] += d;
                let pt = Tensor::from_vec(p, 5, &dev()).unwrap();
                let target = if detach { p0t.clone() } else { pt.clone() };
                elt_loss_of(&pt, &target, &images, &t, detach)
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let num = (f(h_) - f(-h_)) / (2.0 * h_);
            assert!(
                (num - g[i]).abs() < 1e-5 * (1.0 + num.abs()),
                "detach={detach} param {i}: analytic {} vs numeric {num}",
                g[i]
            );
        }
        if !detach {
            // The offset gradient differs from the detached one: the target branch contributes.
            let var2 = Var::from_vec(p0.clone(), 5, &dev()).unwrap();
            let l2 = elt_loss_of(var2.as_tensor(), var2.as_tensor(), &images, &t, true);
            let g2 = l2
                .backward()
                .unwrap()
                .get(var2.as_tensor())
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let diff: f64 = g.iter().zip(&g2).map(|(a, b)| (a - b).abs()).sum();
            assert!(diff > 1e-3, "{g:?} vs {g2:?}");
        }
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let images = Tensor::zeros((2, 1, 8, 8), DType::F32, &dev()).unwrap();
    let landmarks = Tensor::zeros((2, 3, 2), DType::F32, &dev()).unwrap();
    let mask = Tensor::ones(2, DType::F32, &dev()).unwrap();
    let elt = Elt::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let e = elt
        .loss(
            |x: &Tensor| Tensor::zeros((x.dim(0)?, 4, 2), DType::F32, &dev()),
            &images,
            &landmarks,
            &mask,
            &mut rng,
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Shape { arg, .. } if arg.contains("locate")),
        "{e}"
    );
    assert!(e.to_string().contains("[2, 4, 2]"), "{e}");
    let ok = |x: &Tensor| Tensor::zeros((x.dim(0)?, 3, 2), DType::F32, &dev());
    let e = elt
        .loss(
            ok,
            &images,
            &landmarks.narrow(0, 0, 1).unwrap(),
            &mask,
            &mut rng,
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Shape { arg, .. } if arg == "landmarks"),
        "{e}"
    );
    let e = elt
        .loss(
            ok,
            &images,
            &landmarks,
            &Tensor::ones(3, DType::F32, &dev()).unwrap(),
            &mut rng,
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Shape { arg, .. } if arg == "sample_mask"),
        "{e}"
    );
    let e = elt
        .loss_with(ok, &images, &landmarks, &mask, &[Affine2::identity()])
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::InvalidArgument {
                field: "transforms",
                ..
            }
        ),
        "{e}"
    );
    let failing = |_x: &Tensor| -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg("model failed".into()))
    };
    let e = elt
        .loss(failing, &images, &landmarks, &mask, &mut rng)
        .unwrap_err();
    assert!(e.to_string().contains("model failed"), "{e}");
    assert!(Elt::new(EltConfig {
        min_scale: 1.2,
        max_scale: 1.1,
        ..Default::default()
    })
    .is_err());
    assert!(Elt::new(EltConfig {
        transforms_per_image: 0,
        ..Default::default()
    })
    .is_err());
    assert!(Elt::new(EltConfig {
        max_rotation_deg: f64::NAN,
        ..Default::default()
    })
    .is_err());
}

#[test]
fn sampled_transforms_respect_the_ranges() {
    let cfg = EltConfig::default();
    let elt = Elt::new(cfg.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (h, w) = (60, 80);
    let ts = elt.sample_transforms(500, h, w, &mut rng);
    let centre = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (mut max_angle, mut max_tx) = (0f64, 0f64);
    for t in &ts {
        let [a, b, _, c, d, _] = t.m;
        let scale = (a * d - b * c).sqrt();
        assert!((0.9 - 1e-9..=1.1 + 1e-9).contains(&scale), "{scale}");
        let angle = c.atan2(a).to_degrees().abs();
        assert!(angle <= 20.0 + 1e-9);
        let (u, v) = t.apply(centre.0, centre.1);
        assert!(
            (u - centre.0).abs() <= 0.1 * w as f64 + 1e-9
                && (v - centre.1).abs() <= 0.1 * h as f64 + 1e-9
        );
        max_angle = max_angle.max(angle);
        max_tx = max_tx.max((u - centre.0).abs());
    }
    // The ranges are used, not just respected.
    assert!(max_angle > 18.0 && max_tx > 7.0, "{max_angle} {max_tx}");
}
