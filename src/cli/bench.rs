//! `aelab bench`: training throughput per preset and batch size, the PCA
//! fit, the interactive paths (PCA k change on a 10x10 grid, a noise-level
//! change through every model of the study, one drawn digit through PCA and
//! every model), the training replay (a scrubber move, a snapshot, training
//! with live copies) and start-up (decode + PCA), on this machine.

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::Common;
use crate::analysis::answer::{self, Probes};
use crate::analysis::denoise;
use crate::analysis::study;
use crate::analysis::{ModelCache, ModelRef};
use crate::data::noise::{Noise, NoiseKind};
use crate::data::{Dataset, DatasetKind};
use crate::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
use crate::pca::Pca;
use crate::train::{self, Control};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Presets to time for training (each at 1, 2, 4, 8 and 16 ways up to
    /// `--ways`, and at `--ways` itself: a scaling table).
    #[arg(long, num_args = 1.., default_values_t = ["deep".to_string(), "shallow-256".into(), "conv-unpool".into(), "conv-deconv".into(), "conv-both".into()])]
    pub presets: Vec<String>,
    /// Batch sizes to time.
    #[arg(long, num_args = 1.., default_values_t = [32usize, 256])]
    pub batches: Vec<usize>,
    /// Training images per timing (dense presets; conv presets use a quarter).
    #[arg(long, default_value_t = 10_000)]
    pub images: usize,
    /// Repetitions of each interactive timing (the median is reported).
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// Skip the training timings.
    #[arg(long)]
    pub no_train: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct TrainRow {
    preset: String,
    batch: usize,
    /// Ways the run was given.
    ways: usize,
    images: usize,
    samples_per_sec: f64,
}

/// The ways of the scaling table: 1, 2, 4, 8, 16 up to `asked`, and
/// `asked` itself.
fn scaling_ways(asked: usize) -> Vec<usize> {
    let mut ways: Vec<usize> = [1, 2, 4, 8, 16]
        .into_iter()
        .filter(|&w| w < asked)
        .collect();
    ways.push(asked.max(1));
    ways
}

/// The study's models (untrained: the cost is the same), in a model cache
/// as the app's library models are.
fn study_models(device: &candle_core::Device) -> anyhow::Result<(ModelCache, Vec<ModelRef>)> {
    let cache = ModelCache::default();
    let mut refs = Vec::new();
    for p in study::presets() {
        let config = ModelConfig::preset(p).map_err(anyhow::Error::msg)?;
        let path = std::path::PathBuf::from(format!("bench/{p}"));
        cache.insert(path.clone(), Autoencoder::new(&config, 1, device)?);
        refs.push(ModelRef {
            path,
            label: p.to_string(),
            config,
        });
    }
    Ok((cache, refs))
}

/// Median ms to decode a point dragged on the 2-D VAE's plane.
fn vae_point_ms(reps: usize, cache: &ModelCache, refs: &[ModelRef]) -> anyhow::Result<f64> {
    let vae2 = refs
        .iter()
        .find(|m| crate::analysis::vae::is_plane(m))
        .ok_or_else(|| anyhow::anyhow!("the study has no 2-D VAE"))?;
    let mut z = [0.0f32, 0.0];
    Ok(time_ms(reps, || {
        z = [(z[0] + 0.37) % 3.0, (z[1] + 0.61) % 3.0];
        std::hint::black_box(crate::analysis::vae::decode_point(cache, vae2, z).ok());
    }))
}

/// What the training replay and the live model cost.
#[derive(Serialize)]
struct ReplayCosts {
    /// Median ms of a scrubber move: a snapshot's model built from its
    /// weights and its reconstructions of the replay's ten test images.
    scrub_row_ms: Vec<(String, f64)>,
    /// Median ms to copy `deep`'s weights into a snapshot.
    snapshot_ms: f64,
    /// `deep`'s samples/s without live copies and with one every
    /// [`LIVE_TEST_SECS`] (medians of alternating rounds).
    train_without_live: f64,
    train_with_live: f64,
}

/// How often the bench takes live copies: far more often than the app's
/// [`crate::model::replay::LIVE_EVERY`], so that their cost shows.
const LIVE_TEST_SECS: f64 = 0.1;

/// An observer that takes live copies every [`LIVE_TEST_SECS`].
struct Live;

impl train::Observer for Live {
    fn event(&mut self, _: &train::TrainEvent) {}
    fn live_every(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs_f64(LIVE_TEST_SECS))
    }
}

