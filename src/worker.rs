//! The training worker: a named thread owned by a [`WorkerHandle`] (stop flag,
//! join on drop), fed by a bounded command channel, reporting on a bounded
//! event channel. Step events are sent with `try_send` and dropped when the
//! UI lags; started/epoch/finished/failed events are always delivered. The
//! worker never touches UI state: it only sends events and calls `wake`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::data::Dataset;
use crate::model::checkpoint::{self, Manifest};
use crate::model::RunConfig;
use crate::train::job::Save;
use crate::train::{self, Control, TrainEvent};

/// A queued training job.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: u64,
    pub run: RunConfig,
    /// Where to save the finished model (the library folder); None = keep in memory only.
    pub save_dir: Option<PathBuf>,
}

pub enum Command {
    Start(Box<Job>, Arc<Dataset>),
    Shutdown,
}

/// The outcome of a finished (completed, stopped or diverged) job.
#[derive(Clone, Debug)]
pub struct Finished {
    pub manifest: Manifest,
    pub checkpoint: Option<PathBuf>,
    /// Set when saving failed: the model is still in memory.
    pub save_error: Option<String>,
    pub weights: Vec<u8>,
}

#[derive(Clone, Debug)]
pub enum Event {
    /// An event of the training job, as it came. Steps are batched to
    /// about 4 events a second (so the UI repaints at a steady rate
    /// whatever the training speed): a `Step` carries in `earlier` the
    /// losses of the steps thinned out before it (empty for the others).
    Train {
        id: u64,
        event: TrainEvent,
        earlier: Vec<(usize, f32)>,
    },
    Finished {
        id: u64,
        result: Box<Finished>,
    },
    Failed {
        id: u64,
        error: String,
    },
}

impl Event {
    pub fn id(&self) -> u64 {
        match self {
            Event::Train { id, .. } | Event::Finished { id, .. } | Event::Failed { id, .. } => *id,
        }
    }
}

type Wake = Arc<dyn Fn() + Send + Sync>;

