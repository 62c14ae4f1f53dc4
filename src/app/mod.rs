//! The desktop app (eframe/egui): a side panel of views, a top bar with the
//! data set picker, a status bar, and the views. Logic (draining the worker
//! and loader, applying actions) is kept apart from drawing.

pub mod compare_view;
pub mod denoise_view;
pub mod draw_view;
pub mod export;
pub mod filters_view;
pub mod images;
pub mod latent_view;
pub mod library_view;
pub mod loader;
pub mod ood_view;
pub mod pca_view;
pub mod state;
pub mod study_view;
pub mod train_view;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data::registry;
use crate::model::{ModelConfig, RunConfig, TrainParams};
use crate::worker::{Job, WorkerHandle};
use loader::{LoadEvent, Loader};
use state::{Action, AppState, DataStatus, Settings, View};

/// The study report being written on a thread of its own.
pub struct ReportTask {
    rx: crossbeam_channel::Receiver<Result<String, String>>,
    pub out: PathBuf,
    /// The latest progress line.
    pub last: String,
    pub finished: Option<Result<(), String>>,
}

/// Time the UI thread may spend draining events per frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);

pub struct AelabApp {
    pub state: AppState,
    worker: WorkerHandle,
    loader: Option<Loader>,
    pub train_view: train_view::TrainView,
    pub library_view: library_view::LibraryView,
    pub pca_view: pca_view::PcaView,
    pub filters_view: filters_view::FiltersView,
    pub compare_view: compare_view::CompareView,
    pub denoise_view: denoise_view::DenoiseView,
    pub ood_view: ood_view::OodView,
    pub draw_view: draw_view::DrawView,
    pub latent_view: latent_view::LatentView,
    pub study_view: study_view::StudyView,
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
            train_view: train_view::TrainView::default(),
            library_view: library_view::LibraryView::default(),
            pca_view: pca_view::PcaView::default(),
            filters_view: filters_view::FiltersView::default(),
            compare_view: compare_view::CompareView::default(),
            denoise_view: denoise_view::DenoiseView::default(),
            ood_view: ood_view::OodView::default(),
            draw_view: draw_view::DrawView::default(),
            latent_view: latent_view::LatentView::default(),
            study_view: study_view::StudyView::default(),
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

    /// (Re)load the selected data set in the background.
    pub fn load_data(&mut self, download: bool) {
        let kind = self.state.settings.dataset;
        self.state.data = DataStatus::Loading {
            message: format!("loading {}", kind.display_name()),
            fraction: None,
        };
        self.loader = Some(Loader::spawn(
            self.state.data_dir.clone(),
            kind,
            download,
            self.wake.clone(),
        ));
    }

    /// Everything but drawing: drain the loader and the worker under a time
    /// budget, start queued runs.
    pub fn logic(&mut self) {
        let start = Instant::now();
        if let Some(loader) = &self.loader {
            while let Ok(ev) = loader.events.try_recv() {
                match ev {
                    LoadEvent::Progress { message, fraction } => {
                        // PCA progress after the data arrived is shown by Ready { pca: None }
                        if !matches!(self.state.data, DataStatus::Ready { .. }) {
                            self.state.data = DataStatus::Loading { message, fraction };
                        }
                    }
                    LoadEvent::Data(d) => {
                        log::info!(
                            "data ready {:.2} s after start",
                            self.started.elapsed().as_secs_f64()
                        );
                        self.state.data = DataStatus::Ready { data: d, pca: None }
                    }
                    LoadEvent::Pca(p) => {
                        if let DataStatus::Ready { pca, .. } = &mut self.state.data {
                            *pca = Some(p);
                        }
                    }
                    LoadEvent::Missing(m) => self.state.data = DataStatus::Missing { message: m },
                    LoadEvent::Failed(m) => self.state.data = DataStatus::Failed { message: m },
                }
            }
        }
        while start.elapsed() < DRAIN_BUDGET {
            match self.worker.events.try_recv() {
                Ok(ev) => self.state.apply(ev),
                Err(_) => break,
            }
        }
        if let Some(r) = &mut self.report {
            while let Ok(msg) = r.rx.try_recv() {
                match msg {
                    Ok(line) => r.last = line,
                    Err(done) => {
                        let result = if done.is_empty() { Ok(()) } else { Err(done) };
                        let note = match &result {
                            Ok(()) => {
                                format!("report written to {}", r.out.join("REPORT.md").display())
                            }
                            Err(e) => format!("the report failed: {e}"),
                        };
                        r.finished = Some(result);
                        self.state.notify(note);
                        let dir = self.state.models_dir.clone();
                        self.state.load_library(&dir);
                    }
                }
            }
        }
        for note in export::take_notes() {
            self.state.notify(note);
        }
        self.maybe_first_model();
        self.start_next();
    }

