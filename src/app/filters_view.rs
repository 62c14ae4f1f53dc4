//! The Filters view: what a trained model's first layer looks for. Dense
//! models show one 28x28 tile per hidden unit (its incoming weights, each
//! tile scaled to its own largest magnitude, diverging colours); conv models
//! show every 3x3 kernel of every layer. Two models side by side, e.g. a
//! sparse autoencoder next to a plain one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui::RichText;
use egui_plot::{Bar, BarChart, Line, Plot};

use super::export;
use super::images::{self, Tiles};
use super::replay_bar::ModelReplay;
use super::state::{AppState, DataStatus, View};
use crate::analysis::filters::{self, Dictionary, DICTIONARY_IMAGES};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::IMAGE_SIDE;
use crate::model::FeatureMaps;
use crate::train::metrics::{self, ActivationStats};

/// Test images behind the activation statistics of a library model.
pub const ACTIVATION_TEST_IMAGES: usize = 2000;

type Acts = Pending<PathBuf, Result<ActivationStats, String>>;
type Maps = Pending<(PathBuf, usize), Result<Vec<FeatureMaps>, String>>;
type Dicts = Pending<PathBuf, Result<Dictionary, String>>;
type Layers = Pending<PathBuf, Result<Vec<filters::FilterLayer>, String>>;

/// Units the dictionary shows at the most (the most often firing).
const DICTIONARY_UNITS: usize = 64;

/// Filters of one checkpoint, ready to draw.
pub struct LoadedFilters {
    pub preset: String,
    pub description: String,
    /// One entry per tile: the layer it belongs to.
    pub layers: Vec<(String, usize)>,
    pub tiles: Tiles,
    /// Side in pixels of each tile's image (28 for dense, 3 for conv).
    pub side: usize,
}

impl LoadedFilters {
    pub fn tile_count(&self) -> usize {
        self.tiles.len()
    }
}

#[derive(Default)]
pub struct FiltersView {
    pub left: Option<PathBuf>,
    pub right: Option<PathBuf>,
    pub loaded: HashMap<PathBuf, Result<LoadedFilters, String>>,
    acts: [Acts; 2],
    maps: [Maps; 2],
    map_tiles: [Tiles; 2],
    maps_shown: [Option<(PathBuf, usize)>; 2],
    dicts: [Dicts; 2],
    dict_tiles: [Tiles; 2],
    dict_shown: [Option<PathBuf>; 2],
    /// Test image whose feature maps conv models show.
    pub input_index: usize,
    /// Each column's training replay.
    pub replay: [ModelReplay; 2],
    /// Each column's filters being read.
    layers: [Layers; 2],
}

/// A model's filters as tiles (`layers` from [`filters::filters`], read on
/// the compute thread: a snapshot's model is built, a replay file read).
pub fn load_filters(
    ctx: &egui::Context,
    model: &ModelRef,
    layers: Vec<filters::FilterLayer>,
) -> LoadedFilters {
    let mut tiles = Tiles::default();
    for l in &layers {
        for f in &l.filters {
            let img = images::diverging_sized(f, [l.side, l.side], images::abs_max(f));
            tiles.put(ctx, tiles.len(), "filter", img);
        }
    }
    LoadedFilters {
        preset: model.config.preset.clone(),
        description: model.config.describe(),
        side: layers.first().map_or(IMAGE_SIDE, |l| l.side),
        layers: layers
            .into_iter()
            .map(|l| (l.label, l.filters.len()))
            .collect(),
        tiles,
    }
}

impl FiltersView {
    /// Until the user picks, show a sparse model (if any) next to another one.
    fn auto_pick(&mut self, state: &AppState) {
        let lib = &state.library;
        if self.left.is_none() {
            let sparse = lib.iter().find(|e| e.manifest.run.model.l1 > 0.0);
            self.left = sparse.or(lib.first()).map(|e| e.path.clone());
        }
        if self.right.is_none() {
            let other = lib
                .iter()
                .find(|e| Some(&e.path) != self.left.as_ref() && e.manifest.run.model.l1 == 0.0);
            self.right = other.map(|e| e.path.clone());
        }
        if self.left.is_none() {
            // nothing saved yet: the model training now
            self.left = state.live_models().first().map(|m| m.path.clone());
        }
    }

