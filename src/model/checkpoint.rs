//! Checkpoints: safetensors weights with the JSON manifest embedded in the
//! safetensors metadata (key `aelab_manifest`), so weights and manifest can
//! never disagree, plus a readable `.json` copy beside it. Writes go to a
//! temporary file in the same folder and are renamed into place.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

pub use super::manifest::{
    check_bytes, read_manifest, CheckpointError, Manifest, Weight, FORMAT_VERSION,
};
use super::manifest::{read_file, MANIFEST_KEY};
use super::record::{Metrics, Outcome};
use super::{Autoencoder, RunConfig};
use crate::data::registry::write_atomic;

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
    let (manifest, weights) = check_bytes(bytes, path)?;
    let tensor_error = |e: candle_core::Error| CheckpointError::Tensor {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let tensors = weights
        .into_iter()
        .map(|w| Ok((w.name, Tensor::from_vec(w.values, w.shape, &Device::Cpu)?)))
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(tensor_error)?;
    let model =
        Autoencoder::from_tensors(&manifest.run.model, tensors, device).map_err(tensor_error)?;
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
