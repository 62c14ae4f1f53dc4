//! The PCA view: a k slider with live reconstructions of test digits and
//! their errors, the explained variance (per component and cumulative, with
//! k and the 90/95/99% marks), eigen-digits, the study's percentile grid,
//! and PCA's error against k with every trained autoencoder as a point.

use std::sync::Arc;

use egui::RichText;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, Points, Text, VLine};

use super::export;
use super::images::{self, Tiles};
use super::state::{AppState, DataStatus, View};
use crate::analysis::{recon, Compute, Pending};
use crate::data::{Dataset, PIXELS};
use crate::pca::{Pca, PERCENTILES};

/// Digits shown in the reconstruction rows.
pub const GRID_DIGITS: usize = 10;
const EIGEN_DIGITS: usize = 16;
const PERCENTILE_COMPONENTS: usize = 5;
/// Test images the error-vs-k curve is computed on.
const CURVE_IMAGES: usize = 2000;

pub struct PcaView {
    pub k: usize,
    /// k the reconstructions were computed for (recompute when it differs).
    shown_k: Option<usize>,
    /// Per-image MSE of the shown reconstructions.
    pub errors: Vec<f64>,
    pub reconstructions: Vec<f32>,
    originals: Tiles,
    recon: Tiles,
    eigen: Tiles,
    percentile: Tiles,
    static_ready: bool,
    curve: Pending<u64, Vec<f64>>,
    grid: Pending<u64, Vec<[usize; 7]>>,
    /// Identity of the PCA the caches belong to.
    pca_id: u64,
}

impl Default for PcaView {
    fn default() -> Self {
        PcaView {
            k: 30,
            shown_k: None,
            errors: Vec::new(),
            reconstructions: Vec::new(),
            originals: Tiles::default(),
            recon: Tiles::default(),
            eigen: Tiles::default(),
            percentile: Tiles::default(),
            static_ready: false,
            curve: Pending::default(),
            grid: Pending::default(),
            pca_id: 0,
        }
    }
}

impl PcaView {
    pub fn mean_error(&self) -> Option<f64> {
        (!self.errors.is_empty())
            .then(|| self.errors.iter().sum::<f64>() / self.errors.len() as f64)
    }

    /// Recompute what depends on k (called when k changes: ~1 ms).
    pub fn update(&mut self, data: &Dataset, pca: &Pca) {
        if self.shown_k == Some(self.k) {
            return;
        }
        let n = GRID_DIGITS.min(data.test.len());
        let x = data.test.rows_f32(0..n);
        (self.reconstructions, self.errors) = recon::pca_grid(pca, self.k, &x);
        self.shown_k = Some(self.k);
    }

    fn reset_if_new(&mut self, pca: &Arc<Pca>) {
        let id = pca.id();
        if id != self.pca_id {
            *self = PcaView {
                k: self.k,
                pca_id: id,
                ..PcaView::default()
            };
        }
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        let (data, pca) = match &state.data {
            DataStatus::Ready {
                data,
                pca: Some(pca),
            } => (data.clone(), pca.clone()),
            DataStatus::Ready { .. } => {
                ui.label("Fitting PCA on the 50,000 training images…");
                ui.spinner();
                return;
            }
            _ => {
                ui.label("PCA appears here once the data set is loaded.");
                return;
            }
        };
        self.reset_if_new(&pca);
        self.request(&data, &pca, compute);
        ui.horizontal(|ui| {
            let l = ui.label("Components k");
            ui.add(egui::Slider::new(&mut self.k, 1..=PIXELS).logarithmic(true))
                .labelled_by(l.id)
                .on_hover_text(
                    "How many principal components reconstruct each image; more keep more detail",
                );
            ui.label(format!(
                "explain {:.1}% of the variance · 90% at {} · 95% at {} · 99% at {}",
                pca.cumulative_ratio[self.k - 1] * 100.0,
                pca.components_for(0.90),
                pca.components_for(0.95),
                pca.components_for(0.99)
            ));
        });
        self.update(&data, &pca);
        let ctx = ui.ctx().clone();
        egui::ScrollArea::vertical().show(ui, |ui| {
            export::figure(ui, "pca-reconstructions", "", None, |ui| {
                self.reconstruction_rows(ui, &ctx, &data)
            });
            ui.separator();
            ui.columns(2, |cols| {
                let variance_csv = || {
                    let mut s = String::from("component,explained_variance_ratio,cumulative\n");
                    for (i, (r, c)) in pca
                        .explained_variance_ratio
                        .iter()
                        .zip(&pca.cumulative_ratio)
                        .enumerate()
                    {
                        s.push_str(&format!("{},{r},{c}\n", i + 1));
                    }
                    s
                };
                export::figure(
                    &mut cols[0],
                    "pca-variance",
                    "",
                    Some(&variance_csv),
                    |ui| variance_plot(ui, &pca, self.k),
                );
                let curve = self.curve.get().cloned();
                let error_csv = || {
                    let mut s = String::from("k,pca_test_mse\n");
                    for (i, e) in curve.iter().flatten().enumerate() {
                        s.push_str(&format!("{},{e}\n", i + 1));
                    }
                    s
                };
                export::figure(&mut cols[1], "pca-error-vs-k", "", Some(&error_csv), |ui| {
                    self.error_plot(ui, state)
                });
            });
            ui.separator();
            export::figure(ui, "pca-eigendigits-percentiles", "", None, |ui| {
                self.static_images(ui, &ctx, &data, &pca)
            });
        });
    }

