//! The latent space, computed: a 2-D map of the test set (PCA's first two
//! components, or a model's codes on their two main directions), where a
//! new input lands on it, interpolation between two inputs in pixels,
//! PCA-k and code space, and walks along a code space's main directions.

use super::models::{ModelCache, ModelRef};
use crate::data::Dataset;
use crate::pca::{self, Pca};

/// Test images on the map.
pub const MAP_IMAGES: usize = 2000;
/// Fixed blend steps shown in each interpolation row (plus the slider's).
pub const STEPS: usize = 7;
/// Latent sliders per model.
pub const SLIDERS: usize = 5;

/// What the map shows.
#[derive(Clone, Debug, PartialEq)]
pub enum MapSource {
    Pca,
    Model(ModelRef),
}

impl MapSource {
    pub fn label(&self) -> String {
        match self {
            MapSource::Pca => "PCA (first two components)".into(),
            MapSource::Model(m) if super::vae::is_plane(m) => {
                format!("{} (its code plane)", m.label)
            }
            MapSource::Model(m) => format!("{} (codes on their two main directions)", m.label),
        }
    }
}

/// A 2-D map of the test set, with what is needed to place new inputs.
pub struct Map {
    pub points: Vec<[f32; 2]>,
    pub labels: Vec<u8>,
    /// Code mean and main directions (for models; PCA uses its own).
    pub basis: Option<(Vec<f32>, pca::Directions)>,
}

fn codes_of(
    cache: &ModelCache,
    source: &MapSource,
    pca: &Pca,
    x: &[f32],
) -> Result<(Vec<f32>, usize), String> {
    match source {
        MapSource::Pca => Ok((pca.project(x, 2), 2)),
        MapSource::Model(m) => {
            let model = cache.get(&m.path)?;
            let c = model.encode(x).map_err(|e| e.to_string())?;
            Ok((c, model.config.bottleneck()))
        }
    }
}

/// Build the map of the first [`MAP_IMAGES`] test images.
pub fn build_map(
    cache: &ModelCache,
    source: &MapSource,
    data: &Dataset,
    pca: &Pca,
) -> Result<Map, String> {
    let n = MAP_IMAGES.min(data.test.len());
    let x = data.test.rows_f32(0..n);
    let (codes, dim) = codes_of(cache, source, pca, &x)?;
    let labels = data.test.labels[..n].to_vec();
    // PCA's two components, and a 2-D VAE's own plane (its codes as they
    // are: the plane it decodes from)
    let plane = matches!(source, MapSource::Model(m) if super::vae::is_plane(m));
    if *source == MapSource::Pca || plane {
        let points = codes.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        return Ok(Map {
            points,
            labels,
            basis: None,
        });
    }
    let (mean, dirs) = pca::principal_directions(&codes, dim, 2, 1);
    let points = pca::project_on(&codes, dim, &mean, &dirs);
    Ok(Map {
        points,
        labels,
        basis: Some((mean, dirs)),
    })
}

/// Where an input lands on the map.
pub fn place(
    cache: &ModelCache,
    source: &MapSource,
    pca: &Pca,
    map: &Map,
    x: &[f32],
) -> Option<[f32; 2]> {
    let (codes, dim) = codes_of(cache, source, pca, x).ok()?;
    match &map.basis {
        None => Some([codes[0], codes[1]]),
        Some((mean, dirs)) => pca::project_on(&codes, dim, mean, dirs).first().copied(),
    }
}

/// One interpolation row: images at each blend weight.
#[derive(Clone, Debug)]
pub struct InterpRow {
    pub label: String,
    pub images: Result<Vec<f32>, String>,
}

/// Blend weights of the rows: the fixed steps, then `t`.
pub fn weights(t: f32) -> Vec<f32> {
    let mut w: Vec<f32> = (0..STEPS).map(|i| i as f32 / (STEPS - 1) as f32).collect();
    w.push(t);
    w
}

fn blend(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| (1.0 - t) * x + t * y)
        .collect()
}

/// Interpolate from `a` to `b` (28x28 each) in pixels, PCA-k and each
/// model's code space, at `weights(t)`.
pub fn interpolate(
    cache: &ModelCache,
    pca: &Pca,
    k: usize,
    models: &[ModelRef],
    a: &[f32],
    b: &[f32],
    t: f32,
) -> Vec<InterpRow> {
    let w = weights(t);
    let mut rows = vec![InterpRow {
        label: "pixels".into(),
        images: Ok(w.iter().flat_map(|&t| blend(a, b, t)).collect()),
    }];
    let (ca, cb) = (pca.project(a, k), pca.project(b, k));
    let codes: Vec<f32> = w.iter().flat_map(|&t| blend(&ca, &cb, t)).collect();
    rows.push(InterpRow {
        label: format!("PCA-{k}"),
        images: Ok(pca
            .decode(&codes, k)
            .into_iter()
            .map(|v| v.clamp(0.0, 1.0))
            .collect()),
    });
    for m in models {
        let images = cache.get(&m.path).and_then(|model| {
            if !model.can_decode() {
                return Err(format!(
                    "{}: its unpooling decoder needs the encoder's pooling switches, so it cannot decode a blended code",
                    m.label
                ));
            }
            let ab: Vec<f32> = a.iter().chain(b).copied().collect();
            let c = model.encode(&ab).map_err(|e| e.to_string())?;
            let dim = model.config.bottleneck();
            let codes: Vec<f32> = w.iter().flat_map(|&t| blend(&c[..dim], &c[dim..], t)).collect();
            model.decode(&codes).map_err(|e| e.to_string())
        });
        rows.push(InterpRow {
            label: m.label.clone(),
            images,
        });
    }
    rows
}

/// The decoded image after moving `x`'s code along the model's main
/// directions by `steps` standard deviations; also the plain reconstruction.
/// A VAE's directions are its own code dimensions, those with the largest
/// KL first (the prior's unit standard deviation each).
pub fn walk(
    cache: &ModelCache,
    model: &ModelRef,
    data: &Dataset,
    x: &[f32],
    steps: &[f32],
) -> Walk {
    let m = cache.get(&model.path)?;
    if !m.can_decode() {
        return Err(format!(
            "{}: its unpooling decoder cannot decode a code alone",
            model.label
        ));
    }
    let dim = m.config.bottleneck();
    let n = MAP_IMAGES.min(data.test.len());
    let codes = m
        .encode(&data.test.rows_f32(0..n))
        .map_err(|e| e.to_string())?;
    let dirs = if m.config.is_vae() {
        super::vae::ranked_dimensions(&m, data)?
            .into_iter()
            .take(SLIDERS)
            .map(|(d, _)| {
                let mut unit = vec![0.0; dim];
                unit[d] = 1.0;
                (unit, 1.0)
            })
            .collect()
    } else {
        pca::principal_directions(&codes, dim, SLIDERS, 1).1
    };
    let mut c = m.encode(x).map_err(|e| e.to_string())?;
    let base = m.decode(&c).map_err(|e| e.to_string())?;
    for ((d, sd), s) in dirs.iter().zip(steps) {
        for (ci, di) in c.iter_mut().zip(d) {
            *ci += s * sd * di;
        }
    }
    let moved = m.decode(&c).map_err(|e| e.to_string())?;
    Ok((base, moved, dirs.iter().map(|(_, s)| *s).collect()))
}

/// The plain reconstruction, the one moved along the main directions, and
/// the standard deviation along each direction.
pub type Walk = Result<(Vec<f32>, Vec<f32>, Vec<f32>), String>;
