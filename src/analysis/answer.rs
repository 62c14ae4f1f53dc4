//! The Draw view's answer to one input: PCA-k's and every model's
//! reconstruction with its error and the digit a linear probe reads from
//! its code, and the closest training images (a PCA index re-ranked by
//! pixel distance).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::models::{ModelCache, ModelRef};
use crate::data::{Dataset, PIXELS};
use crate::pca::Pca;
use crate::train::metrics::Probe;

/// Training images each probe is fitted on.
pub const PROBE_IMAGES: usize = 5000;
/// Closest training images shown.
pub const NEAREST: usize = 6;
/// PCA components of the nearest-neighbour index.
const INDEX_K: usize = 50;

/// (training index, label, pixel distance).
pub type Neighbour = (usize, u8, f32);

/// Probes by model path (or "pca-K"), shared with the compute threads.
pub type Probes = Arc<Mutex<HashMap<String, Arc<Probe>>>>;

/// One model's answer to the current input.
#[derive(Clone, Debug)]
pub struct Answer {
    pub label: String,
    pub image: Result<Vec<f32>, String>,
    pub mse: Option<f64>,
    /// Most likely digit and its probability, once the probe is fitted.
    pub digit: Option<(u8, f32)>,
}

#[derive(Clone, Debug, Default)]
pub struct DrawResult {
    pub answers: Vec<Answer>,
    /// (training index, label, distance) of the closest training images.
    pub nearest: Vec<(usize, u8, f32)>,
}

/// Training images projected on the first PCA components, for a fast
/// nearest-neighbour search (re-ranked by pixel distance).
pub struct NearIndex {
    codes: Vec<f32>,
    id: u64,
}

impl NearIndex {
    pub fn build(data: &Dataset, pca: &Pca) -> NearIndex {
        let mut codes = Vec::with_capacity(data.train.len() * INDEX_K);
        for start in (0..data.train.len()).step_by(5000) {
            let end = (start + 5000).min(data.train.len());
            codes.extend(pca.project(&data.train.rows_f32(start..end), INDEX_K));
        }
        NearIndex {
            codes,
            id: crate::fresh_id(),
        }
    }

    /// This index's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The `n` training images closest to `x` (Euclidean, in pixels).
    pub fn nearest(&self, data: &Dataset, pca: &Pca, x: &[f32], n: usize) -> Vec<(usize, u8, f32)> {
        let q = pca.project(x, INDEX_K);
        let mut cand: Vec<(usize, f32)> = self
            .codes
            .chunks_exact(INDEX_K)
            .enumerate()
            .map(|(i, c)| (i, c.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum()))
            .collect();
        let shortlist = (n * 10).min(cand.len());
        if shortlist == 0 {
            return Vec::new();
        }
        cand.select_nth_unstable_by(shortlist - 1, |a, b| a.1.total_cmp(&b.1));
        cand.truncate(shortlist);
        let mut exact: Vec<(usize, u8, f32)> = cand
            .into_iter()
            .map(|(i, _)| {
                let d: f32 = data
                    .train
                    .image(i)
                    .iter()
                    .zip(x)
                    .map(|(&p, &v)| (p as f32 / 255.0 - v).powi(2))
                    .sum();
                (i, data.train.labels[i], d.sqrt())
            })
            .collect();
        exact.sort_by(|a, b| a.2.total_cmp(&b.2));
        exact.truncate(n);
        exact
    }
}

/// Fit the probes that are missing (one per model, and PCA-k).
pub fn fit_probes(
    cache: &ModelCache,
    probes: &Probes,
    data: &Dataset,
    pca: &Pca,
    models: &[ModelRef],
    k: usize,
) -> usize {
    let train = data.train.head(PROBE_IMAGES);
    let x = train.to_f32();
    let has = |key: &str| {
        probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    };
    let pca_key = format!("pca-{k}");
    if !has(&pca_key) {
        let p = Probe::fit(&pca.project(&x, k), &train.labels, k, 1);
        probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pca_key, Arc::new(p));
    }
    for m in models {
        let key = m.path.display().to_string();
        if has(&key) {
            continue;
        }
        if let Ok(model) = cache.get(&m.path) {
            if let Ok(codes) = model.encode(&x) {
                let p = Probe::fit(&codes, &train.labels, model.config.bottleneck(), 1);
                probes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, Arc::new(p));
            }
        }
    }
    probes.lock().unwrap_or_else(|e| e.into_inner()).len()
}

fn best(p: [f32; 10]) -> (u8, f32) {
    let (i, v) = p
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, v)| (i, *v))
        .unwrap_or((0, 0.0));
    (i as u8, v)
}

/// Every answer to the input `x`: PCA-k first, then each model.
pub fn answer(
    cache: &ModelCache,
    probes: &Probes,
    pca: &Pca,
    k: usize,
    models: &[ModelRef],
    x: &[f32],
) -> Vec<Answer> {
    let probes = probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mse = |r: &[f32]| {
        r.iter()
            .zip(x)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / PIXELS as f64
    };
    let mut out = Vec::new();
    let rec: Vec<f32> = pca
        .reconstruct(x, k)
        .into_iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    out.push(Answer {
        label: format!("PCA-{k}"),
        mse: Some(mse(&rec)),
        image: Ok(rec),
        digit: probes
            .get(&format!("pca-{k}"))
            .map(|p| best(p.probabilities(&pca.project(x, k)))),
    });
    use rayon::prelude::*;
    // the models side by side on the cores
    out.par_extend(models.par_iter().map(|m| {
        let model = cache.get(&m.path);
        let probe = probes.get(&m.path.display().to_string());
        // one forward pass for the picture and, once the probe is fitted,
        // the code it reads
        let (image, digit) = match (&model, probe) {
            (Err(e), _) => (Err(e.clone()), None),
            (Ok(md), None) => (md.reconstruct(x).map_err(|e| e.to_string()), None),
            (Ok(md), Some(p)) => match md.reconstruct_and_encode(x) {
                Ok((image, code)) => (Ok(image), Some(best(p.probabilities(&code)))),
                Err(e) => (Err(e.to_string()), None),
            },
        };
        Answer {
            label: m.label.clone(),
            mse: image.as_ref().ok().map(|r| mse(r)),
            image,
            digit,
        }
    }));
    out
}
