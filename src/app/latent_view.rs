//! The Latent space view: a 2-D map of the test set for PCA (its first two
//! components) or an autoencoder (its codes projected on their two main
//! directions), coloured by class; hovering shows the digit, clicking sends
//! it to the Draw view, and the drawn digit is a marker that follows the
//! pen. Below, interpolation between two inputs in pixel space, PCA-k space
//! and each autoencoder's code space; and sliders that move the current
//! input along the main directions of a model's code space.

use std::sync::Arc;

use egui::{Color32, RichText, TextureHandle};
use egui_plot::{Legend, Plot, Points};

use super::action::{Action, Actions};
use super::export;
use super::images::{self, Gallery, GalleryRow};
use super::latent_map::{class_points, LatentMap};
use super::replay_bar::ModelReplay;
use super::state::{AppState, DataStatus, View};
use super::vae_panel::VaePanel;
use crate::analysis::latent::{self, InterpRow, Map, MapSource, Walk, SLIDERS};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::{Dataset, PIXELS};

#[derive(Clone, PartialEq)]
struct InterpKey {
    a: Vec<u32>,
    b: Vec<u32>,
    t_millis: u32,
    k: usize,
    models: Vec<ModelRef>,
}

pub struct LatentView {
    /// Test indices of the interpolation ends; `a_drawn` uses the drawn digit for A.
    pub a: usize,
    pub b: usize,
    pub a_drawn: bool,
    pub t: f32,
    pub k: usize,
    interp: Pending<InterpKey, Vec<InterpRow>>,
    gallery: Gallery,
    interp_generation: usize,
    interp_shown: Option<usize>,
    pub walk_model: Option<ModelRef>,
    pub steps: [f32; SLIDERS],
    walk: Pending<(String, Vec<u32>, Vec<i32>), Walk>,
    walk_tex: Vec<TextureHandle>,
    walk_generation: usize,
    walk_shown: Option<usize>,
    hovered: Option<(usize, TextureHandle)>,
    /// A VAE's decoded point, grid and samples.
    pub vae: VaePanel,
    /// The map's model at a moment of its training.
    pub replay: ModelReplay,
}

impl Default for LatentView {
    fn default() -> Self {
        LatentView {
            a: 0,
            b: 1,
            a_drawn: false,
            t: 0.5,
            k: 30,
            interp: Pending::default(),
            gallery: Gallery::default(),
            interp_generation: 0,
            interp_shown: None,
            walk_model: None,
            steps: [0.0; SLIDERS],
            walk: Pending::default(),
            walk_tex: Vec::new(),
            walk_generation: 0,
            walk_shown: None,
            hovered: None,
            vae: VaePanel::default(),
            replay: ModelReplay::default(),
        }
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

impl LatentView {
    pub fn interpolation(&self) -> Option<&[InterpRow]> {
        self.interp.get().map(|v| v.as_slice())
    }

    /// Poll the interpolation and the walk; the library's models.
    fn sync(&mut self, state: &AppState) -> Vec<ModelRef> {
        if self.interp.poll() {
            self.interp_generation += 1;
        }
        if self.walk.poll() {
            self.walk_generation += 1;
        }
        state.models().into_iter().map(ModelRef::of).collect()
    }

    /// `drawn`: the Draw view's current input and its version; `lmap`: the
    /// map of the test set (shared with the Draw view).
    fn show(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        compute: &Compute,
        lmap: &mut LatentMap,
        drawn: Option<(u64, Vec<f32>)>,
        actions: &Actions,
    ) {
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label("The latent space appears once the data set is loaded and PCA is fitted.");
                return;
            }
        };
        let models = self.sync(state);
        // the replay of the map's model: its code space at a snapshot
        lmap.snapshot = match &lmap.source {
            MapSource::Model(m) => {
                let shown = self.replay.one(ui, "latent", state, m);
                (shown.path != m.path).then_some(shown)
            }
            MapSource::Pca => None,
        };
        let source_key = lmap.sync(&models, compute, &drawn, &data, &pca);
        ui.horizontal(|ui| {
            let l = ui.label("Map of");
            egui::ComboBox::from_id_salt("latent-source")
                .selected_text(lmap.source.label())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut lmap.source, MapSource::Pca, MapSource::Pca.label());
                    for m in &models {
                        let s = MapSource::Model(m.clone());
                        let text = s.label();
                        ui.selectable_value(&mut lmap.source, s, text);
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Whose code space to draw: each test digit becomes a dot");
        });
        ui.columns(2, |cols| {
            self.map_plot(
                &mut cols[0],
                lmap,
                &data,
                &source_key,
                drawn.is_some(),
                actions,
            );
            egui::ScrollArea::vertical()
                .id_salt("latent-right")
                .show(&mut cols[1], |ui| {
                    if let MapSource::Model(m) = &lmap.source {
                        if m.config.is_vae() {
                            self.vae.ui(ui, compute, m);
                            ui.separator();
                        }
                    }
                    self.interpolation_ui(
                        ui,
                        compute,
                        &data,
                        &pca,
                        &models,
                        drawn.as_ref().map(|d| &d.1),
                    );
                    ui.separator();
                    self.walk_ui(ui, compute, &data, &models, drawn.as_ref().map(|d| &d.1));
                });
        });
    }

