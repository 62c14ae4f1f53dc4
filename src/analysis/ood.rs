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
    pub inside: Vec<f64>,
    /// Empty when there were no other images.
    pub other: Vec<f64>,
    pub noise: Vec<f64>,
    pub auroc_other: Option<f64>,
    pub auroc_noise: f64,
}

/// The errors of `source` on its own test images, another data set's (when
/// given) and noise, with how well each error tells them apart.
pub fn separation(
    cache: &ModelCache,
    source: &Source,
    inside: &[f32],
    other: Option<&[f32]>,
    noise: &[f32],
) -> Result<Separation, String> {
    let e_in = recon::errors(cache, source, inside, inside)?;
    let e_other = match other {
        Some(o) => Some(recon::errors(cache, source, o, o)?),
        None => None,
    };
    let e_noise = recon::errors(cache, source, noise, noise)?;
    Ok(Separation {
        model: source.label(),
        auroc_other: e_other.as_ref().map(|o| recon::auroc(o, &e_in)),
        auroc_noise: recon::auroc(&e_noise, &e_in),
        inside: e_in,
        other: e_other.unwrap_or_default(),
        noise: e_noise,
    })
}
