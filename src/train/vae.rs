//! What a variational autoencoder is measured by beside its reconstruction
//! error: the ELBO (its reconstruction term, summed over the pixels, plus
//! the KL of its code to N(0, I), negated), the KL on its own, and how many
//! code dimensions are active (carry more than [`ACTIVE_KL`] nats).

use candle_core::Tensor;

use crate::data::PIXELS;
use crate::model::{Autoencoder, LossKind};
use crate::rng::Rng;

/// A code dimension is active when its KL, mean over images, is above this
/// (nats).
pub const ACTIVE_KL: f64 = 0.01;

/// Images per forward pass.
const BATCH: usize = 1000;

/// `n` standard normal values from `rng`.
pub fn standard_normals(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

/// Per image of `images`: the reconstruction term summed over the pixels
/// (of one sampled code, drawn from `seed`) and the KL of its code.
pub fn per_image(
    model: &Autoencoder,
    images: &[f32],
    seed: u64,
) -> candle_core::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let latent = model.config.bottleneck();
    let n = images.len() / PIXELS;
    let mut rng = Rng::new(seed);
    let (mut rec, mut kl) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut kl_dims = vec![0f64; latent];
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let rows = end - start;
        let x = &images[start * PIXELS..end * PIXELS];
        let xt = Tensor::from_slice(x, (rows, PIXELS), &model.device)?;
        let eps = Tensor::from_vec(
            standard_normals(rows * latent, &mut rng),
            (rows, latent),
            &model.device,
        )?;
        let f = model.forward_sampled(&xt, None, Some(&eps))?;
        let Some(logvar) = &f.logvar else {
            candle_core::bail!("{} is not a VAE", model.config.preset);
        };
        let logits = f.logits.flatten_all()?.to_vec1::<f32>()?;
        let mu = f.code.flatten_all()?.to_vec1::<f32>()?;
        let lv = logvar.flatten_all()?.to_vec1::<f32>()?;
        for (l, t) in logits.chunks_exact(PIXELS).zip(x.chunks_exact(PIXELS)) {
            rec.push(reconstruction(model.config.loss, l, t));
        }
        for (m, v) in mu.chunks_exact(latent).zip(lv.chunks_exact(latent)) {
            let mut total = 0.0;
            for ((&m, &v), d) in m.iter().zip(v).zip(kl_dims.iter_mut()) {
                let k = 0.5 * ((v as f64).exp() + (m as f64).powi(2) - v as f64 - 1.0);
                total += k;
                *d += k;
            }
            kl.push(total);
        }
    }
    kl_dims.iter_mut().for_each(|d| *d /= n.max(1) as f64);
    Ok((rec, kl, kl_dims))
}

/// The reconstruction term of one image from its logits, summed over the
/// pixels: binary cross-entropy, or squared error.
fn reconstruction(loss: LossKind, logits: &[f32], target: &[f32]) -> f64 {
    logits
        .iter()
        .zip(target)
        .map(|(&l, &t)| {
            let (l, t) = (l as f64, t as f64);
            match loss {
                // softplus(l) − t·l, stable for large |l|
                LossKind::Bce => l.max(0.0) - t * l + (-l.abs()).exp().ln_1p(),
                LossKind::Mse => {
                    let p = 1.0 / (1.0 + (-l).exp());
                    (p - t) * (p - t)
                }
            }
        })
        .sum()
}

/// A VAE over a set of images.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VaeStats {
    /// Mean over images of −(reconstruction + KL), nats.
    pub elbo: f64,
    pub kl: f64,
    pub reconstruction: f64,
    /// KL per code dimension, mean over images.
    pub kl_per_dim: Vec<f64>,
    /// Dimensions with a KL above [`ACTIVE_KL`].
    pub active_dims: usize,
}

/// [`VaeStats`] of `model` on `images` (one code sampled per image from
/// `seed`).
pub fn stats(model: &Autoencoder, images: &[f32], seed: u64) -> candle_core::Result<VaeStats> {
    let (rec, kl, kl_per_dim) = per_image(model, images, seed)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (r, k) = (mean(&rec), mean(&kl));
    Ok(VaeStats {
        elbo: -(r + k),
        kl: k,
        reconstruction: r,
        active_dims: kl_per_dim.iter().filter(|&&d| d > ACTIVE_KL).count(),
        kl_per_dim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use candle_core::Device;

    #[test]
    fn per_image_terms_match_the_training_loss() {
        let cfg = ModelConfig::preset("vae-2").unwrap();
        let m = Autoencoder::new(&cfg, 3, &Device::Cpu).unwrap();
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..4 * PIXELS).map(|_| rng.uniform()).collect();
        let (rec, kl, dims) = per_image(&m, &x, 5).unwrap();
        assert_eq!((rec.len(), kl.len(), dims.len()), (4, 4, 2));
        // the same sample through the tensor loss: the means agree
        let xt = Tensor::from_slice(&x, (4, PIXELS), &Device::Cpu).unwrap();
        let eps =
            Tensor::from_vec(standard_normals(8, &mut Rng::new(5)), (4, 2), &Device::Cpu).unwrap();
        let f = m.forward_sampled(&xt, None, Some(&eps)).unwrap();
        let p = crate::model::loss_parts(&cfg, &f, &xt, 1.0).unwrap();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let r: f32 = p.reconstruction.to_scalar().unwrap();
        let k: f32 = p.kl.unwrap().to_scalar().unwrap();
        assert!(
            (mean(&rec) - r as f64).abs() < 1e-2 * r as f64,
            "{rec:?} {r}"
        );
        assert!(
            (mean(&kl) - k as f64).abs() < 1e-3 + 1e-3 * k as f64,
            "{kl:?} {k}"
        );
        let s = stats(&m, &x, 5).unwrap();
        assert!((s.elbo + mean(&rec) + mean(&kl)).abs() < 1e-9);
        assert!(s.active_dims <= 2);
    }
}
