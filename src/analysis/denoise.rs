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

/// Training level × test level: each denoising model's test MSE at each
/// noise level of one noise type, rows by training level.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Grid {
    /// (model, the noise level it was trained at), rows in that order.
    pub rows: Vec<(String, f32)>,
    /// The test levels, columns in this order ([`levels`]).
    pub levels: Vec<f32>,
    /// `mse[row][column]`.
    pub mse: Vec<Vec<f64>>,
    /// The best row of each column (lowest MSE).
    pub best: Vec<usize>,
}

/// The grid of the denoising models among `curves`: `trained` names each
/// denoising model's label and training level (other curves are left out).
/// None when no denoising model has a curve.
pub fn grid(curves: &[Curve], trained: &[(String, f32)]) -> Option<Grid> {
    let mut rows: Vec<(String, f32, Vec<f64>)> = trained
        .iter()
        .filter_map(|(label, level)| {
            let c = curves.iter().find(|c| &c.label == label)?;
            Some((label.clone(), *level, c.mse.as_ref().ok()?.clone()))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    let levels = levels();
    let best = (0..levels.len())
        .map(|c| {
            (0..rows.len())
                .min_by(|&a, &b| rows[a].2[c].total_cmp(&rows[b].2[c]))
                .unwrap_or(0)
        })
        .collect();
    Some(Grid {
        rows: rows.iter().map(|(l, t, _)| (l.clone(), *t)).collect(),
        mse: rows.into_iter().map(|(_, _, m)| m).collect(),
        levels,
        best,
    })
}

/// A colour for `t` in [0, 1] (0: low error, dark blue; 1: high, yellow),
/// shared by the Denoise view and the report.
pub fn heat_rgb(t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    // dark blue -> teal -> yellow
    let (r, g, b) = if t < 0.5 {
        let u = t * 2.0;
        (0.1 + 0.0 * u, 0.15 + 0.45 * u, 0.35 + 0.15 * u)
    } else {
        let u = (t - 0.5) * 2.0;
        (0.1 + 0.85 * u, 0.6 + 0.3 * u, 0.5 - 0.35 * u)
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// Where `mse` sits between the grid's lowest and highest error, on a log
/// scale, in [0, 1].
pub fn heat_position(g: &Grid, mse: f64) -> f64 {
    let all = g.mse.iter().flatten().copied().filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return 0.0;
    }
    (mse.clamp(lo, hi).ln() - lo.ln()) / (hi.ln() - lo.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_orders_rows_by_training_level_and_marks_the_best() {
        let c = |label: &str, f: fn(f64) -> f64| Curve {
            label: label.into(),
            trained_at: None,
            mse: Ok(levels().iter().map(|&l| f(l as f64)).collect()),
        };
        let curves = [
            c("d-0.7", |l| 0.02 + 0.01 * (l - 0.7).abs()),
            c("d-0.3", |l| 0.01 + 0.05 * (l - 0.3).abs()),
            c("plain", |l| 0.01 + l),
        ];
        let trained = [("d-0.7".to_string(), 0.7), ("d-0.3".to_string(), 0.3)];
        let g = grid(&curves, &trained).unwrap();
        assert_eq!(g.rows[0].0, "d-0.3", "lowest training level first");
        assert_eq!(g.mse.len(), 2);
        // at level 0 the 0.3 model wins, at level 1 the 0.7 one
        assert_eq!((g.best[0], g.best[10]), (0, 1));
        assert!(grid(&curves, &[]).is_none());
        assert_eq!(heat_position(&g, 0.0), 0.0);
        assert!((heat_position(&g, 1e9) - 1.0).abs() < 1e-12);
    }
}
