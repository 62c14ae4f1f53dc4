//! The Denoise view: pick a noise type and level; rows show the clean
//! digits, the noisy ones, what each denoising model makes of them, the
//! plain autoencoders, and PCA-k (errors against the clean digits). Below,
//! test MSE against noise level for every model, with each denoising
//! model's training level marked, computed in the background and cached.

use std::collections::HashMap;

use egui::RichText;
use egui_plot::{Legend, Line, Plot, Points};

use super::export;
use super::images::{self, Gallery, GalleryRow};
use super::state::{AppState, DataStatus, View};
use crate::analysis::denoise::{self, Curve};
use crate::analysis::recon::{self, Row};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::noise::{Noise, NoiseKind};
use crate::data::PIXELS;

#[derive(Clone, PartialEq)]
struct RowsKey {
    noise_kind: NoiseKind,
    level_millis: u32,
    seed: u64,
    k: usize,
    models: Vec<ModelRef>,
    pca: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CurveKey {
    kind: NoiseKind,
    k: usize,
    models: Vec<std::path::PathBuf>,
    pca: u64,
}

type Shown = denoise::Shown;

pub struct DenoiseView {
    pub kind: NoiseKind,
    pub level: f32,
    pub seed: u64,
    pub k: usize,
    rows: Pending<RowsKey, Shown>,
    curves: Pending<CurveKey, Vec<Curve>>,
    cached: HashMap<CurveKey, Vec<Curve>>,
    gallery: Gallery,
    generation: usize,
    shown: Option<usize>,
}

impl Default for DenoiseView {
    fn default() -> Self {
        DenoiseView {
            kind: NoiseKind::Gaussian,
            level: 0.5,
            seed: 1,
            k: 30,
            rows: Pending::default(),
            curves: Pending::default(),
            cached: HashMap::new(),
            gallery: Gallery::default(),
            generation: 0,
            shown: None,
        }
    }
}

impl DenoiseView {
    /// The noisy inputs shown (`[n * 784]`), once computed.
    pub fn noisy(&self) -> Option<&[f32]> {
        self.rows.get().map(|(_, n, _)| n.as_slice())
    }

    pub fn rows(&self) -> Option<&[Row]> {
        self.rows.get().map(|(_, _, r)| r.as_slice())
    }

    pub fn curves(&self) -> Option<&[Curve]> {
        self.curves.get().map(|c| c.as_slice())
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label("Denoise appears once the data set is loaded and PCA is fitted.");
                return;
            }
        };
        // the rows show the models training now too; the curves and the
        // grid (over the test set) the library's only, not again every
        // few seconds as a live model's weights refresh
        let library = denoise::ordered(state.models().into_iter().map(ModelRef::of).collect());
        let models = denoise::ordered(state.view_models());
        if self.rows.poll() {
            self.generation += 1;
        }
        if self.curves.poll() {
            if let Some((k, v)) = &self.curves.value {
                self.cached.insert(k.clone(), v.clone());
            }
        }
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Noise");
            egui::ComboBox::from_id_salt("denoise-kind")
                .selected_text(self.kind.label())
                .show_ui(ui, |ui| {
                    for k in NoiseKind::ALL {
                        ui.selectable_value(&mut self.kind, k, k.label());
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Gaussian: add noise of this standard deviation; masking: blank this fraction of pixels; salt-and-pepper: set this fraction to black or white");
            let l = ui.label("Noise level");
            ui.add(egui::Slider::new(&mut self.level, 0.0..=1.0).step_by(0.01))
                .labelled_by(l.id)
                .on_hover_text("How strongly the inputs are corrupted (0 = clean)");
            if ui.button("New noise").on_hover_text("Draw another noise sample").clicked() {
                self.seed = self.seed.wrapping_add(1);
            }
            ui.label(RichText::new(format!("seed {}", self.seed)).weak());
            ui.separator();
            let l = ui.label("PCA k");
            ui.add(egui::Slider::new(&mut self.k, 1..=PIXELS).logarithmic(true))
                .labelled_by(l.id)
                .on_hover_text("Components of the PCA row: PCA 'denoises' by keeping only the main directions");
        });
        let key = RowsKey {
            noise_kind: self.kind,
            level_millis: (self.level * 1000.0).round() as u32,
            seed: self.seed,
            k: self.k,
            models: models.clone(),
            pca: pca.id(),
        };
        {
            let (cache, d, p, m) = (
                compute.models.clone(),
                data.clone(),
                pca.clone(),
                models.clone(),
            );
            let noise = Noise {
                kind: self.kind,
                level: self.level,
            };
            let (seed, k) = (self.seed, self.k);
            self.rows.request(key, || {
                compute.submit("denoise-rows", move || {
                    denoise::rows(&cache, &d, &p, k, &m, noise, seed)
                })
            });
        }
        let ckey = CurveKey {
            kind: self.kind,
            k: self.k,
            models: library.iter().map(|m| m.path.clone()).collect(),
            pca: pca.id(),
        };
        if let Some(c) = self.cached.get(&ckey) {
            if self.curves.get_for(&ckey).is_none() && !self.curves.is_busy() {
                self.curves.value = Some((ckey.clone(), c.clone()));
            }
        } else {
            let (cache, d, p, m, kind, k) = (
                compute.models.clone(),
                data.clone(),
                pca.clone(),
                library.clone(),
                self.kind,
                self.k,
            );
            self.curves.request(ckey.clone(), || {
                compute.submit_slow("denoise-curves", move || {
                    denoise::curves(&cache, &d, &p, &m, kind, k)
                })
            });
        }
        if self.shown != Some(self.generation) {
            if let Some((clean, noisy, rows)) = self.rows.get() {
                self.gallery
                    .set(ui.ctx(), "denoise", gallery_rows(clean, noisy, rows));
                self.shown = Some(self.generation);
            }
        }
        let gallery = std::mem::take(&mut self.gallery);
        ui.columns(2, |cols| {
            egui::ScrollArea::vertical()
                .id_salt("denoise-left")
                .show(&mut cols[0], |ui| {
                    export::figure(
                ui,
                "denoise-rows",
                "Clean, noisy, and each model's output (caption: MSE against the clean digit)",
                None,
                |ui| {
                    if gallery.is_empty() {
                        ui.spinner();
                    }
                    gallery.show(ui, "denoise-grid", 44.0);
                },
            );
                });
            egui::ScrollArea::vertical()
                .id_salt("denoise-right")
                .show(&mut cols[1], |ui| {
                    self.curve_plot(ui, &ckey);
                    ui.separator();
                    self.grid_ui(ui, &ckey, &library);
                });
        });
        self.gallery = gallery;
    }

