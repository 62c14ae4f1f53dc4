//! The app's state and logic, free of egui types: data status, runs and
//! their live curves, the run queue, the model library. Worker events are
//! applied here; panels only read this and issue [`Action`]s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analysis::models::snapshot_path;
use crate::analysis::ModelRef;
use crate::data::{DataDirSource, Dataset, DatasetKind};
use crate::model::checkpoint::{self};
use crate::model::replay::{self, Moment, Snapshot};
use crate::model::{ModelConfig, RunConfig, TrainParams};
use crate::pca::Pca;
use crate::train::TrainEvent;
use crate::worker::Event;

/// The views of the side panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum View {
    /// A first launch opens the guided study.
    #[default]
    Study,
    Train,
    Draw,
    Pca,
    Compare,
    Denoise,
    Filters,
    Ood,
    Latent,
    Library,
}

impl View {
    /// The view that holds a study step's other figures.
    pub fn showing(s: crate::analysis::study::Shows) -> View {
        use crate::analysis::study::Shows;
        match s {
            Shows::Pca => View::Pca,
            Shows::Ood => View::Ood,
            Shows::Filters => View::Filters,
            Shows::Denoise => View::Denoise,
            Shows::Compare => View::Compare,
            Shows::Latent => View::Latent,
        }
    }

    pub const ALL: [View; 10] = [
        View::Study,
        View::Train,
        View::Draw,
        View::Pca,
        View::Compare,
        View::Denoise,
        View::Filters,
        View::Ood,
        View::Latent,
        View::Library,
    ];
    /// What the view shows, in one sentence (its tooltip).
    pub fn explain(self) -> &'static str {
        match self {
            View::Study => "The five questions of the study, step by step, trained and answered with your own models",
            View::Train => "Pick or edit a model, train it, and watch its loss fall",
            View::Draw => "Draw a digit (or open a picture) and see PCA and every model reconstruct and recognise it",
            View::Pca => "PCA: explained variance, eigen-digits, and reconstructions from k components",
            View::Compare => "The same digits through PCA and every model, with a table of errors",
            View::Denoise => "Corrupt digits with noise and see which models clean them up",
            View::Filters => "What the hidden units respond to: first-layer filters, activations, feature maps",
            View::Ood => "Out-of-distribution: clothing and noise through digit-trained models, and how well the error flags them",
            View::Latent => "The code space: a map of all test digits, interpolation, and sliders along the main directions",
            View::Library => "Your trained models: load, import, export, delete, and write the study report",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            View::Study => "Study",
            View::Train => "Train",
            View::Draw => "Draw",
            View::Pca => "PCA",
            View::Compare => "Compare",
            View::Denoise => "Denoise",
            View::Filters => "Filters",
            View::Ood => "Noise & OOD",
            View::Latent => "Latent space",
            View::Library => "Library",
        }
    }
}

/// Where the data set stands.
#[derive(Clone, Default)]
pub enum DataStatus {
    #[default]
    NotLoaded,
    Loading {
        message: String,
        fraction: Option<f32>,
    },
    Ready {
        data: Arc<Dataset>,
        pca: Option<Arc<Pca>>,
    },
    /// Files are missing (offline or download failed): the message says what to do.
    Missing {
        message: String,
    },
    Failed {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    Queued,
    Running,
    Evaluating,
    Completed,
    Stopped,
    Diverged(String),
    Failed(String),
}

impl RunStatus {
    pub fn is_active(&self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Evaluating)
    }
    pub fn label(&self) -> String {
        match self {
            RunStatus::Queued => "queued".into(),
            RunStatus::Running => "running".into(),
            RunStatus::Evaluating => "evaluating on the test set".into(),
            RunStatus::Completed => "completed".into(),
            RunStatus::Stopped => "stopped".into(),
            RunStatus::Diverged(m) => m.clone(),
            RunStatus::Failed(m) => format!("failed: {m}"),
        }
    }
}

