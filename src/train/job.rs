//! One job from a run config to a saved checkpoint, the same for the app's
//! trainer thread, `aelab train` and the report: build the model on the
//! device, train it, evaluate it on the test set, write its manifest, save
//! it, and hand it back on the CPU.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use super::run::{evaluate, run_in_parts, Control, History, Observer, Outcome, Status, TrainEvent};
use crate::data::Dataset;
use crate::model::checkpoint::{self, Manifest};
use crate::model::replay::{self, Snapshot};
use crate::model::{Autoencoder, RunConfig};

/// Where a job saves its model.
#[derive(Clone, Debug, PartialEq)]
pub enum Save {
    /// Nowhere: the model stays in memory.
    No,
    /// In this folder (the model library), named by [`checkpoint_path`].
    Into(PathBuf),
    /// To this file.
    To(PathBuf),
}

/// A training job.
pub struct Job<'a> {
    pub run: &'a RunConfig,
    pub data: &'a Dataset,
    /// Where the model trains and is evaluated.
    pub device: &'a Device,
    /// Parts each batch is split into (see [`run_in_parts`]).
    pub ways: usize,
    pub save: Save,
    /// Also save after every epoch (atomically, the same file), so that an
    /// interrupted run keeps its finished epochs.
    pub save_every_epoch: bool,
}

/// What a job leaves.
pub struct Trained {
    /// The trained model, on the CPU.
    pub model: Autoencoder,
    pub manifest: Manifest,
    /// Where it was saved.
    pub checkpoint: Option<PathBuf>,
    /// Why saving failed (the model is still here, in memory).
    pub save_error: Option<String>,
    /// The snapshots of its training (saved beside the checkpoint, see
    /// [`crate::model::replay`]).
    pub replay: Vec<Arc<Snapshot>>,
}

/// The library's file for a model of `run` saved at `created_unix`:
/// `PRESET-DATASET-TIME.safetensors`, with `-2`, `-3`, ... before the
/// extension when that name is taken.
pub fn checkpoint_path(dir: &Path, run: &RunConfig, created_unix: u64) -> PathBuf {
    let stem = format!("{}-{}-{created_unix}", run.model.preset, run.dataset.slug());
    let mut path = dir.join(format!("{stem}.safetensors"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.safetensors"));
        n += 1;
    }
    path
}

/// Run `job`: train (sending the loop's events, then
/// [`TrainEvent::Evaluating`], to `observer`), evaluate on the test set
/// when an epoch finished, and save when asked to and an epoch finished.
/// A failed save is reported in [`Trained::save_error`], not as an error:
/// the trained model is still returned.
pub fn run(
    job: &Job,
    observer: &mut (dyn Observer + Send),
    control: &Control,
) -> anyhow::Result<Trained> {
    let run = job.run;
    let model = Autoencoder::new(&run.model, run.train.seed, job.device)?;
    // the time in a file named at the start, and in its manifests
    let started_unix = crate::model::manifest::now_unix();
    let mut path = match &job.save {
        Save::No => None,
        Save::To(p) => Some(p.clone()),
        // named now when the epochs are saved, else once finished
        Save::Into(dir) if job.save_every_epoch => {
            // (a folder that cannot be made fails the first save, reported)
            let _ = std::fs::create_dir_all(dir);
            Some(checkpoint_path(dir, run, started_unix))
        }
        Save::Into(_) => None,
    };
    let mut replay = Vec::new();
    let outcome = {
        let mut saver = EpochSaver {
            replay: &mut replay,
            inner: observer,
            model: &model,
            run,
            path: path.as_deref().filter(|_| job.save_every_epoch),
            history: History::default(),
            started: std::time::Instant::now(),
            created_unix: started_unix,
        };
        run_in_parts(run, job.data, &model, &mut saver, control, job.ways)?
    };
    observer.event(&TrainEvent::Evaluating);
    // a failed evaluation still saves the trained model (without metrics)
    let (test, eval_error) = if outcome.epochs_done > 0 {
        match evaluate(
            &model,
            &job.data.test,
            run.model.noise,
            run.train.seed,
            Some(&job.data.train),
        ) {
            Ok(m) => (Some(m), None),
            Err(e) => (
                None,
                Some(format!("evaluating on the test set failed: {e}")),
            ),
        }
    } else {
        (None, None)
    };
    let mut manifest = Manifest::from_outcome(run.clone(), model.param_count(), &outcome, test);
    match (&path, &job.save) {
        (None, Save::Into(dir)) => path = Some(checkpoint_path(dir, run, manifest.created_unix)),
        (Some(_), Save::Into(_)) => manifest.created_unix = started_unix,
        _ => {}
    }
    let (mut checkpoint, mut save_error) = (None, eval_error);
    if let (Some(p), true) = (path, outcome.epochs_done > 0) {
        let made = match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
            }
            _ => Ok(()),
        };
        let saved =
            made.and_then(|()| checkpoint::save(&p, &model, &manifest).map_err(|e| e.to_string()));
        // (a replay that cannot be written leaves the checkpoint saved)
        let saved = saved.and_then(|()| {
            checkpoint = Some(p.clone());
            replay::save(&replay::path_for(&p), &replay)
                .map_err(|e| format!("saving the training replay failed: {e}"))
        });
        if let Err(e) = saved {
            save_error = Some(match save_error {
                Some(first) => format!("{first}; saving failed too: {e}"),
                None => e,
            })
        }
    }
    Ok(Trained {
        model: model.to_device(&Device::Cpu)?,
        manifest,
        checkpoint,
        save_error,
        replay,
    })
}

