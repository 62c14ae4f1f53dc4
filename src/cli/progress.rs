//! The command line's progress (indicatif): bars with elapsed time and ETA
//! on stderr when it is a terminal, one bar per model while the report
//! trains several at once; one line per epoch (and per downloaded file)
//! when it is not.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::registry::DownloadProgress;
use crate::report::Note;
use crate::train::{Observer, TrainEvent};

/// Whether bars are drawn (else plain lines).
fn tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A training bar: steps done of the run, elapsed, ETA, and the latest loss.
fn train_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {percent:>3}%  {elapsed_precise} elapsed, ETA {eta_precise}  {msg}",
    )
    .expect("a valid template")
    .progress_chars("#>.")
}

/// A training run's bar: `prefix` names it.
fn train_bar(total_steps: usize, prefix: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total_steps as u64), ProgressDrawTarget::stderr());
    bar.set_style(train_style());
    bar.set_prefix(prefix);
    bar
}

fn step_message(loss: f32, samples_per_sec: f64) -> String {
    format!("loss {loss:.5}, {samples_per_sec:.0} samples/s")
}

fn epoch_line(
    epoch: usize,
    epochs: usize,
    train_loss: f64,
    val_loss: f64,
    secs: f64,
    sps: f64,
) -> String {
    format!(
        "epoch {epoch}/{epochs}: train loss {train_loss:.6}, val MSE {val_loss:.6}, {secs:.1} s, {sps:.0} samples/s"
    )
}

/// `aelab train`'s progress.
pub struct TrainBar {
    name: String,
    epochs: usize,
    bar: Option<ProgressBar>,
}

impl TrainBar {
    /// A bar for training `name` for `epochs` epochs.
    pub fn new(name: &str, epochs: usize) -> Self {
        TrainBar {
            name: name.to_string(),
            epochs,
            bar: None,
        }
    }

    /// Print a line above the bar (or alone, without a terminal).
    fn say(&self, line: String) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(line),
            _ => eprintln!("{line}"),
        }
    }
}

impl Observer for TrainBar {
    fn event(&mut self, e: &TrainEvent) {
        match *e {
            TrainEvent::Started { total_steps, .. } => {
                self.bar = Some(train_bar(total_steps, self.name.clone()));
            }
            TrainEvent::Step {
                step,
                loss,
                samples_per_sec,
                ..
            } => {
                if let Some(b) = &self.bar {
                    b.set_position(step as u64);
                    b.set_message(step_message(loss, samples_per_sec));
                }
            }
            TrainEvent::Epoch {
                epoch,
                train_loss,
                val_loss,
                secs,
                samples_per_sec,
                ..
            } => self.say(epoch_line(
                epoch,
                self.epochs,
                train_loss,
                val_loss,
                secs,
                samples_per_sec,
            )),
            TrainEvent::LearningRateChanged { step, lr } => {
                self.say(format!("learning rate {lr} from step {step}"))
            }
            TrainEvent::Evaluating => {
                if let Some(b) = &self.bar {
                    b.finish_with_message("evaluating on the test set");
                }
            }
            TrainEvent::Snapshot { .. } => {}
        }
    }
}

/// `aelab report`'s progress: its lines, and a bar per model training.
pub struct ReportBars {
    multi: MultiProgress,
    bars: HashMap<usize, ProgressBar>,
    tty: bool,
}

impl Default for ReportBars {
    fn default() -> Self {
        ReportBars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            tty: tty(),
        }
    }
}

impl ReportBars {
    pub fn note(&mut self, note: Note) {
        if let Some(line) = note.line() {
            if self.tty {
                let _ = self.multi.println(line);
            } else {
                eprintln!("{line}");
            }
        }
        let Note::Train {
            index,
            total,
            preset,
            event,
            ..
        } = note
        else {
            return;
        };
        match *event {
            TrainEvent::Started { total_steps, .. } => {
                let bar = self.multi.add(train_bar(
                    total_steps,
                    format!("[{index}/{total}] {preset}"),
                ));
                self.bars.insert(index, bar);
            }
            TrainEvent::Step {
                step,
                loss,
                samples_per_sec,
                ..
            } => {
                if let Some(b) = self.bars.get(&index) {
                    b.set_position(step as u64);
                    b.set_message(step_message(loss, samples_per_sec));
                }
            }
            TrainEvent::Evaluating => {
                if let Some(b) = self.bars.remove(&index) {
                    b.finish_and_clear();
                }
            }
            TrainEvent::Epoch { .. }
            | TrainEvent::LearningRateChanged { .. }
            | TrainEvent::Snapshot { .. } => {}
        }
    }
}

/// A download's progress: a bar of bytes per file.
pub struct DownloadBar {
    bar: Option<(usize, ProgressBar)>,
    tty: bool,
}

impl Default for DownloadBar {
    fn default() -> Self {
        DownloadBar {
            bar: None,
            tty: tty(),
        }
    }
}

impl DownloadBar {
    /// Show `p`; true: go on (the download is never cancelled from here).
    pub fn update(&mut self, p: &DownloadProgress) -> bool {
        if self.bar.as_ref().is_none_or(|(i, _)| *i != p.file_index) {
            if let Some((_, b)) = self.bar.take() {
                b.finish();
            }
            let bar = ProgressBar::with_draw_target(p.total, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes}  {elapsed_precise} elapsed, ETA {eta_precise}",
                )
                .expect("a valid template")
                .progress_chars("#>."),
            );
            bar.set_message(format!(
                "downloading {} ({}/{})",
                p.file,
                p.file_index + 1,
                p.file_count
            ));
            self.bar = Some((p.file_index, bar));
        }
        if let Some((_, b)) = &self.bar {
            b.set_position(p.bytes);
            if p.total.is_some_and(|t| p.bytes >= t) {
                b.finish();
                if !self.tty {
                    eprintln!(
                        "downloaded {} ({}/{}), {:.1} MB",
                        p.file,
                        p.file_index + 1,
                        p.file_count,
                        p.bytes as f64 / 1e6
                    );
                }
            }
        }
        true
    }
}
