//! The predictor's confidence and spread, against closed forms and an independent
//! computation of the soft-argmax distribution.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::inference::normalize;
use landmark_ssl_models::*;

const S: usize = 8;

/// `a` and `b` agree to `rel` relative to the larger, or to `abs`.
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs.max(rel * a.abs().max(b.abs()))
}

macro_rules! assert_close {
    ($a:expr, $b:expr, $rel:expr, $abs:expr) => {{
        let (a, b) = ($a as f64, $b as f64);
        assert!(
            close(a, b, $rel, $abs),
            "{} = {a}, {} = {b}",
            stringify!($a),
            stringify!($b)
        );
    }};
}
const BETA: f64 = 3.0;

/// One 1x1 conv to K = 1 map, linear: map = w * image + b.
fn one_conv(w: f32, b: f32) -> LandmarkModel {
    let cfg = ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(S),
        in_channels: 1,
        num_landmarks: 1,
        beta: BETA,
        convs: vec![ConvSpec::new(1, 1)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![],
    });
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    for (name, v) in vm.data().lock().unwrap().iter() {
        let val = if name.ends_with("weight") { w } else { b };
        v.set(&Tensor::full(val, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    m
}

#[test]
fn a_flat_map_has_the_uniform_distributions_figures_in_original_pixels() {
    let p = Predictor::new(one_conv(0.0, 0.0), Device::Cpu);
    // A whole image twice the input's size: one input pixel is two original pixels.
    let img = Tensor::rand(0f32, 1.0, (2 * S, 2 * S), &Device::Cpu).unwrap();
    let out = p.predict(&[img], &[Region::Whole]).unwrap();
    let conf = out[0].confidence.as_ref().unwrap();
    let spread = out[0].spread.as_ref().unwrap();
    assert_close!(conf[0], 1.0 / (S * S) as f32, 1e-5, 0.0);
    // A uniform over 0..S has variance (S^2 - 1) / 12 input pixels squared.
    let sd_input = (((S * S - 1) as f64) / 12.0).sqrt() as f32;
    for sd in spread[0] {
        assert_close!(sd, 2.0 * sd_input, 1e-4, 0.0);
    }
}

#[test]
fn confidence_and_spread_match_an_independent_softmax() {
    let (w, b) = (1.5f32, 0.2f32);
    let p = Predictor::new(one_conv(w, b), Device::Cpu);
    // An S x S image (the crop is the image itself): a bright blob near (5, 2).
    let mut px = vec![0.1f32; S * S];
    px[2 * S + 5] = 0.9;
    px[2 * S + 4] = 0.6;
    px[3 * S + 5] = 0.5;
    let out = p.predict_pixels(&px, S, S, Region::Whole).unwrap();
    // The same by hand: normalise the crop, map = w x + b, softmax(beta map).
    let mut x = px.clone();
    normalize(&mut x);
    let logits: Vec<f64> = x.iter().map(|&v| BETA * (w * v + b) as f64).collect();
    let mx = logits.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - mx).exp()).collect();
    let z: f64 = e.iter().sum();
    let prob: Vec<f64> = e.iter().map(|v| v / z).collect();
    let (mut ex, mut ey) = (0.0, 0.0);
    for (i, q) in prob.iter().enumerate() {
        ex += q * (i % S) as f64;
        ey += q * (i / S) as f64;
    }
    let (mut vx, mut vy) = (0.0, 0.0);
    for (i, q) in prob.iter().enumerate() {
        vx += q * ((i % S) as f64 - ex).powi(2);
        vy += q * ((i / S) as f64 - ey).powi(2);
    }
    let peak = prob.iter().cloned().fold(0.0, f64::max);
    assert_close!(out.landmarks[0][0] as f64, ex, 0.0, 1e-3);
    assert_close!(out.landmarks[0][1] as f64, ey, 0.0, 1e-3);
    let conf = out.confidence.unwrap();
    let spread = out.spread.unwrap();
    assert_close!(conf[0] as f64, peak, 1e-4, 0.0);
    assert!(peak > 0.5, "the blob should dominate: {peak}");
    assert_close!(spread[0][0] as f64, vx.sqrt(), 1e-3, 0.0);
    assert_close!(spread[0][1] as f64, vy.sqrt(), 1e-3, 0.0);
}

#[test]
fn comm_mt_has_no_confidence() {
    let cfg = preset("commmt-blocks").unwrap();
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let (h, w) = cfg.input_size();
    let img = Tensor::rand(0f32, 1.0, (h, w), &Device::Cpu).unwrap();
    let out = Predictor::new(m, Device::Cpu)
        .predict(&[img], &[Region::Whole])
        .unwrap();
    assert!(out[0].confidence.is_none() && out[0].spread.is_none());
}
