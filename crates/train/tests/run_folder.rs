//! A run folder as a kill or a hostile user may leave it: a `state.json` that names files
//! outside the folder or out-of-range values, a log with lines of an epoch the state never
//! committed, temporary files of a killed writer. Resume refuses the first without reading
//! or deleting anything outside the folder, and repairs the others.

use std::path::{Path, PathBuf};

use landmark_ssl_models::{ConvSpec, HeadConfig, InputSize, ModelConfig, SeqMtConfig};
use landmark_ssl_train::{ExperimentConfig, Trainer};

fn tiny_experiment(dir: &Path, epochs: usize) -> ExperimentConfig {
    let mut cfg = ExperimentConfig {
        name: "tiny".into(),
        seed: 3,
        ..Default::default()
    };
    cfg.data.generated_sizes = [48, 12, 12];
    cfg.labels.landmark_fraction = 0.25;
    cfg.model.config = Some(ModelConfig::SeqMt(SeqMtConfig {
        in_channels: 1,
        input_size: InputSize::square(60),
        num_landmarks: 5,
        beta: 1.0,
        convs: vec![ConvSpec::new(5, 4), ConvSpec::new(3, 5)],
        map_negative_slope: 0.0,
        coord_scale: Default::default(),
        heads: vec![HeadConfig::class("config", 15, &[16], 0.25)],
    }));
    cfg.schedule.epochs = epochs;
    // Every cost from the first step: these tests are about the loop, not the recipe.
    cfg.costs.warmup_epochs = 0;
    cfg.schedule.lr_rampup_epochs = 0;
    cfg.schedule.restart_optimizer_at_join = false;
    cfg.schedule.batch_size = 12;
    cfg.schedule.labelled_per_batch = 4;
    cfg.schedule.max_steps_per_epoch = 2;
    cfg.output.dir = dir.to_path_buf();
    cfg.output.progress = false;
    cfg.output.overlays = 1;
    cfg
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lssl-runfolder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn log_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn log_epochs(dir: &Path) -> Vec<u64> {
    log_lines(dir)
        .iter()
        .map(|v| v["epoch"].as_u64().unwrap())
        .collect()
}

/// `state.json` naming files outside the run folder (relative with `..`, absolute, or a
/// symlink to outside) is refused; the outside files are neither used nor deleted.
#[test]
fn state_files_outside_the_run_folder_are_refused_and_kept() {
    let d = fresh_dir("outside");
    Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    let outside = d.with_file_name(format!(
        "lssl-runfolder-outside-{}.safetensors",
        std::process::id()
    ));
    std::fs::copy(d.join("epoch-0001.safetensors"), &outside).unwrap();
    let state_file = d.join("state.json");
    let original = read_json(&state_file);
    let outside_name = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
    for (field, value, want) in [
        ("weights", outside_name.as_str(), "`..`"),
        ("optimizer", outside_name.as_str(), "`..`"),
        ("weights", outside.to_str().unwrap(), "absolute"),
        ("optimizer", outside.to_str().unwrap(), "absolute"),
    ] {
        let mut state = original.clone();
        state[field] = value.into();
        write_json(&state_file, &state);
        let err = Trainer::new(tiny_experiment(&d, 2))
            .err()
            .expect("must refuse")
            .to_string();
        assert!(err.contains(want) && err.contains(field), "{err}");
        assert!(
            outside.exists(),
            "{field} = {value}: the outside file is gone"
        );
    }
    // The named file is a symlink to the outside file.
    write_json(&state_file, &original);
    let weights = d.join("epoch-0001.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::os::unix::fs::symlink(&outside, &weights).unwrap();
    let err = Trainer::new(tiny_experiment(&d, 2))
        .err()
        .expect("must refuse")
        .to_string();
    assert!(err.contains("outside the run folder"), "{err}");
    assert!(outside.exists());
    std::fs::remove_file(outside).unwrap();
    std::fs::remove_dir_all(d).unwrap();
}

/// Out-of-range or inconsistent values of `state.json` are refused, naming the field.
#[test]
fn state_values_are_validated() {
    let d = fresh_dir("values");
    Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    let state_file = d.join("state.json");
    let original = read_json(&state_file);
    let cases: [(&str, serde_json::Value, &str); 6] = [
        ("lr", (-0.05).into(), "`lr`"),
        ("lr", 0.5.into(), "`lr`"),
        ("epoch", 7.into(), "`epoch`"),
        ("epoch", 0.into(), "`epoch`"),
        ("best_valid", (-1.0).into(), "`best_valid`"),
        ("stopped_early", true.into(), "stopped_early"),
    ];
    for (field, value, want) in cases {
        let mut state = original.clone();
        state[field] = value.clone();
        write_json(&state_file, &state);
        let err = Trainer::new(tiny_experiment(&d, 2))
            .err()
            .unwrap_or_else(|| panic!("{field} = {value} accepted"))
            .to_string();
        assert!(err.contains(want), "{field} = {value}: {err}");
    }
    std::fs::write(&state_file, "{ \"epoch\": ").unwrap();
    let err = Trainer::new(tiny_experiment(&d, 2))
        .err()
        .expect("must refuse")
        .to_string();
    assert!(err.contains("state.json"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

/// Kills between the log and the state: with the log a line ahead of the state (as the
/// former order left it), or behind it (a kill after the commit, before the log line),
/// or torn mid-line, the resumed run has exactly one line per epoch; stray temporary
/// files and uncommitted epoch files are removed on resume.
#[test]
fn kills_between_log_and_state_leave_one_line_per_epoch() {
    let d = fresh_dir("kill");
    Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    assert_eq!(log_epochs(&d), [1]);
    // Epoch 2 was logged (and its weights written), then the process was killed before
    // `state.json` committed it; temporary files of the killed writer are left.
    let mut fake = log_lines(&d)[0].clone();
    fake["epoch"] = 2.into();
    fake["valid_error"] = 12345.0.into();
    let mut log = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    log.push_str(&format!("{fake}\n"));
    std::fs::write(d.join("log.jsonl"), log).unwrap();
    std::fs::copy(
        d.join("epoch-0001.safetensors"),
        d.join("epoch-0002.safetensors"),
    )
    .unwrap();
    let stray = [
        d.join("state.json.tmp123"),
        d.join(".epoch-0002.safetensors.tmp4567"),
        d.join("overlays/test-000.png.tmp89"),
    ];
    for s in &stray {
        std::fs::write(s, b"partial").unwrap();
    }
    let mut resumed = Trainer::new(tiny_experiment(&d, 2)).unwrap();
    for s in &stray {
        assert!(!s.exists(), "{} is left", s.display());
    }
    assert!(!d.join("epoch-0002.safetensors").exists());
    assert_eq!(log_epochs(&d), [1], "the uncommitted line is dropped");
    resumed.run().unwrap();
    assert_eq!(log_epochs(&d), [1, 2]);
    assert!(log_lines(&d).iter().all(|v| v["valid_error"] != 12345.0));

    // Killed after the commit of epoch 3, before its log line; then a torn line.
    Trainer::new(tiny_experiment(&d, 3)).unwrap().run().unwrap();
    let full = log_lines(&d);
    let text = std::fs::read_to_string(d.join("log.jsonl")).unwrap();
    let two_lines: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(
        d.join("log.jsonl"),
        format!("{two_lines}{{\"epoch\": 3, \"lr"),
    )
    .unwrap();
    Trainer::new(tiny_experiment(&d, 3)).unwrap().run().unwrap();
    let repaired = log_lines(&d);
    assert_eq!(log_epochs(&d), [1, 2, 3]);
    for key in ["valid_error", "lr"] {
        let (a, b) = (
            repaired[2][key].as_f64().unwrap(),
            full[2][key].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 1e-12 * b.abs(), "{key}: {a} against {b}");
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// A log without any committed state (a kill in the first epoch under the former order)
/// is emptied when the run starts, so the first epoch's line is not repeated.
#[test]
fn a_log_without_state_is_restarted() {
    let d = fresh_dir("nostate");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("log.jsonl"), "{\"epoch\": 1}\n").unwrap();
    Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    assert_eq!(log_epochs(&d), [1]);
    assert!(log_lines(&d)[0]["valid_error"].is_number());
    std::fs::remove_dir_all(d).unwrap();
}

/// `best.safetensors` only ever holds a committed epoch: a kill after the state committed
/// a new best epoch but before the best file was copied leaves the older best (or none),
/// and the resume makes it the committed epoch's weights again.
#[test]
fn a_kill_before_the_best_copy_is_repaired_on_resume() {
    let d = fresh_dir("best");
    let first = Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    let best = d.join("best.safetensors");
    let committed = std::fs::read(d.join("epoch-0001.safetensors")).unwrap();
    assert_eq!(std::fs::read(&best).unwrap(), committed);
    // The kill came before the copy: no best file yet.
    std::fs::remove_file(&best).unwrap();
    let again = Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    assert_eq!(std::fs::read(&best).unwrap(), committed);
    assert_eq!(again.test.mean_error, first.test.mean_error);
    std::fs::remove_dir_all(d).unwrap();
}
