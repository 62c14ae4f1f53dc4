//! The Study view: the five questions of the autoencoder study in order,
//! each with a plain-language explanation, one button that trains what the
//! step needs (models already in the library are reused), the step's
//! reconstructions live, and a take-away computed from the user's own
//! results.

use egui::RichText;

use super::action::{Action, Actions};
use super::images::{Gallery, GalleryRow};
use super::state::{AppState, DataStatus, RunStatus, View};
use crate::analysis::recon::{self, Row};
use crate::analysis::study::{self, STEPS};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::model::{ModelConfig, RunConfig, TrainParams};
use crate::train::metrics::Metrics;

#[derive(Clone, PartialEq)]
struct Key {
    step: usize,
    models: Vec<ModelRef>,
}

pub struct StudyView {
    pub step: usize,
    pub epochs: usize,
    rows: Pending<Key, (Vec<f32>, Vec<Row>)>,
    pca: Pending<u64, Metrics>,
    gallery: Gallery,
    generation: usize,
    shown: Option<usize>,
}

impl Default for StudyView {
    fn default() -> Self {
        StudyView {
            step: 0,
            epochs: 10,
            rows: Pending::default(),
            pca: Pending::default(),
            gallery: Gallery::default(),
            generation: 0,
            shown: None,
        }
    }
}

impl StudyView {
    /// The step's models (in the library, training, queued or missing) and
    /// the button that trains the missing ones.
    fn train_row(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        library: &[ModelRef],
        actions: &Actions,
    ) {
        let step = &STEPS[self.step];
        let mut missing = Vec::new();
        ui.horizontal_wrapped(|ui| {
            for p in step.presets {
                let have = library.iter().any(|m| m.config.preset == *p);
                let run = state.runs.iter().rev().find(|r| {
                    r.config.model.preset == *p
                        && matches!(
                            r.status,
                            RunStatus::Queued | RunStatus::Running | RunStatus::Evaluating
                        )
                });
                let text = match (have, run) {
                    (_, Some(r)) if r.status.is_active() => {
                        format!("{p}: training ({:.0}%)", r.run_fraction() * 100.0)
                    }
                    (_, Some(_)) => format!("{p}: queued"),
                    (true, None) => format!("{p}: ready"),
                    (false, None) => {
                        missing.push(*p);
                        format!("{p}: not trained")
                    }
                };
                ui.label(RichText::new(text).monospace());
                ui.separator();
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut self.epochs).range(1..=100))
                .labelled_by(l.id)
                .on_hover_text(
                    "Passes over the 50,000 training images per model (the study uses 10)",
                );
            if ui
                .add_enabled(!missing.is_empty(), egui::Button::new("Train this step"))
                .on_hover_text(
                    "Queue the models this step still needs; the ones in the library are reused",
                )
                .clicked()
            {
                for p in &missing {
                    if let Ok(model) = ModelConfig::preset(p) {
                        actions.push(Action::Enqueue(RunConfig {
                            model,
                            train: TrainParams {
                                epochs: self.epochs,
                                ..state.settings.form.train.clone()
                            },
                            dataset: state.settings.dataset,
                        }));
                    }
                }
            }
        });
    }
    pub fn rows(&self) -> Option<&[Row]> {
        self.rows.get().map(|(_, r)| r.as_slice())
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute, actions: &Actions) {
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.step > 0, egui::Button::new("Back"))
                .clicked()
            {
                self.step -= 1;
            }
            ui.label(format!("step {} of {}", self.step + 1, STEPS.len()));
            if ui
                .add_enabled(self.step + 1 < STEPS.len(), egui::Button::new("Next"))
                .clicked()
            {
                self.step += 1;
            }
        });
        let step = &STEPS[self.step];
        let view = View::showing(step.shows);
        ui.heading(format!("{}. {}", self.step + 1, step.title));
        ui.label(step.explain);
        if ui
            .link(format!("More on this in the {} view", view.label()))
            .on_hover_text(view.explain())
            .clicked()
        {
            actions.push(Action::ShowView(view));
        }
        ui.add_space(6.0);
        let library: Vec<ModelRef> = state.models().into_iter().map(ModelRef::of).collect();
        self.train_row(ui, state, &library, actions);
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label("The figures appear once the data set is loaded.");
                return;
            }
        };
        if self.rows.poll() {
            self.generation += 1;
        }
        self.pca.poll();
        {
            let (d, p) = (data.clone(), pca.clone());
            self.pca.request(pca.id(), || {
                compute.submit_slow("study-pca30", move || recon::pca_test_metrics(&d, &p, 30))
            });
        }
        let models: Vec<ModelRef> = library
            .iter()
            .filter(|m| step.presets.contains(&m.config.preset.as_str()))
            .cloned()
            .collect();
        let key = Key {
            step: self.step,
            models: models.clone(),
        };
        let (cache, d, p, i) = (compute.models.clone(), data.clone(), pca.clone(), self.step);
        self.rows.request(key, || {
            compute.submit("study-rows", move || {
                study::step_rows(&cache, &d, &p, i, &models)
            })
        });
        if self.shown != Some(self.generation) {
            if let Some((x, rows)) = self.rows.get() {
                let input = if step.noise > 0.0 {
                    "noisy input"
                } else {
                    "input"
                };
                let mut g = vec![GalleryRow::plain(input, x)];
                g.extend(rows.iter().map(|r| GalleryRow::of_row(r, false)));
                self.gallery.set(ui.ctx(), "study", g);
                self.shown = Some(self.generation);
            }
        }
        ui.separator();
        ui.label(RichText::new("Take-away").strong());
        ui.label(study::take_away(
            self.step,
            &|p| state.test_metrics(p),
            self.pca.get(),
        ));
        ui.separator();
        let pca30 = self.pca.get().map(|m| m.mse_per_pixel);
        let step_index = self.step;
        egui::ScrollArea::vertical().show(ui, |ui| {
            super::export::figure(
                ui,
                &format!("study-step-{}", self.step + 1),
                "Test digits through this step's models (caption: MSE against the clean digit)",
                None,
                |ui| {
                    self.gallery.show(ui, "study-grid", 48.0);
                },
            );
            ui.separator();
            super::export::figure(
                ui,
                &format!("study-step-{}-curves", step_index + 1),
                "Validation error per epoch of this step's models (live while they train)",
                None,
                |ui| curves_plot(ui, state, step_index, pca30),
            );
        });
    }
}

