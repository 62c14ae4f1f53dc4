//! Data sets: IDX parsing, where the files live, the fixed train/validation/
//! test split, and the noise used by denoising autoencoders.

pub mod idx;
pub mod kind;
pub mod noise;
pub mod registry;

use std::path::{Path, PathBuf};

pub use registry::{DataDirSource, DatasetKind};

pub use kind::{IMAGE_SIDE, PIXELS};
/// Size of the validation split carved from the end of the training file.
pub const VALIDATION_SIZE: usize = 10_000;

/// Images (`u8`, row-major 28x28 each) with their labels.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }

    /// Image `i` scaled to [0, 1].
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// All pixels scaled to [0, 1], `[n * 784]`.
    pub fn to_f32(&self) -> Vec<f32> {
        self.images.iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// Rows `range` scaled to [0, 1].
    pub fn rows_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        self.images[range.start * PIXELS..range.end * PIXELS]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect()
    }

    /// The first `n` images (or all when there are fewer).
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Split {
        Split {
            images: self.images[range.start * PIXELS..range.end * PIXELS].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }
}

/// A data set split deterministically: the first 50,000 training images for
/// training, the last 10,000 for validation, the test file for test. A
/// smaller training file (generated test data) keeps the last sixth, at most
/// 10,000, for validation.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub dir: PathBuf,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Idx(#[from] idx::IdxError),
    #[error(transparent)]
    Download(#[from] registry::DownloadError),
    #[error(
        "{path}: the training file holds {n} images, too few to split into training and validation"
    )]
    TooSmall { path: PathBuf, n: usize },
}

impl Dataset {
    /// Load `kind` from `root/<slug>/`, without any network access.
    pub fn load(root: &Path, kind: DatasetKind) -> Result<Dataset, DataError> {
        let missing = registry::missing_files(root, kind);
        if !missing.is_empty() {
            return Err(registry::DownloadError::Offline {
                kind: kind.display_name(),
                dir: root.join(kind.slug()),
                missing,
                reason: "files not present".into(),
            }
            .into());
        }
        let dir = root.join(kind.slug());
        let train_images = dir.join(registry::TRAIN_IMAGES);
        let (tr_px, tr_lb) = idx::read_pair(&train_images, &dir.join(registry::TRAIN_LABELS))?;
        let (te_px, te_lb) = idx::read_pair(
            &dir.join(registry::TEST_IMAGES),
            &dir.join(registry::TEST_LABELS),
        )?;
        let all = Split {
            images: tr_px,
            labels: tr_lb,
        };
        let n = all.len();
        let n_val = VALIDATION_SIZE.min(n / 6);
        if n_val == 0 {
            return Err(DataError::TooSmall {
                path: train_images,
                n,
            });
        }
        Ok(Dataset {
            kind,
            dir,
            train: all.slice(0..n - n_val),
            val: all.slice(n - n_val..n),
            test: Split {
                images: te_px,
                labels: te_lb,
            },
        })
    }

    /// Load, downloading missing files first (unless offline).
    pub fn load_or_download(
        root: &Path,
        kind: DatasetKind,
        progress: &mut dyn FnMut(&registry::DownloadProgress) -> bool,
    ) -> Result<Dataset, DataError> {
        registry::ensure_files(root, kind, progress)?;
        Self::load(root, kind)
    }

    /// A smaller copy: the first `n_train`, `n_val`, `n_test` images of each
    /// split (for `--quick` runs and tests).
    pub fn truncated(&self, n_train: usize, n_val: usize, n_test: usize) -> Dataset {
        Dataset {
            kind: self.kind,
            dir: self.dir.clone(),
            train: self.train.head(n_train),
            val: self.val.head(n_val),
            test: self.test.head(n_test),
        }
    }
}

/// Write a small synthetic but learnable IDX data set (strokes and blobs
/// whose shape depends on the label) into `root/<slug>/`, gzipped, with the
/// official file names. Used by tests and demos without real data.
pub fn write_synthetic(
    root: &Path,
    kind: DatasetKind,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> std::io::Result<()> {
    let dir = root.join(kind.slug());
    std::fs::create_dir_all(&dir)?;
    let mut rng = crate::rng::Rng::new(seed);
    let mut make = |n: usize| {
        let mut px = vec![0u8; n * PIXELS];
        let mut lb = vec![0u8; n];
        for i in 0..n {
            let label = rng.below(10) as u8;
            lb[i] = label;
            let img = &mut px[i * PIXELS..(i + 1) * PIXELS];
            draw_synthetic_digit(img, label, &mut rng);
        }
        (px, lb)
    };
    let (tr_px, tr_lb) = make(n_train);
    let (te_px, te_lb) = make(n_test);
    let files = [
        (registry::TRAIN_IMAGES, idx::encode_images(&tr_px, n_train)),
        (registry::TRAIN_LABELS, idx::encode_labels(&tr_lb)),
        (registry::TEST_IMAGES, idx::encode_images(&te_px, n_test)),
        (registry::TEST_LABELS, idx::encode_labels(&te_lb)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), idx::gzip(&bytes))?;
    }
    Ok(())
}

/// A label-dependent pattern: a ring, bars or a diagonal, jittered.
fn draw_synthetic_digit(img: &mut [u8], label: u8, rng: &mut crate::rng::Rng) {
    let cx = 14.0 + (rng.uniform() - 0.5) * 4.0;
    let cy = 14.0 + (rng.uniform() - 0.5) * 4.0;
    let r = 5.0 + (label % 5) as f32 + rng.uniform();
    let angle = label as f32 * 0.314;
    let (s, c) = angle.sin_cos();
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let dx = x as f32 - cx;
            let dy = y as f32 - cy;
            let v = if label < 5 {
                // ring of radius r
                let d = (dx * dx + dy * dy).sqrt();
                1.0 - ((d - r).abs() / 1.5).min(1.0)
            } else {
                // bar through the centre at a label-dependent angle
                let across = (dx * c + dy * s).abs();
                let along = (-dx * s + dy * c).abs();
                if along < r {
                    1.0 - (across / 1.5).min(1.0)
                } else {
                    0.0
                }
            };
            img[y * IMAGE_SIDE + x] = (v.clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_roundtrip_and_split() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 600, 100, 1).unwrap();
        let ds = Dataset::load(dir.path(), DatasetKind::Mnist).unwrap();
        assert_eq!(ds.train.len(), 500);
        assert_eq!(ds.val.len(), 100);
        assert_eq!(ds.test.len(), 100);
        assert!(ds.train.labels.iter().all(|&l| l < 10));
        let mean = ds.train.to_f32().iter().sum::<f32>() / (500.0 * 784.0);
        assert!(mean > 0.02 && mean < 0.5, "{mean}");
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Dataset::load(dir.path(), DatasetKind::FashionMnist).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Fashion-MNIST is missing train-images-idx3-ubyte.gz"),
            "{msg}"
        );
        assert!(msg.contains("fashion-mnist"), "{msg}");
    }

    #[test]
    fn count_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 60, 10, 1).unwrap();
        let d = dir.path().join("mnist");
        std::fs::write(
            d.join(registry::TEST_LABELS),
            idx::gzip(&idx::encode_labels(&[1; 9])),
        )
        .unwrap();
        let msg = Dataset::load(dir.path(), DatasetKind::Mnist)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("holds 10 images but"), "{msg}");
        assert!(msg.contains("9 labels"), "{msg}");
    }
}
