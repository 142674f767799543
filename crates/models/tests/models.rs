//! Forward shapes on tiny configs of every family, dropout only in training, bad configs,
//! read-outs and coordinate scales.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::*;

fn tiny_seq(heads: Vec<HeadConfig>) -> ModelConfig {
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
        heads,
    })
}

fn tiny_comm() -> ModelConfig {
    ModelConfig::CommMt(CommMtConfig {
        input_size: InputSize {
            height: 12,
            width: 10,
        },
        in_channels: 1,
        num_landmarks: 3,
        trunk: vec![
            LayerSpec::Conv {
                kernel: 3,
                channels: 4,
            },
            LayerSpec::Pool,
            LayerSpec::Conv {
                kernel: 1,
                channels: 2,
            },
        ],
        shared_fc: vec![16],
        dropout: 0.5,
        coord_scale: CoordScale::Unit,
        heads: vec![HeadConfig::class("c", 4, &[], 0.0)],
    })
}

fn tiny_heat(kind: LandmarkKind) -> ModelConfig {
    ModelConfig::HeatmapMt(HeatmapMtConfig {
        input_size: InputSize {
            height: 12,
            width: 10,
        },
        in_channels: 1,
        num_landmarks: 3,
        beta: 1.0,
        convs: vec![ConvSpec::new(3, 4), ConvSpec::new(1, 3)],
        // 12x10 -> 6x5 -> 3x2: odd sizes on the way.
        branch: vec![
            LayerSpec::Pool,
            LayerSpec::Conv {
                kernel: 3,
                channels: 2,
            },
            LayerSpec::Pool,
        ],
        heads: vec![
            HeadConfig::class("c", 4, &[5], 0.5),
            HeadConfig::real("r", 2, &[], 0.0),
        ],
        landmark_kind: kind,
        readout: Readout::HardArgmax,
        map_negative_slope: 0.0,
    })
}

fn tiny_rcn(kind: LandmarkKind) -> ModelConfig {
    ModelConfig::Rcn(RcnConfig {
        // 20 -> 10 -> 5 -> 2: the last upsampling goes 2 -> 5 (odd).
        input_size: InputSize::square(20),
        in_channels: 1,
        num_landmarks: 2,
        beta: 1.0,
        channels: 3,
        levels: 3,
        down_kernels: vec![5, 3, 3, 1],
        up_kernels: vec![3, 3, 3],
        down_convs: 1,
        up_convs: 2,
        output_kernel: 1,
        landmark_kind: kind,
        readout: Readout::HardArgmax,
        coord_scale: CoordScale::Pixels,
        heads: vec![HeadConfig::real("pose", 3, &[4], 0.25)],
    })
}

fn build(cfg: &ModelConfig) -> (LandmarkModel, VarMap) {
    let vm = VarMap::new();
    let m =
        LandmarkModel::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (m, vm)
}

