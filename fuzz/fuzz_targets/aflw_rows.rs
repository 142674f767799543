//! Fuzz target `aflw_rows`: runs [`landmark_ssl_fuzz::aflw_rows`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::aflw_rows(data));
