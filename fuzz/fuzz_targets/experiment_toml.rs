//! Fuzz target `experiment_toml`: runs [`landmark_ssl_fuzz::experiment_toml`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::experiment_toml(data));
