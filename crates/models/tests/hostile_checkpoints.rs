//! Crafted and broken checkpoints: every one is a clear error that names the field, tensor
//! or file at fault, found from the file's header before anything of the declared size is
//! allocated; never a panic or an abort.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::checkpoint::{read_checkpoint_info, FORMAT};
use landmark_ssl_models::*;
use serde_json::{json, Value};

fn tiny() -> ModelConfig {
    ModelConfig::SeqMt(SeqMtConfig {
        input_size: InputSize::square(8),
        in_channels: 1,
        num_landmarks: 2,
        beta: 2.0,
        convs: vec![ConvSpec::new(3, 4), ConvSpec::new(1, 2)],
        map_negative_slope: 0.0,
        coord_scale: CoordScale::Pixels,
        heads: vec![HeadConfig::class("a", 3, &[4], 0.25)],
    })
}

/// The weights of a freshly built model of `cfg`, by name.
fn weights(cfg: &ModelConfig) -> Vec<(String, Tensor)> {
    let vm = VarMap::new();
    LandmarkModel::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let data = vm.data().lock().unwrap();
    let mut v: Vec<_> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.as_tensor().clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn config_json(cfg: &ModelConfig) -> Value {
    serde_json::from_str(&cfg.to_json().unwrap()).unwrap()
}

/// Writes a safetensors file with the checkpoint metadata (`config` as given, not validated)
/// and the given tensors, as a crafted file would be.
fn craft(dir: &Path, name: &str, config: &Value, tensors: &[(String, Tensor)]) -> PathBuf {
    let mut md = HashMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    md.insert("config".to_string(), config.to_string());
    md.insert("input_size".to_string(), "8x8".to_string());
    md.insert("num_landmarks".to_string(), "2".to_string());
    craft_md(dir, name, md, tensors)
}

fn craft_md(
    dir: &Path,
    name: &str,
    md: HashMap<String, String>,
    tensors: &[(String, Tensor)],
) -> PathBuf {
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn expect_limit(e: Error, want_field: &str) -> String {
    let msg = e.to_string();
    match e {
        Error::LimitExceeded { field, .. } => assert_eq!(field, want_field, "{msg}"),
        other => panic!("expected a limit error on `{want_field}`, got {other:?}"),
    }
    msg
}

#[test]
fn huge_declared_channels_are_a_limit_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_json(&tiny());
    c["convs"][0]["channels"] = json!(200000);
    let p = craft(dir.path(), "wide.safetensors", &c, &weights(&tiny()));
    let msg = expect_limit(
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        "convs[0].channels",
    );
    assert!(
        msg.contains("wide.safetensors") && msg.contains("200000") && msg.contains("max_channels"),
        "{msg}"
    );
    // The header alone says so: reading the info fails the same way.
    expect_limit(read_checkpoint_info(&p).unwrap_err(), "convs[0].channels");
}

#[test]
fn huge_inputs_are_a_limit_error() {
    let dir = tempfile::tempdir().unwrap();
    // The convolutions do not depend on the input size, so these tensors match the config.
    for side in [100_000u64, 1 << 62, u64::MAX] {
        let mut c = config_json(&tiny());
        c["input_size"] = json!({ "height": side, "width": side });
        let p = craft(dir.path(), "big.safetensors", &c, &weights(&tiny()));
        expect_limit(
            Predictor::from_checkpoint(&p, &Device::Cpu).err().unwrap(),
            "input_size",
        );
    }
    // One side within the limit, the other not.
    let mut c = config_json(&tiny());
    c["input_size"] = json!({ "height": 8, "width": 1u64 << 62 });
    let p = craft(dir.path(), "long.safetensors", &c, &weights(&tiny()));
    expect_limit(
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        "input_size",
    );
}

#[test]
fn huge_hidden_layers_and_heads_are_limit_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_json(&tiny());
    c["heads"][0]["hidden"][0] = json!(1_000_000_000u64);
    let p = craft(dir.path(), "mlp.safetensors", &c, &weights(&tiny()));
    expect_limit(
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        "heads[0].hidden[0]",
    );

    let mut c = config_json(&tiny());
    c["heads"][0]["kind"] = json!({ "class": { "n": 1u64 << 40 } });
    let p = craft(dir.path(), "classes.safetensors", &c, &weights(&tiny()));
    expect_limit(
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        "heads[0].kind",
    );

    // K and the last conv's channels together.
    let mut c = config_json(&tiny());
    c["num_landmarks"] = json!(5_000_000);
    c["convs"][1]["channels"] = json!(5_000_000);
    let p = craft(dir.path(), "k.safetensors", &c, &weights(&tiny()));
    expect_limit(
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        "num_landmarks",
    );
}

