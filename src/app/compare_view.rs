//! The Compare view: the same test digits through PCA-k and every model of
//! the library, side by side, with per-image MSE, PSNR and SSIM and an
//! absolute-error heat map; inputs picked at random, by class, as the worst
//! of a chosen model, or by index. Below, a sortable table of every model's
//! test-set figures (from the manifests, plus PCA-k computed here).

use egui::RichText;

use super::export;
use super::images::{self, Gallery, GalleryRow};
use super::state::{AppState, DataStatus, View};
use crate::analysis::recon::{self, Row, Source};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::{Dataset, PIXELS};
use crate::rng::Rng;
use crate::train::metrics::Metrics;

/// Digits per row.
pub const COMPARE_DIGITS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Random,
    Class,
    Worst,
    Index,
}

impl Pick {
    const ALL: [Pick; 4] = [Pick::Random, Pick::Class, Pick::Worst, Pick::Index];
    fn label(self) -> &'static str {
        match self {
            Pick::Random => "random",
            Pick::Class => "by class",
            Pick::Worst => "worst of a model",
            Pick::Index => "from an index",
        }
    }
}

/// Table columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Model,
    Params,
    Bottleneck,
    Epochs,
    Mse,
    Psnr,
    Ssim,
    Probe,
    TrainTime,
    Speed,
}

impl Column {
    const ALL: [Column; 10] = [
        Column::Model,
        Column::Params,
        Column::Bottleneck,
        Column::Epochs,
        Column::Mse,
        Column::Psnr,
        Column::Ssim,
        Column::Probe,
        Column::TrainTime,
        Column::Speed,
    ];
    fn label(self) -> &'static str {
        match self {
            Column::Model => "model",
            Column::Params => "params",
            Column::Bottleneck => "bottleneck",
            Column::Epochs => "epochs",
            Column::Mse => "test MSE",
            Column::Psnr => "PSNR dB",
            Column::Ssim => "SSIM",
            Column::Probe => "probe acc.",
            Column::TrainTime => "train time",
            Column::Speed => "samples/s",
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    pub model: String,
    pub params: usize,
    pub bottleneck: usize,
    pub epochs: usize,
    pub metrics: Option<Metrics>,
    pub train_secs: Option<f64>,
    pub samples_per_sec: Option<f64>,
}

impl TableRow {
    fn key(&self, c: Column) -> f64 {
        let m = self.metrics.as_ref();
        match c {
            Column::Model => 0.0,
            Column::Params => self.params as f64,
            Column::Bottleneck => self.bottleneck as f64,
            Column::Epochs => self.epochs as f64,
            Column::Mse => m.map_or(f64::INFINITY, |m| m.mse_per_pixel),
            Column::Psnr => m.map_or(f64::NEG_INFINITY, |m| m.psnr),
            Column::Ssim => m.map_or(f64::NEG_INFINITY, |m| m.ssim),
            Column::Probe => m
                .and_then(|m| m.probe_accuracy)
                .unwrap_or(f64::NEG_INFINITY),
            Column::TrainTime => self.train_secs.unwrap_or(0.0),
            Column::Speed => self.samples_per_sec.unwrap_or(0.0),
        }
    }
}

/// Sort table rows by a column.
pub fn sort_rows(rows: &mut [TableRow], by: Column, ascending: bool) {
    rows.sort_by(|a, b| {
        let o = if by == Column::Model {
            a.model.cmp(&b.model)
        } else {
            a.key(by).total_cmp(&b.key(by))
        };
        if ascending {
            o
        } else {
            o.reverse()
        }
    });
}

#[derive(Clone, PartialEq)]
struct RowsKey {
    indices: Vec<usize>,
    k: usize,
    models: Vec<ModelRef>,
    pca: u64,
}

pub struct CompareView {
    pub pick: Pick,
    pub seed: u64,
    pub class: u8,
    pub index: usize,
    pub worst_of: Option<ModelRef>,
    pub k: usize,
    pub heat: bool,
    pub sort_by: Column,
    pub ascending: bool,
    rows: Pending<RowsKey, (Vec<f32>, Vec<Row>)>,
    worst: Pending<(std::path::PathBuf, usize), Result<Vec<f64>, String>>,
    pca_metrics: Pending<(usize, u64), Metrics>,
    gallery: Gallery,
    gallery_for: Option<(usize, bool)>,
    generation: usize,
}

impl Default for CompareView {
    fn default() -> Self {
        CompareView {
            pick: Pick::Random,
            seed: 1,
            class: 0,
            index: 0,
            worst_of: None,
            k: 30,
            heat: false,
            sort_by: Column::Mse,
            ascending: true,
            rows: Pending::default(),
            worst: Pending::default(),
            pca_metrics: Pending::default(),
            gallery: Gallery::default(),
            gallery_for: None,
            generation: 0,
        }
    }
}

impl CompareView {
    /// The reconstruction rows shown (PCA first), once computed.
    pub fn rows(&self) -> Option<&[Row]> {
        self.rows.get().map(|(_, r)| r.as_slice())
    }

