use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::progress::TrainBar;
use super::Common;
use crate::data::noise::Noise;
use crate::data::DatasetKind;
use crate::model::{LossKind, ModelConfig, RunConfig, TrainParams};
use crate::train::job::{self, Job, Save};
use crate::train::{Control, Status};

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
    /// A VAE's weight β of the KL term (vae-N presets; 1 by default).
    #[arg(long)]
    pub beta: Option<f64>,
    /// A VAE's β ramps up from 0 over the first epoch.
    #[arg(long)]
    pub beta_warmup: bool,
    /// Reconstruction loss: bce or mse (default: the preset's).
    #[arg(long)]
    pub loss: Option<LossKind>,
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
    if let Some(l) = a.loss {
        model_cfg.loss = l;
    }
    if a.beta.is_some() || a.beta_warmup {
        let crate::model::Arch::Vae { beta, warmup, .. } = &mut model_cfg.arch else {
            anyhow::bail!("--beta and --beta-warmup are for VAE presets (vae-2, vae-30)");
        };
        if let Some(b) = a.beta {
            anyhow::ensure!(
                b >= 0.0 && b.is_finite(),
                "--beta must be a finite number >= 0"
            );
            *beta = b;
        }
        *warmup |= a.beta_warmup;
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
    let save = match (&a.out, a.no_save) {
        (_, true) => Save::No,
        (Some(path), false) => Save::To(path.clone()),
        (None, false) => Save::Into(crate::models_dir(common.models_dir.as_deref())),
    };
    let job = Job {
        run: &cfg,
        data: &ds,
        device: &device,
        ways: crate::ways(),
        save,
        save_every_epoch: a.save_every_epoch,
    };
    let mut bar = TrainBar::new(&cfg.model.preset, cfg.train.epochs);
    let t = job::run(&job, &mut bar, &Control::default()).context("training")?;
    if let Some(e) = &t.save_error {
        anyhow::bail!("saving the checkpoint failed: {e}");
    }
    let m = &t.manifest;
    if let Status::Diverged { .. } | Status::Collapsed { .. } = m.status {
        eprintln!("warning: {}", m.status.label());
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "preset": cfg.model.preset,
                "params": m.params,
                "bottleneck": cfg.model.bottleneck(),
                "epochs": m.epochs_done,
                "status": m.status,
                "train_loss": m.history.train_loss,
                "val_loss": m.history.val_loss,
                "train_reconstruction": m.history.train_reconstruction,
                "train_kl": m.history.train_kl,
                "val_elbo": m.history.val_elbo,
                "val_kl": m.history.val_kl,
                "active_dims": m.history.active_dims,
                "test": m.test_metrics,
                "samples_per_sec": m.samples_per_sec,
                "train_secs": m.train_secs,
                "checkpoint": t.checkpoint,
                "config": cfg,
            })
        );
    } else {
        println!(
            "{}: {} params, {} epochs ({}), {:.0} samples/s",
            cfg.model.preset,
            m.params,
            m.epochs_done,
            m.status.label(),
            m.samples_per_sec
        );
        match &m.test_metrics {
            Some(test) => println!(
                "test: MSE/pixel {:.5}, squared error/image {:.2}, PSNR {:.2} dB, SSIM {:.4}, linear probe {:.2}%",
                test.mse_per_pixel,
                test.sse_per_image,
                test.psnr,
                test.ssim,
                test.probe_accuracy.unwrap_or(0.0) * 100.0
            ),
            None => println!("test: not evaluated (no epoch finished)"),
        }
        if let Some(t) = m.test_metrics.as_ref().filter(|t| t.elbo.is_some()) {
            println!(
                "VAE test: ELBO {:.2} nats/image, KL {:.2} nats, {} active code dimensions",
                t.elbo.unwrap_or(0.0),
                t.kl.unwrap_or(0.0),
                t.active_dims.unwrap_or(0)
            );
        }
        if let Some(p) = &t.checkpoint {
            println!("saved {}", p.display());
        }
    }
    Ok(())
}
