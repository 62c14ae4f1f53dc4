//! The checkpoint + manifest loader on arbitrary bytes: the safetensors
//! header, the embedded JSON manifest (every serde type of the run config,
//! history, status and metrics), and the checks of each weight's name,
//! shape, dtype and values against the manifest's config — everything
//! `checkpoint::load` does before handing the weights to candle.
//!
//! The sources are compiled here as they are in the app (through #[path],
//! in modules of the same names), so a fuzz build does not instrument
//! candle and eframe.
#![no_main]

#[path = "../../src/cpu.rs"]
#[macro_use]
#[allow(dead_code)]
pub mod cpu;
#[path = "../../src/env.rs"]
#[allow(dead_code)]
pub mod env;
#[path = "../../src/rng.rs"]
#[allow(dead_code)]
pub mod rng;
/// The data files the model config uses, with `data/mod.rs`'s re-exports.
#[path = "../../src/data"]
mod data {
    #[allow(dead_code)]
    pub mod kind;
    #[allow(dead_code)]
    pub mod noise;
    pub use kind::{DatasetKind, PIXELS};
}
/// The checkpoint format's files of `model/`.
#[path = "../../src/model"]
mod model {
    #[allow(dead_code)]
    pub mod config;
    #[allow(dead_code)]
    pub mod manifest;
    #[allow(dead_code)]
    pub mod record;
}

use model::{config, manifest};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    if let Ok((manifest, weights)) = manifest::check_bytes(bytes, path) {
        // What passes is exactly the config's weights, finite, in order.
        let shapes = config::param_shapes(&manifest.run.model);
        assert_eq!(weights.len(), shapes.len());
        for (w, (name, shape)) in weights.iter().zip(&shapes) {
            assert_eq!(&w.name, name);
            assert_eq!(&w.shape, shape);
            assert_eq!(w.values.len(), shape.iter().product::<usize>());
            assert!(w.values.iter().all(|v| v.is_finite()));
        }
    }
});