/// One training run and its live curves.
#[derive(Clone, Debug)]
pub struct Run {
    pub id: u64,
    pub config: RunConfig,
    pub status: RunStatus,
    /// (step, loss) as received (some may be thinned when the UI lags).
    pub steps: Vec<[f64; 2]>,
    /// Exponential moving average of the step loss (bias-corrected).
    pub smoothed: Vec<[f64; 2]>,
    ema: f64,
    ema_n: i32,
    /// (step at the end of the epoch, validation MSE).
    pub val: Vec<[f64; 2]>,
    pub lr_marks: Vec<(f64, f64)>,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
    pub step: usize,
    pub epoch: usize,
    pub samples_per_sec: f64,
    pub visible: bool,
    pub checkpoint: Option<PathBuf>,
    pub save_error: Option<String>,
    /// Serialized checkpoint of a finished run (kept for "save as").
    pub weights: Option<Arc<Vec<u8>>>,
    pub test_mse: Option<f64>,
    /// The latest per-epoch code statistics (epoch, stats).
    pub activations: Option<(usize, crate::train::metrics::ActivationStats)>,
    /// A VAE's (step, reconstruction, KL) as received.
    pub terms: Vec<[f64; 3]>,
    /// A VAE's latest epoch: its number, terms and validation ELBO.
    pub vae_epoch: Option<(usize, crate::train::run::VaeEpoch)>,
    /// The snapshots its replay keeps (see [`crate::model::replay`]).
    pub replay: Vec<Arc<Snapshot>>,
    /// The latest weights while it trains, and how many have come.
    pub live: Option<(u64, Arc<Snapshot>)>,
}

impl Run {
    pub fn new(id: u64, config: RunConfig) -> Run {
        Run {
            id,
            config,
            status: RunStatus::Queued,
            steps: Vec::new(),
            smoothed: Vec::new(),
            ema: 0.0,
            ema_n: 0,
            val: Vec::new(),
            lr_marks: Vec::new(),
            steps_per_epoch: 0,
            total_steps: 0,
            step: 0,
            epoch: 0,
            samples_per_sec: 0.0,
            visible: true,
            checkpoint: None,
            save_error: None,
            weights: None,
            test_mse: None,
            activations: None,
            terms: Vec::new(),
            vae_epoch: None,
            replay: Vec::new(),
            live: None,
        }
    }

    pub fn label(&self) -> String {
        format!("#{} {}", self.id, self.config.model.preset)
    }

    /// Where its replay's snapshots are served from, in memory (snapshot
    /// `k` is at `snapshot_path(base, k)`).
    pub fn replay_ref(&self) -> ModelRef {
        ModelRef {
            path: PathBuf::from(format!("run-{}", self.id)),
            label: self.label(),
            config: self.config.model.clone(),
        }
    }

    /// Where its live copies are served (`live/run-{id}`, each copy under
    /// a version of its own).
    fn live_base(&self) -> PathBuf {
        Path::new(crate::analysis::models::LIVE).join(format!("run-{}", self.id))
    }

    /// Whether `path` is one of its models: a live copy or its replay.
    fn serves(&self, path: &Path) -> bool {
        path.starts_with(self.live_base()) || path == self.replay_ref().path
    }

    /// The moments of the snapshots its replay keeps in memory.
    pub fn moments(&self) -> Vec<Moment> {
        self.replay.iter().map(|s| s.moment.clone()).collect()
    }

    /// Its model with the latest weights, while it trains: the path
    /// changes with every copy, so the views compute again.
    pub fn live_ref(&self) -> Option<ModelRef> {
        let (version, snapshot) = self.live.as_ref()?;
        // (while it is evaluated too: the views keep it until it is saved)
        let training = matches!(self.status, RunStatus::Running | RunStatus::Evaluating);
        training.then(|| ModelRef {
            path: self.live_base().join(format!("v{version}")),
            label: format!(
                "{} · training #{}, {}",
                self.config.model.preset,
                self.id,
                snapshot.moment.label()
            ),
            config: self.config.model.clone(),
        })
    }