    pub fn filters(&self, path: &Path) -> Option<&LoadedFilters> {
        self.loaded.get(path).and_then(|r| r.as_ref().ok())
    }

    /// Activation statistics of the model in column `i`, once computed.
    pub fn activations(&self, i: usize) -> Option<&ActivationStats> {
        self.acts[i].get().and_then(|r| r.as_ref().ok())
    }

    /// Feature maps shown in column `i`, once computed.
    pub fn feature_maps(&self, i: usize) -> Option<&[FeatureMaps]> {
        self.maps[i]
            .get()
            .and_then(|r| r.as_ref().ok())
            .map(|v| v.as_slice())
    }

    fn show(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        live_activations(ui, state);
        if state.library.is_empty() && state.live_models().is_empty() {
            ui.label(RichText::new("Train a model (or import one into the Library) to see what its units look for.").weak());
            return;
        }
        self.auto_pick(state);
        ui.label("First-layer weights of each hidden unit (red: the unit likes ink there, blue: it dislikes it; each tile scaled to itself). Conv models: every 3×3 kernel.");
        let models = state.view_models();
        let mut shown = Vec::new();
        ui.columns(2, |cols| {
            for (i, col) in cols.iter_mut().enumerate() {
                if let Some(model) = self.column_model(col, i, state, &models) {
                    self.column(col, i, &model, state, compute);
                    shown.push(model.path);
                }
            }
        });
        // only the filters on screen keep their textures
        self.loaded.retain(|p, _| shown.contains(p));
    }

    /// Column `i`'s choice of model and its replay; returns the model to
    /// show (a snapshot when the replay is moved).
    fn column_model(
        &mut self,
        col: &mut egui::Ui,
        i: usize,
        state: &AppState,
        models: &[ModelRef],
    ) -> Option<ModelRef> {
        let slot = if i == 0 {
            &mut self.left
        } else {
            &mut self.right
        };
        // a model deleted from the library is gone; a live one is followed
        // as its weights refresh, then to the file it was saved to
        let current = slot.as_ref().and_then(|p| state.resolve(p));
        *slot = current.as_ref().map(|m| m.path.clone());
        let label = if i == 0 { "Left model" } else { "Right model" };
        let chosen = current
            .as_ref()
            .map(|m| m.label.clone())
            .unwrap_or_else(|| "choose…".into());
        let l = col.label(label);
        egui::ComboBox::from_id_salt(label)
            .selected_text(chosen)
            .show_ui(col, |ui| {
                for m in models {
                    let epochs = state
                        .library
                        .iter()
                        .find(|e| e.path == m.path)
                        .map(|e| format!(" ({} epochs)", e.manifest.epochs_done))
                        .unwrap_or_default();
                    let text = format!("{}{epochs}", m.label);
                    ui.selectable_value(slot, Some(m.path.clone()), text);
                }
            })
            .response
            .labelled_by(l.id)
            .on_hover_text(
                "The model whose filters, activations and feature maps this column shows",
            );
        let model = slot.as_ref().and_then(|p| state.resolve(p))?;
        Some(self.replay[i].one(col, &format!("filters-{i}"), state, &model))
    }

