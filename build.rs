//! Records the git revision the package is built from, for the examples that write results
//! (`examples/table1.rs`): a long run is labelled with the code it runs, even when the
//! checkout moves on while it runs.
//!
//! Sets `LANDMARK_SSL_BUILD_HEAD` (`git rev-parse --short HEAD`, empty outside a git
//! checkout) and `LANDMARK_SSL_BUILD_DIRTY` (`1` when `git status --porcelain` lists
//! anything, else `0`).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn watch(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    // Any edit of the sources, and any commit or checkout, may change the label. The
    // downstream example's own build folder is left out: its builds are not edits.
    for path in [
        "src",
        "crates",
        "tests",
        "benches",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        watch(path);
    }
    if let Ok(entries) = std::fs::read_dir("examples") {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "downstream") {
                watch("examples/downstream/src");
                watch("examples/downstream/Cargo.toml");
            } else {
                watch(&path.to_string_lossy());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    if !head.is_empty() {
        for name in ["HEAD", "index", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", name]) {
                watch(&p);
            }
        }
        if let Some(p) =
            git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r]))
        {
            watch(&p);
        }
    }
    let dirty = !head.is_empty() && git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=LANDMARK_SSL_BUILD_HEAD={head}");
    println!(
        "cargo:rustc-env=LANDMARK_SSL_BUILD_DIRTY={}",
        if dirty { 1 } else { 0 }
    );
}
