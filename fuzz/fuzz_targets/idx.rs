//! The IDX parser (images, labels, gzip) on arbitrary bytes.
#![no_main]

#[path = "../../src/data/idx.rs"]
#[allow(dead_code)]
mod idx;

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz");
    let _ = idx::parse_images(data, p);
    let _ = idx::parse_labels(data, p);
    if let Ok(raw) = idx::gunzip(data, p) {
        let _ = idx::parse_images(&raw, p);
        let _ = idx::parse_labels(&raw, p);
    }
});
