//! Replays the cargo-fuzz corpora as tests: every file of `fuzz/corpus/<target>/` and of
//! `fuzz/artifacts/<target>/` (inputs that once crashed a target, kept as regressions) goes
//! through the same function as the fuzz target (`fuzz/src/lib.rs`, included below), which
//! must return, whatever the library answers, without panicking. Inputs listed in
//! [`KNOWN_CRASHES`] are skipped with a note until the reader is fixed.
//!
//! Fuzzing itself needs nightly and cargo-fuzz (`docs/reliability.md`); this replay runs on
//! stable as part of the workspace's tests.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod readers;

/// Inputs that crash a reader today: (target, file name under `fuzz/artifacts/<target>/`,
/// what happens). Each is skipped, with a note, until its reader is fixed; then its line
/// goes and the file stays as a regression test.
const KNOWN_CRASHES: &[(&str, &str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a corpus folder lists").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs target `name` on its corpus and artifacts; fails listing every input that panics.
fn replay(name: &str) {
    let run = readers::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, f)| f)
        .unwrap_or_else(|| panic!("no fuzz target `{name}` in fuzz/src/lib.rs"));
    let corpus = files(&fuzz_dir().join("corpus").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no inputs");
    let artifacts = files(&fuzz_dir().join("artifacts").join(name));
    let mut panicked = Vec::new();
    for path in corpus.iter().chain(&artifacts) {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        if let Some((_, _, what)) = KNOWN_CRASHES
            .iter()
            .find(|(t, f, _)| *t == name && *f == file)
        {
            eprintln!("skipped known crash {name}/{file}: {what}");
            continue;
        }
        let data = std::fs::read(path).expect("a corpus file reads");
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "fuzz target `{name}` panicked on {panicked:?}"
    );
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    for (name, _) in readers::TARGETS {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
        assert!(
            !files(&fuzz_dir().join("corpus").join(name)).is_empty(),
            "fuzz/corpus/{name}/ has no inputs"
        );
    }
}

#[test]
fn pts() {
    replay("pts");
}

#[test]
fn mtfl() {
    replay("mtfl");
}

#[test]
fn generic_csv() {
    replay("generic_csv");
}

#[test]
fn generic_json() {
    replay("generic_json");
}

#[test]
fn aflw_rows() {
    replay("aflw_rows");
}

#[test]
fn experiment_toml() {
    replay("experiment_toml");
}

#[test]
fn checkpoint() {
    replay("checkpoint");
}

#[test]
fn state_json() {
    replay("state_json");
}

#[test]
fn image() {
    replay("image");
}

#[test]
fn wflw() {
    replay("wflw");
}

#[test]
fn coco() {
    replay("coco");
}
