//! One function per reader of untrusted input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and by the corpus replay test of the root crate
//! (`tests/fuzz_corpora.rs`, which includes this file as a module).
//!
//! Each function feeds its bytes to the library and discards the result: an error is a
//! fine answer to hostile input, a panic or an abort is the bug the fuzzer looks for. Work
//! per input stays bounded by the library's own limits: the readers' defaults where
//! they bound the work by the input's size, tighter [`Limits`] and [`ModelLimits`] where a
//! few bytes may declare a large image or model that the defaults rightly accept (decoding
//! a 64-megapixel image or running a 2048-pixel model on every input would be a slow fuzzer,
//! not a bug). Readers that take a path get the bytes through a file in a scratch folder of
//! the calling thread. Lists are loaded without checking the images they name
//! (`check_images: false`), so an input never makes the reader open device files or other
//! files of the machine; the image target checks the image reader itself.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use landmark_ssl::data::formats::aflw::{self, AflwOptions};
use landmark_ssl::data::formats::coco::{self, CocoOptions};
use landmark_ssl::data::formats::generic::{load_csv, load_json, GenericOptions};
use landmark_ssl::data::formats::{mtfl, pts, wflw, LoadOptions};
use landmark_ssl::data::{image_file, Limits};
use landmark_ssl::models::checkpoint::{read_checkpoint_info, read_checkpoint_within};
use landmark_ssl::models::{load_checkpoint_within, ModelLimits, Predictor, Region};
use landmark_ssl::train::checkpoint::{read_state, TrainState};
use landmark_ssl::train::config::MAX_CONFIG_BYTES;
use landmark_ssl::train::ExperimentConfig;

/// What a fuzz target runs on one input.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`), with
/// the function each one runs.
pub const TARGETS: &[(&str, Target)] = &[
    ("pts", pts_text),
    ("mtfl", mtfl_list),
    ("generic_csv", generic_csv),
    ("generic_json", generic_json),
    ("aflw_rows", aflw_rows),
    ("experiment_toml", experiment_toml),
    ("checkpoint", checkpoint),
    ("state_json", state_json),
    ("image", image),
    ("wflw", wflw_list),
    ("coco", coco_json),
];

/// A scratch folder for the calling thread, removed when the thread ends (with glibc, the
/// main thread's at process exit too).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// The path `name` in the calling thread's scratch folder, created on first use.
fn scratch_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| {
            let dir = std::env::temp_dir().join(format!(
                "landmark-ssl-fuzz-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("the scratch folder can be created");
            Scratch(dir)
        });
        dir.0.join(name)
    })
}

/// Writes `data` to `name` in the scratch folder (replacing what was there) and returns
/// its path. The harness's own failure to write is a panic: it is not the library's.
fn write_scratch(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch_path(name);
    std::fs::write(&p, data).expect("the scratch file can be written");
    p
}

/// Options of the list readers: the default limits, images not opened (see the module
/// docs), failing on the first bad entry or skipping them all.
fn list_options(skip_bad: bool) -> LoadOptions {
    LoadOptions {
        skip_bad,
        check_images: false,
        limits: Limits::default(),
    }
}

/// Generic options: 0-based and 1-based coordinates.
fn generic_options(one_based: bool) -> GenericOptions {
    GenericOptions {
        one_based,
        layout: None,
    }
}

/// A `.pts` file: the in-memory parser within the default limits; what parses is written
/// back and parsed again.
pub fn pts_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz.pts");
    if let Ok(points) = pts::parse_pts(&text, path) {
        let _ = pts::parse_pts(&pts::write_pts(&points), path);
    }
}

/// An MTFL list: each line through the in-memory line parser, then the whole file
/// through the loader (failing on the first bad line, and skipping bad lines).
pub fn mtfl_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz.txt");
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            let _ = mtfl::parse_line(line, path, i + 1);
        }
    }
    let list = write_scratch("mtfl.txt", data);
    let _ = mtfl::load(&list, &list_options(false));
    let _ = mtfl::load(&list, &list_options(true));
}

/// A generic CSV list (no in-memory reader: through a file), 0-based failing on the first
/// bad line, and 1-based skipping bad lines.
pub fn generic_csv(data: &[u8]) {
    let list = write_scratch("list.csv", data);
    let _ = load_csv(&list, &list_options(false), &generic_options(false));
    let _ = load_csv(&list, &list_options(true), &generic_options(true));
}

