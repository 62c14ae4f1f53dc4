//! The study, defined once: its five steps in order, each with its
//! question, explanation, the presets it trains, the models it compares
//! them with, and where its figures are; every preset of the study; the
//! Study view's figure for a step; and each step's take-away from the
//! user's own results. The Study view, the report, `aelab presets`, the
//! Train view's preset list and "Train the whole study" all read it.

use super::models::{ModelCache, ModelRef};
use super::recon::{self, Row};
use crate::data::noise::{Noise, NoiseKind};
use crate::data::Dataset;
use crate::pca::Pca;
use crate::rng::Rng;
use crate::train::metrics::Metrics;

/// The view that holds a step's other figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shows {
    Pca,
    Ood,
    Filters,
    Denoise,
    Compare,
    Latent,
}

/// One step of the study.
pub struct Step {
    pub title: &'static str,
    pub explain: &'static str,
    pub presets: &'static [&'static str],
    /// Gaussian noise on the inputs of the step's figure.
    pub noise: f32,
    /// Models of other steps that this step's figures in the report set
    /// beside its own, for comparison.
    pub baseline: &'static [&'static str],
    /// The view with the step's other figures.
    pub shows: Shows,
}

pub const STEPS: [Step; 6] = [
    Step {
        title: "PCA versus a deep autoencoder",
        explain: "PCA squeezes each 784-pixel digit into k numbers with the best straight-line (linear) projection. An autoencoder learns its own squeeze (the encoder) and un-squeeze (the decoder) with non-linear layers. With the same 30 numbers, which keeps more of the digit?",
        presets: &["deep"],
        baseline: &[],
        noise: 0.0,
        shows: Shows::Pca,
    },
    Step {
        title: "How wide must the hidden layer be?",
        explain: "A shallow autoencoder has one hidden layer: its width is the code size (the bottleneck). Wider codes keep more detail, but the model only learns digits: clothes and random noise come out looking like digits, which is how an autoencoder can tell what it has never seen.",
        presets: &["shallow-64", "shallow-128", "shallow-256"],
        baseline: &["deep"],
        noise: 0.0,
        shows: Shows::Ood,
    },
    Step {
        title: "Sparsity: few units at a time",
        explain: "A sparse autoencoder has many hidden units (1024) but pays a penalty (L1, strength λ) for every unit it switches on, so each digit uses only a few. The units that survive learn stroke-like filters; with a strong λ most units never fire at all (see the Filters view).",
        presets: &["sparse-1e-6", "sparse-1e-4", "sparse-1e-3"],
        baseline: &["shallow-256"],
        noise: 0.0,
        shows: Shows::Filters,
    },
    Step {
        title: "Denoising: learn to clean",
        explain: "A denoising autoencoder sees a corrupted digit and is trained to output the clean one. The noise level it trained on matters: here each model cleans digits with Gaussian noise of strength 0.5 (try other levels in the Denoise view).",
        presets: &["denoise-0.3", "denoise-0.5", "denoise-0.7", "denoise-0.8", "denoise-0.9"],
        baseline: &["shallow-256"],
        noise: 0.5,
        shows: Shows::Denoise,
    },
    Step {
        title: "Convolutional decoders",
        explain: "Convolutional autoencoders look at small 3x3 patches and pool them down to a 4x4x16 code. To grow the image back, the decoder can put values back where the pooling found them (max-unpooling), learn to spread them out (transposed convolution), or both. Which rebuilds digits best?",
        presets: &["conv-unpool", "conv-deconv", "conv-both"],
        baseline: &[],
        noise: 0.0,
        shows: Shows::Compare,
    },
    Step {
        title: "A variational autoencoder",
        explain: "A variational autoencoder (VAE) encodes each digit as a small cloud of codes (a mean and a spread) rather than one point, and pays a KL penalty (weight β) for clouds that stray from a standard normal. The reward: every point of its code space decodes to something digit-like, so you can drag through the plane of a 2-D VAE, see a grid of digits morph into each other, and draw new digits from nothing (Latent space view).",
        presets: &["vae-2", "vae-30"],
        baseline: &["deep"],
        noise: 0.0,
        shows: Shows::Latent,
    },
];

/// Every preset of the study, step by step.
pub fn presets() -> Vec<&'static str> {
    STEPS
        .iter()
        .flat_map(|s| s.presets.iter().copied())
        .collect()
}

/// Digits in the Study view's figure.
pub const FIGURE_DIGITS: usize = 8;

/// The Study view's figure for `step`: the first test digits (with the
/// step's noise) and their reconstructions by PCA-30 (step 1) and by
/// `models`, scored against the clean digits.
pub fn step_rows(
    cache: &ModelCache,
    data: &Dataset,
    pca: &Pca,
    step: usize,
    models: &[ModelRef],
) -> (Vec<f32>, Vec<Row>) {
    let n = FIGURE_DIGITS.min(data.test.len());
    let clean = data.test.rows_f32(0..n);
    let mut x = clean.clone();
    Noise {
        kind: NoiseKind::Gaussian,
        level: STEPS[step].noise,
    }
    .apply(&mut x, &mut Rng::new(1));
    let mut rows = Vec::new();
    if step == 0 {
        rows.push(recon::pca_row(pca, 30, &x, &clean));
    }
    rows.extend(recon::model_rows(cache, models, &x, &clean));
    (x, rows)
}

