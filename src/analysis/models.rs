//! The library's models as the analyses see them: a saved model's entry,
//! the reference the views pass around, and the cache that loads each
//! checkpoint once and shares it between the background tasks.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::data::DatasetKind;
use crate::model::checkpoint::{self, Manifest};
use crate::model::replay::{self, Moment, Snapshot};
use crate::model::{Autoencoder, ModelConfig};

/// A saved model in the library folder.
#[derive(Clone, Debug)]
pub struct LibraryEntry {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// The moments of its training replay, when one is stored beside it.
    pub replay: Vec<Moment>,
}

impl LibraryEntry {
    /// The entry of the checkpoint at `path`, with its replay's moments
    /// (none when it has no readable replay).
    pub fn new(path: PathBuf, manifest: Manifest) -> LibraryEntry {
        let replay = replay::read_moments(&replay::path_for(&path)).unwrap_or_default();
        LibraryEntry {
            path,
            manifest,
            replay,
        }
    }

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

    /// The model as it was at snapshot `k` of its replay (taken at `moment`).
    pub fn at(&self, k: usize, moment: &Moment) -> ModelRef {
        ModelRef {
            path: snapshot_path(&self.path, k),
            label: format!("{} at {}", self.label, moment.label()),
            config: self.config.clone(),
        }
    }
}

type Loaded = Result<Arc<Autoencoder>, String>;
type Replay = Result<Arc<(ModelConfig, Vec<Arc<Snapshot>>)>, String>;

/// Where live models are served (`live/run-{id}/v{n}`).
pub const LIVE: &str = "live";

/// Whether `path` is a live model's (a training run's latest weights).
pub fn is_live(path: &Path) -> bool {
    path.starts_with(LIVE)
}

/// Replay files kept read at once.
const REPLAYS: usize = 4;

/// Models built from replay snapshots kept at once (a scrubber move builds
/// one; older ones are built again when needed).
const SNAPSHOT_MODELS: usize = 6;

#[derive(Default)]
struct Inner {
    loaded: HashMap<PathBuf, Loaded>,
    /// Weights held in memory under a path of their own (a live run's
    /// latest, a run's replay): built into a model when first asked for.
    sources: HashMap<PathBuf, (ModelConfig, Arc<Snapshot>)>,
    /// Replay files read, by checkpoint.
    replays: HashMap<PathBuf, Replay>,
    /// The snapshot models in `loaded`, oldest first.
    built: VecDeque<PathBuf>,
}

/// Library models loaded from disk, and models of snapshots (in memory or
/// in a checkpoint's replay), shared between the compute thread's tasks. A
/// load error is kept so that it is reported, not retried each frame.
#[derive(Clone, Default)]
pub struct ModelCache {
    inner: Arc<Mutex<Inner>>,
}

/// The path of snapshot `k` of the model at `base` (a checkpoint, or the
/// name a live run's replay is registered under).
pub fn snapshot_path(base: &Path, k: usize) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(format!("#{k}"));
    PathBuf::from(s)
}

