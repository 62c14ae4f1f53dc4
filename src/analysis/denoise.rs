//! Denoising, measured: each model's (and PCA-k's) test error against the
//! noise level, with the level each denoising model trained at.

use std::sync::Arc;

use super::models::{ModelCache, ModelRef};
use super::recon::{self, Row, Source};
use crate::data::noise::{Noise, NoiseKind};
use crate::data::Dataset;
use crate::pca::Pca;
use crate::rng::Rng;

/// Digits in the Denoise view's rows.
pub const DIGITS: usize = 8;
/// Test images behind each point of the error-vs-level curves.
pub const CURVE_IMAGES: usize = 500;
/// Noise levels of the curves.
pub const CURVE_LEVELS: usize = 11;

/// One model's test MSE at each level of [`levels`].
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    /// Noise level the model was trained with (denoising models).
    pub trained_at: Option<f32>,
    pub mse: Result<Vec<f64>, String>,
}

pub fn levels() -> Vec<f32> {
    (0..CURVE_LEVELS)
        .map(|i| i as f32 / (CURVE_LEVELS - 1) as f32)
        .collect()
}

/// Denoising models first (by training level), then the others.
pub fn ordered(models: Vec<ModelRef>) -> Vec<ModelRef> {
    let (mut den, rest): (Vec<_>, Vec<_>) =
        models.into_iter().partition(|m| !m.config.noise.is_none());
    den.sort_by(|a, b| a.config.noise.level.total_cmp(&b.config.noise.level));
    den.extend(rest);
    den
}

/// Clean inputs, noisy inputs, and the rows of reconstructions.
pub type Shown = (Vec<f32>, Vec<f32>, Vec<Row>);

/// The first [`DIGITS`] test digits with `noise` (from `seed`), and what
/// each model and PCA-k make of them, scored against the clean digits.
pub fn rows(
    cache: &ModelCache,
    data: &Dataset,
    pca: &Pca,
    k: usize,
    models: &[ModelRef],
    noise: Noise,
    seed: u64,
) -> Shown {
    let n = DIGITS.min(data.test.len());
    let clean = data.test.rows_f32(0..n);
    let mut noisy = clean.clone();
    noise.apply(&mut noisy, &mut Rng::new(seed));
    let mut rows = recon::model_rows(cache, models, &noisy, &clean);
    rows.push(recon::pca_row(pca, k, &noisy, &clean));
    (clean, noisy, rows)
}

/// Test MSE of each model (and PCA-k) against noise level, on the first
/// [`CURVE_IMAGES`] test images: the Denoise view's curves.
pub fn curves(
    cache: &ModelCache,
    data: &Dataset,
    pca: &Arc<Pca>,
    models: &[ModelRef],
    kind: NoiseKind,
    k: usize,
) -> Vec<Curve> {
    let n = CURVE_IMAGES.min(data.test.len());
    let mut sources: Vec<(Source, Option<f32>)> = models
        .iter()
        .map(|m| {
            let t = (!m.config.noise.is_none() && m.config.noise.kind == kind)
                .then_some(m.config.noise.level);
            (Source::Model(m.clone()), t)
        })
        .collect();
    sources.push((Source::Pca(pca.clone(), k), None));
    curves_on(cache, &data.test.rows_f32(0..n), &sources, kind, 1000)
}

/// Each source's MSE against `clean` when its inputs carry noise of `kind`
/// at each of [`levels`] (level i's noise from seed `seed + i`).
pub fn curves_on(
    cache: &ModelCache,
    clean: &[f32],
    sources: &[(Source, Option<f32>)],
    kind: NoiseKind,
    seed: u64,
) -> Vec<Curve> {
    let noisy: Vec<Vec<f32>> = levels()
        .iter()
        .enumerate()
        .map(|(i, &level)| {
            let mut x = clean.to_vec();
            Noise { kind, level }.apply(&mut x, &mut Rng::new(seed + i as u64));
            x
        })
        .collect();
    sources
        .iter()
        .map(|(s, trained_at)| {
            let mse = noisy
                .iter()
                .map(|x| {
                    recon::errors(cache, s, x, clean)
                        .map(|e| e.iter().sum::<f64>() / e.len().max(1) as f64)
                })
                .collect::<Result<Vec<f64>, String>>();
            Curve {
                label: s.label(),
                trained_at: *trained_at,
                mse,
            }
        })
        .collect()
}
