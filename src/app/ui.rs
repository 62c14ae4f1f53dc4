//! Drawing the window: the top bar, the status bar, the side panel of
//! views and the current view, the help window and the shortcuts.

use super::action::{Action, Actions};
use super::state::{self, DataStatus};
use super::view::ViewCx;
use super::AelabApp;

impl AelabApp {
    /// Keyboard shortcuts (listed in the help window).
    fn shortcuts(&mut self, ctx: &egui::Context, actions: &Actions) {
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
            "aelab {} ({} {}), candle 0.11, egui 0.37\ndevice: {}, training ways: {}, cores: {}\ndata folder: {} ({})\nmodels folder: {}\nlog file: {}\nlibrary: {} models\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            crate::device_label(&self.device),
            crate::ways(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            s.data_dir.display(),
            s.data_source.map(|d| d.to_string()).unwrap_or_default(),
            s.models_dir.display(),
            crate::log_file_path().display(),
            s.library.len(),
        );
        out.push_str("recent messages:\n");
        for m in s.messages.iter().rev().take(10) {
            out.push_str(&format!("  {}\n", m.text));
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
    /// Draw the whole window, then apply what was asked for.
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let actions = self.actions.clone();
        let ctx = ui.ctx().clone();
        actions.install(&ctx);
        self.shortcuts(&ctx, &actions);
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
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui, &actions));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("views")
            .resizable(false)
            .default_size(120.0)
            .show(ui, |ui| {
                ui.add_space(6.0);
                for v in self.views.all() {
                    ui.selectable_value(&mut self.state.settings.view, v.id(), v.name())
                        .on_hover_text(v.tooltip());
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            self.data_banner(ui, &actions);
            let mut cx = ViewCx {
                drawn: self.views.draw_view.current(),
                report: self
                    .report
                    .as_ref()
                    .map(|r| (r.last.clone(), r.finished.clone(), r.out.clone())),
                state: &mut self.state,
                compute: &self.compute,
                actions: &actions,
                map: &mut self.latent_map,
            };
            let current = cx.state.settings.view;
            if let Some(v) = self.views.all().into_iter().find(|v| v.id() == current) {
                v.ui(ui, &mut cx);
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
                ui.label(format!("training ways: {}", crate::ways()));
            });
        }
        for a in actions.take() {
            self.apply(a);
        }
    }

    /// Above every view: what is wrong with the data set, or the
    /// download's progress.
    fn data_banner(&self, ui: &mut egui::Ui, actions: &Actions) {
        if let Some(msg) = self.data_problem() {
            self.data_panel(ui, &msg, actions);
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
    }

    fn data_problem(&self) -> Option<String> {
        match &self.state.data {
            DataStatus::Missing { message } | DataStatus::Failed { message } => {
                Some(message.clone())
            }
            _ => None,
        }
    }
    fn data_panel(&self, ui: &mut egui::Ui, message: &str, actions: &Actions) {
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
    fn top_bar(&mut self, ui: &mut egui::Ui, actions: &Actions) {
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
            ui.label(match crate::ways() {
                _ if !self.device.is_cpu() => format!("device: {device}"),
                1 => format!("device: {device}, training on 1 core"),
                n => format!("device: {device}, training on {n} cores"),
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