    fn curve_plot(&self, ui: &mut egui::Ui, key: &CurveKey) {
        let curves = self.curves.get_for(key);
        let csv = || curves.map(|c| curves_csv(c)).unwrap_or_default();
        let title = format!(
            "Test MSE against {} noise level ({} test images per point)",
            self.kind.label(),
            denoise::CURVE_IMAGES
        );
        export::figure(ui, "denoise-curve", &title, Some(&csv), |ui| {
            let Some(curves) = curves else {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("computing the curves in the background…");
                });
                return;
            };
            let lv = denoise::levels();
            Plot::new("denoise-curve-plot")
                .height(ui.available_height().clamp(240.0, 520.0) - 30.0)
                .legend(Legend::default())
                .x_axis_label("noise level")
                .y_axis_label("MSE against clean")
                .allow_scroll(false)
                .show(ui, |p| {
                    for c in curves {
                        let Ok(mse) = &c.mse else { continue };
                        let pts: Vec<[f64; 2]> =
                            lv.iter().zip(mse).map(|(&l, &m)| [l as f64, m]).collect();
                        p.line(Line::new(c.label.clone(), pts.clone()));
                        if let Some(t) = c.trained_at {
                            // mark where the model was trained
                            let near = lv
                                .iter()
                                .enumerate()
                                .min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs()))
                                .map(|(i, _)| i)
                                .unwrap_or(0);
                            p.points(
                                Points::new(c.label.clone(), vec![pts[near]])
                                    .radius(5.0)
                                    .shape(egui_plot::MarkerShape::Diamond),
                            );
                        }
                    }
                    p.vline(egui_plot::VLine::new("current level", self.level as f64));
                });
            ui.label(
                RichText::new("Diamonds: the level each denoising model was trained at.").weak(),
            );
        });
    }
}

impl DenoiseView {
    /// The denoising models' grid of the current noise type, from the
    /// curves (once computed).
    pub fn grid(&self, models: &[ModelRef]) -> Option<denoise::Grid> {
        let curves = self.curves.get()?;
        denoise::grid(curves, &denoisers(models))
    }

