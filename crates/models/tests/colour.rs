//! Colour models (`in_channels`): parameter counts, the first convolution reading every
//! channel, the predictor's grey / colour conversions, and checkpoints that record the
//! channel count (and refuse a first convolution stored for another).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::checkpoint::{read_checkpoint_info, FORMAT};
use landmark_ssl_models::inference::{normalize, LUMA_WEIGHTS};
use landmark_ssl_models::*;
use serde_json::Value;

fn seq() -> ModelConfig {
    ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize {
            height: 12,
            width: 10,
        },
        in_channels: 1,
        num_landmarks: 3,
        beta: 1.0,
        convs: vec![ConvSpec::new(3, 4), ConvSpec::new(1, 3)],
        map_negative_slope: 0.0,
        coord_scale: CoordScale::Unit,
        heads: vec![HeadConfig::class("a", 4, &[5], 0.25)],
    })
}

fn comm() -> ModelConfig {
    ModelConfig::CommMt(CommMtConfig {
        input_size: InputSize {
            height: 12,
            width: 10,
        },
        in_channels: 1,
        num_landmarks: 3,
        // A pool first: the first conv is `trunk.1`.
        trunk: vec![
            LayerSpec::Pool,
            LayerSpec::Conv {
                kernel: 3,
                channels: 4,
            },
            LayerSpec::Pool,
        ],
        shared_fc: vec![16],
        dropout: 0.5,
        coord_scale: CoordScale::Unit,
        heads: vec![HeadConfig::real("r", 2, &[], 0.0)],
    })
}

fn heat() -> ModelConfig {
    ModelConfig::HeatmapMt(HeatmapMtConfig {
        input_size: InputSize {
            height: 12,
            width: 10,
        },
        in_channels: 1,
        num_landmarks: 3,
        beta: 1.0,
        convs: vec![ConvSpec::new(5, 4), ConvSpec::new(1, 3)],
        branch: vec![
            LayerSpec::Pool,
            LayerSpec::Conv {
                kernel: 3,
                channels: 2,
            },
        ],
        heads: vec![HeadConfig::class("c", 4, &[], 0.0)],
        landmark_kind: LandmarkKind::SoftArgmax,
        readout: Readout::HardArgmax,
        map_negative_slope: 1.0,
    })
}

fn rcn() -> ModelConfig {
    ModelConfig::Rcn(RcnConfig {
        input_size: InputSize::square(12),
        in_channels: 1,
        num_landmarks: 2,
        beta: 1.0,
        channels: 3,
        levels: 2,
        down_kernels: vec![5, 3, 1],
        up_kernels: vec![3, 3],
        down_convs: 2,
        up_convs: 1,
        output_kernel: 1,
        landmark_kind: LandmarkKind::SoftArgmax,
        readout: Readout::HardArgmax,
        coord_scale: CoordScale::Pixels,
        heads: vec![HeadConfig::real("pose", 3, &[4], 0.25)],
    })
}

/// Every family, with the name, output channels and kernel of its first convolution.
fn families() -> Vec<(ModelConfig, &'static str, usize, usize)> {
    vec![
        (seq(), "convs.0.weight", 4, 3),
        (comm(), "trunk.1.weight", 4, 3),
        (heat(), "convs.0.weight", 4, 5),
        (rcn(), "down.0.0.weight", 3, 5),
    ]
}