    /// Test-set indices of the chosen inputs.
    fn indices(&self, data: &Dataset) -> Option<Vec<usize>> {
        let n = data.test.len();
        if n == 0 {
            return Some(Vec::new());
        }
        Some(match self.pick {
            Pick::Random => {
                let mut rng = Rng::new(self.seed);
                (0..COMPARE_DIGITS.min(n)).map(|_| rng.below(n)).collect()
            }
            Pick::Class => {
                let mut rng = Rng::new(self.seed);
                let mut of: Vec<usize> = (0..n)
                    .filter(|&i| data.test.labels[i] == self.class)
                    .collect();
                rng.shuffle(&mut of);
                of.truncate(COMPARE_DIGITS);
                of
            }
            Pick::Index => (0..COMPARE_DIGITS.min(n))
                .map(|i| (self.index + i) % n)
                .collect(),
            Pick::Worst => {
                let errs = self.worst.get()?.as_ref().ok()?;
                let mut order: Vec<usize> = (0..errs.len()).collect();
                order.sort_by(|&a, &b| errs[b].total_cmp(&errs[a]));
                order.truncate(COMPARE_DIGITS);
                order
            }
        })
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label("Compare appears once the data set is loaded and PCA is fitted.");
                return;
            }
        };
        // the library's models and those training now (the table below
        // holds the library's test metrics)
        let models = state.view_models();
        if self.rows.poll() {
            self.generation += 1;
        }
        self.worst.poll();
        self.pca_metrics.poll();
        self.controls(ui, &models);

        if self.pick == Pick::Worst {
            if let Some(m) = self.worst_of.clone().or_else(|| models.first().cloned()) {
                self.worst_of = Some(m.clone());
                let cache = compute.models.clone();
                let d = data.clone();
                self.worst.request((m.path.clone(), d.test.len()), || {
                    compute.submit_slow("compare-worst", move || {
                        let x = d.test.to_f32();
                        recon::errors(&cache, &Source::Model(m), &x, &x)
                    })
                });
            }
            if let Some(Err(e)) = self.worst.get() {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
        if let Some(indices) = self.indices(&data) {
            let key = RowsKey {
                indices: indices.clone(),
                k: self.k,
                models: models.clone(),
                pca: pca.id(),
            };
            let (cache, d, p, k) = (compute.models.clone(), data.clone(), pca.clone(), self.k);
            self.rows.request(key, || {
                compute.submit("compare-rows", move || {
                    let x: Vec<f32> = indices.iter().flat_map(|&i| d.test.image_f32(i)).collect();
                    let mut rows = vec![recon::pca_row(&p, k, &x, &x)];
                    rows.extend(recon::model_rows(&cache, &models, &x, &x));
                    (x, rows)
                })
            });
        }
        // PCA-k's test-set figures for the table
        {
            let (d, p, k) = (data.clone(), pca.clone(), self.k);
            self.pca_metrics.request((k, pca.id()), || {
                compute.submit_slow("compare-pca-metrics", move || {
                    recon::pca_test_metrics(&d, &p, k)
                })
            });
        }
        let want = (self.generation, self.heat);
        if self.gallery_for != Some(want) {
            if let Some((x, rows)) = self.rows.get() {
                self.gallery
                    .set(ui.ctx(), "compare", gallery_rows(x, rows, self.heat));
                self.gallery_for = Some(want);
            }
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            let title = if self.heat {
                "Inputs and reconstructions with |error| heat maps (caption: MSE)"
            } else {
                "Inputs and reconstructions (caption: MSE per pixel; hover for PSNR and SSIM)"
            };
            export::figure(ui, "compare-rows", title, None, |ui| {
                if self.gallery.is_empty() || self.rows.is_busy() && self.rows.get().is_none() {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("reconstructing…");
                    });
                }
                self.gallery.show(ui, "compare-grid", 52.0);
            });
            ui.separator();
            self.table(ui, state);
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui, models: &[ModelRef]) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Inputs");
            egui::ComboBox::from_id_salt("compare-pick")
                .selected_text(self.pick.label())
                .show_ui(ui, |ui| {
                    for p in Pick::ALL {
                        ui.selectable_value(&mut self.pick, p, p.label());
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Which test digits to compare");
            match self.pick {
                Pick::Random | Pick::Class => {
                    if self.pick == Pick::Class {
                        let l = ui.label("class");
                        ui.add(egui::Slider::new(&mut self.class, 0..=9))
                            .labelled_by(l.id)
                            .on_hover_text("Show test digits of this class");
                    }
                    if ui
                        .button("New sample")
                        .on_hover_text("Draw other test digits")
                        .clicked()
                    {
                        self.seed = self.seed.wrapping_add(1);
                    }
                    ui.label(RichText::new(format!("seed {}", self.seed)).weak());
                }
                Pick::Worst => {
                    let l = ui.label("model");
                    let chosen = self
                        .worst_of
                        .as_ref()
                        .map(|m| m.label.clone())
                        .unwrap_or_else(|| "choose…".into());
                    egui::ComboBox::from_id_salt("compare-worst")
                        .selected_text(chosen)
                        .show_ui(ui, |ui| {
                            for m in models {
                                ui.selectable_value(&mut self.worst_of, Some(m.clone()), &m.label);
                            }
                        })
                        .response
                        .labelled_by(l.id)
                        .on_hover_text("Show the test digits this model reconstructs worst");
                }
                Pick::Index => {
                    let l = ui.label("first index");
                    ui.add(egui::DragValue::new(&mut self.index).range(0..=9_999))
                        .labelled_by(l.id)
                        .on_hover_text("Index of the first test image shown; the next ones follow");
                }
            }
            ui.separator();
            let l = ui.label("PCA k");
            ui.add(egui::Slider::new(&mut self.k, 1..=PIXELS).logarithmic(true))
                .labelled_by(l.id)
                .on_hover_text("Components of the PCA row (30 matches the deep autoencoder's code)");
            ui.checkbox(&mut self.heat, "error heat maps")
                .on_hover_text("Show |reconstruction − input| instead of the reconstruction (black: exact, yellow: off by 1)");
        });
    }

