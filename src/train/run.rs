//! The training loop: seeded shuffling, mini-batches, Adam, validation every
//! epoch, a stop/pause/learning-rate control checked between batches, and an
//! observer that receives every event. A non-finite loss ends the run as
//! `Diverged` with the weights of the last good epoch put back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::ParamsAdamW;

use super::adam::FusedAdam;

use super::metrics::{self, Metrics};
use super::snapshots::Snapshots;
use crate::data::noise::Noise;
use crate::data::{Dataset, Split, PIXELS};
use crate::model::{self, Autoencoder, GradSink, RunConfig};
use crate::rng::Rng;

/// Shared control of a running loop: stop, pause and a learning-rate change,
/// all read between batches.
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    pause: AtomicBool,
    /// Requested learning rate as f64 bits; NaN bits = no request.
    lr: AtomicU64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            stop: AtomicBool::new(false),
            pause: AtomicBool::new(false),
            lr: AtomicU64::new(f64::NAN.to_bits()),
        }
    }
}

impl Control {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(paused, Ordering::SeqCst);
    }
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
    pub fn set_learning_rate(&self, lr: f64) {
        self.lr.store(lr.to_bits(), Ordering::SeqCst);
    }
    fn take_learning_rate(&self) -> Option<f64> {
        let bits = self.lr.swap(f64::NAN.to_bits(), Ordering::SeqCst);
        let lr = f64::from_bits(bits);
        (lr.is_finite() && lr > 0.0).then_some(lr)
    }
}

/// What the loop reports.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainEvent {
    Started {
        steps_per_epoch: usize,
        total_steps: usize,
        params: usize,
    },
    Step {
        epoch: usize,
        /// Global step, counted from 1.
        step: usize,
        loss: f32,
        lr: f64,
        samples_per_sec: f64,
        /// A VAE's two terms of this batch: the reconstruction (summed
        /// over the pixels) and the KL, nats per image (`loss` is the whole
        /// objective, reconstruction + β·KL).
        terms: Option<[f32; 2]>,
    },
    LearningRateChanged {
        step: usize,
        lr: f64,
    },
    Epoch {
        /// Epochs done, counted from 1.
        epoch: usize,
        train_loss: f64,
        val_loss: f64,
        secs: f64,
        samples_per_sec: f64,
        /// Code statistics on the first validation images, when the
        /// observer asks for them.
        activations: Option<Box<metrics::ActivationStats>>,
        /// A VAE's terms and validation ELBO.
        vae: Option<VaeEpoch>,
    },
    /// A copy of the weights: one the replay keeps (`kept`: before the
    /// first step, at [`crate::model::replay::EARLY_STEPS`], after every
    /// epoch), or a fresher one for the live views (every
    /// [`Observer::live_every`] within an epoch).
    Snapshot {
        snapshot: Arc<crate::model::replay::Snapshot>,
        kept: bool,
    },
    /// Training is over; the model is being evaluated on the test set
    /// (sent by [`super::job::run`], not by the loop).
    Evaluating,
}

/// A VAE's epoch: the training objective's two terms (means over the
/// epoch's batches) and the validation ELBO, KL and active dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct VaeEpoch {
    pub train_reconstruction: f64,
    pub train_kl: f64,
    pub val_elbo: f64,
    pub val_kl: f64,
    pub active_dims: usize,
}

/// Receives the loop's events (a terminal progress bar, a channel to the UI).
pub trait Observer {
    fn event(&mut self, event: &TrainEvent);
    /// Whether each epoch should report code statistics (costs a forward
    /// pass over [`ACTIVATION_IMAGES`] validation images).
    fn wants_activations(&self) -> bool {
        false
    }
    /// How often, within an epoch, the observer wants a fresh copy of the
    /// weights (a [`TrainEvent::Snapshot`] that is not kept); never when None.
    fn live_every(&self) -> Option<Duration> {
        None
    }
}

/// Validation images behind the per-epoch activation statistics.
pub const ACTIVATION_IMAGES: usize = 1000;

impl Observer for () {
    fn event(&mut self, _: &TrainEvent) {}
}

impl<F: FnMut(&TrainEvent)> Observer for F {
    fn event(&mut self, event: &TrainEvent) {
        self(event)
    }
}

pub use crate::model::record::{History, Outcome, Status};

/// Two epochs in a row at 95% or more of the blank-output error, the
/// second no better than the first by 1%: the model has collapsed.
pub fn collapsed(previous_val: f64, val: f64, blank_mse: f64) -> bool {
    blank_mse > 0.0
        && previous_val >= 0.95 * blank_mse
        && val >= 0.95 * blank_mse
        && val >= 0.99 * previous_val
}

