//! Principal component analysis of images: fitted once on the training split
//! (mean-centred covariance + symmetric eigensolver from `faer`), then queried
//! for explained variance, components, projections and reconstructions at any
//! k in 1..=784.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par, Side};
use serde::Serialize;

use crate::data::{Split, PIXELS};

/// The percentiles of the study's percentile figure.
pub const PERCENTILES: [f64; 7] = [2.0, 10.0, 25.0, 50.0, 75.0, 90.0, 98.0];

#[derive(Debug, thiserror::Error)]
pub enum PcaError {
    #[error("PCA needs at least 2 images, got {0}")]
    TooFew(usize),
    #[error("the eigensolver did not converge")]
    NoConvergence,
}

/// A fitted PCA over 784-pixel images.
#[derive(Clone, Debug)]
pub struct Pca {
    /// Mean image, `[784]`.
    pub mean: Vec<f32>,
    /// Components as rows, strongest first, `[784 * 784]`; each row has unit
    /// length and its largest-magnitude entry positive.
    pub components: Vec<f32>,
    /// Variance along each component (eigenvalues of the covariance), descending.
    pub explained_variance: Vec<f64>,
    pub explained_variance_ratio: Vec<f64>,
    pub cumulative_ratio: Vec<f64>,
    pub n_samples: usize,
    pub fit_secs: f64,
    /// This fit's own number (see [`crate::fresh_id`]): what the views key
    /// their results on.
    id: u64,
}

/// Summary for the CLI and reports.
#[derive(Clone, Debug, Serialize)]
pub struct PcaSummary {
    pub n_samples: usize,
    pub fit_secs: f64,
    pub components_for_90: usize,
    pub components_for_95: usize,
    pub components_for_99: usize,
    pub cumulative_ratio_at: Vec<(usize, f64)>,
}

fn threads() -> Par {
    Par::rayon(0)
}

