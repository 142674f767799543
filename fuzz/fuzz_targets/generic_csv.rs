//! Fuzz target `generic_csv`: runs [`landmark_ssl_fuzz::generic_csv`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::generic_csv(data));