/// Copy the rows `idx` of `split` into `buf` scaled to [0, 1]: in halves
/// on two cores where the training run has them (a serial copy of a batch
/// of 256 was a tenth of a dense step, with the other core idle), each
/// half through [`scale_rows`].
fn gather(split: &Split, idx: &[usize], buf: &mut Vec<f32>) {
    // (a buffer reused at the same size is not cleared again)
    buf.resize(idx.len() * PIXELS, 0.0);
    if idx.len() >= 64 && crate::par::can_split() {
        let (ia, ib) = idx.split_at(idx.len() / 2);
        let (oa, ob) = buf.split_at_mut(ia.len() * PIXELS);
        crate::par::join(|| scale_rows(split, ia, oa), || scale_rows(split, ib, ob));
    } else {
        scale_rows(split, idx, buf);
    }
}

/// The rows `idx` of `split` into `out` (`idx.len() * 784` values) scaled
/// to [0, 1], vectorised (with AVX2 where the CPU has it).
fn scale_rows(split: &Split, idx: &[usize], out: &mut [f32]) {
    #[inline(always)]
    fn run(split: &Split, idx: &[usize], out: &mut [f32]) {
        for (row, &i) in out.chunks_exact_mut(PIXELS).zip(idx) {
            for (o, &p) in row.iter_mut().zip(split.image(i)) {
                *o = p as f32 * (1.0 / 255.0);
            }
        }
    }
    avx2_or_plain!(run(split: &Split, idx: &[usize], out: &mut [f32]))
}

/// Validation: the model's own input noise (fixed seed), clean targets.
pub fn validation_mse(
    model: &Autoencoder,
    split: &Split,
    noise: Noise,
    seed: u64,
) -> candle_core::Result<f64> {
    let (rec, clean) = reconstruct_noisy(model, split, noise, seed)?;
    Ok(metrics::sse_per_image(&rec, &clean).iter().sum::<f64>() / clean.len().max(1) as f64)
}

/// Reconstructions of `split` with inputs corrupted by `noise` (seeded),
/// returned with the clean images they are scored against.
fn reconstruct_noisy(
    model: &Autoencoder,
    split: &Split,
    noise: Noise,
    seed: u64,
) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let clean = split.to_f32();
    let mut input = clean.clone();
    noise.apply(&mut input, &mut Rng::new(seed));
    Ok((model.reconstruct(&input)?, clean))
}

/// Sets flush-to-zero and denormals-are-zero on this thread while alive
/// (x86-64), as most training frameworks do: tiny gradients and moments
/// would otherwise hit the CPU's ~100x slower subnormal path; values below
/// 1.2e-38 become 0, which no loss or weight here can notice.
///
/// Why the control register, not a flush in the code that needs it: Adam
/// flushes its moments itself, but subnormals also reach the matrix
/// products and candle's element-wise backward ops, where a flush per
/// value would cost more than it saves. Without FTZ/DAZ (Adam still
/// flushing) `deep` trained at 27.2k samples/s against 30.5k with them
/// (2 epochs of MNIST, 2 cores, two rounds each). `_mm_setcsr` is
/// deprecated in favour of exactly this `asm!`.
struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut saved: u32 = 0;
            // SAFETY: stmxcsr/ldmxcsr only read and write this thread's SSE
            // control register; bits 15 (FTZ) and 6 (DAZ) change rounding of
            // subnormals only.
            unsafe {
                std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack));
                let new = saved | (1 << 15) | (1 << 6);
                std::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, readonly));
            }
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the value read in `new`.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack, readonly));
        }
    }
}

/// The smallest part of a batch worth a core of its own (`aelab bench
/// --ways 1` vs `2` on 2 cores): conv models gain from 8 rows a part
/// (1.6-2x at batch 32); dense ones lose below 64 rows (at batch 32 two
/// parts of 16 ran at 0.8x, at batch 256 two of 128 at 1.2x).
fn min_rows_per_part(config: &crate::model::ModelConfig) -> usize {
    if config.is_conv() {
        8
    } else {
        64
    }
}

/// Train `model` on `data.train` as `cfg` says. Returns when the epochs are
/// done, the control says stop (within one batch), or the loss stops being
/// finite.
pub fn run(
    cfg: &RunConfig,
    data: &Dataset,
    model: &Autoencoder,
    observer: &mut (dyn Observer + Send),
    control: &Control,
) -> candle_core::Result<Outcome> {
    run_in_parts(cfg, data, model, observer, control, crate::ways())
}

/// [`run`] with each batch split into `ways` parts trained on their own
/// cores (1: the whole batch on this thread).
///
/// With two ways the run gets a spinning [`crate::par::Helper`] thread,
/// with more a thread pool of its own (`ways` threads); either way with
/// subnormals flushed. They take the parts of a batch, and the halves of
/// the large matrix products and of the optimiser pass when a batch is too
/// small to split.
pub fn run_in_parts(
    cfg: &RunConfig,
    data: &Dataset,
    model: &Autoencoder,
    observer: &mut (dyn Observer + Send),
    control: &Control,
    ways: usize,
) -> candle_core::Result<Outcome> {
    // threads for as many parts as a batch can take: a dense batch of 32
    // is one part, and a pool of 8 would only wake its sleeping threads
    // for the halves that the spinning helper takes at once
    let parts = (cfg.train.batch_size / min_rows_per_part(&model.config)).max(2);
    with_ways(ways.min(parts), &model.device, |ways| {
        train_loop(cfg, data, model, observer, control, ways)
    })
}

