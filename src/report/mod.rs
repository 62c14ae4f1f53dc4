//! `aelab report`: the whole study, reproduced headless. Trains (or reuses
//! from the model library) every model of the study, then writes
//! `REPORT.md`, `metrics.json` and PNG figures answering the study's five
//! questions, with a summary table of every model.

pub mod canvas;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use crate::analysis::study;
use crate::data::noise::{Noise, NoiseKind};
use crate::data::registry::write_atomic;
use crate::data::{Dataset, DatasetKind, PIXELS};
use crate::model::checkpoint::{self, Manifest};
use crate::model::{Autoencoder, ConvDecoder, ModelConfig, RunConfig, TrainParams};
use crate::pca::Pca;
use crate::rng::Rng;
use crate::train::metrics::{self, ActivationStats, Metrics};
use crate::train::{self, Control, Status, TrainEvent};
use canvas::{diverging, image_grid, line_plot, GridRow, Series};

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
    /// Models trained at the same time, each on its own thread.
    pub jobs: usize,
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
    pub conv_winner: Option<ConvWinner>,
    pub total_secs: f64,
    pub figures: Vec<String>,
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

struct Trained {
    model: Autoencoder,
    manifest: Manifest,
    summary: ModelSummary,
}

/// Reports progress: a line of text.
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

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
                progress(&format!(
                    "[{index}/{total}] {preset}: reusing {}",
                    path.display()
                ));
                let summary = summarise(&model, &manifest, true, Some(path));
                return Ok(Trained {
                    model,
                    manifest,
                    summary,
                });
            }
        }
    }
    let model = Autoencoder::new(&cfg.model, cfg.train.seed, &opts.device)?;
    progress(&format!(
        "[{index}/{total}] {preset}: training on the {}",
        crate::device_label(&opts.device)
    ));
    let mut obs = |e: &TrainEvent| {
        if let TrainEvent::Epoch {
            epoch,
            val_loss,
            samples_per_sec,
            ..
        } = e
        {
            progress(&format!(
                "[{index}/{total}] {preset}: epoch {epoch}/{} val MSE {val_loss:.5} ({samples_per_sec:.0} samples/s)",
                cfg.train.epochs
            ));
        }
    };
    // side by side with other models, each trains on its own core
    let ways = if opts.jobs > 1 {
        1
    } else {
        crate::train_ways()
    };
    let outcome = train::run::run_in_parts(cfg, data, &model, &mut obs, &Control::default(), ways)
        .with_context(|| format!("training {preset}"))?;
    let test = train::evaluate(
        &model,
        &data.test,
        cfg.model.noise,
        cfg.train.seed,
        Some(&data.train),
    )?;
    let manifest = Manifest::from_outcome(cfg.clone(), model.param_count(), &outcome, Some(test));
    let dir = if opts.quick {
        opts.out.join("models")
    } else {
        opts.models_dir.clone()
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!(
        "{preset}-{}-{}-report.safetensors",
        cfg.dataset.slug(),
        manifest.created_unix
    ));
    let saved = match checkpoint::save(&path, &model, &manifest) {
        Ok(()) => Some(path),
        Err(e) => {
            progress(&format!("warning: could not save {preset}: {e}"));
            None
        }
    };
    let model = model.to_device(&candle_core::Device::Cpu)?;
    let summary = summarise(&model, &manifest, false, saved);
    Ok(Trained {
        model,
        manifest,
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

/// Everything the report writes goes through here (atomic writes).
struct Writer {
    out: PathBuf,
    figures: Vec<String>,
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

/// Random images: uniform noise in [0, 1].
fn uniform_noise(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * PIXELS).map(|_| rng.uniform()).collect()
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
/// Every preset's model, trained (or reused) by `opts.jobs` threads at
/// once (the conv models first), returned in the order of `presets`;
/// progress lines arrive on this thread.
fn obtain_all(
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
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut slots: Vec<Option<anyhow::Result<Trained>>> = (0..total).map(|_| None).collect();
    let slots_lock = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let (next, configs, slots, order) = (&next, &configs, &slots_lock, &order);
            scope.spawn(move || loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&i) = order.get(n) else { break };
                let cfg = &configs[i];
                let mut send = |line: &str| {
                    let _ = tx.send(line.to_string());
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
        for line in rx {
            progress(&line);
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(anyhow::anyhow!("stopped after another model failed"))))
        .collect()
}

pub fn run(
    opts: &Options,
    data: &Dataset,
    other: Option<&Dataset>,
    progress: Progress,
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let data = if opts.quick {
        let (a, b, c) = QUICK_SIZES;
        data.truncated(a, b, c)
    } else {
        data.clone()
    };
    let other = other.map(|o| {
        if opts.quick {
            o.truncated(10, 10, QUICK_SIZES.2)
        } else {
            o.clone()
        }
    });
    let epochs = if opts.quick { 1 } else { opts.epochs };
    let mut w = Writer {
        out: opts.out.clone(),
        figures: Vec::new(),
    };

    // --- PCA
    progress("fitting PCA");
    let t = Instant::now();
    let pca = Pca::fit(&data.train).context("fitting PCA")?;
    let fit_secs = t.elapsed().as_secs_f64();
    let test_x = data.test.to_f32();
    let pca_rec = clamp01(pca.reconstruct(&test_x, 30));
    let mut pca_test = metrics::reconstruction_metrics(&pca_rec, &test_x);
    {
        let tr = data.train.head(train::run::PROBE_TRAIN_IMAGES);
        pca_test.probe_accuracy = Some(metrics::linear_probe(
            &pca.project(&tr.to_f32(), 30),
            &tr.labels,
            &pca.project(&test_x, 30),
            &data.test.labels,
            30,
            1,
        ));
    }
    let pca_part = PcaPart {
        k: 30,
        test: pca_test.clone(),
        cumulative_at: [2usize, 10, 30, 50, 100]
            .iter()
            .map(|&k| (k, pca.cumulative_ratio[k - 1]))
            .collect(),
        components_for_90: pca.components_for(0.90),
        components_for_95: pca.components_for(0.95),
        components_for_99: pca.components_for(0.99),
        fit_secs,
    };

    // --- models
    let presets = study::presets();
    let trained = obtain_all(&presets, epochs, &data, opts, &mut *progress)?;
    let by = |name: &str| trained.iter().find(|t| t.summary.preset == name);
    progress("writing figures");

    let n_show = SHOW.min(data.test.len());
    let show_x = data.test.rows_f32(0..n_show);
    let rec_row = |t: &Trained, x: &[f32], target: &[f32]| -> anyhow::Result<GridRow> {
        let r = t.model.reconstruct(x)?;
        Ok(GridRow::digits(
            &t.summary.preset,
            &r,
            captions(&per_image_mse(&r, target)),
        ))
    };
    let mut md = String::new();
    let _ = writeln!(md, "# The autoencoder study, reproduced by aelab\n");
    let _ = writeln!(
        md,
        "Data: {} ({} training, {} validation, {} test images){}. Every model trained for {} epoch(s) with Adam (lr 1e-3, batch 32, seed 1); conv models with BCE, the others with MSE; errors are MSE per pixel on the test set against clean images. Generated by `aelab report`{}.\n",
        opts.dataset.display_name(),
        data.train.len(),
        data.val.len(),
        data.test.len(),
        if opts.quick { " — quick mode, a small subset" } else { "" },
        epochs,
        if opts.quick { " --quick" } else { "" }
    );

    // --- Q1
    let _ = writeln!(md, "## Q1. PCA versus a deep autoencoder\n");
    let n_bars = 50.min(PIXELS);
    let ratio: Vec<f64> = pca.explained_variance_ratio[..n_bars].to_vec();
    let cum: Vec<f64> = pca.cumulative_ratio[..n_bars].to_vec();
    let f = w.png(
        "q1_explained_variance",
        &canvas::bar_plot(
            "PCA: explained variance of the first 50 components (bars) and cumulative (line)",
            "component",
            &ratio,
            Some(("cumulative", &cum)),
        ),
    )?;
    let _ = writeln!(
        md,
        "PCA keeps {:.1}% of the variance with 2 components, {:.1}% with 10, {:.1}% with 30 and {:.1}% with 100; 90/95/99% need {}/{}/{} components.\n\n![explained variance]({f})\n",
        pca_part.cumulative_at[&2] * 100.0,
        pca_part.cumulative_at[&10] * 100.0,
        pca_part.cumulative_at[&30] * 100.0,
        pca_part.cumulative_at[&100] * 100.0,
        pca_part.components_for_90,
        pca_part.components_for_95,
        pca_part.components_for_99
    );
    let mut eigen = vec![GridRow {
        label: "mean".into(),
        images: vec![canvas::gray(&pca.mean)],
        captions: vec![String::new()],
        side: 28,
    }];
    eigen.push(GridRow {
        label: "components 1-8".into(),
        images: (0..8)
            .map(|c| diverging(pca.component(c), images_abs_max(pca.component(c))))
            .collect(),
        captions: (0..8)
            .map(|c| format!("{:.1}%", pca.explained_variance_ratio[c] * 100.0))
            .collect(),
        side: 28,
    });
    eigen.push(GridRow {
        label: "components 9-16".into(),
        images: (8..16)
            .map(|c| diverging(pca.component(c), images_abs_max(pca.component(c))))
            .collect(),
        captions: (8..16)
            .map(|c| format!("{:.1}%", pca.explained_variance_ratio[c] * 100.0))
            .collect(),
        side: 28,
    });
    let f = w.png(
        "q1_eigendigits",
        &image_grid("Mean image and eigen-digits (red +, blue -)", &eigen, 56),
    )?;
    let _ = writeln!(md, "![eigen-digits]({f})\n");
    let grid = pca.percentile_grid(&data.train, 5);
    let rows: Vec<GridRow> = grid
        .iter()
        .enumerate()
        .map(|(c, idx)| {
            let px: Vec<f32> = idx.iter().flat_map(|&i| data.train.image_f32(i)).collect();
            GridRow::digits(
                format!("component {}", c + 1),
                &px,
                crate::pca::PERCENTILES
                    .iter()
                    .map(|p| format!("{p}%"))
                    .collect(),
            )
        })
        .collect();
    let f = w.png(
        "q1_percentiles",
        &image_grid(
            "Training images at percentiles of each component's score",
            &rows,
            42,
        ),
    )?;
    let _ = writeln!(md, "![percentile grid]({f})\n");
    if let Some(deep) = by("deep") {
        let pca_show = clamp01(pca.reconstruct(&show_x, 30));
        let rows = vec![
            GridRow::digits("original", &show_x, vec![]),
            GridRow::digits(
                "PCA-30",
                &pca_show,
                captions(&per_image_mse(&pca_show, &show_x)),
            ),
            rec_row(deep, &show_x, &show_x)?,
        ];
        let f = w.png(
            "q1_pca30_vs_deep",
            &image_grid(
                "The same test digits: PCA-30 and deep (code of 30)",
                &rows,
                42,
            ),
        )?;
        let _ = writeln!(md, "![PCA-30 vs deep]({f})\n");
        let h = &deep.manifest.history;
        let f = w.png(
            "q1_deep_loss",
            &line_plot(
                "deep: loss per epoch",
                "epoch",
                "MSE",
                &[
                    epoch_series("training loss", &h.train_loss),
                    epoch_series("validation MSE", &h.val_loss),
                ],
                true,
            ),
        )?;
        let _ = writeln!(md, "![deep loss]({f})\n");
        let ratio = pca_test.mse_per_pixel / deep.summary.test.mse_per_pixel.max(1e-12);
        let _ = writeln!(
            md,
            "**Take-away:** with the same code size (30), PCA's test MSE is {:.5} and the deep autoencoder's {:.5}: PCA's error is {ratio:.2}× the autoencoder's. Linear-probe accuracy on the codes: PCA-30 {:.1}%, deep {:.1}%.\n",
            pca_test.mse_per_pixel,
            deep.summary.test.mse_per_pixel,
            pca_test.probe_accuracy.unwrap_or(0.0) * 100.0,
            deep.summary.test.probe_accuracy.unwrap_or(0.0) * 100.0
        );
    }
    let n_curve = CURVE_IMAGES.min(data.test.len());
    let curve = pca.error_curve(&data.test.rows_f32(0..n_curve));
    // up to k = 260 (the conv and shallow-256 codes); beyond, PCA's error
    // drops to rounding noise and would squash the interesting part
    let mut series = vec![Series {
        label: "PCA-k".into(),
        points: curve
            .iter()
            .enumerate()
            .take(260)
            .map(|(k, &e)| [(k + 1) as f64, e])
            .collect(),
        markers: false,
    }];
    let plain = |t: &&Trained| {
        let m = &t.manifest.run.model;
        m.l1 == 0.0 && m.noise.is_none()
    };
    for t in trained.iter().filter(plain) {
        series.push(Series {
            label: t.summary.preset.clone(),
            points: vec![[t.summary.bottleneck as f64, t.summary.test.mse_per_pixel]],
            markers: true,
        });
    }
    series.truncate(10); // the palette's size; the table lists every model
    let f = w.png(
        "q1_error_vs_k",
        &line_plot(
            "Test MSE against code size: PCA-k (line) and autoencoders (points)",
            "code size k",
            "MSE",
            &series,
            true,
        ),
    )?;
    let _ = writeln!(md, "![error vs k]({f})\n");

    // --- Q2
    let _ = writeln!(
        md,
        "## Q2. Hidden-layer size, and inputs the models never saw\n"
    );
    let shallow: Vec<&Trained> = trained
        .iter()
        .filter(|t| t.summary.preset.starts_with("shallow-"))
        .collect();
    let f = w.png(
        "q2_shallow_loss",
        &line_plot(
            "shallow autoencoders: validation MSE per epoch",
            "epoch",
            "MSE",
            &shallow
                .iter()
                .map(|t| epoch_series(&t.summary.preset, &t.manifest.history.val_loss))
                .collect::<Vec<_>>(),
            true,
        ),
    )?;
    let _ = writeln!(md, "![shallow loss]({f})\n");
    let mut rows = vec![GridRow::digits("original", &show_x, vec![])];
    for t in &shallow {
        rows.push(rec_row(t, &show_x, &show_x)?);
    }
    let f = w.png(
        "q2_shallow_reconstructions",
        &image_grid("Reconstructions by hidden size", &rows, 42),
    )?;
    let _ = writeln!(md, "![shallow reconstructions]({f})\n");
    table(
        &mut md,
        &["model", "params", "hidden units", "test MSE", "SSIM"],
        &shallow
            .iter()
            .map(|t| {
                vec![
                    t.summary.preset.clone(),
                    t.summary.params.to_string(),
                    t.summary.bottleneck.to_string(),
                    format!("{:.5}", t.summary.test.mse_per_pixel),
                    format!("{:.4}", t.summary.test.ssim),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let noise_x = uniform_noise(n_curve, 7);
    let in_x = data.test.rows_f32(0..n_curve);
    let other_x = other
        .as_ref()
        .map(|o| o.test.rows_f32(0..CURVE_IMAGES.min(o.test.len())));
    let mut ood = Vec::new();
    let mut ood_models: Vec<&Trained> = shallow.clone();
    if let Some(d) = by("deep") {
        ood_models.push(d);
    }
    for t in &ood_models {
        let e_in = per_image_mse(&t.model.reconstruct(&in_x)?, &in_x);
        let e_noise = per_image_mse(&t.model.reconstruct(&noise_x)?, &noise_x);
        let e_other = match &other_x {
            Some(o) => Some(per_image_mse(&t.model.reconstruct(o)?, o)),
            None => None,
        };
        ood.push(OodSummary {
            model: t.summary.preset.clone(),
            mse_in: mean(&e_in),
            mse_other: e_other.as_ref().map(|e| mean(e)),
            mse_noise: mean(&e_noise),
            auroc_other: e_other.as_ref().map(|e| metrics::auroc(e, &e_in)),
            auroc_noise: metrics::auroc(&e_noise, &e_in),
        });
    }
    let other_name = other
        .as_ref()
        .map(|o| o.kind.display_name())
        .unwrap_or("the other data set");
    if let Some(o) = &other_x {
        let o_show = &o[..SHOW.min(o.len() / PIXELS) * PIXELS];
        let mut rows = vec![GridRow::digits(other_name, o_show, vec![])];
        for t in &ood_models {
            rows.push(rec_row(t, o_show, o_show)?);
        }
        let f = w.png(
            "q2_other_dataset",
            &image_grid(
                &format!(
                    "{other_name} through models trained on {}",
                    opts.dataset.display_name()
                ),
                &rows,
                42,
            ),
        )?;
        let _ = writeln!(md, "![other data set]({f})\n");
    } else {
        let _ = writeln!(
            md,
            "{other_name} is not available in the data folder: its rows are left out.\n"
        );
    }
    let noise_show = &noise_x[..SHOW.min(n_curve) * PIXELS];
    let mut rows = vec![GridRow::digits("uniform noise", noise_show, vec![])];
    for t in &ood_models {
        rows.push(rec_row(t, noise_show, noise_show)?);
    }
    let f = w.png(
        "q2_noise",
        &image_grid("Uniform random images through the same models", &rows, 42),
    )?;
    let _ = writeln!(md, "![noise]({f})\n");
    table(
        &mut md,
        &[
            "model",
            "MSE in-distribution",
            "MSE other data set",
            "MSE noise",
            "AUROC other vs in",
            "AUROC noise vs in",
        ],
        &ood.iter()
            .map(|o| {
                vec![
                    o.model.clone(),
                    format!("{:.5}", o.mse_in),
                    o.mse_other
                        .map(|v| format!("{v:.5}"))
                        .unwrap_or_else(|| "–".into()),
                    format!("{:.5}", o.mse_noise),
                    o.auroc_other
                        .map(|v| format!("{v:.3}"))
                        .unwrap_or_else(|| "–".into()),
                    format!("{:.3}", o.auroc_noise),
                ]
            })
            .collect::<Vec<_>>(),
    );

    // --- Q3
    let _ = writeln!(
        md,
        "## Q3. Sparsity (L1 on the code) and the filters it learns\n"
    );
    let sparse: Vec<&Trained> = trained
        .iter()
        .filter(|t| t.summary.preset.starts_with("sparse-"))
        .collect();
    let standard = by("shallow-256");
    let mut sparse_rows = Vec::new();
    let mut filter_rows = Vec::new();
    let n_stats = 2000.min(data.test.len());
    let stats_x = data.test.rows_f32(0..n_stats);
    for t in sparse.iter().copied().chain(standard) {
        let codes = t.model.encode(&stats_x)?;
        let s: ActivationStats = metrics::activation_stats(&codes, t.summary.bottleneck);
        sparse_rows.push(SparseSummary {
            model: t.summary.preset.clone(),
            l1: t.manifest.run.model.l1,
            units: s.units(),
            dead_units: s.dead,
            dead_fraction: s.dead_fraction(),
            mean_activation: mean(&s.mean.iter().map(|&v| v as f64).collect::<Vec<_>>()),
            test_mse: t.summary.test.mse_per_pixel,
        });
        // the 16 most active units' filters
        let wts = t
            .model
            .param("enc.0.weight")
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut order: Vec<usize> = (0..s.units()).collect();
        order.sort_by(|&a, &b| s.mean[b].total_cmp(&s.mean[a]));
        filter_rows.push(GridRow {
            label: t.summary.preset.clone(),
            images: order
                .iter()
                .take(16)
                .map(|&u| {
                    let row = &wts[u * PIXELS..(u + 1) * PIXELS];
                    diverging(row, images_abs_max(row))
                })
                .collect(),
            captions: vec![],
            side: 28,
        });
    }
    let f = w.png(
        "q3_filters",
        &image_grid(
            "First-layer filters of the 16 most active units (red +, blue -)",
            &filter_rows,
            42,
        ),
    )?;
    let _ = writeln!(md, "![sparse filters]({f})\n");
    table(
        &mut md,
        &[
            "model",
            "λ",
            "units",
            "never fire",
            "mean activation",
            "test MSE",
        ],
        &sparse_rows
            .iter()
            .map(|s| {
                vec![
                    s.model.clone(),
                    if s.l1 == 0.0 {
                        "0 (none)".to_string()
                    } else {
                        format!("{:e}", s.l1)
                    },
                    s.units.to_string(),
                    format!("{} ({:.1}%)", s.dead_units, s.dead_fraction * 100.0),
                    format!("{:.4}", s.mean_activation),
                    format!("{:.5}", s.test_mse),
                ]
            })
            .collect::<Vec<_>>(),
    );

    // --- Q4
    let _ = writeln!(md, "## Q4. Denoising at different noise levels\n");
    let denoisers: Vec<&Trained> = trained
        .iter()
        .filter(|t| t.summary.preset.starts_with("denoise-"))
        .collect();
    let mut rows = vec![GridRow::digits("clean", &show_x, vec![])];
    for t in &denoisers {
        let mut noisy = show_x.clone();
        t.manifest
            .run
            .model
            .noise
            .apply(&mut noisy, &mut Rng::new(3));
        let r = t.model.reconstruct(&noisy)?;
        rows.push(GridRow::digits(
            format!("noisy {}", t.manifest.run.model.noise.level),
            &noisy,
            captions(&per_image_mse(&noisy, &show_x)),
        ));
        rows.push(GridRow::digits(
            &t.summary.preset,
            &r,
            captions(&per_image_mse(&r, &show_x)),
        ));
    }
    let f = w.png(
        "q4_denoising",
        &image_grid(
            "Gaussian noise at each model's training level, and its output",
            &rows,
            42,
        ),
    )?;
    let _ = writeln!(md, "![denoising]({f})\n");
    let levels: Vec<f32> = (0..=10).map(|i| i as f32 / 10.0).collect();
    let noisy_sets: Vec<Vec<f32>> = levels
        .iter()
        .enumerate()
        .map(|(i, &level)| {
            let mut x = in_x.clone();
            Noise {
                kind: NoiseKind::Gaussian,
                level,
            }
            .apply(&mut x, &mut Rng::new(100 + i as u64));
            x
        })
        .collect();
    let mut denoise_curves = BTreeMap::new();
    let mut curve_models: Vec<&Trained> = denoisers.clone();
    if let Some(s) = standard {
        curve_models.push(s);
    }
    for t in &curve_models {
        let v = noisy_sets
            .iter()
            .map(|x| Ok(mean(&per_image_mse(&t.model.reconstruct(x)?, &in_x))))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        denoise_curves.insert(t.summary.preset.clone(), v);
    }
    denoise_curves.insert(
        "PCA-30".into(),
        noisy_sets
            .iter()
            .map(|x| mean(&per_image_mse(&clamp01(pca.reconstruct(x, 30)), &in_x)))
            .collect(),
    );
    let f = w.png(
        "q4_error_vs_noise",
        &line_plot(
            "Test MSE against Gaussian noise level",
            "noise level (std)",
            "MSE",
            &denoise_curves
                .iter()
                .map(|(k, v)| Series {
                    label: k.clone(),
                    points: levels.iter().zip(v).map(|(&l, &m)| [l as f64, m]).collect(),
                    markers: false,
                })
                .collect::<Vec<_>>(),
            false,
        ),
    )?;
    let _ = writeln!(md, "![error vs noise]({f})\n");
    let mut header = vec!["model".to_string()];
    header.extend(levels.iter().map(|l| format!("{l:.1}")));
    let header_refs: Vec<&str> = header.iter().map(|s| s.as_str()).collect();
    table(
        &mut md,
        &header_refs,
        &denoise_curves
            .iter()
            .map(|(k, v)| {
                let mut r = vec![k.clone()];
                r.extend(v.iter().map(|m| format!("{m:.4}")));
                r
            })
            .collect::<Vec<_>>(),
    );

    // --- Q5
    let _ = writeln!(
        md,
        "## Q5. Convolutional decoders: unpooling, transposed convolution, both\n"
    );
    let _ = writeln!(
        md,
        "Max-unpooling puts each value back at the position that the encoder's max-pooling picked in its 2×2 window \
         (the first maximum in row-major order, as `torch.nn.MaxUnpool2d` does) and zeros everywhere else; \
         where the four positions tie, as on MNIST's flat background, that is the window's top-left pixel. \
         Transposed convolutions instead learn how to spread each value over the larger map.\n"
    );
    let conv: Vec<&Trained> = trained
        .iter()
        .filter(|t| t.manifest.run.model.is_conv())
        .collect();
    let f = w.png(
        "q5_conv_loss",
        &line_plot(
            "conv autoencoders: validation MSE per epoch",
            "epoch",
            "MSE",
            &conv
                .iter()
                .map(|t| epoch_series(&t.summary.preset, &t.manifest.history.val_loss))
                .collect::<Vec<_>>(),
            true,
        ),
    )?;
    let _ = writeln!(md, "![conv loss]({f})\n");
    let mut rows = vec![GridRow::digits("original", &show_x, vec![])];
    for t in &conv {
        rows.push(rec_row(t, &show_x, &show_x)?);
    }
    let f = w.png(
        "q5_conv_reconstructions",
        &image_grid("Reconstructions by decoder", &rows, 42),
    )?;
    let _ = writeln!(md, "![conv reconstructions]({f})\n");
    let mut krows = Vec::new();
    for t in &conv {
        for layer in ["dec.layer2", "dec.layer1"] {
            let wts = t
                .model
                .param(&format!("{layer}.weight"))
                .flatten_all()?
                .to_vec1::<f32>()?;
            let n = (wts.len() / 9).min(16);
            krows.push(GridRow {
                label: format!("{} {layer}", t.summary.preset),
                images: (0..n)
                    .map(|k| {
                        diverging(
                            &wts[k * 9..(k + 1) * 9],
                            images_abs_max(&wts[k * 9..(k + 1) * 9]),
                        )
                    })
                    .collect(),
                captions: vec![],
                side: 3,
            });
        }
    }
    let f = w.png(
        "q5_decoder_filters",
        &image_grid("Decoder kernels (3×3; red +, blue -)", &krows, 27),
    )?;
    let _ = writeln!(md, "![decoder filters]({f})\n");
    table(
        &mut md,
        &["decoder", "params", "test MSE", "PSNR dB", "SSIM"],
        &conv
            .iter()
            .map(|t| {
                vec![
                    t.summary.preset.clone(),
                    t.summary.params.to_string(),
                    format!("{:.5}", t.summary.test.mse_per_pixel),
                    format!("{:.2}", t.summary.test.psnr),
                    format!("{:.4}", t.summary.test.ssim),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let mut ranked: Vec<&Trained> = conv.clone();
    ranked.sort_by(|a, b| {
        a.summary
            .test
            .mse_per_pixel
            .total_cmp(&b.summary.test.mse_per_pixel)
    });
    let conv_winner = (ranked.len() >= 2).then(|| {
        let (b, r) = (&ranked[0].summary, &ranked[1].summary);
        ConvWinner {
            best: b.preset.clone(),
            best_mse: b.test.mse_per_pixel,
            runner_up: r.preset.clone(),
            runner_up_mse: r.test.mse_per_pixel,
            margin: (r.test.mse_per_pixel - b.test.mse_per_pixel) / r.test.mse_per_pixel.max(1e-12),
        }
    });
    if let Some(cw) = &conv_winner {
        let decoder = |p: &str| match ModelConfig::preset(p).map(|c| c.arch) {
            Ok(crate::model::Arch::Conv {
                decoder: ConvDecoder::Unpool,
            }) => "max-unpooling",
            Ok(crate::model::Arch::Conv {
                decoder: ConvDecoder::Deconv,
            }) => "transposed-convolution",
            _ => "unpooling + transposed-convolution",
        };
        let _ = writeln!(
            md,
            "**Take-away:** the {} decoder ({}) wins with a test MSE of {:.5}, {:.1}% below the runner-up {} ({:.5}).\n",
            decoder(&cw.best),
            cw.best,
            cw.best_mse,
            cw.margin * 100.0,
            cw.runner_up,
            cw.runner_up_mse
        );
    }

    // --- summary
    let _ = writeln!(md, "## Summary\n");
    let mut srows: Vec<Vec<String>> = vec![{
        let mut r = vec![
            "PCA-30".to_string(),
            (30 * PIXELS + PIXELS).to_string(),
            "30".into(),
            "–".into(),
            "–".into(),
            "–".into(),
        ];
        r.push(format!("{:.5}", pca_test.mse_per_pixel));
        r.push(format!("{:.2}", pca_test.psnr));
        r.push(format!("{:.4}", pca_test.ssim));
        r.push(
            pca_test
                .probe_accuracy
                .map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_default(),
        );
        r.push(format!("{fit_secs:.1}"));
        r.push("–".into());
        r
    }];
    srows.extend(trained.iter().map(|t| summary_cells(&t.summary)));
    table(&mut md, &SUMMARY_HEADER, &srows);
    let total_secs = start.elapsed().as_secs_f64();
    let reused = trained.iter().filter(|t| t.summary.reused).count();
    let _ = writeln!(
        md,
        "{} models trained and {reused} reused from the library in {:.0} s in all. Numbers are in `metrics.json`.",
        trained.len() - reused,
        total_secs
    );

    let summary = Summary {
        dataset: opts.dataset.slug().into(),
        quick: opts.quick,
        epochs,
        n_train: data.train.len(),
        n_test: data.test.len(),
        pca: pca_part,
        models: trained.into_iter().map(|t| t.summary).collect(),
        ood,
        sparse: sparse_rows,
        denoise_curves,
        conv_winner,
        total_secs,
        figures: w.figures.clone(),
    };
    write_atomic(&opts.out.join("REPORT.md"), md.as_bytes()).context("writing REPORT.md")?;
    write_atomic(
        &opts.out.join("metrics.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .context("writing metrics.json")?;
    Ok(summary)
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
