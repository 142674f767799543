//! Every preset's parameter count against the count worked out from its table.

use landmark_ssl_models::{
    config_param_count, preset, ModelConfig, PRESET_NAMES, SEQMT_MAP_NEGATIVE_SLOPE,
};

/// A k x k convolution from `cin` to `cout` maps: weights plus biases.
fn conv(k: usize, cin: usize, cout: usize) -> usize {
    k * k * cin * cout + cout
}

/// A fully connected layer.
fn fc(i: usize, o: usize) -> usize {
    i * o + o
}

/// An MLP head 256-256-n on `i` inputs (Tables S11-S12).
fn mlp256(i: usize, n: usize) -> usize {
    fc(i, 256) + fc(256, 256) + fc(256, n)
}

/// The Seq-MT localisation trunks (Tables S11-S13).
fn trunk_blocks(k: usize) -> usize {
    conv(9, 1, 8) + 5 * conv(9, 8, 8) + conv(1, 8, 8) + conv(1, 8, k)
}
fn trunk_s12(k: usize) -> usize {
    conv(9, 1, 64) + 4 * conv(9, 64, 64) + conv(9, 64, k)
}

/// Table S9 scaled: 5 conv 9x9, pool, conv 9x9, pool, 2 x conv 1x1 on `m` maps, input `s`,
/// flatten, FC 256, FC 256, then linear heads `ns` and 2K landmark outputs.
fn comm(m: usize, s: usize, k: usize, ns: &[usize]) -> usize {
    let flat = m * (s / 4) * (s / 4);
    conv(9, 1, m)
        + 5 * conv(9, m, m)
        + 2 * conv(1, m, m)
        + fc(flat, 256)
        + fc(256, 256)
        + ns.iter().map(|&n| fc(256, n)).sum::<usize>()
        + fc(256, 2 * k)
}

/// Table S10 scaled: trunk + (pool, conv 9x9 on `m` maps) x 4 from K maps, flatten, one
/// MLP 256-256-n per head.
fn heat(trunk: usize, m: usize, s: usize, k: usize, ns: &[usize]) -> usize {
    let side = s / 2 / 2 / 2 / 2;
    trunk
        + conv(9, k, m)
        + 3 * conv(9, m, m)
        + ns.iter()
            .map(|&n| mlp256(m * side * side, n))
            .sum::<usize>()
}

/// RCN (our reading of Fig. S3): C maps, L poolings, down kernels 5 then 3 (`last` at the
/// coarsest level), one conv per level down, two 3x3 per level up (2C -> C, C -> C), 1x1
/// output to K maps.
fn rcn(c: usize, levels: usize, last: usize, k: usize) -> usize {
    conv(5, 1, c)
        + (levels - 1) * conv(3, c, c)
        + conv(last, c, c)
        + levels * (conv(3, 2 * c, c) + conv(3, c, c))
        + conv(1, c, k)
}

fn expected(name: &str) -> usize {
    match name {
        // Table S11, Shapes: trunk to 2 maps, FC 40 ReLU, FC 2.
        "seqmt-shapes" => trunk_blocks(2) + fc(4, 40) + fc(40, 2),
        // Table S11, Blocks (= the torch reference): 656 + 5 * 5192 + 72 + 45 + MLP 10-256-256-15.
        "seqmt-blocks" => trunk_blocks(5) + mlp256(10, 15),
        "seqmt-hgr1" => trunk_s12(25) + mlp256(50, 27),
        "seqmt-multipie" => trunk_s12(68) + mlp256(136, 6) + mlp256(136, 5),
        // Table S13: 7 x 9x9x32, 9x9x68.
        "seqmt-300w" => conv(9, 1, 32) + 6 * conv(9, 32, 32) + conv(9, 32, 68),
        "commmt-blocks" => comm(8, 60, 5, &[15]),
        "commmt-hgr1" => comm(64, 64, 25, &[27]),
        "commmt-multipie" => comm(64, 64, 68, &[6, 5]),
        "heatmapmt-blocks" | "heatmapmt-sa-blocks" => heat(trunk_blocks(5), 8, 60, 5, &[15]),
        "heatmapmt-hgr1" | "heatmapmt-sa-hgr1" => heat(trunk_s12(25), 64, 64, 25, &[27]),
        "heatmapmt-multipie" | "heatmapmt-sa-multipie" => heat(trunk_s12(68), 64, 64, 68, &[6, 5]),
        "rcn-300w" | "rcnplus-300w" => rcn(64, 4, 3, 68),
        "rcn-mtfl" => rcn(64, 4, 3, 5),
        "rcnplus-mtfl" => rcn(64, 4, 3, 5) + mlp256(10, 5),
        "rcn-aflw" => rcn(70, 6, 1, 19),
        "rcnplus-aflw" => rcn(70, 6, 1, 19) + mlp256(38, 3),
        other => panic!("no hand count for preset {other}: add one"),
    }
}

