//! The experiment files shipped in `examples/experiments/` parse, name existing presets,
//! and (for generated data) build a trainer.

use std::path::Path;

use landmark_ssl::train::{ExperimentConfig, Trainer};

#[test]
fn shipped_experiments_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let cfg = ExperimentConfig::from_toml_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let model = cfg
            .resolved_model()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        model
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.name.is_empty(), "{}", path.display());
        if cfg.costs.attribute {
            assert!(
                !model.heads().is_empty(),
                "{}: the A cost needs an attribute head",
                path.display()
            );
        }
        n += 1;
    }
    assert_eq!(n, 7, "blocks, 300w, aflw, mtfl, hgr1, wflw, coco");
}

#[test]
fn blocks_experiment_builds_a_trainer() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/experiments/blocks.toml");
    let mut cfg = ExperimentConfig::from_toml_file(&path).unwrap();
    cfg.data.generated_sizes = [200, 20, 20];
    cfg.output.dir = std::env::temp_dir().join(format!("lssl-exp-{}", std::process::id()));
    let trainer = Trainer::new(cfg).unwrap();
    let labels = &trainer.splits().labels;
    assert_eq!(labels.with_landmarks, 10); // 5% of 200
    assert_eq!(labels.balanced_by.as_deref(), Some("config"));
    let per_class = &labels.landmarks_per_class;
    assert_eq!(per_class.len(), 15);
    assert!(per_class.iter().all(|&c| c <= 1), "balanced: {per_class:?}");
}

#[test]
fn blocks_experiment_is_the_default_recipe() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/experiments/blocks.toml");
    let file = ExperimentConfig::from_toml_file(&path).unwrap();
    let default = ExperimentConfig::default();
    // Everything but the name and the output folder: the file writes the recipe out.
    assert_eq!(file.data, default.data);
    assert_eq!(file.costs, default.costs);
    assert_eq!(file.schedule, default.schedule);
    assert_eq!(file.labels, default.labels);
    assert_eq!(file.model, default.model);
    assert_eq!(file.seed, default.seed);
}

#[test]
fn a_bad_experiment_file_names_the_field() {
    let path = std::env::temp_dir().join(format!("lssl-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[schedule]\nbatch_size = 0\n").unwrap();
    let err = ExperimentConfig::from_toml_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("schedule.batch_size"), "{err}");
    std::fs::write(&path, "[data]\nkind = \"blocks\"\nunknown = 1\n").unwrap();
    let err = ExperimentConfig::from_toml_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown") && err.contains(&path.display().to_string()),
        "{err}"
    );
    std::fs::remove_file(path).unwrap();
}