#[test]
fn products_of_sizes_within_limits_are_checked_too() {
    // Every field within its own limit, but the total parameter count (a flattened
    // 256 x 512 x 512 trunk into 4096 units) is not.
    let c = json!({
        "family": "comm_mt", "input_size": { "height": 512, "width": 512 },
        "num_landmarks": 5,
        "trunk": [ { "conv": { "kernel": 3, "channels": 256 } } ],
        "shared_fc": [4096]
    });
    let e = ModelConfig::from_json(&c.to_string()).unwrap_err();
    let msg = expect_limit(e, "parameters");
    assert!(msg.contains("max_params"), "{msg}");
    // One image's feature maps: 4096 channels at 2048 x 2048.
    let c = json!({
        "family": "seq_mt", "input_size": { "height": 2048, "width": 2048 },
        "num_landmarks": 1, "beta": 1.0,
        "convs": [ { "kernel": 1, "channels": 4096 }, { "kernel": 1, "channels": 1 } ]
    });
    let e = ModelConfig::from_json(&c.to_string()).unwrap_err();
    expect_limit(e, "convs[0]");
    // RCN levels far beyond what the input can pool, and usize::MAX (no overflow).
    for levels in [40u64, u64::MAX] {
        let c = json!({
            "family": "rcn", "input_size": { "height": 64, "width": 64 },
            "num_landmarks": 2, "beta": 1.0, "channels": 4, "levels": levels,
            "down_kernels": [3], "up_kernels": []
        });
        let e = ModelConfig::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(&e, Error::Config { field, .. } | Error::LimitExceeded { field, .. } if field == "levels"),
            "{e:?}"
        );
    }
}

#[test]
fn limits_can_be_raised_for_a_reason() {
    let mut cfg = tiny();
    if let ModelConfig::SeqMt(c) = &mut cfg {
        c.input_size = InputSize::square(5000);
    }
    expect_limit(cfg.validate().unwrap_err(), "input_size");
    let limits = ModelLimits {
        max_input_side: 8192,
        max_feature_elements: 1 << 30,
        ..ModelLimits::default()
    };
    cfg.validate_within(&limits).unwrap();
    // The defaults are documented values, the same through Default and the constant.
    assert_eq!(ModelLimits::default(), ModelLimits::DEFAULT);
    // Every preset fits the defaults.
    for name in PRESET_NAMES {
        preset(name).unwrap().validate().unwrap();
    }
}

#[test]
fn huge_beta_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_json(&tiny());
    c["beta"] = json!(1e30);
    let p = craft(dir.path(), "beta.safetensors", &c, &weights(&tiny()));
    expect_limit(load_checkpoint(&p, &Device::Cpu).err().unwrap(), "beta");
}

