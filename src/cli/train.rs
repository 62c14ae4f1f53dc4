use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::progress::TrainBar;
use super::Common;
use crate::data::noise::Noise;
use crate::data::DatasetKind;
use crate::model::checkpoint::{self, Manifest};
use crate::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
use crate::train::{self, Control, Status};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Preset (see `aelab presets`).
    #[arg(long, default_value = "deep")]
    pub preset: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Training noise KIND:LEVEL (gaussian, masking, salt-pepper), or none.
    #[arg(long)]
    pub noise: Option<Noise>,
    /// λ of the L1 penalty on the code.
    #[arg(long)]
    pub l1: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Use only the first N training images (and N/5 validation, N/5 test).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Checkpoint path (default: the model library folder).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not save a checkpoint.
    #[arg(long)]
    pub no_save: bool,
    /// Also save the checkpoint (atomically, same path) after every epoch,
    /// so an interrupted run keeps its finished epochs.
    #[arg(long)]
    pub save_every_epoch: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(common: &Common, a: TrainArgs) -> anyhow::Result<()> {
    let mut model_cfg = ModelConfig::preset(&a.preset).map_err(anyhow::Error::msg)?;
    if let Some(n) = a.noise {
        model_cfg.noise = n;
    }
    if let Some(l) = a.l1 {
        anyhow::ensure!(
            l >= 0.0 && l.is_finite(),
            "--l1 must be a finite number >= 0"
        );
        model_cfg.l1 = l;
    }
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        a.lr > 0.0 && a.lr.is_finite(),
        "--lr must be a positive number"
    );
    let cfg = RunConfig {
        model: model_cfg,
        train: TrainParams {
            epochs: a.epochs,
            batch_size: a.batch,
            lr: a.lr,
            seed: a.seed,
            ..TrainParams::default()
        },
        dataset: a.dataset,
    };
    let mut ds = super::load_dataset(common, a.dataset)?;
    if let Some(n) = a.limit {
        ds = ds.truncated(n, (n / 5).max(1), (n / 5).max(1));
    }
    let device = crate::device(&common.device)?;
    let model = Autoencoder::new(&cfg.model, cfg.train.seed, &device)?;
    let checkpoint_path = (!a.no_save).then(|| {
        a.out.clone().unwrap_or_else(|| {
            crate::models_dir(common.models_dir.as_deref()).join(format!(
                "{}-{}-{}.safetensors",
                cfg.model.preset,
                cfg.dataset.slug(),
                Manifest::new(cfg.clone(), 0).created_unix
            ))
        })
    });
    let mut bar = TrainBar::new(cfg.train.epochs, false);
    let outcome = {
        let mut saver = EpochSaver {
            bar: &mut bar,
            model: &model,
            cfg: &cfg,
            path: checkpoint_path.as_deref().filter(|_| a.save_every_epoch),
            history: train::History::default(),
            started: std::time::Instant::now(),
        };
        train::run(&cfg, &ds, &model, &mut saver, &Control::default()).context("training")?
    };
    let test = train::evaluate(
        &model,
        &ds.test,
        cfg.model.noise,
        cfg.train.seed,
        Some(&ds.train),
    )?;
    let manifest = Manifest::from_outcome(
        cfg.clone(),
        model.param_count(),
        &outcome,
        Some(test.clone()),
    );
    if let Some(path) = &checkpoint_path {
        checkpoint::save(path, &model, &manifest)?;
    }
    if let Status::Diverged { .. } | Status::Collapsed { .. } = outcome.status {
        eprintln!("warning: {}", outcome.status.label());
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "preset": cfg.model.preset,
                "params": model.param_count(),
                "bottleneck": cfg.model.bottleneck(),
                "epochs": outcome.epochs_done,
                "status": outcome.status,
                "train_loss": outcome.history.train_loss,
                "val_loss": outcome.history.val_loss,
                "test": test,
                "samples_per_sec": outcome.samples_per_sec,
                "train_secs": outcome.train_secs,
                "checkpoint": checkpoint_path,
                "config": cfg,
            })
        );
    } else {
        println!(
            "{}: {} params, {} epochs ({}), {:.0} samples/s",
            cfg.model.preset,
            model.param_count(),
            outcome.epochs_done,
            outcome.status.label(),
            outcome.samples_per_sec
        );
        println!(
            "test: MSE/pixel {:.5}, squared error/image {:.2}, PSNR {:.2} dB, SSIM {:.4}, linear probe {:.2}%",
            test.mse_per_pixel,
            test.sse_per_image,
            test.psnr,
            test.ssim,
            test.probe_accuracy.unwrap_or(0.0) * 100.0
        );
        if let Some(p) = &checkpoint_path {
            println!("saved {}", p.display());
        }
    }
    Ok(())
}

/// Passes events to the progress bar and, when asked, saves the checkpoint
/// after every epoch.
struct EpochSaver<'a> {
    bar: &'a mut TrainBar,
    model: &'a Autoencoder,
    cfg: &'a RunConfig,
    path: Option<&'a std::path::Path>,
    history: train::History,
    started: std::time::Instant,
}

impl train::Observer for EpochSaver<'_> {
    fn event(&mut self, e: &train::TrainEvent) {
        self.bar.event(e);
        let (
            Some(path),
            train::TrainEvent::Epoch {
                epoch,
                train_loss,
                val_loss,
                samples_per_sec,
                ..
            },
        ) = (self.path, e)
        else {
            return;
        };
        self.history.train_loss.push(*train_loss);
        self.history.val_loss.push(*val_loss);
        let outcome = train::Outcome {
            status: Status::Stopped,
            history: self.history.clone(),
            epochs_done: *epoch,
            steps_done: 0,
            train_secs: self.started.elapsed().as_secs_f64(),
            samples_per_sec: *samples_per_sec,
        };
        let manifest =
            Manifest::from_outcome(self.cfg.clone(), self.model.param_count(), &outcome, None);
        if let Err(err) = checkpoint::save(path, self.model, &manifest) {
            eprintln!("warning: saving after epoch {epoch} failed: {err}");
        }
    }
}