/// Validation MSE per epoch of the step's models: finished ones from their
/// manifests, training ones from the live run; PCA-30's test error as a
/// dashed line in step 1.
fn curves_plot(ui: &mut egui::Ui, state: &AppState, step: usize, pca30: Option<f64>) {
    use egui_plot::{HLine, Legend, Line, LineStyle, Plot, Points};
    let presets = STEPS[step].presets;
    // finished models from their manifests, training ones from the live run
    let mut finished: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for e in state.models() {
        let m = &e.manifest;
        if presets.contains(&m.run.model.preset.as_str()) && !m.history.val_loss.is_empty() {
            let pts = m
                .history
                .val_loss
                .iter()
                .enumerate()
                .map(|(i, &v)| [(i + 1) as f64, v])
                .collect();
            finished.push((e.label(), pts));
        }
    }
    let training: Vec<(String, Vec<[f64; 2]>)> = state
        .runs
        .iter()
        .filter(|r| r.status.is_active() && !r.val.is_empty())
        .filter(|r| presets.contains(&r.config.model.preset.as_str()))
        .map(|r| {
            let per_epoch = r.steps_per_epoch.max(1) as f64;
            let pts = r.val.iter().map(|[s, v]| [s / per_epoch, *v]).collect();
            (format!("{} (training)", r.label()), pts)
        })
        .collect();
    if finished.is_empty() && training.is_empty() {
        // empty axes around PCA's line say nothing: say what will be here
        ui.label(
            RichText::new(
                "No model of this step has finished an epoch yet: train the step and its validation error per epoch is drawn here, live.",
            )
            .weak(),
        );
        return;
    }
    Plot::new(("study-curves", step))
        .height(220.0)
        .legend(Legend::default())
        .x_axis_label("epoch")
        .y_axis_label("validation MSE")
        .include_x(0.0)
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |p| {
            for (label, pts) in finished {
                if pts.len() == 1 {
                    p.points(Points::new(label, pts).radius(4.0));
                } else {
                    p.line(Line::new(label, pts));
                }
            }
            for (label, pts) in training {
                p.line(Line::new(label, pts).style(LineStyle::dotted_dense()));
            }
            if let (0, Some(v)) = (step, pca30) {
                p.hline(HLine::new("PCA-30 (test)", v).style(LineStyle::dashed_loose()));
            }
        });
}

impl super::view::AppView for StudyView {
    fn id(&self) -> View {
        View::Study
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute, cx.actions);
    }
}
