//! Reconstruction metrics (MSE per pixel, squared error per image, PSNR,
//! SSIM) and the linear probe (softmax regression on codes).
//!
//! SSIM uses a 7x7 uniform window over the valid 22x22 positions of a 28x28
//! image, data range 1, K1 = 0.01, K2 = 0.03 and sample covariances: the
//! defaults of scikit-image's `structural_similarity`.

use serde::{Deserialize, Serialize};

use crate::data::{IMAGE_SIDE, PIXELS};
pub use crate::model::record::Metrics;
use crate::rng::Rng;

/// Per-image squared error.
pub fn sse_per_image(a: &[f32], b: &[f32]) -> Vec<f64> {
    a.chunks_exact(PIXELS)
        .zip(b.chunks_exact(PIXELS))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum())
        .collect()
}

pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 1e-10 {
        100.0
    } else {
        (10.0 * (1.0 / mse).log10()).min(100.0)
    }
}

/// SSIM of two 28x28 images with values in [0, 1]: the mean over every
/// 7x7 window (uniform weights, sample covariances), as scikit-image's
/// `structural_similarity` with `data_range=1`. Window sums slide: along
/// each row (the five quantities' chains side by side), then down the
/// columns in vectors; compiled for AVX2 when the CPU has it. The views
/// score every reconstruction they show (128 per Denoise change).
pub fn ssim(a: &[f32], b: &[f32]) -> f64 {
    #[inline(always)]
    fn run(a: &[f32], b: &[f32]) -> f64 {
        const WIN: usize = 7;
        const S: usize = IMAGE_SIDE;
        const P: usize = S - WIN + 1;
        let (a, b) = (&a[..S * S], &b[..S * S]);
        let quantities = |i: usize| {
            let (x, y) = (a[i] as f64, b[i] as f64);
            [x, y, x * x, y * y, x * y]
        };
        // sums along the rows of x, y, x², y², xy: h[row][column][quantity]
        let mut h = [[[0f64; 5]; P]; S];
        for (r, hr) in h.iter_mut().enumerate() {
            let mut sum = [0f64; 5];
            for c in 0..WIN {
                let q = quantities(r * S + c);
                for k in 0..5 {
                    sum[k] += q[k];
                }
            }
            hr[0] = sum;
            for (c, hc) in hr.iter_mut().enumerate().skip(1) {
                let (new, old) = (quantities(r * S + c + WIN - 1), quantities(r * S + c - 1));
                for k in 0..5 {
                    sum[k] += new[k] - old[k];
                }
                *hc = sum;
            }
        }
        let np = (WIN * WIN) as f64;
        let cov_norm = np / (np - 1.0);
        let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
        // window sums of the current row of windows, sliding down
        let mut w = [[0f64; 5]; P];
        for hr in &h[..WIN] {
            for (wc, hc) in w.iter_mut().zip(hr) {
                for k in 0..5 {
                    wc[k] += hc[k];
                }
            }
        }
        let mut total = 0.0;
        for r in 0..P {
            if r > 0 {
                for ((wc, new), old) in w.iter_mut().zip(&h[r + WIN - 1]).zip(&h[r - 1]) {
                    for k in 0..5 {
                        wc[k] += new[k] - old[k];
                    }
                }
            }
            // (one division per window, the row's terms in vectors)
            let mut terms = [0f64; P];
            for (t, wc) in terms.iter_mut().zip(&w) {
                let [ux, uy, xx, yy, xy] = wc.map(|v| v * (1.0 / np));
                let vx = cov_norm * (xx - ux * ux);
                let vy = cov_norm * (yy - uy * uy);
                let vxy = cov_norm * (xy - ux * uy);
                *t = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            }
            total += terms.iter().sum::<f64>();
        }
        total / (P * P) as f64
    }
    avx2_or_plain!(run(a: &[f32], b: &[f32]) -> f64)
}

/// Metrics of reconstructions `rec` against clean `target` (both `[n * 784]`).
pub fn reconstruction_metrics(rec: &[f32], target: &[f32]) -> Metrics {
    let sse = sse_per_image(rec, target);
    let n = sse.len().max(1);
    let total: f64 = sse.iter().sum();
    let psnr = sse
        .iter()
        .map(|s| psnr_from_mse(s / PIXELS as f64))
        .sum::<f64>()
        / n as f64;
    let ssim_mean = rec
        .chunks_exact(PIXELS)
        .zip(target.chunks_exact(PIXELS))
        .map(|(a, b)| ssim(a, b))
        .sum::<f64>()
        / n as f64;
    Metrics {
        mse_per_pixel: total / (n * PIXELS) as f64,
        sse_per_image: total / n as f64,
        psnr,
        ssim: ssim_mean,
        probe_accuracy: None,
        n_images: sse.len(),
        ..Metrics::default()
    }
}

