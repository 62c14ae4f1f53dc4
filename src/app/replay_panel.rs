//! The Train view's training replay: a run's reconstructions of one test
//! image per digit at each snapshot of its training, with the scrubber
//! (play, pause), and the same as an animated GIF.

use std::path::PathBuf;
use std::sync::Arc;

use egui::RichText;

use super::images::{Gallery, GalleryRow};
use super::replay_bar::ReplayBar;
use super::state::{AppState, DataStatus, Run, RunStatus};
use crate::analysis::recon::Row;
use crate::analysis::{replay, Compute, ModelRef, Pending};
use crate::data::Dataset;
use crate::model::replay::Moment;

#[derive(Default)]
pub struct ReplayPanel {
    /// The run the user picked (None: the active run, else the newest with
    /// a replay).
    pub run: Option<u64>,
    /// The run shown this frame.
    shown_run: Option<u64>,
    pub bar: ReplayBar,
    recon: Pending<PathBuf, Row>,
    gallery: Gallery,
    shown: Option<PathBuf>,
    /// The test images shown, and the data set they are from.
    images: Option<(Arc<Dataset>, Vec<f32>)>,
}

/// Whether a run has a replay to show.
fn has_replay(state: &AppState, run: &Run) -> bool {
    state.run_replay(run).is_some()
}

/// The model at the right end of a run's bar: its latest weights while it
/// trains, else the saved model, else its last snapshot.
fn itself(state: &AppState, run: &Run, moments: &[Moment]) -> Option<ModelRef> {
    if let Some(live) = run.live_ref() {
        return Some(live);
    }
    let saved = state.saved(run).map(ModelRef::of);
    let last = moments.len().checked_sub(1);
    saved.or_else(|| last.map(|k| run.replay_ref().at(k, &moments[k])))
}

impl ReplayPanel {
    /// The run whose replay is shown.
    fn chosen<'a>(&self, state: &'a AppState) -> Option<&'a Run> {
        let with_replay = |r: &&Run| has_replay(state, r);
        if let Some(r) = self.run.and_then(|id| state.run(id)).filter(with_replay) {
            return Some(r);
        }
        let active = state.active_run().filter(with_replay);
        let newest = state.runs.iter().rev().find(with_replay);
        active.or(newest)
    }

    /// The step of the snapshot shown, if one is (for the loss plot).
    pub fn step_shown(&self, state: &AppState) -> Option<(u64, usize)> {
        let id = self.shown_run?;
        let k = self.bar.at?;
        let (_, moments) = state.run_replay(state.run(id)?)?;
        Some((id, moments.get(k)?.step))
    }

    /// The reconstructions shown, once computed (and what of).
    pub fn shown(&self) -> Option<(&str, &[f32])> {
        let (_, row) = self.recon.value.as_ref()?;
        Some((row.label.as_str(), row.images.as_ref().ok()?.as_slice()))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, compute: &Compute) {
        let DataStatus::Ready { data, .. } = &state.data else {
            return;
        };
        let Some(run) = self.chosen(state) else {
            return;
        };
        if self.shown_run != Some(run.id) {
            // another run: start from its model itself
            self.shown_run = Some(run.id);
            self.bar = ReplayBar::default();
        }
        let Some((base, moments)) = state.run_replay(run) else {
            return;
        };
        ui.separator();
        self.pick_run(ui, state, run.id);
        self.bar.ui(ui, "train-replay", &moments);
        let Some(model) = itself(state, run, &moments) else {
            return;
        };
        let shown = self
            .bar
            .pick(&model, Some(&(base.clone(), moments.clone())));
        if !self
            .images
            .as_ref()
            .is_some_and(|(d, _)| Arc::ptr_eq(d, data))
        {
            self.images = Some((data.clone(), replay::images(&data.test)));
        }
        let images = self
            .images
            .as_ref()
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let (cache, m, imgs) = (compute.models.clone(), shown.clone(), images.clone());
        self.recon.request(shown.path.clone(), || {
            compute.submit("replay-train", move || replay::row(&cache, &m, &imgs))
        });
        self.recon.poll();
        if let Some((key, row)) = &self.recon.value {
            if self.shown.as_ref() != Some(key) {
                // (the moment is beside the bar: a short label keeps the
                // images in place as it changes)
                let mut out = row.clone();
                out.label = "reconstructions".into();
                let rows = vec![
                    GalleryRow::plain("test images", &images),
                    GalleryRow::of_row(&out, true),
                ];
                self.gallery.set(ui.ctx(), "replay-train", rows);
                self.shown = Some(key.clone());
            }
        }
        if self.gallery.is_empty() {
            ui.spinner();
        } else {
            self.gallery.show(ui, "replay-train-grid", 44.0);
        }
        export_gif(ui, compute, &base, &moments, &images);
    }

    fn pick_run(&mut self, ui: &mut egui::Ui, state: &AppState, id: u64) {
        ui.horizontal(|ui| {
            let l = ui.label("Replay of");
            let text = |r: &Run| match r.status {
                RunStatus::Running => format!("{} (training)", r.label()),
                _ => r.label(),
            };
            let selected = state.run(id).map(text).unwrap_or_default();
            egui::ComboBox::from_id_salt("replay-run")
                .selected_text(selected)
                .show_ui(ui, |ui| {
                    for r in state.runs.iter().filter(|r| has_replay(state, r)) {
                        ui.selectable_value(&mut self.run, Some(r.id), text(r));
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("The run whose training the replay shows");
            ui.label(
                RichText::new(
                    "how the model reconstructs one test digit of each class as it learns",
                )
                .weak(),
            );
        });
    }
}

/// "Export GIF…": the reconstructions at every snapshot as an animation,
/// made and written on the analysis thread.
fn export_gif(
    ui: &mut egui::Ui,
    compute: &Compute,
    base: &ModelRef,
    moments: &[Moment],
    images: &[f32],
) {
    let hint = "Save the reconstructions at every snapshot as an animated GIF";
    if !ui.button("Export GIF…").on_hover_text(hint).clicked() {
        return;
    }
    let name = format!("aelab-replay-{}.gif", base.config.preset);
    let Some(path) = super::export::pick(ui.ctx(), &name, "gif") else {
        return;
    };
    let (cache, base, moments) = (compute.models.clone(), base.clone(), moments.to_vec());
    let (images, ctx) = (images.to_vec(), ui.ctx().clone());
    drop(compute.submit_slow("replay-gif", move || {
        let gif = replay::frames(&cache, &base, &moments, &images)
            .and_then(|frames| replay::gif(&frames, replay::FRAME_MS));
        match gif {
            Ok(bytes) => super::export::save(&ctx, &path, &bytes),
            Err(e) => super::export::note(&ctx, format!("could not make the GIF: {e}")),
        }
        ctx.request_repaint();
    }));
}
