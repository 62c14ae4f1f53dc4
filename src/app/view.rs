//! What every view is to the app: a name, a tooltip and a `ui` that draws
//! it from what [`ViewCx`] gives (the pattern of egui's demo app: a trait
//! and a list that the app iterates, see [`super::Views::all`]).

use super::action::Actions;
use super::latent_map::LatentMap;
use super::library_view::ReportState;
use super::state::{AppState, View};
use crate::analysis::Compute;

/// What a view gets each frame.
pub struct ViewCx<'a> {
    pub state: &'a mut AppState,
    pub compute: &'a Compute,
    /// Where the view asks the app for things.
    pub actions: &'a Actions,
    /// The Draw view's current input and its version.
    pub drawn: Option<(u64, Vec<f32>)>,
    /// The map of the test set (the Latent view's, shown small in Draw).
    pub map: &'a mut LatentMap,
    /// The report being written, if any.
    pub report: Option<ReportState>,
}

pub trait AppView {
    /// Which view this is (the side panel, the settings and the study's
    /// links name views by it).
    fn id(&self) -> View;

    /// The name in the side panel.
    fn name(&self) -> &'static str {
        self.id().label()
    }

    /// What the view shows, in one sentence.
    fn tooltip(&self) -> &'static str {
        self.id().explain()
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut ViewCx);
}
