//! `aelab report`: the whole study, reproduced headless. Trains (or reuses
//! from the model library) every model of the study, then writes
//! `REPORT.md`, `metrics.json` and PNG figures answering the study's five
//! questions, with a summary table of every model.

mod obtain;
mod steps;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use std::sync::Arc;

use crate::analysis::{recon, study, ModelCache};
use crate::canvas::{self, Series};
use crate::data::registry::write_atomic;
use crate::data::{Dataset, DatasetKind, PIXELS};
use crate::pca::Pca;
use crate::train::metrics::{self, Metrics};
use crate::train::TrainEvent;
use obtain::Trained;

/// Images per split in `--quick` mode (train, validation, test).
pub const QUICK_SIZES: (usize, usize, usize) = (3000, 600, 600);
/// Digits in the reconstruction figures.
const SHOW: usize = 10;
/// Test images behind the noise-level curves and the OOD errors.
const CURVE_IMAGES: usize = 1000;

#[derive(Clone, Debug)]
pub struct Options {
    pub out: PathBuf,
    pub dataset: DatasetKind,
    pub epochs: usize,
    pub quick: bool,
    /// The model library: reused models come from here and new ones are
    /// saved here (in `--quick` mode, new models go to `out/models` and
    /// nothing is reused).
    pub models_dir: PathBuf,
    /// Models trained at the same time, each on its own core (with one
    /// way each); 1: one model at a time, with every way.
    pub models_at_once: usize,
    /// Where models train and are evaluated (the figures are computed on
    /// the CPU).
    pub device: candle_core::Device,
}

