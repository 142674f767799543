//! Fuzz target `wflw`: runs [`landmark_ssl_fuzz::wflw_list`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::wflw_list(data));