fn replay_costs(
    reps: usize,
    ds: &Dataset,
    images: usize,
    device: &candle_core::Device,
) -> anyhow::Result<ReplayCosts> {
    use crate::analysis::models::snapshot_path;
    use crate::model::replay::{Moment, Snapshot};
    use std::sync::Arc;
    let row_images = crate::analysis::replay::images(&ds.test);
    let mut scrub_row_ms = Vec::new();
    let mut snapshot_ms = 0.0;
    for preset in ["deep", "sparse-1e-4", "vae-30", "conv-both"] {
        let config = ModelConfig::preset(preset).map_err(anyhow::Error::msg)?;
        let model = Autoencoder::new(&config, 1, device)?;
        let moment = |step| Moment {
            step,
            epoch: 0.0,
            val_loss: None,
        };
        if preset == "deep" {
            snapshot_ms = time_ms(reps, || {
                std::hint::black_box(Snapshot::of(&model, moment(1)).ok());
            });
        }
        // a 10-epoch run's 14 snapshots, more than the cache keeps built:
        // every move builds its model again, as a drag over them does
        let cache = ModelCache::default();
        let base = ModelRef {
            path: format!("bench/{preset}").into(),
            label: preset.into(),
            config: config.clone(),
        };
        for k in 0..14 {
            let s = Arc::new(Snapshot::of(&model, moment(k))?);
            cache.insert_snapshot(snapshot_path(&base.path, k), config.clone(), s);
        }
        let mut k = 0;
        let ms = time_ms(reps, || {
            k = (k + 5) % 14;
            let m = base.at(k, &moment(k));
            std::hint::black_box(crate::analysis::replay::row(&cache, &m, &row_images));
        });
        scrub_row_ms.push((preset.to_string(), ms));
    }
    // training with and without live copies, alternating
    let cfg = RunConfig {
        model: ModelConfig::preset("deep").map_err(anyhow::Error::msg)?,
        train: TrainParams {
            epochs: 1,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    };
    let sub = ds.truncated(images, 10, 10);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for live in [false, true] {
            let m = Autoencoder::new(&cfg.model, 1, device)?;
            let control = Control::default();
            let ways = crate::ways();
            let out = if live {
                train::run::run_in_parts(&cfg, &sub, &m, &mut Live, &control, ways)?
            } else {
                train::run::run_in_parts(&cfg, &sub, &m, &mut (), &control, ways)?
            };
            if live { &mut with } else { &mut without }.push(out.samples_per_sec);
        }
    }
    Ok(ReplayCosts {
        scrub_row_ms,
        snapshot_ms,
        train_without_live: median(without),
        train_with_live: median(with),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

/// The training rows as a scaling table: samples/s of each preset and
/// batch size for each number of ways, and the gain of the most ways over
/// one.
fn print_scaling(rows: &[TrainRow], ways: &[usize]) {
    if rows.is_empty() {
        return;
    }
    print!("{:<12} {:>6} {:>8}", "preset", "batch", "images");
    for w in ways {
        print!(" {:>10}", format!("{w} ways"));
    }
    println!("   (samples/s)");
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.preset.as_str(), r.batch)) {
            keys.push((r.preset.as_str(), r.batch));
        }
    }
    for (preset, batch) in keys {
        let of = |w: usize| {
            rows.iter()
                .find(|r| r.preset == preset && r.batch == batch && r.ways == w)
        };
        let images = of(ways[0]).map_or(0, |r| r.images);
        print!("{preset:<12} {batch:>6} {images:>8}");
        for &w in ways {
            match of(w) {
                Some(r) => print!(" {:>10.0}", r.samples_per_sec),
                None => print!(" {:>10}", "-"),
            }
        }
        if let (Some(one), Some(most), true) =
            (of(1), of(*ways.last().unwrap_or(&1)), ways.len() > 1)
        {
            print!(
                "   x{:.2}",
                most.samples_per_sec / one.samples_per_sec.max(1e-9)
            );
        }
        println!();
    }
}