fn images(cfg: &ModelConfig, b: usize) -> Tensor {
    let (h, w) = cfg.input_size();
    Tensor::randn(0f32, 1.0, (b, 1, h, w), &Device::Cpu).unwrap()
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

#[test]
fn forward_shapes_every_family() {
    let heads = vec![
        HeadConfig::class("a", 4, &[6], 0.25),
        HeadConfig::real("b", 2, &[], 0.0),
    ];
    let cases = [
        tiny_seq(heads),
        tiny_comm(),
        tiny_heat(LandmarkKind::Softmax),
        tiny_heat(LandmarkKind::SoftArgmax),
        tiny_rcn(LandmarkKind::Softmax),
        tiny_rcn(LandmarkKind::SoftArgmax),
    ];
    for cfg in &cases {
        let (m, _) = build(cfg);
        let (h, w) = cfg.input_size();
        let k = cfg.num_landmarks();
        let out = m.forward_t(&images(cfg, 2), true).unwrap();
        assert_eq!(out.landmarks.dims(), &[2, k, 2], "{}", cfg.family());
        match &out.maps {
            Some(maps) => {
                assert!(cfg.has_maps());
                assert_eq!(maps.dims(), &[2, k, h, w]);
            }
            None => assert_eq!(cfg.family(), "comm_mt"),
        }
        let names: Vec<&String> = out.attributes.keys().collect();
        let mut expect: Vec<&String> = cfg.heads().iter().map(|h| &h.name).collect();
        expect.sort();
        assert_eq!(names, expect);
        for hc in cfg.heads() {
            assert_eq!(out.attributes[&hc.name].dims(), &[2, hc.kind.outputs()]);
        }
        assert_eq!(m.landmark_kind(), cfg.landmark_kind());
        assert_eq!(m.config(), cfg);
    }
}

#[test]
fn soft_argmax_landmarks_are_in_input_pixels() {
    // Seq-MT landmarks = soft-argmax of the maps with the config's beta, inside the image.
    let cfg = tiny_seq(vec![]);
    let (m, _) = build(&cfg);
    let out = m.forward_t(&images(&cfg, 2), false).unwrap();
    let maps = out.maps.unwrap();
    let direct = landmark_ssl_ops::soft_argmax_composite(&maps, 1.0).unwrap();
    assert!(max_diff(&out.landmarks, &direct) < 1e-4);
    for p in out
        .landmarks
        .flatten_to(1)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
    {
        assert!(
            (0.0..=9.0).contains(&p[0]) && (0.0..=11.0).contains(&p[1]),
            "{p:?}"
        );
    }
    // RCN with softmax: the hard argmax read-out of the maps.
    let cfg = tiny_rcn(LandmarkKind::Softmax);
    let (m, _) = build(&cfg);
    let out = m.forward_t(&images(&cfg, 1), false).unwrap();
    let hard = landmark_ssl_ops::hard_argmax_subpixel(out.maps.as_ref().unwrap()).unwrap();
    assert!(max_diff(&out.landmarks, &hard) < 1e-6);
}

#[test]
fn dropout_only_in_training() {
    for cfg in [
        tiny_seq(vec![HeadConfig::class("a", 4, &[16, 16], 0.5)]),
        tiny_comm(),
        tiny_heat(LandmarkKind::Softmax),
    ] {
        let (m, vm) = build(&cfg);
        // Positive weights and images: every unit is active, so each dropout mask shows in
        // the output (two passes agree only if >= 32 coin flips all agree).
        for v in vm.all_vars() {
            v.set(&v.as_tensor().abs().unwrap()).unwrap();
        }
        let x = images(&cfg, 2).abs().unwrap();
        let name = &cfg.heads()[0].name;
        let head = |train| m.forward_t(&x, train).unwrap().attributes[name].clone();
        let (e1, e2) = (head(false), head(false));
        assert_eq!(
            max_diff(&e1, &e2),
            0.0,
            "{}: eval must be deterministic",
            cfg.family()
        );
        let (t1, t2) = (head(true), head(true));
        assert!(
            max_diff(&t1, &t2) > 0.0,
            "{}: two training passes must differ",
            cfg.family()
        );
        assert!(
            max_diff(&t1, &e1) > 0.0,
            "{}: training must differ from eval",
            cfg.family()
        );
    }
}

#[test]
fn comm_mt_coordinate_scales() {
    // All-zero weights: the regression branch outputs 0, which is the input centre in `unit`
    // scale and the top-left pixel in `pixels` scale.
    for (scale, expect) in [
        (CoordScale::Unit, [4.5f32, 5.5]),
        (CoordScale::Pixels, [0.0, 0.0]),
    ] {
        let mut cfg = tiny_comm();
        if let ModelConfig::CommMt(c) = &mut cfg {
            c.coord_scale = scale;
        }
        let m = LandmarkModel::new(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap();
        let lm = m
            .forward_t(&images(&cfg, 1), false)
            .unwrap()
            .landmarks
            .to_vec3::<f32>()
            .unwrap();
        for p in &lm[0] {
            assert!(
                (p[0] - expect[0]).abs() < 1e-5 && (p[1] - expect[1]).abs() < 1e-5,
                "{scale:?} {p:?}"
            );
        }
    }
}

#[test]
fn seq_mt_heads_read_scaled_coordinates() {
    // A head with one linear layer of weight 1 on coordinate x0 only, bias 0, reads x0 in the
    // configured scale: pixels -> x0, unit -> 2 x0 / (W - 1) - 1.
    for scale in [CoordScale::Pixels, CoordScale::Unit] {
        let mut cfg = tiny_seq(vec![HeadConfig::real("x0", 1, &[], 0.0)]);
        if let ModelConfig::SeqMt(c) = &mut cfg {
            c.coord_scale = scale;
        }
        let (m, vm) = build(&cfg);
        let w = Tensor::new(&[[1f32, 0.0, 0.0, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        vm.data().lock().unwrap()["heads.x0.fc0.weight"]
            .set(&w)
            .unwrap();
        vm.data().lock().unwrap()["heads.x0.fc0.bias"]
            .zero_set()
            .unwrap();
        let out = m.forward_t(&images(&cfg, 2), false).unwrap();
        let lm = out.landmarks.to_vec3::<f32>().unwrap();
        let a = out.attributes["x0"].to_vec2::<f32>().unwrap();
        for b in 0..2 {
            let x0 = lm[b][0][0];
            let want = match scale {
                CoordScale::Pixels => x0,
                CoordScale::Unit => 2.0 * x0 / 9.0 - 1.0,
            };
            assert!(
                (a[b][0] - want).abs() < 1e-5,
                "{scale:?}: {} vs {want}",
                a[b][0]
            );
        }
    }
}

#[test]
fn gradients_reach_every_weight() {
    // One backward pass through RCN+ (pools, odd upsampling, concatenation, heads) and
    // Heatmap-MT: every variable gets a gradient.
    for cfg in [
        tiny_rcn(LandmarkKind::SoftArgmax),
        tiny_heat(LandmarkKind::SoftArgmax),
    ] {
        let (m, vm) = build(&cfg);
        let out = m.forward_t(&images(&cfg, 2), false).unwrap();
        let mut loss = out.landmarks.sqr().unwrap().sum_all().unwrap();
        for t in out.attributes.values() {
            loss = (loss + t.sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        let grads = loss.backward().unwrap();
        for (name, v) in vm.data().lock().unwrap().iter() {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient for {name}", cfg.family()));
            assert_eq!(g.dims(), v.dims());
        }
    }
}

#[test]
fn the_attribute_path_is_what_the_landmarks_do_not_reach() {
    // Every family: the landmarks' gradient reaches exactly the variables outside
    // `ATTRIBUTE_PATH_PREFIXES`, and the attributes' gradient reaches those inside.
    // Seq-MT's and Heatmap-MT's maps are made linear and no family drops units.
    let mut seq = tiny_seq(vec![HeadConfig::class("c", 4, &[5], 0.0)]);
    let mut comm = tiny_comm();
    let mut heat = tiny_heat(LandmarkKind::SoftArgmax);
    match (&mut seq, &mut comm, &mut heat) {
        (ModelConfig::SeqMt(s), ModelConfig::CommMt(c), ModelConfig::HeatmapMt(h)) => {
            s.map_negative_slope = 1.0;
            c.dropout = 0.0;
            h.map_negative_slope = 1.0;
            for head in &mut h.heads {
                head.dropout = 0.0;
            }
        }
        _ => unreachable!("the tiny configs' families"),
    }
    // Comm-MT's and RCN's ReLUs stay, and on one random draw all of a narrow layer's units
    // can be off for both images, which zeroes the gradient below it; so a variable counts
    // as reached when the landmarks' gradient reaches it on any of several draws (each a
    // new model and new images). No draw may reach the attribute path.
    const DRAWS: usize = 8;
    let nonzero = |g: Option<&Tensor>| {
        g.is_some_and(|g| {
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        })
    };
    for cfg in [seq, comm, heat, tiny_rcn(LandmarkKind::SoftArgmax)] {
        let mut reached = std::collections::BTreeMap::<String, bool>::new();
        for _ in 0..DRAWS {
            let (m, vm) = build(&cfg);
            let out = m.forward_t(&images(&cfg, 2), false).unwrap();
            let from_landmarks = out
                .landmarks
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut attr = out.landmarks.zeros_like().unwrap().sum_all().unwrap();
            for t in out.attributes.values() {
                attr = (attr + t.sqr().unwrap().sum_all().unwrap()).unwrap();
            }
            let from_attributes = attr.backward().unwrap();
            for (name, v) in vm.data().lock().unwrap().iter() {
                *reached.entry(name.clone()).or_default() |=
                    nonzero(from_landmarks.get(v.as_tensor()));
                if ATTRIBUTE_PATH_PREFIXES.iter().any(|p| name.starts_with(p)) {
                    assert!(
                        from_attributes.get(v.as_tensor()).is_some(),
                        "{}: {name}",
                        cfg.family()
                    );
                }
            }
        }
        let mut inside = 0;
        for (name, reached) in &reached {
            let in_path = ATTRIBUTE_PATH_PREFIXES.iter().any(|p| name.starts_with(p));
            inside += usize::from(in_path);
            assert_eq!(*reached, !in_path, "{}: {name}", cfg.family());
        }
        assert!(inside > 0, "{}: no attribute path", cfg.family());
    }
}

/// A two-conv model with fixed weights whose last conv's bias (-100) makes its output
/// negative at every pixel: the same weights whatever the last activation.
fn with_negative_last_conv(cfg: &ModelConfig) -> (LandmarkModel, VarMap) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let m = LandmarkModel::new(cfg, vb).unwrap();
    for (name, v) in vm.data().lock().unwrap().iter() {
        let n = v.elem_count();
        let vals: Vec<f32> = if name == "convs.1.bias" {
            vec![-100.0; n]
        } else {
            (0..n)
                .map(|i| ((i * 7919 % 13) as f32 - 6.0) * 0.05)
                .collect()
        };
        v.set(&Tensor::from_vec(vals, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    (m, vm)
}

/// A Seq-MT whose last conv is negative at every pixel: with the paper's ReLU its maps are
/// zero and no gradient reaches the landmark network; with a leaky ReLU the maps are
/// `slope * z` and every conv gets a gradient.
#[test]
fn leaky_last_activation_keeps_a_negative_map_trainable() {
    let x = images(&tiny_seq(vec![]), 2);
    let run = |slope: f64| {
        let mut cfg = tiny_seq(vec![]);
        if let ModelConfig::SeqMt(c) = &mut cfg {
            c.map_negative_slope = slope;
        }
        let (m, vm) = with_negative_last_conv(&cfg);
        let out = m.forward(&x).unwrap();
        let grads = out.landmarks.sum_all().unwrap().backward().unwrap();
        let data = vm.data().lock().unwrap();
        let gw: Vec<f32> = ["convs.0.weight", "convs.1.weight"]
            .iter()
            .map(|n| {
                let g = grads.get(data[*n].as_tensor());
                g.map_or(0.0, |g| {
                    g.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
                })
            })
            .collect();
        (out.maps.unwrap(), gw)
    };
    let (relu_maps, relu_grads) = run(0.0);
    assert_eq!(
        relu_maps
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert_eq!(relu_grads, [0.0, 0.0]);
    let (a, ga) = run(0.01);
    let (b, _) = run(0.5);
    assert!(a.max_all().unwrap().to_scalar::<f32>().unwrap() < 0.0);
    // Both are slope * z for the same pre-activations z.
    let za = (&a / 0.01).unwrap();
    let zb = (&b / 0.5).unwrap();
    assert!(max_diff(&za, &zb) < 1e-3, "{}", max_diff(&za, &zb));
    assert!(ga.iter().all(|&g| g > 0.0), "{ga:?}");
    // Slope 1 is the linear layer: the pre-activations themselves.
    let (c, gc) = run(1.0);
    assert!(max_diff(&c, &zb) < 1e-3, "{}", max_diff(&c, &zb));
    assert!(gc.iter().all(|&g| g > 0.0), "{gc:?}");
}

/// Heatmap-MT's per-pixel softmax after a ReLU: a trunk output negative at every pixel is a
/// uniform map with no gradient; a linear last layer keeps the gradient.
#[test]
fn heatmap_mt_linear_last_layer_keeps_a_negative_map_trainable() {
    let base = tiny_heat(LandmarkKind::Softmax);
    let x = images(&base, 2);
    let run = |slope: f64| {
        let mut cfg = base.clone();
        if let ModelConfig::HeatmapMt(c) = &mut cfg {
            c.map_negative_slope = slope;
        }
        let (m, vm) = with_negative_last_conv(&cfg);
        let out = m.forward(&x).unwrap();
        let maps = out.maps.unwrap();
        // The per-pixel softmax cross-entropy at a fixed target pixel.
        let logp = candle_nn::ops::log_softmax(&maps.flatten_from(2).unwrap(), 2).unwrap();
        let loss = logp
            .narrow(2, 5, 1)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        let g = grads.get(data["convs.0.weight"].as_tensor());
        g.map_or(0.0, |g| {
            g.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
    };
    assert_eq!(run(0.0), 0.0);
    assert!(run(1.0) > 0.0);
}

#[test]
fn wrong_input_is_a_clear_error() {
    let cfg = tiny_seq(vec![]);
    let (m, _) = build(&cfg);
    let x = Tensor::zeros((2, 1, 11, 10), DType::F32, &Device::Cpu).unwrap();
    let e = m.forward_t(&x, false).unwrap_err().to_string();
    assert!(
        e.contains("images") && e.contains("12, 10") && e.contains("[2, 1, 11, 10]"),
        "{e}"
    );
}

fn config_error(cfg: &ModelConfig) -> String {
    let e = cfg.validate().unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e:?}");
    // LandmarkModel::new validates too.
    assert!(LandmarkModel::new(cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).is_err());
    e.to_string()
}

#[test]
fn bad_configs_are_clear_errors() {
    let with_seq = |f: &dyn Fn(&mut SeqMtConfig)| {
        let mut cfg = tiny_seq(vec![HeadConfig::class("a", 4, &[6], 0.25)]);
        if let ModelConfig::SeqMt(c) = &mut cfg {
            f(c);
        }
        config_error(&cfg)
    };
    let e = with_seq(&|c| c.convs[0].channels = 0);
    assert!(e.contains("convs[0].channels"), "{e}");
    let e = with_seq(&|c| c.convs[0].kernel = 13);
    assert!(
        e.contains("convs[0].kernel") && e.contains("larger than the input"),
        "{e}"
    );
    let e = with_seq(&|c| c.convs[0].kernel = 4);
    assert!(e.contains("even"), "{e}");
    let e = with_seq(&|c| c.num_landmarks = 0);
    assert!(e.contains("num_landmarks"), "{e}");
    let e = with_seq(&|c| c.num_landmarks = 4);
    assert!(
        e.contains("convs[1].channels") && e.contains("K = 4"),
        "{e}"
    );
    let e = with_seq(&|c| c.beta = 0.0);
    assert!(e.contains("beta"), "{e}");
    let e = with_seq(&|c| c.heads.push(c.heads[0].clone()));
    assert!(e.contains("duplicate"), "{e}");
    let e = with_seq(&|c| c.heads[0].name = "a.b".into());
    assert!(e.contains("heads[0].name"), "{e}");
    let e = with_seq(&|c| c.heads[0].dropout = 1.0);
    assert!(e.contains("heads[0].dropout"), "{e}");
    let e = with_seq(&|c| c.heads[0].kind = HeadKind::Class { n: 1 });
    assert!(e.contains("heads[0].kind"), "{e}");
    let e = with_seq(&|c| c.input_size.width = 0);
    assert!(e.contains("input_size"), "{e}");
    for slope in [-0.1, 1.5, f64::NAN] {
        let e = with_seq(&|c| c.map_negative_slope = slope);
        assert!(e.contains("map_negative_slope"), "{e}");
    }

    let mut rcn = tiny_rcn(LandmarkKind::Softmax);
    if let ModelConfig::Rcn(c) = &mut rcn {
        c.levels = 5;
        c.down_kernels = vec![3; 6];
        c.up_kernels = vec![3; 5];
    }
    let e = config_error(&rcn);
    assert!(e.contains("levels") && e.contains("1x1"), "{e}");
    let mut rcn = tiny_rcn(LandmarkKind::Softmax);
    if let ModelConfig::Rcn(c) = &mut rcn {
        c.up_kernels.pop();
    }
    assert!(config_error(&rcn).contains("up_kernels"));
    let mut comm = tiny_comm();
    if let ModelConfig::CommMt(c) = &mut comm {
        c.trunk = vec![LayerSpec::Pool; 4];
    }
    assert!(config_error(&comm).contains("trunk[3]"));
}

#[test]
fn configs_parse_from_json_and_toml() {
    let json = r#"{ "family": "seq_mt", "input_size": { "height": 12, "width": 10 },
        "num_landmarks": 3, "beta": 1.0,
        "convs": [ { "kernel": 3, "channels": 4 }, { "kernel": 1, "channels": 3 } ],
        "coord_scale": "unit",
        "heads": [ { "name": "a", "kind": { "class": { "n": 4 } }, "hidden": [6], "dropout": 0.25 },
                   { "name": "b", "kind": { "real": { "n": 2 } } } ] }"#;
    let cfg = ModelConfig::from_json(json).unwrap();
    let heads = vec![
        HeadConfig::class("a", 4, &[6], 0.25),
        HeadConfig::real("b", 2, &[], 0.0),
    ];
    assert_eq!(cfg, tiny_seq(heads));
    let toml = r#"
family = "comm_mt"
num_landmarks = 3
trunk = [ { conv = { kernel = 3, channels = 4 } }, "pool", { conv = { kernel = 1, channels = 2 } } ]
shared_fc = [16]
dropout = 0.5
[input_size]
height = 12
width = 10
[[heads]]
name = "c"
kind = { class = { n = 4 } }
"#;
    assert_eq!(ModelConfig::from_toml(toml).unwrap(), tiny_comm());
    // Unknown fields, unknown families and invalid values are errors naming the problem.
    let e = ModelConfig::from_json(&json.replace("\"beta\"", "\"betta\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("betta"), "{e}");
    let e = ModelConfig::from_json(&json.replace("seq_mt", "seq_mtx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("seq_mtx"), "{e}");
    let e =
        ModelConfig::from_json(&json.replace("\"channels\": 4", "\"channels\": 0")).unwrap_err();
    assert!(e.to_string().contains("convs[0].channels"), "{e}");
    // A file: the error names it.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "family = 3").unwrap();
    let e = ModelConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("toml"), "{e}");
    let p = dir.path().join("good.json");
    std::fs::write(&p, json).unwrap();
    assert_eq!(ModelConfig::from_file(&p).unwrap().num_landmarks(), 3);
}

#[test]
fn param_count_counts_every_scalar() {
    let cfg = tiny_seq(vec![HeadConfig::class("a", 4, &[6], 0.25)]);
    let (_, vm) = build(&cfg);
    // conv 3x3 1->4, conv 1x1 4->3, FC 6->6, FC 6->4.
    let by_hand = (9 * 4 + 4) + (4 * 3 + 3) + (6 * 6 + 6) + (6 * 4 + 4);
    assert_eq!(param_count(&vm), by_hand);
    assert_eq!(config_param_count(&cfg).unwrap(), by_hand);
}

#[test]
fn zero_init_output_heads_start_uniform_and_still_learn() {
    // A head with `zero_init_output` gives 0 for every image (uniform class probabilities)
    // and sends no gradient into the trunk at the first step; its own output layer gets
    // one (from the features), so it can start learning.
    let mut cfg = tiny_comm();
    if let ModelConfig::CommMt(c) = &mut cfg {
        c.heads[0].zero_init_output = true;
    }
    let (m, vm) = build(&cfg);
    let out = m.forward_t(&images(&cfg, 3), false).unwrap();
    let logits = &out.attributes["c"];
    assert_eq!(logits.dims(), &[3, 4]);
    assert_eq!(max_diff(logits, &logits.zeros_like().unwrap()), 0.0);
    let target = Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(logits, &target).unwrap();
    assert!((loss.to_scalar::<f32>().unwrap() - 4f32.ln()).abs() < 1e-6);
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let grad_norm = |name: &str| {
        let g = grads.get(data[name].as_tensor()).unwrap();
        g.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(grad_norm("heads.c.fc0.weight") > 0.0);
    assert!(grad_norm("heads.c.fc0.bias") > 0.0);
    assert_eq!(grad_norm("shared.fc0.weight"), 0.0);
    // The field is left out of the JSON when off, so older configs read and print as before.
    let plain = serde_json::to_string(&HeadConfig::class("c", 4, &[], 0.0)).unwrap();
    assert!(!plain.contains("zero_init_output"), "{plain}");
}
