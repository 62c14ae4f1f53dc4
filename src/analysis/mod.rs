//! What the views compute, without egui: reconstructions and their scores,
//! the Draw view's answers, the latent space, out-of-distribution errors,
//! denoising curves, a model's filters, the training replay, the study's
//! definition, and the background threads they run on. The app, the
//! command line and the report all call these; nothing here draws on
//! screen.

pub mod answer;
pub mod compute;
pub mod denoise;
pub mod filters;
pub mod latent;
pub mod models;
pub mod ood;
pub mod recon;
pub mod replay;
pub mod study;
pub mod vae;

pub use compute::{Compute, Pending};
pub use models::{LibraryEntry, ModelCache, ModelRef};
