//! The app's logic, apart from drawing: loading the data, draining the
//! trainer's and the loader's events under a time budget, starting queued
//! runs, writing the report, and timing frames.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::loader::{LoadEvent, Loader};
use super::state::{DataStatus, OtherDownload};
use super::{AelabApp, ReportTask};
use crate::model::{ModelConfig, RunConfig, TrainParams};
use crate::worker::Job;

/// Time the UI thread may spend draining events per frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(4);

impl AelabApp {
    /// (Re)load the selected data set in the background.
    pub fn load_data(&mut self, download: bool) {
        let kind = self.state.settings.dataset;
        self.state.data = DataStatus::Loading {
            message: format!("loading {}", kind.display_name()),
            fraction: None,
        };
        self.loader = Some(Loader::spawn(
            self.state.data_dir.clone(),
            kind,
            download,
            self.wake.clone(),
        ));
    }
    /// Download the data set `kind` (not the current one) in the background.
    pub fn download_other(&mut self, kind: crate::data::DatasetKind) {
        self.state.other_download = Some(OtherDownload {
            kind,
            message: format!("downloading {}", kind.display_name()),
            fraction: None,
            error: None,
        });
        self.other_loader = Some(Loader::spawn(
            self.state.data_dir.clone(),
            kind,
            true,
            self.wake.clone(),
        ));
    }

    /// The other data set's download: its progress, then the data (the
    /// views load it again) or why it stopped.
    fn drain_other_loader(&mut self) {
        let Some(loader) = &self.other_loader else {
            return;
        };
        let mut done = false;
        while let Ok(ev) = loader.events.try_recv() {
            let Some(d) = &mut self.state.other_download else {
                break;
            };
            match ev {
                LoadEvent::Progress { message, fraction } => {
                    d.message = message;
                    d.fraction = fraction;
                }
                LoadEvent::Data(data) => {
                    let note = format!("{} is ready", data.kind.display_name());
                    self.state.other_download = None;
                    self.state.other_data_version += 1;
                    self.state.notify(note);
                    done = true;
                    break;
                }
                LoadEvent::Missing(e) | LoadEvent::Failed(e) => {
                    d.error = Some(e);
                    done = true;
                    break;
                }
                LoadEvent::Pca(_) => {}
            }
        }
        if done {
            self.other_loader = None;
        }
    }

    /// Everything but drawing: drain the loader and the worker under a time
    /// budget, start queued runs.
    pub fn logic(&mut self) {
        let start = Instant::now();
        self.drain_other_loader();
        if let Some(loader) = &self.loader {
            while let Ok(ev) = loader.events.try_recv() {
                match ev {
                    LoadEvent::Progress { message, fraction } => {
                        // PCA progress after the data arrived is shown by Ready { pca: None }
                        if !matches!(self.state.data, DataStatus::Ready { .. }) {
                            self.state.data = DataStatus::Loading { message, fraction };
                        }
                    }
                    LoadEvent::Data(d) => {
                        log::info!(
                            "data ready {:.2} s after start",
                            self.started.elapsed().as_secs_f64()
                        );
                        self.state.data = DataStatus::Ready { data: d, pca: None }
                    }
                    LoadEvent::Pca(p) => {
                        if let DataStatus::Ready { pca, .. } = &mut self.state.data {
                            *pca = Some(p);
                        }
                    }
                    LoadEvent::Missing(m) => self.state.data = DataStatus::Missing { message: m },
                    LoadEvent::Failed(m) => self.state.data = DataStatus::Failed { message: m },
                }
            }
        }
        let mut snapshots = false;
        while start.elapsed() < DRAIN_BUDGET {
            match self.worker.events.try_recv() {
                Ok(ev) => {
                    snapshots |= matches!(
                        ev,
                        crate::worker::Event::Train {
                            event: crate::train::TrainEvent::Snapshot { .. },
                            ..
                        } | crate::worker::Event::Finished { .. }
                    );
                    self.state.apply(ev)
                }
                Err(_) => break,
            }
        }
        if snapshots {
            self.serve_snapshots();
        }
        if let Some(r) = &mut self.report {
            while let Ok(msg) = r.rx.try_recv() {
                match msg {
                    Ok(line) => r.last = line,
                    Err(done) => {
                        let result = if done.is_empty() { Ok(()) } else { Err(done) };
                        let note = match &result {
                            Ok(()) => {
                                format!("report written to {}", r.out.join("REPORT.md").display())
                            }
                            Err(e) => format!("the report failed: {e}"),
                        };
                        r.finished = Some(result);
                        self.state.notify(note);
                        let dir = self.state.models_dir.clone();
                        self.state.load_library(&dir);
                    }
                }
            }
        }
        self.maybe_first_model();
        self.start_next();
    }
    /// Let the views' compute find the runs' snapshots and live models
    /// (and forget those of runs gone or finished).
    pub(crate) fn serve_snapshots(&mut self) {
        let sources = self.state.snapshot_sources();
        let cache = &self.compute.models;
        cache.retain_snapshots(|p| sources.iter().any(|(q, ..)| q == p));
        for (path, config, snapshot) in sources {
            cache.insert_snapshot(path, config, snapshot);
        }
    }

