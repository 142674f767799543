//! Fuzz target `image`: runs [`landmark_ssl_fuzz::image`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::image(data));
