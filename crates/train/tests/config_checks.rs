//! Experiment files with typos, out-of-range values and sizes past the limits: each is
//! refused before any data are generated, with an error that names the field.

use std::path::Path;

use landmark_ssl_train::config::{MAX_BATCH_SIZE, MAX_GENERATED_IMAGES};
use landmark_ssl_train::ExperimentConfig;

/// The error of parsing and validating `toml` (which must fail), as text.
fn refusal(toml: &str) -> String {
    match ExperimentConfig::from_toml_str(toml) {
        Err(e) => e.to_string(),
        Ok(cfg) => match cfg.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted:\n{toml}"),
        },
    }
}

fn assert_refused(toml: &str, wants: &[&str]) {
    let err = refusal(toml);
    for want in wants {
        assert!(err.contains(want), "{toml}\n-> {err}\n(wanted `{want}`)");
    }
}

#[test]
fn unknown_adam_fields_are_refused() {
    assert_refused("[schedule.adam]\nlearning_rate = 0.5\n", &["learning_rate"]);
    // The right name is accepted.
    let cfg = ExperimentConfig::from_toml_str("[schedule.adam]\nlr = 0.5\n").unwrap();
    assert_eq!(cfg.schedule.adam.lr, 0.5);
    cfg.validate().unwrap();
}

#[test]
fn adam_settings_outside_its_domain_are_refused() {
    for (toml, field) in [
        ("beta1 = 1.5", "schedule.adam.beta1"),
        ("beta1 = 1.0", "schedule.adam.beta1"),
        ("beta2 = -1.0", "schedule.adam.beta2"),
        ("eps = 0.0", "schedule.adam.eps"),
        ("eps = inf", "schedule.adam.eps"),
        ("lr = -0.05", "schedule.adam.lr"),
        ("lr = nan", "schedule.adam.lr"),
    ] {
        assert_refused(&format!("[schedule.adam]\n{toml}\n"), &[field]);
    }
}

#[test]
fn a_relative_clip_at_or_below_1_is_refused() {
    for v in ["1.0", "0.5", "-2.0", "nan", "inf"] {
        assert_refused(
            &format!("[schedule]\nclip_grad_relative = {v}\n"),
            &["schedule.clip_grad_relative"],
        );
    }
    for v in ["0.0", "3.0"] {
        let toml = format!("[schedule]\nclip_grad_relative = {v}\n");
        ExperimentConfig::from_toml_str(&toml)
            .unwrap()
            .validate()
            .unwrap();
    }
}

#[test]
fn a_weight_average_decay_outside_0_to_1_is_refused() {
    for v in ["1.0", "-0.5", "nan", "inf"] {
        assert_refused(
            &format!("[schedule]\nweight_average_decay = {v}\n"),
            &["schedule.weight_average_decay", "[0, 1)"],
        );
    }
    let cfg = ExperimentConfig::from_toml_str("[schedule]\nweight_average_decay = 0.99\n").unwrap();
    cfg.validate().unwrap();
}

#[test]
fn empty_schedules_and_oversized_batches_are_refused() {
    assert_refused("[schedule]\nepochs = 0\n", &["schedule.epochs"]);
    assert_refused(
        "[schedule]\nbatch_size = 100000\n",
        &["schedule.batch_size", &MAX_BATCH_SIZE.to_string()],
    );
    assert_refused("[schedule]\nbatch_size = 0\n", &["schedule.batch_size"]);
}

#[test]
fn generated_sizes_past_the_limit_are_refused() {
    let limit = MAX_GENERATED_IMAGES.to_string();
    for sizes in [
        "[100000000000, 3200, 3200]",
        // Their sum overflows 64 bits.
        "[9223372036854775807, 9223372036854775807, 9223372036854775807]",
        "[60000, 30000, 30000]",
    ] {
        for kind in ["blocks", "shapes"] {
            assert_refused(
                &format!("[data]\nkind = \"{kind}\"\ngenerated_sizes = {sizes}\n"),
                &["data.generated_sizes", &limit],
            );
        }
    }
    assert_refused(
        "[data]\ngenerated_sizes = [100, 0, 10]\n",
        &["data.generated_sizes", "validation"],
    );
    // Negative sizes are not even numbers of images.
    assert_refused(
        "[data]\ngenerated_sizes = [-1, 10, 10]\n",
        &["generated_sizes"],
    );
}

#[test]
fn an_unknown_data_kind_lists_the_known_ones() {
    assert_refused(
        "[data]\nkind = \"blokcs\"\n",
        &[
            "line 2",
            "unknown variant `blokcs`, expected one of `blocks`, `shapes`, `300w`",
            "generic-json",
        ],
    );
    assert_refused("device = \"gpu\"\n", &["line 1", "device", "cuda:N"]);
    assert_refused("[data]\nkind = \"mtfl\"\n", &["data.train", "mtfl"]);
}