    fn map_plot(
        &mut self,
        ui: &mut egui::Ui,
        lmap: &LatentMap,
        data: &Dataset,
        key: &(String, u64),
        have_drawn: bool,
        actions: &Actions,
    ) {
        let map = match lmap.map_for(key) {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("encoding the test set…");
                });
                return;
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
            Some(Ok(m)) => m.clone(),
        };
        let marker = lmap.marker();
        let csv = || {
            let mut s = String::from("test_index,label,x,y\n");
            for (i, (p, l)) in map.points.iter().zip(&map.labels).enumerate() {
                s.push_str(&format!("{i},{l},{},{}\n", p[0], p[1]));
            }
            s
        };
        // a 2-D VAE's plane: pressing and dragging decodes the point
        let plane =
            matches!(&lmap.source, MapSource::Model(m) if crate::analysis::vae::is_plane(m));
        let title = if plane {
            format!(
                "{} test digits on the VAE's plane; press and drag anywhere to decode that point",
                map.points.len()
            )
        } else {
            format!(
                "{} test digits; hover to see one, click to send it to Draw",
                map.points.len()
            )
        };
        let probe = self.vae.point.filter(|_| plane);
        export::figure(ui, "latent-map", &title, Some(&csv), |ui| {
            let resp = Plot::new("latent-map-plot")
                .height((ui.available_height() - 90.0).clamp(260.0, 620.0))
                .data_aspect(1.0)
                .legend(Legend::default())
                .allow_scroll(false)
                .allow_drag(!plane)
                .show(ui, |p| {
                    class_points(p, &map, 2.0, marker.filter(|_| have_drawn));
                    if let Some(z) = probe {
                        p.points(
                            Points::new("decoded point", vec![[z[0] as f64, z[1] as f64]])
                                .radius(9.0)
                                .shape(egui_plot::MarkerShape::Diamond)
                                .filled(true)
                                .color(Color32::from_rgb(255, 60, 60)),
                        );
                    }
                    p.pointer_coordinate()
                });
            let r = &resp.response;
            if plane && (r.dragged() || r.is_pointer_button_down_on() || r.clicked()) {
                // where the pointer is now (the plot never pans here), kept
                // within the test codes' extent: the point is a plot item, and
                // one outside would widen the bounds under a still pointer
                let at = r.interact_pointer_pos().or_else(|| r.hover_pos());
                if let Some(pos) = at {
                    let c = resp.transform.value_from_position(pos);
                    self.vae.point = Some(clamp_to(&map, [c.x as f32, c.y as f32]));
                }
            }
            // nearest point to the pointer
            let near = resp.inner.and_then(|c| {
                map.points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i, (p[0] as f64 - c.x).powi(2) + (p[1] as f64 - c.y).powi(2)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| i)
            });
            if let Some(i) = near {
                if self.hovered.as_ref().is_none_or(|(h, _)| *h != i) {
                    let t = ui.ctx().load_texture(
                        "latent-hover",
                        images::gray(&data.test.image_f32(i)),
                        egui::TextureOptions::NEAREST,
                    );
                    self.hovered = Some((i, t));
                }
                if resp.response.clicked() && !plane {
                    actions.push(Action::SendToDraw(i));
                }
            }
        });
        ui.horizontal(|ui| {
            if let Some((i, t)) = &self.hovered {
                images::show(ui, t, 56.0, "the digit under the pointer");
                ui.label(format!("test #{i}: a {}", data.test.labels[*i]));
            }
            if have_drawn {
                ui.label(RichText::new("white asterisk: your drawn digit").weak());
            }
        });
    }

    fn interpolation_ui(
        &mut self,
        ui: &mut egui::Ui,
        compute: &Compute,
        data: &Arc<Dataset>,
        pca: &Arc<crate::pca::Pca>,
        models: &[ModelRef],
        drawn: Option<&Vec<f32>>,
    ) {
        let n = data.test.len().max(1);
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Interpolation").strong());
            ui.add_enabled(
                drawn.is_some(),
                egui::Checkbox::new(&mut self.a_drawn, "A = your drawn digit"),
            )
            .on_hover_text("Start from the digit on the Draw canvas instead of a test image");
            if !self.a_drawn || drawn.is_none() {
                let l = ui.label("A: test #");
                ui.add(egui::DragValue::new(&mut self.a).range(0..=n - 1))
                    .labelled_by(l.id)
                    .on_hover_text("The test image the blend starts from");
            }
            let l = ui.label("B: test #");
            ui.add(egui::DragValue::new(&mut self.b).range(0..=n - 1))
                .labelled_by(l.id)
                .on_hover_text("The test image the blend ends at");
            let l = ui.label("PCA k");
            ui.add(egui::Slider::new(&mut self.k, 2..=PIXELS).logarithmic(true))
                .labelled_by(l.id)
                .on_hover_text("Components of the PCA code the PCA row blends in");
        });
        let l = ui.label("Blend t");
        ui.add(egui::Slider::new(&mut self.t, 0.0..=1.0))
            .labelled_by(l.id)
            .on_hover_text("0 shows A, 1 shows B; in between, each row blends in its own space");
        let a = match (self.a_drawn, drawn) {
            (true, Some(d)) => d.clone(),
            _ => data.test.image_f32(self.a.min(n - 1)),
        };
        let b = data.test.image_f32(self.b.min(n - 1));
        let key = InterpKey {
            a: bits(&a),
            b: bits(&b),
            t_millis: (self.t * 1000.0).round() as u32,
            k: self.k,
            models: models.to_vec(),
        };
        let (cache, p, m, k, t) = (
            compute.models.clone(),
            pca.clone(),
            models.to_vec(),
            self.k,
            self.t,
        );
        self.interp.request(key, || {
            compute.submit("latent-interp", move || {
                latent::interpolate(&cache, &p, k, &m, &a, &b, t)
            })
        });
        if self.interp_shown != Some(self.interp_generation) {
            if let Some(rows) = self.interp.get() {
                let w = latent::weights(self.t);
                let g: Vec<GalleryRow> = rows
                    .iter()
                    .map(|r| {
                        let mut g = GalleryRow::new(&r.label);
                        match &r.images {
                            Ok(imgs) => {
                                for (img, t) in imgs.chunks_exact(PIXELS).zip(&w) {
                                    g.images.push((
                                        images::gray(img),
                                        format!("{t:.2}"),
                                        String::new(),
                                    ));
                                }
                            }
                            Err(e) => g.error = Some(e.clone()),
                        }
                        g
                    })
                    .collect();
                self.gallery.set(ui.ctx(), "latent-interp", g);
                self.interp_shown = Some(self.interp_generation);
            }
        }
        export::figure(
            ui,
            "latent-interpolation",
            "From A to B (captions: blend weight; the last column follows the slider)",
            None,
            |ui| self.gallery.show(ui, "latent-interp-grid", 36.0),
        );
    }

    fn walk_ui(
        &mut self,
        ui: &mut egui::Ui,
        compute: &Compute,
        data: &Arc<Dataset>,
        models: &[ModelRef],
        drawn: Option<&Vec<f32>>,
    ) {
        ui.label(RichText::new("Latent sliders").strong());
        let decodable: Vec<&ModelRef> = models
            .iter()
            .filter(|m| {
                !matches!(
                    m.config.arch,
                    crate::model::Arch::Conv {
                        decoder: crate::model::ConvDecoder::Unpool
                            | crate::model::ConvDecoder::Both
                    }
                )
            })
            .collect();
        if decodable.is_empty() {
            ui.label(
                RichText::new(
                    "Train a dense or transposed-convolution model to walk its code space.",
                )
                .weak(),
            );
            return;
        }
        if self
            .walk_model
            .as_ref()
            .is_none_or(|m| !decodable.contains(&m))
        {
            self.walk_model = decodable.first().map(|m| (*m).clone());
        }
        ui.horizontal(|ui| {
            let l = ui.label("Model");
            egui::ComboBox::from_id_salt("latent-walk-model")
                .selected_text(
                    self.walk_model
                        .as_ref()
                        .map(|m| m.label.clone())
                        .unwrap_or_default(),
                )
                .show_ui(ui, |ui| {
                    for m in &decodable {
                        ui.selectable_value(&mut self.walk_model, Some((*m).clone()), &m.label);
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Whose code space the sliders move through (max-unpooling decoders cannot decode a code alone)");
            if ui
                .button("Reset")
                .on_hover_text("Put every slider back to 0: the plain reconstruction")
                .clicked()
            {
                self.steps = [0.0; SLIDERS];
            }
        });
        let x = match drawn {
            Some(d) => d.clone(),
            None => data
                .test
                .image_f32(self.a.min(data.test.len().saturating_sub(1))),
        };
        let Some(model) = self.walk_model.clone() else {
            return;
        };
        let key = (
            model.label.clone(),
            bits(&x),
            self.steps
                .iter()
                .map(|s| (s * 100.0).round() as i32)
                .collect(),
        );
        let (cache, d, steps) = (compute.models.clone(), data.clone(), self.steps);
        self.walk.request(key, || {
            compute.submit("latent-walk", move || {
                latent::walk(&cache, &model, &d, &x, &steps)
            })
        });
        let sds = match self.walk.get() {
            Some(Ok((_, _, sds))) => sds.clone(),
            _ => Vec::new(),
        };
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                for (i, s) in self.steps.iter_mut().enumerate() {
                    let l = ui.label(format!("direction {}", i + 1));
                    ui.add(egui::Slider::new(s, -3.0..=3.0).suffix(" sd"))
                        .labelled_by(l.id)
                        .on_hover_text(match sds.get(i) {
                            Some(sd) => format!(
                                "Move along the model's {}. main code direction (1 sd = {sd:.3})",
                                i + 1
                            ),
                            None => "Move along one of the model's main code directions".into(),
                        });
                }
            });
            if self.walk_shown != Some(self.walk_generation) {
                if let Some(Ok((base, moved, _))) = self.walk.get() {
                    self.walk_tex = [base, moved]
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            ui.ctx().load_texture(
                                format!("latent-walk-{i}"),
                                images::gray(v),
                                egui::TextureOptions::NEAREST,
                            )
                        })
                        .collect();
                }
                self.walk_shown = Some(self.walk_generation);
            }
            match self.walk.get() {
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                _ => {
                    for (t, what) in self.walk_tex.iter().zip(["reconstruction", "moved"]) {
                        ui.vertical(|ui| {
                            images::show(ui, t, 96.0, what);
                            ui.label(what);
                        });
                    }
                }
            }
        });
        ui.label(
            RichText::new(if drawn.is_some() {
                "Starting from your drawn digit."
            } else {
                "Starting from test image A (draw a digit to start from it)."
            })
            .weak(),
        );
    }
}

impl super::view::AppView for LatentView {
    fn id(&self) -> View {
        View::Latent
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(
            ui,
            cx.state,
            cx.compute,
            cx.map,
            cx.drawn.clone(),
            cx.actions,
        );
    }
}

/// `z` within the extent of the map's points (and a tenth more each way).
fn clamp_to(map: &Map, z: [f32; 2]) -> [f32; 2] {
    let mut lo = [f32::INFINITY; 2];
    let mut hi = [f32::NEG_INFINITY; 2];
    for p in &map.points {
        for d in 0..2 {
            lo[d] = lo[d].min(p[d]);
            hi[d] = hi[d].max(p[d]);
        }
    }
    std::array::from_fn(|d| {
        if lo[d] > hi[d] {
            return z[d];
        }
        let m = 0.1 * (hi[d] - lo[d]);
        z[d].clamp(lo[d] - m, hi[d] + m)
    })
}