/// The gradients of one batch (`clean` targets, `noisy` inputs when the
/// model corrupts its input) split into `ways` parts of as equal size as
/// the rows allow, each part's forward and backward on its own core:
/// returns the batch's loss (the parts' losses by share), each part's
/// gradients and its share of the batch. The fused dense layers of part
/// `i` leave their gradients in `sinks[i]` when there are sinks (one per
/// part). Run it inside [`with_ways`] for the parts to run in parallel.
pub(crate) fn batch_gradients(
    model: &Autoencoder,
    clean: &[f32],
    noisy: Option<&[f32]>,
    vae: Option<(&[f32], f64)>,
    ways: usize,
    sinks: &[Arc<GradSink>],
) -> candle_core::Result<(BatchLoss, Vec<GradStore>, Vec<f32>)> {
    let mc = &model.config;
    let device = &model.device;
    let rows = clean.len() / PIXELS;
    let ways = ways.clamp(1, rows.max(1));
    let parts: Vec<(usize, usize)> = (0..ways)
        .map(|i| (i * rows / ways, (i + 1) * rows / ways))
        .collect();
    if !sinks.is_empty() && sinks.len() < ways {
        candle_core::bail!("{ways} batch parts, {} gradient sinks", sinks.len());
    }
    let latent = mc.bottleneck();
    type Part = (f32, Option<f32>, GradStore);
    let part = |(i, &(a, b)): (usize, &(usize, usize))| -> candle_core::Result<Part> {
        let _ftz = FlushDenormals::new();
        let sink = sinks.get(i);
        if let Some(s) = sink {
            s.clear();
        }
        let target = Tensor::from_slice(&clean[a * PIXELS..b * PIXELS], (b - a, PIXELS), device)?;
        let input = match noisy {
            None => target.clone(),
            Some(noisy) => {
                Tensor::from_slice(&noisy[a * PIXELS..b * PIXELS], (b - a, PIXELS), device)?
            }
        };
        let (eps, beta) = match vae {
            Some((eps, beta)) => {
                let e = &eps[a * latent..b * latent];
                (Some(Tensor::from_slice(e, (b - a, latent), device)?), beta)
            }
            None => (None, 0.0),
        };
        let f = model.forward_sampled(&input, sink, eps.as_ref())?;
        let p = model::loss_parts(mc, &f, &target, beta)?;
        let kl = p.kl.map(|k| k.to_scalar::<f32>()).transpose()?;
        Ok((p.objective.to_scalar()?, kl, p.objective.backward()?))
    };
    let done: Vec<Part> = if ways == 1 {
        vec![part((0, &parts[0]))?]
    } else if ways == 2 {
        let (a, b) = crate::par::join(|| part((0, &parts[0])), || part((1, &parts[1])));
        vec![a?, b?]
    } else {
        use rayon::prelude::*;
        parts
            .par_iter()
            .enumerate()
            .map(part)
            .collect::<candle_core::Result<_>>()?
    };
    let weights: Vec<f32> = parts
        .iter()
        .map(|&(a, b)| (b - a) as f32 / rows as f32)
        .collect();
    let objective: f32 = done.iter().zip(&weights).map(|((l, _, _), w)| l * w).sum();
    let kl = vae.map(|_| {
        done.iter()
            .zip(&weights)
            .map(|((_, k, _), w)| k.unwrap_or(0.0) * w)
            .sum::<f32>()
    });
    let beta = vae.map_or(0.0, |(_, b)| b) as f32;
    let loss = BatchLoss {
        objective,
        reconstruction: objective - beta * kl.unwrap_or(0.0),
        kl,
    };
    let grads = done.into_iter().map(|(_, _, g)| g).collect();
    Ok((loss, grads, weights))
}

/// A batch's loss: the objective, its reconstruction term, and a VAE's KL
/// term.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BatchLoss {
    pub objective: f32,
    pub reconstruction: f32,
    pub kl: Option<f32>,
}

/// An epoch's batch losses, summed.
#[derive(Default)]
struct EpochSums {
    objective: f64,
    reconstruction: f64,
    kl: f64,
    batches: usize,
}

impl EpochSums {
    fn add(&mut self, l: &BatchLoss) {
        self.objective += l.objective as f64;
        self.reconstruction += l.reconstruction as f64;
        self.kl += l.kl.unwrap_or(0.0) as f64;
        self.batches += 1;
    }

    fn mean(&self, sum: f64) -> f64 {
        sum / self.batches.max(1) as f64
    }
}