fn build(cfg: &ModelConfig) -> (LandmarkModel, VarMap) {
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (m, vm)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn every_family_grows_by_exactly_the_first_convs_extra_weights() {
    for (grey, first, out, k) in families() {
        let colour = grey.clone().with_in_channels(3);
        assert_eq!(grey.in_channels(), 1);
        assert_eq!(colour.in_channels(), 3);
        let (p1, p3) = (
            config_param_count(&grey).unwrap(),
            config_param_count(&colour).unwrap(),
        );
        assert_eq!(p3, p1 + k * k * out * 2, "{}", grey.family());
        // The built models hold what the configs say.
        let (m1, vm1) = build(&grey);
        let (m3, vm3) = build(&colour);
        assert_eq!(param_count(&vm1), p1);
        assert_eq!(param_count(&vm3), p3);
        assert_eq!(
            vm3.data().lock().unwrap()[first].dims(),
            &[out, 3, k, k],
            "{}",
            grey.family()
        );
        // Only the first convolution differs.
        let (s1, s3) = (
            grey.weight_shapes().unwrap(),
            colour.weight_shapes().unwrap(),
        );
        for (name, shape) in &s1 {
            if name != first {
                assert_eq!(&s3[name], shape, "{name}");
            }
        }
        let (h, w) = grey.input_size();
        let x3 = Tensor::randn(0f32, 1.0, (2, 3, h, w), &Device::Cpu).unwrap();
        let out3 = m3.forward(&x3).unwrap();
        assert_eq!(out3.landmarks.dims(), &[2, grey.num_landmarks(), 2]);
        // Images of the other channel count are refused, naming the expected C.
        let x1 = Tensor::randn(0f32, 1.0, (2, 1, h, w), &Device::Cpu).unwrap();
        let e = m3.forward(&x1).unwrap_err().to_string();
        assert!(e.contains("C = 3") && e.contains("[2, 1, "), "{e}");
        let e = m1.forward(&x3).unwrap_err().to_string();
        assert!(e.contains("C = 1") && e.contains("[2, 3, "), "{e}");
    }
}

#[test]
fn presets_are_grey_and_grow_only_in_their_first_conv() {
    for name in PRESET_NAMES {
        let grey = preset(name).unwrap();
        assert_eq!(grey.in_channels(), 1, "{name}");
        let colour = grey.clone().with_in_channels(3);
        colour.validate().unwrap();
        let shapes = grey.weight_shapes().unwrap();
        let first = ["convs.0.weight", "trunk.0.weight", "down.0.0.weight"]
            .into_iter()
            .find(|n| shapes.contains_key(*n))
            .unwrap();
        let s = &shapes[first];
        assert_eq!(s[1], 1, "{name}");
        let extra = 2 * s[0] * s[2] * s[3];
        assert_eq!(
            config_param_count(&colour).unwrap(),
            config_param_count(&grey).unwrap() + extra,
            "{name}"
        );
    }
}

/// Copies the weights of `from` (a 3-channel model) into `to` (the same config with 1
/// channel), the first convolution's weight summed over its input channels.
fn fold_channels(from: &VarMap, to: &VarMap, first: &str) {
    let src = from.data().lock().unwrap();
    let dst = to.data().lock().unwrap();
    assert_eq!(src.len(), dst.len());
    for (name, var) in dst.iter() {
        let t = src[name].as_tensor();
        let t = if name == first {
            t.sum_keepdim(1).unwrap()
        } else {
            t.clone()
        };
        var.set(&t).unwrap();
    }
}

#[test]
fn the_first_conv_reads_every_channel() {
    // On three equal planes, a 3-channel conv is the 1-channel conv whose weight is the sum
    // of its three: an independent check that every channel is read with its own weights.
    for (grey, first, _, _) in families() {
        let colour = grey.clone().with_in_channels(3);
        let (m3, vm3) = build(&colour);
        let (m1, vm1) = build(&grey);
        fold_channels(&vm3, &vm1, first);
        let (h, w) = grey.input_size();
        let x1 = Tensor::randn(0f32, 1.0, (2, 1, h, w), &Device::Cpu).unwrap();
        let x3 = Tensor::cat(&[&x1, &x1, &x1], 1).unwrap();
        let (o1, o3) = (m1.forward(&x1).unwrap(), m3.forward(&x3).unwrap());
        let tol = |t: &Tensor| 1e-4 * max_abs(t).max(1.0);
        assert!(
            max_diff(&o1.landmarks, &o3.landmarks) <= tol(&o1.landmarks),
            "{}",
            grey.family()
        );
        if let (Some(a), Some(b)) = (&o1.maps, &o3.maps) {
            assert!(max_diff(a, b) <= tol(a), "{}", grey.family());
        }
        for (name, a) in &o1.attributes {
            assert!(max_diff(a, &o3.attributes[name]) <= tol(a), "{name}");
        }
        // And the channels are not interchangeable: another image in one plane changes
        // the output.
        let y = Tensor::randn(0f32, 1.0, (2, 1, h, w), &Device::Cpu).unwrap();
        let x3b = Tensor::cat(&[&x1, &y, &x1], 1).unwrap();
        let o3b = m3.forward(&x3b).unwrap();
        assert!(max_diff(&o3.landmarks, &o3b.landmarks) > 0.0);
    }
}

#[test]
fn in_channels_is_bounded_and_defaults_to_grey() {
    let e = seq().with_in_channels(0).validate().unwrap_err();
    match e {
        Error::Config { field, .. } => assert_eq!(field, "in_channels"),
        other => panic!("{other:?}"),
    }
    let big = seq().with_in_channels(65);
    match big.validate().unwrap_err() {
        Error::LimitExceeded { field, setting, .. } => {
            assert_eq!(field, "in_channels");
            assert_eq!(setting, "max_in_channels");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ModelLimits::DEFAULT.max_in_channels, 64);
    let limits = ModelLimits {
        max_in_channels: 65,
        ..ModelLimits::DEFAULT
    };
    big.validate_within(&limits).unwrap();
    // Configs written without the field are grey.
    for cfg in [seq(), comm(), heat(), rcn()] {
        let mut v: Value =
            serde_json::from_str(&cfg.with_in_channels(3).to_json().unwrap()).unwrap();
        assert_eq!(v["in_channels"], 3);
        v.as_object_mut().unwrap().remove("in_channels");
        let back = ModelConfig::from_json(&v.to_string()).unwrap();
        assert_eq!(back.in_channels(), 1);
    }
    let toml = r#"family = "seq_mt"
num_landmarks = 1
beta = 1.0
convs = [{ kernel = 1, channels = 1 }]
input_size = { height = 4, width = 4 }
"#;
    assert_eq!(ModelConfig::from_toml(toml).unwrap().in_channels(), 1);
    let colour = format!("in_channels = 3\n{toml}");
    assert_eq!(ModelConfig::from_toml(&colour).unwrap().in_channels(), 3);
}

// ---- The predictor. ----

const S: usize = 8;

/// A colour Seq-MT on S x S inputs with random weights and a head.
fn colour_seq() -> (LandmarkModel, VarMap) {
    build(&ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(S),
        in_channels: 3,
        num_landmarks: 2,
        beta: 2.0,
        convs: vec![ConvSpec::new(3, 4), ConvSpec::new(1, 2)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![HeadConfig::class("a", 3, &[], 0.0)],
    }))
}

fn rand_image(c: usize, h: usize, w: usize) -> Tensor {
    Tensor::rand(0f32, 1.0, (c, h, w), &Device::Cpu).unwrap()
}

/// (H, W, C) interleaved values of a (C, H, W) tensor.
fn interleave(t: &Tensor) -> Vec<f32> {
    t.permute((1, 2, 0))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn equal_planes_predict_as_their_grey_image_on_a_colour_model() {
    let (m, _) = colour_seq();
    let p = Predictor::new(m, Device::Cpu);
    assert_eq!(p.in_channels(), 3);
    let (h, w) = (11, 14);
    let grey = rand_image(1, h, w);
    let rgb = Tensor::cat(&[&grey, &grey, &grey], 0).unwrap();
    let region = Region::Box([2.0, 1.5, 11.0, 9.0]);
    let out = p
        .predict(
            &[
                grey.squeeze(0).unwrap(),
                grey.clone(),
                rgb.clone(),
                rgb.unsqueeze(0).unwrap(),
            ],
            &[region; 4],
        )
        .unwrap();
    // Bit for bit: the grey plane is cropped and normalised once and repeated.
    for o in &out[1..] {
        assert_eq!(o, &out[0]);
    }
    let gp = grey.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(p.predict_pixels(&gp, h, w, region).unwrap(), out[0]);
    assert_eq!(
        p.predict_pixels_interleaved(&gp, 1, h, w, region).unwrap(),
        out[0]
    );
    assert_eq!(
        p.predict_pixels_interleaved(&interleave(&rgb), 3, h, w, region)
            .unwrap(),
        out[0]
    );
    assert!(out[0].confidence.is_some() && out[0].spread.is_some());
    assert_eq!(out[0].attributes["a"].len(), 3);
}

#[test]
fn a_grey_image_on_a_colour_model_is_the_folded_grey_models_prediction() {
    let grey_cfg = ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(S),
        in_channels: 1,
        num_landmarks: 2,
        beta: 2.0,
        convs: vec![ConvSpec::new(3, 4), ConvSpec::new(1, 2)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![],
    });
    let (m3, vm3) = build(&grey_cfg.clone().with_in_channels(3));
    let (m1, vm1) = build(&grey_cfg);
    fold_channels(&vm3, &vm1, "convs.0.weight");
    let (p3, p1) = (
        Predictor::new(m3, Device::Cpu),
        Predictor::new(m1, Device::Cpu),
    );
    let img = rand_image(1, 13, 9).squeeze(0).unwrap();
    let a = &p3
        .predict(std::slice::from_ref(&img), &[Region::Whole])
        .unwrap()[0];
    let b = &p1.predict(&[img], &[Region::Whole]).unwrap()[0];
    for (x, y) in a.landmarks.iter().zip(&b.landmarks) {
        assert!(
            (x[0] - y[0]).abs() < 1e-3 && (x[1] - y[1]).abs() < 1e-3,
            "{x:?} {y:?}"
        );
    }
    for (x, y) in a
        .confidence
        .iter()
        .flatten()
        .zip(b.confidence.iter().flatten())
    {
        assert!((x - y).abs() < 1e-4, "{x} {y}");
    }
}

#[test]
fn colour_planes_are_normalised_one_by_one() {
    // A colour model whose first conv reads only the blue plane (1x1, weight 1, linear):
    // its map is the normalised blue plane of the crop, whatever the other planes hold.
    let cfg = ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(S),
        in_channels: 3,
        num_landmarks: 1,
        beta: 1.0,
        convs: vec![ConvSpec::new(1, 1)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![],
    });
    let (m, vm) = build(&cfg);
    {
        let data = vm.data().lock().unwrap();
        let w = Tensor::new(&[0f32, 0.0, 1.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 1, 1))
            .unwrap();
        data["convs.0.weight"].set(&w).unwrap();
        data["convs.0.bias"].zero_set().unwrap();
    }
    let p = Predictor::new(m.clone(), Device::Cpu);
    // An S x S image: the whole-image crop is the image itself.
    let rgb = rand_image(3, S, S);
    let scaled = Tensor::cat(
        &[
            &rgb.i(0..1).unwrap().affine(100.0, 7.0).unwrap(),
            &rgb.i(1..2).unwrap(),
            &rgb.i(2..3).unwrap(),
        ],
        0,
    )
    .unwrap();
    let a = &p
        .predict(std::slice::from_ref(&rgb), &[Region::Whole])
        .unwrap()[0];
    let b = &p.predict(&[scaled], &[Region::Whole]).unwrap()[0];
    assert_eq!(a.landmarks, b.landmarks);
    // The model's input, worked out here: the blue plane normalised alone.
    let mut blue = rgb
        .i(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    normalize(&mut blue);
    let x = Tensor::from_vec(blue, (1, 1, S, S), &Device::Cpu).unwrap();
    let zeros = Tensor::zeros((1, 1, S, S), DType::F32, &Device::Cpu).unwrap();
    let input = Tensor::cat(&[&zeros, &zeros, &x], 1).unwrap();
    let want = m
        .forward(&input)
        .unwrap()
        .landmarks
        .to_vec3::<f32>()
        .unwrap();
    for (got, want) in a.landmarks.iter().zip(&want[0]) {
        assert!((got[0] - want[0]).abs() < 1e-4 && (got[1] - want[1]).abs() < 1e-4);
    }
}

/// A grey Seq-MT whose single 1x1 conv passes the normalised crop through (linear), so a
/// large beta puts the landmark on the brightest pixel.
fn grey_spot_finder() -> LandmarkModel {
    let cfg = ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(S),
        in_channels: 1,
        num_landmarks: 1,
        beta: 200.0,
        convs: vec![ConvSpec::new(1, 1)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Pixels,
        heads: vec![],
    });
    let (m, vm) = build(&cfg);
    let data = vm.data().lock().unwrap();
    data["convs.0.weight"]
        .set(&Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    data["convs.0.bias"].zero_set().unwrap();
    m
}

#[test]
fn a_colour_image_on_a_grey_model_is_its_luma() {
    let p = Predictor::new(grey_spot_finder(), Device::Cpu);
    // Red 1 at (1, 2), green 0.37 at (6, 5): Rec. 709 luma (the image crate's `to_luma8`,
    // the data crate's grey) makes the green pixel brighter (0.265 > 0.213); Rec. 601
    // weights (0.299, 0.587) would make the red one brighter (0.299 > 0.217).
    let mut planes = vec![0f32; 3 * S * S];
    planes[2 * S + 1] = 1.0;
    planes[S * S + 5 * S + 6] = 0.37;
    let rgb = Tensor::from_vec(planes.clone(), (3, S, S), &Device::Cpu).unwrap();
    let out = &p
        .predict(std::slice::from_ref(&rgb), &[Region::Whole])
        .unwrap()[0];
    let [x, y] = out.landmarks[0];
    assert!((x - 6.0).abs() < 0.05 && (y - 5.0).abs() < 0.05, "{x} {y}");

    // The same as predicting on the luma image, bit for bit; and through the interleaved
    // entry point.
    let luma: Vec<f32> = (0..S * S)
        .map(|i| {
            LUMA_WEIGHTS[0] * planes[i]
                + LUMA_WEIGHTS[1] * planes[S * S + i]
                + LUMA_WEIGHTS[2] * planes[2 * S * S + i]
        })
        .collect();
    assert_eq!(LUMA_WEIGHTS, [0.2126, 0.7152, 0.0722]);
    let grey = p.predict_pixels(&luma, S, S, Region::Whole).unwrap();
    assert_eq!(&grey, out);
    let inter = p
        .predict_pixels_interleaved(&interleave(&rgb), 3, S, S, Region::Whole)
        .unwrap();
    assert_eq!(&inter, out);
    // A colour model given this image sees the planes themselves, not the luma.
    let (m3, _) = colour_seq();
    let p3 = Predictor::new(m3, Device::Cpu);
    p3.predict(&[rgb], &[Region::Whole]).unwrap();
}

#[test]
fn images_of_other_shapes_are_errors_naming_the_shape() {
    let (m, _) = colour_seq();
    let p = Predictor::new(m, Device::Cpu);
    for dims in [
        vec![2, 9, 9],
        vec![4, 9, 9],
        vec![1, 2, 9, 9],
        vec![2, 3, 9, 9],
        vec![9],
        vec![1, 1, 1, 9, 9],
    ] {
        let img = Tensor::zeros(dims.as_slice(), DType::F32, &Device::Cpu).unwrap();
        let ok = Tensor::zeros((9, 9), DType::F32, &Device::Cpu).unwrap();
        let e = p
            .predict(&[ok, img], &[Region::Whole, Region::Whole])
            .unwrap_err();
        let msg = e.to_string();
        match e {
            Error::Shape { got, .. } => assert_eq!(got, dims),
            other => panic!("{other:?}"),
        }
        assert!(
            msg.contains(&format!("{dims:?}")) && msg.contains("image 1") && msg.contains("C = 1"),
            "{msg}"
        );
    }
    // Interleaved pixels: 1 or 3 channels, and as many values as the sizes say.
    let px = vec![0.5f32; 2 * 9 * 9];
    let e = p
        .predict_pixels_interleaved(&px, 2, 9, 9, Region::Whole)
        .unwrap_err()
        .to_string();
    assert!(e.contains("channels") && e.contains("got 2"), "{e}");
    let e = p
        .predict_pixels_interleaved(&px, 3, 9, 9, Region::Whole)
        .unwrap_err()
        .to_string();
    assert!(e.contains("162 values") && e.contains("9x9"), "{e}");
    assert!(p
        .predict_pixels_interleaved(&[], 3, 0, 0, Region::Whole)
        .is_err());
}

#[test]
fn a_model_of_another_channel_count_takes_grey_and_its_own() {
    // Two channels (no image format has them, but the model zoo allows it): grey images are
    // repeated, RGB ones are refused with the reason.
    let cfg = seq().with_in_channels(2);
    let (m, _) = build(&cfg);
    let p = Predictor::new(m, Device::Cpu);
    let (h, w) = cfg.input_size();
    p.predict(&[rand_image(1, h, w)], &[Region::Whole]).unwrap();
    let e = p
        .predict(&[rand_image(3, h, w)], &[Region::Whole])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("3-channel image") && e.contains("2 input channels"),
        "{e}"
    );
}