    fn maybe_first_model(&mut self) {
        if !self.state.settings.auto_first_model
            || !matches!(self.state.data, DataStatus::Ready { .. })
        {
            return;
        }
        self.state.settings.auto_first_model = false;
        if self.state.library.is_empty() && self.state.runs.is_empty() {
            let model = ModelConfig::preset("shallow-128").expect("preset exists");
            self.state.enqueue(RunConfig {
                model,
                train: TrainParams {
                    epochs: 1,
                    ..TrainParams::default()
                },
                dataset: self.state.settings.dataset,
            });
            self.state.notify("The model library is empty: training a quick first model (shallow-128, 1 epoch) so every view has something to show.");
        }
    }

    fn start_next(&mut self) {
        let DataStatus::Ready { data, .. } = &self.state.data else {
            return;
        };
        let data = data.clone();
        let mismatch = self
            .state
            .queue
            .front()
            .and_then(|&id| self.state.run(id))
            .is_some_and(|r| r.config.dataset != data.kind);
        if mismatch {
            return; // waits until its data set is loaded
        }
        let id = self.state.queue.front().copied();
        if let (Some(id), Some(cfg)) = (id, self.state.take_next()) {
            let job = Job {
                id,
                run: cfg,
                save_dir: Some(self.state.models_dir.clone()),
            };
            if let Err(e) = self.worker.start(job, data) {
                self.state.notify(e);
            }
        }
    }

