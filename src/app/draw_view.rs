//! The Draw view: draw a digit (or open a picture) and watch PCA-k and
//! every library model reconstruct it as you draw, each with its error and
//! the digit a linear probe reads from its code, plus the closest training
//! images. The 28x28 input the models receive is shown, with a switch that
//! bypasses MNIST's centring to show why it matters.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, Pos2, Rect, RichText, Sense, TextureHandle};

use super::images;
use super::replay_bar::ModelReplay;
use super::state::{AppState, DataStatus, View};
use crate::analysis::answer::{self, Answer, DrawResult, NearIndex, Probes, NEAREST};
use crate::analysis::{Compute, ModelRef, Pending};
use crate::data::{Dataset, PIXELS};
use crate::draw::{self, Drawing, Stroke, CANVAS_RES};
use crate::pca::Pca;

#[derive(Clone, PartialEq)]
struct Key {
    version: u64,
    k: usize,
    models: Vec<ModelRef>,
    probes: usize,
}

/// Where the input comes from.
#[derive(Clone, Debug)]
pub struct External {
    pub name: String,
    pub width: usize,
    pub height: usize,
    pub ink: Vec<f32>,
}

pub struct DrawView {
    pub drawing: Drawing,
    /// Brush width as a fraction of the canvas side.
    pub brush: f32,
    pub eraser: bool,
    /// Crop, scale and centre like MNIST (off: squeeze the canvas as is).
    pub centre: bool,
    pub k: usize,
    /// A picture (file, drop, or a digit sent from another view) used
    /// instead of the canvas until the user draws.
    pub external: Option<External>,
    /// The 28x28 input of the models, None when there is nothing to show.
    pub input: Option<Vec<f32>>,
    version: u64,
    input_for: Option<(u64, bool)>,
    drawing_now: Option<Stroke>,
    results: Pending<Key, DrawResult>,
    pub probes: Probes,
    probe_job: Pending<(Vec<PathBuf>, usize), usize>,
    index: Pending<u64, Arc<NearIndex>>,
    nearest: Pending<(u64, u64), Vec<answer::Neighbour>>,
    input_tex: Option<TextureHandle>,
    external_tex: Option<TextureHandle>,
    answer_tex: Vec<TextureHandle>,
    nearest_tex: Vec<(TextureHandle, String)>,
    generation: u64,
    shown: Option<u64>,
    shown_nearest: Option<(u64, u64)>,
    pub note: Option<String>,
    /// The training replay of one of the models.
    pub replay: ModelReplay,
    /// Per model shown: whether it has no digit probe (a live model, a
    /// snapshot).
    unprobed: Vec<bool>,
}

impl Default for DrawView {
    fn default() -> Self {
        DrawView {
            drawing: Drawing::default(),
            brush: 0.075,
            eraser: false,
            centre: true,
            k: 30,
            external: None,
            input: None,
            version: 0,
            input_for: None,
            drawing_now: None,
            results: Pending::default(),
            probes: Probes::default(),
            probe_job: Pending::default(),
            index: Pending::default(),
            nearest: Pending::default(),
            input_tex: None,
            external_tex: None,
            answer_tex: Vec::new(),
            nearest_tex: Vec::new(),
            generation: 0,
            shown: None,
            shown_nearest: None,
            note: None,
            replay: ModelReplay::default(),
            unprobed: Vec::new(),
        }
    }
}

impl DrawView {
    /// The answers shown (PCA first), once computed for the current input.
    pub fn answers(&self) -> Option<&[Answer]> {
        self.results.get().map(|r| r.answers.as_slice())
    }

    pub fn nearest(&self) -> Option<&[(usize, u8, f32)]> {
        self.nearest.get().map(|v| v.as_slice())
    }

    /// The current 28x28 input with a version that changes with it.
    pub fn current(&self) -> Option<(u64, Vec<f32>)> {
        self.input
            .clone()
            .map(|x| (self.version * 2 + self.centre as u64, x))
    }

    fn changed(&mut self) {
        self.version += 1;
    }

    /// Use a picture as the input (any size; ink bright, values in [0, 1]).
    pub fn set_external(&mut self, name: String, width: usize, height: usize, ink: Vec<f32>) {
        self.drawing.clear();
        self.external = Some(External {
            name,
            width,
            height,
            ink,
        });
        self.external_tex = None;
        self.changed();
    }

