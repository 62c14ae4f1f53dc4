//! The Study view: the five questions of the autoencoder study in order,
//! each with a plain-language explanation, one button that trains what the
//! step needs (models already in the library are reused), the step's
//! reconstructions live, and a take-away computed from the user's own
//! results.

use std::sync::Arc;

use egui::RichText;

use super::compute::{Compute, Pending};
use super::images::{Gallery, GalleryRow};
use super::infer::{self, ModelRef, Row};
use super::state::{Action, AppState, DataStatus, RunStatus, View};
use crate::data::noise::{Noise, NoiseKind};
use crate::model::{ModelConfig, RunConfig, TrainParams};
use crate::rng::Rng;
use crate::train::metrics::Metrics;

pub struct Step {
    pub title: &'static str,
    pub explain: &'static str,
    pub presets: &'static [&'static str],
    /// Gaussian noise on the inputs of the step's figure.
    pub noise: f32,
    /// Where the step's other figures are.
    pub view: View,
}

pub const STEPS: [Step; 5] = [
    Step {
        title: "1. PCA versus a deep autoencoder",
        explain: "PCA squeezes each 784-pixel digit into k numbers with the best straight-line (linear) projection. An autoencoder learns its own squeeze (the encoder) and un-squeeze (the decoder) with non-linear layers. With the same 30 numbers, which keeps more of the digit?",
        presets: &["deep"],
        noise: 0.0,
        view: View::Pca,
    },
    Step {
        title: "2. How wide must the hidden layer be?",
        explain: "A shallow autoencoder has one hidden layer: its width is the code size (the bottleneck). Wider codes keep more detail, but the model only learns digits: clothes and random noise come out looking like digits, which is how an autoencoder can tell what it has never seen.",
        presets: &["shallow-64", "shallow-128", "shallow-256"],
        noise: 0.0,
        view: View::Ood,
    },
    Step {
        title: "3. Sparsity: few units at a time",
        explain: "A sparse autoencoder has many hidden units (1024) but pays a penalty (L1, strength λ) for every unit it switches on, so each digit uses only a few. The units that survive learn stroke-like filters; with a strong λ most units never fire at all (see the Filters view).",
        presets: &["sparse-1e-6", "sparse-1e-4", "sparse-1e-3"],
        noise: 0.0,
        view: View::Filters,
    },
    Step {
        title: "4. Denoising: learn to clean",
        explain: "A denoising autoencoder sees a corrupted digit and is trained to output the clean one. The noise level it trained on matters: here each model cleans digits with Gaussian noise of strength 0.5 (try other levels in the Denoise view).",
        presets: &["denoise-0.3", "denoise-0.5", "denoise-0.7", "denoise-0.8", "denoise-0.9"],
        noise: 0.5,
        view: View::Denoise,
    },
    Step {
        title: "5. Convolutional decoders",
        explain: "Convolutional autoencoders look at small 3x3 patches and pool them down to a 4x4x16 code. To grow the image back, the decoder can put values back where the pooling found them (max-unpooling), learn to spread them out (transposed convolution), or both. Which rebuilds digits best?",
        presets: &["conv-unpool", "conv-deconv", "conv-both"],
        noise: 0.0,
        view: View::Compare,
    },
];

#[derive(Clone, PartialEq)]
struct Key {
    step: usize,
    models: Vec<ModelRef>,
}