#[test]
fn declared_shapes_must_match_the_stored_tensors() {
    let dir = tempfile::tempdir().unwrap();
    // The config says 5 channels, the tensors have 4.
    let mut c = config_json(&tiny());
    c["convs"][0]["channels"] = json!(5);
    let p = craft(dir.path(), "m.safetensors", &c, &weights(&tiny()));
    for e in [
        load_checkpoint(&p, &Device::Cpu).err().unwrap(),
        read_checkpoint_info(&p).unwrap_err(),
    ] {
        match &e {
            Error::TensorMismatch { tensor, reason, .. } => {
                assert_eq!(tensor, "convs.0.bias");
                assert!(reason.contains("[4]") && reason.contains("[5]"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }
    // A tensor missing, a tensor too many.
    let c = config_json(&tiny());
    let mut w = weights(&tiny());
    let dropped = w.remove(0).0;
    let p = craft(dir.path(), "missing.safetensors", &c, &w);
    match load_checkpoint(&p, &Device::Cpu).err().unwrap() {
        Error::TensorMismatch { tensor, .. } => assert_eq!(tensor, dropped),
        e => panic!("{e:?}"),
    }
    let mut w = weights(&tiny());
    w.push((
        "zz.extra".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    ));
    let p = craft(dir.path(), "extra.safetensors", &c, &w);
    match load_checkpoint(&p, &Device::Cpu).err().unwrap() {
        Error::TensorMismatch { tensor, .. } => assert_eq!(tensor, "zz.extra"),
        e => panic!("{e:?}"),
    }
    // A tensor of an integer type.
    let mut w = weights(&tiny());
    w[0].1 = w[0].1.to_dtype(DType::U8).unwrap();
    let p = craft(dir.path(), "ints.safetensors", &c, &w);
    match load_checkpoint(&p, &Device::Cpu).err().unwrap() {
        Error::TensorMismatch { tensor, reason, .. } => {
            assert_eq!(tensor, w[0].0);
            assert!(reason.contains("U8"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
}

/// `weights(tiny())` with one value of `convs.0.weight` replaced.
fn with_value(v: f32) -> Vec<(String, Tensor)> {
    let mut w = weights(&tiny());
    let i = w.iter().position(|(n, _)| n == "convs.0.weight").unwrap();
    let t = &w[i].1;
    let mut vals = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    vals[7] = v;
    w[i].1 = Tensor::from_vec(vals, t.shape(), &Device::Cpu).unwrap();
    w
}

#[test]
fn non_finite_weights_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let c = config_json(&tiny());
    for (v, word) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let p = craft(dir.path(), "nan.safetensors", &c, &with_value(v));
        let e = load_checkpoint(&p, &Device::Cpu).err().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, Error::NonFinite { .. }), "{e:?}");
        assert!(
            msg.contains("convs.0.weight") && msg.contains(word) && msg.contains("element 7"),
            "{msg}"
        );
        // Loading into an existing model checks the same.
        let vm = VarMap::new();
        LandmarkModel::new(
            &tiny(),
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert!(matches!(
            load_weights(&p, &vm),
            Err(Error::NonFinite { .. })
        ));
    }
    // An f64 value that is finite but does not fit f32.
    let mut w = weights(&tiny());
    w[0].1 = Tensor::full(1e300f64, w[0].1.shape(), &Device::Cpu).unwrap();
    let p = craft(dir.path(), "f64.safetensors", &c, &w);
    let msg = load_checkpoint(&p, &Device::Cpu).err().unwrap().to_string();
    assert!(msg.contains(&w[0].0) && msg.contains("f32"), "{msg}");
}

#[test]
fn weights_whose_output_overflows_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Every weight finite, but the head's output layer (3e38 times hidden units of about
    // 14: the sum of the landmark coordinates) overflows f32.
    let mut w = weights(&tiny());
    for (n, t) in w.iter_mut() {
        let v = match n.as_str() {
            "heads.a.fc0.weight" => 1.0,
            "heads.a.fc0.bias" => 0.0,
            "heads.a.fc1.weight" => 3e38,
            _ => continue,
        };
        *t = Tensor::full(v, t.shape(), &Device::Cpu).unwrap();
    }
    let p = craft(dir.path(), "big.safetensors", &config_json(&tiny()), &w);
    let e = load_checkpoint(&p, &Device::Cpu).err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, Error::NonFinite { .. }), "{e:?}");
    assert!(
        msg.contains("output `attributes.a`") && msg.contains("big.safetensors"),
        "{msg}"
    );
}

#[test]
fn truncated_padded_and_lying_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = craft(
        dir.path(),
        "good.safetensors",
        &config_json(&tiny()),
        &weights(&tiny()),
    );
    load_checkpoint(&good, &Device::Cpu).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let bad = dir.path().join("bad.safetensors");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("4 bytes", bytes[..4].to_vec()),
        ("header cut", bytes[..8 + n / 2].to_vec()),
        ("data cut", bytes[..bytes.len() - 10].to_vec()),
        ("padded", [bytes.clone(), vec![0; 64]].concat()),
        (
            "header length 2^62",
            [(1u64 << 62).to_le_bytes().to_vec(), bytes[8..].to_vec()].concat(),
        ),
        (
            "header length past the end",
            [
                ((bytes.len() as u64) * 2).to_le_bytes().to_vec(),
                bytes[8..].to_vec(),
            ]
            .concat(),
        ),
    ];
    for (what, b) in cases {
        std::fs::write(&bad, &b).unwrap();
        let e = load_checkpoint(&bad, &Device::Cpu).err().unwrap();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Checkpoint { .. }) && msg.contains("bad.safetensors"),
            "{what}: {msg}"
        );
    }
    // A folder is not a checkpoint.
    let e = load_checkpoint(dir.path(), &Device::Cpu).err().unwrap();
    assert!(
        matches!(e, Error::Io { .. } | Error::Checkpoint { .. }),
        "{e:?}"
    );
}