    /// Column `i`: `model`'s activations, feature maps or dictionary, and
    /// filters.
    fn column(
        &mut self,
        col: &mut egui::Ui,
        i: usize,
        model: &ModelRef,
        state: &AppState,
        compute: &Compute,
    ) {
        let path = model.path.clone();
        if !self.loaded.contains_key(&path) {
            let (cache, m) = (compute.models.clone(), model.clone());
            self.layers[i].request(path.clone(), || {
                compute.submit(&format!("filters-layers-{i}"), move || {
                    filters::filters(&*cache.get(&m.path)?)
                })
            });
            self.layers[i].poll();
            match self.layers[i].value.take() {
                Some((p, layers)) if p == path => {
                    let loaded = layers.map(|l| load_filters(col.ctx(), model, l));
                    self.loaded.insert(path.clone(), loaded);
                }
                other => {
                    self.layers[i].value = other;
                    col.spinner();
                    return;
                }
            }
        }
        let Some(loaded) = self.loaded.get(&path) else {
            return;
        };
        if let Err(e) = loaded {
            col.colored_label(col.visuals().error_fg_color, e.as_str());
            return;
        }
        let is_conv = loaded.as_ref().is_ok_and(|f| f.side == 3);
        // the statistics over the test set follow a live model at its
        // latest kept snapshot (every epoch), not each copy every few
        // seconds: they would take cores from the training
        let analysed = match state.replay_of(model) {
            Some((base, moments)) if crate::analysis::models::is_live(&model.path) => {
                let k = moments.len() - 1;
                base.at(k, &moments[k]).path
            }
            _ => path.clone(),
        };
        self.request(i, &analysed, is_conv, state, compute);
        self.acts[i].poll();
        self.maps[i].poll();
        self.dicts[i].poll();
        let ctx = col.ctx().clone();
        egui::ScrollArea::vertical()
            .id_salt(("filters", i))
            .show(col, |ui| {
                show_activations(ui, &self.acts[i], i);
                ui.separator();
                if is_conv {
                    self.show_maps(ui, &ctx, i, &analysed);
                    ui.separator();
                } else {
                    self.show_dictionary(ui, i, &analysed);
                    ui.separator();
                }
                if let Some(Ok(f)) = self.loaded.get(&path) {
                    show_filters(ui, f);
                }
            });
    }

    fn request(
        &mut self,
        i: usize,
        path: &Path,
        is_conv: bool,
        state: &AppState,
        compute: &Compute,
    ) {
        let DataStatus::Ready { data, .. } = &state.data else {
            return;
        };
        let (cache, d, p) = (compute.models.clone(), data.clone(), path.to_path_buf());
        self.acts[i].request(path.to_path_buf(), || {
            compute.submit_slow(&format!("filters-activations-{i}"), move || {
                let m = cache.get(&p)?;
                let n = ACTIVATION_TEST_IMAGES.min(d.test.len());
                let codes = m
                    .encode(&d.test.rows_f32(0..n))
                    .map_err(|e| e.to_string())?;
                Ok(metrics::activation_stats(&codes, m.config.bottleneck()))
            })
        });
        if !is_conv {
            let (cache, d, p) = (compute.models.clone(), data.clone(), path.to_path_buf());
            self.dicts[i].request(path.to_path_buf(), || {
                compute.submit_slow(&format!("filters-dictionary-{i}"), move || {
                    let m = cache.get(&p)?;
                    let n = DICTIONARY_IMAGES.min(d.test.len());
                    filters::dictionary(&m, &d.test.rows_f32(0..n))
                })
            });
        }
        if is_conv && !data.test.is_empty() {
            let index = self.input_index.min(data.test.len() - 1);
            let (cache, d, p) = (compute.models.clone(), data.clone(), path.to_path_buf());
            self.maps[i].request((path.to_path_buf(), index), || {
                compute.submit(&format!("filters-maps-{i}"), move || {
                    let m = cache.get(&p)?;
                    m.feature_maps(&d.test.image_f32(index))
                        .map_err(|e| e.to_string())
                })
            });
        }
    }