    /// Add one step's loss to the raw and smoothed curves (non-finite losses are not plotted).
    /// Apply one of the training job's events (for a step, `earlier` holds
    /// the losses of the steps thinned out before it).
    pub fn apply(&mut self, event: TrainEvent, earlier: Vec<(usize, f32)>) {
        match event {
            TrainEvent::Started {
                steps_per_epoch,
                total_steps,
                ..
            } => {
                self.steps_per_epoch = steps_per_epoch;
                self.total_steps = total_steps;
                self.status = RunStatus::Running;
            }
            TrainEvent::Step {
                epoch,
                step,
                loss,
                samples_per_sec,
                terms,
                ..
            } => {
                if let Some([r, k]) = terms.filter(|t| t.iter().all(|v| v.is_finite())) {
                    self.terms.push([step as f64, r as f64, k as f64]);
                }
                self.step = step;
                self.epoch = epoch;
                self.samples_per_sec = samples_per_sec;
                for (x, y) in earlier.into_iter().chain(std::iter::once((step, loss))) {
                    self.push_loss(x as f64, y as f64);
                }
            }
            TrainEvent::LearningRateChanged { step, lr } => self.lr_marks.push((step as f64, lr)),
            TrainEvent::Epoch {
                epoch,
                val_loss,
                samples_per_sec,
                activations,
                vae,
                ..
            } => {
                self.epoch = epoch;
                self.samples_per_sec = samples_per_sec;
                self.step = self.step.max(epoch * self.steps_per_epoch);
                self.val
                    .push([(epoch * self.steps_per_epoch) as f64, val_loss]);
                if let Some(stats) = activations {
                    self.activations = Some((epoch, *stats));
                }
                if let Some(v) = vae {
                    self.vae_epoch = Some((epoch, v));
                }
            }
            TrainEvent::Evaluating => self.status = RunStatus::Evaluating,
            TrainEvent::Snapshot { snapshot, kept } => {
                if kept {
                    replay::keep(&mut self.replay, snapshot.clone());
                }
                let version = self.live.as_ref().map_or(0, |(v, _)| v + 1);
                self.live = Some((version, snapshot));
            }
        }
    }

    pub fn push_loss(&mut self, step: f64, loss: f64) {
        if !loss.is_finite() {
            return;
        }
        self.steps.push([step, loss]);
        // bias-corrected EMA: tracks from the first step instead of lagging
        self.ema = 0.98 * self.ema + 0.02 * loss;
        self.ema_n += 1;
        self.smoothed
            .push([step, self.ema / (1.0 - 0.98f64.powi(self.ema_n))]);
    }

    /// Fraction of the current epoch done.
    pub fn epoch_fraction(&self) -> f32 {
        if self.steps_per_epoch == 0 {
            return 0.0;
        }
        let in_epoch = self.step.saturating_sub(self.epoch * self.steps_per_epoch);
        (in_epoch as f32 / self.steps_per_epoch as f32).clamp(0.0, 1.0)
    }

    pub fn run_fraction(&self) -> f32 {
        if self.total_steps == 0 {
            return 0.0;
        }
        (self.step as f32 / self.total_steps as f32).clamp(0.0, 1.0)
    }

    /// Seconds left at the current speed.
    pub fn eta_secs(&self) -> Option<f64> {
        (self.samples_per_sec > 0.0).then(|| {
            let left = self.total_steps.saturating_sub(self.step) * self.config.train.batch_size;
            left as f64 / self.samples_per_sec
        })
    }
}

pub use crate::analysis::LibraryEntry;

/// A message to the user.
#[derive(Clone, Debug)]
pub struct Message {
    pub text: String,
    pub at: std::time::Instant,
}

/// How long the Train view keeps showing a message.
pub const MESSAGE_SECS: u64 = 20;

impl AppState {
    /// The messages of the last [`MESSAGE_SECS`] seconds, newest first.
    pub fn recent_messages(&self, now: std::time::Instant) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .rev()
            .take_while(move |m| now.duration_since(m.at).as_secs() < MESSAGE_SECS)
            .map(|m| m.text.as_str())
    }
}

/// Persisted settings (eframe storage).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub view: View,
    pub dataset: DatasetKind,
    pub show_debug: bool,
    pub form: TrainForm,
    pub log_scale: bool,
    pub auto_first_model: bool,
    #[serde(default)]
    pub theme: Theme,
}