/// For a VAE: fill `eps` with a standard normal draw per code value of a
/// batch of `rows`, and give the KL's weight at this step (β, ramped up
/// over the first epoch when warming up); None for other models.
fn vae_sample(
    mc: &crate::model::ModelConfig,
    rows: usize,
    epoch: usize,
    step: usize,
    steps_per_epoch: usize,
    rng: &mut Rng,
    eps: &mut Vec<f32>,
) -> Option<f64> {
    let (beta, warmup) = mc.vae_beta()?;
    *eps = super::vae::standard_normals(rows * mc.bottleneck(), rng);
    Some(if warmup && epoch == 0 {
        beta * ((step + 1) as f64 / steps_per_epoch.max(1) as f64).min(1.0)
    } else {
        beta
    })
}

/// For a VAE: the epoch's terms and its ELBO, KL and active dimensions on
/// `val` (recorded in `history`); None for other models.
fn vae_epoch(
    model: &Autoencoder,
    val: &Split,
    seed: u64,
    sums: &EpochSums,
    history: &mut History,
) -> candle_core::Result<Option<VaeEpoch>> {
    if !model.config.is_vae() {
        return Ok(None);
    }
    let s = super::vae::stats(model, &val.to_f32(), seed)?;
    let e = VaeEpoch {
        train_reconstruction: sums.mean(sums.reconstruction),
        train_kl: sums.mean(sums.kl),
        val_elbo: s.elbo,
        val_kl: s.kl,
        active_dims: s.active_dims,
    };
    history.train_reconstruction.push(e.train_reconstruction);
    history.train_kl.push(e.train_kl);
    history.val_elbo.push(e.val_elbo);
    history.val_kl.push(e.val_kl);
    history.active_dims.push(e.active_dims);
    Ok(Some(e))
}

/// One optimiser step on the parts' gradients (and those their layers
/// left in the first `grads.len()` of `sinks`), weighted by their shares.
pub(crate) fn step_on(
    opt: &mut FusedAdam,
    grads: &[GradStore],
    sinks: &[Arc<GradSink>],
    weights: &[f32],
) -> candle_core::Result<()> {
    if grads.len() == 1 && sinks.is_empty() {
        // (also the other devices' path: candle's AdamW)
        return opt.step(&grads[0]);
    }
    let sinks: Vec<&GradSink> = sinks.iter().take(grads.len()).map(|s| &**s).collect();
    opt.step_parts(grads, &sinks, weights)
}

/// Gradient sinks for `ways` parts of a batch of `model` (none where its
/// layers do not run fused: other devices).
pub(crate) fn sinks_for(model: &Autoencoder, ways: usize) -> Vec<Arc<GradSink>> {
    if !model.device.is_cpu() {
        return Vec::new();
    }
    (0..ways.max(1))
        .map(|_| Arc::new(GradSink::new(model.params.len())))
        .collect()
}

/// Runs `work` with the threads that `ways` batch parts need on the CPU:
/// for two ways a spinning [`crate::par::Helper`] thread, for more a
/// thread pool of its own (`ways` threads), either way with subnormals
/// flushed; `work` gets the number of ways it can use (1 when no threads
/// could be started or the device is not the CPU).
pub(crate) fn with_ways<R>(ways: usize, device: &Device, work: impl FnOnce(usize) -> R + Send) -> R
where
    R: Send,
{
    let flush = || std::mem::forget(FlushDenormals::new());
    if ways == 2 && device.is_cpu() {
        if let Ok(_helper) = crate::par::Helper::start(flush) {
            return work(ways);
        }
    } else if ways > 2 && device.is_cpu() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ways)
            .thread_name(|i| format!("aelab-train-{i}"))
            .start_handler(move |_| flush())
            .build();
        if let Ok(pool) = pool {
            return pool.install(|| work(ways));
        }
    }
    work(1)
}

