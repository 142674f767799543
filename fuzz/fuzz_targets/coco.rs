//! Fuzz target `coco`: runs [`landmark_ssl_fuzz::coco_json`] (see `fuzz/src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| landmark_ssl_fuzz::coco_json(data));