    fn reconstruction_rows(&mut self, ui: &mut egui::Ui, ctx: &egui::Context, data: &Dataset) {
        let n = self.errors.len();
        let mean = self.mean_error().unwrap_or(0.0);
        ui.label(
            RichText::new(format!(
                "Test digits and their PCA-{} reconstructions · mean MSE {:.4}",
                self.k, mean
            ))
            .strong(),
        );
        let size = 56.0;
        ui.horizontal(|ui| {
            ui.add_sized([90.0, size], egui::Label::new("original"));
            for i in 0..n {
                let tex =
                    self.originals
                        .put(ctx, i, "pca-orig", images::gray(&data.test.image_f32(i)));
                images::show(
                    ui,
                    tex,
                    size,
                    &format!("test image {i}, label {}", data.test.labels[i]),
                );
            }
        });
        ui.horizontal(|ui| {
            ui.add_sized([90.0, size], egui::Label::new(format!("PCA-{}", self.k)));
            for i in 0..n {
                let img = images::gray(&self.reconstructions[i * PIXELS..(i + 1) * PIXELS]);
                let tex = self.recon.put(ctx, i, "pca-rec", img);
                images::show(ui, tex, size, &format!("MSE {:.4}", self.errors[i]));
            }
        });
        ui.horizontal(|ui| {
            ui.add_sized([90.0, 14.0], egui::Label::new(RichText::new("MSE").small()));
            for e in &self.errors {
                ui.add_sized(
                    [size, 14.0],
                    egui::Label::new(RichText::new(format!("{e:.4}")).small()),
                );
            }
        });
    }

    fn request(&mut self, data: &Arc<Dataset>, pca: &Arc<Pca>, compute: &Compute) {
        self.curve.poll();
        self.grid.poll();
        let id = pca.id();
        let (d, p) = (data.clone(), pca.clone());
        self.curve.request(id, || {
            compute.submit_slow("pca-error-curve", move || {
                let n = CURVE_IMAGES.min(d.test.len());
                p.error_curve(&d.test.rows_f32(0..n))
            })
        });
        let (d, p) = (data.clone(), pca.clone());
        self.grid.request(id, || {
            compute.submit_slow("pca-percentile-grid", move || {
                p.percentile_grid(&d.train, PERCENTILE_COMPONENTS)
            })
        });
    }

    fn error_plot(&self, ui: &mut egui::Ui, state: &AppState) {
        ui.label(
            RichText::new(
                "Test MSE against the code size: PCA (line) and trained autoencoders (points)",
            )
            .strong(),
        );
        let k = self.k as f64;
        let response = Plot::new("pca_error_vs_k")
            .height(260.0)
            .legend(Legend::default())
            .x_axis_label("components / bottleneck size (log10)")
            .y_axis_label("test MSE per pixel")
            .x_axis_formatter(|m, _| format!("{:.0}", 10f64.powf(m.value)))
            .show(ui, |plot| {
                if let Some(c) = self.curve.get() {
                    let pts: Vec<[f64; 2]> = c
                        .iter()
                        .enumerate()
                        .map(|(i, &e)| [((i + 1) as f64).log10(), e])
                        .collect();
                    plot.line(Line::new("PCA", pts));
                }
                plot.vline(VLine::new("k", k.log10()).style(egui_plot::LineStyle::dashed_loose()));
                for e in &state.library {
                    if let Some(m) = &e.manifest.test_metrics {
                        let x = (e.manifest.run.model.bottleneck() as f64).log10();
                        plot.points(
                            Points::new("autoencoders", vec![[x, m.mse_per_pixel]]).radius(5.0),
                        );
                        plot.text(
                            Text::new(
                                "",
                                [x, m.mse_per_pixel].into(),
                                format!("  {}", e.manifest.run.model.preset),
                            )
                            .anchor(egui::Align2::LEFT_CENTER),
                        );
                    }
                }
            });
        response
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Error against k"));
        if self.curve.get().is_none() {
            ui.label(RichText::new("computing PCA's error for every k…").weak());
        }
    }

