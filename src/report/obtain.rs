//! The report's models: each preset of the study trained (or reused from
//! the library), several at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use super::{ModelSummary, Note, Options, Progress};
use crate::data::{Dataset, DatasetKind};
use crate::model::checkpoint::{self, Manifest};
use crate::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
use crate::train::job::{self, Job, Save};
use crate::train::{Control, Status, TrainEvent};

pub struct Trained {
    pub model: Arc<Autoencoder>,
    pub manifest: Manifest,
    pub summary: ModelSummary,
}

fn run_config(preset: &str, epochs: usize, dataset: DatasetKind) -> anyhow::Result<RunConfig> {
    Ok(RunConfig {
        model: ModelConfig::preset(preset).map_err(anyhow::Error::msg)?,
        train: TrainParams {
            epochs,
            ..TrainParams::default()
        },
        dataset,
    })
}

/// A completed checkpoint of exactly this run in the library, if any.
fn find_reusable(dir: &Path, cfg: &RunConfig) -> Option<PathBuf> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .filter_map(|p| {
            let m = checkpoint::read_manifest(&p).ok()?;
            (m.run == *cfg
                && m.status == Status::Completed
                && m.epochs_done == cfg.train.epochs
                && m.test_metrics.is_some())
            .then_some((m.created_unix, p))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn obtain(
    cfg: &RunConfig,
    data: &Dataset,
    opts: &Options,
    progress: Progress,
    index: usize,
    total: usize,
) -> anyhow::Result<Trained> {
    let preset = cfg.model.preset.clone();
    if !opts.quick {
        if let Some(path) = find_reusable(&opts.models_dir, cfg) {
            if let Ok((model, manifest)) = checkpoint::load(&path, &candle_core::Device::Cpu) {
                progress(Note::Line(&format!(
                    "[{index}/{total}] {preset}: reusing {}",
                    path.display()
                )));
                let summary = summarise(&model, &manifest, true, Some(path));
                return Ok(Trained {
                    model: Arc::new(model),
                    manifest,
                    summary,
                });
            }
        }
    }
    progress(Note::Line(&format!(
        "[{index}/{total}] {preset}: training on the {}",
        crate::device_label(&opts.device)
    )));
    let mut obs = |event: &TrainEvent| {
        progress(Note::Train {
            index,
            total,
            preset: &preset,
            epochs: cfg.train.epochs,
            event,
        })
    };
    let job = Job {
        run: cfg,
        data,
        device: &opts.device,
        // side by side with other models, each trains on its own core
        ways: if opts.models_at_once > 1 {
            1
        } else {
            crate::ways()
        },
        save: Save::Into(if opts.quick {
            opts.out.join("models")
        } else {
            opts.models_dir.clone()
        }),
        save_every_epoch: false,
    };
    let t = job::run(&job, &mut obs, &Control::default())
        .with_context(|| format!("training {preset}"))?;
    if let Some(e) = &t.save_error {
        progress(Note::Line(&format!(
            "warning: could not save {preset}: {e}"
        )));
    }
    let summary = summarise(&t.model, &t.manifest, false, t.checkpoint);
    Ok(Trained {
        model: Arc::new(t.model),
        manifest: t.manifest,
        summary,
    })
}

fn summarise(
    model: &Autoencoder,
    m: &Manifest,
    reused: bool,
    checkpoint: Option<PathBuf>,
) -> ModelSummary {
    ModelSummary {
        preset: m.run.model.preset.clone(),
        description: m.run.model.describe(),
        params: model.param_count(),
        bottleneck: m.run.model.bottleneck(),
        epochs: m.epochs_done,
        status: m.status.label(),
        train_loss: m.history.train_loss.last().copied(),
        val_mse: m.history.val_loss.last().copied(),
        test: m.test_metrics.clone().unwrap_or_default(),
        train_secs: m.train_secs,
        samples_per_sec: m.samples_per_sec,
        reused,
        checkpoint,
    }
}

/// Every preset's model, trained (or reused) `opts.models_at_once` at a time
/// once (the conv models first), returned in the order of `presets`;
/// progress lines arrive on this thread.
pub(super) fn obtain_all(
    presets: &[&str],
    epochs: usize,
    data: &Dataset,
    opts: &Options,
    progress: Progress,
) -> anyhow::Result<Vec<Trained>> {
    let configs = presets
        .iter()
        .map(|p| run_config(p, epochs, opts.dataset))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total = configs.len();
    // the slowest (conv) models first, so that the last ones to finish are
    // quick and no core idles through a long tail
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| !configs[i].model.is_conv());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<Sent>();
    let mut slots: Vec<Option<anyhow::Result<Trained>>> = (0..total).map(|_| None).collect();
    let slots_lock = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..opts.models_at_once.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let (next, configs, slots, order) = (&next, &configs, &slots_lock, &order);
            scope.spawn(move || loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&i) = order.get(n) else { break };
                let cfg = &configs[i];
                let mut send = |note: Note| {
                    let _ = tx.send(Sent::of(note));
                };
                let result = obtain(cfg, data, opts, &mut send, i + 1, total);
                let failed = result.is_err();
                if let Ok(mut slots) = slots.lock() {
                    slots[i] = Some(result);
                }
                if failed {
                    // the others stop after their current model
                    next.store(total, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
        drop(tx);
        for sent in rx {
            progress(sent.note());
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(anyhow::anyhow!("stopped after another model failed"))))
        .collect()
}

/// A [`Note`] sent from a training thread to the report's.
enum Sent {
    Line(String),
    Train {
        index: usize,
        total: usize,
        preset: String,
        epochs: usize,
        event: TrainEvent,
    },
}

impl Sent {
    fn of(note: Note) -> Sent {
        match note {
            Note::Line(l) => Sent::Line(l.to_string()),
            Note::Train {
                index,
                total,
                preset,
                epochs,
                event,
            } => Sent::Train {
                index,
                total,
                preset: preset.to_string(),
                epochs,
                event: event.clone(),
            },
        }
    }

    fn note(&self) -> Note<'_> {
        match self {
            Sent::Line(l) => Note::Line(l),
            Sent::Train {
                index,
                total,
                preset,
                epochs,
                event,
            } => Note::Train {
                index: *index,
                total: *total,
                preset,
                epochs: *epochs,
                event,
            },
        }
    }
}