#[test]
fn every_preset_matches_its_table() {
    for name in PRESET_NAMES {
        let cfg = preset(name).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            config_param_count(&cfg).unwrap(),
            expected(name),
            "preset {name}"
        );
    }
}

#[test]
fn torch_reference_counts() {
    // `python3 torch_reference.py seqmt-blocks` prints seqmt-blocks_params=99196, and
    // seqmt-multipie_params=1889743; by hand: 656 + 5 * 5192 + 72 + 45 + 2816 + 65792 + 3855.
    assert_eq!(656 + 5 * 5192 + 72 + 45 + 2816 + 65792 + 3855, 99196);
    assert_eq!(
        config_param_count(&preset("seqmt-blocks").unwrap()).unwrap(),
        99196
    );
    assert_eq!(
        config_param_count(&preset("seqmt-multipie").unwrap()).unwrap(),
        1889743
    );
}

#[test]
fn preset_facts() {
    let ModelConfig::Rcn(r) = preset("rcn-300w").unwrap() else {
        panic!("rcn-300w is not an RCN")
    };
    assert_eq!(
        (r.input_size.height, r.channels, r.num_landmarks),
        (80, 64, 68)
    );
    assert_eq!(80 >> r.levels, 5, "300W goes down to 5x5");
    let ModelConfig::Rcn(a) = preset("rcn-aflw").unwrap() else {
        panic!("rcn-aflw is not an RCN")
    };
    assert_eq!(a.channels, 70);
    assert_eq!(80 >> a.levels, 1, "AFLW goes down to 1x1");
    assert_eq!(a.levels, r.levels + 2);
    use landmark_ssl_models::LandmarkKind::*;
    assert_eq!(preset("rcn-300w").unwrap().landmark_kind(), Softmax);
    assert_eq!(preset("rcnplus-300w").unwrap().landmark_kind(), SoftArgmax);
    assert_eq!(preset("heatmapmt-blocks").unwrap().landmark_kind(), Softmax);
    assert_eq!(
        preset("heatmapmt-sa-blocks").unwrap().landmark_kind(),
        SoftArgmax
    );
    assert_eq!(preset("seqmt-multipie").unwrap().beta(), Some(0.001));
    assert_eq!(preset("seqmt-300w").unwrap().beta(), Some(0.01));
    // seqmt-blocks ends in the leaky ReLU and seqmt-shapes linear (the library's choices, not
    // the paper's); the other Seq-MT presets keep the paper's ReLU.
    for name in PRESET_NAMES.iter().filter(|n| n.starts_with("seqmt-")) {
        let want = match *name {
            "seqmt-blocks" => SEQMT_MAP_NEGATIVE_SLOPE,
            "seqmt-shapes" => 1.0,
            _ => 0.0,
        };
        match preset(name).unwrap() {
            ModelConfig::SeqMt(c) => assert_eq!(c.map_negative_slope, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let heads: Vec<_> = preset("seqmt-multipie")
        .unwrap()
        .heads()
        .iter()
        .map(|h| h.name.clone())
        .collect();
    assert_eq!(heads, ["emotion", "camera"]);
    assert!(preset("commmt-shapes").is_err());
    let e = preset("nope").unwrap_err().to_string();
    assert!(e.contains("seqmt-blocks"), "{e}");
}

#[test]
fn presets_round_trip_json_and_toml() {
    for name in PRESET_NAMES {
        let cfg = preset(name).unwrap();
        let j = cfg.to_json().unwrap();
        assert_eq!(ModelConfig::from_json(&j).unwrap(), cfg, "{name} json");
        let t = cfg.to_toml().unwrap();
        assert_eq!(
            ModelConfig::from_toml(&t).unwrap(),
            cfg,
            "{name} toml:\n{t}"
        );
    }
}
