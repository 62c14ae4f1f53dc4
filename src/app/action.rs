//! How a view asks the app for something: an [`Action`], pushed on the
//! frame's [`Actions`] and applied once the frame is drawn. The same queue
//! takes what finishes later, such as a figure's PNG export.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::state::{DataStatus, View};
use super::AelabApp;
use crate::data::registry;
use crate::model::RunConfig;

/// What a view asks of the app; applied after the frame is drawn, with
/// access to the trainer, the loader and the other views.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Switch to a view.
    ShowView(View),
    Enqueue(RunConfig),
    EnqueueStudy,
    Pause,
    Resume,
    Stop,
    SetLearningRate(f64),
    MoveQueued {
        id: u64,
        up: bool,
    },
    CancelQueued(u64),
    DeleteModel(PathBuf),
    ExportModel {
        from: PathBuf,
        to: PathBuf,
    },
    SaveRunAs {
        run: u64,
        to: PathBuf,
    },
    ImportModel(PathBuf),
    RefreshLibrary,
    Download,
    CancelDownload,
    /// Run `aelab report` into this folder (quick: a small subset, 1 epoch).
    WriteReport {
        out: PathBuf,
        quick: bool,
    },
    /// Download the data set that is not the current one (Noise & OOD).
    DownloadOther(crate::data::DatasetKind),
    CancelOtherDownload,
    /// Put test image `i` on the Draw canvas and show the Draw view.
    SendToDraw(usize),
    /// Tell the user something (in the message line and the log).
    Notify(String),
}

/// The queue of actions: cheap to clone, shared with callbacks that finish
/// after the frame (and kept in the egui context for the figures' export
/// buttons, see [`Actions::of`]).
#[derive(Clone, Default)]
pub struct Actions(Arc<Mutex<Vec<Action>>>);

impl Actions {
    pub fn push(&self, a: Action) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(a);
    }

    /// Everything asked for since the last call.
    pub fn take(&self) -> Vec<Action> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn id() -> egui::Id {
        egui::Id::unique("aelab-actions")
    }

    /// Make this queue the one [`Actions::of`] finds in `ctx`.
    pub fn install(&self, ctx: &egui::Context) {
        ctx.data_mut(|d| d.insert_temp(Self::id(), self.clone()));
    }

    /// The app's queue, from code that has only the egui context.
    pub fn of(ctx: &egui::Context) -> Actions {
        ctx.data_mut(|d| d.get_temp_mut_or_default::<Actions>(Self::id()).clone())
    }
}

impl AelabApp {
    /// Apply what a view asked for.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Enqueue(cfg) => {
                self.state.enqueue(cfg);
            }
            Action::EnqueueStudy => {
                let n = self.state.enqueue_study().len();
                self.state
                    .notify(format!("queued the whole study: {n} runs"));
            }
            Action::Pause => {
                self.worker.pause();
                self.state.paused = true;
            }
            Action::Resume => {
                self.worker.resume();
                self.state.paused = false;
            }
            Action::Stop => self.worker.stop(),
            Action::SetLearningRate(lr) => self.worker.set_learning_rate(lr),
            Action::MoveQueued { id, up } => self.state.move_queued(id, up),
            Action::CancelQueued(id) => self.state.cancel_queued(id),
            Action::DeleteModel(p) => {
                self.compute.models.forget(&p);
                if let Err(e) = self.state.delete_model(&p) {
                    self.state.notify(e);
                }
            }
            Action::ExportModel { from, to } => {
                let res = std::fs::read(&from).and_then(|b| registry::write_atomic(&to, &b));
                match res {
                    Ok(()) => self.state.notify(format!("exported to {}", to.display())),
                    Err(e) => self
                        .state
                        .notify(format!("export to {} failed: {e}", to.display())),
                }
            }
            Action::SaveRunAs { run, to } => {
                let bytes = self.state.run(run).and_then(|r| r.weights.clone());
                let replay = self.state.run(run).map(|r| r.replay.clone());
                let saved = |b: &[u8]| {
                    registry::write_atomic(&to, b)?;
                    // its training replay beside it (as the train job saves it)
                    let replay_path = crate::model::replay::path_for(&to);
                    match replay.as_deref() {
                        Some(r) if !r.is_empty() => crate::model::replay::save(&replay_path, r)
                            .map_err(|e| std::io::Error::other(e.to_string())),
                        _ => Ok(()),
                    }
                };
                match bytes {
                    Some(b) => match saved(&b) {
                        Ok(()) => self.state.notify(format!("saved to {}", to.display())),
                        Err(e) => self.state.notify(format!(
                            "saving to {} failed: {e}; the model is still in memory",
                            to.display()
                        )),
                    },
                    None => self.state.notify("that run has no weights to save"),
                }
            }
            Action::ImportModel(from) => match self.state.import_model(&from) {
                Ok(to) => {
                    // (it may replace a model of the same name, and its replay)
                    self.compute.models.forget(&to);
                    self.state.notify(format!("imported {}", to.display()))
                }
                Err(e) => self.state.notify(e),
            },
            Action::ShowView(v) => self.state.settings.view = v,
            Action::RefreshLibrary => {
                let dir = self.state.models_dir.clone();
                self.state.load_library(&dir);
            }
            Action::Download => self.load_data(true),
            Action::CancelDownload => {
                if let Some(l) = &self.loader {
                    l.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Action::WriteReport { out, quick } => self.write_report(out, quick),
            Action::SendToDraw(i) => {
                if let DataStatus::Ready { data, .. } = &self.state.data {
                    let img = data.test.image_f32(i);
                    self.views
                        .draw_view
                        .set_external(format!("test image #{i}"), 28, 28, img);
                    self.state.settings.view = View::Draw;
                }
            }
            Action::Notify(msg) => self.state.notify(msg),
            Action::DownloadOther(kind) => self.download_other(kind),
            Action::CancelOtherDownload => {
                if let Some(l) = &self.other_loader {
                    l.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
}