/// Area under the ROC curve for telling `positive` scores (higher =
/// anomalous) from `negative` ones: the probability that a random positive
/// scores above a random negative (ties count half).
pub fn auroc(positive: &[f64], negative: &[f64]) -> f64 {
    if positive.is_empty() || negative.is_empty() {
        return 0.5;
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&v| (v, true))
        .chain(negative.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // rank-sum (Mann-Whitney U) with average ranks for ties
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += all[i..=j].iter().filter(|(_, p)| *p).count() as f64 * avg;
        i = j + 1;
    }
    let np = positive.len() as f64;
    let nn = negative.len() as f64;
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Bins of the activation histogram.
pub const ACTIVATION_BINS: usize = 40;

/// How a model's code units respond over a set of images.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivationStats {
    pub n_images: usize,
    /// Mean activation of each unit.
    pub mean: Vec<f32>,
    /// Units that never fire (never above 1e-6) on any image.
    pub dead: usize,
    /// Fraction of all activations that are (near) zero.
    pub zero_fraction: f64,
    /// Histogram of the non-zero activations over `[0, max]`, as fractions
    /// of all activations.
    pub hist: Vec<f64>,
    pub max: f32,
}

impl ActivationStats {
    pub fn units(&self) -> usize {
        self.mean.len()
    }

    pub fn dead_fraction(&self) -> f64 {
        self.dead as f64 / self.units().max(1) as f64
    }
}

/// Statistics of codes `[n * dim]`.
pub fn activation_stats(codes: &[f32], dim: usize) -> ActivationStats {
    const FIRES: f32 = 1e-6;
    let n = codes.len().checked_div(dim).unwrap_or(0);
    if n == 0 {
        return ActivationStats {
            mean: vec![0.0; dim],
            dead: dim,
            hist: vec![0.0; ACTIVATION_BINS],
            ..ActivationStats::default()
        };
    }
    let mut sum = vec![0f64; dim];
    let mut fired = vec![false; dim];
    let mut zeros = 0usize;
    let mut max = 0f32;
    let mut min = f32::MAX;
    for row in codes.chunks_exact(dim) {
        for (u, &v) in row.iter().enumerate() {
            sum[u] += v as f64;
            if v.abs() > FIRES {
                fired[u] = true;
            } else {
                zeros += 1;
            }
            max = max.max(v);
            min = min.min(v);
        }
    }
    let lo = min.min(0.0);
    let span = (max - lo).max(1e-9);
    let mut hist = vec![0f64; ACTIVATION_BINS];
    for &v in codes {
        if v.abs() > FIRES {
            let b = (((v - lo) / span) * ACTIVATION_BINS as f32) as usize;
            hist[b.min(ACTIVATION_BINS - 1)] += 1.0;
        }
    }
    let total = codes.len() as f64;
    hist.iter_mut().for_each(|h| *h /= total);
    ActivationStats {
        n_images: n,
        mean: sum.iter().map(|s| (s / n as f64) as f32).collect(),
        dead: fired.iter().filter(|f| !**f).count(),
        zero_fraction: zeros as f64 / total,
        hist,
        max,
    }
}

/// A fitted linear probe: softmax regression on standardised codes.
#[derive(Clone, Debug)]
pub struct Probe {
    pub dim: usize,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `[10, dim]`
    w: Vec<f32>,
    b: [f32; 10],
}