fn train_loop(
    cfg: &RunConfig,
    data: &Dataset,
    model: &Autoencoder,
    observer: &mut (dyn Observer + Send),
    control: &Control,
    ways: usize,
) -> candle_core::Result<Outcome> {
    let ways = ways.max(1);
    let _ftz = FlushDenormals::new();
    let tp = &cfg.train;
    let mc = &model.config;
    let n = data.train.len();
    let batch = tp.batch_size.max(1);
    let steps_per_epoch = n.div_ceil(batch);
    observer.event(&TrainEvent::Started {
        steps_per_epoch,
        total_steps: steps_per_epoch * tp.epochs,
        params: model.param_count(),
    });
    let mut lr = tp.lr;
    let mut opt = optimiser(model, tp)?;
    let blank_mse = blank_mse(&data.val);
    // where each part's fused dense layers leave their gradients
    let sinks = sinks_for(model, ways);
    let mut shuffle_rng = Rng::new(tp.seed);
    let mut noise_rng = Rng::new(tp.seed.wrapping_add(0x5EED));
    // a VAE's code samples, and where they go
    let mut vae_rng = Rng::new(tp.seed.wrapping_add(0xC0DE));
    let mut eps = Vec::new();
    let mut order: Vec<usize> = (0..n).collect();
    let mut clean = Vec::with_capacity(batch * PIXELS);
    let mut noisy = Vec::with_capacity(batch * PIXELS);
    let mut history = History::default();
    let mut last_good = model.snapshot()?;
    let mut snapshots = Snapshots::start(model, steps_per_epoch, observer)?;
    let mut step = 0usize;
    let mut train_secs = 0.0f64;
    let mut samples = 0usize;
    let mut status = Status::Completed;
    let device: &Device = &model.device;

    'epochs: for epoch in 0..tp.epochs {
        shuffle_rng.shuffle(&mut order);
        let epoch_start = Instant::now();
        let mut paused_secs = 0.0;
        let mut sums = EpochSums::default();
        for idx in order.chunks(batch) {
            paused_secs += wait_while_paused(control);
            if control.is_stopped() {
                status = Status::Stopped;
                break 'epochs;
            }
            if let Some(new_lr) = control.take_learning_rate() {
                lr = change_lr(&mut opt, new_lr, step, &mut history, observer);
            }
            let noisy = batch_inputs(
                &data.train,
                idx,
                mc.noise,
                &mut noise_rng,
                &mut clean,
                &mut noisy,
            );
            // The batch in `ways` parts, each through forward and backward
            // on its own core; the step sums their gradients by share.
            let rows = idx.len();
            let ways = part_ways(device, ways, rows, mc);
            let beta = vae_sample(
                mc,
                rows,
                epoch,
                step,
                steps_per_epoch,
                &mut vae_rng,
                &mut eps,
            );
            let vae = beta.map(|b| (eps.as_slice(), b));
            let (batch_loss, grads, weights) =
                batch_gradients(model, &clean, noisy, vae, ways, &sinks)?;
            let (loss, kl) = (batch_loss.objective, batch_loss.kl);
            step += 1;
            if !loss.is_finite() {
                model.restore(&last_good)?;
                status = Status::Diverged { epoch, step, loss };
                break 'epochs;
            }
            step_on(&mut opt, &grads, &sinks, &weights)?;
            sums.add(&batch_loss);
            samples += idx.len();
            let elapsed = train_secs + epoch_start.elapsed().as_secs_f64() - paused_secs;
            observer.event(&TrainEvent::Step {
                epoch,
                step,
                loss,
                lr,
                samples_per_sec: samples as f64 / elapsed.max(1e-9),
                terms: kl.map(|k| [batch_loss.reconstruction, k]),
            });
            snapshots.after_step(model, step, observer)?;
        }
        train_secs += epoch_start.elapsed().as_secs_f64() - paused_secs;
        let val = validation_mse(model, &data.val, mc.noise, tp.seed)?;
        if !val.is_finite() {
            model.restore(&last_good)?;
            let loss = val as f32;
            status = Status::Diverged { epoch, step, loss };
            break;
        }
        last_good = model.snapshot()?;
        let train_loss = sums.mean(sums.objective);
        history.train_loss.push(train_loss);
        let previous = history.val_loss.last().copied();
        history.val_loss.push(val);
        let vae = vae_epoch(model, &data.val, tp.seed, &sums, &mut history)?;
        let collapsed = previous.is_some_and(|p| collapsed(p, val, blank_mse));
        let activations = observer
            .wants_activations()
            .then(|| code_stats(model, &data.val))
            .flatten();
        observer.event(&TrainEvent::Epoch {
            epoch: epoch + 1,
            train_loss,
            val_loss: val,
            secs: epoch_start.elapsed().as_secs_f64(),
            samples_per_sec: samples as f64 / train_secs.max(1e-9),
            activations,
            vae,
        });
        snapshots.after_epoch(model, step, val, observer)?;
        if collapsed {
            status = Status::Collapsed {
                epoch: epoch + 1,
                val_mse: val,
                blank_mse,
            };
            break;
        }
    }
    Ok(Outcome {
        status,
        epochs_done: history.val_loss.len(),
        history,
        steps_done: step,
        train_secs,
        samples_per_sec: samples as f64 / train_secs.max(1e-9),
    })
}

/// The batch `idx` of `split` into `clean`, and with `noise` (a denoising
/// model's) into `noisy`: the noisy inputs, if any.
fn batch_inputs<'a>(
    split: &Split,
    idx: &[usize],
    noise: Noise,
    rng: &mut Rng,
    clean: &mut Vec<f32>,
    noisy: &'a mut Vec<f32>,
) -> Option<&'a [f32]> {
    gather(split, idx, clean);
    if noise.is_none() {
        return None;
    }
    noisy.clear();
    noisy.extend_from_slice(clean);
    noise.apply(noisy, rng);
    Some(noisy.as_slice())
}

/// The parts a batch of `rows` splits into on `device` (at most `ways`;
/// 1 off the CPU, where the layers run through candle's own ops).
fn part_ways(device: &Device, ways: usize, rows: usize, mc: &crate::model::ModelConfig) -> usize {
    if device.is_cpu() {
        ways.min(rows / min_rows_per_part(mc)).max(1)
    } else {
        1
    }
}

