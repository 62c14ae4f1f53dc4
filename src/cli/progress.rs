//! Terminal progress: a one-line bar on stderr when it is a terminal, one
//! line per epoch otherwise.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::data::registry::DownloadProgress;
use crate::train::{Observer, TrainEvent};

pub struct DownloadBar {
    tty: bool,
    last: Option<Instant>,
}

impl Default for DownloadBar {
    fn default() -> Self {
        DownloadBar {
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }
}

impl DownloadBar {
    pub fn update(&mut self, p: &DownloadProgress) -> bool {
        let now = Instant::now();
        let done = p.total.is_some_and(|t| p.bytes >= t);
        if self
            .last
            .is_some_and(|l| now.duration_since(l).as_millis() < 200)
            && !done
        {
            return true;
        }
        self.last = Some(now);
        let pct = p
            .total
            .map(|t| format!("{:5.1}%", 100.0 * p.bytes as f64 / t.max(1) as f64))
            .unwrap_or_default();
        let line = format!(
            "downloading {} ({}/{}) {:.1} MB {pct}",
            p.file,
            p.file_index + 1,
            p.file_count,
            p.bytes as f64 / 1e6
        );
        if self.tty {
            eprint!("\r{line:<70}");
            if done {
                eprintln!();
            }
        } else if done {
            eprintln!("{line}");
        }
        true
    }
}

/// Training progress on stderr.
pub struct TrainBar {
    tty: bool,
    quiet: bool,
    steps_per_epoch: usize,
    epochs: usize,
    last: Option<Instant>,
}

impl TrainBar {
    pub fn new(epochs: usize, quiet: bool) -> Self {
        TrainBar {
            tty: std::io::stderr().is_terminal(),
            quiet,
            steps_per_epoch: 1,
            epochs,
            last: None,
        }
    }
}

impl Observer for TrainBar {
    fn event(&mut self, e: &TrainEvent) {
        if self.quiet {
            return;
        }
        match e {
            TrainEvent::Started {
                steps_per_epoch, ..
            } => self.steps_per_epoch = (*steps_per_epoch).max(1),
            TrainEvent::Step {
                epoch,
                step,
                loss,
                samples_per_sec,
                ..
            } if self.tty => {
                let now = Instant::now();
                if self
                    .last
                    .is_some_and(|l| now.duration_since(l).as_millis() < 100)
                {
                    return;
                }
                self.last = Some(now);
                let in_epoch = (step - 1) % self.steps_per_epoch + 1;
                let frac = in_epoch as f64 / self.steps_per_epoch as f64;
                let filled = (frac * 30.0) as usize;
                eprint!(
                    "\repoch {}/{} [{}{}] {:3.0}% loss {:.5} {:>8.0} samples/s ",
                    epoch + 1,
                    self.epochs,
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    frac * 100.0,
                    loss,
                    samples_per_sec
                );
                let _ = std::io::stderr().flush();
            }
            TrainEvent::Epoch {
                epoch,
                train_loss,
                val_loss,
                secs,
                samples_per_sec,
                ..
            } => {
                if self.tty {
                    eprint!("\r{:<90}\r", "");
                }
                eprintln!(
                    "epoch {epoch}/{}: train loss {train_loss:.6}, val MSE {val_loss:.6}, {secs:.1} s, {samples_per_sec:.0} samples/s",
                    self.epochs
                );
            }
            TrainEvent::LearningRateChanged { step, lr } => {
                eprintln!("\nlearning rate {lr} from step {step}")
            }
            _ => {}
        }
    }
}
