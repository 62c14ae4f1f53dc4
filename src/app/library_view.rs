//! The Library view: every saved model with its preset, size, schedule, data
//! set, test error and date; export, save-as for unsaved runs, delete.
//! Dialogs go through rfd; where none can open, the typed path is used.

use std::path::PathBuf;

use egui::RichText;

use super::action::{Action, Actions};
use super::state::{AppState, View};

#[derive(Default)]
pub struct LibraryView {
    /// Target path typed (or picked) for export / save-as.
    pub target: String,
    pub confirm_delete: Option<PathBuf>,
    pub note: Option<String>,
    pub report_quick: bool,
}

/// A running or finished report: latest line, outcome, folder.
pub type ReportState = (String, Option<Result<(), String>>, PathBuf);

fn date(unix: u64) -> String {
    // days since 1970-01-01 -> civil date (Howard Hinnant's algorithm)
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

impl LibraryView {
    /// The study report: a folder, a button, and how far it got.
    pub fn report_ui(&mut self, ui: &mut egui::Ui, report: Option<ReportState>, actions: &Actions) {
        ui.separator();
        ui.heading("Study report");
        ui.label("Trains (or reuses from the library) every model of the study for 10 epochs and writes REPORT.md, metrics.json and the figures into a folder, like `aelab report`.");
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.report_quick, "quick (a few thousand images, 1 epoch)")
                .on_hover_text("The same pipeline on a small subset: a first look in about a minute");
            let running = report.as_ref().is_some_and(|(_, done, _)| done.is_none());
            if ui
                .add_enabled(!running, egui::Button::new("Write the study report…"))
                .on_hover_text("Choose a folder; the report runs in the background with its progress in the status bar")
                .clicked()
            {
                let picked = rfd::FileDialog::new().pick_folder().or_else(|| {
                    (!self.target.trim().is_empty()).then(|| PathBuf::from(self.target.trim()))
                });
                match picked {
                    Some(out) => actions.push(Action::WriteReport {
                        out,
                        quick: self.report_quick,
                    }),
                    None => self.note = Some("No folder dialog is available here (or it was cancelled): type the report folder in the field above and press the button again.".into()),
                }
            }
        });
        if let Some((last, done, out)) = report {
            match done {
                None => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(last);
                    });
                }
                Some(Ok(())) => {
                    ui.label(format!("Written: {}", out.join("REPORT.md").display()));
                }
                Some(Err(e)) => {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!("The report failed: {e}"),
                    );
                }
            }
        }
    }

    /// A save dialog, or None where none can open (then the typed path is used).
    fn pick(&mut self, default_name: &str) -> Option<PathBuf> {
        let picked = rfd::FileDialog::new()
            .set_file_name(default_name)
            .add_filter("safetensors", &["safetensors"])
            .save_file();
        if picked.is_none() {
            if self.target.trim().is_empty() {
                self.note = Some("No file dialog is available here (or it was cancelled): type a path in the field and press the button again.".into());
                return None;
            }
            return Some(PathBuf::from(self.target.trim()));
        }
        picked
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, actions: &Actions) {
        ui.heading("Model library");
        ui.label(format!("Folder: {}", state.models_dir.display()));
        ui.horizontal(|ui| {
            let l = ui.label("Export / save to:");
            ui.add(
                egui::TextEdit::singleline(&mut self.target)
                    .hint_text("/path/to/model.safetensors")
                    .desired_width(360.0),
            )
            .labelled_by(l.id);
        });
        if ui
            .button("Import…")
            .on_hover_text("Check a checkpoint file and copy it into the library")
            .clicked()
        {
            let picked = rfd::FileDialog::new()
                .add_filter("safetensors", &["safetensors"])
                .pick_file();
            match picked.or_else(|| (!self.target.trim().is_empty()).then(|| PathBuf::from(self.target.trim()))) {
                Some(from) => actions.push(Action::ImportModel(from)),
                None => self.note = Some("No file dialog is available here (or it was cancelled): type the checkpoint's path in the field and press Import again.".into()),
            }
        }
        if let Some(n) = &self.note {
            ui.colored_label(ui.visuals().warn_fg_color, n);
        }
        for e in &state.library_errors {
            ui.colored_label(ui.visuals().warn_fg_color, e);
        }
        // Runs whose save failed: still in memory.
        for run in state
            .runs
            .iter()
            .filter(|r| r.save_error.is_some() && r.weights.is_some())
        {
            ui.horizontal(|ui| {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} is only in memory", run.label()),
                );
                if ui.button("Save as…").clicked() {
                    if let Some(to) = self.pick(&format!("{}.safetensors", run.config.model.preset))
                    {
                        actions.push(Action::SaveRunAs { run: run.id, to });
                    }
                }
            });
        }
        if state.library.is_empty() {
            ui.label(
                RichText::new("No saved models yet: finished runs are saved here automatically.")
                    .weak(),
            );
            return;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("library")
                .striped(true)
                .num_columns(8)
                .show(ui, |ui| {
                    for h in [
                        "preset", "params", "epochs", "data set", "test MSE", "date", "", "",
                    ] {
                        ui.label(RichText::new(h).strong());
                    }
                    ui.end_row();
                    for e in &state.library {
                        let m = &e.manifest;
                        ui.label(&m.run.model.preset).on_hover_text(format!(
                            "{}\n{}",
                            m.run.model.describe(),
                            e.path.display()
                        ));
                        ui.label(m.params.to_string());
                        ui.label(format!("{}/{}", m.epochs_done, m.run.train.epochs));
                        ui.label(m.run.dataset.display_name());
                        ui.label(
                            m.test_metrics
                                .as_ref()
                                .map(|t| format!("{:.5}", t.mse_per_pixel))
                                .unwrap_or_else(|| "–".into()),
                        );
                        ui.label(date(m.created_unix));
                        if ui.button("Export…").clicked() {
                            let name = e
                                .path
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            if let Some(to) = self.pick(&name) {
                                actions.push(Action::ExportModel {
                                    from: e.path.clone(),
                                    to,
                                });
                            }
                        }
                        if self.confirm_delete.as_ref() == Some(&e.path) {
                            if ui
                                .button(
                                    RichText::new("Really delete")
                                        .color(ui.visuals().error_fg_color),
                                )
                                .clicked()
                            {
                                actions.push(Action::DeleteModel(e.path.clone()));
                                self.confirm_delete = None;
                            }
                        } else if ui.button("Delete").clicked() {
                            self.confirm_delete = Some(e.path.clone());
                        }
                        ui.end_row();
                    }
                });
        });
    }
}

impl super::view::AppView for LibraryView {
    fn id(&self) -> View {
        View::Library
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.actions);
        self.report_ui(ui, cx.report.clone(), cx.actions);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_date() {
        assert_eq!(super::date(0), "1970-01-01 00:00");
        assert_eq!(super::date(1_796_000_000), "2026-11-30 00:53");
    }
}
