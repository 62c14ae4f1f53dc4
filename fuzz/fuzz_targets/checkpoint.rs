//! The checkpoint + manifest loader on arbitrary bytes: the safetensors
//! header, the embedded JSON manifest (every serde type of the run config,
//! history, status and metrics), and the checks of each weight's name,
//! shape, dtype and values against the manifest's config — everything
//! `checkpoint::load` does before handing the weights to candle.
//!
//! The sources are compiled here as they are in the app (through #[path]),
//! with stand-in modules for the crate paths they use, so a fuzz build
//! does not instrument candle and eframe.
#![no_main]

#[path = "../../src/rng.rs"]
#[allow(dead_code)]
pub mod rng;
#[path = "../../src/data/kind.rs"]
#[allow(dead_code)]
pub mod kind;
#[path = "../../src/data/noise.rs"]
#[allow(dead_code)]
pub mod noise;
#[path = "../../src/train/history.rs"]
#[allow(dead_code)]
pub mod history;
#[path = "../../src/train/metrics.rs"]
#[allow(dead_code)]
pub mod metrics;
#[path = "../../src/model/config.rs"]
#[allow(dead_code)]
pub mod config;
#[path = "../../src/model/manifest.rs"]
#[allow(dead_code)]
pub mod manifest;

/// Stand-ins for the crate paths those files use.
mod data {
    // the values of crate::data's constants
    pub const IMAGE_SIDE: usize = 28;
    pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
    pub use crate::kind::DatasetKind;
    pub use crate::noise;
}
mod train {
    pub use crate::history::{History, Status};
    pub use crate::metrics::Metrics;
}

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
