//! Inputs a model never saw: random images, and how well a model's
//! reconstruction error tells them (and another data set) from its own
//! test digits (the errors of each set and the AUROCs).

use super::models::ModelCache;
use super::recon::{self, Source};
use crate::data::{Dataset, DatasetKind, PIXELS};
use crate::rng::Rng;

/// Images per set behind the histograms.
pub const HIST_IMAGES: usize = 2000;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputKind {
    Other,
    Uniform,
    Gaussian,
    SaltPepper,
}

impl InputKind {
    pub const ALL: [InputKind; 4] = [
        InputKind::Other,
        InputKind::Uniform,
        InputKind::Gaussian,
        InputKind::SaltPepper,
    ];
    pub fn label(self, other: DatasetKind) -> String {
        match self {
            InputKind::Other => format!("{} test images", other.display_name()),
            InputKind::Uniform => "uniform noise".into(),
            InputKind::Gaussian => "Gaussian noise".into(),
            InputKind::SaltPepper => "salt-and-pepper noise".into(),
        }
    }
}

/// `n` random images of `kind` (not `Other`) from `seed`: uniform in [0, 1];
/// Gaussian with mean 0.5 and std 0.25, clipped; salt-and-pepper with 20%
/// white pixels on black (about the ink fraction of a digit).
pub fn random_images(kind: InputKind, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * PIXELS)
        .map(|_| match kind {
            InputKind::Gaussian => (0.5 + 0.25 * rng.normal()).clamp(0.0, 1.0),
            InputKind::SaltPepper => {
                if rng.uniform() < 0.2 {
                    1.0
                } else {
                    0.0
                }
            }
            _ => rng.uniform(),
        })
        .collect()
}

/// `n` inputs of `kind`: random test images of the other data set (when
/// it is there; else uniform noise), or random images.
pub fn inputs(kind: InputKind, other: Option<&Dataset>, n: usize, seed: u64) -> Vec<f32> {
    match (kind, other) {
        (InputKind::Other, Some(o)) => {
            let mut rng = Rng::new(seed);
            let count = o.test.len();
            (0..n)
                .flat_map(|_| o.test.image_f32(rng.below(count)))
                .collect()
        }
        _ => random_images(kind, n, seed),
    }
}

/// Errors of one model on the three sets, and the AUROCs.
#[derive(Clone, Debug)]
pub struct Separation {
    pub model: String,
    pub score: Score,
    pub inside: Vec<f64>,
    /// Empty when there were no other images.
    pub other: Vec<f64>,
    pub noise: Vec<f64>,
    pub auroc_other: Option<f64>,
    /// For the −ELBO score: the AUROC of the inputs' own entropy alone
    /// ([`entropy_scores`]), what the ELBO's separation is to be read
    /// against.
    pub baseline_auroc_other: Option<f64>,
    pub auroc_noise: f64,
}

/// What flags an unfamiliar input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Score {
    /// The reconstruction's MSE.
    #[default]
    Mse,
    /// A VAE's negative ELBO: its reconstruction term plus the KL of the
    /// code, nats (how unlikely the model finds the image).
    NegElbo,
}

impl Score {
    pub fn label(self) -> &'static str {
        match self {
            Score::Mse => "reconstruction MSE",
            Score::NegElbo => "−ELBO (nats)",
        }
    }
}

/// Per image of `images`, `score` under `source` (the ELBO needs a VAE in
/// the cache or in memory).
pub fn scores(
    cache: &ModelCache,
    source: &Source,
    images: &[f32],
    score: Score,
) -> Result<Vec<f64>, String> {
    if score == Score::Mse {
        return recon::errors(cache, source, images, images);
    }
    let model = source.model(cache).ok_or("PCA has no ELBO")??;
    if !model.config.is_vae() {
        return Err(format!("{}: only a VAE has an ELBO", model.config.preset));
    }
    let (rec, kl, _) =
        crate::train::vae::per_image(&model, images, 1).map_err(|e| e.to_string())?;
    Ok(rec.iter().zip(&kl).map(|(r, k)| r + k).collect())
}

/// Per image, the binary entropy of its pixels summed (nats): the least
/// cross-entropy any model can reach on it. A VAE's −ELBO (with BCE) is
/// this plus what the model adds, so grey images score high whatever the
/// model: the baseline the ELBO's separation is to be read against.
pub fn entropy_scores(images: &[f32]) -> Vec<f64> {
    images
        .chunks_exact(PIXELS)
        .map(|img| {
            img.iter()
                .map(|&t| {
                    let t = (t as f64).clamp(0.0, 1.0);
                    let h = |p: f64| if p > 0.0 { -p * p.ln() } else { 0.0 };
                    h(t) + h(1.0 - t)
                })
                .sum()
        })
        .collect()
}

/// The errors of `source` on its own test images, another data set's (when
/// given) and noise, with how well each error tells them apart.
pub fn separation(
    cache: &ModelCache,
    source: &Source,
    inside: &[f32],
    other: Option<&[f32]>,
    noise: &[f32],
    score: Score,
) -> Result<Separation, String> {
    let e_in = scores(cache, source, inside, score)?;
    let e_other = match other {
        Some(o) => Some(scores(cache, source, o, score)?),
        None => None,
    };
    let e_noise = scores(cache, source, noise, score)?;
    Ok(Separation {
        model: source.label(),
        score,
        auroc_other: e_other.as_ref().map(|o| recon::auroc(o, &e_in)),
        baseline_auroc_other: match (score, other) {
            (Score::NegElbo, Some(o)) => {
                Some(recon::auroc(&entropy_scores(o), &entropy_scores(inside)))
            }
            _ => None,
        },
        auroc_noise: recon::auroc(&e_noise, &e_in),
        inside: e_in,
        other: e_other.unwrap_or_default(),
        noise: e_noise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Autoencoder, ModelConfig};
    use std::sync::Arc;

    #[test]
    fn the_elbo_score_is_reconstruction_plus_kl_and_needs_a_vae() {
        let cache = ModelCache::default();
        let vae = Arc::new(
            Autoencoder::new(
                &ModelConfig::preset("vae-2").unwrap(),
                1,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        );
        let x = random_images(InputKind::Uniform, 3, 4);
        let s = scores(
            &cache,
            &Source::Live("v".into(), vae.clone()),
            &x,
            Score::NegElbo,
        )
        .unwrap();
        let (rec, kl, _) = crate::train::vae::per_image(&vae, &x, 1).unwrap();
        for i in 0..3 {
            assert!((s[i] - rec[i] - kl[i]).abs() < 1e-9);
        }
        let mse = scores(&cache, &Source::Live("v".into(), vae), &x, Score::Mse).unwrap();
        assert!(mse.iter().all(|&m| m < 1.0) && s.iter().all(|&e| e > 10.0));
        let plain = Arc::new(
            Autoencoder::new(
                &ModelConfig::preset("shallow-64").unwrap(),
                1,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        );
        assert!(scores(&cache, &Source::Live("p".into(), plain), &x, Score::NegElbo).is_err());
        // entropy: 0 for black and white pixels, ln 2 for grey ones
        let mut img = vec![0.0f32; 2 * PIXELS];
        img[PIXELS..].fill(0.5);
        img[0] = 1.0;
        let h = entropy_scores(&img);
        assert_eq!(h[0], 0.0);
        assert!((h[1] - PIXELS as f64 * 2f64.ln()).abs() < 1e-6);
    }
}
