//! Pushing images through PCA and library models: rows of reconstructions
//! with per-image scores, errors over many images, and the histograms and
//! rates the views draw from them.

use std::sync::Arc;

use super::models::{ModelCache, ModelRef};
use crate::data::{Dataset, PIXELS};
use crate::model::Autoencoder;
use crate::pca::Pca;
use crate::train::metrics::{self, Metrics};

/// Per-image quality of a reconstruction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageScores {
    pub mse: f64,
    pub psnr: f64,
    pub ssim: f64,
}

/// One row of reconstructions.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    /// `[n * 784]` in [0, 1], or why the model could not run.
    pub images: Result<Vec<f32>, String>,
    pub scores: Vec<ImageScores>,
}

impl Row {
    pub fn mean_mse(&self) -> Option<f64> {
        (!self.scores.is_empty())
            .then(|| self.scores.iter().map(|s| s.mse).sum::<f64>() / self.scores.len() as f64)
    }
}

/// Scores of each reconstructed image against its target.
pub fn scores(rec: &[f32], target: &[f32]) -> Vec<ImageScores> {
    rec.chunks_exact(PIXELS)
        .zip(target.chunks_exact(PIXELS))
        .map(|(r, t)| {
            let mse = r
                .iter()
                .zip(t)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / PIXELS as f64;
            ImageScores {
                mse,
                psnr: metrics::psnr_from_mse(mse),
                ssim: metrics::ssim(r, t),
            }
        })
        .collect()
}

/// PCA-k reconstructions of `inputs`, scored against `targets`.
pub fn pca_row(pca: &Pca, k: usize, inputs: &[f32], targets: &[f32]) -> Row {
    let rec = pca.reconstruct(inputs, k);
    let rec: Vec<f32> = rec.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    Row {
        label: format!("PCA-{k}"),
        scores: scores(&rec, targets),
        images: Ok(rec),
    }
}

/// PCA-k reconstructions of `x` (unclamped) and each one's MSE: what the
/// PCA view recomputes as its k slider moves.
pub fn pca_grid(pca: &Pca, k: usize, x: &[f32]) -> (Vec<f32>, Vec<f64>) {
    let rec = pca.reconstruct(x, k);
    let errors = metrics::sse_per_image(&rec, x)
        .iter()
        .map(|s| s / PIXELS as f64)
        .collect();
    (rec, errors)
}

/// Each model's reconstructions of `inputs`, scored against `targets`.
pub fn model_rows(
    cache: &ModelCache,
    models: &[ModelRef],
    inputs: &[f32],
    targets: &[f32],
) -> Vec<Row> {
    use rayon::prelude::*;
    // every model on the cores at once (each is independent and small)
    models
        .par_iter()
        .map(|m| {
            let rec = cache
                .get(&m.path)
                .and_then(|model| model.reconstruct(inputs).map_err(|e| e.to_string()));
            Row {
                label: m.label.clone(),
                scores: rec.as_ref().map(|r| scores(r, targets)).unwrap_or_default(),
                images: rec,
            }
        })
        .collect()
}

/// Per-image MSE of a model (or PCA) over many images.
pub fn errors(
    cache: &ModelCache,
    model: &Source,
    images: &[f32],
    targets: &[f32],
) -> Result<Vec<f64>, String> {
    let rec = reconstruct(cache, model, images)?;
    Ok(metrics::sse_per_image(&rec, targets)
        .into_iter()
        .map(|s| s / PIXELS as f64)
        .collect())
}

/// What reconstructs: PCA with k components, or a library model.
#[derive(Clone)]
pub enum Source {
    Pca(Arc<Pca>, usize),
    Model(ModelRef),
    /// A model in memory, under a label (the report's models).
    Live(String, Arc<Autoencoder>),
}

impl Source {
    /// The autoencoder behind the source (loaded through `cache`), or None
    /// for PCA.
    pub fn model(&self, cache: &ModelCache) -> Option<Result<Arc<Autoencoder>, String>> {
        match self {
            Source::Pca(..) => None,
            Source::Model(m) => Some(cache.get(&m.path)),
            Source::Live(_, model) => Some(Ok(model.clone())),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Source::Pca(_, k) => format!("PCA-{k}"),
            Source::Model(m) => m.label.clone(),
            Source::Live(label, _) => label.clone(),
        }
    }
}

pub fn reconstruct(
    cache: &ModelCache,
    source: &Source,
    images: &[f32],
) -> Result<Vec<f32>, String> {
    if let Source::Pca(p, k) = source {
        return Ok(p
            .reconstruct(images, *k)
            .into_iter()
            .map(|v| v.clamp(0.0, 1.0))
            .collect());
    }
    let model = source.model(cache).ok_or("no model")??;
    model.reconstruct(images).map_err(|e| e.to_string())
}

/// Test-set figures of PCA-k (with the linear probe on its codes).
pub fn pca_test_metrics(data: &Dataset, pca: &Pca, k: usize) -> Metrics {
    let x = data.test.to_f32();
    let rec: Vec<f32> = pca
        .reconstruct(&x, k)
        .into_iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    let mut m = metrics::reconstruction_metrics(&rec, &x);
    let train = data.train.head(crate::train::run::PROBE_TRAIN_IMAGES);
    let codes_tr = pca.project(&train.to_f32(), k);
    let codes_te = pca.project(&x, k);
    m.probe_accuracy = Some(metrics::linear_probe(
        &codes_tr,
        &train.labels,
        &codes_te,
        &data.test.labels,
        k,
        1,
    ));
    m
}

pub use crate::train::metrics::auroc;

/// Fraction of `values` above `threshold`.
pub fn fraction_above(values: &[f64], threshold: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|&&v| v > threshold).count() as f64 / values.len() as f64
}

/// Histogram of `values` over `[lo, hi)` in `bins` bins, as fractions.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut h = vec![0.0; bins];
    if values.is_empty() || hi <= lo || bins == 0 {
        return h;
    }
    for &v in values {
        let i = (((v - lo) / (hi - lo)) * bins as f64).floor();
        let i = (i.max(0.0) as usize).min(bins - 1);
        h[i] += 1.0;
    }
    let n = values.len() as f64;
    h.iter_mut().for_each(|c| *c /= n);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_extremes_and_ties() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0, 1.0]), 0.5);
        // one of four pairs wrong
        assert!((auroc(&[2.0, 4.0], &[1.0, 3.0]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn histogram_counts_fractions() {
        let h = histogram(&[0.0, 0.1, 0.5, 0.99, 5.0], 0.0, 1.0, 2);
        assert_eq!(h, vec![0.4, 0.6]);
        assert_eq!(fraction_above(&[1.0, 2.0, 3.0, 4.0], 2.5), 0.5);
    }

    #[test]
    fn scores_of_a_perfect_reconstruction() {
        let x: Vec<f32> = (0..PIXELS).map(|i| (i % 7) as f32 / 7.0).collect();
        let s = scores(&x, &x);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].mse, 0.0);
        assert_eq!(s[0].psnr, 100.0);
        assert!((s[0].ssim - 1.0).abs() < 1e-9);
    }
}