    /// Apply what a view asked for.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Enqueue(cfg) => {
                self.state.enqueue(cfg);
            }
            Action::EnqueueStudy => {
                let n = self.state.enqueue_study().len();
                self.state
                    .notify(format!("queued the whole study: {n} runs"));
            }
            Action::Pause => {
                self.worker.pause();
                self.state.paused = true;
            }
            Action::Resume => {
                self.worker.resume();
                self.state.paused = false;
            }
            Action::Stop => self.worker.stop(),
            Action::SetLearningRate(lr) => self.worker.set_learning_rate(lr),
            Action::MoveQueued { id, up } => self.state.move_queued(id, up),
            Action::CancelQueued(id) => self.state.cancel_queued(id),
            Action::DeleteModel(p) => {
                self.compute.models.forget(&p);
                if let Err(e) = self.state.delete_model(&p) {
                    self.state.notify(e);
                }
            }
            Action::ExportModel { from, to } => {
                let res = std::fs::read(&from).and_then(|b| registry::write_atomic(&to, &b));
                match res {
                    Ok(()) => self.state.notify(format!("exported to {}", to.display())),
                    Err(e) => self
                        .state
                        .notify(format!("export to {} failed: {e}", to.display())),
                }
            }
            Action::SaveRunAs { run, to } => {
                let bytes = self.state.run(run).and_then(|r| r.weights.clone());
                match bytes {
                    Some(b) => match registry::write_atomic(&to, &b) {
                        Ok(()) => self.state.notify(format!("saved to {}", to.display())),
                        Err(e) => self.state.notify(format!(
                            "saving to {} failed: {e}; the model is still in memory",
                            to.display()
                        )),
                    },
                    None => self.state.notify("that run has no weights to save"),
                }
            }
            Action::ImportModel(from) => match self.state.import_model(&from) {
                Ok(to) => self.state.notify(format!("imported {}", to.display())),
                Err(e) => self.state.notify(e),
            },
            Action::ShowView(v) => self.state.settings.view = v,
            Action::RefreshLibrary => {
                let dir = self.state.models_dir.clone();
                self.state.load_library(&dir);
            }
            Action::Download => self.load_data(true),
            Action::CancelDownload => {
                if let Some(l) = &self.loader {
                    l.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Action::WriteReport { out, quick } => self.write_report(out, quick),
        }
    }

    /// Start `aelab report` into `out` on a thread of its own.
    pub fn write_report(&mut self, out: PathBuf, quick: bool) {
        if self.report.as_ref().is_some_and(|r| r.finished.is_none()) {
            self.state.notify("a report is already being written");
            return;
        }
        let DataStatus::Ready { data, .. } = &self.state.data else {
            self.state
                .notify("the report needs the data set: wait until it is loaded");
            return;
        };
        let data = data.clone();
        let (tx, rx) = crossbeam_channel::unbounded();
        let opts = crate::report::Options {
            out: out.clone(),
            dataset: data.kind,
            epochs: 10,
            quick,
            models_dir: self.state.models_dir.clone(),
            // one at a time: a core stays with the window
            jobs: 1,
            device: self.device.clone(),
        };
        let root = self.state.data_dir.clone();
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("aelab-report".into())
            .spawn(move || {
                let other_kind = match data.kind {
                    crate::data::DatasetKind::Mnist => crate::data::DatasetKind::FashionMnist,
                    crate::data::DatasetKind::FashionMnist => crate::data::DatasetKind::Mnist,
                };
                let other = crate::data::Dataset::load(&root, other_kind).ok();
                let mut progress = |line: &str| {
                    let _ = tx.send(Ok(line.to_string()));
                    wake();
                };
                let result = crate::report::run(&opts, &data, other.as_ref(), &mut progress);
                let _ = tx.send(Err(match result {
                    Ok(_) => String::new(),
                    Err(e) => format!("{e:#}"),
                }));
                wake();
            });
        match spawned {
            Ok(_) => {
                self.report = Some(ReportTask {
                    rx,
                    out,
                    last: "starting".into(),
                    finished: None,
                })
            }
            Err(e) => self.state.notify(format!("cannot start the report: {e}")),
        }
    }

    fn record_frame_time(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_frame {
            self.frame_ms
                .push_back(now.duration_since(last).as_secs_f32() * 1000.0);
            if self.frame_ms.len() > 240 {
                self.frame_ms.pop_front();
            }
        }
        self.last_frame = Some(now);
    }

    /// Median and worst frame interval (ms) over the last frames.
    pub fn frame_stats(&self) -> Option<(f32, f32)> {
        median_worst(&self.frame_ms)
    }

    /// Median and worst CPU time to build a frame (ms) over the last frames.
    pub fn draw_stats(&self) -> Option<(f32, f32)> {
        median_worst(&self.draw_ms)
    }

    fn log_frames(&mut self) {
        let Some(since) = self.frame_log else { return };
        if since.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.frame_log = Some(Instant::now());
        let run = self
            .state
            .active_run()
            .map(|r| format!("{} {:.0} samples/s", r.label(), r.samples_per_sec))
            .unwrap_or_default();
        if let (Some((fm, fw)), Some((dm, dw))) = (self.frame_stats(), self.draw_stats()) {
            eprintln!("frames: build median {dm:.2} ms worst {dw:.2} ms; interval median {fm:.1} ms worst {fw:.1} ms; {run}");
        }
        self.frame_ms.clear();
        self.draw_ms.clear();
    }

    /// Keyboard shortcuts (listed in the help window).
    fn shortcuts(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        use egui::{Key, Modifiers};
        let shift_cmd = Modifiers::COMMAND | Modifiers::SHIFT;
        let pressed = |m: Modifiers, k: Key| ctx.input_mut(|i| i.consume_key(m, k));
        if pressed(shift_cmd, Key::Enter) {
            actions.push(Action::Stop);
        } else if pressed(Modifiers::COMMAND, Key::Enter) {
            match self.state.settings.form.to_run(self.state.settings.dataset) {
                Ok(cfg) => actions.push(Action::Enqueue(cfg)),
                Err(e) => self.state.notify(e),
            }
        }
        if pressed(Modifiers::COMMAND, Key::P) && self.state.active.is_some() {
            actions.push(if self.state.paused {
                Action::Resume
            } else {
                Action::Pause
            });
        }
        if pressed(Modifiers::COMMAND, Key::PageDown) {
            self.state.settings.view = self.state.settings.view.step(1);
        }
        if pressed(Modifiers::COMMAND, Key::PageUp) {
            self.state.settings.view = self.state.settings.view.step(-1);
        }
        if pressed(Modifiers::NONE, Key::F1) {
            self.show_help = !self.show_help;
        }
    }

    /// Versions, device, folders and recent messages, for bug reports.
    pub fn diagnostics(&self) -> String {
        let s = &self.state;
        let mut out = format!(
            "aelab {} ({} {}), candle 0.11, egui 0.37\ndevice: {}, training threads: {}, cores: {}\ndata folder: {} ({})\nmodels folder: {}\nlog file: {}\nlibrary: {} models\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            crate::device_label(&self.device),
            crate::train_ways(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            s.data_dir.display(),
            s.data_source.map(|d| d.to_string()).unwrap_or_default(),
            s.models_dir.display(),
            crate::log_file_path().display(),
            s.library.len(),
        );
        out.push_str("recent messages:\n");
        for m in s.messages.iter().rev().take(10) {
            out.push_str(&format!("  {m}\n"));
        }
        for e in &s.library_errors {
            out.push_str(&format!("  library: {e}\n"));
        }
        out
    }

    fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = self.show_help;
        egui::Window::new("Help")
            .open(&mut open)
            .default_pos([400.0, 120.0])
            .show(ctx, |ui| {
                ui.label(egui::RichText::new("Keyboard shortcuts").strong());
                egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                    for (keys, what) in [
                        ("Ctrl+Enter", "start training the Train view's settings"),
                        ("Ctrl+Shift+Enter", "stop the running model"),
                        ("Ctrl+P", "pause / resume training"),
                        ("Ctrl+PageDown / Ctrl+PageUp", "next / previous view"),
                        ("Ctrl+Z", "Draw: undo the last stroke"),
                        ("Delete", "Draw: clear the canvas"),
                        ("F1", "this window"),
                    ] {
                        ui.label(egui::RichText::new(keys).monospace());
                        ui.label(what);
                        ui.end_row();
                    }
                });
                ui.separator();
                ui.label("Every figure has PNG and CSV buttons. Hover any control to learn what it does.");
                if ui
                    .button("Copy diagnostics")
                    .on_hover_text("Versions, device, folders and recent messages, for a bug report")
                    .clicked()
                {
                    ui.ctx().copy_text(self.diagnostics());
                    self.state.notify("diagnostics copied to the clipboard");
                }
            });
        self.show_help = open && self.show_help;
    }

    /// Draw the whole window.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        let ctx = ui.ctx().clone();
        self.shortcuts(&ctx, &mut actions);
        let theme = match self.state.settings.theme {
            state::Theme::System => egui::ThemePreference::System,
            state::Theme::Dark => egui::ThemePreference::Dark,
            state::Theme::Light => egui::ThemePreference::Light,
        };
        if ctx.options(|o| o.theme_preference) != theme {
            ctx.set_theme(theme);
        }
        if self.show_help {
            self.help_window(&ctx);
        }
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui, &mut actions));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("views")
            .resizable(false)
            .default_size(120.0)
            .show(ui, |ui| {
                ui.add_space(6.0);
                for v in View::ALL {
                    ui.selectable_value(&mut self.state.settings.view, v, v.label())
                        .on_hover_text(v.explain());
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(msg) = self.data_problem() {
                self.data_panel(ui, &msg, &mut actions);
                ui.separator();
            }
            if let DataStatus::Loading {
                message,
                fraction: Some(f),
            } = &self.state.data
            {
                ui.horizontal(|ui| {
                    ui.add(
                        egui::ProgressBar::new(*f)
                            .text(message.as_str())
                            .desired_width(420.0),
                    );
                    if ui
                        .button("Cancel")
                        .on_hover_text("Stop the download; Download now starts it again")
                        .clicked()
                    {
                        actions.push(Action::CancelDownload);
                    }
                });
                ui.separator();
            }
            match self.state.settings.view {
                View::Train => self.train_view.ui(ui, &mut self.state, &mut actions),
                View::Study => self
                    .study_view
                    .ui(ui, &self.state, &self.compute, &mut actions),
                View::Pca => self.pca_view.ui(ui, &self.state, &self.compute),
                View::Filters => self.filters_view.ui(ui, &self.state, &self.compute),
                View::Compare => self.compare_view.ui(ui, &self.state, &self.compute),
                View::Denoise => self.denoise_view.ui(ui, &self.state, &self.compute),
                View::Ood => self.ood_view.ui(ui, &self.state, &self.compute),
                View::Draw => {
                    let drawn = self.draw_view.current();
                    let (latent, state, compute) =
                        (&mut self.latent_view, &self.state, &self.compute);
                    self.draw_view.ui(ui, state, compute, |ui| {
                        latent.mini_map(ui, state, compute, drawn)
                    });
                }
                View::Latent => {
                    let drawn = self.draw_view.current();
                    let req = self.latent_view.ui(ui, &self.state, &self.compute, drawn);
                    if let Some(latent_view::LatentRequest::SendToDraw(i)) = req {
                        if let DataStatus::Ready { data, .. } = &self.state.data {
                            let img = data.test.image_f32(i);
                            self.draw_view
                                .set_external(format!("test image #{i}"), 28, 28, img);
                            self.state.settings.view = View::Draw;
                        }
                    }
                }
                View::Library => {
                    let report = self
                        .report
                        .as_ref()
                        .map(|r| (r.last.clone(), r.finished.clone(), r.out.clone()));
                    self.library_view.ui(ui, &self.state, &mut actions);
                    self.library_view.report_ui(ui, report, &mut actions);
                }
            }
        });
        if self.state.settings.show_debug {
            egui::Window::new("Debug").default_pos([900.0, 80.0]).show(ui.ctx(), |ui| {
                if let Some((median, worst)) = self.draw_stats() {
                    ui.label(format!("frame build time: median {median:.2} ms, worst {worst:.2} ms (last {} frames)", self.draw_ms.len()));
                }
                if let Some((median, worst)) = self.frame_stats() {
                    ui.label(format!("frame interval: median {median:.1} ms, worst {worst:.1} ms"));
                }
                ui.label(format!("trainer threads: {}", crate::train_ways()));
            });
        }
        for a in actions {
            self.apply(a);
        }
    }

    fn data_problem(&self) -> Option<String> {
        match &self.state.data {
            DataStatus::Missing { message } | DataStatus::Failed { message } => {
                Some(message.clone())
            }
            _ => None,
        }
    }

    fn data_panel(&self, ui: &mut egui::Ui, message: &str, actions: &mut Vec<Action>) {
        ui.colored_label(ui.visuals().warn_fg_color, "The data set is not available");
        ui.label(message);
        ui.horizontal(|ui| {
            if ui
                .button("Download now")
                .on_hover_text(
                    "Fetch the files from the public mirrors, verify their checksums and continue",
                )
                .clicked()
            {
                actions.push(Action::Download);
            }
            ui.label(format!(
                "or copy the files into {}",
                self.state
                    .data_dir
                    .join(self.state.settings.dataset.slug())
                    .display()
            ));
        });
    }

    fn top_bar(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.horizontal(|ui| {
            ui.heading("aelab");
            ui.separator();
            let before = self.state.settings.dataset;
            egui::ComboBox::from_label("Data set")
                .selected_text(before.display_name())
                .show_ui(ui, |ui| {
                    for k in crate::data::DatasetKind::ALL {
                        ui.selectable_value(&mut self.state.settings.dataset, k, k.display_name());
                    }
                })
                .response
                .on_hover_text("The images every view and new training run uses");
            if self.state.settings.dataset != before {
                self.load_data(false);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.checkbox(&mut self.state.settings.show_debug, "Debug overlay")
                    .on_hover_text("Frame times, queue lengths and threads, drawn over the window");
                if ui
                    .button("Help")
                    .on_hover_text("Shortcuts and diagnostics (F1)")
                    .clicked()
                {
                    self.show_help = !self.show_help;
                }
                egui::ComboBox::from_id_salt("theme")
                    .selected_text(self.state.settings.theme.label())
                    .show_ui(ui, |ui| {
                        for t in state::Theme::ALL {
                            ui.selectable_value(&mut self.state.settings.theme, t, t.label());
                        }
                    })
                    .response
                    .on_hover_text("Light or dark colours, or follow the system");
                if ui.button("Reload library").clicked() {
                    actions.push(Action::RefreshLibrary);
                }
            });
        });
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let s = &self.state;
            let data = match &s.data {
                DataStatus::NotLoaded => "no data".to_string(),
                DataStatus::Loading { message, fraction } => match fraction {
                    Some(f) => format!("{message} {:.0}%", f * 100.0),
                    None => format!("{message}…"),
                },
                DataStatus::Ready { data, pca } => format!(
                    "{}: {} train / {} val / {} test{}",
                    data.kind.display_name(),
                    data.train.len(),
                    data.val.len(),
                    data.test.len(),
                    if pca.is_some() {
                        ", PCA fitted"
                    } else {
                        ", fitting PCA…"
                    }
                ),
                DataStatus::Missing { .. } => {
                    format!("{} missing", s.settings.dataset.display_name())
                }
                DataStatus::Failed { .. } => "data failed to load".into(),
            };
            ui.label(data);
            if let Some(src) = s.data_source {
                ui.label(format!("from {} ({src})", s.data_dir.display()));
            }
            ui.separator();
            let device = crate::device_label(&self.device);
            ui.label(match crate::train_ways() {
                _ if !self.device.is_cpu() => format!("device: {device}"),
                1 => format!("device: {device}, 1 training thread"),
                n => format!("device: {device}, {n} training threads"),
            });
            ui.separator();
            if let Some(r) = self.report.as_ref().filter(|r| r.finished.is_none()) {
                ui.label(format!("report: {}", r.last));
                ui.separator();
            }
            match s.active_run() {
                Some(r) => {
                    ui.label(format!(
                        "{}{}: epoch {}/{} · {:.0}% · {:.0} samples/s",
                        r.label(),
                        if s.paused { " (paused)" } else { "" },
                        (r.epoch + 1).min(r.config.train.epochs),
                        r.config.train.epochs,
                        r.run_fraction() * 100.0,
                        r.samples_per_sec
                    ));
                }
                None => {
                    ui.label(if s.queue.is_empty() {
                        "idle"
                    } else {
                        "waiting for data"
                    });
                }
            }
        });
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

fn median_worst(v: &VecDeque<f32>) -> Option<(f32, f32)> {
    if v.is_empty() {
        return None;
    }
    let mut v: Vec<f32> = v.iter().copied().collect();
    v.sort_by(f32::total_cmp);
    Some((v[v.len() / 2], *v.last().unwrap_or(&0.0)))
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
            .threads
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