/// The step's take-away from the user's results, or what is missing.
/// `results` gives a preset's test metrics, where a model of it is trained.
pub fn take_away(
    step: usize,
    results: &dyn Fn(&str) -> Option<Metrics>,
    pca30: Option<&Metrics>,
) -> String {
    let mse = |p: &str| results(p).map(|m| m.mse_per_pixel);
    match step {
        0 => match (pca30, mse("deep")) {
            (Some(p), Some(d)) => format!(
                "With 30 components PCA's test error is {:.4}; the deep autoencoder's 30-number code gets {:.4}: PCA's error is {:.1}× the autoencoder's.",
                p.mse_per_pixel,
                d,
                p.mse_per_pixel / d.max(1e-12)
            ),
            _ => "Train the deep autoencoder to compare it with PCA-30.".into(),
        },
        1 => match (mse(STEPS[1].presets[0]), mse(STEPS[1].presets[2])) {
            (Some(a), Some(b)) => format!(
                "Going from 64 to 256 hidden units takes the test error from {a:.4} to {b:.4} ({:.0}% lower).",
                (1.0 - b / a.max(1e-12)) * 100.0
            ),
            _ => "Train the three shallow models to see what width buys.".into(),
        },
        2 => {
            let found: Vec<String> = STEPS[2]
                .presets
                .iter()
                .filter_map(|p| mse(p).map(|m| format!("{p}: {m:.4}")))
                .collect();
            if found.is_empty() {
                "Train the sparse models; the Filters view then shows how many units never fire.".into()
            } else {
                format!(
                    "Test error by penalty: {}. The stronger the penalty, the fewer units fire and the blurrier the digits.",
                    found.join(", ")
                )
            }
        }
        3 => {
            let found: Vec<(String, f64)> = STEPS[3]
                .presets
                .iter()
                .filter_map(|p| mse(p).map(|m| (p.to_string(), m)))
                .collect();
            match found.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                Some((p, m)) => format!(
                    "On clean test digits the best of the denoisers is {p} ({m:.4}); models trained on heavy noise blur clean digits more, but survive noise better (Denoise view)."
                ),
                None => "Train the denoising models to compare noise levels.".into(),
            }
        }
        4 => {
            let mut found: Vec<(String, f64)> = STEPS[4]
                .presets
                .iter()
                .filter_map(|p| mse(p).map(|m| (p.to_string(), m)))
                .collect();
            found.sort_by(|a, b| a.1.total_cmp(&b.1));
            match found.as_slice() {
                [best, second, ..] => format!(
                    "{} rebuilds digits best (test error {:.4}), {:.0}% below {} ({:.4}).",
                    best.0,
                    best.1,
                    (1.0 - best.1 / second.1.max(1e-12)) * 100.0,
                    second.0,
                    second.1
                ),
                _ => "Train at least two conv decoders to compare them.".into(),
            }
        }
        _ => vae_take_away(results),
    }
}

/// Step 6's take-away: the 30-D VAE against the deep autoencoder of the
/// same code size, and what the 2-D one keeps.
fn vae_take_away(results: &dyn Fn(&str) -> Option<Metrics>) -> String {
    let (v2, v30, deep) = (results("vae-2"), results("vae-30"), results("deep"));
    let elbo = |m: &Metrics| {
        m.elbo
            .map_or_else(String::new, |e| format!(", ELBO {e:.1} nats"))
    };
    match (&v30, &deep) {
        (Some(v), Some(d)) => format!(
            "With a 30-number code the VAE's test error is {:.4}{} against the deep autoencoder's {:.4}: it gives up {:.0}% of reconstruction quality for a code space you can sample from{}.",
            v.mse_per_pixel,
            elbo(v),
            d.mse_per_pixel,
            (v.mse_per_pixel / d.mse_per_pixel.max(1e-12) - 1.0) * 100.0,
            v2.as_ref().map_or_else(String::new, |m| format!(
                "; squeezed into 2 numbers it still reaches {:.4}{}",
                m.mse_per_pixel,
                elbo(m)
            ))
        ),
        _ => "Train vae-30 and the deep autoencoder to compare a sampleable code with a plain one (vae-2 draws the plane in the Latent space view).".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    #[test]
    fn every_preset_of_the_study_parses_once() {
        let all = presets();
        assert_eq!(all.len(), 1 + 3 + 3 + 5 + 3 + 2);
        for name in &all {
            let c = ModelConfig::preset(name).unwrap();
            assert_eq!(c.preset, *name);
            assert_eq!(all.iter().filter(|p| *p == name).count(), 1, "{name}");
        }
        for s in &STEPS {
            for b in s.baseline {
                assert!(all.contains(b), "{b}");
            }
        }
    }

    #[test]
    fn take_aways_use_the_results_given() {
        let mse = |p: &str| {
            let m = |v| {
                Some(Metrics {
                    mse_per_pixel: v,
                    ..Metrics::default()
                })
            };
            match p {
                "shallow-64" => m(0.02),
                "shallow-256" => m(0.01),
                _ => None,
            }
        };
        assert!(take_away(1, &mse, None).contains("50% lower"));
        assert!(take_away(0, &mse, None).starts_with("Train the deep"));
    }
}