/// The colour theme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Theme {
    #[default]
    System,
    Dark,
    Light,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Dark, Theme::Light];
    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "system theme",
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }
}

impl View {
    /// The view after (`step` = 1) or before (-1) this one, wrapping.
    pub fn step(self, step: i32) -> View {
        let i = View::ALL.iter().position(|v| *v == self).unwrap_or(0) as i32;
        let n = View::ALL.len() as i32;
        View::ALL[((i + step).rem_euclid(n)) as usize]
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            view: View::Study,
            dataset: DatasetKind::Mnist,
            show_debug: false,
            form: TrainForm::default(),
            log_scale: true,
            auto_first_model: true,
            theme: Theme::System,
        }
    }
}

/// The editable training form of the Train view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainForm {
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainParams,
    /// Hidden sizes as typed (encoder; the last is the code).
    pub encoder_text: String,
    pub decoder_text: String,
}

impl Default for TrainForm {
    fn default() -> Self {
        TrainForm::from_preset("shallow-128")
    }
}

impl TrainForm {
    pub fn from_preset(name: &str) -> TrainForm {
        let model = ModelConfig::preset(name)
            .unwrap_or_else(|_| ModelConfig::preset("deep").expect("deep exists"));
        let (encoder_text, decoder_text) = match &model.arch {
            crate::model::Arch::Dense {
                encoder, decoder, ..
            } => (join(encoder), join(decoder)),
            crate::model::Arch::Vae { encoder, .. } => (join(encoder), String::new()),
            crate::model::Arch::Conv { .. } => (String::new(), String::new()),
        };
        TrainForm {
            preset: model.preset.clone(),
            model,
            train: TrainParams::default(),
            encoder_text,
            decoder_text,
        }
    }

    /// The run config the form describes, or why it is not valid.
    pub fn to_run(&self, dataset: DatasetKind) -> Result<RunConfig, String> {
        let mut model = self.model.clone();
        if let crate::model::Arch::Dense {
            encoder, decoder, ..
        } = &mut model.arch
        {
            *encoder =
                parse_sizes(&self.encoder_text).map_err(|e| format!("encoder sizes: {e}"))?;
            if encoder.is_empty() {
                return Err("encoder sizes: give at least one size (the code)".into());
            }
            *decoder =
                parse_sizes(&self.decoder_text).map_err(|e| format!("decoder sizes: {e}"))?;
        }
        if let crate::model::Arch::Vae {
            encoder, latent, ..
        } = &mut model.arch
        {
            *encoder =
                parse_sizes(&self.encoder_text).map_err(|e| format!("encoder sizes: {e}"))?;
            if encoder.is_empty() {
                return Err("encoder sizes: give at least one hidden size".into());
            }
            // a VAE of another code size is another preset (the library keeps
            // the newest model of each preset name)
            model.preset = format!("vae-{latent}");
        }
        if self.train.epochs == 0 {
            return Err("epochs must be at least 1".into());
        }
        if self.train.batch_size == 0 {
            return Err("batch must be at least 1".into());
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            return Err("the learning rate must be positive".into());
        }
        Ok(RunConfig {
            model,
            train: self.train.clone(),
            dataset,
        })
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "512, 256 30" -> [512, 256, 30]
pub fn parse_sizes(s: &str) -> Result<Vec<usize>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| match t.parse::<usize>() {
            Ok(n) if (1..=8192).contains(&n) => Ok(n),
            _ => Err(format!("{t:?} is not a size in 1..=8192")),
        })
        .collect()
}

/// The whole app state.
#[derive(Default)]
pub struct AppState {
    pub settings: Settings,
    pub data: DataStatus,
    pub data_dir: PathBuf,
    pub data_source: Option<DataDirSource>,
    pub models_dir: PathBuf,
    pub runs: Vec<Run>,
    pub queue: VecDeque<u64>,
    pub active: Option<u64>,
    pub next_id: u64,
    pub library: Vec<LibraryEntry>,
    pub library_errors: Vec<String>,
    /// What the user was told, with when (newest last).
    pub messages: Vec<Message>,
    pub paused: bool,
    /// The other data set's download (Noise & OOD asked for it).
    pub other_download: Option<OtherDownload>,
    /// Counts the other data set's arrivals, so views load it again.
    pub other_data_version: u64,
}