impl Pca {
    /// This fit's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Fit on all images of `split` (pixels scaled to [0, 1]).
    pub fn fit(split: &Split) -> Result<Pca, PcaError> {
        let start = std::time::Instant::now();
        let n = split.len();
        if n < 2 {
            return Err(PcaError::TooFew(n));
        }
        let mut mean = vec![0f64; PIXELS];
        for img in split.images.chunks_exact(PIXELS) {
            for (m, &p) in mean.iter_mut().zip(img) {
                *m += p as f64;
            }
        }
        let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64 / 255.0) as f32).collect();
        // X^T X of the centred images, accumulated over blocks of rows: a
        // centred copy of all 50,000 images would be 157 MB of fresh pages
        // (the kernel clearing them was half of the fit's time)
        const BLOCK: usize = 2048;
        let mut block = vec![0f32; BLOCK.min(n) * PIXELS];
        // [784, 784]; only the lower triangle of the symmetric X^T X is
        // computed (half the flops of a full product), then mirrored.
        let mut cov = Mat::<f32>::zeros(PIXELS, PIXELS);
        for (bi, imgs) in split.images.chunks(BLOCK * PIXELS).enumerate() {
            let rows = imgs.len() / PIXELS;
            let block = &mut block[..rows * PIXELS];
            for (dst, img) in block
                .chunks_exact_mut(PIXELS)
                .zip(imgs.chunks_exact(PIXELS))
            {
                for ((d, &p), &m) in dst.iter_mut().zip(img).zip(&mean) {
                    *d = p as f32 / 255.0 - m;
                }
            }
            let x = MatRef::from_row_major_slice(block, rows, PIXELS);
            // [784, rows] x [rows, 784]
            triangular::matmul(
                cov.as_mut(),
                BlockStructure::TriangularLower,
                if bi == 0 { Accum::Replace } else { Accum::Add },
                x.transpose(),
                BlockStructure::Rectangular,
                x,
                BlockStructure::Rectangular,
                1.0 / (n as f32 - 1.0),
                threads(),
            );
        }
        drop(block);
        let cov64 = Mat::<f64>::from_fn(PIXELS, PIXELS, |i, j| {
            let (r, c) = if i >= j { (i, j) } else { (j, i) };
            cov[(r, c)] as f64
        });
        let evd = cov64
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| PcaError::NoConvergence)?;
        let (u, s) = (evd.U(), evd.S());
        // faer returns ascending eigenvalues: reverse to strongest first.
        let mut components = vec![0f32; PIXELS * PIXELS];
        let mut explained_variance = vec![0f64; PIXELS];
        for c in 0..PIXELS {
            let src = PIXELS - 1 - c;
            explained_variance[c] = s[src].max(0.0);
            let col = u.col(src);
            let mut sign = 1.0;
            let mut best = 0.0;
            for r in 0..PIXELS {
                if col[r].abs() > best {
                    best = col[r].abs();
                    sign = col[r].signum();
                }
            }
            for r in 0..PIXELS {
                components[c * PIXELS + r] = (col[r] * sign) as f32;
            }
        }
        let total: f64 = explained_variance
            .iter()
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let explained_variance_ratio: Vec<f64> =
            explained_variance.iter().map(|v| v / total).collect();
        let cumulative_ratio = explained_variance_ratio
            .iter()
            .scan(0.0, |acc, r| {
                *acc += r;
                Some(*acc)
            })
            .collect();
        Ok(Pca {
            mean,
            components,
            explained_variance,
            explained_variance_ratio,
            cumulative_ratio,
            n_samples: n,
            fit_secs: start.elapsed().as_secs_f64(),
            id: crate::fresh_id(),
        })
    }

    /// Component `i` as a 784-pixel image (unit length).
    pub fn component(&self, i: usize) -> &[f32] {
        &self.components[i * PIXELS..(i + 1) * PIXELS]
    }

    /// The smallest k whose cumulative explained variance ratio reaches `fraction`.
    pub fn components_for(&self, fraction: f64) -> usize {
        self.cumulative_ratio
            .iter()
            .position(|&c| c >= fraction - 1e-12)
            .map(|i| i + 1)
            .unwrap_or(PIXELS)
    }

    /// Codes of `images` (`[n * 784]`, [0, 1]) on the first `k` components: `[n * k]`.
    pub fn project(&self, images: &[f32], k: usize) -> Vec<f32> {
        let k = k.clamp(1, PIXELS);
        let n = images.len() / PIXELS;
        let centred: Vec<f32> = images
            .chunks_exact(PIXELS)
            .flat_map(|img| img.iter().zip(&self.mean).map(|(p, m)| p - m))
            .collect();
        let x = MatRef::from_row_major_slice(&centred, n, PIXELS);
        let comps = MatRef::from_row_major_slice(&self.components[..k * PIXELS], k, PIXELS);
        let mut codes = Mat::<f32>::zeros(n, k);
        // [n, 784] x [784, k] -> [n, k]
        matmul(
            codes.as_mut(),
            Accum::Replace,
            x,
            comps.transpose(),
            1.0,
            Par::Seq,
        );
        let mut out = vec![0f32; n * k];
        for i in 0..n {
            for j in 0..k {
                out[i * k + j] = codes[(i, j)];
            }
        }
        out
    }

    /// Images back from `[n * k]` codes: `[n * 784]`.
    pub fn decode(&self, codes: &[f32], k: usize) -> Vec<f32> {
        let n = codes.len() / k;
        let c = MatRef::from_row_major_slice(codes, n, k);
        let comps = MatRef::from_row_major_slice(&self.components[..k * PIXELS], k, PIXELS);
        let mut x = Mat::<f32>::zeros(n, PIXELS);
        matmul(x.as_mut(), Accum::Replace, c, comps, 1.0, Par::Seq);
        let mut out = vec![0f32; n * PIXELS];
        for i in 0..n {
            for j in 0..PIXELS {
                out[i * PIXELS + j] = x[(i, j)] + self.mean[j];
            }
        }
        out
    }

    /// Reconstruct `images` from their first `k` components.
    pub fn reconstruct(&self, images: &[f32], k: usize) -> Vec<f32> {
        let k = k.clamp(1, PIXELS);
        self.decode(&self.project(images, k), k)
    }

    /// Mean squared error per pixel of the PCA-k reconstruction of `images`
    /// for every k in 1..=784 (index k-1), from one full projection: the
    /// components are orthonormal, so the error drops by each code squared.
    pub fn error_curve(&self, images: &[f32]) -> Vec<f64> {
        let n = images.len() / PIXELS;
        let codes = self.project(images, PIXELS);
        let mut total: f64 = images
            .chunks_exact(PIXELS)
            .map(|img| {
                img.iter()
                    .zip(&self.mean)
                    .map(|(p, m)| ((p - m) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum();
        let mut per_k = vec![0f64; PIXELS];
        let mut sq = vec![0f64; PIXELS];
        for row in codes.chunks_exact(PIXELS) {
            for (s, c) in sq.iter_mut().zip(row) {
                *s += (*c as f64).powi(2);
            }
        }
        for k in 0..PIXELS {
            total -= sq[k];
            per_k[k] = (total.max(0.0)) / (n * PIXELS) as f64;
        }
        per_k
    }

    /// For each of the first `n_components` components, the indices of the
    /// training images whose score sits at each of [`PERCENTILES`].
    pub fn percentile_grid(&self, split: &Split, n_components: usize) -> Vec<[usize; 7]> {
        let n = split.len();
        let k = n_components.min(PIXELS);
        // in chunks: projecting all 50,000 images at once would allocate 157 MB
        let mut codes = Vec::with_capacity(n * k);
        for start in (0..n).step_by(5000) {
            codes.extend(self.project(&split.rows_f32(start..(start + 5000).min(n)), k));
        }
        (0..k)
            .map(|c| {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| codes[a * k + c].total_cmp(&codes[b * k + c]));
                std::array::from_fn(|p| {
                    let at = (PERCENTILES[p] / 100.0 * (n - 1) as f64).round() as usize;
                    order[at.min(n - 1)]
                })
            })
            .collect()
    }

    pub fn summary(&self) -> PcaSummary {
        PcaSummary {
            n_samples: self.n_samples,
            fit_secs: self.fit_secs,
            components_for_90: self.components_for(0.90),
            components_for_95: self.components_for(0.95),
            components_for_99: self.components_for(0.99),
            cumulative_ratio_at: [1, 2, 10, 30, 50, 100, 200]
                .iter()
                .map(|&k| (k, self.cumulative_ratio[k - 1]))
                .collect(),
        }
    }
}

/// Unit directions, each with the standard deviation along it.
pub type Directions = Vec<(Vec<f32>, f32)>;

/// Main directions of a cloud of `dim`-dimensional points (`x [n * dim]`):
/// the mean, and the first `count` principal directions with the standard
/// deviation along each, by power iteration with deflation (cheap for a
/// few directions of a wide code, where a full eigendecomposition is not).
pub fn principal_directions(
    x: &[f32],
    dim: usize,
    count: usize,
    seed: u64,
) -> (Vec<f32>, Directions) {
    let n = x.len().checked_div(dim).unwrap_or(0);
    let mut mean = vec![0f64; dim];
    for row in x.chunks_exact(dim.max(1)).take(n) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let centred: Vec<f64> = x
        .chunks_exact(dim.max(1))
        .take(n)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m))
        .collect();
    let mut rng = crate::rng::Rng::new(seed);
    let mut dirs: Vec<(Vec<f64>, f64)> = Vec::new();
    for _ in 0..count.min(dim) {
        let mut v: Vec<f64> = (0..dim).map(|_| rng.normal() as f64).collect();
        let mut eig = 0.0;
        for _ in 0..200 {
            // w = Cv = Xᵀ(Xv) / n, minus the directions found so far
            let xv: Vec<f64> = centred
                .chunks_exact(dim)
                .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            let mut w = vec![0f64; dim];
            for (r, s) in centred.chunks_exact(dim).zip(&xv) {
                for (wi, ri) in w.iter_mut().zip(r) {
                    *wi += ri * s;
                }
            }
            w.iter_mut().for_each(|wi| *wi /= n.max(1) as f64);
            for (d, _) in &dirs {
                let p: f64 = w.iter().zip(d).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(d).for_each(|(wi, di)| *wi -= p * di);
            }
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm < 1e-12 {
                break;
            }
            let next: Vec<f64> = w.iter().map(|a| a / norm).collect();
            let change: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = next;
            eig = norm;
            if change < 1e-7 {
                break;
            }
        }
        dirs.push((v, eig));
    }
    (
        mean.iter().map(|&m| m as f32).collect(),
        dirs.into_iter()
            .map(|(d, e)| {
                (
                    d.iter().map(|&a| a as f32).collect(),
                    e.max(0.0).sqrt() as f32,
                )
            })
            .collect(),
    )
}