/// Passes the loop's events on and, when given a path, saves the
/// checkpoint after every epoch.
struct EpochSaver<'a> {
    inner: &'a mut (dyn Observer + Send),
    /// The snapshots the replay keeps, as they come.
    replay: &'a mut Vec<Arc<Snapshot>>,
    model: &'a Autoencoder,
    run: &'a RunConfig,
    path: Option<&'a Path>,
    history: History,
    started: std::time::Instant,
    /// The time the file is named by, kept in each manifest.
    created_unix: u64,
}

impl Observer for EpochSaver<'_> {
    fn event(&mut self, e: &TrainEvent) {
        self.inner.event(e);
        if let TrainEvent::Snapshot {
            snapshot,
            kept: true,
        } = e
        {
            replay::keep(self.replay, snapshot.clone());
            // an epoch's snapshot comes after its event: save them both
            if let (Some(path), true) = (self.path, snapshot.moment.is_epoch()) {
                if let Err(err) = replay::save(&replay::path_for(path), self.replay) {
                    log::warn!("saving the replay failed: {err}");
                }
            }
        }
        let (
            Some(path),
            TrainEvent::Epoch {
                epoch,
                train_loss,
                val_loss,
                samples_per_sec,
                ..
            },
        ) = (self.path, e)
        else {
            return;
        };
        self.history.train_loss.push(*train_loss);
        self.history.val_loss.push(*val_loss);
        let outcome = Outcome {
            status: Status::Stopped,
            history: self.history.clone(),
            epochs_done: *epoch,
            steps_done: 0,
            train_secs: self.started.elapsed().as_secs_f64(),
            samples_per_sec: *samples_per_sec,
        };
        let mut manifest =
            Manifest::from_outcome(self.run.clone(), self.model.param_count(), &outcome, None);
        manifest.created_unix = self.created_unix;
        if let Err(err) = checkpoint::save(path, self.model, &manifest) {
            log::warn!("saving after epoch {epoch} failed: {err}");
        }
    }

    fn wants_activations(&self) -> bool {
        self.inner.wants_activations()
    }

    fn live_every(&self) -> Option<std::time::Duration> {
        self.inner.live_every()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_synthetic, DatasetKind};
    use crate::model::{ModelConfig, TrainParams};

    fn setup() -> (tempfile::TempDir, Dataset, RunConfig) {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 300, 60, 3).unwrap();
        let data = Dataset::load(dir.path(), DatasetKind::Mnist).unwrap();
        let run = RunConfig {
            model: ModelConfig::preset("shallow-64").unwrap(),
            train: TrainParams {
                epochs: 2,
                ..TrainParams::default()
            },
            dataset: DatasetKind::Mnist,
        };
        (dir, data, run)
    }

    #[test]
    fn a_job_trains_evaluates_and_saves_under_one_naming_scheme() {
        let (_d, data, run) = setup();
        let lib = tempfile::tempdir().unwrap();
        let job = cpu_job(&run, &data, Save::Into(lib.path().to_path_buf()), false);
        let mut events = Vec::new();
        let mut obs = |e: &TrainEvent| events.push(e.clone());
        let first = run_job(&job, &mut obs);
        assert!(matches!(events.last(), Some(TrainEvent::Evaluating)));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, TrainEvent::Epoch { .. }))
                .count(),
            2
        );
        assert_eq!(first.manifest.epochs_done, 2);
        assert_eq!(first.manifest.status, Status::Completed);
        assert!(first.manifest.test_metrics.is_some());
        let saved = first.checkpoint.clone().unwrap();
        let (back, manifest) = checkpoint::load(&saved, &Device::Cpu).unwrap();
        // (JSON keeps floats to within an ulp)
        assert_eq!(manifest.run, first.manifest.run);
        assert_eq!(manifest.epochs_done, 2);
        assert_eq!(manifest.created_unix, first.manifest.created_unix);
        assert!(manifest.test_metrics.is_some());
        let x = data.test.rows_f32(0..2);
        assert_eq!(
            back.reconstruct(&x).unwrap(),
            first.model.reconstruct(&x).unwrap()
        );
        // the same run saved again in the same second gets a name of its own
        let name = saved.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("shallow-64-mnist-"), "{name}");
        let again = checkpoint_path(lib.path(), &run, first.manifest.created_unix);
        assert_ne!(again, saved);
        assert!(again.to_string_lossy().ends_with("-2.safetensors"));
    }

    #[test]
    fn a_stopped_job_with_no_epoch_saves_nothing_and_a_failed_save_is_reported() {
        let (_d, data, run) = setup();
        let lib = tempfile::tempdir().unwrap();
        let control = Control::default();
        control.stop();
        let job = cpu_job(&run, &data, Save::Into(lib.path().to_path_buf()), false);
        let t = super::run(&job, &mut (), &control).unwrap();
        assert_eq!(t.manifest.epochs_done, 0);
        assert!(t.manifest.test_metrics.is_none());
        assert!(t.checkpoint.is_none() && t.save_error.is_none());
        assert_eq!(std::fs::read_dir(lib.path()).unwrap().count(), 0);
        // a file where the folder should be: the save fails, the model stays
        let blocked = lib.path().join("file");
        std::fs::write(&blocked, b"x").unwrap();
        let job = Job {
            save: Save::To(blocked.join("m.safetensors")),
            ..job
        };
        let t = super::run(&job, &mut (), &Control::default()).unwrap();
        assert!(t.checkpoint.is_none());
        assert!(t.save_error.is_some());
        assert_eq!(t.manifest.epochs_done, 2);
    }

    #[test]
    fn epochs_are_saved_as_they_finish() {
        let (_d, data, run) = setup();
        let lib = tempfile::tempdir().unwrap();
        let path = lib.path().join("every.safetensors");
        let job = cpu_job(&run, &data, Save::To(path.clone()), true);
        let mut seen = Vec::new();
        let mut obs = |e: &TrainEvent| {
            if let TrainEvent::Epoch { epoch, .. } = e {
                // the file holds the epoch before this one
                let before = checkpoint::read_manifest(&path).ok().map(|m| m.epochs_done);
                seen.push((*epoch, before));
            }
        };
        run_job(&job, &mut obs);
        assert_eq!(seen, [(1, None), (2, Some(1))]);
        assert_eq!(checkpoint::read_manifest(&path).unwrap().epochs_done, 2);
    }

    #[test]
    fn a_file_named_at_the_start_keeps_its_time_in_the_manifest() {
        let (_d, data, run) = setup();
        let lib = tempfile::tempdir().unwrap();
        let job = cpu_job(&run, &data, Save::Into(lib.path().to_path_buf()), true);
        let t = run_job(&job, &mut ());
        let path = t.checkpoint.unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let time: u64 = name.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(time, t.manifest.created_unix, "{name}");
        assert_eq!(checkpoint::read_manifest(&path).unwrap().created_unix, time);
    }

    #[test]
    fn the_replay_is_saved_beside_the_checkpoint_and_live_copies_come_when_asked() {
        let (_d, data, mut run) = setup();
        run.train.batch_size = 8; // 32 steps an epoch: step 10 is an early moment
        let lib = tempfile::tempdir().unwrap();
        let job = cpu_job(&run, &data, Save::Into(lib.path().to_path_buf()), false);
        struct Live(Vec<(usize, bool)>);
        impl Observer for Live {
            fn event(&mut self, e: &TrainEvent) {
                if let TrainEvent::Snapshot { snapshot, kept } = e {
                    self.0.push((snapshot.moment.step, *kept));
                }
            }
            fn live_every(&self) -> Option<std::time::Duration> {
                Some(std::time::Duration::ZERO)
            }
        }
        let mut live = Live(Vec::new());
        let trained = run_job(&job, &mut live);
        let kept: Vec<usize> = live.0.iter().filter(|(_, k)| *k).map(|(s, _)| *s).collect();
        assert_eq!(kept, [0, 10, 32, 64]);
        // a live copy after every other step
        assert_eq!(live.0.len(), 65, "{:?}", live.0);
        let steps: Vec<usize> = trained.replay.iter().map(|s| s.moment.step).collect();
        assert_eq!(steps, kept);
        let saved = trained.checkpoint.clone().unwrap();
        let moments = replay::read_moments(&replay::path_for(&saved)).unwrap();
        assert_eq!(moments.iter().map(|m| m.step).collect::<Vec<_>>(), kept);
        assert_eq!(
            moments[3].val_loss,
            trained.manifest.history.val_loss.last().copied()
        );
        // through the views' cache: the last snapshot is the trained model
        // (in half precision), the first the untrained one
        let cache = crate::analysis::ModelCache::default();
        let x = data.test.rows_f32(0..4);
        let want = trained.model.reconstruct(&x).unwrap();
        let mse = |k: usize| {
            let path = crate::analysis::models::snapshot_path(&saved, k);
            let got = cache.get(&path).unwrap().reconstruct(&x).unwrap();
            got.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                / want.len() as f32
        };
        assert!(mse(3) < 1e-5, "{}", mse(3));
        assert!(mse(0) > 100.0 * mse(3).max(1e-7), "{}", mse(0));
        let missing = crate::analysis::models::snapshot_path(&saved, 9);
        assert!(cache.get(&missing).unwrap_err().contains("no snapshot 9"));
        // a job that saves nothing still hands its replay back
        let job = cpu_job(&run, &data, Save::No, false);
        assert_eq!(run_job(&job, &mut ()).replay.len(), 4);
    }

    fn cpu_job<'a>(run: &'a RunConfig, data: &'a Dataset, save: Save, every: bool) -> Job<'a> {
        Job {
            run,
            data,
            device: &Device::Cpu,
            ways: 1,
            save,
            save_every_epoch: every,
        }
    }

    fn run_job(job: &Job, obs: &mut (dyn Observer + Send)) -> Trained {
        super::run(job, obs, &Control::default()).unwrap()
    }
}