/// Owns the worker thread; dropping it stops the current job and joins.
pub struct WorkerHandle {
    commands: Sender<Command>,
    pub events: Receiver<Event>,
    control: Arc<Mutex<Arc<Control>>>,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Capacity of the event channel; step events beyond it are dropped.
const EVENT_CAPACITY: usize = 1024;

impl WorkerHandle {
    /// Spawn the worker, training on `device`; `wake` is called after
    /// each event (e.g. `ctx.request_repaint()`).
    pub fn spawn(wake: Wake, device: candle_core::Device) -> std::io::Result<WorkerHandle> {
        let (cmd_tx, cmd_rx) = bounded::<Command>(16);
        let (ev_tx, ev_rx) = bounded::<Event>(EVENT_CAPACITY);
        let control = Arc::new(Mutex::new(Arc::new(Control::default())));
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("aelab-trainer".into())
            .spawn({
                let control = control.clone();
                let shutdown = shutdown.clone();
                move || worker_loop(cmd_rx, ev_tx, control, shutdown, wake, device)
            })?;
        Ok(WorkerHandle {
            commands: cmd_tx,
            events: ev_rx,
            control,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Queue a job; it starts when the worker is free.
    pub fn start(&self, job: Job, data: Arc<Dataset>) -> Result<(), String> {
        self.commands
            .try_send(Command::Start(Box::new(job), data))
            .map_err(|e| format!("the trainer is busy ({e})"))
    }

    fn current(&self) -> Arc<Control> {
        self.control.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn pause(&self) {
        self.current().set_paused(true);
    }
    pub fn resume(&self) {
        self.current().set_paused(false);
    }
    /// Stop the running job within one batch.
    pub fn stop(&self) {
        let c = self.current();
        c.stop();
        c.set_paused(false);
    }
    pub fn set_learning_rate(&self, lr: f64) {
        self.current().set_learning_rate(lr);
    }
    pub fn is_paused(&self) -> bool {
        self.current().is_paused()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.stop();
        let _ = self.commands.try_send(Command::Shutdown);
        // Events may be pending: drain so a blocking send never stalls the join.
        let events = self.events.clone();
        if let Some(t) = self.thread.take() {
            while !t.is_finished() {
                while events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = t.join();
        }
    }
}

/// Shortest time between two step events.
const STEP_EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Sends the job's events: steps batched and best-effort, the rest reliably.
struct ChannelObserver<'a> {
    id: u64,
    tx: &'a Sender<Event>,
    wake: &'a Wake,
    shutdown: &'a AtomicBool,
    /// The latest step not sent yet, and the losses of those before it.
    pending: Option<(TrainEvent, Vec<(usize, f32)>)>,
    last_step_sent: Option<std::time::Instant>,
}

impl ChannelObserver<'_> {
    fn train_event(&self, event: TrainEvent, earlier: Vec<(usize, f32)>) -> Event {
        Event::Train {
            id: self.id,
            event,
            earlier,
        }
    }

    /// Send the step held back, if any (reliably: before an epoch's end).
    fn flush_steps(&mut self) {
        if let Some((event, earlier)) = self.pending.take() {
            self.send_reliable(self.train_event(event, earlier));
            self.last_step_sent = Some(std::time::Instant::now());
        }
    }

    fn send_reliable(&self, ev: Event) {
        let mut ev = ev;
        loop {
            match self.tx.send_timeout(ev, Duration::from_millis(50)) {
                Ok(()) => break,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if self.shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    ev = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            }
        }
        (self.wake)();
    }

    /// A step: sent now unless one went out less than
    /// [`STEP_EVENT_INTERVAL`] ago or the channel is full; else held back,
    /// its loss kept for the next.
    fn step(&mut self, event: &TrainEvent) {
        let mut earlier = match self.pending.take() {
            Some((TrainEvent::Step { step, loss, .. }, mut earlier)) => {
                earlier.push((step, loss));
                earlier
            }
            _ => Vec::new(),
        };
        if self
            .last_step_sent
            .is_some_and(|t| t.elapsed() < STEP_EVENT_INTERVAL)
        {
            self.pending = Some((event.clone(), earlier));
            return;
        }
        match self.tx.try_send(self.train_event(event.clone(), earlier)) {
            Ok(()) => {
                self.last_step_sent = Some(std::time::Instant::now());
                (self.wake)()
            }
            // The UI lags: keep the losses for the next event.
            Err(TrySendError::Full(Event::Train { earlier: e, .. })) => {
                earlier = e;
                self.pending = Some((event.clone(), earlier));
            }
            Err(_) => {}
        }
    }
}

impl train::Observer for ChannelObserver<'_> {
    fn event(&mut self, e: &TrainEvent) {
        if let TrainEvent::Step { .. } = e {
            self.step(e);
            return;
        }
        // every step before an epoch's end (or the evaluation) arrives first
        self.flush_steps();
        self.send_reliable(self.train_event(e.clone(), Vec::new()));
    }

    fn wants_activations(&self) -> bool {
        true
    }

    fn live_every(&self) -> Option<Duration> {
        Some(crate::model::replay::LIVE_EVERY)
    }
}

fn worker_loop(
    commands: Receiver<Command>,
    events: Sender<Event>,
    control_slot: Arc<Mutex<Arc<Control>>>,
    shutdown: Arc<AtomicBool>,
    wake: Wake,
    device: candle_core::Device,
) {
    loop {
        if shutdown.load(Ordering::SeqCst) {
            return;
        }
        let cmd = match commands.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let (job, data) = match cmd {
            Command::Shutdown => return,
            Command::Start(job, data) => (job, data),
        };
        let control = Arc::new(Control::default());
        if let Ok(mut slot) = control_slot.lock() {
            *slot = control.clone();
        }
        let mut obs = ChannelObserver {
            pending: None,
            last_step_sent: None,
            id: job.id,
            tx: &events,
            wake: &wake,
            shutdown: &shutdown,
        };
        let event = match run_job(&job, &data, &device, &mut obs, &control) {
            Ok(result) => Event::Finished {
                id: job.id,
                result: Box::new(result),
            },
            Err(e) => Event::Failed {
                id: job.id,
                error: format!("{e:#}"),
            },
        };
        // the steps held back come before the end (a failed run's too)
        obs.flush_steps();
        obs.send_reliable(event);
    }
}

/// The job, on the shared train-to-checkpoint path; the weights are kept
/// for the app (to save elsewhere, or when saving failed).
fn run_job(
    job: &Job,
    data: &Dataset,
    device: &candle_core::Device,
    obs: &mut ChannelObserver,
    control: &Control,
) -> anyhow::Result<Finished> {
    let save = match &job.save_dir {
        Some(dir) => Save::Into(dir.clone()),
        None => Save::No,
    };
    let t = train::job::run(
        &train::job::Job {
            run: &job.run,
            data,
            device,
            ways: crate::ways(),
            save,
            save_every_epoch: false,
        },
        obs,
        control,
    )?;
    let weights = checkpoint::to_bytes(&t.model, &t.manifest).map_err(anyhow::Error::msg)?;
    Ok(Finished {
        manifest: t.manifest,
        checkpoint: t.checkpoint,
        save_error: t.save_error,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_synthetic, DatasetKind};
    use crate::model::{ModelConfig, TrainParams};
    use std::time::Instant;

    fn wait_for(
        events: &Receiver<Event>,
        secs: u64,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Vec<Event> {
        let t = Instant::now();
        let mut seen = Vec::new();
        while t.elapsed() < Duration::from_secs(secs) {
            if let Ok(ev) = events.recv_timeout(Duration::from_millis(20)) {
                let done = want(&ev);
                seen.push(ev);
                if done {
                    return seen;
                }
            }
        }
        panic!("timed out; saw {} events", seen.len());
    }

    #[test]
    fn pause_resume_stop_and_join() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 1200, 60, 2).unwrap();
        let data = Arc::new(Dataset::load(dir.path(), DatasetKind::Mnist).unwrap());
        let models = tempfile::tempdir().unwrap();
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = wakes.clone();
        let wake = Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let worker = WorkerHandle::spawn(wake, candle_core::Device::Cpu).unwrap();
        let run = RunConfig {
            model: ModelConfig::preset("shallow-64").unwrap(),
            train: TrainParams {
                epochs: 500,
                ..TrainParams::default()
            },
            dataset: DatasetKind::Mnist,
        };
        worker
            .start(
                Job {
                    id: 7,
                    run,
                    save_dir: Some(models.path().to_path_buf()),
                },
                data,
            )
            .unwrap();
        // the epoch's end, with its code statistics for the live Filters view
        let seen = wait_for(&worker.events, 30, |e| {
            matches!(
                e,
                Event::Train {
                    event: TrainEvent::Epoch { epoch: 1, .. },
                    ..
                }
            )
        });
        let Some(Event::Train {
            event:
                TrainEvent::Epoch {
                    activations: Some(stats),
                    ..
                },
            ..
        }) = seen.last()
        else {
            panic!("no code statistics with the epoch")
        };
        assert_eq!(stats.units(), 64);
        assert!(stats.n_images > 0 && stats.dead < 64);

        worker.pause();
        std::thread::sleep(Duration::from_millis(400)); // let in-flight events arrive
        while worker.events.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            worker.events.try_recv().is_err(),
            "a paused run sends nothing"
        );

        worker.resume();
        wait_for(&worker.events, 30, |e| {
            matches!(
                e,
                Event::Train {
                    event: TrainEvent::Step { .. },
                    ..
                }
            )
        });
        worker.stop();
        let seen = wait_for(&worker.events, 30, |e| matches!(e, Event::Finished { .. }));
        let Some(Event::Finished { id, result }) = seen.last() else {
            unreachable!()
        };
        assert_eq!(*id, 7);
        assert_eq!(result.manifest.status, crate::train::Status::Stopped);
        assert!(result.manifest.epochs_done >= 1);
        assert!(
            result.checkpoint.as_ref().is_some_and(|p| p.is_file()),
            "saved to the library folder"
        );
        assert!(wakes.load(Ordering::SeqCst) > 0, "the UI was woken");
        drop(worker); // joins the thread; a hang here fails the test by timeout
    }
}
