//! The map of the test set in a code space, shared by the Latent view
//! (where its source is chosen and its points are explored) and the Draw
//! view (a small copy with the drawn digit's marker moving as you draw).

use std::sync::Arc;

use egui::{Color32, RichText};
use egui_plot::{Plot, Points};

use super::state::{AppState, DataStatus};
use crate::analysis::latent::{self, Map, MapSource};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::Dataset;
use crate::pca::Pca;

/// Ten distinguishable class colours (Tableau 10).
pub const CLASS_COLOURS: [Color32; 10] = [
    Color32::from_rgb(78, 121, 167),
    Color32::from_rgb(242, 142, 43),
    Color32::from_rgb(225, 87, 89),
    Color32::from_rgb(118, 183, 178),
    Color32::from_rgb(89, 161, 79),
    Color32::from_rgb(237, 201, 72),
    Color32::from_rgb(176, 122, 161),
    Color32::from_rgb(255, 157, 167),
    Color32::from_rgb(156, 117, 95),
    Color32::from_rgb(186, 176, 172),
];

/// The map's key: its source and the PCA fit.
pub type MapKey = (String, u64);

pub struct LatentMap {
    /// Whose code space the map shows.
    pub source: MapSource,
    /// The source's model at a moment of its training, shown instead of
    /// it (the Latent view's replay).
    pub snapshot: Option<ModelRef>,
    map: Pending<MapKey, Result<Arc<Map>, String>>,
    marker: Pending<(u64, String), Option<[f32; 2]>>,
}

impl Default for LatentMap {
    fn default() -> Self {
        LatentMap {
            source: MapSource::Pca,
            snapshot: None,
            map: Pending::default(),
            marker: Pending::default(),
        }
    }
}

impl LatentMap {
    /// The latest map, whatever its source.
    pub fn map(&self) -> Option<&Map> {
        self.map
            .get()
            .and_then(|m| m.as_ref().ok())
            .map(|m| m.as_ref())
    }

    /// The map of `key`, once computed (or why it could not be).
    pub fn map_for(&self, key: &MapKey) -> Option<&Result<Arc<Map>, String>> {
        self.map.get_for(key)
    }

    /// Where the drawn digit lands on the current map, once computed (the
    /// latest result: while [`Self::marker_pending`], possibly for an
    /// earlier version of the drawing).
    pub fn marker(&self) -> Option<[f32; 2]> {
        self.marker.get().copied().flatten()
    }

    /// Whether a newer placement of the drawn digit is being computed.
    pub fn marker_pending(&self) -> bool {
        self.marker.is_busy()
    }

    /// The source drawn: the snapshot of its model when one is chosen.
    pub fn shown(&self) -> MapSource {
        match (&self.source, &self.snapshot) {
            (MapSource::Model(m), Some(s)) if s.config == m.config => MapSource::Model(s.clone()),
            (source, _) => source.clone(),
        }
    }

    /// Poll the background results and ask for what the current source
    /// and drawing need (a source whose model left the library falls back
    /// to PCA); returns the map's key.
    pub fn sync(
        &mut self,
        models: &[ModelRef],
        compute: &Compute,
        drawn: &Option<(u64, Vec<f32>)>,
        data: &Arc<Dataset>,
        pca: &Arc<Pca>,
    ) -> MapKey {
        if let MapSource::Model(m) = &self.source {
            if !models.contains(m) {
                self.source = MapSource::Pca;
            }
        }
        self.map.poll();
        self.marker.poll();
        let shown = self.shown();
        let key = (shown.label(), pca.id());
        {
            let (cache, s, d, p) = (
                compute.models.clone(),
                shown.clone(),
                data.clone(),
                pca.clone(),
            );
            self.map.request(key.clone(), || {
                compute.submit("latent-map", move || {
                    latent::build_map(&cache, &s, &d, &p).map(Arc::new)
                })
            });
        }
        if let (Some((version, x)), Some(Ok(map))) = (drawn, self.map.get_for(&key)) {
            let (cache, s, p, map, x) = (
                compute.models.clone(),
                shown,
                pca.clone(),
                map.clone(),
                x.clone(),
            );
            self.marker.request((*version, key.0.clone()), || {
                compute.submit("latent-marker", move || {
                    latent::place(&cache, &s, &p, &map, &x)
                })
            });
        }
        key
    }

    /// A small map of the test set with the drawn digit's marker, for the
    /// Draw view: the marker moves as the drawing changes.
    pub fn mini_map(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        compute: &Compute,
        drawn: Option<(u64, Vec<f32>)>,
    ) {
        let DataStatus::Ready {
            data,
            pca: Some(pca),
        } = &state.data
        else {
            return;
        };
        let models: Vec<ModelRef> = state.models().into_iter().map(ModelRef::of).collect();
        let key = self.sync(&models, compute, &drawn, data, pca);
        let Some(Ok(map)) = self.map.get_for(&key).cloned() else {
            return;
        };
        let marker = self.marker().filter(|_| drawn.is_some());
        ui.label(
            RichText::new(format!(
                "Your digit (white) on the map of {}",
                self.source.label()
            ))
            .small(),
        );
        Plot::new("draw-mini-map")
            .height(ui.available_height().clamp(120.0, 260.0))
            .data_aspect(1.0)
            .show_axes(false)
            .allow_scroll(false)
            .allow_drag(false)
            .allow_zoom(false)
            .show(ui, |p| {
                class_points(p, &map, 1.5, marker);
            });
    }
}

/// The test digits by class, and the drawn digit's marker, into a plot.
pub fn class_points(p: &mut egui_plot::PlotUi, map: &Map, radius: f32, marker: Option<[f32; 2]>) {
    for c in 0..10u8 {
        let pts: Vec<[f64; 2]> = map
            .points
            .iter()
            .zip(&map.labels)
            .filter(|(_, &l)| l == c)
            .map(|(p, _)| [p[0] as f64, p[1] as f64])
            .collect();
        p.points(
            Points::new(c.to_string(), pts)
                .radius(radius)
                .color(CLASS_COLOURS[c as usize]),
        );
    }
    if let Some(m) = marker {
        p.points(
            Points::new("your digit", vec![[m[0] as f64, m[1] as f64]])
                .radius(8.0)
                .shape(egui_plot::MarkerShape::Asterisk)
                .color(Color32::WHITE),
        );
    }
}
