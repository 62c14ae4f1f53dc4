//! Training replay: copies of a model's weights at moments of its training
//! (before the first step, a few early steps, every epoch), kept in memory
//! while the run trains and stored beside its checkpoint as
//! `NAME.replay` (safetensors, half precision, with the moments as JSON in
//! the metadata), so that every view can show the model as it was.
//!
//! Size: a snapshot is 2 bytes per parameter, and a run keeps at most
//! [`MAX_SNAPSHOTS`] of them; a 10-epoch `deep` run (808,494 parameters)
//! keeps 14, about 22.6 MB.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::checkpoint::CheckpointError;
use super::config::{param_shapes, ModelConfig};
use super::Autoencoder;
use crate::data::registry::write_atomic;

/// Steps within the first epoch that are kept besides the epochs: the
/// weights change most at the start.
pub const EARLY_STEPS: [usize; 3] = [10, 100, 500];
/// The most snapshots a run keeps; past it every other epoch is dropped
/// (the first moments and the latest epoch stay).
pub const MAX_SNAPSHOTS: usize = 24;
/// How often, within an epoch, the app's views get a training model's
/// latest weights.
pub const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(3);
const REPLAY_KEY: &str = "aelab_replay";
const REPLAY_VERSION: u32 = 1;

/// When a snapshot was taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// Steps done (0: the initial weights).
    pub step: usize,
    /// Epochs done, with the fraction of the current one.
    pub epoch: f64,
    /// The validation MSE, for a snapshot at the end of an epoch.
    pub val_loss: Option<f64>,
}

impl Moment {
    /// "before training", "step 100 (epoch 0.21)" or "epoch 3 (step 1407)".
    pub fn label(&self) -> String {
        if self.step == 0 {
            "before training".into()
        } else if self.val_loss.is_some() {
            format!("epoch {} (step {})", self.epoch.round(), self.step)
        } else {
            format!("step {} (epoch {:.2})", self.step, self.epoch)
        }
    }

    /// Whether it ends an epoch (the snapshots [`keep`] thins out).
    pub fn is_epoch(&self) -> bool {
        self.val_loss.is_some()
    }
}

/// A model's weights at one moment, in half precision on the CPU.
#[derive(Debug)]
pub struct Snapshot {
    pub moment: Moment,
    weights: Vec<(String, Tensor)>,
}

/// Snapshots are compared by moment and parameter names (the weights are
/// copies of one model's).
impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        self.moment == other.moment
            && self
                .weights
                .iter()
                .map(|(n, _)| n)
                .eq(other.weights.iter().map(|(n, _)| n))
    }
}