/// A generic JSON list (no in-memory reader: through a file), as [`generic_csv`].
pub fn generic_json(data: &[u8]) {
    let list = write_scratch("list.json", data);
    let _ = load_json(&list, &list_options(false), &generic_options(false));
    let _ = load_json(&list, &list_options(true), &generic_options(true));
}

/// A WFLW list: each line through the in-memory line parser, then the whole file through
/// the loader (image root: the scratch folder; failing on the first bad line, and skipping
/// bad lines).
pub fn wflw_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz.txt");
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            let _ = wflw::parse_line(line, path, i + 1);
        }
    }
    let list = write_scratch("wflw.txt", data);
    let _ = wflw::load(&list, None, &list_options(false));
    let _ = wflw::load(&list, None, &list_options(true));
}

/// A COCO keypoints JSON file (no in-memory reader: through a file), with the default
/// options and keeping unlabelled annotations, each failing on the first bad annotation and
/// skipping bad ones.
pub fn coco_json(data: &[u8]) {
    let file = write_scratch("coco.json", data);
    for keep_unlabelled in [false, true] {
        let copts = CocoOptions {
            keep_unlabelled,
            ..CocoOptions::default()
        };
        for skip_bad in [false, true] {
            let _ = coco::load(&file, &list_options(skip_bad), &copts);
        }
    }
}

/// The most rows an AFLW input inserts (bounds the work per input).
const MAX_AFLW_ROWS: usize = 256;

/// The tables the AFLW reader queries, by the letter that starts a row of the input, with
/// their columns (declared without types, so a value keeps the type the input gives it).
const AFLW_TABLES: [(u8, &str, &[&str]); 5] = [
    (b'F', "Faces", &["face_id", "file_id"]),
    (
        b'I',
        "FaceImages",
        &["file_id", "filepath", "width", "height"],
    ),
    (b'C', "FeatureCoords", &["face_id", "feature_id", "x", "y"]),
    (b'R', "FaceRect", &["face_id", "x", "y", "w", "h"]),
    (b'P', "FacePose", &["face_id", "roll", "pitch", "yaw"]),
];

/// One value of an AFLW row: `N` is NULL, `'text` text, `#hex` a blob, an integer or a
/// real number as itself, anything else text.
fn aflw_value(token: &str) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    if token == "N" {
        Value::Null
    } else if let Some(t) = token.strip_prefix('\'') {
        Value::Text(t.to_string())
    } else if let Some(h) = token.strip_prefix('#') {
        Value::Blob(h.bytes().collect())
    } else if let Ok(i) = token.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(x) = token.parse::<f64>() {
        Value::Real(x)
    } else {
        Value::Text(token.to_string())
    }
}

/// AFLW rows: the reader's database has no in-memory form, so the input is a list of rows
/// (one a line: a table letter of [`AFLW_TABLES`], then the values, separated by spaces;
/// missing values are NULL, extra ones ignored; a line `-X` leaves table X out) put into a
/// fresh SQLite database, which the AFLW reader then loads with each of its options. Any
/// line that is not a row is ignored.
pub fn aflw_rows(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let db = scratch_path("aflw.sqlite");
    let _ = std::fs::remove_file(&db);
    let conn = rusqlite::Connection::open(&db).expect("the scratch database opens");
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .expect("pragmas");
    let left_out: Vec<u8> = text
        .lines()
        .filter_map(|l| l.strip_prefix('-').and_then(|t| t.bytes().next()))
        .collect();
    for (letter, table, columns) in AFLW_TABLES {
        if !left_out.contains(&letter) {
            conn.execute_batch(&format!("CREATE TABLE {table} ({});", columns.join(", ")))
                .expect("the tables are created");
        }
    }
    let rows = text.lines().filter_map(|l| {
        let mut tokens = l.split(' ');
        let letter = tokens.next()?.as_bytes();
        let &[letter] = letter else { return None };
        let (_, table, columns) = AFLW_TABLES.iter().find(|t| t.0 == letter)?;
        let mut values: Vec<_> = tokens.take(columns.len()).map(aflw_value).collect();
        values.resize(columns.len(), rusqlite::types::Value::Null);
        Some((*table, values))
    });
    conn.execute_batch("BEGIN").expect("a transaction begins");
    for (table, values) in rows.take(MAX_AFLW_ROWS) {
        let marks = vec!["?"; values.len()].join(", ");
        // A row into a table left out fails; the rest of the input still counts.
        let _ = conn.execute(
            &format!("INSERT INTO {table} VALUES ({marks})"),
            rusqlite::params_from_iter(values),
        );
    }
    conn.execute_batch("COMMIT")
        .expect("the rows are committed");
    drop(conn);
    for (skip_bad, points19, require_landmarks) in [(false, false, false), (true, true, true)] {
        let aopts = AflwOptions {
            image_root: None,
            points19,
            require_landmarks,
        };
        let _ = aflw::load(&db, &list_options(skip_bad), &aopts);
    }
}