impl Probe {
    /// Fit on `train` codes (`[n * dim]`, standardised with the training
    /// statistics; mini-batch Adam, 10 epochs, seeded).
    pub fn fit(train: &[f32], labels: &[u8], dim: usize, seed: u64) -> Probe {
        const CLASSES: usize = 10;
        let n = labels.len().min(train.len() / dim.max(1));
        let mut mean = vec![0f64; dim];
        let mut var = vec![0f64; dim];
        for row in train.chunks_exact(dim.max(1)).take(n) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        for row in train.chunks_exact(dim.max(1)).take(n) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let scale: Vec<f32> = var
            .iter()
            .map(|v| 1.0 / ((v / n.max(1) as f64).sqrt() as f32 + 1e-6))
            .collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let mut probe = Probe {
            dim,
            mean,
            scale,
            w: vec![0f32; CLASSES * dim],
            b: [0f32; CLASSES],
        };
        if n == 0 || dim == 0 {
            return probe;
        }
        let xtr = probe.standardise(&train[..n * dim]);
        let (mut mw, mut vw) = (vec![0f32; probe.w.len()], vec![0f32; probe.w.len()]);
        let (mut mb, mut vb) = ([0f32; CLASSES], [0f32; CLASSES]);
        let (lr, b1, b2, eps) = (0.01f32, 0.9f32, 0.999f32, 1e-8f32);
        let batch = 128;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng::new(seed);
        let mut gw = vec![0f32; probe.w.len()];
        let mut t = 0i32;
        for _epoch in 0..10 {
            rng.shuffle(&mut order);
            for chunk in order.chunks(batch) {
                gw.iter_mut().for_each(|g| *g = 0.0);
                let mut gb = [0f32; CLASSES];
                for &i in chunk {
                    let x = &xtr[i * dim..(i + 1) * dim];
                    let p = probe.softmax_standardised(x);
                    for c in 0..CLASSES {
                        let d = p[c] - if labels[i] as usize == c { 1.0 } else { 0.0 };
                        gb[c] += d;
                        for (g, v) in gw[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                            *g += d * v;
                        }
                    }
                }
                t += 1;
                let inv = 1.0 / chunk.len() as f32;
                let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                for (((p, g), m), v) in probe.w.iter_mut().zip(&gw).zip(&mut mw).zip(&mut vw) {
                    let g = g * inv;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
                for c in 0..CLASSES {
                    let g = gb[c] * inv;
                    mb[c] = b1 * mb[c] + (1.0 - b1) * g;
                    vb[c] = b2 * vb[c] + (1.0 - b2) * g * g;
                    probe.b[c] -= lr * (mb[c] / c1) / ((vb[c] / c2).sqrt() + eps);
                }
            }
        }
        probe
    }

    fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.chunks_exact(self.dim)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .map(|((v, m), s)| (v - m) * s)
            })
            .collect()
    }

    fn softmax_standardised(&self, x: &[f32]) -> [f32; 10] {
        let dim = self.dim;
        let z: [f32; 10] = std::array::from_fn(|c| {
            self.b[c]
                + self.w[c * dim..(c + 1) * dim]
                    .iter()
                    .zip(x)
                    .map(|(a, v)| a * v)
                    .sum::<f32>()
        });
        let zmax = z.iter().cloned().fold(f32::MIN, f32::max);
        let e: [f32; 10] = std::array::from_fn(|c| (z[c] - zmax).exp());
        let s: f32 = e.iter().sum();
        std::array::from_fn(|c| e[c] / s)
    }

    /// Class probabilities of one code.
    pub fn probabilities(&self, code: &[f32]) -> [f32; 10] {
        let x = self.standardise(&code[..self.dim]);
        self.softmax_standardised(&x)
    }

    /// The most likely class of each code in `codes` (`[n * dim]`).
    pub fn predict(&self, codes: &[f32]) -> Vec<u8> {
        self.standardise(codes)
            .chunks_exact(self.dim)
            .map(|x| {
                let p = self.softmax_standardised(x);
                (0..10).max_by(|&a, &c| p[a].total_cmp(&p[c])).unwrap_or(0) as u8
            })
            .collect()
    }

    /// Accuracy on labelled codes.
    pub fn accuracy(&self, codes: &[f32], labels: &[u8]) -> f64 {
        if labels.is_empty() || self.dim == 0 {
            return 0.0;
        }
        let pred = self.predict(codes);
        let correct = pred.iter().zip(labels).filter(|(p, y)| p == y).count();
        correct as f64 / labels.len() as f64
    }
}