    /// Rows of the table: PCA-k, then every library model.
    pub fn table_rows(&self, state: &AppState) -> Vec<TableRow> {
        let mut rows = Vec::new();
        rows.push(TableRow {
            model: format!("PCA-{}", self.k),
            params: self.k * PIXELS + PIXELS,
            bottleneck: self.k,
            epochs: 0,
            metrics: self.pca_metrics.get_for_k(self.k),
            train_secs: None,
            samples_per_sec: None,
        });
        for e in &state.library {
            let m = &e.manifest;
            rows.push(TableRow {
                model: e.label(),
                params: m.params,
                bottleneck: m.run.model.bottleneck(),
                epochs: m.epochs_done,
                metrics: m.test_metrics.clone(),
                train_secs: Some(m.train_secs),
                samples_per_sec: Some(m.samples_per_sec),
            });
        }
        sort_rows(&mut rows, self.sort_by, self.ascending);
        rows
    }

    fn table(&mut self, ui: &mut egui::Ui, state: &AppState) {
        let rows = self.table_rows(state);
        let csv = || table_csv(&rows);
        export::figure(
            ui,
            "compare-table",
            "Full test set (click a column to sort)",
            Some(&csv),
            |ui| {
                egui::Grid::new("compare-table")
                    .striped(true)
                    .spacing(egui::vec2(14.0, 4.0))
                    .show(ui, |ui| {
                        for c in Column::ALL {
                            let arrow = if self.sort_by == c {
                                if self.ascending {
                                    " (asc)"
                                } else {
                                    " (desc)"
                                }
                            } else {
                                ""
                            };
                            if ui
                                .button(RichText::new(format!("{}{arrow}", c.label())).strong())
                                .on_hover_text("Sort by this column (again: reverse)")
                                .clicked()
                            {
                                if self.sort_by == c {
                                    self.ascending = !self.ascending;
                                } else {
                                    self.sort_by = c;
                                    self.ascending = !matches!(
                                        c,
                                        Column::Psnr | Column::Ssim | Column::Probe | Column::Speed
                                    );
                                }
                            }
                        }
                        ui.end_row();
                        for r in &rows {
                            for cell in row_cells(r) {
                                ui.label(cell);
                            }
                            ui.end_row();
                        }
                    });
            },
        );
    }
}