#[test]
fn evaluation_and_crop_settings_are_checked_before_training() {
    for t in ["0.0", "-1.0", "nan", "inf"] {
        assert_refused(&format!("[eval]\nthreshold = {t}\n"), &["eval.threshold"]);
    }
    // The default model (seqmt-blocks) has 5 landmarks.
    for n in [
        "{ Points = [0, 9] }",
        "{ Points = [2, 2] }",
        "\"EyeCentres68\"",
        "\"WristWidth\"",
        "{ FaceSize = { width = 0.0, height = 10.0 } }",
    ] {
        assert_refused(&format!("[eval]\nnormalizer = {n}\n"), &["eval.normalizer"]);
    }
    let ok = ExperimentConfig::from_toml_str("[eval]\nnormalizer = { Points = [0, 4] }\n");
    ok.unwrap().validate().unwrap();
    for c in ["0.0", "-1.3", "nan", "1e300"] {
        assert_refused(
            &format!("[data]\ncrop_factor = {c}\n"),
            &["data.crop_factor"],
        );
    }
    assert_refused(
        "[data]\nvalid_fraction = 0.6\ntest_fraction = 0.4\n",
        &["data.test_fraction"],
    );
    assert_refused("[data]\njitter_shift = -0.1\n", &["data.jitter_shift"]);
    assert_refused(
        "[costs]\nattribute_weights = { config = -1.0 }\n",
        &["costs.attribute_weights.config"],
    );
}

#[test]
fn the_costs_on_the_maps_shape_are_checked() {
    for v in ["-0.1", "nan", "inf"] {
        assert_refused(
            &format!("[costs]\nmap_spread = {v}\n"),
            &["costs.map_spread"],
        );
        assert_refused(
            &format!("[costs]\nmap_overlap = {v}\n"),
            &["costs.map_overlap"],
        );
    }
    for v in ["0", "-1", "nan", "inf"] {
        assert_refused(
            &format!("[costs]\nmap_overlap_sigma = {v}\n"),
            &["costs.map_overlap_sigma"],
        );
    }
    let cfg = ExperimentConfig::from_toml_str(
        "[costs]\nmap_spread = 0.001\nmap_overlap = 1.0\nmap_overlap_sigma = 3.0\n",
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        (
            cfg.costs.map_spread,
            cfg.costs.map_overlap,
            cfg.costs.map_overlap_sigma
        ),
        (0.001, 1.0, 3.0)
    );
}

#[test]
fn label_smoothing_is_checked() {
    for v in ["-0.1", "1.0", "nan", "inf"] {
        assert_refused(
            &format!("[costs]\nlabel_smoothing = {v}\n"),
            &["costs.label_smoothing"],
        );
    }
    assert_eq!(ExperimentConfig::default().costs.label_smoothing, 0.1);
    // 0 is the paper's plain cross-entropy.
    let cfg = ExperimentConfig::from_toml_str("[costs]\nlabel_smoothing = 0.0\n").unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.costs.label_smoothing, 0.0);
}

/// The shipped experiment files (and the smallest one) still pass every check.
#[test]
fn shipped_experiments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            ExperimentConfig::from_toml_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "{n} experiment files");
    ExperimentConfig::from_toml_str("[data]\nkind = \"blocks\"\n")
        .unwrap()
        .validate()
        .unwrap();
}

/// An experiment file past the size limit is refused without being read whole.
#[test]
fn oversized_experiment_files_are_refused() {
    let path = std::env::temp_dir().join(format!("lssl-big-{}.toml", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(landmark_ssl_train::config::MAX_CONFIG_BYTES + 1)
        .unwrap();
    let err = ExperimentConfig::from_toml_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most"), "{err}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn limits_are_raised_from_the_experiment() {
    assert_refused(
        "[schedule]\nbatch_size = 2000\n",
        &["schedule.batch_size", "limits.max_batch_size"],
    );
    let cfg = ExperimentConfig::from_toml_str(
        "[schedule]\nbatch_size = 2000\n[limits]\nmax_batch_size = 4096\nmax_samples = 7\nmax_params = 99\n",
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.limits.data().max_samples, 7);
    assert_eq!(
        cfg.limits.data().max_file_bytes,
        landmark_ssl_data::Limits::default().max_file_bytes
    );
    assert_eq!(cfg.limits.model().max_params, 99);
    assert_refused("[limits]\nmax_pixels = 5\n", &["max_pixels", "line 2"]);
    assert_refused(
        "[data]\ngenerated_sizes = [60000, 30000, 30000]\n",
        &["limits.max_generated_images"],
    );
    // A lowered model limit refuses the preset before any data are generated.
    let mut cfg = ExperimentConfig::default();
    cfg.limits.max_params = Some(10);
    cfg.data.generated_sizes = [10, 10, 10];
    cfg.output.dir = std::env::temp_dir().join(format!("lssl-limits-{}", std::process::id()));
    let e = landmark_ssl_train::Trainer::new(cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("max_params"), "{e}");
}
