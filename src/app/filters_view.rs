//! The Filters view: what a trained model's first layer looks for. Dense
//! models show one 28x28 tile per hidden unit (its incoming weights, each
//! tile scaled to its own largest magnitude, diverging colours); conv models
//! show every 3x3 kernel of every layer. Two models side by side, e.g. a
//! sparse autoencoder next to a plain one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use egui::RichText;

use super::images::{self, Tiles};
use super::state::AppState;
use crate::data::PIXELS;
use crate::model::checkpoint;

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
}

/// Read a checkpoint and turn its first-layer weights (dense) or all kernels
/// (conv) into tiles.
pub fn load_filters(ctx: &egui::Context, path: &Path) -> Result<LoadedFilters, String> {
    let (model, manifest) =
        checkpoint::load(path, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
    let cfg = &manifest.run.model;
    let mut tiles = Tiles::default();
    let mut layers = Vec::new();
    let to_vec = |name: &str| -> Result<(Vec<f32>, Vec<usize>), String> {
        let t = model.param(name);
        let dims = t.dims().to_vec();
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())?;
        Ok((v, dims))
    };
    let side;
    if cfg.is_conv() {
        side = 3;
        for name in [
            "enc.conv1",
            "enc.conv2",
            "enc.conv3",
            "dec.layer3",
            "dec.layer2",
            "dec.layer1",
        ] {
            let (w, dims) = to_vec(&format!("{name}.weight"))?;
            let count = dims[0] * dims[1];
            for k in 0..count {
                let kernel = &w[k * 9..(k + 1) * 9];
                let img = images::diverging_sized(kernel, [3, 3], images::abs_max(kernel));
                tiles.put(ctx, tiles.len(), "filter", img);
            }
            layers.push((format!("{name} ({}×{} kernels)", dims[0], dims[1]), count));
        }
    } else {
        side = 28;
        let (w, dims) = to_vec("enc.0.weight")?; // [hidden, 784]
        for u in 0..dims[0] {
            let row = &w[u * PIXELS..(u + 1) * PIXELS];
            tiles.put(
                ctx,
                u,
                "filter",
                images::diverging(row, images::abs_max(row)),
            );
        }
        layers.push((format!("enc.0: {} units", dims[0]), dims[0]));
    }
    Ok(LoadedFilters {
        preset: cfg.preset.clone(),
        description: cfg.describe(),
        layers,
        tiles,
        side,
    })
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
    }

    pub fn filters(&self, path: &Path) -> Option<&LoadedFilters> {
        self.loaded.get(path).and_then(|r| r.as_ref().ok())
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState) {
        if state.library.is_empty() {
            ui.label(RichText::new("Train a model (or import one into the Library) to see what its units look for.").weak());
            return;
        }
        self.auto_pick(state);
        ui.label("First-layer weights of each hidden unit (red: the unit likes ink there, blue: it dislikes it; each tile scaled to itself). Conv models: every 3×3 kernel.");
        ui.columns(2, |cols| {
            for (i, col) in cols.iter_mut().enumerate() {
                let slot = if i == 0 {
                    &mut self.left
                } else {
                    &mut self.right
                };
                if slot
                    .as_ref()
                    .is_some_and(|p| !state.library.iter().any(|e| &e.path == p))
                {
                    *slot = None; // deleted from the library
                }
                let label = if i == 0 { "Left model" } else { "Right model" };
                let chosen = slot
                    .as_ref()
                    .and_then(|p| state.library.iter().find(|e| &e.path == p))
                    .map(|e| e.manifest.run.model.preset.clone())
                    .unwrap_or_else(|| "choose…".into());
                let l = col.label(label);
                egui::ComboBox::from_id_salt(label)
                    .selected_text(chosen)
                    .show_ui(col, |ui| {
                        for e in &state.library {
                            let text = format!(
                                "{} ({} epochs)",
                                e.manifest.run.model.preset, e.manifest.epochs_done
                            );
                            ui.selectable_value(slot, Some(e.path.clone()), text);
                        }
                    })
                    .response
                    .labelled_by(l.id);
                let Some(path) = slot.clone() else { continue };
                let loaded = self
                    .loaded
                    .entry(path.clone())
                    .or_insert_with(|| load_filters(col.ctx(), &path));
                match loaded {
                    Err(e) => {
                        col.colored_label(col.visuals().error_fg_color, e.as_str());
                    }
                    Ok(f) => show_filters(col, f, i),
                }
            }
        });
    }
}

fn show_filters(ui: &mut egui::Ui, f: &LoadedFilters, column: usize) {
    ui.label(RichText::new(&f.description).small().weak());
    let size = if f.side == 3 { 18.0 } else { 30.0 };
    egui::ScrollArea::vertical()
        .id_salt(("filters", column))
        .show(ui, |ui| {
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
        });
}