impl Pending<(usize, u64), Metrics> {
    fn get_for_k(&self, k: usize) -> Option<Metrics> {
        self.value
            .as_ref()
            .filter(|((kk, _), _)| *kk == k)
            .map(|(_, m)| m.clone())
    }
}

fn row_cells(r: &TableRow) -> Vec<String> {
    let m = r.metrics.as_ref();
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "–".into());
    vec![
        r.model.clone(),
        r.params.to_string(),
        r.bottleneck.to_string(),
        if r.epochs == 0 && r.train_secs.is_none() {
            "–".into()
        } else {
            r.epochs.to_string()
        },
        opt(m.map(|m| m.mse_per_pixel), &|v| format!("{v:.5}")),
        opt(m.map(|m| m.psnr), &|v| format!("{v:.2}")),
        opt(m.map(|m| m.ssim), &|v| format!("{v:.3}")),
        opt(m.and_then(|m| m.probe_accuracy), &|v| {
            format!("{:.1}%", v * 100.0)
        }),
        opt(r.train_secs, &|v| format!("{v:.0} s")),
        opt(r.samples_per_sec, &|v| format!("{v:.0}")),
    ]
}

fn table_csv(rows: &[TableRow]) -> String {
    let mut s = String::from(
        "model,params,bottleneck,epochs,test_mse,psnr_db,ssim,probe_accuracy,train_secs,samples_per_sec\n",
    );
    for r in rows {
        let m = r.metrics.as_ref();
        let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.model,
            r.params,
            r.bottleneck,
            r.epochs,
            f(m.map(|m| m.mse_per_pixel)),
            f(m.map(|m| m.psnr)),
            f(m.map(|m| m.ssim)),
            f(m.and_then(|m| m.probe_accuracy)),
            f(r.train_secs),
            f(r.samples_per_sec),
        ));
    }
    s
}

/// The gallery: the inputs, then each row's reconstructions (or error maps).
fn gallery_rows(x: &[f32], rows: &[Row], heat: bool) -> Vec<GalleryRow> {
    let mut out = vec![GalleryRow::plain("input", x)];
    for r in rows {
        let mut g = GalleryRow::new(match r.mean_mse() {
            Some(m) => {
                let n = r.scores.len().max(1) as f64;
                let psnr = r.scores.iter().map(|s| s.psnr).sum::<f64>() / n;
                let ssim = r.scores.iter().map(|s| s.ssim).sum::<f64>() / n;
                format!("{}\nMSE {m:.4}\n{psnr:.1} dB · SSIM {ssim:.2}", r.label)
            }
            None => r.label.clone(),
        });
        match &r.images {
            Err(e) => g.error = Some(e.clone()),
            Ok(rec) => {
                for ((img, orig), s) in rec
                    .chunks_exact(PIXELS)
                    .zip(x.chunks_exact(PIXELS))
                    .zip(&r.scores)
                {
                    let tex = if heat {
                        images::error_map(img, orig)
                    } else {
                        images::gray(img)
                    };
                    g.images.push((
                        tex,
                        format!("{:.4}", s.mse),
                        format!("(PSNR {:.1} dB, SSIM {:.3})", s.psnr, s.ssim),
                    ));
                }
            }
        }
        out.push(g);
    }
    out
}

impl super::view::AppView for CompareView {
    fn id(&self) -> View {
        View::Compare
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, mse: f64, params: usize) -> TableRow {
        TableRow {
            model: name.into(),
            params,
            bottleneck: 1,
            epochs: 1,
            metrics: Some(Metrics {
                mse_per_pixel: mse,
                ..Metrics::default()
            }),
            train_secs: None,
            samples_per_sec: None,
        }
    }

    #[test]
    fn sorting_by_columns() {
        let mut rows = vec![row("b", 0.02, 10), row("a", 0.01, 30), row("c", 0.03, 20)];
        sort_rows(&mut rows, Column::Mse, true);
        assert_eq!(
            rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        sort_rows(&mut rows, Column::Params, false);
        assert_eq!(
            rows.iter().map(|r| r.params).collect::<Vec<_>>(),
            [30, 20, 10]
        );
        sort_rows(&mut rows, Column::Model, true);
        assert_eq!(rows[0].model, "a");
        let csv = table_csv(&rows);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(1).unwrap().starts_with("a,30,1,1,0.01,"));
    }
}