    fn static_images(&mut self, ui: &mut egui::Ui, ctx: &egui::Context, data: &Dataset, pca: &Pca) {
        if !self.static_ready {
            let n = EIGEN_DIGITS;
            self.eigen.put(ctx, 0, "pca-eigen", images::gray(&pca.mean));
            for c in 0..n {
                let comp = pca.component(c);
                self.eigen.put(
                    ctx,
                    c + 1,
                    "pca-eigen",
                    images::diverging(comp, images::abs_max(comp)),
                );
            }
            self.static_ready = true;
        }
        if self.percentile.is_empty() {
            if let Some(grid) = self.grid.get() {
                for (c, row) in grid.iter().enumerate() {
                    for (p, &idx) in row.iter().enumerate() {
                        self.percentile.put(
                            ctx,
                            c * PERCENTILES.len() + p,
                            "pca-perc",
                            images::gray(&data.train.image_f32(idx)),
                        );
                    }
                }
            }
        }
        ui.label(RichText::new("Mean image and eigen-digits (first components; red positive, blue negative, white zero)").strong());
        ui.horizontal_wrapped(|ui| {
            if let Some(t) = self.eigen.get(0) {
                images::show(ui, t, 48.0, "mean training image");
            }
            for c in 0..EIGEN_DIGITS {
                if let Some(t) = self.eigen.get(c + 1) {
                    images::show(
                        ui,
                        t,
                        48.0,
                        &format!(
                            "component {} · {:.2}% of the variance",
                            c + 1,
                            pca.explained_variance_ratio[c] * 100.0
                        ),
                    );
                }
            }
        });
        ui.label(
            RichText::new(
                "Training images at the 2/10/25/50/75/90/98th percentile of each component's score",
            )
            .strong(),
        );
        egui::Grid::new("percentiles").show(ui, |ui| {
            ui.label("");
            for p in PERCENTILES {
                ui.label(format!("{p:.0}%"));
            }
            ui.end_row();
            for c in 0..PERCENTILE_COMPONENTS {
                ui.label(format!("component {}", c + 1));
                for (p, pct) in PERCENTILES.iter().enumerate() {
                    if let Some(t) = self.percentile.get(c * PERCENTILES.len() + p) {
                        images::show(
                            ui,
                            t,
                            40.0,
                            &format!("component {} at the {pct}th percentile", c + 1),
                        );
                    }
                }
                ui.end_row();
            }
        });
    }
}

fn variance_plot(ui: &mut egui::Ui, pca: &Pca, k: usize) {
    ui.label(
        RichText::new(
            "Explained variance: per component (bars), cumulative (line, 100% at the top)",
        )
        .strong(),
    );
    let shown = 200usize;
    let bars: Vec<Bar> = (0..shown)
        .map(|i| Bar::new((i + 1) as f64, pca.explained_variance_ratio[i]).width(0.8))
        .collect();
    // the cumulative curve on the same axis, scaled to the first bar's height
    let top = pca.explained_variance_ratio[0];
    let cumulative: Vec<[f64; 2]> = (0..shown)
        .map(|i| [(i + 1) as f64, pca.cumulative_ratio[i] * top])
        .collect();
    let response = Plot::new("pca_variance")
        .height(260.0)
        .legend(Legend::default())
        .x_axis_label("component")
        .y_axis_label("variance ratio")
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("per component", bars));
            plot.line(Line::new("cumulative", cumulative));
            plot.vline(VLine::new(format!("k = {k}"), k as f64));
            for f in [0.90, 0.95, 0.99] {
                let c = pca.components_for(f);
                if c <= shown {
                    plot.vline(
                        VLine::new(format!("{:.0}% at {c}", f * 100.0), c as f64)
                            .style(egui_plot::LineStyle::dotted_dense()),
                    );
                }
            }
        });
    response
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Explained variance"));
}

impl super::view::AppView for PcaView {
    fn id(&self) -> View {
        View::Pca
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute);
    }
}