// ---- Checkpoints. ----

#[test]
fn checkpoints_keep_in_channels() {
    let dir = tempfile::tempdir().unwrap();
    for (grey, _, _, _) in families() {
        let cfg = grey.with_in_channels(3);
        let (m, vm) = build(&cfg);
        let path = dir.path().join(format!("{}.safetensors", cfg.family()));
        save_checkpoint(&path, &cfg, &vm, &CheckpointMeta::default()).unwrap();
        let info = read_checkpoint_info(&path).unwrap();
        assert_eq!(info.in_channels, 3);
        assert_eq!(info.config, cfg);
        let (loaded, _, _) = load_checkpoint(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.config().in_channels(), 3);
        let p = Predictor::from_checkpoint(&path, &Device::Cpu).unwrap();
        assert_eq!(p.in_channels(), 3);
        let (h, w) = cfg.input_size();
        let img = rand_image(3, h + 3, w + 1);
        let a = Predictor::new(m, Device::Cpu)
            .predict(std::slice::from_ref(&img), &[Region::Whole])
            .unwrap();
        assert_eq!(p.predict(&[img], &[Region::Whole]).unwrap(), a);
    }
}

fn weights(vm: &VarMap) -> Vec<(String, Tensor)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<_> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.as_tensor().clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A checkpoint file with `config` (as given, not validated; `cfg` gives the copies of its
/// sizes) and `tensors`, and an `in_channels` key when `key` says one.
fn craft(
    dir: &Path,
    name: &str,
    (cfg, config): (&ModelConfig, &Value),
    tensors: &[(String, Tensor)],
    key: Option<usize>,
) -> PathBuf {
    let mut md = HashMap::new();
    let (h, w) = cfg.input_size();
    md.insert("format".to_string(), FORMAT.to_string());
    md.insert("config".to_string(), config.to_string());
    md.insert("input_size".to_string(), format!("{h}x{w}"));
    md.insert("num_landmarks".to_string(), cfg.num_landmarks().to_string());
    if let Some(c) = key {
        md.insert("in_channels".to_string(), c.to_string());
    }
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn checkpoints_written_without_in_channels_load_as_grey() {
    let dir = tempfile::tempdir().unwrap();
    for (cfg, _, _, _) in families() {
        let (m, vm) = build(&cfg);
        let mut v: Value = serde_json::from_str(&cfg.to_json().unwrap()).unwrap();
        assert_eq!(v["in_channels"], 1);
        v.as_object_mut().unwrap().remove("in_channels");
        let path = craft(
            dir.path(),
            "old.safetensors",
            (&cfg, &v),
            &weights(&vm),
            None,
        );
        let info = read_checkpoint_info(&path).unwrap();
        assert_eq!(info.in_channels, 1);
        assert_eq!(info.config, cfg);
        let p = Predictor::from_checkpoint(&path, &Device::Cpu).unwrap();
        assert_eq!(p.in_channels(), 1);
        let (h, w) = cfg.input_size();
        let img = rand_image(1, h, w);
        assert_eq!(
            p.predict(std::slice::from_ref(&img), &[Region::Whole])
                .unwrap(),
            Predictor::new(m, Device::Cpu)
                .predict(&[img], &[Region::Whole])
                .unwrap()
        );
    }
}

#[test]
fn a_first_conv_stored_for_other_channels_is_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    for (grey, first, out, k) in families() {
        // Metadata says colour; the weights are a grey model's.
        let (_, vm1) = build(&grey);
        let colour: Value =
            serde_json::from_str(&grey.clone().with_in_channels(3).to_json().unwrap()).unwrap();
        let path = craft(
            dir.path(),
            "c.safetensors",
            (&grey, &colour),
            &weights(&vm1),
            Some(3),
        );
        // The header alone says so: nothing of the tensors is read.
        for e in [
            read_checkpoint_info(&path).unwrap_err(),
            load_checkpoint(&path, &Device::Cpu).err().unwrap(),
            Predictor::from_checkpoint(&path, &Device::Cpu)
                .err()
                .unwrap(),
        ] {
            let msg = e.to_string();
            match e {
                Error::TensorMismatch { tensor, .. } => assert_eq!(tensor, first),
                other => panic!("{other:?}"),
            }
            assert!(
                msg.contains(&format!("{:?}", [out, 1, k, k]))
                    && msg.contains("1-channel")
                    && msg.contains("`in_channels` is 3"),
                "{msg}"
            );
        }
        // And the reverse: a grey config over a colour model's weights.
        let (_, vm3) = build(&grey.clone().with_in_channels(3));
        let g: Value = serde_json::from_str(&grey.to_json().unwrap()).unwrap();
        let path = craft(
            dir.path(),
            "g.safetensors",
            (&grey, &g),
            &weights(&vm3),
            Some(1),
        );
        let msg = read_checkpoint_info(&path).unwrap_err().to_string();
        assert!(
            msg.contains(first) && msg.contains("3-channel") && msg.contains("`in_channels` is 1"),
            "{msg}"
        );
    }
}

#[test]
fn the_grey_predictor_is_the_documented_crop_and_normalisation() {
    // Grey models see what they always saw: the warped crop, normalised over its S x S
    // values, as one plane.
    let cfg = seq();
    let (m, _) = build(&cfg);
    let p = Predictor::new(m.clone(), Device::Cpu);
    let (h, w) = (17, 23);
    let img = rand_image(1, h, w).squeeze(0).unwrap();
    let region = Region::Box([3.0, 2.0, 15.0, 13.0]);
    let got = &p.predict(std::slice::from_ref(&img), &[region]).unwrap()[0];
    let a = p.crop_affine(h, w, region).unwrap();
    let (sh, sw) = cfg.input_size();
    let px = img.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut crop = landmark_ssl_ops::warp_image_slice(&px, 1, h, w, &a, sh, sw);
    normalize(&mut crop);
    let x = Tensor::from_vec(crop, (1, 1, sh, sw), &Device::Cpu).unwrap();
    let o = m.forward(&x).unwrap();
    let lm = o.landmarks.to_vec3::<f32>().unwrap();
    let inv = a.inverse().unwrap();
    for (g, q) in got.landmarks.iter().zip(&lm[0]) {
        let (x, y) = inv.apply(q[0] as f64, q[1] as f64);
        assert_eq!(*g, [x as f32, y as f32]);
    }
    assert_eq!(
        got.attributes["a"],
        o.attributes["a"].to_vec2::<f32>().unwrap()[0]
    );
}
