//! The one training loop used by the CLI and the app, its observers, and the
//! metrics it reports.

pub mod adam;
pub mod job;
pub mod metrics;
pub mod run;
mod snapshots;
pub mod vae;

pub use metrics::Metrics;
pub use run::{evaluate, run, Control, History, Observer, Outcome, Status, TrainEvent};
