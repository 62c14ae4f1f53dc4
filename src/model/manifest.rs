//! The checkpoint format without the tensor library: the manifest (what
//! was trained, how, and how it went) embedded in the safetensors metadata,
//! and the checks every loaded file must pass before any weight becomes a
//! tensor — names, shapes and dtypes against the manifest's config, finite
//! values. `checkpoint` builds the model from what this returns; the
//! checkpoint fuzz target compiles this file (and the serde types it needs)
//! on its own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::{param_shapes, RunConfig};
use super::record::{History, Metrics, Status};

pub const FORMAT_VERSION: u32 = 1;
pub(crate) const MANIFEST_KEY: &str = "aelab_manifest";

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

pub fn now_unix() -> u64 {
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

/// Read only the manifest of a checkpoint.
pub fn read_manifest(path: &Path) -> Result<Manifest, CheckpointError> {
    let bytes = read_file(path)?;
    manifest_from_bytes(&bytes, path)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
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

/// One checked weight: name, shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Check a checkpoint's bytes: a safetensors file with an aelab manifest of
/// this format version, holding exactly the weights of the manifest's
/// config (names, shapes, f32) with finite values. Returns the manifest and
/// the weights in config order.
pub fn check_bytes(bytes: &[u8], path: &Path) -> Result<(Manifest, Vec<Weight>), CheckpointError> {
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
        if problems.len() > 8 {
            problems.push("…".into());
            break;
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
    let mut weights = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = st.tensor(&name).map_err(|e| mismatch(e.to_string()))?;
        let data = view.data();
        let expected_bytes = shape.iter().try_fold(4usize, |acc, &d| acc.checked_mul(d));
        if expected_bytes != Some(data.len()) {
            return Err(mismatch(format!("{name} holds {} bytes", data.len())));
        }
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: path.to_path_buf(),
                name,
            });
        }
        weights.push(Weight {
            name,
            shape,
            values,
        });
    }
    Ok((manifest, weights))
}
