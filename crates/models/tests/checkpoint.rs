//! Checkpoint round trip and mismatch errors; inference back to original image pixels.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::checkpoint::read_checkpoint;
use landmark_ssl_models::*;

fn tiny(k: usize, ch: usize) -> ModelConfig {
    ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(8),
        in_channels: 1,
        num_landmarks: k,
        beta: 2.0,
        convs: vec![ConvSpec::new(3, ch), ConvSpec::new(1, k)],
        map_negative_slope: 0.0,
        coord_scale: CoordScale::Pixels,
        heads: vec![HeadConfig::class("a", 3, &[4], 0.25)],
    })
}

fn build(cfg: &ModelConfig) -> (LandmarkModel, VarMap) {
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (m, vm)
}

#[test]
fn round_trip_restores_outputs_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cfg = tiny(2, 4);
    let (m, vm) = build(&cfg);
    let mut meta = CheckpointMeta {
        landmark_layout: Some("Blocks5".into()),
        ..Default::default()
    };
    meta.extra.insert("epoch".into(), "7".into());
    save_checkpoint(&path, &cfg, &vm, &meta).unwrap();
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let (m2, vm2, info) = load_checkpoint(&path, &Device::Cpu).unwrap();
    assert_eq!(info.config, cfg);
    assert_eq!(info.input_size, (8, 8));
    assert_eq!(info.num_landmarks, 2);
    assert_eq!(info.meta, meta);
    assert_eq!(param_count(&vm2), param_count(&vm));
    let x = Tensor::randn(0f32, 1.0, (2, 1, 8, 8), &Device::Cpu).unwrap();
    let (a, b) = (
        m.forward_t(&x, false).unwrap(),
        m2.forward_t(&x, false).unwrap(),
    );
    let d = (a.landmarks - b.landmarks)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    let d = (&a.attributes["a"] - &b.attributes["a"])
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);

    // The metadata is plain safetensors metadata that other tools can read.
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let md = header.metadata().clone().unwrap();
    assert_eq!(md["input_size"], "8x8");
    assert_eq!(md["landmark_layout"], "Blocks5");
    assert!(md["config"].contains("\"family\": \"seq_mt\""));

    // Loading into a fresh model of the same config restores the weights too.
    let (m3, vm3) = build(&cfg);
    load_weights(&path, &vm3).unwrap();
    let c = m3.forward_t(&x, false).unwrap();
    let d = (&a.attributes["a"] - &c.attributes["a"])
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn mismatching_architecture_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (_, vm) = build(&tiny(2, 4));
    save_checkpoint(&path, &tiny(2, 4), &vm, &CheckpointMeta::default()).unwrap();

    // Other channel count: the first tensor in name order that differs is convs.0.bias.
    let (_, other) = build(&tiny(2, 5));
    let before: Vec<f32> = other.data().lock().unwrap()["convs.0.bias"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let e = load_weights(&path, &other).unwrap_err();
    match &e {
        Error::TensorMismatch { tensor, reason, .. } => {
            assert_eq!(tensor, "convs.0.bias");
            assert!(reason.contains("[4]") && reason.contains("[5]"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().contains("m.safetensors"), "{e}");
    // Nothing was changed.
    let after: Vec<f32> = other.data().lock().unwrap()["convs.0.bias"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(before, after);

    // A model with a tensor the checkpoint lacks (an extra head).
    let mut cfg = tiny(2, 4);
    cfg.heads_mut().push(HeadConfig::real("b", 1, &[], 0.0));
    let (_, more) = build(&cfg);
    match load_weights(&path, &more).unwrap_err() {
        Error::TensorMismatch { tensor, reason, .. } => {
            assert_eq!(tensor, "heads.b.fc0.bias");
            assert!(reason.contains("checkpoint does not"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    // A model lacking one of the checkpoint's tensors (no heads).
    let mut cfg = tiny(2, 4);
    cfg.heads_mut().clear();
    let (_, fewer) = build(&cfg);
    match load_weights(&path, &fewer).unwrap_err() {
        Error::TensorMismatch { tensor, reason, .. } => {
            assert_eq!(tensor, "heads.a.fc0.bias");
            assert!(reason.contains("model does not"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn non_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = read_checkpoint(&junk, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("junk.safetensors") && e.contains("not a safetensors"),
        "{e}"
    );
    // A safetensors file without our metadata.
    let plain = dir.path().join("plain.safetensors");
    let (_, vm) = build(&tiny(2, 4));
    vm.save(&plain).unwrap();
    let e = load_checkpoint(&plain, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("plain.safetensors") && e.contains("not a landmark-ssl checkpoint"),
        "{e}"
    );
    let e = load_checkpoint(dir.path().join("missing.safetensors"), &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

/// A Seq-MT whose single 1x1 conv (weight 1, bias 0, ReLU) passes the normalised crop through,
/// so soft-argmax with a large beta finds the brightest spot of the crop.
fn spot_finder(size: usize) -> (LandmarkModel, VarMap) {
    let cfg = ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(size),
        in_channels: 1,
        num_landmarks: 1,
        beta: 40.0,
        convs: vec![ConvSpec::new(1, 1)],
        map_negative_slope: 0.0,
        coord_scale: CoordScale::Pixels,
        heads: vec![],
    });
    let (m, vm) = build(&cfg);
    {
        let data = vm.data().lock().unwrap();
        data["convs.0.weight"]
            .set(&Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        data["convs.0.bias"].zero_set().unwrap();
    }
    (m, vm)
}

/// A (h, w) image with a symmetric bright blob centred on pixel (cx, cy).
fn blob_image(h: usize, w: usize, cx: usize, cy: usize) -> Tensor {
    let mut v = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let d2 = (x as f32 - cx as f32).powi(2) + (y as f32 - cy as f32).powi(2);
            v[y * w + x] = (-d2 / 8.0).exp();
        }
    }
    Tensor::from_vec(v, (h, w), &Device::Cpu).unwrap()
}

#[test]
fn inference_maps_back_to_original_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spot.safetensors");
    let (m, vm) = spot_finder(20);
    save_checkpoint(&path, m.config(), &vm, &CheckpointMeta::default()).unwrap();
    let p = Predictor::from_checkpoint(&path, &Device::Cpu)
        .unwrap()
        .with_batch_size(2);
    // Three images of different sizes (batched 2 + 1): boxes of side 40 (scale 1/2) and 30,
    // and a whole image.
    let imgs = [
        blob_image(100, 120, 70, 40),
        blob_image(50, 60, 20, 30),
        blob_image(30, 30, 12, 17),
    ];
    let regions = [
        Region::Box([50.0, 20.0, 90.0, 60.0]),
        Region::Box([5.0, 15.0, 35.0, 40.0]),
        Region::Whole,
    ];
    let preds = p.predict(&imgs, &regions).unwrap();
    let want = [[70.0f32, 40.0], [20.0, 30.0], [12.0, 17.0]];
    for (pr, w) in preds.iter().zip(want) {
        let [x, y] = pr.landmarks[0];
        assert!(
            (x - w[0]).abs() < 0.5 && (y - w[1]).abs() < 0.5,
            "{:?} vs {w:?}",
            pr.landmarks
        );
    }
    // The crop map sends the box's edges to the input's edges: centre (70, 40) -> 9.5.
    let a = preds[0].crop;
    let (cx, cy) = a.apply(70.0, 40.0);
    assert!((cx - 9.5).abs() < 1e-9 && (cy - 9.5).abs() < 1e-9);
    let (ex, _) = a.apply(50.0, 40.0);
    assert!((ex + 0.5).abs() < 1e-9);
    // One image given as a pixel slice predicts the same as through a tensor.
    let pixels = imgs[1].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let one = p.predict_pixels(&pixels, 50, 60, regions[1]).unwrap();
    assert_eq!(one, preds[1]);
    assert!(p.predict_pixels(&pixels, 50, 61, regions[1]).is_err());
    assert!(p.predict_pixels(&[], 0, 0, Region::Whole).is_err());
    // Errors: count mismatch, bad box, bad image rank.
    assert!(p.predict(&imgs, &regions[..2]).is_err());
    assert!(p
        .predict(&imgs[..1], &[Region::Box([5.0, 5.0, 5.0, 9.0])])
        .is_err());
    let e = p.predict(
        &[Tensor::zeros((2, 1, 4, 4), DType::F32, &Device::Cpu).unwrap()],
        &[Region::Whole],
    );
    assert!(matches!(e, Err(Error::Shape { .. })), "{e:?}");
}

#[test]
fn normalisation_is_zero_mean_unit_std() {
    let mut v: Vec<f32> = (0..50).map(|i| (i * i) as f32 * 0.01 + 3.0).collect();
    inference::normalize(&mut v);
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
        "{mean} {var}"
    );
    let mut flat = vec![2f32; 9];
    inference::normalize(&mut flat);
    assert!(flat.iter().all(|&x| x == 0.0));
}