impl Snapshot {
    /// Copy `model`'s weights (from any device).
    pub fn of(model: &Autoencoder, moment: Moment) -> candle_core::Result<Snapshot> {
        let weights = model
            .params
            .iter()
            .map(|(n, v)| {
                let t = v
                    .as_tensor()
                    .to_dtype(DType::F16)?
                    .to_device(&Device::Cpu)?;
                Ok((n.clone(), t))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Snapshot { moment, weights })
    }

    /// The model with these weights, on the CPU (widened 8 at a time with
    /// F16C where the CPU has it: a scrubber move builds one).
    pub fn model(&self, config: &ModelConfig) -> candle_core::Result<Autoencoder> {
        use half::slice::HalfFloatSliceExt;
        let tensors = self
            .weights
            .iter()
            .map(|(n, t)| {
                let half = t.flatten_all()?.to_vec1::<half::f16>()?;
                let mut wide = vec![0f32; half.len()];
                half.convert_to_f32_slice(&mut wide);
                Ok((n.clone(), Tensor::from_vec(wide, t.shape(), &Device::Cpu)?))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Autoencoder::from_tensors(config, tensors, &Device::Cpu)
    }

    /// Bytes the weights take.
    pub fn bytes(&self) -> usize {
        self.weights.iter().map(|(_, t)| t.elem_count() * 2).sum()
    }
}

/// Where the replay of the checkpoint at `checkpoint` is stored.
pub fn path_for(checkpoint: &Path) -> PathBuf {
    checkpoint.with_extension("replay")
}

/// Add `snapshot` to `kept`, thinning the epochs when there are more than
/// [`MAX_SNAPSHOTS`].
pub fn keep(kept: &mut Vec<Arc<Snapshot>>, snapshot: Arc<Snapshot>) {
    kept.push(snapshot);
    if kept.len() <= MAX_SNAPSHOTS {
        return;
    }
    let last = kept.len() - 1;
    let mut nth_epoch = 0usize;
    let mut i = 0;
    kept.retain(|s| {
        let drop = s.moment.is_epoch() && i != last && {
            nth_epoch += 1;
            !nth_epoch.is_multiple_of(2)
        };
        i += 1;
        !drop
    });
}

#[derive(Serialize, Deserialize)]
struct Index {
    format_version: u32,
    moments: Vec<Moment>,
}

fn tensor_name(k: usize, name: &str) -> String {
    format!("{k}/{name}")
}

/// Save `snapshots` of a model of `config`'s kind to `path` (atomically).
pub fn save(path: &Path, snapshots: &[Arc<Snapshot>]) -> Result<(), CheckpointError> {
    let index = Index {
        format_version: REPLAY_VERSION,
        moments: snapshots.iter().map(|s| s.moment.clone()).collect(),
    };
    let json = serde_json::to_string(&index).unwrap_or_default();
    let meta = std::collections::HashMap::from([(REPLAY_KEY.to_string(), json)]);
    let tensors: Vec<(String, &Tensor)> = snapshots
        .iter()
        .enumerate()
        .flat_map(|(k, s)| s.weights.iter().map(move |(n, t)| (tensor_name(k, n), t)))
        .collect();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), *t)), Some(meta))
        .map_err(|e| CheckpointError::Tensor {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, detail: impl Into<String>) -> CheckpointError {
    CheckpointError::Tensor {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn index_of(
    meta: Option<&std::collections::HashMap<String, String>>,
    path: &Path,
) -> Result<Vec<Moment>, CheckpointError> {
    let json = meta
        .and_then(|m| m.get(REPLAY_KEY))
        .ok_or_else(|| bad(path, "not an aelab replay (no index)"))?;
    let index: Index = serde_json::from_str(json)
        .map_err(|e| bad(path, format!("the replay index is not valid ({e})")))?;
    if index.format_version != REPLAY_VERSION {
        return Err(bad(
            path,
            format!(
                "replay format version {} is not supported",
                index.format_version
            ),
        ));
    }
    Ok(index.moments)
}

/// The moments of the replay at `path`, reading only the file's header.
pub fn read_moments(path: &Path) -> Result<Vec<Moment>, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(path, "not a safetensors file (header too large)"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let value: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(path, format!("not a safetensors file ({e})")))?;
    let meta: Option<std::collections::HashMap<String, String>> = value
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok());
    index_of(meta.as_ref(), path)
}

/// Load the replay at `path` of a model of `config`'s kind, checking every
/// snapshot's weights (names, shapes, half precision, finite values).
pub fn load(path: &Path, config: &ModelConfig) -> Result<Vec<Arc<Snapshot>>, CheckpointError> {
    let bytes = super::manifest::read_file(path)?;
    let not_st = |e: safetensors::SafeTensorError| CheckpointError::NotSafetensors {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(not_st)?;
    let moments = index_of(meta.metadata().as_ref(), path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(not_st)?;
    let shapes = param_shapes(config);
    if st.len() != moments.len() * shapes.len() {
        return Err(bad(
            path,
            format!(
                "holds {} tensors, expected {} snapshots of the {} config's {}",
                st.len(),
                moments.len(),
                config.preset,
                shapes.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(moments.len());
    for (k, moment) in moments.into_iter().enumerate() {
        let mut weights = Vec::with_capacity(shapes.len());
        for (name, shape) in &shapes {
            let key = tensor_name(k, name);
            let view = st
                .tensor(&key)
                .map_err(|_| bad(path, format!("missing {key}")))?;
            if view.shape() != shape.as_slice() || view.dtype() != safetensors::Dtype::F16 {
                return Err(bad(
                    path,
                    format!(
                        "{key} is {:?} {:?}, expected F16 {shape:?}",
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
            let t = Tensor::from_raw_buffer(view.data(), DType::F16, shape, &Device::Cpu)
                .map_err(|e| bad(path, e.to_string()))?;
            let finite = t
                .to_dtype(DType::F32)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .map(|v| v.iter().all(|x| x.is_finite()))
                .map_err(|e| bad(path, e.to_string()))?;
            if !finite {
                return Err(CheckpointError::NonFinite {
                    path: path.to_path_buf(),
                    name: key,
                });
            }
            weights.push((name.clone(), t));
        }
        out.push(Arc::new(Snapshot { moment, weights }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(step: usize, epoch: f64, val: Option<f64>) -> Moment {
        Moment {
            step,
            epoch,
            val_loss: val,
        }
    }

    #[test]
    fn replays_roundtrip_in_half_precision_and_bad_files_are_caught() {
        let config = ModelConfig::preset("shallow-64").unwrap();
        let a = Autoencoder::new(&config, 1, &Device::Cpu).unwrap();
        let b = Autoencoder::new(&config, 2, &Device::Cpu).unwrap();
        let snaps = vec![
            Arc::new(Snapshot::of(&a, moment(0, 0.0, None)).unwrap()),
            Arc::new(Snapshot::of(&b, moment(5, 1.0, Some(0.05))).unwrap()),
        ];
        assert_eq!(snaps[0].bytes(), 2 * a.param_count());
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("m.safetensors"));
        assert_eq!(path.file_name().unwrap(), "m.replay");
        save(&path, &snaps).unwrap();
        assert_eq!(
            read_moments(&path).unwrap(),
            vec![snaps[0].moment.clone(), snaps[1].moment.clone()]
        );
        let back = load(&path, &config).unwrap();
        assert_eq!(back, snaps);
        // the weights come back as saved: within half precision of the model
        let images: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0).collect();
        let want = b.reconstruct(&images).unwrap();
        let got = back[1]
            .model(&config)
            .unwrap()
            .reconstruct(&images)
            .unwrap();
        let diff = want
            .iter()
            .zip(&got)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-2, "{diff}");
        let other = back[0]
            .model(&config)
            .unwrap()
            .reconstruct(&images)
            .unwrap();
        assert!(other.iter().zip(&got).any(|(x, y)| (x - y).abs() > 1e-2));
        // another model's config, junk and a missing file give clear errors
        let e = load(&path, &ModelConfig::preset("shallow-128").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected F16 [128, 784]"), "{e}");
        std::fs::write(&path, b"junk junk junk").unwrap();
        assert!(read_moments(&path).is_err());
        assert!(load(&path, &config)
            .unwrap_err()
            .to_string()
            .contains("not a safetensors"));
        assert!(read_moments(&dir.path().join("none.replay")).is_err());
    }

    #[test]
    fn keeping_thins_the_epochs_and_keeps_the_first_moments_and_the_latest() {
        let config = ModelConfig::preset("shallow-64").unwrap();
        let m = Autoencoder::new(&config, 1, &Device::Cpu).unwrap();
        let mut kept = Vec::new();
        for step in [0, 10, 100, 500] {
            keep(
                &mut kept,
                Arc::new(Snapshot::of(&m, moment(step, 0.1, None)).unwrap()),
            );
        }
        for e in 1..=100 {
            let s = Snapshot::of(&m, moment(1000 * e, e as f64, Some(0.1))).unwrap();
            keep(&mut kept, Arc::new(s));
            assert!(kept.len() <= MAX_SNAPSHOTS);
        }
        let steps: Vec<usize> = kept.iter().map(|s| s.moment.step).collect();
        assert_eq!(&steps[..4], &[0, 10, 100, 500]);
        assert_eq!(*steps.last().unwrap(), 100_000);
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
        assert!(kept.len() > MAX_SNAPSHOTS / 2, "{steps:?}");
    }
}