/// Linear probe: softmax regression fitted on `train` codes (`[n * dim]`,
/// see [`Probe::fit`]), scored as accuracy on `test` codes. The same probe
/// serves PCA codes and autoencoder codes, so accuracies are comparable.
pub fn linear_probe(
    train: &[f32],
    train_labels: &[u8],
    test: &[f32],
    test_labels: &[u8],
    dim: usize,
    seed: u64,
) -> f64 {
    if train_labels.is_empty() || test_labels.is_empty() || dim == 0 {
        return 0.0;
    }
    Probe::fit(train, train_labels, dim, seed).accuracy(test, test_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first implementation (summed-area tables), as the reference.
    fn ssim_reference(a: &[f32], b: &[f32]) -> f64 {
        const WIN: usize = 7;
        const S: usize = IMAGE_SIDE;
        const N: usize = S + 1;
        let np = (WIN * WIN) as f64;
        let cov_norm = np / (np - 1.0);
        let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
        // summed-area tables of x, y, x², y², xy: [29 x 29]
        let mut t = [[0f64; N * N]; 5];
        for r in 0..S {
            for c in 0..S {
                let x = a[r * S + c] as f64;
                let y = b[r * S + c] as f64;
                let vals = [x, y, x * x, y * y, x * y];
                for (k, v) in vals.iter().enumerate() {
                    let tk = &mut t[k];
                    tk[(r + 1) * N + c + 1] =
                        v + tk[r * N + c + 1] + tk[(r + 1) * N + c] - tk[r * N + c];
                }
            }
        }
        let sum = |k: usize, r: usize, c: usize| {
            let tk = &t[k];
            tk[(r + WIN) * N + c + WIN] - tk[r * N + c + WIN] - tk[(r + WIN) * N + c]
                + tk[r * N + c]
        };
        let mut total = 0.0;
        let positions = S - WIN + 1;
        for r in 0..positions {
            for c in 0..positions {
                let ux = sum(0, r, c) / np;
                let uy = sum(1, r, c) / np;
                let vx = cov_norm * (sum(2, r, c) / np - ux * ux);
                let vy = cov_norm * (sum(3, r, c) / np - uy * uy);
                let vxy = cov_norm * (sum(4, r, c) / np - ux * uy);
                total += ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                    / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            }
        }
        total / (positions * positions) as f64
    }

    #[test]
    fn ssim_matches_the_summed_area_table_version() {
        let mut rng = crate::rng::Rng::new(9);
        for _ in 0..20 {
            let a: Vec<f32> = (0..PIXELS).map(|_| rng.uniform()).collect();
            let b: Vec<f32> = a
                .iter()
                .map(|v| (v + 0.3 * rng.normal()).clamp(0.0, 1.0))
                .collect();
            let zero_half: Vec<f32> = a
                .iter()
                .enumerate()
                .map(|(i, &v)| if i < 400 { 0.0 } else { v })
                .collect();
            for (x, y) in [(&a, &b), (&a, &zero_half), (&b, &b)] {
                let (ours, theirs) = (ssim(x, y), ssim_reference(x, y));
                assert!((ours - theirs).abs() < 1e-9, "{ours} vs {theirs}");
            }
        }
    }

    #[test]
    fn ssim_of_identical_is_one_and_drops_with_noise() {
        let mut rng = Rng::new(1);
        let a: Vec<f32> = (0..PIXELS).map(|_| rng.uniform()).collect();
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
        let b: Vec<f32> = a
            .iter()
            .map(|v| (v + 0.3 * rng.normal()).clamp(0.0, 1.0))
            .collect();
        let s = ssim(&a, &b);
        assert!(s < 0.9 && s > -1.0, "{s}");
        let zero = vec![0f32; PIXELS];
        assert!((ssim(&zero, &zero) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn activation_stats_count_dead_units() {
        // 3 units over 4 images: unit 1 never fires
        let codes = [1.0, 0.0, 0.5, 2.0, 0.0, 0.0, 3.0, 0.0, 0.5, 0.0, 0.0, 0.5];
        let s = activation_stats(&codes, 3);
        assert_eq!(s.n_images, 4);
        assert_eq!(s.dead, 1);
        assert_eq!(s.mean, vec![1.5, 0.0, 0.375]);
        assert!((s.zero_fraction - 6.0 / 12.0).abs() < 1e-12);
        assert!((s.hist.iter().sum::<f64>() - 0.5).abs() < 1e-12);
        assert_eq!(s.max, 3.0);
        assert_eq!(activation_stats(&[], 3).dead, 3);
    }

    #[test]
    fn mse_psnr_consistent() {
        let a = vec![0.5f32; 2 * PIXELS];
        let b = vec![0.6f32; 2 * PIXELS];
        let m = reconstruction_metrics(&a, &b);
        assert!((m.mse_per_pixel - 0.01).abs() < 1e-6);
        assert!((m.sse_per_image - 7.84).abs() < 1e-3);
        assert!((m.psnr - 20.0).abs() < 1e-3);
        assert_eq!(m.n_images, 2);
    }

    #[test]
    fn probe_separates_separable_codes() {
        let mut rng = Rng::new(2);
        let dim = 5;
        let make = |n: usize, rng: &mut Rng| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for _ in 0..n {
                let c = rng.below(10);
                y.push(c as u8);
                for d in 0..dim {
                    x.push(
                        ((c >> (d % 4)) & 1) as f32 * 2.0
                            + 0.2 * rng.normal()
                            + if d == 4 { c as f32 } else { 0.0 },
                    );
                }
            }
            (x, y)
        };
        let (xtr, ytr) = make(2000, &mut rng);
        let (xte, yte) = make(500, &mut rng);
        let acc = linear_probe(&xtr, &ytr, &xte, &yte, dim, 1);
        assert!(acc > 0.9, "{acc}");
        // random labels: chance level
        let yrand: Vec<u8> = (0..2000).map(|_| rng.below(10) as u8).collect();
        let acc = linear_probe(&xtr, &yrand, &xte, &yte, dim, 1);
        assert!(acc < 0.3, "{acc}");
    }
}
