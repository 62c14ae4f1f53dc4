//! The library's models as the analyses see them: a saved model's entry,
//! the reference the views pass around, and the cache that loads each
//! checkpoint once and shares it between the background tasks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::data::DatasetKind;
use crate::model::checkpoint::{self, Manifest};
use crate::model::{Autoencoder, ModelConfig};

/// A saved model in the library folder.
#[derive(Clone, Debug)]
pub struct LibraryEntry {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl LibraryEntry {
    /// Short name for rows and legends: the preset, and the data set when
    /// it was not trained on MNIST.
    pub fn label(&self) -> String {
        let run = &self.manifest.run;
        match run.dataset {
            DatasetKind::Mnist => run.model.preset.clone(),
            other => format!("{} ({})", run.model.preset, other.slug()),
        }
    }
}

/// A library model as the views refer to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRef {
    pub path: PathBuf,
    pub label: String,
    pub config: ModelConfig,
}

impl ModelRef {
    pub fn of(e: &LibraryEntry) -> ModelRef {
        ModelRef {
            path: e.path.clone(),
            label: e.label(),
            config: e.manifest.run.model.clone(),
        }
    }
}

type Loaded = Result<Arc<Autoencoder>, String>;

/// Library models loaded from disk, shared between the compute thread's
/// tasks. A load error is kept so that it is reported, not retried each frame.
#[derive(Clone, Default)]
pub struct ModelCache {
    inner: Arc<Mutex<HashMap<PathBuf, Loaded>>>,
}

impl ModelCache {
    pub fn get(&self, path: &Path) -> Result<Arc<Autoencoder>, String> {
        if let Some(r) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return r.clone();
        }
        let loaded = checkpoint::load(path, &candle_core::Device::Cpu)
            .map(|(m, _)| Arc::new(m))
            .map_err(|e| e.to_string());
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), loaded.clone());
        loaded
    }

    /// Put a model in the cache under `path` (as if loaded from there).
    pub fn insert(&self, path: PathBuf, model: Autoencoder) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, Ok(Arc::new(model)));
    }

    /// Forget a model (deleted or replaced on disk).
    pub fn forget(&self, path: &Path) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}