/// A download of the data set that is not the current one.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherDownload {
    pub kind: DatasetKind,
    pub message: String,
    pub fraction: Option<f32>,
    /// Why it stopped, once it has.
    pub error: Option<String>,
}

impl AppState {
    pub fn run(&self, id: u64) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }

    fn run_mut(&mut self, id: u64) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| r.id == id)
    }

    pub fn active_run(&self) -> Option<&Run> {
        self.active.and_then(|id| self.run(id))
    }

    pub fn notify(&mut self, msg: impl Into<String>) {
        self.messages.push(Message {
            text: msg.into(),
            at: std::time::Instant::now(),
        });
        if self.messages.len() > 50 {
            self.messages.remove(0);
        }
    }

    /// Add a run to the queue; returns its id.
    pub fn enqueue(&mut self, config: RunConfig) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.runs.push(Run::new(id, config));
        self.queue.push_back(id);
        id
    }

    /// Every preset of the study, with the form's schedule.
    pub fn enqueue_study(&mut self) -> Vec<u64> {
        let train = self.settings.form.train.clone();
        crate::analysis::study::presets()
            .into_iter()
            .filter_map(|name| ModelConfig::preset(name).ok())
            .map(|model| {
                self.enqueue(RunConfig {
                    model,
                    train: train.clone(),
                    dataset: self.settings.dataset,
                })
            })
            .collect()
    }

    pub fn move_queued(&mut self, id: u64, up: bool) {
        if let Some(i) = self.queue.iter().position(|&q| q == id) {
            let j = if up {
                i.checked_sub(1)
            } else {
                Some(i + 1).filter(|&j| j < self.queue.len())
            };
            if let Some(j) = j {
                self.queue.swap(i, j);
            }
        }
    }

    pub fn cancel_queued(&mut self, id: u64) {
        self.queue.retain(|&q| q != id);
        self.runs
            .retain(|r| r.id != id || r.status != RunStatus::Queued);
    }

    /// The next queued run to start, when nothing is running.
    pub fn take_next(&mut self) -> Option<RunConfig> {
        if self.active.is_some() {
            return None;
        }
        let id = self.queue.pop_front()?;
        let run = self.run_mut(id)?;
        run.status = RunStatus::Running;
        let cfg = run.config.clone();
        self.active = Some(id);
        self.paused = false;
        Some(cfg)
    }

    /// Apply one worker event.
    pub fn apply(&mut self, event: Event) {
        let id = event.id();
        let Some(run) = self.run_mut(id) else { return };
        match event {
            Event::Train { event, earlier, .. } => run.apply(event, earlier),
            Event::Finished { result, .. } => {
                run.status = match &result.manifest.status {
                    crate::train::Status::Completed => RunStatus::Completed,
                    crate::train::Status::Stopped => RunStatus::Stopped,
                    s @ (crate::train::Status::Diverged { .. }
                    | crate::train::Status::Collapsed { .. }) => RunStatus::Diverged(s.label()),
                };
                run.checkpoint = result.checkpoint.clone();
                run.save_error = result.save_error.clone();
                run.weights = Some(Arc::new(result.weights.clone()));
                run.test_mse = result
                    .manifest
                    .test_metrics
                    .as_ref()
                    .map(|m| m.mse_per_pixel);
                let label = run.label();
                let status = run.status.label();
                if let Some(e) = &result.save_error {
                    let msg = format!("{label}: could not save ({e}); the model is kept in memory — use Save as… in the Library");
                    self.notify(msg);
                } else {
                    self.notify(format!("{label}: {status}"));
                }
                if let Some(path) = &result.checkpoint {
                    self.library.retain(|e| &e.path != path);
                    let entry = LibraryEntry::new(path.clone(), result.manifest.clone());
                    if let Some(run) = self.run_mut(id) {
                        if !entry.replay.is_empty() {
                            // its replay is on disk now: served from there
                            run.replay.clear();
                        }
                        run.live = None;
                    }
                    self.library.push(entry);
                    self.sort_library();
                }
                self.finish(id);
            }
            Event::Failed { error, .. } => {
                run.status = RunStatus::Failed(error.clone());
                let label = run.label();
                self.notify(format!("{label} failed: {error}"));
                self.finish(id);
            }
        }
    }

    fn finish(&mut self, id: u64) {
        if self.active == Some(id) {
            self.active = None;
            self.paused = false;
        }
    }

    /// The test metrics of the newest model of `preset`, where there is one.
    pub fn test_metrics(&self, preset: &str) -> Option<crate::train::Metrics> {
        self.models()
            .into_iter()
            .find(|e| e.manifest.run.model.preset == preset)
            .and_then(|e| e.manifest.test_metrics.clone())
    }

    /// The newest model of each preset (and data set), in the study's
    /// order, then any others by name: what the explorer views show.
    pub fn models(&self) -> Vec<&LibraryEntry> {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<&LibraryEntry> = self
            .library
            .iter()
            .filter(|e| seen.insert(e.label()))
            .collect();
        let order = crate::analysis::study::presets();
        let rank = |e: &LibraryEntry| {
            order
                .iter()
                .position(|p| *p == e.manifest.run.model.preset)
                .unwrap_or(order.len())
        };
        out.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.label().cmp(&b.label()))
        });
        out
    }

    /// The models the views show: the library's, then those training now
    /// with their latest weights.
    pub fn view_models(&self) -> Vec<ModelRef> {
        let library = self.models().into_iter().map(ModelRef::of);
        library.chain(self.live_models()).collect()
    }

    /// The model a view chose by `path`, as it is now: a library model, or
    /// a run's model (its latest weights while it trains, then the saved
    /// model). None when it is gone.
    pub fn resolve(&self, path: &Path) -> Option<ModelRef> {
        if let Some(e) = self.library.iter().find(|e| e.path == path) {
            return Some(ModelRef::of(e));
        }
        let run = self.runs.iter().find(|r| r.serves(path))?;
        run.live_ref().or_else(|| self.saved(run).map(ModelRef::of))
    }

    /// The library's entry of the file `run` was saved to.
    pub fn saved(&self, run: &Run) -> Option<&LibraryEntry> {
        let path = run.checkpoint.as_ref()?;
        self.library.iter().find(|e| &e.path == path)
    }

    /// A run's replay (see [`Self::replay_of`]): in memory while it trains
    /// (or when it was not saved), else its saved model's, from the file.
    pub fn run_replay(&self, run: &Run) -> Option<(ModelRef, Vec<Moment>)> {
        if !run.replay.is_empty() {
            return Some((run.replay_ref(), run.moments()));
        }
        let entry = self.saved(run)?;
        (!entry.replay.is_empty()).then(|| (ModelRef::of(entry), entry.replay.clone()))
    }

    /// The models being trained, with their latest weights.
    pub fn live_models(&self) -> Vec<ModelRef> {
        self.runs.iter().filter_map(Run::live_ref).collect()
    }

    /// The replay of a model the views show, as a model whose
    /// [`ModelRef::at`] gives each snapshot, and the snapshots' moments:
    /// a library model's stored replay, or a run's in memory (a live
    /// model's, or one not saved).
    pub fn replay_of(&self, model: &ModelRef) -> Option<(ModelRef, Vec<Moment>)> {
        if let Some(e) = self.library.iter().find(|e| e.path == model.path) {
            return (!e.replay.is_empty()).then(|| (model.clone(), e.replay.clone()));
        }
        let run = self.runs.iter().find(|r| r.serves(&model.path))?;
        self.run_replay(run)
    }

    /// Every snapshot held in memory, under the path it is served from:
    /// the runs' replays and the live models.
    pub fn snapshot_sources(&self) -> Vec<(PathBuf, ModelConfig, Arc<Snapshot>)> {
        let mut out = Vec::new();
        for run in &self.runs {
            let base = run.replay_ref().path;
            for (k, s) in run.replay.iter().enumerate() {
                out.push((snapshot_path(&base, k), run.config.model.clone(), s.clone()));
            }
            if let (Some(live), Some((_, s))) = (run.live_ref(), &run.live) {
                out.push((live.path, run.config.model.clone(), s.clone()));
            }
        }
        out
    }

    fn sort_library(&mut self) {
        self.library
            .sort_by_key(|e| std::cmp::Reverse(e.manifest.created_unix));
    }

    /// Read every checkpoint of the models folder (manifests only).
    pub fn load_library(&mut self, dir: &Path) {
        self.library.clear();
        self.library_errors.clear();
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in read.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "safetensors") {
                match checkpoint::read_manifest(&path) {
                    Ok(manifest) => self.library.push(LibraryEntry::new(path, manifest)),
                    Err(e) => self.library_errors.push(e.to_string()),
                }
            }
        }
        self.sort_library();
    }

    /// Check a checkpoint (weights against manifest) and copy it into the library folder.
    pub fn import_model(&mut self, from: &Path) -> Result<PathBuf, String> {
        let bytes = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let (_, manifest) = checkpoint::load_bytes(&bytes, from, &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        let name = from
            .file_name()
            .ok_or_else(|| format!("{}: not a file", from.display()))?;
        let to = self.models_dir.join(name);
        if to != from {
            crate::data::registry::write_atomic(&to, &bytes)
                .map_err(|e| format!("{}: {e}", to.display()))?;
            // its training replay comes along when it has one
            let (from_replay, to_replay) = (replay::path_for(from), replay::path_for(&to));
            if let Ok(replay_bytes) = std::fs::read(&from_replay) {
                crate::data::registry::write_atomic(&to_replay, &replay_bytes)
                    .map_err(|e| format!("{}: {e}", to_replay.display()))?;
            } else {
                let _ = std::fs::remove_file(&to_replay);
            }
        }
        self.library.retain(|e| e.path != to);
        self.library.push(LibraryEntry::new(to.clone(), manifest));
        self.sort_library();
        Ok(to)
    }

    /// Delete a model from disk and the library.
    pub fn delete_model(&mut self, path: &Path) -> Result<(), String> {
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = std::fs::remove_file(path.with_extension("json"));
        let _ = std::fs::remove_file(replay::path_for(path));
        self.library.retain(|e| e.path != path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{History, Status};
    use crate::worker::Finished;

    fn cfg() -> RunConfig {
        TrainForm::default().to_run(DatasetKind::Mnist).unwrap()
    }

    #[test]
    fn queue_order_move_cancel() {
        let mut s = AppState::default();
        let a = s.enqueue(cfg());
        let b = s.enqueue(cfg());
        let c = s.enqueue(cfg());
        s.move_queued(c, true);
        assert_eq!(s.queue, [a, c, b]);
        s.move_queued(a, true);
        assert_eq!(s.queue, [a, c, b]);
        s.cancel_queued(c);
        assert_eq!(s.queue, [a, b]);
        assert!(s.run(c).is_none());
        assert_eq!(s.take_next().map(|_| s.active), Some(Some(a)));
        assert!(s.take_next().is_none(), "one run at a time");
    }

    #[test]
    fn study_enqueues_every_preset() {
        let mut s = AppState::default();
        let ids = s.enqueue_study();
        assert_eq!(ids.len(), 17);
        let names: Vec<_> = ids
            .iter()
            .map(|&i| s.run(i).unwrap().config.model.preset.clone())
            .collect();
        assert!(
            names.contains(&"conv-both".to_string()) && names.contains(&"denoise-0.9".to_string())
        );
    }

    #[test]
    fn events_fill_curves_and_failures_show() {
        let mut s = AppState::default();
        let id = s.enqueue(cfg());
        s.take_next();
        s.apply(Event::Train {
            id,
            event: TrainEvent::Started {
                steps_per_epoch: 10,
                total_steps: 20,
                params: 5,
            },
            earlier: vec![],
        });
        for step in 1..=10 {
            s.apply(Event::Train {
                id,
                event: TrainEvent::Step {
                    epoch: 0,
                    step,
                    loss: 1.0 / step as f32,
                    lr: 1e-3,
                    samples_per_sec: 100.0,
                    terms: None,
                },
                earlier: vec![],
            });
        }
        s.apply(Event::Train {
            id,
            event: TrainEvent::Step {
                epoch: 0,
                step: 11,
                loss: f32::NAN,
                lr: 1e-3,
                samples_per_sec: 100.0,
                terms: None,
            },
            earlier: vec![],
        });
        s.apply(Event::Train {
            id,
            event: TrainEvent::Epoch {
                epoch: 1,
                train_loss: 0.3,
                val_loss: 0.2,
                samples_per_sec: 100.0,
                secs: 1.0,
                activations: None,
                vae: None,
            },
            earlier: vec![],
        });
        let r = s.run(id).unwrap();
        assert_eq!(r.steps.len(), 10, "the NaN point is not plotted");
        // the smoothed curve starts at the first loss and stays within the raw range
        assert!((r.smoothed[0][1] - 1.0).abs() < 1e-9);
        assert!(r.smoothed.iter().all(|p| p[1] <= 1.0 && p[1] >= 0.1));
        assert_eq!(r.val, vec![[10.0, 0.2]]);
        assert!(
            (r.run_fraction() - 11.0 / 20.0).abs() < 1e-6,
            "step 11 of 20"
        );
        s.apply(Event::Failed {
            id,
            error: "disk on fire".into(),
        });
        assert_eq!(
            s.run(id).unwrap().status,
            RunStatus::Failed("disk on fire".into())
        );
        assert!(s.active.is_none());
        assert!(s.messages.last().unwrap().text.contains("disk on fire"));
        // shown while recent, gone from the Train view after a while
        let now = std::time::Instant::now();
        assert_eq!(s.recent_messages(now).count(), 1);
        let later = now + std::time::Duration::from_secs(MESSAGE_SECS + 1);
        assert_eq!(s.recent_messages(later).count(), 0);
    }

    #[test]
    fn batched_steps_fill_every_point() {
        let mut s = AppState::default();
        let id = s.enqueue(cfg());
        s.take_next();
        s.apply(Event::Train {
            id,
            event: TrainEvent::Step {
                epoch: 0,
                step: 4,
                loss: 0.4,
                lr: 1e-3,
                samples_per_sec: 1.0,
                terms: None,
            },
            earlier: vec![(1, 1.0), (2, 0.8), (3, f32::NAN)],
        });
        let r = s.run(id).unwrap();
        let want = [[1.0, 1.0], [2.0, 0.8f32 as f64], [4.0, 0.4f32 as f64]];
        assert_eq!(r.steps, want, "every finite loss of the batch, in order");
        assert_eq!(r.step, 4);
    }

    #[test]
    fn diverged_run_says_why() {
        let mut s = AppState::default();
        let id = s.enqueue(cfg());
        s.take_next();
        let manifest = crate::model::checkpoint::Manifest::new(cfg(), 1);
        s.apply(Event::Finished {
            id,
            result: Box::new(Finished {
                manifest: crate::model::checkpoint::Manifest {
                    status: Status::Diverged {
                        epoch: 0,
                        step: 3,
                        loss: f32::NAN,
                    },
                    ..manifest
                },
                checkpoint: None,
                save_error: None,
                weights: vec![],
            }),
        });
        let label = s.run(id).unwrap().status.label();
        assert!(
            label.contains("diverged at step 3") && label.contains("lower learning rate"),
            "{label}"
        );
        let _ = History::default();
    }

    #[test]
    fn form_validates_sizes() {
        let mut f = TrainForm::from_preset("deep");
        assert_eq!(f.encoder_text, "512, 256, 128, 30");
        f.encoder_text = "100 x".into();
        assert!(f.to_run(DatasetKind::Mnist).unwrap_err().contains("\"x\""));
        f.encoder_text = "100, 20".into();
        let r = f.to_run(DatasetKind::Mnist).unwrap();
        assert_eq!(r.model.bottleneck(), 20);
    }
}