    fn show_maps(&mut self, ui: &mut egui::Ui, ctx: &egui::Context, i: usize, path: &Path) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Feature maps of test image").strong());
            let l = ui.label("#");
            ui.add(egui::DragValue::new(&mut self.input_index).range(0..=9_999))
                .labelled_by(l.id)
                .on_hover_text("Which test image to push through the layers");
        });
        let Some((key, Ok(maps))) = &self.maps[i].value else {
            ui.spinner();
            return;
        };
        if key.0 != path {
            ui.spinner();
            return;
        }
        if self.maps_shown[i].as_ref() != Some(key) {
            let mut n = 0;
            for f in maps {
                let [c, h, w] = f.shape;
                // one scale per layer, so channels compare
                let top = f.values.iter().cloned().fold(1e-9f32, f32::max);
                for ch in 0..c {
                    let v: Vec<f32> = f.values[ch * h * w..(ch + 1) * h * w]
                        .iter()
                        .map(|x| x / top)
                        .collect();
                    self.map_tiles[i].put(
                        ctx,
                        n,
                        &format!("featuremap-{i}"),
                        images::gray_sized(&v, [w, h]),
                    );
                    n += 1;
                }
            }
            self.maps_shown[i] = Some(key.clone());
        }
        let id = format!("feature-maps-{i}");
        let tiles = &self.map_tiles[i];
        export::figure(
            ui,
            &id,
            "Each channel, scaled per layer (white = the layer's largest activation)",
            None,
            |ui| {
                let mut n = 0;
                for f in maps {
                    let [c, h, w] = f.shape;
                    ui.label(format!("{}: {c} × {h}×{w}", f.name));
                    ui.horizontal_wrapped(|ui| {
                        ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
                        for ch in 0..c {
                            if let Some(t) = tiles.get(n) {
                                images::show(
                                    ui,
                                    t,
                                    if h >= 14 { 40.0 } else { 28.0 },
                                    &format!("{} channel {ch}", f.name),
                                );
                            }
                            n += 1;
                        }
                    });
                }
            },
        );
    }
}

/// Statistics of the model being trained, refreshed every epoch.
fn live_activations(ui: &mut egui::Ui, state: &AppState) {
    let Some(run) = state.active_run() else {
        return;
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Training now: {}", run.label())).strong());
        match &run.activations {
            None => {
                ui.label(RichText::new("its code statistics appear after the first epoch").weak());
            }
            Some((epoch, s)) => {
                ui.label(format!(
                    "after epoch {epoch}: {} of {} code units never fire ({:.0}%), {:.0}% of activations are zero, mean activation {:.3} (on {} validation images)",
                    s.dead,
                    s.units(),
                    s.dead_fraction() * 100.0,
                    s.zero_fraction * 100.0,
                    s.mean.iter().sum::<f32>() / s.units().max(1) as f32,
                    s.n_images
                ));
            }
        }
    });
    if let Some((_, s)) = &run.activations {
        histogram_plot(ui, s, "live-activations", 110.0);
    }
    ui.separator();
}

fn histogram_plot(ui: &mut egui::Ui, s: &ActivationStats, id: &str, height: f32) {
    let width = s.max.max(1e-6) as f64 / s.hist.len().max(1) as f64;
    let bars: Vec<Bar> = s
        .hist
        .iter()
        .enumerate()
        .map(|(b, &f)| Bar::new((b as f64 + 0.5) * width, f).width(width))
        .collect();
    Plot::new(id)
        .height(height)
        .x_axis_label("activation (non-zero)")
        .y_axis_label("fraction")
        .allow_scroll(false)
        .show(ui, |p| p.bar_chart(BarChart::new("activations", bars)));
}

fn show_activations(ui: &mut egui::Ui, acts: &Acts, column: usize) {
    let Some(r) = acts.get() else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("encoding the test set…");
        });
        return;
    };
    let s = match r {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            return;
        }
        Ok(s) => s,
    };
    let csv = || {
        let mut out = String::from("unit,mean_activation\n");
        for (u, m) in s.mean.iter().enumerate() {
            out.push_str(&format!("{u},{m}\n"));
        }
        out
    };
    let title = format!("Code activations over {} test images", s.n_images);
    export::figure(
        ui,
        &format!("activations-{column}"),
        &title,
        Some(&csv),
        |ui| {
            ui.label(format!(
                "{} of {} units never fire ({:.1}%) · {:.0}% of activations are zero · mean {:.3}",
                s.dead,
                s.units(),
                s.dead_fraction() * 100.0,
                s.zero_fraction * 100.0,
                s.mean.iter().sum::<f32>() / s.units().max(1) as f32
            ));
            histogram_plot(ui, s, &format!("act-hist-{column}"), 120.0);
            let mut sorted = s.mean.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let pts: Vec<[f64; 2]> = sorted
                .iter()
                .enumerate()
                .map(|(u, &m)| [u as f64, m as f64])
                .collect();
            Plot::new(format!("act-mean-{column}"))
                .height(100.0)
                .x_axis_label("unit (sorted)")
                .y_axis_label("mean activation")
                .allow_scroll(false)
                .show(ui, |p| p.line(Line::new("mean activation per unit", pts)));
        },
    );
}