pub fn run(common: &Common, a: BenchArgs) -> anyhow::Result<()> {
    let (root, _) = crate::data::registry::resolve_data_dir(common.data_dir.as_deref());
    let t0 = Instant::now();
    let ds = Dataset::load(&root, DatasetKind::Mnist)?;
    let decode_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let pca = Pca::fit(&ds.train)?;
    let pca_secs = t1.elapsed().as_secs_f64();
    let startup_secs = t0.elapsed().as_secs_f64();
    let device = crate::device(&common.device)?;
    // the table goes up to the ways asked for, past the core count too
    let asked = crate::asked_ways();

    let mut rows = Vec::new();
    if !a.no_train {
        for preset in &a.presets {
            let model_cfg = ModelConfig::preset(preset).map_err(anyhow::Error::msg)?;
            let n = if model_cfg.is_conv() {
                a.images / 4
            } else {
                a.images
            };
            let runs: Vec<(usize, usize)> = a
                .batches
                .iter()
                .flat_map(|&b| scaling_ways(asked).into_iter().map(move |w| (b, w)))
                .collect();
            for &(batch, ways) in &runs {
                let cfg = RunConfig {
                    model: model_cfg.clone(),
                    train: TrainParams {
                        epochs: 1,
                        batch_size: batch,
                        ..TrainParams::default()
                    },
                    dataset: DatasetKind::Mnist,
                };
                // warm-up: 20 steps, then a fresh model for the timing
                let warm = ds.truncated(20 * batch, 10, 10);
                let m = Autoencoder::new(&cfg.model, 1, &device)?;
                let control = Control::default();
                train::run::run_in_parts(&cfg, &warm, &m, &mut (), &control, ways)?;
                let sub = ds.truncated(n, 10, 10);
                let m = Autoencoder::new(&cfg.model, 1, &device)?;
                let out = train::run::run_in_parts(&cfg, &sub, &m, &mut (), &control, ways)?;
                if !a.json {
                    eprintln!(
                        "{preset:<12} batch {batch:>4}, {ways:>2} ways: {:>9.0} samples/s",
                        out.samples_per_sec
                    );
                }
                rows.push(TrainRow {
                    preset: preset.clone(),
                    batch,
                    ways,
                    images: n,
                    samples_per_sec: out.samples_per_sec,
                });
            }
        }
    }

    // Interactive paths, through the functions the views call
    let grid = ds.test.rows_f32(0..100);
    let mut k = 1usize;
    let pca_grid_ms = time_ms(a.reps, || {
        // a different k each time, as a dragged slider gives; then what
        // `PcaView::update` does, for a 10x10 grid
        k = k % 200 + 7;
        std::hint::black_box(crate::analysis::recon::pca_grid(&pca, k, &grid));
    });
    let (cache, refs) = study_models(&device)?;
    // the Denoise view's change: fresh noise on its digits, then every
    // model's reconstructions with their scores, and PCA's row
    let mut level = 0.0f32;
    let noise_ms = time_ms(a.reps, || {
        level = (level + 0.07) % 1.0;
        let noise = Noise {
            kind: NoiseKind::Gaussian,
            level,
        };
        std::hint::black_box(denoise::rows(&cache, &ds, &pca, 30, &refs, noise, 1));
    });
    // the Draw view's answer to a stroke, with the digit probes fitted (as
    // they are once the app has been open a few seconds): every model's
    // reconstruction, code and guess, and PCA's
    let probes = Probes::default();
    answer::fit_probes(&cache, &probes, &ds, &pca, &refs, 30);
    let digit = ds.test.rows_f32(0..1);
    let drawn_ms = time_ms(a.reps, || {
        std::hint::black_box(answer::answer(&cache, &probes, &pca, 30, &refs, &digit));
    });
    let vae_point_ms = vae_point_ms(a.reps, &cache, &refs)?;
    let replay = replay_costs(a.reps, &ds, a.images.max(2_000), &device)?;

    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "asked_ways": asked,
                "ways": crate::ways(),
                "cores": crate::cores(),
                "kernels": crate::model::sgemm::kernel_name(),
                "train": rows,
                "pca_fit_secs": pca_secs,
                "decode_secs": decode_secs,
                "startup_data_and_pca_secs": startup_secs,
                "interaction_ms": {
                    "pca_k_change_10x10": pca_grid_ms,
                    "noise_change_8_images_all_models": noise_ms,
                    "drawn_digit_pca_and_all_models": drawn_ms,
                    "vae_plane_point": vae_point_ms,
                },
                "models": refs.len(),
                "replay": replay,
            })
        );
    } else {
        println!(
            "ways asked: {asked}, cores: {}, matrix kernels: {}",
            crate::cores(),
            crate::model::sgemm::kernel_name()
        );
        print_scaling(&rows, &scaling_ways(asked));
        println!("MNIST decode: {decode_secs:.2} s; PCA fit (50k x 784, all components): {pca_secs:.2} s; both: {startup_secs:.2} s");
        println!("PCA k change, 10x10 grid: {pca_grid_ms:.2} ms (median)");
        println!(
            "noise change, 8 images through {} models: {noise_ms:.2} ms (median)",
            refs.len()
        );
        println!(
            "drawn digit through PCA + {} models: {drawn_ms:.2} ms (median)",
            refs.len()
        );
        println!("a point of vae-2's plane decoded: {vae_point_ms:.3} ms (median)");
        print_replay(&replay);
    }
    Ok(())
}

fn print_replay(r: &ReplayCosts) {
    for (preset, ms) in &r.scrub_row_ms {
        println!("replay scrubber move, {preset}: {ms:.2} ms (median; snapshot to model, 10 reconstructions)");
    }
    println!(
        "deep's weights copied into a snapshot: {:.2} ms (median)",
        r.snapshot_ms
    );
    let slow = 100.0 * (1.0 - r.train_with_live / r.train_without_live.max(1e-9));
    println!(
        "deep training: {:.0} samples/s, {:.0} with a live copy every {LIVE_TEST_SECS} s ({slow:.1}% slower; the app copies every {} s)",
        r.train_without_live,
        r.train_with_live,
        crate::model::replay::LIVE_EVERY.as_secs()
    );
}