/// Coordinates of `x [n * dim]` along `dirs` after removing `mean`.
pub fn project_on(x: &[f32], dim: usize, mean: &[f32], dirs: &[(Vec<f32>, f32)]) -> Vec<[f32; 2]> {
    x.chunks_exact(dim.max(1))
        .map(|row| {
            let c = |k: usize| -> f32 {
                dirs.get(k).map_or(0.0, |(d, _)| {
                    row.iter()
                        .zip(mean)
                        .zip(d)
                        .map(|((v, m), a)| (v - m) * a)
                        .sum()
                })
            };
            [c(0), c(1)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_directions_find_the_long_axes() {
        // points stretched 5x along (1, 1, 0)/√2 and 2x along z
        let mut rng = crate::rng::Rng::new(4);
        let mut x = Vec::new();
        for _ in 0..4000 {
            let (a, b, c) = (5.0 * rng.normal(), 2.0 * rng.normal(), 0.5 * rng.normal());
            let s = std::f32::consts::FRAC_1_SQRT_2;
            x.extend([a * s + c * s + 1.0, a * s - c * s, b]);
        }
        let (mean, dirs) = principal_directions(&x, 3, 2, 1);
        assert!((mean[0] - 1.0).abs() < 0.3, "{mean:?}");
        let (d0, s0) = &dirs[0];
        assert!(
            (d0[0].abs() - 0.707).abs() < 0.02 && d0[2].abs() < 0.02,
            "{d0:?}"
        );
        assert!((s0 - 5.0).abs() < 0.3, "{s0}");
        let (d1, s1) = &dirs[1];
        assert!(d1[2].abs() > 0.99, "{d1:?}");
        assert!((s1 - 2.0).abs() < 0.15, "{s1}");
        let p = project_on(&x[..3], 3, &mean, &dirs);
        assert_eq!(p.len(), 1);
    }
    use crate::rng::Rng;

    /// Low-rank-ish random images: a few random patterns mixed, plus noise.
    fn random_split(n: usize, seed: u64) -> Split {
        let mut rng = Rng::new(seed);
        let patterns: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..PIXELS).map(|_| rng.uniform()).collect())
            .collect();
        let mut images = Vec::with_capacity(n * PIXELS);
        for _ in 0..n {
            let w: Vec<f32> = (0..8).map(|_| rng.uniform()).collect();
            for p in 0..PIXELS {
                let mix: f32 = w.iter().zip(&patterns).map(|(wi, pat)| wi * pat[p]).sum();
                let v = mix / 4.0 + 0.05 * rng.uniform();
                images.push((v.clamp(0.0, 1.0) * 255.0) as u8);
            }
        }
        Split {
            images,
            labels: vec![0; n],
        }
    }

    #[test]
    fn components_are_orthonormal_and_ratios_sum_to_one() {
        let split = random_split(1000, 11);
        let pca = Pca::fit(&split).unwrap();
        for i in (0..PIXELS).step_by(37) {
            for j in (0..PIXELS).step_by(53) {
                let dot: f32 = pca
                    .component(i)
                    .iter()
                    .zip(pca.component(j))
                    .map(|(a, b)| a * b)
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "<c{i}, c{j}> = {dot}");
            }
        }
        let s: f64 = pca.explained_variance_ratio.iter().sum();
        assert!((s - 1.0).abs() < 1e-9);
        assert!(pca.explained_variance.windows(2).all(|w| w[0] >= w[1]));
        assert!((pca.cumulative_ratio[PIXELS - 1] - 1.0).abs() < 1e-9);
        assert!(pca.components_for(0.9) <= pca.components_for(0.95));
        assert!(pca.components_for(0.95) <= pca.components_for(0.99));
    }

    #[test]
    fn error_never_rises_with_k_and_full_k_is_exact() {
        let split = random_split(900, 12);
        let pca = Pca::fit(&split).unwrap();
        let test = random_split(40, 13).to_f32();
        let mut last = f64::INFINITY;
        for k in [1, 2, 5, 10, 30, 100, 300, 784] {
            let rec = pca.reconstruct(&test, k);
            let mse: f64 = rec
                .iter()
                .zip(&test)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / test.len() as f64;
            assert!(mse <= last + 1e-9, "k={k}: {mse} > {last}");
            last = mse;
            let curve = pca.error_curve(&test)[k - 1];
            assert!(
                (curve - mse).abs() < 1e-5,
                "curve {curve} vs direct {mse} at k={k}"
            );
        }
        assert!(last < 1e-9, "k=784 error {last}");
    }

    #[test]
    fn percentile_grid_orders_scores() {
        let split = random_split(500, 14);
        let pca = Pca::fit(&split).unwrap();
        let grid = pca.percentile_grid(&split, 3);
        assert_eq!(grid.len(), 3);
        for (c, row) in grid.iter().enumerate() {
            let scores: Vec<f32> = row
                .iter()
                .map(|&i| pca.project(&split.image_f32(i), 3)[c])
                .collect();
            assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
        }
    }
}
