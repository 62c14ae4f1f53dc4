//! The Noise & out-of-distribution view: random images (uniform, Gaussian,
//! salt-and-pepper; seeded) and the other data set's test images (Fashion-
//! MNIST for MNIST-trained models) pushed through the models, beside their
//! reconstructions; then, for a chosen model, histograms of reconstruction
//! error for in-distribution test digits, the other data set and noise,
//! with a threshold slider, the resulting detection rates, and the AUROC.

use std::path::PathBuf;
use std::sync::Arc;

use egui::RichText;
use egui_plot::{Bar, BarChart, Legend, Plot, VLine};

use super::action::{Action, Actions};
use super::export;
use super::images::{Gallery, GalleryRow};
use super::state::{AppState, DataStatus, View};
use crate::analysis::ood::{self, InputKind, Score, Separation, HIST_IMAGES};
use crate::analysis::recon::{self, Row, Source};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::{Dataset, DatasetKind};

pub const OOD_DIGITS: usize = 8;
const BINS: usize = 40;

/// The separation's model, noise, seed, other data set and score.
type SepKey = (PathBuf, InputKind, u64, DatasetKind, Score);

type OtherData = Result<Arc<Dataset>, String>;

#[derive(Clone, PartialEq)]
struct RowsKey {
    kind: InputKind,
    seed: u64,
    models: Vec<ModelRef>,
    have_other: bool,
}

pub struct OodView {
    pub input: InputKind,
    pub seed: u64,
    pub model: Option<ModelRef>,
    /// Threshold on the score above which an input is flagged.
    pub threshold: f64,
    /// The score the threshold was set on.
    threshold_score: Option<Score>,
    /// The other data set's version this view loaded.
    other_version: u64,
    other: Pending<DatasetKind, OtherData>,
    rows: Pending<RowsKey, (Vec<f32>, Vec<Row>)>,
    sep: Pending<SepKey, Result<Separation, String>>,
    /// What flags an input (a VAE also offers its ELBO).
    pub score: Score,
    gallery: Gallery,
    generation: usize,
    shown: Option<usize>,
}

impl Default for OodView {
    fn default() -> Self {
        OodView {
            input: InputKind::Other,
            seed: 1,
            model: None,
            threshold: 0.03,
            threshold_score: None,
            other_version: 0,
            other: Pending::default(),
            rows: Pending::default(),
            sep: Pending::default(),
            score: Score::Mse,
            gallery: Gallery::default(),
            generation: 0,
            shown: None,
        }
    }
}

impl OodView {
    pub fn separation(&self) -> Option<&Separation> {
        self.sep.get().and_then(|r| r.as_ref().ok())
    }

