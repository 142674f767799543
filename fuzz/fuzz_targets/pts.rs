//! Fuzz target `pts`: runs [`landmark_ssl_fuzz::pts_text`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::pts_text(data));
