//! Checkpoints: safetensors weights with the JSON manifest embedded in the
//! safetensors metadata (key `aelab_manifest`), so weights and manifest can
//! never disagree, plus a readable `.json` copy beside it. Writes go to a
//! temporary file in the same folder and are renamed into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{param_shapes, Autoencoder, RunConfig};
use crate::data::registry::write_atomic;
use crate::train::{History, Metrics, Outcome, Status};

pub const FORMAT_VERSION: u32 = 1;
const MANIFEST_KEY: &str = "aelab_manifest";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub aelab_version: String,
    pub run: RunConfig,
    pub params: usize,
    pub epochs_done: usize,
    pub status: Status,
    pub history: History,
    #[serde(default)]
    pub test_metrics: Option<Metrics>,
    pub train_secs: f64,
    pub samples_per_sec: f64,
    /// Seconds since the Unix epoch when saved.
    pub created_unix: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a directory, expected a .safetensors checkpoint file")]
    IsDir { path: PathBuf },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: not a safetensors file ({detail})")]
    NotSafetensors { path: PathBuf, detail: String },
    #[error("{path}: has no aelab manifest; it was not written by aelab")]
    NoManifest { path: PathBuf },
    #[error("{path}: the manifest is not valid ({detail})")]
    BadManifest { path: PathBuf, detail: String },
    #[error("{path}: manifest format version {found} is not supported (this aelab reads version {FORMAT_VERSION}); update aelab")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: weights do not match the {preset} config: {detail}")]
    Mismatch {
        path: PathBuf,
        preset: String,
        detail: String,
    },
    #[error("{path}: weight {name} contains NaN or infinite values")]
    NonFinite { path: PathBuf, name: String },
    #[error("{path}: {detail}")]
    Tensor { path: PathBuf, detail: String },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Manifest {
    pub fn new(run: RunConfig, params: usize) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            aelab_version: env!("CARGO_PKG_VERSION").into(),
            run,
            params,
            epochs_done: 0,
            status: Status::Completed,
            history: History::default(),
            test_metrics: None,
            train_secs: 0.0,
            samples_per_sec: 0.0,
            created_unix: now_unix(),
        }
    }
}

impl Manifest {
    /// The manifest of a finished training run.
    pub fn from_outcome(
        run: RunConfig,
        params: usize,
        outcome: &Outcome,
        test_metrics: Option<Metrics>,
    ) -> Manifest {
        Manifest {
            epochs_done: outcome.epochs_done,
            status: outcome.status.clone(),
            history: outcome.history.clone(),
            test_metrics,
            train_secs: outcome.train_secs,
            samples_per_sec: outcome.samples_per_sec,
            ..Manifest::new(run, params)
        }
    }
}

/// Serialise weights + manifest to safetensors bytes.
pub fn to_bytes(model: &Autoencoder, manifest: &Manifest) -> Result<Vec<u8>, String> {
    let json = serde_json::to_string(manifest).map_err(|e| e.to_string())?;
    let meta = HashMap::from([(MANIFEST_KEY.to_string(), json)]);
    let tensors: Vec<(String, Tensor)> = model
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| e.to_string())
}

/// Save atomically to `path` (and `path` with `.json`).
pub fn save(path: &Path, model: &Autoencoder, manifest: &Manifest) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = to_bytes(model, manifest).map_err(|detail| CheckpointError::Tensor {
        path: path.to_path_buf(),
        detail,
    })?;
    write_atomic(path, &bytes).map_err(io)?;
    let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    write_atomic(&path.with_extension("json"), &json).map_err(io)?;
    Ok(())
}

/// Read only the manifest of a checkpoint.
pub fn read_manifest(path: &Path) -> Result<Manifest, CheckpointError> {
    let bytes = read_file(path)?;
    manifest_from_bytes(&bytes, path)
}

fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    if path.is_dir() {
        return Err(CheckpointError::IsDir {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(CheckpointError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn manifest_from_bytes(bytes: &[u8], path: &Path) -> Result<Manifest, CheckpointError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        CheckpointError::NotSafetensors {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(MANIFEST_KEY))
        .ok_or_else(|| CheckpointError::NoManifest {
            path: path.to_path_buf(),
        })?;
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| CheckpointError::BadManifest {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as u32;
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    serde_json::from_value(value).map_err(|e| CheckpointError::BadManifest {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Load a checkpoint, checking that names, shapes and dtypes of the weights
/// match the manifest's config exactly and that every weight is finite.
pub fn load(path: &Path, device: &Device) -> Result<(Autoencoder, Manifest), CheckpointError> {
    let bytes = read_file(path)?;
    load_bytes(&bytes, path, device)
}

pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    device: &Device,
) -> Result<(Autoencoder, Manifest), CheckpointError> {
    let manifest = manifest_from_bytes(bytes, path)?;
    let cfg = &manifest.run.model;
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        CheckpointError::NotSafetensors {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    let mismatch = |detail: String| CheckpointError::Mismatch {
        path: path.to_path_buf(),
        preset: cfg.preset.clone(),
        detail,
    };
    let expected = param_shapes(cfg);
    let mut problems = Vec::new();
    for (name, shape) in &expected {
        match st.tensor(name) {
            Err(_) => problems.push(format!("missing {name} {shape:?}")),
            Ok(view) => {
                if view.shape() != shape.as_slice() {
                    problems.push(format!(
                        "{name} has shape {:?}, expected {shape:?}",
                        view.shape()
                    ));
                } else if view.dtype() != safetensors::Dtype::F32 {
                    problems.push(format!("{name} has dtype {:?}, expected F32", view.dtype()));
                }
            }
        }
    }
    for name in st.names() {
        if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!("unexpected weight {name}"));
        }
    }
    if !problems.is_empty() {
        return Err(mismatch(problems.join("; ")));
    }
    let mut tensors = Vec::with_capacity(expected.len());
    for (name, _) in &expected {
        let view = st.tensor(name).map_err(|e| mismatch(e.to_string()))?;
        let t = Tensor::from_raw_buffer(view.data(), DType::F32, view.shape(), &Device::Cpu)
            .map_err(|e| CheckpointError::Tensor {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let values = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| CheckpointError::Tensor {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
        tensors.push((name.clone(), t));
    }
    let model =
        Autoencoder::from_tensors(cfg, tensors, device).map_err(|e| CheckpointError::Tensor {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    Ok((model, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetKind;
    use crate::model::{ModelConfig, TrainParams};

    fn run_config(preset: &str) -> RunConfig {
        RunConfig {
            model: ModelConfig::preset(preset).unwrap(),
            train: TrainParams::default(),
            dataset: DatasetKind::Mnist,
        }
    }

    #[test]
    fn roundtrip_keeps_weights_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let rc = run_config("conv-both");
        let m = Autoencoder::new(&rc.model, 3, &Device::Cpu).unwrap();
        let man = Manifest::new(rc, m.param_count());
        save(&path, &m, &man).unwrap();
        assert!(path.with_extension("json").is_file());
        let (back, man2) = load(&path, &Device::Cpu).unwrap();
        assert_eq!(man, man2);
        for ((n1, a), (n2, b)) in m.params.iter().zip(&back.params) {
            assert_eq!(n1, n2);
            assert_eq!(
                crate::model::max_abs_diff(a.as_tensor(), b.as_tensor()),
                0.0
            );
        }
        // no temporary files left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn manifest_of_another_model_is_caught_precisely() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let m =
            Autoencoder::new(&ModelConfig::preset("shallow-64").unwrap(), 1, &Device::Cpu).unwrap();
        // weights of shallow-64 under a manifest claiming shallow-128
        let rc = run_config("shallow-128");
        let bytes = to_bytes(&m, &Manifest::new(rc, 0)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let err = load(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("enc.0.weight has shape [64, 784], expected [128, 784]"),
            "{err}"
        );
    }

    #[test]
    fn hostile_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.safetensors");
        std::fs::write(&empty, b"").unwrap();
        assert!(load(&empty, &Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let junk = dir.path().join("junk.safetensors");
        std::fs::write(&junk, b"hello world, not a checkpoint").unwrap();
        assert!(load(&junk, &Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("not a safetensors"));
        assert!(load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
        // NaN weights
        let rc = run_config("shallow-64");
        let m = Autoencoder::new(&rc.model, 1, &Device::Cpu).unwrap();
        let nan = Tensor::full(f32::NAN, (64,), &Device::Cpu).unwrap();
        m.params[1].1.set(&nan).unwrap();
        let p = dir.path().join("nan.safetensors");
        save(&p, &m, &Manifest::new(rc.clone(), 0)).unwrap();
        let e = load(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("enc.0.bias contains NaN"), "{e}");
        // unknown version
        let mut man = Manifest::new(rc, 0);
        man.format_version = 99;
        let p = dir.path().join("v99.safetensors");
        let m = Autoencoder::new(&man.run.model, 1, &Device::Cpu).unwrap();
        std::fs::write(&p, to_bytes(&m, &man).unwrap()).unwrap();
        let e = load(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("format version 99"), "{e}");
    }
}