/// One model of the report.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub preset: String,
    pub description: String,
    pub params: usize,
    pub bottleneck: usize,
    pub epochs: usize,
    pub status: String,
    pub train_loss: Option<f64>,
    pub val_mse: Option<f64>,
    pub test: Metrics,
    pub train_secs: f64,
    pub samples_per_sec: f64,
    pub reused: bool,
    pub checkpoint: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OodSummary {
    pub model: String,
    pub mse_in: f64,
    pub mse_other: Option<f64>,
    pub mse_noise: f64,
    pub auroc_other: Option<f64>,
    pub auroc_noise: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SparseSummary {
    pub model: String,
    pub l1: f64,
    pub units: usize,
    pub dead_units: usize,
    pub dead_fraction: f64,
    pub mean_activation: f64,
    pub test_mse: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub dataset: String,
    pub quick: bool,
    pub epochs: usize,
    pub n_train: usize,
    pub n_test: usize,
    pub pca: PcaPart,
    pub models: Vec<ModelSummary>,
    pub ood: Vec<OodSummary>,
    pub sparse: Vec<SparseSummary>,
    /// Test MSE of each model (and PCA-30) at noise levels 0, 0.1, ..., 1.
    pub denoise_curves: BTreeMap<String, Vec<f64>>,
    /// For each noise type: the denoisers' test MSE, training level ×
    /// test level.
    pub denoise_grid: BTreeMap<String, crate::analysis::denoise::Grid>,
    pub conv_winner: Option<ConvWinner>,
    pub vae: Vec<VaeSummary>,
    pub total_secs: f64,
    pub figures: Vec<String>,
}

/// A VAE of the report, on the test set.
#[derive(Clone, Debug, Serialize)]
pub struct VaeSummary {
    pub model: String,
    pub code: usize,
    pub test_mse: f64,
    pub elbo: Option<f64>,
    pub kl: Option<f64>,
    pub active_dims: Option<usize>,
    /// AUROC of the other data set against this one, by reconstruction MSE
    /// and by −ELBO.
    pub auroc_other_by_mse: Option<f64>,
    pub auroc_other_by_elbo: Option<f64>,
    /// The AUROC of the inputs' own pixel entropy alone: −ELBO (BCE)
    /// contains it, so it is the baseline for the ELBO's figure.
    pub auroc_other_by_input_entropy: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PcaPart {
    pub k: usize,
    pub test: Metrics,
    pub cumulative_at: BTreeMap<usize, f64>,
    pub components_for_90: usize,
    pub components_for_95: usize,
    pub components_for_99: usize,
    pub fit_secs: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConvWinner {
    pub best: String,
    pub best_mse: f64,
    pub runner_up: String,
    pub runner_up_mse: f64,
    /// (runner-up − best) / runner-up.
    pub margin: f64,
}

/// What the report tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Note<'a> {
    /// A step of the report: "fitting PCA", a model reused, a warning.
    Line(&'a str),
    /// An event of the `index`-th model (from 1) of `total`, as it trains
    /// for `epochs` epochs.
    Train {
        index: usize,
        total: usize,
        preset: &'a str,
        epochs: usize,
        event: &'a TrainEvent,
    },
}

impl Note<'_> {
    /// The note as a line of text: every line, and one per model epoch
    /// (None for the events that only move a progress bar).
    pub fn line(&self) -> Option<String> {
        match *self {
            Note::Line(l) => Some(l.to_string()),
            Note::Train {
                index,
                total,
                preset,
                epochs,
                event:
                    TrainEvent::Epoch {
                        epoch,
                        val_loss,
                        samples_per_sec,
                        ..
                    },
            } => Some(format!(
                "[{index}/{total}] {preset}: epoch {epoch}/{epochs} val MSE {val_loss:.5} ({samples_per_sec:.0} samples/s)"
            )),
            Note::Train { .. } => None,
        }
    }
}

/// Where the report's notes go.
pub type Progress<'a> = &'a mut (dyn FnMut(Note) + Send);

/// Everything the report writes goes through here (atomic writes).
struct Writer {
    out: PathBuf,
    figures: Vec<String>,
    /// REPORT.md, as it is written.
    md: String,
}

impl Writer {
    fn png(&mut self, name: &str, c: &canvas::Canvas) -> anyhow::Result<String> {
        let file = format!("{name}.png");
        write_atomic(&self.out.join(&file), &c.to_png())
            .with_context(|| format!("writing {}", self.out.join(&file).display()))?;
        self.figures.push(file.clone());
        Ok(file)
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn per_image_mse(rec: &[f32], x: &[f32]) -> Vec<f64> {
    metrics::sse_per_image(rec, x)
        .into_iter()
        .map(|s| s / PIXELS as f64)
        .collect()
}

fn captions(errs: &[f64]) -> Vec<String> {
    errs.iter().map(|e| format!("{e:.4}")).collect()
}

fn clamp01(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|p| p.clamp(0.0, 1.0)).collect()
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

/// The summary table's cells for one model (the same formatting is used
/// everywhere a number appears in REPORT.md).
pub fn summary_cells(m: &ModelSummary) -> Vec<String> {
    vec![
        m.preset.clone(),
        m.params.to_string(),
        m.bottleneck.to_string(),
        m.epochs.to_string(),
        m.train_loss
            .map(|v| format!("{v:.5}"))
            .unwrap_or_else(|| "–".into()),
        m.val_mse
            .map(|v| format!("{v:.5}"))
            .unwrap_or_else(|| "–".into()),
        format!("{:.5}", m.test.mse_per_pixel),
        format!("{:.2}", m.test.psnr),
        format!("{:.4}", m.test.ssim),
        m.test
            .probe_accuracy
            .map(|v| format!("{:.1}%", v * 100.0))
            .unwrap_or_else(|| "–".into()),
        format!("{:.0}", m.train_secs),
        format!("{:.0}", m.samples_per_sec),
    ]
}

pub const SUMMARY_HEADER: [&str; 12] = [
    "model",
    "params",
    "bottleneck",
    "epochs",
    "train loss",
    "val MSE",
    "test MSE",
    "PSNR dB",
    "SSIM",
    "probe acc.",
    "train s",
    "samples/s",
];

/// Run the whole study and write the report into `opts.out`.
pub fn run(
    opts: &Options,
    data: &Dataset,
    other: Option<&Dataset>,
    progress: Progress,
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let (data, other) = if opts.quick {
        let (a, b, c) = QUICK_SIZES;
        (
            data.truncated(a, b, c),
            other.map(|o| o.truncated(10, 10, QUICK_SIZES.2)),
        )
    } else {
        (data.clone(), other.cloned())
    };
    let epochs = if opts.quick { 1 } else { opts.epochs };
    progress(Note::Line("fitting PCA"));
    let (pca, pca_part) = fit_pca(&data)?;
    let trained = obtain::obtain_all(&study::presets(), epochs, &data, opts, &mut *progress)?;
    progress(Note::Line("writing figures"));
    let c = steps::Ctx {
        opts,
        data: &data,
        other: other.as_ref(),
        pca: &pca,
        pca_part: &pca_part,
        pca_test: &pca_part.test,
        trained: &trained,
        epochs,
        show_x: data.test.rows_f32(0..SHOW.min(data.test.len())),
        curve_x: data.test.rows_f32(0..CURVE_IMAGES.min(data.test.len())),
        cache: ModelCache::default(),
    };
    let mut w = Writer {
        out: opts.out.clone(),
        figures: Vec::new(),
        md: String::new(),
    };
    steps::intro(&mut w, &c);
    steps::q1_pca(&mut w, &c)?;
    steps::q1_versus(&mut w, &c)?;
    let ood = steps::q2(&mut w, &c)?;
    let sparse = steps::q3(&mut w, &c)?;
    let denoise_curves = steps::q4(&mut w, &c)?;
    let denoise_grid = steps::q4_grids(&mut w, &c)?;
    let conv_winner = steps::q5(&mut w, &c)?;
    let vae = steps::q6(&mut w, &c)?;
    let total_secs = start.elapsed().as_secs_f64();
    steps::summary(&mut w, &c, total_secs);
    drop(c);
    let summary = Summary {
        dataset: opts.dataset.slug().into(),
        quick: opts.quick,
        epochs,
        n_train: data.train.len(),
        n_test: data.test.len(),
        pca: pca_part,
        models: trained.into_iter().map(|t| t.summary).collect(),
        ood,
        sparse,
        denoise_curves,
        denoise_grid,
        conv_winner,
        vae,
        total_secs,
        figures: w.figures.clone(),
    };
    write_atomic(&opts.out.join("REPORT.md"), w.md.as_bytes()).context("writing REPORT.md")?;
    write_atomic(
        &opts.out.join("metrics.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .context("writing metrics.json")?;
    Ok(summary)
}

/// PCA fitted on the training images, and its part of the summary (with
/// PCA-30's test metrics).
fn fit_pca(data: &Dataset) -> anyhow::Result<(Arc<Pca>, PcaPart)> {
    let t = Instant::now();
    let pca = Pca::fit(&data.train).context("fitting PCA")?;
    let fit_secs = t.elapsed().as_secs_f64();
    let part = PcaPart {
        k: 30,
        test: recon::pca_test_metrics(data, &pca, 30),
        cumulative_at: [2usize, 10, 30, 50, 100]
            .iter()
            .map(|&k| (k, pca.cumulative_ratio[k - 1]))
            .collect(),
        components_for_90: pca.components_for(0.90),
        components_for_95: pca.components_for(0.95),
        components_for_99: pca.components_for(0.99),
        fit_secs,
    };
    Ok((Arc::new(pca), part))
}

fn epoch_series(label: &str, v: &[f64]) -> Series {
    Series {
        label: label.into(),
        points: v
            .iter()
            .enumerate()
            .map(|(i, &m)| [(i + 1) as f64, m])
            .collect(),
        markers: v.len() < 2,
    }
}

fn images_abs_max(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_lines_once_per_epoch() {
        let epoch = TrainEvent::Epoch {
            epoch: 2,
            train_loss: 0.1,
            val_loss: 0.05,
            secs: 1.0,
            samples_per_sec: 1000.0,
            activations: None,
            vae: None,
        };
        let step = TrainEvent::Step {
            epoch: 1,
            step: 3,
            loss: 0.2,
            lr: 1e-3,
            samples_per_sec: 1000.0,
            terms: None,
        };
        let note = |event| Note::Train {
            index: 4,
            total: 15,
            preset: "shallow-256",
            epochs: 10,
            event,
        };
        assert_eq!(
            note(&epoch).line().as_deref(),
            Some("[4/15] shallow-256: epoch 2/10 val MSE 0.05000 (1000 samples/s)")
        );
        assert_eq!(note(&step).line(), None);
        assert_eq!(
            Note::Line("fitting PCA").line().as_deref(),
            Some("fitting PCA")
        );
    }
}
