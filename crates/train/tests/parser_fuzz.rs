//! Random and mutated experiment files, `state.json` files and logs: the parsers and
//! checks return an error or a value, never panic; the log repair always leaves one line
//! per committed epoch.

use std::path::Path;

use landmark_ssl_train::checkpoint::{self, TrainState};
use landmark_ssl_train::{EpochRecord, ExperimentConfig};
use proptest::prelude::*;

const SAMPLE_TOML: &str = r#"
name = "fuzz"
seed = 4
[data]
kind = "blocks"
generated_sizes = [100, 20, 20]
crop_factor = 1.3
[model]
preset = "seqmt-blocks"
[labels]
landmark_fraction = 0.05
[costs]
elt_on = "all"
attribute_weights = { config = 1.0 }
[schedule]
epochs = 3
batch_size = 16
labelled_per_batch = 4
[schedule.adam]
lr = 0.001
beta1 = 0.9
[eval]
normalizer = { Points = [0, 4] }
threshold = 5.0
"#;

/// Bytes that make TOML and JSON interesting: delimiters, digits, signs, quotes.
const ALPHABET: &[u8] = b"[]{}=,.\"'\n -+0123456789eEinfatrul_:#/\\";

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let byte = prop::sample::select(ALPHABET);
    let edit = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    prop::collection::vec(edit, 1..8)
}

/// `text` with the edits applied (positions modulo its length; the result may be any
/// bytes, read as UTF-8 with replacement).
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn record(epoch: usize) -> EpochRecord {
    EpochRecord {
        epoch,
        lr: 1e-3,
        train: [("total".to_string(), 0.5)].into(),
        valid_error: 2.0 / epoch as f64,
        valid_unit: "px".into(),
        valid_accuracy: Default::default(),
        images_per_sec: 10.0,
        seconds: 1.5,
        best: true,
        grad_norm: None,
        map_logit_range: None,
    }
}

fn sample_state(cfg: &ExperimentConfig, epochs: usize) -> String {
    let mut s = TrainState::new(cfg, &cfg.resolved_model().unwrap());
    s.epoch = epochs;
    s.history = (1..=epochs).map(record).collect();
    s.best_epoch = epochs;
    s.best_valid = 1.0;
    (s.weights, s.optimizer) = checkpoint::epoch_files(epochs);
    serde_json::to_string_pretty(&s).unwrap()
}

/// Parses and checks an experiment; the result does not matter, only that it returns.
fn parse_experiment(text: &str) {
    if let Ok(cfg) = ExperimentConfig::from_toml_str(text) {
        let _ = cfg.validate();
        let _ = cfg.lr_rampup_factor(cfg.costs.warmup_epochs, 0, 7);
        let _ = cfg.lr_anneal_factor(cfg.schedule.epochs, 0, 7);
    }
}

fn parse_state(text: &str, cfg: &ExperimentConfig) {
    if let Ok(state) = serde_json::from_str::<TrainState>(text) {
        if state.check().is_ok() {
            let _ = state.check_schedule(cfg);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_experiments_never_panic(e in edits()) {
        parse_experiment(&mutate(SAMPLE_TOML, &e));
    }

    #[test]
    fn random_experiments_never_panic(text in "[\\[\\]a-z_.= \n0-9\"{},-]{0,200}") {
        parse_experiment(&text);
    }

    #[test]
    fn mutated_states_never_panic(e in edits(), epochs in 1usize..4) {
        let cfg = ExperimentConfig::default();
        parse_state(&mutate(&sample_state(&cfg, epochs), &e), &cfg);
    }
}

proptest! {
    // Each case writes and reads a file.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_repair_leaves_one_line_per_committed_epoch(
        e in edits(),
        logged in 0usize..5,
        committed in 0usize..4,
    ) {
        let dir = std::env::temp_dir().join(format!("lssl-fuzz-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log: String = (1..=logged)
            .map(|i| serde_json::to_string(&record(i)).unwrap() + "\n")
            .collect();
        std::fs::write(dir.join("log.jsonl"), mutate(&log, &e)).unwrap();
        let history: Vec<EpochRecord> = (1..=committed).map(record).collect();
        checkpoint::reconcile_log(&dir, &history).unwrap();
        let epochs = epochs_in(&dir);
        prop_assert_eq!(epochs, (1..=committed as u64).collect::<Vec<_>>());
    }
}

fn epochs_in(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}