    fn maybe_first_model(&mut self) {
        if !self.state.settings.auto_first_model
            || !matches!(self.state.data, DataStatus::Ready { .. })
        {
            return;
        }
        self.state.settings.auto_first_model = false;
        if self.state.library.is_empty() && self.state.runs.is_empty() {
            let model = ModelConfig::preset("shallow-128").expect("preset exists");
            self.state.enqueue(RunConfig {
                model,
                train: TrainParams {
                    epochs: 1,
                    ..TrainParams::default()
                },
                dataset: self.state.settings.dataset,
            });
            self.state.notify("The model library is empty: training a quick first model (shallow-128, 1 epoch) so every view has something to show.");
        }
    }
    fn start_next(&mut self) {
        let DataStatus::Ready { data, .. } = &self.state.data else {
            return;
        };
        let data = data.clone();
        let mismatch = self
            .state
            .queue
            .front()
            .and_then(|&id| self.state.run(id))
            .is_some_and(|r| r.config.dataset != data.kind);
        if mismatch {
            return; // waits until its data set is loaded
        }
        let id = self.state.queue.front().copied();
        if let (Some(id), Some(cfg)) = (id, self.state.take_next()) {
            let job = Job {
                id,
                run: cfg,
                save_dir: Some(self.state.models_dir.clone()),
            };
            if let Err(e) = self.worker.start(job, data) {
                self.state.notify(e);
            }
        }
    }
    /// Start `aelab report` into `out` on a thread of its own.
    pub fn write_report(&mut self, out: PathBuf, quick: bool) {
        if self.report.as_ref().is_some_and(|r| r.finished.is_none()) {
            self.state.notify("a report is already being written");
            return;
        }
        let DataStatus::Ready { data, .. } = &self.state.data else {
            self.state
                .notify("the report needs the data set: wait until it is loaded");
            return;
        };
        let data = data.clone();
        let (tx, rx) = crossbeam_channel::unbounded();
        let opts = crate::report::Options {
            out: out.clone(),
            dataset: data.kind,
            epochs: 10,
            quick,
            models_dir: self.state.models_dir.clone(),
            // one at a time: a core stays with the window
            models_at_once: 1,
            device: self.device.clone(),
        };
        let root = self.state.data_dir.clone();
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("aelab-report".into())
            .spawn(move || {
                let other_kind = match data.kind {
                    crate::data::DatasetKind::Mnist => crate::data::DatasetKind::FashionMnist,
                    crate::data::DatasetKind::FashionMnist => crate::data::DatasetKind::Mnist,
                };
                let other = crate::data::Dataset::load(&root, other_kind).ok();
                let mut progress = |note: crate::report::Note| {
                    if let Some(line) = note.line() {
                        let _ = tx.send(Ok(line));
                        wake();
                    }
                };
                let result = crate::report::run(&opts, &data, other.as_ref(), &mut progress);
                let _ = tx.send(Err(match result {
                    Ok(_) => String::new(),
                    Err(e) => format!("{e:#}"),
                }));
                wake();
            });
        match spawned {
            Ok(_) => {
                self.report = Some(ReportTask {
                    rx,
                    out,
                    last: "starting".into(),
                    finished: None,
                })
            }
            Err(e) => self.state.notify(format!("cannot start the report: {e}")),
        }
    }
    pub(super) fn record_frame_time(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_frame {
            self.frame_ms
                .push_back(now.duration_since(last).as_secs_f32() * 1000.0);
            if self.frame_ms.len() > 240 {
                self.frame_ms.pop_front();
            }
        }
        self.last_frame = Some(now);
    }
    /// Median and worst frame interval (ms) over the last frames.
    pub fn frame_stats(&self) -> Option<(f32, f32)> {
        median_worst(&self.frame_ms)
    }
    /// Median and worst CPU time to build a frame (ms) over the last frames.
    pub fn draw_stats(&self) -> Option<(f32, f32)> {
        median_worst(&self.draw_ms)
    }
    pub(super) fn log_frames(&mut self) {
        let Some(since) = self.frame_log else { return };
        if since.elapsed() < Duration::from_secs(5) {
            return;
        }
        self.frame_log = Some(Instant::now());
        let run = self
            .state
            .active_run()
            .map(|r| format!("{} {:.0} samples/s", r.label(), r.samples_per_sec))
            .unwrap_or_default();
        if let (Some((fm, fw)), Some((dm, dw))) = (self.frame_stats(), self.draw_stats()) {
            eprintln!("frames: build median {dm:.2} ms worst {dw:.2} ms; interval median {fm:.1} ms worst {fw:.1} ms; {run}");
        }
        self.frame_ms.clear();
        self.draw_ms.clear();
    }
}

fn median_worst(v: &VecDeque<f32>) -> Option<(f32, f32)> {
    if v.is_empty() {
        return None;
    }
    let mut v: Vec<f32> = v.iter().copied().collect();
    v.sort_by(f32::total_cmp);
    Some((v[v.len() / 2], *v.last().unwrap_or(&0.0)))
}