    pub fn rows(&self) -> Option<&[Row]> {
        self.rows.get().map(|(_, r)| r.as_slice())
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute, actions: &Actions) {
        let DataStatus::Ready { data, .. } = &state.data else {
            ui.label("This view appears once the data set is loaded.");
            return;
        };
        let data = data.clone();
        let other_kind = match data.kind {
            DatasetKind::Mnist => DatasetKind::FashionMnist,
            DatasetKind::FashionMnist => DatasetKind::Mnist,
        };
        if self.other_version != state.other_data_version {
            // the other data set arrived: load it again
            self.other_version = state.other_data_version;
            self.other.clear();
        }
        self.other.poll();
        if self.rows.poll() {
            self.generation += 1;
        }
        self.sep.poll();
        let root = state.data_dir.clone();
        self.other.request(other_kind, || {
            compute.submit("ood-other-data", move || {
                Dataset::load(&root, other_kind)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
        });
        let other = self.other.get_for(&other_kind).cloned();
        let models: Vec<ModelRef> = state.models().into_iter().map(ModelRef::of).collect();
        if self.model.as_ref().is_none_or(|m| !models.contains(m)) {
            self.model = models.first().cloned();
        }

        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Inputs");
            egui::ComboBox::from_id_salt("ood-input")
                .selected_text(self.input.label(other_kind))
                .show_ui(ui, |ui| {
                    for k in InputKind::ALL {
                        ui.selectable_value(&mut self.input, k, k.label(other_kind));
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("What to feed models that only ever saw the training data set");
            if ui
                .button("Regenerate")
                .on_hover_text("Draw new random images / other test images")
                .clicked()
            {
                self.seed = self.seed.wrapping_add(1);
            }
            ui.label(RichText::new(format!("seed {}", self.seed)).weak());
        });
        if let Some(Err(e)) = &other {
            other_missing_ui(ui, state, other_kind, e, actions);
        }
        let other_ok = other.as_ref().and_then(|o| o.as_ref().ok()).cloned();
        // rows
        let key = RowsKey {
            kind: self.input,
            seed: self.seed,
            models: models.clone(),
            have_other: other_ok.is_some(),
        };
        if self.input != InputKind::Other || other_ok.is_some() {
            let (cache, m, o, kind, seed) = (
                compute.models.clone(),
                models.clone(),
                other_ok.clone(),
                self.input,
                self.seed,
            );
            self.rows.request(key, || {
                compute.submit("ood-rows", move || {
                    let x = ood::inputs(kind, o.as_deref(), OOD_DIGITS, seed);
                    let rows = recon::model_rows(&cache, &m, &x, &x);
                    (x, rows)
                })
            });
        }
        if self.shown != Some(self.generation) {
            if let Some((x, rows)) = self.rows.get() {
                self.gallery.set(ui.ctx(), "ood", gallery_rows(x, rows));
                self.shown = Some(self.generation);
            }
        }
        // separation for the chosen model
        let noise_kind = if self.input == InputKind::Other {
            InputKind::Uniform
        } else {
            self.input
        };
        if !self.model.as_ref().is_some_and(|m| m.config.is_vae()) {
            self.score = Score::Mse;
        }
        if let (Some(m), Some(o)) = (self.model.clone(), other_ok.clone()) {
            let (cache, d, seed, score) =
                (compute.models.clone(), data.clone(), self.seed, self.score);
            self.sep.request(
                (m.path.clone(), noise_kind, seed, other_kind, score),
                || {
                    compute.submit_slow("ood-separation", move || {
                        let n_in = HIST_IMAGES.min(d.test.len());
                        let n_o = HIST_IMAGES.min(o.test.len());
                        let inside = d.test.rows_f32(0..n_in);
                        let other = o.test.rows_f32(0..n_o);
                        let noise = ood::random_images(noise_kind, HIST_IMAGES / 4, seed);
                        let source = Source::Model(m);
                        ood::separation(&cache, &source, &inside, Some(&other), &noise, score)
                    })
                },
            );
        }

        let gallery = std::mem::take(&mut self.gallery);
        let input = self.input;
        let mut right =
            |ui: &mut egui::Ui| self.histograms(ui, &models, data.kind, other_kind, noise_kind);
        ui.columns(2, |cols| {
            egui::ScrollArea::vertical()
                .id_salt("ood-left")
                .show(&mut cols[0], |ui| {
                    export::figure(
                        ui,
                        "ood-rows",
                        &format!(
                            "{} through models trained on {} (caption: MSE)",
                            input.label(other_kind),
                            data.kind.display_name()
                        ),
                        None,
                        |ui| {
                            if gallery.is_empty() {
                                ui.spinner();
                            }
                            gallery.show(ui, "ood-grid", 44.0);
                        },
                    );
                });
            egui::ScrollArea::vertical()
                .id_salt("ood-right")
                .show(&mut cols[1], |ui| right(ui));
        });
        self.gallery = gallery;
    }

    /// The detector model, and a VAE's choice of score.
    fn detector_ui(&mut self, ui: &mut egui::Ui, models: &[ModelRef]) {
        ui.horizontal(|ui| {
            let l = ui.label("Detector model");
            egui::ComboBox::from_id_salt("ood-model")
                .selected_text(
                    self.model
                        .as_ref()
                        .map(|m| m.label.clone())
                        .unwrap_or_else(|| "none".into()),
                )
                .show_ui(ui, |ui| {
                    for m in models {
                        ui.selectable_value(&mut self.model, Some(m.clone()), &m.label);
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("The model whose reconstruction error flags unfamiliar inputs");
            if self.model.as_ref().is_some_and(|m| m.config.is_vae()) {
                let l = ui.label("Score");
                egui::ComboBox::from_id_salt("ood-score")
                    .selected_text(self.score.label())
                    .show_ui(ui, |ui| {
                        for s in [Score::Mse, Score::NegElbo] {
                            ui.selectable_value(&mut self.score, s, s.label());
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text("A VAE can flag inputs by its reconstruction error, or by how unlikely it finds them (−ELBO: reconstruction + KL)");
            }
        });
    }

    fn histograms(
        &mut self,
        ui: &mut egui::Ui,
        models: &[ModelRef],
        inside_kind: DatasetKind,
        other_kind: DatasetKind,
        noise_kind: InputKind,
    ) {
        self.detector_ui(ui, models);
        let sep = match self.sep.get() {
            None => {
                if models.is_empty() {
                    ui.label(
                        RichText::new(
                            "Train a model to use its reconstruction error as a detector.",
                        )
                        .weak(),
                    );
                } else {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("scoring the test sets…");
                    });
                }
                return;
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
            Some(Ok(s)) => s.clone(),
        };
        let hi = sep
            .inside
            .iter()
            .chain(&sep.other)
            .fold(0.0f64, |m, &v| m.max(v))
            .max(1e-6)
            * 1.05;
        // a threshold on one score means nothing on the other: start again
        // in the middle of the scores' range
        if self.threshold_score != Some(sep.score) {
            self.threshold_score = Some(sep.score);
            if sep.score == Score::NegElbo || self.threshold >= hi {
                self.threshold = hi / 2.0;
            }
        }
        let l = ui.label(if sep.score == Score::Mse {
            "Threshold (MSE)"
        } else {
            "Threshold (−ELBO)"
        });
        ui.add(egui::Slider::new(&mut self.threshold, 0.0..=hi).logarithmic(true))
            .labelled_by(l.id)
            .on_hover_text(
                "Inputs whose reconstruction error is above this are flagged as unfamiliar",
            );
        let t = self.threshold;
        ui.label(format!(
            "flagged: {} {:.1}% (false alarms) · {} {:.1}% · {} {:.1}%",
            inside_kind.display_name(),
            recon::fraction_above(&sep.inside, t) * 100.0,
            other_kind.display_name(),
            recon::fraction_above(&sep.other, t) * 100.0,
            noise_kind.label(other_kind),
            recon::fraction_above(&sep.noise, t) * 100.0,
        ));
        auroc_ui(ui, &sep, inside_kind, other_kind, noise_kind);
        let sets = [
            (
                inside_kind.display_name().to_string(),
                &sep.inside,
                egui::Color32::from_rgb(33, 102, 172),
            ),
            (
                other_kind.display_name().to_string(),
                &sep.other,
                egui::Color32::from_rgb(178, 24, 43),
            ),
            (
                noise_kind.label(other_kind),
                &sep.noise,
                egui::Color32::from_rgb(120, 120, 120),
            ),
        ];
        let csv = || {
            let mut s = format!(
                "set,{}\n",
                if sep.score == Score::Mse {
                    "mse"
                } else {
                    "neg_elbo"
                }
            );
            for (name, v, _) in &sets {
                for e in v.iter() {
                    s.push_str(&format!("{name},{e}\n"));
                }
            }
            s
        };
        export::figure(
            ui,
            "ood-histogram",
            &format!(
                "{} by {} (fraction of each set per bin)",
                sep.score.label(),
                sep.model
            ),
            Some(&csv),
            |ui| {
                let width = hi / BINS as f64;
                Plot::new("ood-hist")
                    .height(300.0)
                    .legend(Legend::default())
                    .x_axis_label(sep.score.label())
                    .y_axis_label("fraction")
                    .allow_scroll(false)
                    .show(ui, |p| {
                        for (name, v, colour) in &sets {
                            let h = recon::histogram(v, 0.0, hi, BINS);
                            let bars: Vec<Bar> = h
                                .iter()
                                .enumerate()
                                .map(|(i, &f)| Bar::new((i as f64 + 0.5) * width, f).width(width))
                                .collect();
                            p.bar_chart(
                                BarChart::new(name.clone(), bars).color(colour.gamma_multiply(0.6)),
                            );
                        }
                        p.vline(VLine::new("threshold", t));
                    });
            },
        );
    }
}

/// How well the score tells the sets apart (and, for −ELBO, its baseline).
fn auroc_ui(
    ui: &mut egui::Ui,
    sep: &Separation,
    inside_kind: DatasetKind,
    other_kind: DatasetKind,
    noise_kind: InputKind,
) {
    ui.label(
        RichText::new(format!(
            "AUROC {} vs {}: {} · {} vs {}: {:.3}",
            other_kind.display_name(),
            inside_kind.display_name(),
            sep.auroc_other
                .map_or_else(|| "–".to_string(), |v| format!("{v:.3}")),
            noise_kind.label(other_kind),
            inside_kind.display_name(),
            sep.auroc_noise
        ))
        .strong(),
    )
    .on_hover_text("Area under the ROC curve: the chance that a random unfamiliar input has a larger error than a random familiar one (0.5 = no better than guessing, 1 = perfect)");
    if let Some(b) = sep.baseline_auroc_other {
        ui.label(
            RichText::new(format!(
                "−ELBO grows with how grey an image is, whatever the model: the inputs' own pixel entropy alone scores an AUROC of {b:.3}"
            ))
            .small()
            .weak(),
        );
    }
}

/// The other data set is missing: why, and a download (with its progress
/// and Cancel, or why it stopped).
fn other_missing_ui(
    ui: &mut egui::Ui,
    state: &AppState,
    kind: DatasetKind,
    error: &str,
    actions: &Actions,
) {
    let download = state.other_download.as_ref().filter(|d| d.kind == kind);
    match download {
        Some(d) if d.error.is_none() => {
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(d.fraction.unwrap_or(0.0))
                        .text(d.message.as_str())
                        .desired_width(360.0),
                );
                if ui
                    .button("Cancel")
                    .on_hover_text("Stop the download; Download starts it again")
                    .clicked()
                {
                    actions.push(Action::CancelOtherDownload);
                }
            });
        }
        _ => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("{} is not available: {error}", kind.display_name()),
            );
            if let Some(e) = download.and_then(|d| d.error.as_ref()) {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("the download stopped: {e}"),
                );
            }
            if ui
                .button(format!("Download {}", kind.display_name()))
                .on_hover_text("Fetch its files from the public mirrors, verify their checksums, and use it here")
                .clicked()
            {
                actions.push(Action::DownloadOther(kind));
            }
        }
    }
}

fn gallery_rows(x: &[f32], rows: &[Row]) -> Vec<GalleryRow> {
    let mut out = vec![GalleryRow::plain("input", x)];
    out.extend(rows.iter().map(|r| GalleryRow::of_row(r, false)));
    out
}

impl super::view::AppView for OodView {
    fn id(&self) -> View {
        View::Ood
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute, cx.actions);
    }
}