/// An experiment file: parsed (within the file size `from_toml_file` reads), validated,
/// its model resolved, its schedule's learning-rate ramp and cost settings asked for, and
/// the state a run of it starts from built (which serialises the experiment to JSON) and
/// compared with itself (which parses that JSON back).
pub fn experiment_toml(data: &[u8]) {
    if data.len() as u64 > MAX_CONFIG_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = ExperimentConfig::from_toml_str(text) else {
        return;
    };
    let valid = cfg.validate().is_ok();
    for epoch in [0, 1, cfg.costs.join_epoch(), cfg.schedule.epochs] {
        let _ = cfg.lr_rampup_factor(epoch, 0, 7);
        let _ = cfg.costs.active(epoch);
    }
    let _ = cfg.costs.label();
    if let (true, Ok(model)) = (valid, cfg.resolved_model()) {
        let state = TrainState::new(&cfg, &model);
        let _ = state.same_experiment(&state);
    }
}

/// Model limits for building and running a model from a fuzzed checkpoint: small inputs and
/// feature maps, so a few bytes cannot ask for a large forward pass on every input.
const CHECKPOINT_RUN_LIMITS: ModelLimits = ModelLimits {
    max_input_side: 64,
    max_feature_elements: 1 << 16,
    ..ModelLimits::DEFAULT
};

/// A checkpoint file: its header and metadata alone, its tensors (default limits: they are
/// read only when the file holds their bytes), and, within [`CHECKPOINT_RUN_LIMITS`], the
/// model built from it and a prediction.
pub fn checkpoint(data: &[u8]) {
    let path = write_scratch("model.safetensors", data);
    let cpu = candle_core::Device::Cpu;
    let _ = read_checkpoint_info(&path);
    let _ = read_checkpoint_within(&path, &cpu, &ModelLimits::DEFAULT);
    if let Ok((model, _, _)) = load_checkpoint_within(&path, &cpu, &CHECKPOINT_RUN_LIMITS) {
        if let Ok(img) = candle_core::Tensor::zeros((9, 7), candle_core::DType::F32, &cpu) {
            let _ = Predictor::new(model, cpu).predict(&[img], &[Region::Whole]);
        }
    }
}

/// A run folder's `state.json`: read and checked by `read_state`, then checked against the
/// default experiment's schedule and compared with the state that experiment starts from.
pub fn state_json(data: &[u8]) {
    let state = write_scratch("state.json", data);
    let Some(dir) = state.parent() else { return };
    if let Ok(Some(s)) = read_state(dir) {
        let cfg = ExperimentConfig::default();
        let _ = s.check_schedule(&cfg);
        if let Ok(model) = cfg.resolved_model() {
            let _ = s.same_experiment(&TrainState::new(&cfg, &model));
        }
    }
}

/// Limits for decoding a fuzzed image: at most a megapixel (the default limits admit 64,
/// which a few compressed bytes may declare), so each input decodes in little time.
fn decode_limits() -> Limits {
    Limits {
        max_image_width: 4096,
        max_image_height: 4096,
        max_image_pixels: 1 << 20,
        max_file_bytes: 1 << 20,
        ..Limits::default()
    }
}

/// An image file: its header checked within the default limits (size, truncation), then
/// decoded to grey within [`decode_limits`].
pub fn image(data: &[u8]) {
    let name = Path::new("fuzz.img");
    let _ = image_file::check_bytes(data, name, &Limits::default());
    let _ = image_file::decode_bytes(data, name, &decode_limits());
}
