//! The results file of `examples/table1.rs` and what is computed from it.
//!
//! * One JSON line per finished run ([`RunRecord`]), appended, flushed and synced
//!   ([`append_record`]). A line a kill cut short can only be the last one; it is ignored
//!   on reading ([`parse_results`]) and dropped before the next append.
//! * The skip test ([`is_done`]): a run is done when a line has its model, costs,
//!   fraction, seed and config fingerprint ([`run_fingerprint`]).
//! * The per-cell statistics ([`cell_stats`]) and the revision label.
//!
//! One runner at a time per results file: two runners appending at once are not locked
//! against each other.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::table1_grid::Row;

/// The largest results file read, in bytes (a line is about 400 bytes).
pub const MAX_RESULTS_BYTES: u64 = 32 << 20;

/// What went wrong with the results file.
#[derive(Debug)]
pub enum ResultsError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    TooLarge {
        path: PathBuf,
        bytes: u64,
    },
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl fmt::Display for ResultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::TooLarge { path, bytes } => write!(
                f,
                "{}: {bytes} bytes; a results file may have at most {MAX_RESULTS_BYTES}",
                path.display()
            ),
            Self::Line {
                path,
                line,
                message,
            } => write!(f, "{} line {line}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ResultsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One finished run: a line of the results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`Row::id`].
    pub row: String,
    /// The model-zoo preset.
    pub model: String,
    /// The costs (`L`, `L+A`, `L+ELT`, `L+ELT+A`).
    pub costs: String,
    /// Fraction of training images with landmark labels.
    pub fraction: f64,
    pub seed: u64,
    /// Mean test error, pixels, with the best validation epoch's weights.
    pub test_error_px: f64,
    /// Test accuracy of the class head (0-1); `None` without the A cost, which alone trains
    /// the head.
    pub class_accuracy: Option<f64>,
    /// The epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Seconds of the epochs (training and validation) over every session of the run;
    /// the final test evaluation is not counted.
    pub seconds: f64,
    /// `git rev-parse --short HEAD`, `-dirty` when the tree had changes, or `unknown`.
    pub revision: String,
    /// [`run_fingerprint`] of the run's resolved config.
    pub fingerprint: String,
    /// [`recipe_fingerprint`]: the same for every run of one recipe.
    pub recipe: String,
}

/// What identifies a run: a finished run with the same key is not run again.
#[derive(Debug, Clone, PartialEq)]
pub struct RunKey<'a> {
    pub model: &'a str,
    pub costs: &'a str,
    pub fraction: f64,
    pub seed: u64,
    pub fingerprint: &'a str,
}

impl RunRecord {
    pub fn key(&self) -> RunKey<'_> {
        RunKey {
            model: &self.model,
            costs: &self.costs,
            fraction: self.fraction,
            seed: self.seed,
            fingerprint: &self.fingerprint,
        }
    }
}

/// Whether `records` hold a finished run of `key`.
pub fn is_done(records: &[RunRecord], key: &RunKey) -> bool {
    records.iter().any(|r| {
        let k = r.key();
        k.model == key.model
            && k.costs == key.costs
            && (k.fraction - key.fraction).abs() < 1e-9
            && k.seed == key.seed
            && k.fingerprint == key.fingerprint
    })
}

/// The records of a results file, and how many bytes of a torn last line were ignored.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<RunRecord>,
    pub torn_bytes: usize,
}

