//! ELT's contract on real data: warping a prepared image inside ELT gives the image the
//! data pipeline would have prepared from the warped original (black outside the frame,
//! then normalised), so a locator that is equivariant on real images has no ELT cost.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use landmark_ssl_data::{self as data, Batch, Jitter, Preprocess};
use landmark_ssl_losses::{Elt, EltConfig, EltImages};
use landmark_ssl_ops::{affine_to_tensor, normalize_images, warp_images, Affine2};

/// One Blocks image (60x60), prepared as training prepares it, and its raw pixels in [0, 1].
fn blocks_batch() -> (Batch, Tensor) {
    let sample = data::blocks::render(7, 6.0, 0.4, [27.0, 31.0]);
    let data::ImageSource::Memory(img) = &sample.image else {
        panic!("Blocks images are in memory")
    };
    let raw: Vec<f32> = img.pixels.iter().map(|&v| v as f32 / 255.0).collect();
    let raw = Tensor::from_vec(raw, (1, 1, 60, 60), &Device::Cpu).unwrap();
    let p = data::prepare(
        &sample,
        0,
        &data::blocks::meta(),
        &Preprocess::whole(60),
        &Jitter::none(),
        None,
    )
    .unwrap();
    (Batch::from_samples(&[&p], &Device::Cpu).unwrap(), raw)
}

/// A transform that brings outside pixels into the frame (rotation, scale and a shift).
fn transforms() -> Vec<Affine2> {
    vec![Affine2::from_params(0.35, 0.9, 6.0, -4.0, (29.5, 29.5))]
}

/// The warped image that ELT hands to the model, for the first transform.
fn warped_by_elt(images: EltImages) -> Tensor {
    let seen = RefCell::new(None);
    let locate = |x: &Tensor| -> candle_core::Result<Tensor> {
        *seen.borrow_mut() = Some(x.clone());
        Tensor::zeros((x.dim(0)?, 5, 2), x.dtype(), x.device())
    };
    let landmarks = Tensor::zeros((1, 5, 2), DType::F32, &Device::Cpu).unwrap();
    let mask = Tensor::ones(1, DType::F32, &Device::Cpu).unwrap();
    Elt::default()
        .loss_with(locate, images, &landmarks, &mask, &transforms())
        .unwrap();
    seen.into_inner().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn elt_warps_as_the_pipeline_prepares() {
    let (batch, raw) = blocks_batch();
    assert!(batch.normalized);
    // Black has its normalised value in the prepared image (the Blocks background); one
    // value per image and channel, (B, C) = (1, 1) for grey Blocks.
    assert_eq!(batch.pad_values.dims(), &[1, 1]);
    let pad = batch.pad_values.to_vec2::<f32>().unwrap()[0][0];
    let img = batch
        .images
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        pad < -0.1 && (img[0] - pad).abs() < 1e-5,
        "pad {pad}, corner {}",
        img[0]
    );

    let mats = affine_to_tensor(&transforms(), &Device::Cpu).unwrap();
    let expected = normalize_images(&warp_images(&raw, &mats, 60, 60).unwrap()).unwrap();
    let black = EltImages {
        images: &batch.images,
        pad_values: Some(&batch.pad_values),
        renormalize: batch.normalized,
    };
    let got = warped_by_elt(black);
    let d = max_abs_diff(&got, &expected);
    assert!(d < 1e-4, "ELT's warp differs from the pipeline's by {d}");
    // Filling the normalised image with 0 instead leaves a brighter wedge.
    let zero = warped_by_elt(EltImages::from(&batch.images));
    assert!(max_abs_diff(&zero, &expected) > 0.2);
}

/// The centre of brightness above the image's darkest value: equivariant on real images
/// whose warp keeps the whole figure, if the warp fills with the image's own black.
fn centre_of_brightness(x: &Tensor) -> candle_core::Result<Tensor> {
    let (m, _, h, w) = x.dims4()?;
    let flat = x.flatten_from(1)?;
    let weight = flat.broadcast_sub(&flat.min_keepdim(1)?)?;
    let xs: Vec<f32> = (0..h * w).map(|i| (i % w) as f32).collect();
    let ys: Vec<f32> = (0..h * w).map(|i| (i / w) as f32).collect();
    let xs = Tensor::from_vec(xs, (1, h * w), x.device())?;
    let ys = Tensor::from_vec(ys, (1, h * w), x.device())?;
    let total = weight.sum_keepdim(1)?;
    let cx = weight
        .broadcast_mul(&xs)?
        .sum_keepdim(1)?
        .broadcast_div(&total)?;
    let cy = weight
        .broadcast_mul(&ys)?
        .sum_keepdim(1)?
        .broadcast_div(&total)?;
    Tensor::cat(&[cx, cy], 1)?.reshape((m, 1, 2))
}

#[test]
fn an_equivariant_locator_has_no_elt_cost_with_black_fill() {
    let (batch, _) = blocks_batch();
    // Small transforms that keep the whole figure inside the frame.
    let c = (29.5, 29.5);
    let ts = vec![Affine2::from_params(0.17, 1.04, 2.0, -1.5, c)];
    let landmarks = centre_of_brightness(&batch.images).unwrap();
    let mask = Tensor::ones(1, DType::F32, &Device::Cpu).unwrap();
    let elt = Elt::new(EltConfig::default()).unwrap();
    let black = EltImages {
        images: &batch.images,
        pad_values: Some(&batch.pad_values),
        renormalize: true,
    };
    let cost = |imgs: EltImages| -> f32 {
        elt.loss_with(centre_of_brightness, imgs, &landmarks, &mask, &ts)
            .unwrap()
            .loss
            .to_scalar::<f32>()
            .unwrap()
    };
    let with_black = cost(black);
    let with_zero = cost(EltImages::from(&batch.images));
    assert!(with_black < 0.01, "black fill: {with_black} px^2");
    assert!(with_zero > 0.1, "zero fill: {with_zero} px^2");
}