pub struct StudyView {
    pub step: usize,
    pub epochs: usize,
    rows: Pending<Key, (Vec<f32>, Vec<Row>)>,
    pca: Pending<usize, Metrics>,
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

/// The step's take-away from the user's results, or what is missing.
pub fn take_away(step: usize, state: &AppState, pca30: Option<&Metrics>) -> String {
    let mse = |preset: &str| {
        state
            .models()
            .into_iter()
            .find(|e| e.manifest.run.model.preset == preset)
            .and_then(|e| e.manifest.test_metrics.as_ref().map(|m| m.mse_per_pixel))
    };
    match step {
        0 => match (pca30, mse("deep")) {
            (Some(p), Some(d)) => format!(
                "With 30 components PCA's test error is {:.4}; the deep autoencoder's 30-number code gets {:.4}: PCA's error is {:.1}× the autoencoder's.",
                p.mse_per_pixel,
                d,
                p.mse_per_pixel / d.max(1e-12)
            ),
            _ => "Train the deep autoencoder to compare it with PCA-30.".into(),
        },
        1 => match (mse("shallow-64"), mse("shallow-256")) {
            (Some(a), Some(b)) => format!(
                "Going from 64 to 256 hidden units takes the test error from {a:.4} to {b:.4} ({:.0}% lower).",
                (1.0 - b / a.max(1e-12)) * 100.0
            ),
            _ => "Train the three shallow models to see what width buys.".into(),
        },
        2 => {
            let found: Vec<String> = ["sparse-1e-6", "sparse-1e-4", "sparse-1e-3"]
                .iter()
                .filter_map(|p| mse(p).map(|m| format!("{p}: {m:.4}")))
                .collect();
            if found.is_empty() {
                "Train the sparse models; the Filters view then shows how many units never fire.".into()
            } else {
                format!(
                    "Test error by penalty: {}. The stronger the penalty, the fewer units fire and the blurrier the digits.",
                    found.join(", ")
                )
            }
        }
        3 => {
            let found: Vec<(String, f64)> = STEPS[3]
                .presets
                .iter()
                .filter_map(|p| mse(p).map(|m| (p.to_string(), m)))
                .collect();
            match found.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                Some((p, m)) => format!(
                    "On clean test digits the best of the denoisers is {p} ({m:.4}); models trained on heavy noise blur clean digits more, but survive noise better (Denoise view)."
                ),
                None => "Train the denoising models to compare noise levels.".into(),
            }
        }
        _ => {
            let mut found: Vec<(String, f64)> = STEPS[4]
                .presets
                .iter()
                .filter_map(|p| mse(p).map(|m| (p.to_string(), m)))
                .collect();
            found.sort_by(|a, b| a.1.total_cmp(&b.1));
            match found.as_slice() {
                [best, second, ..] => format!(
                    "{} rebuilds digits best (test error {:.4}), {:.0}% below {} ({:.4}).",
                    best.0,
                    best.1,
                    (1.0 - best.1 / second.1.max(1e-12)) * 100.0,
                    second.0,
                    second.1
                ),
                _ => "Train at least two conv decoders to compare them.".into(),
            }
        }
    }
}

impl StudyView {
    pub fn rows(&self) -> Option<&[Row]> {
        self.rows.get().map(|(_, r)| r.as_slice())
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        compute: &Compute,
        actions: &mut Vec<Action>,
    ) {
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
        ui.heading(step.title);
        ui.label(step.explain);
        if ui
            .link(format!("More on this in the {} view", step.view.label()))
            .on_hover_text(step.view.explain())
            .clicked()
        {
            actions.push(Action::ShowView(step.view));
        }
        ui.add_space(6.0);
        // models of the step: in the library, training, queued or missing
        let library: Vec<ModelRef> = state.models().into_iter().map(ModelRef::of).collect();
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
            self.pca.request(Arc::as_ptr(&pca) as usize, || {
                compute.submit_slow("study-pca30", move || {
                    super::compare_view::pca_test_metrics(&d, &p, 30)
                })
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
        let (cache, d, p, noise, first) = (
            compute.models.clone(),
            data.clone(),
            pca.clone(),
            step.noise,
            self.step == 0,
        );
        self.rows.request(key, || {
            compute.submit("study-rows", move || {
                let n = 8.min(d.test.len());
                let clean = d.test.rows_f32(0..n);
                let mut x = clean.clone();
                Noise {
                    kind: NoiseKind::Gaussian,
                    level: noise,
                }
                .apply(&mut x, &mut Rng::new(1));
                let mut rows = Vec::new();
                if first {
                    rows.push(infer::pca_row(&p, 30, &x, &clean));
                }
                rows.extend(infer::model_rows(&cache, &models, &x, &clean));
                (x, rows)
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
        ui.label(take_away(self.step, state, self.pca.get()));
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
    let mut any = false;
    Plot::new(("study-curves", step))
        .height(220.0)
        .legend(Legend::default())
        .x_axis_label("epoch")
        .y_axis_label("validation MSE")
        .allow_scroll(false)
        .show(ui, |p| {
            for e in state.models() {
                let m = &e.manifest;
                if !presets.contains(&m.run.model.preset.as_str()) {
                    continue;
                }
                let pts: Vec<[f64; 2]> = m
                    .history
                    .val_loss
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| [(i + 1) as f64, v])
                    .collect();
                any |= !pts.is_empty();
                if pts.len() == 1 {
                    p.points(Points::new(e.label(), pts).radius(4.0));
                } else {
                    p.line(Line::new(e.label(), pts));
                }
            }
            for r in state.runs.iter().filter(|r| r.status.is_active()) {
                if !presets.contains(&r.config.model.preset.as_str()) || r.val.is_empty() {
                    continue;
                }
                let per_epoch = r.steps_per_epoch.max(1) as f64;
                let pts: Vec<[f64; 2]> = r.val.iter().map(|[s, v]| [s / per_epoch, *v]).collect();
                any = true;
                p.line(
                    Line::new(format!("{} (training)", r.label()), pts)
                        .style(LineStyle::dotted_dense()),
                );
            }
            if let (0, Some(v)) = (step, pca30) {
                p.hline(HLine::new("PCA-30 (test)", v).style(LineStyle::dashed_loose()));
            }
        });
    if !any {
        ui.label(RichText::new("No model of this step has finished an epoch yet.").weak());
    }
}