/// Parses a results file's text (`path` for the messages). Blank lines are skipped. A
/// last line without its newline that does not parse is a write a kill cut short and is
/// ignored; any other line that does not parse is an error naming its line.
pub fn parse_results(text: &str, path: &Path) -> Result<Loaded, ResultsError> {
    let mut loaded = Loaded::default();
    let ends_clean = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(line) {
            Ok(r) if r.fraction.is_finite() && r.test_error_px.is_finite() => {
                loaded.records.push(r)
            }
            Ok(_) => {
                return Err(ResultsError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: "fraction and test_error_px must be finite".into(),
                })
            }
            Err(_) if i + 1 == lines.len() && !ends_clean => loaded.torn_bytes = line.len(),
            Err(e) => {
                return Err(ResultsError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(loaded)
}

/// Reads `path` (a missing file has no records) with at most [`MAX_RESULTS_BYTES`].
pub fn read_results(path: &Path) -> Result<Loaded, ResultsError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let text = read_limited(file, path)?;
    parse_results(&text, path)
}

fn read_limited(file: std::fs::File, path: &Path) -> Result<String, ResultsError> {
    let mut bytes = Vec::new();
    file.take(MAX_RESULTS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_RESULTS_BYTES {
        return Err(ResultsError::TooLarge {
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|e| ResultsError::Line {
        path: path.to_path_buf(),
        line: 0,
        message: format!("not UTF-8 text ({e})"),
    })
}

/// Appends `record` as one line to `path` (created with its folder when missing), then
/// flushes and syncs it. A torn last line is cut off first; a last line that parses but
/// lost its newline gets the newline.
pub fn append_record(path: &Path, record: &RunRecord) -> Result<(), ResultsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    let text = read_limited(file.try_clone().map_err(io_err(path))?, path)?;
    let loaded = parse_results(&text, path)?;
    let mut line = String::new();
    if loaded.torn_bytes > 0 {
        let keep = (text.len() - loaded.torn_bytes) as u64;
        file.set_len(keep).map_err(io_err(path))?;
    } else if !text.is_empty() && !text.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(
        &serde_json::to_string(record).map_err(|e| ResultsError::Line {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?,
    );
    line.push('\n');
    file.seek(SeekFrom::End(0)).map_err(io_err(path))?;
    file.write_all(line.as_bytes()).map_err(io_err(path))?;
    file.flush().map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// A short commit hash (`git rev-parse --short HEAD`), with `-dirty` when the tree had
/// changes; `unknown` without a hash.
pub fn revision_label(head: &str, dirty: bool) -> String {
    match head.trim() {
        "" => "unknown".into(),
        h if dirty => format!("{h}-dirty"),
        h => h.to_string(),
    }
}

/// JSON with every object's keys sorted and no spaces: the same text for the same value,
/// whatever the map type's order.
pub fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let items: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a fixed function, unlike std's hasher.
pub fn fnv1a64_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn remove_path(v: &mut serde_json::Value, path: &[&str]) {
    match path {
        [] => {}
        [last] => {
            if let Some(map) = v.as_object_mut() {
                map.remove(*last);
            }
        }
        [first, rest @ ..] => {
            if let Some(inner) = v.get_mut(*first) {
                remove_path(inner, rest);
            }
        }
    }
}

/// The fingerprint of one run: `experiment` (an `ExperimentConfig` as JSON) less its name
/// and output settings, which do not change what is trained, with `model` (the model
/// config the preset resolved to, so a changed preset is another run).
pub fn run_fingerprint(experiment: &serde_json::Value, model: &serde_json::Value) -> String {
    let mut e = experiment.clone();
    remove_path(&mut e, &["name"]);
    remove_path(&mut e, &["output"]);
    remove_unchanging(&mut e);
    let both = serde_json::json!({ "experiment": e, "model": model });
    fnv1a64_hex(canonical_json(&both).as_bytes())
}

/// The fingerprint of the recipe the grid shares: the experiment less what the grid
/// varies (model, costs switched on, landmark fraction, seed) and less name and output.
pub fn recipe_fingerprint(experiment: &serde_json::Value) -> String {
    let mut e = experiment.clone();
    for path in [
        &["name"][..],
        &["output"],
        &["seed"],
        &["model"],
        &["labels", "landmark_fraction"],
        &["costs", "landmark"],
        &["costs", "attribute"],
        &["costs", "elt"],
    ] {
        remove_path(&mut e, path);
    }
    remove_unchanging(&mut e);
    fnv1a64_hex(canonical_json(&e).as_bytes())
}

/// Settings that do not change what a run computes, or that are at the value that means
/// what configs without them meant: the device, the limits, `data.crop = "auto"`, no
/// `data.category`, no weight average, no relative clipping, no spread or overlap cost (nor
/// the overlap's window), no label smoothing (nor any in a run without A). Runs recorded
/// before these settings existed keep their fingerprints.
fn remove_unchanging(e: &mut serde_json::Value) {
    remove_path(e, &["device"]);
    remove_path(e, &["limits"]);
    // The overlap's window matters only with the overlap cost on, label smoothing only
    // with A.
    if e.pointer("/costs/map_overlap") == Some(&serde_json::json!(0.0)) {
        remove_path(e, &["costs", "map_overlap_sigma"]);
    }
    if e.pointer("/costs/attribute") == Some(&serde_json::json!(false)) {
        remove_path(e, &["costs", "label_smoothing"]);
    }
    let neutral = [
        ("/data/crop", serde_json::json!("auto")),
        ("/data/category", serde_json::Value::Null),
        ("/schedule/weight_average_decay", serde_json::json!(0.0)),
        ("/schedule/clip_grad_relative", serde_json::json!(0.0)),
        ("/costs/map_spread", serde_json::json!(0.0)),
        ("/costs/map_overlap", serde_json::json!(0.0)),
        ("/costs/label_smoothing", serde_json::json!(0.0)),
    ];
    for (pointer, value) in neutral {
        if e.pointer(pointer) == Some(&value) {
            let path: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
            remove_path(e, &path);
        }
    }
}

/// The mean and the sample standard deviation (`None` for fewer than two values).
pub fn mean_std(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1).then(|| {
        let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1.0)).sqrt()
    });
    Some((mean, std))
}

/// One cell's statistics over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStats {
    /// Each seed's test error in pixels.
    pub by_seed: BTreeMap<u64, f64>,
    pub mean: f64,
    pub std: Option<f64>,
    /// Mean class accuracy (0-1) over the seeds that report one.
    pub accuracy: Option<f64>,
}

impl CellStats {
    /// The number of seeds measured.
    pub fn seeds(&self) -> usize {
        self.by_seed.len()
    }
}

/// The statistics of `row` at `fraction` over `records`; a seed recorded twice counts once
/// (its last record).
pub fn cell_stats(records: &[RunRecord], row: &Row, fraction: f64) -> Option<CellStats> {
    let mut by_seed: BTreeMap<u64, &RunRecord> = BTreeMap::new();
    for r in records {
        if r.row == row.id && (r.fraction - fraction).abs() < 1e-9 {
            by_seed.insert(r.seed, r);
        }
    }
    let errors: Vec<f64> = by_seed.values().map(|r| r.test_error_px).collect();
    let (mean, std) = mean_std(&errors)?;
    let acc: Vec<f64> = by_seed.values().filter_map(|r| r.class_accuracy).collect();
    Some(CellStats {
        by_seed: by_seed
            .iter()
            .map(|(&seed, r)| (seed, r.test_error_px))
            .collect(),
        mean,
        std,
        accuracy: mean_std(&acc).map(|(m, _)| m),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A record of `row` at `fraction` and `seed` with `error` px.
    pub fn record(row: &str, fraction: f64, seed: u64, error: f64) -> RunRecord {
        let r = Row::by_id(row).expect("a row of the grid");
        RunRecord {
            row: row.into(),
            model: r.preset.into(),
            costs: r.costs.into(),
            fraction,
            seed,
            test_error_px: error,
            class_accuracy: r.costs.contains('A').then_some(0.9),
            best_epoch: 3,
            epochs: 4,
            seconds: 12.5,
            revision: "abc1234-dirty".into(),
            fingerprint: format!("fp-{seed}"),
            recipe: "r1".into(),
        }
    }

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("table1-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub").join("results.jsonl")
    }

    fn remove_temp(path: &Path) {
        if let Some(dir) = path.parent().and_then(Path::parent) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_before_the_next_append() {
        let path = temp_file("torn");
        let a = record("seqmt-L", 0.05, 0, 3.5);
        let b = record("seqmt-L", 0.05, 1, 3.7);
        append_record(&path, &a).unwrap();
        // A kill in the middle of the next write.
        let full = serde_json::to_string(&b).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);
        let loaded = read_results(&path).unwrap();
        assert_eq!(loaded.records, std::slice::from_ref(&a));
        assert_eq!(loaded.torn_bytes, full.len() / 2);
        append_record(&path, &b).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with('\n'));
        let loaded = read_results(&path).unwrap();
        assert_eq!((loaded.records, loaded.torn_bytes), (vec![a, b], 0));
        remove_temp(&path);
    }

    #[test]
    fn a_whole_last_line_without_newline_is_kept() {
        let path = temp_file("nonl");
        let a = record("commmt-L", 0.2, 0, 9.0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string(&a).unwrap()).unwrap();
        let b = record("commmt-L", 0.2, 1, 9.5);
        append_record(&path, &b).unwrap();
        assert_eq!(read_results(&path).unwrap().records, [a, b]);
        remove_temp(&path);
    }

    #[test]
    fn a_bad_line_before_the_last_is_an_error_naming_it() {
        let a = serde_json::to_string(&record("seqmt-L", 0.05, 0, 3.5)).unwrap();
        let text = format!("{a}\n{{\"row\": 1}}\n{a}\n");
        let err = parse_results(&text, Path::new("r.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("r.jsonl line 2:"), "{err}");
        // A cut line that is not the last one was not made by a kill.
        let text = format!("{a}\n{}\n", &a[..10]);
        assert!(parse_results(&text, Path::new("r.jsonl")).is_err());
        assert!(read_results(Path::new("/nonexistent/table1.jsonl"))
            .unwrap()
            .records
            .is_empty());
    }

    #[test]
    fn a_run_is_done_only_with_the_same_key_and_fingerprint() {
        let records = vec![record("seqmt-L+ELT+A", 0.05, 2, 1.5)];
        let r = &records[0];
        assert!(is_done(&records, &r.key()));
        let mut k = r.key();
        k.fingerprint = "other";
        assert!(!is_done(&records, &k), "a changed recipe is another run");
        let mut k = r.key();
        k.seed = 3;
        assert!(!is_done(&records, &k));
        let mut k = r.key();
        k.fraction = 0.1;
        assert!(!is_done(&records, &k));
        let mut k = r.key();
        k.costs = "L";
        assert!(!is_done(&records, &k));
        let mut k = r.key();
        k.model = "commmt-blocks";
        assert!(!is_done(&records, &k));
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[2.0]), Some((2.0, None)));
        assert_eq!(mean_std(&[]), None);
        let mut records = vec![
            record("seqmt-L", 0.05, 0, 3.0),
            record("seqmt-L", 0.05, 1, 5.0),
            record("seqmt-L", 0.1, 0, 9.0),
        ];
        // A seed recorded again counts once, with its last record.
        records.push(record("seqmt-L", 0.05, 1, 4.0));
        let c = cell_stats(&records, Row::by_id("seqmt-L").unwrap(), 0.05).unwrap();
        assert_eq!((c.seeds(), c.mean), (2, 3.5));
        assert_eq!(c.by_seed, BTreeMap::from([(0, 3.0), (1, 4.0)]));
        assert!((c.std.unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(c.accuracy, None);
        assert!(cell_stats(&records, Row::by_id("seqmt-L+A").unwrap(), 0.05).is_none());
    }

    #[test]
    fn fingerprints_ignore_output_and_follow_the_recipe() {
        let exp = serde_json::json!({
            "name": "a", "seed": 1, "output": {"dir": "runs/x", "progress": true},
            "schedule": {"epochs": 20, "adam": {"lr": 0.001}},
            "labels": {"landmark_fraction": 0.05}, "model": {"preset": "seqmt-blocks"},
            "costs": {"landmark": true, "elt": true, "attribute": false, "alpha": 1.0},
        });
        let model = serde_json::json!({"SeqMt": {"beta": 1.0}});
        let fp = run_fingerprint(&exp, &model);
        assert_eq!(fp.len(), 16);
        let mut e = exp.clone();
        e["output"]["dir"] = "elsewhere".into();
        e["output"]["progress"] = false.into();
        e["name"] = "b".into();
        assert_eq!(run_fingerprint(&e, &model), fp);
        assert_eq!(recipe_fingerprint(&e), recipe_fingerprint(&exp));
        let mut e = exp.clone();
        e["schedule"]["adam"]["lr"] = 0.002.into();
        assert_ne!(run_fingerprint(&e, &model), fp);
        assert_ne!(recipe_fingerprint(&e), recipe_fingerprint(&exp));
        // A setting added later keeps the fingerprints of earlier runs at its neutral value.
        let mut e = exp.clone();
        e["schedule"]["weight_average_decay"] = 0.0.into();
        assert_eq!(run_fingerprint(&e, &model), fp);
        e["schedule"]["weight_average_decay"] = 0.99.into();
        assert_ne!(run_fingerprint(&e, &model), fp);
        // Label smoothing is part of a run with A only.
        let mut e = exp.clone();
        e["costs"]["label_smoothing"] = 0.1.into();
        assert_eq!(run_fingerprint(&e, &model), fp);
        e["costs"]["attribute"] = true.into();
        let mut with_a = exp.clone();
        with_a["costs"]["attribute"] = true.into();
        assert_ne!(
            run_fingerprint(&e, &model),
            run_fingerprint(&with_a, &model)
        );
        with_a["costs"]["label_smoothing"] = 0.0.into();
        let mut plain_a = exp.clone();
        plain_a["costs"]["attribute"] = true.into();
        assert_eq!(
            run_fingerprint(&with_a, &model),
            run_fingerprint(&plain_a, &model)
        );
        let changed_model = serde_json::json!({"SeqMt": {"beta": 3.0}});
        assert_ne!(run_fingerprint(&exp, &changed_model), fp);
        // The grid's variables change the run but not the recipe.
        let mut e = exp.clone();
        e["seed"] = 2.into();
        e["labels"]["landmark_fraction"] = 0.1.into();
        e["costs"]["attribute"] = true.into();
        assert_ne!(run_fingerprint(&e, &model), fp);
        assert_eq!(recipe_fingerprint(&e), recipe_fingerprint(&exp));
        // Key order does not matter.
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":[3]}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":[3],"d":2},"b":1}"#);
        // FNV-1a's published test value.
        assert_eq!(fnv1a64_hex(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn revision_labels() {
        assert_eq!(revision_label("abc1234\n", false), "abc1234");
        assert_eq!(revision_label("abc1234", true), "abc1234-dirty");
        assert_eq!(revision_label("", false), "unknown");
        assert_eq!(revision_label(" ", true), "unknown");
    }
}
