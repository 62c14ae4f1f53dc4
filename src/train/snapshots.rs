//! When the training loop copies its weights: the replay's moments (before
//! the first step, a few early steps, every epoch) and, for an observer
//! that shows the model live, a fresher copy every few seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::run::{Observer, TrainEvent};
use crate::model::replay::{Moment, Snapshot, EARLY_STEPS};
use crate::model::Autoencoder;

pub(crate) struct Snapshots {
    steps_per_epoch: usize,
    live_every: Option<Duration>,
    last: Instant,
}

impl Snapshots {
    /// Start, sending the snapshot of the initial weights.
    pub fn start(
        model: &Autoencoder,
        steps_per_epoch: usize,
        observer: &mut (dyn Observer + Send),
    ) -> candle_core::Result<Snapshots> {
        let mut s = Snapshots {
            steps_per_epoch: steps_per_epoch.max(1),
            live_every: observer.live_every(),
            last: Instant::now(),
        };
        s.send(model, 0, None, true, observer)?;
        Ok(s)
    }

    fn send(
        &mut self,
        model: &Autoencoder,
        step: usize,
        val_loss: Option<f64>,
        kept: bool,
        observer: &mut (dyn Observer + Send),
    ) -> candle_core::Result<()> {
        let moment = Moment {
            step,
            epoch: step as f64 / self.steps_per_epoch as f64,
            val_loss,
        };
        let snapshot = Arc::new(Snapshot::of(model, moment)?);
        observer.event(&TrainEvent::Snapshot { snapshot, kept });
        self.last = Instant::now();
        Ok(())
    }

    /// After step `step` (counted from 1): an early moment of the first
    /// epoch, or a live copy when one is due.
    pub fn after_step(
        &mut self,
        model: &Autoencoder,
        step: usize,
        observer: &mut (dyn Observer + Send),
    ) -> candle_core::Result<()> {
        if step.is_multiple_of(self.steps_per_epoch) {
            return Ok(()); // the epoch's own snapshot follows
        }
        if step < self.steps_per_epoch && EARLY_STEPS.contains(&step) {
            return self.send(model, step, None, true, observer);
        }
        match self.live_every {
            Some(every) if self.last.elapsed() >= every => {
                self.send(model, step, None, false, observer)
            }
            _ => Ok(()),
        }
    }

    /// After an epoch ending at `step`, validated at `val_loss`.
    pub fn after_epoch(
        &mut self,
        model: &Autoencoder,
        step: usize,
        val_loss: f64,
        observer: &mut (dyn Observer + Send),
    ) -> candle_core::Result<()> {
        self.send(model, step, Some(val_loss), true, observer)
    }
}