    /// Open a picture file as the input.
    pub fn open_file(&mut self, path: &std::path::Path) {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| draw::image_to_ink(&b))
        {
            Ok((w, h, ink)) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.set_external(name, w, h, ink);
                self.note = None;
            }
            Err(e) => self.note = Some(format!("{}: {e}", path.display())),
        }
    }

    /// Recompute the 28x28 input when the drawing changed.
    fn update_input(&mut self) {
        if self.input_for == Some((self.version, self.centre)) {
            return;
        }
        self.input_for = Some((self.version, self.centre));
        self.input = match &self.external {
            Some(e) => draw::to_mnist(&e.ink, e.width, e.height, self.centre),
            None => {
                let mut d = self.drawing.clone();
                if let Some(s) = &self.drawing_now {
                    d.strokes.push(s.clone());
                }
                draw::to_mnist(
                    &d.rasterise(CANVAS_RES),
                    CANVAS_RES,
                    CANVAS_RES,
                    self.centre,
                )
            }
        };
        self.input_tex = None;
    }

    /// `below_canvas` draws under the canvas (the app puts the latent
    /// map with the drawn digit's marker there).
    fn show(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        compute: &Compute,
        below_canvas: impl FnOnce(&mut egui::Ui),
    ) {
        let (data, pca) = match &state.data {
            DataStatus::Ready { data, pca: Some(p) } => (data.clone(), p.clone()),
            _ => {
                ui.label(
                    "Draw appears once the data set is loaded and PCA is fitted (a few seconds).",
                );
                return;
            }
        };
        // the library's models, those training now, and one of them at a
        // moment of its training when the replay is moved
        let library: Vec<ModelRef> = state.models().into_iter().map(ModelRef::of).collect();
        let models = self.replay.among(ui, "draw", state, &state.view_models());
        self.unprobed = models.iter().map(|m| !library.contains(m)).collect();
        if self.results.poll() {
            self.generation += 1;
        }
        self.nearest.poll();
        self.index.poll();
        if self.probe_job.poll() {
            self.changed(); // predictions can now be shown
        }
        self.take_dropped(ui.ctx());
        {
            let (cache, probes, d, p, m, k) = (
                compute.models.clone(),
                self.probes.clone(),
                data.clone(),
                pca.clone(),
                library.clone(),
                self.k,
            );
            // (no probe for a live model or a snapshot: each would be fitted
            // again every few seconds, taking cores from the training)
            self.probe_job.request(
                (library.iter().map(|m| m.path.clone()).collect(), k),
                || {
                    compute.submit_slow("draw-probes", move || {
                        answer::fit_probes(&cache, &probes, &d, &p, &m, k)
                    })
                },
            );
            let (d, p) = (data.clone(), pca.clone());
            self.index.request(pca.id(), || {
                compute.submit("draw-index", move || Arc::new(NearIndex::build(&d, &p)))
            });
        }

        ui.columns(2, |cols| {
            self.left_column(&mut cols[0]);
            below_canvas(&mut cols[0]);
            self.update_input();
            self.request(compute, &data, &pca, &models);
            self.right_column(&mut cols[1], &data, models.is_empty());
        });
    }

    fn take_dropped(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for f in dropped {
            let path = f.path().to_path_buf();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dropped file".into());
            match f.bytes().and_then(|b| draw::image_to_ink(&b)) {
                Ok((w, h, ink)) => {
                    self.set_external(name, w, h, ink);
                    self.note = None;
                }
                Err(e) => self.note = Some(format!("{name}: {e}")),
            }
        }
    }

    fn request(
        &mut self,
        compute: &Compute,
        data: &Arc<Dataset>,
        pca: &Arc<Pca>,
        models: &[ModelRef],
    ) {
        let Some(x) = self.input.clone() else {
            return;
        };
        let probes_ready = self.probes.lock().map(|p| p.len()).unwrap_or(0);
        let key = Key {
            version: self.version * 2 + self.centre as u64,
            k: self.k,
            models: models.to_vec(),
            probes: probes_ready,
        };
        let (cache, probes, p, m, k) = (
            compute.models.clone(),
            self.probes.clone(),
            pca.clone(),
            models.to_vec(),
            self.k,
        );
        let x2 = x.clone();
        self.results.request(key, || {
            compute.submit("draw-answers", move || DrawResult {
                answers: answer::answer(&cache, &probes, &p, k, &m, &x2),
                nearest: Vec::new(),
            })
        });
        if let Some(index) = self.index.get().cloned() {
            let (d, p) = (data.clone(), pca.clone());
            self.nearest
                .request((self.version * 2 + self.centre as u64, index.id()), || {
                    compute.submit("draw-nearest", move || index.nearest(&d, &p, &x, NEAREST))
                });
        }
    }

    fn left_column(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Brush");
            ui.add(egui::Slider::new(&mut self.brush, 0.02..=0.2).show_value(false))
                .labelled_by(l.id)
                .on_hover_text("Width of the pen (and of the eraser)");
            ui.toggle_value(&mut self.eraser, "Eraser")
                .on_hover_text("Rub out ink instead of drawing");
            if ui
                .add_enabled(!self.drawing.strokes.is_empty(), egui::Button::new("Undo"))
                .on_hover_text("Take back the last stroke (Ctrl+Z)")
                .clicked()
                || ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
            {
                self.drawing.undo();
                self.changed();
            }
            if ui
                .button("Clear")
                .on_hover_text("Empty the canvas (Delete)")
                .clicked()
                || ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Delete))
            {
                self.drawing.clear();
                self.external = None;
                self.changed();
            }
            if ui
                .button("Open image…")
                .on_hover_text("Use a PNG or JPEG (any size, light or dark background) as the input; you can also drop a file on the window")
                .clicked()
            {
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("images", &["png", "jpg", "jpeg", "bmp", "gif", "webp"])
                    .pick_file()
                {
                    self.open_file(&p);
                } else {
                    self.note = Some("No file dialog available (or cancelled): drop an image file on the window instead.".into());
                }
            }
        });
        let side = ui
            .available_width()
            .min(ui.available_height() - 60.0)
            .clamp(160.0, 360.0);
        let (rect, resp) = ui.allocate_exact_size(egui::vec2(side, side), Sense::drag());
        resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Drawing canvas"));
        let to_canvas = |p: Pos2| -> [f32; 2] {
            [
                ((p.x - rect.min.x) / rect.width()).clamp(0.0, 1.0),
                ((p.y - rect.min.y) / rect.height()).clamp(0.0, 1.0),
            ]
        };
        if resp.drag_started() {
            if let Some(p) = resp.interact_pointer_pos() {
                self.external = None;
                self.drawing_now = Some(Stroke {
                    points: vec![to_canvas(p)],
                    width: self.brush,
                    erase: self.eraser,
                });
                self.changed();
            }
        } else if resp.dragged() {
            if let (Some(p), Some(s)) = (resp.interact_pointer_pos(), &mut self.drawing_now) {
                let q = to_canvas(p);
                let last = *s.points.last().unwrap_or(&q);
                if (q[0] - last[0]).abs() + (q[1] - last[1]).abs() > 0.004 {
                    s.points.push(q);
                    self.version += 1;
                }
            }
        }
        if resp.drag_stopped() {
            if let Some(s) = self.drawing_now.take() {
                self.drawing.strokes.push(s);
                self.changed();
            }
        }
        self.paint_canvas(ui, rect);
        ui.label(
            RichText::new(match &self.external {
                Some(e) => format!(
                    "Input: {} ({}×{}); draw to replace it.",
                    e.name, e.width, e.height
                ),
                None if self.drawing.is_empty() && self.drawing_now.is_none() => {
                    "Draw a digit with the mouse, touchpad or pen.".into()
                }
                None => match self.drawing.strokes.len() {
                    1 => "1 stroke".into(),
                    n => format!("{n} strokes"),
                },
            })
            .weak(),
        );
        if let Some(n) = &self.note {
            ui.colored_label(ui.visuals().warn_fg_color, n);
        }
    }

    fn paint_canvas(&mut self, ui: &mut egui::Ui, rect: Rect) {
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, Color32::BLACK);
        if let Some(e) = &self.external {
            let tex = self.external_tex.get_or_insert_with(|| {
                ui.ctx().load_texture(
                    "draw-external",
                    images::gray_sized(&e.ink, [e.width, e.height]),
                    egui::TextureOptions::LINEAR,
                )
            });
            let scale = rect.width() / e.width.max(e.height) as f32;
            let size = egui::vec2(e.width as f32 * scale, e.height as f32 * scale);
            let r = Rect::from_center_size(rect.center(), size);
            painter.image(
                tex.id(),
                r,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        let strokes = self.drawing.strokes.iter().chain(self.drawing_now.iter());
        for s in strokes {
            let colour = if s.erase {
                Color32::BLACK
            } else {
                Color32::WHITE
            };
            let w = s.width * rect.width();
            let pts: Vec<Pos2> = s
                .points
                .iter()
                .map(|p| rect.min + egui::vec2(p[0] * rect.width(), p[1] * rect.height()))
                .collect();
            for p in &pts {
                painter.circle_filled(*p, w / 2.0, colour);
            }
            if pts.len() > 1 {
                painter.add(egui::Shape::line(pts, egui::Stroke::new(w, colour)));
            }
        }
        // the 20x20 box MNIST digits fill, as a guide
        let guide = Rect::from_center_size(rect.center(), rect.size() * (20.0 / 28.0));
        painter.rect_stroke(
            guide,
            0.0,
            egui::Stroke::new(1.0, Color32::from_gray(50)),
            egui::StrokeKind::Inside,
        );
    }

    fn right_column(&mut self, ui: &mut egui::Ui, data: &Dataset, no_models: bool) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.centre, "Centre like MNIST")
                .on_hover_text("Crop to the ink, scale the longer side to 20 px and put the centre of mass in the middle, as MNIST's digits were made. Turn off to feed the canvas as it is and see the models fail.");
            let l = ui.label("PCA k");
            ui.add(egui::Slider::new(&mut self.k, 1..=PIXELS).logarithmic(true))
                .labelled_by(l.id)
                .on_hover_text("Components of the PCA reconstruction");
        });
        let Some(input) = &self.input else {
            ui.add_space(20.0);
            ui.label(RichText::new("Draw something: the canvas is empty.").strong());
            return;
        };
        let ctx = ui.ctx().clone();
        let tex = self.input_tex.get_or_insert_with(|| {
            ctx.load_texture(
                "draw-input",
                images::gray(input),
                egui::TextureOptions::NEAREST,
            )
        });
        ui.horizontal(|ui| {
            images::show(ui, tex, 84.0, "the 28×28 input the models receive");
            ui.label("the 28×28 input every model receives");
        });
        if no_models {
            ui.label(
                RichText::new(
                    "Train a model (Train view) to see it answer too; PCA answers already.",
                )
                .weak(),
            );
        }
        let key_now = Some(self.generation);
        if let Some(r) = self.results.get() {
            if self.shown != key_now {
                self.answer_tex = r
                    .answers
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let img = match &a.image {
                            Ok(v) => images::gray(v),
                            Err(_) => images::gray(&[0.0; PIXELS]),
                        };
                        ctx.load_texture(
                            format!("draw-answer-{i}"),
                            img,
                            egui::TextureOptions::NEAREST,
                        )
                    })
                    .collect();
                self.shown = key_now;
            }
            super::export::figure(ui, "draw-answers", "Every model's answer", None, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("draw-answers-scroll")
                    .max_height(ui.available_height() - 130.0)
                    .show(ui, |ui| {
                        egui::Grid::new("draw-answers-grid").striped(true).show(ui, |ui| {
                            ui.label(RichText::new("model").strong());
                            ui.label(RichText::new("reconstruction").strong());
                            ui.label(RichText::new("MSE").strong());
                            ui.label(RichText::new("code says").strong())
                                .on_hover_text("A linear probe (softmax regression fitted on 5,000 training codes) reads the digit from the model's code");
                            ui.end_row();
                            for (i, (a, t)) in r.answers.iter().zip(&self.answer_tex).enumerate() {
                                ui.label(&a.label);
                                match &a.image {
                                    Ok(_) => {
                                        images::show(ui, t, 42.0, &format!("{} reconstruction", a.label));
                                    }
                                    Err(e) => {
                                        ui.colored_label(ui.visuals().error_fg_color, e);
                                    }
                                }
                                ui.label(a.mse.map(|m| format!("{m:.4}")).unwrap_or_default());
                                // (answer 0 is PCA's, then one per model)
                                let unprobed = i > 0 && self.unprobed.get(i - 1) == Some(&true);
                                match a.digit {
                                    Some((d, p)) => ui.label(format!("{d} ({:.0}%)", p * 100.0)),
                                    None if unprobed => ui.label("—").on_hover_text(
                                        "Probes are fitted for saved models: a model in training, or at a moment of its training, has none",
                                    ),
                                    None => ui.label("…"),
                                };
                                ui.end_row();
                            }
                        });
                    });
            });
        }
        let nkey = self.nearest.value.as_ref().map(|(k, _)| *k);
        if let Some(near) = self.nearest.get() {
            if self.shown_nearest != nkey {
                self.nearest_tex = near
                    .iter()
                    .enumerate()
                    .map(|(j, &(i, label, dist))| {
                        let img: Vec<f32> = data.train.image_f32(i);
                        (
                            ctx.load_texture(
                                format!("draw-near-{j}"),
                                images::gray(&img),
                                egui::TextureOptions::NEAREST,
                            ),
                            format!("training #{i}: a {label}, distance {dist:.2}"),
                        )
                    })
                    .collect();
                self.shown_nearest = nkey;
            }
            ui.label(RichText::new("Closest training images").strong());
            ui.horizontal(|ui| {
                for (t, hover) in &self.nearest_tex {
                    images::show(ui, t, 42.0, hover);
                }
            });
        }
    }
}

impl super::view::AppView for DrawView {
    fn id(&self) -> View {
        View::Draw
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        let (state, compute, map, drawn) = (&*cx.state, cx.compute, &mut *cx.map, cx.drawn.clone());
        self.show(ui, state, compute, |ui| {
            map.mini_map(ui, state, compute, drawn)
        });
    }
}
