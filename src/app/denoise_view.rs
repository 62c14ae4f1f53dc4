//! The Denoise view: pick a noise type and level; rows show the clean
//! digits, the noisy ones, what each denoising model makes of them, the
//! plain autoencoders, and PCA-k (errors against the clean digits). Below,
//! test MSE against noise level for every model, with each denoising
//! model's training level marked, computed in the background and cached.

use std::collections::HashMap;
use std::sync::Arc;

use egui::RichText;
use egui_plot::{Legend, Line, Plot, Points};

use super::compute::{Compute, Pending};
use super::export;
use super::images::{self, Gallery, GalleryRow};
use super::infer::{self, ModelRef, Row, Source};
use super::state::{AppState, DataStatus};
use crate::data::noise::{Noise, NoiseKind};
use crate::data::{Dataset, PIXELS};
use crate::pca::Pca;
use crate::rng::Rng;

pub const DENOISE_DIGITS: usize = 8;
/// Test images behind each point of the error-vs-level curves.
pub const CURVE_IMAGES: usize = 500;
/// Noise levels of the curves.
pub const CURVE_LEVELS: usize = 11;

#[derive(Clone, PartialEq)]
struct RowsKey {
    noise_kind: NoiseKind,
    level_millis: u32,
    seed: u64,
    k: usize,
    models: Vec<ModelRef>,
    pca: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CurveKey {
    kind: NoiseKind,
    k: usize,
    models: Vec<std::path::PathBuf>,
    pca: usize,
}

/// One model's test MSE at each level of [`levels`].
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    /// Noise level the model was trained with (denoising models).
    pub trained_at: Option<f32>,
    pub mse: Result<Vec<f64>, String>,
}

pub fn levels() -> Vec<f32> {
    (0..CURVE_LEVELS)
        .map(|i| i as f32 / (CURVE_LEVELS - 1) as f32)
        .collect()
}

/// Clean inputs, noisy inputs, and the rows.
type Shown = (Vec<f32>, Vec<f32>, Vec<Row>);

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

/// Denoising models first (by training level), then the others.
fn ordered(models: Vec<ModelRef>) -> Vec<ModelRef> {
    let (mut den, rest): (Vec<_>, Vec<_>) =
        models.into_iter().partition(|m| !m.config.noise.is_none());
    den.sort_by(|a, b| a.config.noise.level.total_cmp(&b.config.noise.level));
    den.extend(rest);
    den
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

    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label("Denoise appears once the data set is loaded and PCA is fitted.");
                return;
            }
        };
        let models = ordered(state.models().into_iter().map(ModelRef::of).collect());
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
            pca: Arc::as_ptr(&pca) as usize,
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
                    let n = DENOISE_DIGITS.min(d.test.len());
                    let clean = d.test.rows_f32(0..n);
                    let mut noisy = clean.clone();
                    noise.apply(&mut noisy, &mut Rng::new(seed));
                    let mut rows = infer::model_rows(&cache, &m, &noisy, &clean);
                    rows.push(infer::pca_row(&p, k, &noisy, &clean));
                    (clean, noisy, rows)
                })
            });
        }
        let ckey = CurveKey {
            kind: self.kind,
            k: self.k,
            models: models.iter().map(|m| m.path.clone()).collect(),
            pca: Arc::as_ptr(&pca) as usize,
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
                models.clone(),
                self.kind,
                self.k,
            );
            self.curves.request(ckey.clone(), || {
                compute.submit_slow("denoise-curves", move || {
                    curves(&cache, &d, &p, &m, kind, k)
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
            self.curve_plot(&mut cols[1], &ckey);
        });
        self.gallery = gallery;
    }

    fn curve_plot(&self, ui: &mut egui::Ui, key: &CurveKey) {
        let curves = self.curves.get_for(key);
        let csv = || curves.map(|c| curves_csv(c)).unwrap_or_default();
        let title = format!(
            "Test MSE against {} noise level ({} test images per point)",
            self.kind.label(),
            CURVE_IMAGES
        );
        export::figure(ui, "denoise-curve", &title, Some(&csv), |ui| {
            let Some(curves) = curves else {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("computing the curves in the background…");
                });
                return;
            };
            let lv = levels();
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

/// Test MSE of each model (and PCA-k) against noise level.
pub fn curves(
    cache: &super::compute::ModelCache,
    data: &Dataset,
    pca: &Arc<Pca>,
    models: &[ModelRef],
    kind: NoiseKind,
    k: usize,
) -> Vec<Curve> {
    let n = CURVE_IMAGES.min(data.test.len());
    let clean = data.test.rows_f32(0..n);
    let noisy: Vec<Vec<f32>> = levels()
        .iter()
        .enumerate()
        .map(|(i, &level)| {
            let mut x = clean.clone();
            Noise { kind, level }.apply(&mut x, &mut Rng::new(1000 + i as u64));
            x
        })
        .collect();
    let mut sources: Vec<(Source, Option<f32>)> = models
        .iter()
        .map(|m| {
            let t = (!m.config.noise.is_none() && m.config.noise.kind == kind)
                .then_some(m.config.noise.level);
            (Source::Model(m.clone()), t)
        })
        .collect();
    sources.push((Source::Pca(pca.clone(), k), None));
    sources
        .into_iter()
        .map(|(s, trained_at)| {
            let mse = noisy
                .iter()
                .map(|x| {
                    infer::errors(cache, &s, x, &clean)
                        .map(|e| e.iter().sum::<f64>() / e.len().max(1) as f64)
                })
                .collect::<Result<Vec<f64>, String>>();
            Curve {
                label: s.label(),
                trained_at,
                mse,
            }
        })
        .collect()
}

fn curves_csv(curves: &[Curve]) -> String {
    let mut s = String::from("model,trained_level");
    for l in levels() {
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
    let noisy_scores = infer::scores(noisy, clean);
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