#[test]
fn crop_factor_is_recorded_and_older_checkpoints_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let vm = VarMap::new();
    LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let path = dir.path().join("c.safetensors");
    let meta = CheckpointMeta {
        crop_factor: Some(1.3),
        ..Default::default()
    };
    save_checkpoint(&path, &cfg, &vm, &meta).unwrap();
    let info = read_checkpoint_info(&path).unwrap();
    assert_eq!(info.meta.crop_factor, Some(1.3));
    let p = Predictor::from_checkpoint(&path, &Device::Cpu).unwrap();
    assert_eq!(p.box_scale(), 1.3);

    // A checkpoint written before the field existed: no `crop_factor` key.
    let old = craft(
        dir.path(),
        "old.safetensors",
        &config_json(&cfg),
        &weights(&cfg),
    );
    let (_, _, info) = load_checkpoint(&old, &Device::Cpu).unwrap();
    assert_eq!(info.meta.crop_factor, None);
    assert_eq!(
        Predictor::from_checkpoint(&old, &Device::Cpu)
            .unwrap()
            .box_scale(),
        1.0
    );

    for bad in ["-1", "0", "NaN", "inf", "1.3x", "1e400"] {
        let mut md = HashMap::new();
        md.insert("format".to_string(), FORMAT.to_string());
        md.insert("config".to_string(), cfg.to_json().unwrap());
        md.insert("crop_factor".to_string(), bad.to_string());
        let p = craft_md(dir.path(), "bad.safetensors", md, &weights(&cfg));
        let msg = load_checkpoint(&p, &Device::Cpu).err().unwrap().to_string();
        assert!(
            msg.contains("crop_factor") && msg.contains(bad),
            "{bad}: {msg}"
        );
    }
}

#[test]
fn saving_refuses_weights_that_do_not_match_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let vm = VarMap::new();
    LandmarkModel::new(
        &tiny(),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut other = tiny();
    other.heads_mut().clear();
    let path = dir.path().join("x.safetensors");
    match save_checkpoint(&path, &other, &vm, &CheckpointMeta::default()) {
        Err(Error::TensorMismatch { tensor, .. }) => assert_eq!(tensor, "heads.a.fc0.bias"),
        r => panic!("{r:?}"),
    }
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn weight_shapes_are_those_the_model_creates() {
    let mut cfgs: Vec<ModelConfig> = PRESET_NAMES.iter().map(|n| preset(n).unwrap()).collect();
    cfgs.push(tiny());
    for cfg in cfgs {
        let built: Vec<(String, Vec<usize>)> = weights(&cfg)
            .into_iter()
            .map(|(n, t)| (n, t.dims().to_vec()))
            .collect();
        let planned: Vec<(String, Vec<usize>)> = cfg.weight_shapes().unwrap().into_iter().collect();
        assert_eq!(planned, built, "{}", cfg.family());
    }
}

#[test]
fn region_parses_the_documented_box_form() {
    let r: Region = "10,5,90,75".parse().unwrap();
    assert_eq!(r, Region::Box([10.0, 5.0, 90.0, 75.0]));
    let r: Region = " -10.5, -5 ,90,75e0".parse().unwrap();
    assert_eq!(r, Region::Box([-10.5, -5.0, 90.0, 75.0]));
    for bad in [
        "",
        "10,5,90",
        "10,5,90,75,1",
        "a,5,90,75",
        "10,5,10,75",
        "10,80,90,75",
        "nan,5,90,75",
        "10,5,inf,75",
        "10 5 90 75",
        "1e39,5,2e39,75",
    ] {
        let e = bad.parse::<Region>().unwrap_err().to_string();
        assert!(e.contains("box"), "{bad}: {e}");
    }
}

#[test]
fn predicting_a_non_finite_output_is_an_error() {
    // A model whose weights went non-finite after loading (set by hand here).
    let cfg = tiny();
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    vm.data().lock().unwrap()["heads.a.fc1.bias"]
        .set(&Tensor::full(f32::NAN, 3, &Device::Cpu).unwrap())
        .unwrap();
    let p = Predictor::new(m, Device::Cpu);
    let img = Tensor::rand(0f32, 1.0, (12, 10), &Device::Cpu).unwrap();
    let imgs = [img.clone(), img.clone(), img];
    let e = p.predict(&imgs, &[Region::Whole; 3]).unwrap_err();
    assert!(
        matches!(&e, Error::NonFiniteOutput { index: 0, output } if output == "attributes.a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("not finite"), "{e}");
    let pixels = vec![0.5f32; 12 * 10];
    assert!(matches!(
        p.predict_pixels(&pixels, 12, 10, Region::Whole),
        Err(Error::NonFiniteOutput { .. })
    ));
}