    /// Training level × test level for the current noise type: each cell
    /// the MSE (PSNR on hover), the best model of each test level outlined.
    fn grid_ui(&self, ui: &mut egui::Ui, key: &CurveKey, models: &[ModelRef]) {
        let title = format!(
            "Denoisers: training level (rows) × {} test level (columns), MSE; outlined: the best at each level",
            self.kind.label()
        );
        let Some(g) = self
            .curves
            .get_for(key)
            .and_then(|c| denoise::grid(c, &denoisers(models)))
        else {
            ui.label(
                RichText::new("The grid of training × test noise levels appears once a denoising model is in the library and the curves are computed.")
                    .weak(),
            );
            return;
        };
        export::figure(ui, "denoise-grid-heatmap", &title, None, |ui| {
            let (label_w, cell_h) = (110.0, 22.0);
            let cell_w =
                ((ui.available_width() - label_w) / g.levels.len() as f32).clamp(18.0, 48.0);
            let size = egui::vec2(
                label_w + cell_w * g.levels.len() as f32,
                cell_h * (g.rows.len() + 1) as f32,
            );
            let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
            let painter = ui.painter_at(rect);
            let text = ui.visuals().text_color();
            let font = egui::FontId::proportional(11.0);
            for (c, l) in g.levels.iter().enumerate() {
                let x = rect.left() + label_w + (c as f32 + 0.5) * cell_w;
                painter.text(
                    egui::pos2(x, rect.top() + cell_h * 0.5),
                    egui::Align2::CENTER_CENTER,
                    format!("{l:.1}"),
                    font.clone(),
                    text,
                );
            }
            for (r, (label, _)) in g.rows.iter().enumerate() {
                let y = rect.top() + cell_h * (r + 1) as f32;
                painter.text(
                    egui::pos2(rect.left() + 4.0, y + cell_h * 0.5),
                    egui::Align2::LEFT_CENTER,
                    label,
                    font.clone(),
                    text,
                );
                for (c, &mse) in g.mse[r].iter().enumerate() {
                    let cell = egui::Rect::from_min_size(
                        egui::pos2(rect.left() + label_w + c as f32 * cell_w, y),
                        egui::vec2(cell_w - 1.0, cell_h - 1.0),
                    );
                    let [cr, cg, cb] = denoise::heat_rgb(denoise::heat_position(&g, mse));
                    painter.rect_filled(cell, 0.0, egui::Color32::from_rgb(cr, cg, cb));
                    if g.best[c] == r {
                        painter.rect_stroke(
                            cell.shrink(1.0),
                            0.0,
                            egui::Stroke::new(2.0, egui::Color32::WHITE),
                            egui::StrokeKind::Inside,
                        );
                    }
                    let id = ui.scope_id().with(("denoise-cell", r, c));
                    ui.interact(cell, id, egui::Sense::hover())
                        .on_hover_text(format!(
                            "{label} at {} level {:.1}: MSE {mse:.4}, PSNR {:.1} dB{}",
                            self.kind.label(),
                            g.levels[c],
                            crate::train::metrics::psnr_from_mse(mse),
                            if g.best[c] == r {
                                " (the best here)"
                            } else {
                                ""
                            }
                        ));
                }
            }
        });
    }
}

/// Each denoising model's label and training level.
fn denoisers(models: &[ModelRef]) -> Vec<(String, f32)> {
    models
        .iter()
        .filter(|m| !m.config.noise.is_none())
        .map(|m| (m.label.clone(), m.config.noise.level))
        .collect()
}

fn curves_csv(curves: &[Curve]) -> String {
    let mut s = String::from("model,trained_level");
    for l in denoise::levels() {
        s.push_str(&format!(",mse_at_{l:.1}"));
    }
    s.push('\n');
    for c in curves {
        s.push_str(&c.label);
        s.push(',');
        if let Some(t) = c.trained_at {
            s.push_str(&t.to_string());
        }
        if let Ok(m) = &c.mse {
            for v in m {
                s.push_str(&format!(",{v}"));
            }
        }
        s.push('\n');
    }
    s
}

fn gallery_rows(clean: &[f32], noisy: &[f32], rows: &[Row]) -> Vec<GalleryRow> {
    let mut out = Vec::new();
    let mut c = GalleryRow::new("clean");
    let mut n = GalleryRow::new("noisy input");
    let noisy_scores = recon::scores(noisy, clean);
    for ((a, b), s) in clean
        .chunks_exact(PIXELS)
        .zip(noisy.chunks_exact(PIXELS))
        .zip(&noisy_scores)
    {
        c.images
            .push((images::gray(a), String::new(), String::new()));
        n.images
            .push((images::gray(b), format!("{:.4}", s.mse), String::new()));
    }
    out.push(c);
    out.push(n);
    out.extend(rows.iter().map(|r| GalleryRow::of_row(r, true)));
    out
}

impl super::view::AppView for DenoiseView {
    fn id(&self) -> View {
        View::Denoise
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute);
    }
}
