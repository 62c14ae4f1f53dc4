//! What a VAE's code space gives: images decoded from any point of it, a
//! grid of digits over the plane of a 2-D code, digits drawn from the
//! prior, and the code dimensions ranked by how much they carry (KL).

use super::models::ModelCache;
use super::models::ModelRef;
use crate::data::Dataset;
use crate::model::Autoencoder;
use crate::rng::Rng;
use crate::train::vae;

/// Side of the grid of decoded digits.
pub const GRID: usize = 15;
/// Digits drawn by "Sample".
pub const SAMPLES: usize = 10;
/// Test images behind the KL ranking of the code dimensions.
pub const RANK_IMAGES: usize = 2000;

/// The grid's codes: `side × side` points of the plane, `x` from `-range`
/// to `range` left to right, `y` from `range` to `-range` top to bottom (as
/// a plot shows them), row by row.
pub fn grid_codes(side: usize, range: f32) -> Vec<f32> {
    let at = |i: usize| -range + 2.0 * range * i as f32 / (side.max(2) - 1) as f32;
    (0..side)
        .flat_map(|r| (0..side).flat_map(move |c| [at(c), at(side - 1 - r)]))
        .collect()
}

/// The digits of [`grid_codes`], decoded by a 2-D VAE: `[side² * 784]`.
pub fn decode_grid(model: &Autoencoder, side: usize, range: f32) -> Result<Vec<f32>, String> {
    if model.config.bottleneck() != 2 || !model.config.is_vae() {
        return Err(format!(
            "{}: the grid needs a VAE with a 2-D code",
            model.config.preset
        ));
    }
    model
        .decode(&grid_codes(side, range))
        .map_err(|e| e.to_string())
}

/// `images` (28x28 each) tiled `cols` to a row into one image, row by row:
/// the pixels and `[width, height]`.
pub fn mosaic(images: &[f32], cols: usize) -> (Vec<f32>, [usize; 2]) {
    let side = crate::data::IMAGE_SIDE;
    let n = images.len() / (side * side);
    let cols = cols.max(1);
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * side, rows * side);
    let mut out = vec![0.0; w * h];
    for (i, img) in images.chunks_exact(side * side).enumerate() {
        let (r, c) = (i / cols, i % cols);
        for y in 0..side {
            let dst = (r * side + y) * w + c * side;
            out[dst..dst + side].copy_from_slice(&img[y * side..(y + 1) * side]);
        }
    }
    (out, [w, h])
}

/// `n` digits from the prior: codes drawn from N(0, I) (from `seed`),
/// decoded.
pub fn sample(model: &Autoencoder, n: usize, seed: u64) -> Result<Vec<f32>, String> {
    if !model.config.is_vae() {
        return Err(format!("{} is not a VAE", model.config.preset));
    }
    let z = vae::standard_normals(n * model.config.bottleneck(), &mut Rng::new(seed));
    model.decode(&z).map_err(|e| e.to_string())
}

/// The code dimensions by their KL on the first test images, largest
/// first: (dimension, KL in nats).
pub fn ranked_dimensions(model: &Autoencoder, data: &Dataset) -> Result<Vec<(usize, f64)>, String> {
    let n = RANK_IMAGES.min(data.test.len());
    let (_, _, per_dim) =
        vae::per_image(model, &data.test.rows_f32(0..n), 1).map_err(|e| e.to_string())?;
    let mut dims: Vec<(usize, f64)> = per_dim.into_iter().enumerate().collect();
    dims.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(dims)
}

/// A library model, if it is a VAE with a 2-D code.
pub fn is_plane(m: &ModelRef) -> bool {
    m.config.is_vae() && m.config.bottleneck() == 2
}

/// The image a 2-D VAE decodes at `z`.
pub fn decode_point(cache: &ModelCache, model: &ModelRef, z: [f32; 2]) -> Result<Vec<f32>, String> {
    cache
        .get(&model.path)?
        .decode(&z)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PIXELS;
    use crate::model::ModelConfig;
    use candle_core::Device;

    #[test]
    fn grid_sample_and_ranking() {
        let codes = grid_codes(3, 2.0);
        // top-left is (-2, 2), the centre (0, 0), bottom-right (2, -2)
        assert_eq!(&codes[..2], &[-2.0, 2.0]);
        assert_eq!(&codes[8..10], &[0.0, 0.0]);
        assert_eq!(&codes[16..], &[2.0, -2.0]);
        let m = Autoencoder::new(&ModelConfig::preset("vae-2").unwrap(), 1, &Device::Cpu).unwrap();
        let g = decode_grid(&m, 4, 3.0).unwrap();
        assert_eq!(g.len(), 16 * PIXELS);
        assert!(g.iter().all(|v| (0.0..=1.0).contains(v)));
        let a = sample(&m, 3, 1).unwrap();
        assert_eq!(a.len(), 3 * PIXELS);
        assert_ne!(a, sample(&m, 3, 2).unwrap(), "another seed, other digits");
        let plain =
            Autoencoder::new(&ModelConfig::preset("deep").unwrap(), 1, &Device::Cpu).unwrap();
        assert!(decode_grid(&plain, 4, 3.0).is_err());
        assert!(sample(&plain, 2, 1).is_err());
    }
}