/// The model of `snapshot`, a model of `config`'s kind.
fn build(snapshot: &Snapshot, config: &ModelConfig) -> Loaded {
    snapshot
        .model(config)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// `(base, k)` of a [`snapshot_path`].
fn split_snapshot_path(path: &Path) -> Option<(PathBuf, usize)> {
    let s = path.to_str()?;
    let (base, k) = s.rsplit_once('#')?;
    Some((PathBuf::from(base), k.parse().ok()?))
}

impl ModelCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, path: &Path) -> Result<Arc<Autoencoder>, String> {
        let source = {
            let inner = self.lock();
            if let Some(r) = inner.loaded.get(path) {
                return r.clone();
            }
            inner.sources.get(path).cloned()
        };
        if let Some((config, snapshot)) = source {
            return self.keep_built(path, build(&snapshot, &config));
        }
        if let Some((base, k)) = split_snapshot_path(path) {
            let built = self.replay_model(&base, k);
            return self.keep_built(path, built);
        }
        if is_live(path) {
            // a live copy replaced since it was asked for: not a file, and
            // not an error to keep
            return Err(format!("{}: newer weights have come", path.display()));
        }
        let loaded = checkpoint::load(path, &candle_core::Device::Cpu)
            .map(|(m, _)| Arc::new(m))
            .map_err(|e| e.to_string());
        self.lock()
            .loaded
            .insert(path.to_path_buf(), loaded.clone());
        loaded
    }

    /// Snapshot `k` of the replay stored beside the checkpoint `base`.
    fn replay_model(&self, base: &Path, k: usize) -> Loaded {
        let cached = self.lock().replays.get(base).cloned();
        let replay = match cached {
            Some(r) => r,
            None => {
                let read = checkpoint::read_manifest(base)
                    .and_then(|m| {
                        let snaps = replay::load(&replay::path_for(base), &m.run.model)?;
                        Ok(Arc::new((m.run.model, snaps)))
                    })
                    .map_err(|e| e.to_string());
                let mut inner = self.lock();
                if inner.replays.len() >= REPLAYS {
                    // (the replays read are tens of MB each: keep a few)
                    inner.replays.clear();
                }
                inner.replays.insert(base.to_path_buf(), read.clone());
                read
            }
        }?;
        let (config, snaps) = &*replay;
        let snapshot = snaps
            .get(k)
            .ok_or_else(|| format!("{}: the replay has no snapshot {k}", base.display()))?;
        build(snapshot, config)
    }

    /// Keep a model built from a snapshot, dropping the oldest beyond
    /// [`SNAPSHOT_MODELS`].
    fn keep_built(&self, path: &Path, built: Loaded) -> Loaded {
        let mut inner = self.lock();
        inner.loaded.insert(path.to_path_buf(), built.clone());
        inner.built.push_back(path.to_path_buf());
        while inner.built.len() > SNAPSHOT_MODELS {
            if let Some(old) = inner.built.pop_front() {
                inner.loaded.remove(&old);
            }
        }
        built
    }

    /// Put a model in the cache under `path` (as if loaded from there).
    pub fn insert(&self, path: PathBuf, model: Autoencoder) {
        self.lock().loaded.insert(path, Ok(Arc::new(model)));
    }

    /// Serve the model of `snapshot` under `path` (built when first asked
    /// for); another snapshot under the same path (a replay thinned out)
    /// replaces the one there and the model built from it.
    pub fn insert_snapshot(&self, path: PathBuf, config: ModelConfig, snapshot: Arc<Snapshot>) {
        let mut inner = self.lock();
        if let Some((_, s)) = inner.sources.get(&path) {
            if Arc::ptr_eq(s, &snapshot) {
                return;
            }
        }
        inner.loaded.remove(&path);
        inner.sources.insert(path, (config, snapshot));
    }

    /// Forget the snapshots served under paths for which `keep` is false.
    pub fn retain_snapshots(&self, keep: impl Fn(&Path) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<PathBuf> = inner.sources.keys().filter(|p| !keep(p)).cloned().collect();
        for p in gone {
            inner.sources.remove(&p);
            inner.loaded.remove(&p);
        }
    }

    /// Forget a model (deleted or replaced on disk), and its replay.
    pub fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        inner.loaded.remove(path);
        inner.replays.remove(path);
        inner
            .loaded
            .retain(|p, _| split_snapshot_path(p).is_none_or(|(base, _)| base != path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::replay::Moment;

    #[test]
    fn a_snapshot_served_again_under_its_path_replaces_the_old_one() {
        // (a replay thinned out: snapshot k is another moment than before)
        let config = ModelConfig::preset("shallow-64").unwrap();
        let cache = ModelCache::default();
        let path = snapshot_path(Path::new("run-1"), 3);
        let x: Vec<f32> = (0..784).map(|i| (i % 5) as f32 / 5.0).collect();
        let mut outputs = Vec::new();
        for seed in [1, 2] {
            let m = Autoencoder::new(&config, seed, &candle_core::Device::Cpu).unwrap();
            let moment = Moment {
                step: seed as usize,
                epoch: 0.0,
                val_loss: None,
            };
            let s = Arc::new(Snapshot::of(&m, moment).unwrap());
            cache.insert_snapshot(path.clone(), config.clone(), s.clone());
            cache.insert_snapshot(path.clone(), config.clone(), s); // the same: kept
            outputs.push(cache.get(&path).unwrap().reconstruct(&x).unwrap());
        }
        assert_ne!(outputs[0], outputs[1]);
        // a live copy gone since it was asked for is an error, not kept
        let stale = Path::new("live/run-1/v0");
        assert!(cache.get(stale).unwrap_err().contains("newer weights"));
        assert!(!cache.lock().loaded.contains_key(stale));
        // served paths not kept are forgotten
        cache.retain_snapshots(|_| false);
        assert!(cache.get(&path).is_err());
    }
}
