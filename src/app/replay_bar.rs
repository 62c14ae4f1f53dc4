//! The training replay's scrubber, shared by the Train, Filters, Draw and
//! Latent space views: a slider over a model's snapshots, with play and
//! pause. Its right end is the model itself (as saved, or its latest
//! weights while it trains).

use std::path::PathBuf;
use std::time::Duration;

use egui::RichText;

use super::state::AppState;
use crate::analysis::ModelRef;
use crate::model::replay::Moment;

/// Seconds each snapshot shows while playing.
const FRAME_SECS: f64 = 0.7;

#[derive(Default)]
pub struct ReplayBar {
    /// The snapshot shown; None: the model itself.
    pub at: Option<usize>,
    pub playing: bool,
    next_at: f64,
}

impl ReplayBar {
    /// Draw the bar over `moments` (nothing when there are none); `salt`
    /// tells the views' bars apart.
    pub fn ui(&mut self, ui: &mut egui::Ui, salt: &str, moments: &[Moment]) {
        let n = moments.len();
        if n == 0 || self.at.is_some_and(|k| k >= n) {
            (self.at, self.playing) = (None, false);
        }
        if n == 0 {
            return;
        }
        let now = ui.input(|i| i.time);
        if self.playing {
            if now >= self.next_at {
                match self.at.map_or(0, |k| k + 1) {
                    next if next < n => {
                        self.at = Some(next);
                        self.next_at = now + FRAME_SECS;
                    }
                    _ => (self.at, self.playing) = (None, false),
                }
            }
            let wait = (self.next_at - now).max(0.01);
            ui.ctx()
                .request_repaint_after(Duration::from_secs_f64(wait));
        }
        ui.horizontal(|ui| {
            let title = ui.label(RichText::new("Training replay").strong());
            // (words: the window's fonts have no play or pause symbols)
            let play = if self.playing { "Pause" } else { "Play" };
            let hint = "Play the snapshots of its training in order, from the untrained weights to the model itself";
            if ui.button(play).on_hover_text(hint).clicked() {
                self.playing = !self.playing;
                if self.playing {
                    self.at = Some(0);
                    self.next_at = now + FRAME_SECS;
                }
            }
            let mut pos = self.at.unwrap_or(n);
            let text = match self.at {
                Some(k) => moments[k].label(),
                None => "the model itself".into(),
            };
            ui.spacing_mut().slider_width = (ui.available_width() - 260.0).clamp(120.0, 420.0);
            let slider = egui::Slider::new(&mut pos, 0..=n).show_value(false);
            let r = ui
                .push_id(salt, |ui| ui.add(slider))
                .inner
                .labelled_by(title.id)
                .on_hover_text("Drag to see the model at each snapshot of its training (before the first step, early steps, every epoch); the right end is the model itself");
            if r.changed() {
                self.playing = false;
                self.at = (pos < n).then_some(pos);
            }
            ui.label(text);
        });
    }

    /// The model to show for `model`, whose replay is `replay` (from
    /// [`super::state::AppState::replay_of`]): the snapshot chosen, or the
    /// model itself.
    pub fn pick(&self, model: &ModelRef, replay: Option<&(ModelRef, Vec<Moment>)>) -> ModelRef {
        match (self.at, replay) {
            (Some(k), Some((base, moments))) if k < moments.len() => base.at(k, &moments[k]),
            _ => model.clone(),
        }
    }
}

/// A scrubber on one model of a view's list: which model it replays, and
/// the bar.
#[derive(Default)]
pub struct ModelReplay {
    /// The replay shown, by its base path (a live model's stays the same
    /// as its weights refresh); None: the first model with a replay.
    pub model: Option<PathBuf>,
    pub bar: ReplayBar,
}

impl ModelReplay {
    /// The bar for `model` alone (nothing when it has no replay); returns
    /// the model to show.
    pub fn one(
        &mut self,
        ui: &mut egui::Ui,
        salt: &str,
        state: &AppState,
        model: &ModelRef,
    ) -> ModelRef {
        let replay = state.replay_of(model);
        let key = replay.as_ref().map(|(base, _)| base.path.clone());
        if self.model != key {
            // another model: start from the model itself
            self.model = key;
            self.bar = ReplayBar::default();
        }
        let moments = replay.as_ref().map(|(_, m)| m.as_slice()).unwrap_or(&[]);
        self.bar.ui(ui, salt, moments);
        self.bar.pick(model, replay.as_ref())
    }

    /// A choice of the models of `models` that have a replay, and the bar
    /// for the chosen one; returns `models` with it replaced by the
    /// snapshot shown.
    pub fn among(
        &mut self,
        ui: &mut egui::Ui,
        salt: &str,
        state: &AppState,
        models: &[ModelRef],
    ) -> Vec<ModelRef> {
        let with: Vec<(PathBuf, &ModelRef)> = models
            .iter()
            .filter_map(|m| state.replay_of(m).map(|(base, _)| (base.path, m)))
            .collect();
        let Some(first) = with.first() else {
            return models.to_vec();
        };
        let chosen = self
            .model
            .as_ref()
            .and_then(|p| with.iter().find(|(key, _)| key == p))
            .unwrap_or(first);
        let mut pick = chosen.0.clone();
        ui.horizontal(|ui| {
            let l = ui.label("Replay the training of");
            egui::ComboBox::from_id_salt((salt, "model"))
                .selected_text(&chosen.1.label)
                .show_ui(ui, |ui| {
                    for (key, m) in &with {
                        ui.selectable_value(&mut pick, key.clone(), &m.label);
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("The model whose snapshots the replay below steps through");
        });
        let chosen = with
            .iter()
            .find(|(key, _)| *key == pick)
            .unwrap_or(chosen)
            .1;
        let shown = self.one(ui, salt, state, chosen);
        models
            .iter()
            .map(|m| {
                if m.path == chosen.path {
                    shown.clone()
                } else {
                    m.clone()
                }
            })
            .collect()
    }
}
