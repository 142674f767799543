//! ELT on colour images: each channel's warp fills with its own pad value and is normalised
//! again on its own, as the single-plane warps of that channel are.

use std::cell::RefCell;

use approx::assert_abs_diff_eq;
use candle_core::{DType, Device, Tensor};
use landmark_ssl_losses::{Elt, EltImages, Error};
use landmark_ssl_ops::Affine2;

const B: usize = 2;
const C: usize = 3;
const S: usize = 24;

/// (B, C, S, S) images whose channels differ in offset and pattern.
fn images() -> Tensor {
    let v: Vec<f32> = (0..B * C * S * S)
        .map(|i| {
            let (b, ch, y, x) = (i / (C * S * S), (i / (S * S)) % C, (i / S) % S, i % S);
            let wave = ((x * (ch + 1) + y * (b + 2)) % 7) as f32 / 7.0;
            ch as f32 * 0.5 - 0.7 + wave
        })
        .collect();
    Tensor::from_vec(v, (B, C, S, S), &Device::Cpu).unwrap()
}

/// One transform per image that shrinks the image about its centre (so every corner of
/// the output lies outside the source) and turns it a little.
fn transforms() -> Vec<Affine2> {
    let centre = ((S as f64 - 1.0) / 2.0, (S as f64 - 1.0) / 2.0);
    vec![
        Affine2::from_params(0.2, 0.7, 0.5, -0.3, centre),
        Affine2::from_params(-0.3, 0.75, -0.4, 0.2, centre),
    ]
}

/// Runs ELT with `transforms()` and returns the warped images `locate` saw.
fn warped(images: &Tensor, pad_values: Option<&Tensor>, renormalize: bool) -> Tensor {
    let seen = RefCell::new(None);
    let locate = |x: &Tensor| -> candle_core::Result<Tensor> {
        *seen.borrow_mut() = Some(x.clone());
        Tensor::zeros((x.dim(0)?, 1, 2), DType::F32, x.device())
    };
    let landmarks = Tensor::zeros((B, 1, 2), DType::F32, &Device::Cpu).unwrap();
    let mask = Tensor::ones(B, DType::F32, &Device::Cpu).unwrap();
    Elt::default()
        .loss_with(
            locate,
            EltImages {
                images,
                pad_values,
                renormalize,
            },
            &landmarks,
            &mask,
            &transforms(),
        )
        .unwrap();
    seen.into_inner().expect("locate was called")
}

fn pads() -> Tensor {
    Tensor::new(&[[-1.5f32, 0.25, 2.0], [0.5, -0.75, 1.25]], &Device::Cpu).unwrap()
}

#[test]
fn each_channel_is_filled_with_its_pad_value() {
    let out = warped(&images(), Some(&pads()), false);
    assert_eq!(out.dims(), &[B, C, S, S]);
    let px = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let p = pads().to_vec2::<f32>().unwrap();
    for (b, pads) in p.iter().enumerate() {
        for (ch, &pad) in pads.iter().enumerate() {
            let base = (b * C + ch) * S * S;
            for (x, y) in [(0, 0), (S - 1, 0), (0, S - 1), (S - 1, S - 1)] {
                assert_eq!(px[base + y * S + x], pad, "image {b} channel {ch}");
            }
            // The centre is the image's, not the pad's.
            assert_ne!(px[base + (S / 2) * S + S / 2], pad);
        }
    }
}

#[test]
fn colour_warps_match_single_plane_warps() {
    let imgs = images();
    let p = pads();
    for renormalize in [false, true] {
        let colour = warped(&imgs, Some(&p), renormalize);
        for ch in 0..C {
            let plane = imgs.narrow(1, ch, 1).unwrap().contiguous().unwrap();
            // (B,) pad values: one grey plane, the contract from before colour.
            let pad = p.narrow(1, ch, 1).unwrap().squeeze(1).unwrap();
            let single = warped(&plane, Some(&pad), renormalize);
            let a = colour
                .narrow(1, ch, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = single.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert_abs_diff_eq!(*x, *y, epsilon = 1e-6);
            }
            if renormalize {
                // Each plane of each image: mean 0, standard deviation 1.
                for plane in a.chunks(S * S) {
                    let n = plane.len() as f64;
                    let m = plane.iter().map(|&v| v as f64).sum::<f64>() / n;
                    let var = plane.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
                    assert_abs_diff_eq!(m, 0.0, epsilon = 1e-6);
                    assert_abs_diff_eq!(var.sqrt(), 1.0, epsilon = 1e-5);
                }
            }
        }
    }
}

#[test]
fn one_pad_value_per_image_fills_every_channel() {
    let pad = Tensor::new(&[-1.0f32, 3.0], &Device::Cpu).unwrap();
    let out = warped(&images(), Some(&pad), false);
    let px = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for b in 0..B {
        for ch in 0..C {
            assert_eq!(px[(b * C + ch) * S * S], [-1.0, 3.0][b]);
        }
    }
}

#[test]
fn pad_values_of_another_shape_are_refused() {
    let imgs = images();
    let landmarks = Tensor::zeros((B, 1, 2), DType::F32, &Device::Cpu).unwrap();
    let mask = Tensor::ones(B, DType::F32, &Device::Cpu).unwrap();
    let locate = |x: &Tensor| Tensor::zeros((x.dim(0)?, 1, 2), DType::F32, x.device());
    for bad in [(B, 2), (B + 1, C)] {
        let p = Tensor::zeros(bad, DType::F32, &Device::Cpu).unwrap();
        let e = Elt::default()
            .loss_with(
                locate,
                EltImages {
                    images: &imgs,
                    pad_values: Some(&p),
                    renormalize: true,
                },
                &landmarks,
                &mask,
                &transforms(),
            )
            .unwrap_err();
        assert!(
            matches!(&e, Error::Shape { arg, .. } if arg == "pad_values"),
            "{e}"
        );
    }
}