/// A learning-rate change from the UI at `step`: applied, recorded and
/// announced; the new rate.
fn change_lr(
    opt: &mut FusedAdam,
    lr: f64,
    step: usize,
    history: &mut History,
    observer: &mut (dyn Observer + Send),
) -> f64 {
    opt.set_learning_rate(lr);
    history.lr_changes.push((step, lr));
    observer.event(&TrainEvent::LearningRateChanged { step, lr });
    lr
}

/// Adam (fused) over the model's weights with the run's settings.
fn optimiser(
    model: &Autoencoder,
    tp: &crate::model::TrainParams,
) -> candle_core::Result<FusedAdam> {
    FusedAdam::new(
        model.vars(),
        ParamsAdamW {
            lr: tp.lr,
            beta1: tp.beta1,
            beta2: tp.beta2,
            eps: tp.eps,
            weight_decay: tp.weight_decay,
        },
    )
}

/// The validation error of an all-black output: a model that stays there
/// has collapsed (what a far too high learning rate does to these models).
fn blank_mse(split: &Split) -> f64 {
    let x = split.to_f32();
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len().max(1) as f64
}

/// Sleep while `control` is paused (and not stopped); the seconds slept.
fn wait_while_paused(control: &Control) -> f64 {
    if !control.is_paused() {
        return 0.0;
    }
    let t = Instant::now();
    while control.is_paused() && !control.is_stopped() {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed().as_secs_f64()
}

/// Code statistics on the first [`ACTIVATION_IMAGES`] images of `split`.
fn code_stats(model: &Autoencoder, split: &Split) -> Option<Box<metrics::ActivationStats>> {
    let n = ACTIVATION_IMAGES.min(split.len());
    model
        .encode(&split.rows_f32(0..n))
        .ok()
        .map(|c| Box::new(metrics::activation_stats(&c, model.config.bottleneck())))
}

/// Metrics of `model` on `split`: inputs corrupted by `noise` (seeded),
/// targets clean; with `probe_train`, also the linear-probe accuracy of a
/// softmax regression fitted on the codes of (at most 20,000 of) those
/// training images.
pub fn evaluate(
    model: &Autoencoder,
    split: &Split,
    noise: Noise,
    seed: u64,
    probe_train: Option<&Split>,
) -> candle_core::Result<Metrics> {
    let (rec, clean) = reconstruct_noisy(model, split, noise, seed)?;
    let mut m = metrics::reconstruction_metrics(&rec, &clean);
    if model.config.is_vae() {
        let s = super::vae::stats(model, &clean, seed)?;
        m.elbo = Some(s.elbo);
        m.kl = Some(s.kl);
        m.active_dims = Some(s.active_dims);
    }
    if let Some(train) = probe_train {
        let train = train.head(PROBE_TRAIN_IMAGES);
        let dim = model.config.bottleneck();
        let tr_codes = model.encode(&train.to_f32())?;
        let te_codes = model.encode(&clean)?;
        m.probe_accuracy = Some(metrics::linear_probe(
            &tr_codes,
            &train.labels,
            &te_codes,
            &split.labels,
            dim,
            seed,
        ));
    }
    Ok(m)
}

/// Training images the linear probe is fitted on.
pub const PROBE_TRAIN_IMAGES: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_synthetic, DatasetKind};
    use crate::model::{ModelConfig, TrainParams};

    fn tiny() -> (tempfile::TempDir, Dataset) {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(dir.path(), DatasetKind::Mnist, 600, 100, 4).unwrap();
        let ds = Dataset::load(dir.path(), DatasetKind::Mnist).unwrap();
        (dir, ds)
    }

    #[test]
    fn a_batch_split_across_cores_trains_like_the_whole_batch() {
        let (_d, ds) = tiny();
        for preset in ["deep", "sparse-1e-4", "conv-both", "denoise-0.5"] {
            let run = RunConfig {
                model: ModelConfig::preset(preset).unwrap(),
                train: TrainParams {
                    epochs: 2,
                    // two parts of at least 64 rows for the dense models
                    batch_size: 128,
                    ..TrainParams::default()
                },
                dataset: DatasetKind::Mnist,
            };
            let train = |ways| {
                let m = Autoencoder::new(&run.model, 3, &Device::Cpu).unwrap();
                let out = run_in_parts(&run, &ds, &m, &mut (), &Control::default(), ways).unwrap();
                (out, m.reconstruct(&ds.test.to_f32()).unwrap())
            };
            let (one, rec1) = train(1);
            // two ways: the helper thread; three: the run's own pool
            for ways in [2, 3] {
                let (two, rec2) = train(ways);
                assert_eq!(
                    std::mem::discriminant(&one.status),
                    std::mem::discriminant(&two.status),
                    "{preset} ({ways} ways): {:?} vs {:?}",
                    one.status,
                    two.status
                );
                for (a, b) in one.history.val_loss.iter().zip(&two.history.val_loss) {
                    assert!(
                        (a - b).abs() <= 0.02 * a,
                        "{preset} ({ways} ways): {a} vs {b}"
                    );
                }
                let diff = rec1
                    .iter()
                    .zip(&rec2)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    diff < 0.1,
                    "{preset} ({ways} ways): reconstructions differ by {diff}"
                );
            }
        }
    }

    /// Parameters of `b` that differ from `a`'s by 1e-5 or more, of all,
    /// and the largest difference.
    fn param_diffs(a: &[Tensor], b: &[Tensor]) -> (usize, usize, f32) {
        let (mut off, mut all, mut max) = (0, 0, 0f32);
        for (ta, tb) in a.iter().zip(b) {
            let fa = ta.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let fb = tb.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (x, y) in fa.iter().zip(&fb) {
                let d = (x - y).abs();
                off += usize::from(d >= 1e-5);
                max = max.max(d);
            }
            all += fa.len();
        }
        (off, all, max)
    }

    /// Every preset family, split into 1, 2, 3, 4 and 8 parts of uneven
    /// size (batches of 200 and 257 rows), on the threads a run with that
    /// many ways gets (the helper, the run's own pool), against the whole
    /// batch on one thread, step by step: before each step the split model
    /// takes the whole-batch model's weights, so any difference is that
    /// step's own. (Three or more ways once indexed past the end of a
    /// parameter in the optimiser's split pass, for parameters of 65,536
    /// values or more.)
    #[test]
    fn every_preset_trains_alike_in_any_number_of_parts() {
        let (_d, ds) = tiny();
        let lr = 1e-3;
        let params = ParamsAdamW {
            lr,
            ..ParamsAdamW::default()
        };
        let presets = [
            "deep",
            "shallow-256",
            "sparse-1e-4",
            "denoise-0.5",
            "conv-unpool",
            "conv-deconv",
            "conv-both",
            "vae-30",
        ];
        for preset in presets {
            let mc = ModelConfig::preset(preset).unwrap();
            for rows in [200usize, 257] {
                let steps = if mc.is_conv() { 2 } else { 3 };
                let mut rng = Rng::new(rows as u64);
                let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..steps)
                    .map(|s| {
                        let n = ds.train.len();
                        let idx: Vec<usize> = (0..rows).map(|i| (s * rows + i) % n).collect();
                        let mut clean = Vec::new();
                        gather(&ds.train, &idx, &mut clean);
                        let mut noisy = clean.clone();
                        mc.noise.apply(&mut noisy, &mut rng);
                        (clean, noisy)
                    })
                    .collect();
                let noisy = |b: &(Vec<f32>, Vec<f32>)| -> Option<Vec<f32>> {
                    (!mc.noise.is_none()).then(|| b.1.clone())
                };
                // a VAE's code samples: the same for the whole and the parts
                let eps = crate::train::vae::standard_normals(rows * mc.bottleneck(), &mut rng);
                let vae = mc.is_vae().then_some((eps.as_slice(), 1.0));
                // the whole batch, one thread: the reference, step by step
                let whole = Autoencoder::new(&mc, 9, &Device::Cpu).unwrap();
                let mut opt = FusedAdam::new(whole.vars(), params.clone()).unwrap();
                let mut reference = Vec::new();
                for b in &batches {
                    let before = whole.snapshot().unwrap();
                    let (loss, g, w) =
                        batch_gradients(&whole, &b.0, noisy(b).as_deref(), vae, 1, &[]).unwrap();
                    let loss = loss.objective;
                    step_on(&mut opt, &g, &[], &w).unwrap();
                    reference.push((before, loss, whole.snapshot().unwrap()));
                }
                for ways in [1usize, 2, 3, 4, 8] {
                    let split = Autoencoder::new(&mc, 9, &Device::Cpu).unwrap();
                    let mut opt = FusedAdam::new(split.vars(), params.clone()).unwrap();
                    // the parts' dense gradients through the sinks, as in a run
                    let sinks = sinks_for(&split, ways);
                    let got = with_ways(ways, &Device::Cpu, |w| {
                        assert_eq!(w, ways, "{preset}: the threads for {ways} ways");
                        let mut out = Vec::new();
                        for (b, (before, _, _)) in batches.iter().zip(&reference) {
                            split.restore(before).unwrap();
                            let (loss, g, wt) = batch_gradients(
                                &split,
                                &b.0,
                                noisy(b).as_deref(),
                                vae,
                                ways,
                                &sinks,
                            )
                            .unwrap();
                            let loss = loss.objective;
                            assert_eq!(g.len(), ways);
                            let shares: f32 = wt.iter().sum();
                            assert!((shares - 1.0).abs() < 1e-6, "shares sum to {shares}");
                            step_on(&mut opt, &g, &sinks, &wt).unwrap();
                            out.push((loss, split.snapshot().unwrap()));
                        }
                        out
                    });
                    for (s, ((loss, after), (_, want_loss, want))) in
                        got.iter().zip(&reference).enumerate()
                    {
                        let tag = format!("{preset}, batch {rows}, {ways} ways, step {}", s + 1);
                        assert!(
                            (loss - want_loss).abs() <= 1e-4 * want_loss.abs().max(1e-3),
                            "{tag}: loss {loss} vs {want_loss}"
                        );
                        let (off, all, max) = param_diffs(want, after);
                        // the same gradients up to rounding; Adam turns a
                        // sign flip of a near-zero gradient into a full
                        // step, so a few weights may move by up to 2 lr
                        assert!(
                            off * 1000 <= all,
                            "{tag}: {off} of {all} weights differ by 1e-5 or more (max {max})"
                        );
                        assert!(max <= 2.0 * lr as f32 + 1e-6, "{tag}: max difference {max}");
                    }
                }
            }
        }
    }

    /// `--ways` above the batch's parts: whole runs with 3, 4 and 8 ways
    /// at batch sizes where the dense models split into 3 and 4 parts.
    #[test]
    fn whole_runs_with_three_or_more_ways_finish() {
        let (_d, ds) = tiny();
        for (preset, batch) in [("deep", 200), ("shallow-256", 257), ("sparse-1e-4", 256)] {
            for ways in [3, 4, 8] {
                let run = RunConfig {
                    model: ModelConfig::preset(preset).unwrap(),
                    train: TrainParams {
                        epochs: 1,
                        batch_size: batch,
                        ..TrainParams::default()
                    },
                    dataset: DatasetKind::Mnist,
                };
                let m = Autoencoder::new(&run.model, 3, &Device::Cpu).unwrap();
                let out = run_in_parts(&run, &ds, &m, &mut (), &Control::default(), ways).unwrap();
                assert_eq!(
                    out.status,
                    Status::Completed,
                    "{preset} b{batch} {ways} ways"
                );
                assert!(out.history.val_loss[0].is_finite());
            }
        }
    }

    fn cfg(preset: &str, epochs: usize, lr: f64) -> RunConfig {
        RunConfig {
            model: ModelConfig::preset(preset).unwrap(),
            train: TrainParams {
                epochs,
                lr,
                batch_size: 32,
                ..TrainParams::default()
            },
            dataset: DatasetKind::Mnist,
        }
    }

    #[test]
    fn a_few_epochs_lower_the_loss_and_are_deterministic() {
        let (_d, ds) = tiny();
        let c = cfg("shallow-64", 3, 1e-3);
        let run_once = || {
            let m = Autoencoder::new(&c.model, 1, &Device::Cpu).unwrap();
            run(&c, &ds, &m, &mut (), &Control::default()).unwrap()
        };
        let a = run_once();
        assert_eq!(a.status, Status::Completed);
        assert_eq!(a.epochs_done, 3);
        assert!(
            a.history.val_loss[2] < a.history.val_loss[0],
            "{:?}",
            a.history.val_loss
        );
        let b = run_once();
        assert_eq!(
            a.history.val_loss, b.history.val_loss,
            "same seed, same run"
        );
    }

    #[test]
    fn stop_ends_within_one_batch() {
        let (_d, ds) = tiny();
        let c = cfg("shallow-64", 50, 1e-3);
        let m = Autoencoder::new(&c.model, 1, &Device::Cpu).unwrap();
        let control = Control::default();
        let mut steps = 0;
        let mut obs = |e: &TrainEvent| {
            if let TrainEvent::Step { step, .. } = e {
                steps = *step;
                if *step == 7 {
                    control.stop();
                }
            }
        };
        let out = run(&c, &ds, &m, &mut obs, &control).unwrap();
        assert_eq!(out.status, Status::Stopped);
        assert_eq!(out.steps_done, 7);
        assert_eq!(steps, 7);
    }

    #[test]
    fn collapse_rule() {
        assert!(collapsed(0.107, 0.108, 0.110));
        assert!(!collapsed(0.107, 0.090, 0.110), "still improving");
        assert!(!collapsed(0.05, 0.05, 0.110), "far from blank");
        assert!(!collapsed(0.2, 0.2, 0.0), "no ink at all: no rule");
    }

    #[test]
    fn divergence_is_caught_and_the_last_good_weights_are_kept() {
        let (_d, ds) = tiny();
        let c = cfg("deep", 2, 1e30);
        let m = Autoencoder::new(&c.model, 1, &Device::Cpu).unwrap();
        let before = m.snapshot().unwrap();
        let out = run(&c, &ds, &m, &mut (), &Control::default()).unwrap();
        let Status::Diverged { step, loss, .. } = out.status else {
            panic!("expected divergence, got {:?}", out.status)
        };
        assert!(!loss.is_finite());
        assert!(step >= 2, "the first step's loss is finite");
        for (a, b) in before.iter().zip(m.snapshot().unwrap()) {
            assert_eq!(
                crate::model::max_abs_diff(a, &b),
                0.0,
                "weights restored to the last good epoch (here: the start)"
            );
        }
    }
}