impl FiltersView {
    /// The dictionary of column `i`, once computed (tests).
    pub fn dictionary(&self, i: usize) -> Option<&Dictionary> {
        self.dicts[i].get().and_then(|d| d.as_ref().ok())
    }

    /// What each code unit draws, most often firing first; beside each,
    /// its encoder filter where the code is the first layer.
    fn show_dictionary(&mut self, ui: &mut egui::Ui, i: usize, path: &Path) {
        let d = match self.dicts[i].get_for(&path.to_path_buf()) {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("decoding each code unit…");
                });
                return;
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
            Some(Ok(d)) => d.clone(),
        };
        let shown: Vec<usize> = d.order.iter().copied().take(DICTIONARY_UNITS).collect();
        if self.dict_shown[i].as_deref() != Some(path) {
            let ctx = ui.ctx().clone();
            for (k, &u) in shown.iter().enumerate() {
                let img = &d.images[u];
                self.dict_tiles[i].put(&ctx, 2 * k + 1, "dictionary", images::gray(img));
                if let Some(enc) = &d.encoder {
                    let f = &enc[u];
                    let t = images::diverging(f, images::abs_max(f));
                    self.dict_tiles[i].put(&ctx, 2 * k, "dictionary-filter", t);
                }
            }
            self.dict_shown[i] = Some(path.to_path_buf());
        }
        let title = if d.encoder.is_some() {
            "What each code unit draws (left: its encoder filter)"
        } else {
            "What each code unit draws"
        };
        ui.label(
            RichText::new(format!(
                "The mean code with one unit at its 95th percentile, decoded; most often firing first{}.",
                if shown.len() < d.order.len() {
                    format!(" ({} of {} units)", shown.len(), d.order.len())
                } else {
                    String::new()
                }
            ))
            .small()
            .weak(),
        );
        let tiles = &self.dict_tiles[i];
        export::figure(ui, &format!("dictionary-{i}"), title, None, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
                for (k, &u) in shown.iter().enumerate() {
                    let hover = format!(
                        "unit {u}: fires on {:.0}% of the test digits",
                        d.fire_rate[u] * 100.0
                    );
                    if d.encoder.is_some() {
                        if let Some(t) = tiles.get(2 * k) {
                            images::show(ui, t, 30.0, &hover);
                        }
                    }
                    if let Some(t) = tiles.get(2 * k + 1) {
                        images::show(ui, t, 30.0, &hover);
                    }
                    if d.encoder.is_some() {
                        ui.add_space(6.0);
                    }
                }
            });
        });
    }
}

fn show_filters(ui: &mut egui::Ui, f: &LoadedFilters) {
    ui.label(RichText::new(&f.description).small().weak());
    let size = if f.side == 3 { 18.0 } else { 30.0 };
    let mut index = 0;
    for (name, count) in &f.layers {
        ui.label(RichText::new(name).strong());
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing = egui::vec2(2.0, 2.0);
            for _ in 0..*count {
                if let Some(t) = f.tiles.get(index) {
                    images::show(ui, t, size, &format!("{} filter {index}", f.preset));
                }
                index += 1;
            }
        });
    }
}

impl super::view::AppView for FiltersView {
    fn id(&self) -> View {
        View::Filters
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.compute);
    }
}
