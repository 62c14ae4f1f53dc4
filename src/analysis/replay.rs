//! The training replay's computations, without egui: the test images it
//! shows, a row of reconstructions at one snapshot (what a scrubber move
//! costs), and the animation of the reconstructions over training.

use super::models::{ModelCache, ModelRef};
use super::recon::{self, Row};
use crate::canvas::{image_grid, Canvas, GridRow};
use crate::data::{Split, PIXELS};
use crate::model::replay::Moment;

/// Test images a replay shows.
pub const REPLAY_IMAGES: usize = 10;
/// Milliseconds each snapshot shows in the animation.
pub const FRAME_MS: u32 = 600;

/// The first test image of each class (0 to 9, in order), topped up with
/// the first images when a class is missing.
pub fn images(split: &Split) -> Vec<f32> {
    let mut picked: Vec<usize> = (0..10u8)
        .filter_map(|c| split.labels.iter().position(|&l| l == c))
        .collect();
    let mut i = 0;
    while picked.len() < REPLAY_IMAGES.min(split.len()) {
        if !picked.contains(&i) {
            picked.push(i);
        }
        i += 1;
    }
    picked.iter().flat_map(|&i| split.image_f32(i)).collect()
}

/// `model`'s reconstructions of `images`, scored (a snapshot's model is
/// built from its weights when not cached): what each scrubber move
/// computes.
pub fn row(cache: &ModelCache, model: &ModelRef, images: &[f32]) -> Row {
    let mut rows = recon::model_rows(cache, std::slice::from_ref(model), images, images);
    rows.pop().expect("one row per model")
}

/// One frame per snapshot of `base`'s replay: the inputs above their
/// reconstructions, titled with the model and the moment, and a bar
/// showing how far into training it is.
pub fn frames(
    cache: &ModelCache,
    base: &ModelRef,
    moments: &[Moment],
    images: &[f32],
) -> Result<Vec<Canvas>, String> {
    let last_step = moments.iter().map(|m| m.step).max().unwrap_or(0).max(1);
    moments
        .iter()
        .enumerate()
        .map(|(k, moment)| {
            let out = row(cache, &base.at(k, moment), images).images?;
            let n = images.len() / PIXELS;
            let blank = || vec![String::new(); n];
            let rows = [
                GridRow::digits("input", images, blank()),
                GridRow::digits("output", &out, blank()),
            ];
            let title = format!("{} — {}", base.config.preset, moment.label());
            let mut c = image_grid(&title, &rows, 56);
            let done = moment.step as f32 / last_step as f32;
            let (y0, y1) = (c.height as f32 - 6.0, c.height as f32 - 2.0);
            c.rect(8.0, y0, c.width as f32 - 8.0, y1, crate::canvas::LIGHT);
            let x1 = 8.0 + done * (c.width as f32 - 16.0);
            c.rect(8.0, y0, x1, y1, crate::canvas::PALETTE[0]);
            Ok(c)
        })
        .collect()
}

/// `frames` as an animated GIF that loops, `delay_ms` per frame and the
/// last held three times as long.
pub fn gif(frames: &[Canvas], delay_ms: u32) -> Result<Vec<u8>, String> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame, RgbaImage};
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut out, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        for (i, c) in frames.iter().enumerate() {
            let rgba: Vec<u8> = c
                .pixels
                .iter()
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            let img = RgbaImage::from_raw(c.width as u32, c.height as u32, rgba)
                .ok_or("a frame's buffer does not match its size")?;
            let hold = if i + 1 == frames.len() { 3 } else { 1 };
            let delay = Delay::from_numer_denom_ms(delay_ms * hold, 1);
            enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_synthetic, Dataset, DatasetKind};
    use crate::model::replay::Snapshot;
    use crate::model::{Autoencoder, ModelConfig};
    use std::sync::Arc;

    #[test]
    fn a_replay_animates_the_reconstructions_over_training() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 100, 40, 3).unwrap();
        let data = Dataset::load(dir.path(), DatasetKind::Mnist).unwrap();
        let imgs = images(&data.test);
        assert_eq!(imgs.len(), REPLAY_IMAGES * PIXELS);
        // two snapshots of different weights, served from memory
        let config = ModelConfig::preset("shallow-64").unwrap();
        let cache = ModelCache::default();
        let base = ModelRef {
            path: "run-1".into(),
            label: "#1 shallow-64".into(),
            config: config.clone(),
        };
        let mut moments = Vec::new();
        for (k, seed) in [1u64, 2].into_iter().enumerate() {
            let m = Autoencoder::new(&config, seed, &candle_core::Device::Cpu).unwrap();
            let moment = Moment {
                step: k * 50,
                epoch: k as f64,
                val_loss: (k > 0).then_some(0.1),
            };
            let s = Arc::new(Snapshot::of(&m, moment.clone()).unwrap());
            let path = super::super::models::snapshot_path(&base.path, k);
            cache.insert_snapshot(path, config.clone(), s);
            moments.push(moment);
        }
        let a = row(&cache, &base.at(0, &moments[0]), &imgs).images.unwrap();
        let b = row(&cache, &base.at(1, &moments[1]), &imgs).images.unwrap();
        assert_eq!(a.len(), imgs.len());
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
        let frames = frames(&cache, &base, &moments, &imgs).unwrap();
        assert_eq!(frames.len(), 2);
        assert_ne!(frames[0].pixels, frames[1].pixels);
        let bytes = gif(&frames, 500).unwrap();
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        use image::AnimationDecoder;
        let back = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].buffer().width() as usize, frames[0].width);
        assert_eq!(back[1].delay().numer_denom_ms(), (1500, 1));
    }
}
