//! The desktop app (eframe/egui): a side panel of views, a top bar with the
//! data set picker, a status bar, and the views. Logic (draining the worker
//! and loader, applying actions) is kept apart from drawing.

pub mod action;
pub mod compare_view;
pub mod denoise_view;
pub mod draw_view;
pub mod export;
pub mod filters_view;
pub mod images;
pub mod latent_map;
pub mod latent_view;
pub mod library_view;
pub mod loader;
mod logic;
pub mod ood_view;
pub mod pca_view;
pub mod replay_bar;
pub mod replay_panel;
pub mod state;
pub mod study_view;
pub mod train_view;
mod ui;
pub mod vae_panel;
pub mod view;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data::registry;
use crate::model::{ModelConfig, RunConfig};
use crate::worker::WorkerHandle;
use loader::Loader;
use state::{AppState, DataStatus, Settings};

/// The study report being written on a thread of its own.
pub struct ReportTask {
    rx: crossbeam_channel::Receiver<Result<String, String>>,
    pub out: PathBuf,
    /// The latest progress line.
    pub last: String,
    pub finished: Option<Result<(), String>>,
}

pub struct AelabApp {
    pub state: AppState,
    worker: WorkerHandle,
    loader: Option<Loader>,
    /// The other data set's download, when asked for.
    other_loader: Option<Loader>,
    pub views: Views,
    /// The test set's map in a code space (the Latent and Draw views').
    pub latent_map: latent_map::LatentMap,
    /// What the views asked for this frame.
    actions: action::Actions,
    /// Inference and analysis for the views, off the UI thread.
    pub compute: crate::analysis::Compute,
    pub report: Option<ReportTask>,
    pub show_help: bool,
    frame_ms: VecDeque<f32>,
    last_frame: Option<Instant>,
    /// CPU time spent building each frame (ms), for the debug overlay.
    draw_ms: VecDeque<f32>,
    wake: Arc<dyn Fn() + Send + Sync>,
    started: Instant,
    frame_log: Option<Instant>,
    /// Where the trainer trains (`--device`).
    device: candle_core::Device,
}

/// The views, each its own state.
#[derive(Default)]
pub struct Views {
    pub study_view: study_view::StudyView,
    pub train_view: train_view::TrainView,
    pub draw_view: draw_view::DrawView,
    pub pca_view: pca_view::PcaView,
    pub compare_view: compare_view::CompareView,
    pub denoise_view: denoise_view::DenoiseView,
    pub filters_view: filters_view::FiltersView,
    pub ood_view: ood_view::OodView,
    pub latent_view: latent_view::LatentView,
    pub library_view: library_view::LibraryView,
}

impl Views {
    /// Every view, in the side panel's order.
    pub fn all(&mut self) -> [&mut dyn view::AppView; 10] {
        [
            &mut self.study_view,
            &mut self.train_view,
            &mut self.draw_view,
            &mut self.pca_view,
            &mut self.compare_view,
            &mut self.denoise_view,
            &mut self.filters_view,
            &mut self.ood_view,
            &mut self.latent_view,
            &mut self.library_view,
        ]
    }
}

/// How the app was started.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub data_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    /// Download missing data on start (off in tests).
    pub download: bool,
    /// Train a quick model when the library is empty.
    pub auto_first_model: bool,
    /// Queue a run of this preset at launch.
    pub start: Option<String>,
    /// Log frame times to stderr every few seconds (AELAB_FRAME_LOG=1).
    pub frame_log: bool,
    /// `--device`: where models train (None: the CPU).
    pub device: Option<String>,
}

impl AelabApp {
    pub fn new(ctx: &egui::Context, settings: Settings, launch: Launch) -> AelabApp {
        let wake: Arc<dyn Fn() + Send + Sync> = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint())
        };
        let (device, device_error) = match crate::device(launch.device.as_deref().unwrap_or("cpu"))
        {
            Ok(d) => (d, None),
            Err(e) => (
                candle_core::Device::Cpu,
                Some(format!("{e:#}; training on the CPU")),
            ),
        };
        let worker =
            WorkerHandle::spawn(wake.clone(), device.clone()).expect("spawning the trainer thread");
        let (data_dir, source) = registry::resolve_data_dir(launch.data_dir.as_deref());
        let models_dir = crate::models_dir(launch.models_dir.as_deref());
        let mut state = AppState {
            settings,
            data_dir,
            data_source: Some(source),
            models_dir,
            ..AppState::default()
        };
        state.settings.auto_first_model &= launch.auto_first_model;
        state.load_library(&state.models_dir.clone());
        if let Some(name) = &launch.start {
            match ModelConfig::preset(name) {
                Ok(model) => {
                    let train = state.settings.form.train.clone();
                    let dataset = state.settings.dataset;
                    state.enqueue(RunConfig {
                        model,
                        train,
                        dataset,
                    });
                    state.settings.auto_first_model = false;
                }
                Err(e) => state.notify(e),
            }
        }
        let mut app = AelabApp {
            state,
            worker,
            loader: None,
            other_loader: None,
            views: Views::default(),
            latent_map: latent_map::LatentMap::default(),
            actions: action::Actions::default(),
            compute: crate::analysis::Compute::spawn(wake.clone())
                .expect("spawning the compute thread"),
            report: None,
            show_help: false,
            frame_ms: VecDeque::new(),
            last_frame: None,
            draw_ms: VecDeque::new(),
            wake,
            started: Instant::now(),
            frame_log: launch.frame_log.then(Instant::now),
            device,
        };
        if let Some(e) = device_error {
            app.state.notify(e);
        }
        app.load_data(launch.download);
        app
    }
}

impl eframe::App for AelabApp {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        AelabApp::logic(self);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.record_frame_time();
        let t = Instant::now();
        self.draw(ui);
        self.draw_ms.push_back(t.elapsed().as_secs_f32() * 1000.0);
        if self.draw_ms.len() > 240 {
            self.draw_ms.pop_front();
        }
        self.log_frames();
        // The worker and the loader wake the UI when they have news; this
        // only keeps the status line fresh while nothing arrives.
        if self.state.active.is_some() || matches!(self.state.data, DataStatus::Loading { .. }) {
            ui.ctx().request_repaint_after(Duration::from_millis(500));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state.settings);
    }
}

/// Open the window.
pub fn run_native(common: &crate::cli::Common) -> anyhow::Result<()> {
    // Leave a core to the UI: the trainer's thread pools use one core fewer
    // than the machine has (unless RAYON_NUM_THREADS says otherwise).
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    // (no other thread has started yet)
    crate::set_up_threads(
        common
            .ways
            .or_else(crate::env::rayon_threads)
            .unwrap_or(cores.saturating_sub(1).max(1)),
    );
    let launch = Launch {
        data_dir: common.data_dir.clone(),
        models_dir: common.models_dir.clone(),
        download: !crate::env::offline(),
        auto_first_model: true,
        start: common.start.clone(),
        frame_log: crate::env::frame_log(),
        device: Some(common.device.clone()),
    };
    let window = crate::env::window();
    let size = window.unwrap_or([1280.0, 800.0]);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("aelab — autoencoder workbench")
            .with_inner_size(size)
            .with_min_inner_size([900.0, 600.0])
            .with_icon(
                eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon.png"))
                    .unwrap_or_default(),
            ),
        persist_window: window.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "aelab",
        options,
        Box::new(move |cc| {
            let settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
            Ok(Box::new(AelabApp::new(&cc.egui_ctx, settings, launch)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window ({e}); is a display available? The headless commands (aelab --help) work without one"))
}
