//! Random mutations of a valid checkpoint: the loader returns `Ok` or `Err`, never panics
//! (a panic fails the property) and never aborts on a huge allocation (which would end the
//! test process).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::checkpoint::{read_checkpoint_info, FORMAT};
use landmark_ssl_models::*;
use proptest::prelude::*;
use serde_json::Value;

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

/// A valid checkpoint's bytes and the tensors it holds.
fn valid() -> (Vec<u8>, VarMap) {
    let cfg = tiny();
    let vm = VarMap::new();
    LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.safetensors");
    let meta = CheckpointMeta {
        crop_factor: Some(1.3),
        ..Default::default()
    };
    save_checkpoint(&p, &cfg, &vm, &meta).unwrap();
    (std::fs::read(&p).unwrap(), vm)
}

/// Loads `bytes` as a checkpoint every way the crate offers; the results do not matter.
fn load_all(dir: &Path, bytes: &[u8]) {
    let p = dir.join("m.safetensors");
    std::fs::write(&p, bytes).unwrap();
    let _ = read_checkpoint_info(&p);
    if let Ok((model, _, _)) = load_checkpoint(&p, &Device::Cpu) {
        // A checkpoint that loads predicts without panicking as well.
        let img = candle_core::Tensor::rand(0f32, 1.0, (9, 7), &Device::Cpu).unwrap();
        let _ = Predictor::new(model, Device::Cpu).predict(&[img], &[Region::Whole]);
    }
}

/// Values a hostile config might hold in place of a number.
fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0u64)),
        Just(Value::from(1u64)),
        Just(Value::from(2u64)),
        Just(Value::from(4096u64)),
        Just(Value::from(200_000u64)),
        Just(Value::from(1u64 << 31)),
        Just(Value::from(1u64 << 62)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(-1i64)),
        Just(Value::from(1e30)),
        Just(Value::from(-0.5)),
        Just(Value::from(0.999_999)),
        Just(Value::from("12")),
        Just(Value::Null),
        (0u64..100).prop_map(Value::from),
    ]
}

/// Replaces the `n`-th number (depth first, wrapping) of `v` by `new`.
fn replace_number(v: &mut Value, n: usize, new: &Value) {
    fn count(v: &Value) -> usize {
        match v {
            Value::Number(_) => 1,
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, new: &Value) -> bool {
        match v {
            Value::Number(_) => {
                if *n == 0 {
                    *v = new.clone();
                    return true;
                }
                *n -= 1;
                false
            }
            Value::Array(a) => a.iter_mut().any(|x| walk(x, n, new)),
            Value::Object(o) => o.values_mut().any(|x| walk(x, n, new)),
            _ => false,
        }
    }
    let total = count(v);
    if total > 0 {
        let mut k = n % total;
        walk(v, &mut k, new);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    /// Byte edits anywhere in the length prefix and the JSON header (any byte, or a digit,
    /// which keeps the JSON valid more often and changes sizes, shapes and offsets), and
    /// cuts of the file.
    #[test]
    fn mutated_headers_never_panic(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![any::<u8>(), b'0'..=b'9']),
            1..6,
        ),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (mut bytes, _) = valid();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, b) in edits {
            let i = at.index(8 + n);
            bytes[i] = b;
        }
        if let Some(c) = cut {
            let len = c.index(bytes.len());
            bytes.truncate(len);
        }
        let dir = tempfile::tempdir().unwrap();
        load_all(dir.path(), &bytes);
    }

    /// A number of the config JSON, or the crop factor, replaced by a hostile value; the
    /// tensors stay those of the original config.
    #[test]
    fn mutated_configs_never_panic(
        edits in prop::collection::vec((any::<usize>(), hostile_number()), 1..4),
        crop in prop::option::of("[-0-9.eEnaif]{0,6}"),
    ) {
        let (_, vm) = valid();
        let mut cfg: Value = serde_json::from_str(&tiny().to_json().unwrap()).unwrap();
        for (n, v) in &edits {
            replace_number(&mut cfg, *n, v);
        }
        let mut md = HashMap::new();
        md.insert("format".to_string(), FORMAT.to_string());
        md.insert("config".to_string(), cfg.to_string());
        if let Some(c) = crop {
            md.insert("crop_factor".to_string(), c);
        }
        let data = vm.data().lock().unwrap();
        let tensors: Vec<(String, candle_core::Tensor)> =
            data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        drop(data);
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        load_all(dir.path(), &bytes);
    }
}
