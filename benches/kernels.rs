//! The hot kernels, one at a time: the matrix products of a dense layer
//! (this crate's AVX-512 kernel against the `gemm` crate), one training
//! step of a model (forward, loss, backward through the fused layers, the
//! fused Adam pass), the Adam pass alone, and the reconstruction of a few
//! images (what a slider move costs per model). All on one thread: the
//! two-core figures are `aelab bench`'s. `cargo bench --bench kernels`.

use aelab::data::PIXELS;
use aelab::model::sgemm::{self, View};
use aelab::model::{Autoencoder, ModelConfig};
use aelab::train::adam::FusedAdam;
use candle_core::Device;
use candle_nn::ParamsAdamW;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// The three products of a dense layer `[b, in] -> [b, out]`.
fn dense_products(c: &mut Criterion) {
    let mut g = c.benchmark_group("dense-products");
    for &(b, n_in, n_out) in &[
        (32, 784, 512),
        (32, 256, 784),
        (128, 784, 256),
        (128, 256, 784),
    ] {
        let x = data(b * n_in);
        let w = data(n_out * n_in);
        let dz = data(b * n_out);
        let mut y = vec![0f32; b * n_out];
        let mut gw = vec![0f32; n_out * n_in];
        let mut gx = vec![0f32; b * n_in];
        g.throughput(Throughput::Elements((2 * b * n_in * n_out) as u64));
        type Mm = unsafe fn(usize, usize, usize, View, View, *mut f32, usize, bool);
        for (name, f) in [
            ("avx512", sgemm::matmul as Mm),
            ("gemm-crate", sgemm::gemm_into as Mm),
        ] {
            if name == "avx512" && !aelab::cpu::has_avx512() {
                continue;
            }
            let id = format!("{name}/b{b}-{n_in}x{n_out}");
            g.bench_function(BenchmarkId::new("forward", &id), |bn| {
                bn.iter(|| unsafe {
                    f(
                        b,
                        n_in,
                        n_out,
                        View::rows(&x, n_in),
                        View::cols(&w, n_in),
                        y.as_mut_ptr(),
                        n_out,
                        false,
                    )
                })
            });
            g.bench_function(BenchmarkId::new("grad-weight", &id), |bn| {
                bn.iter(|| unsafe {
                    f(
                        n_out,
                        b,
                        n_in,
                        View::cols(&dz, n_out),
                        View::rows(&x, n_in),
                        gw.as_mut_ptr(),
                        n_in,
                        false,
                    )
                })
            });
            g.bench_function(BenchmarkId::new("grad-input", &id), |bn| {
                bn.iter(|| unsafe {
                    f(
                        b,
                        n_out,
                        n_in,
                        View::rows(&dz, n_out),
                        View::rows(&w, n_in),
                        gx.as_mut_ptr(),
                        n_in,
                        false,
                    )
                })
            });
        }
    }
    g.finish();
}

fn batch(rows: usize) -> candle_core::Tensor {
    let v: Vec<f32> = data(rows * PIXELS).iter().map(|x| x + 0.5).collect();
    candle_core::Tensor::from_vec(v, (rows, PIXELS), &Device::Cpu).expect("a batch")
}

/// Forward, loss, backward and the optimiser step on one batch.
fn training_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("training-step");
    for (preset, rows) in [
        ("deep", 32),
        ("shallow-256", 32),
        ("shallow-256", 256),
        ("conv-deconv", 32),
        ("conv-unpool", 32),
    ] {
        let cfg = ModelConfig::preset(preset).expect("a preset");
        let model = Autoencoder::new(&cfg, 1, &Device::Cpu).expect("a model");
        let mut opt = FusedAdam::new(model.vars(), ParamsAdamW::default()).expect("Adam");
        let x = batch(rows);
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_function(format!("{preset}/b{rows}"), |bn| {
            bn.iter(|| {
                let f = model.forward(&x).expect("forward");
                let (loss, _) = aelab::model::loss(&cfg, &f, &x).expect("loss");
                opt.backward_step(&loss).expect("step");
            })
        });
    }
    g.finish();
}

/// The Adam pass alone over `deep`'s 808,494 parameters.
fn adam(c: &mut Criterion) {
    let cfg = ModelConfig::preset("deep").expect("a preset");
    let model = Autoencoder::new(&cfg, 1, &Device::Cpu).expect("a model");
    let mut opt = FusedAdam::new(model.vars(), ParamsAdamW::default()).expect("Adam");
    let x = batch(32);
    let f = model.forward(&x).expect("forward");
    let (loss, _) = aelab::model::loss(&cfg, &f, &x).expect("loss");
    let grads = loss.backward().expect("gradients");
    c.bench_function("adam/deep", |bn| {
        bn.iter(|| opt.step(&grads).expect("step"))
    });
}

/// Eight images through a model (the views' per-model cost of a change).
fn reconstruct(c: &mut Criterion) {
    let mut g = c.benchmark_group("reconstruct-8");
    let images: Vec<f32> = data(8 * PIXELS).iter().map(|x| x + 0.5).collect();
    for preset in [
        "deep",
        "shallow-256",
        "sparse-1e-4",
        "conv-unpool",
        "conv-both",
    ] {
        let cfg = ModelConfig::preset(preset).expect("a preset");
        let model = Autoencoder::new(&cfg, 1, &Device::Cpu).expect("a model");
        g.bench_function(preset, |bn| {
            bn.iter(|| model.reconstruct(&images).expect("reconstruct"))
        });
    }
    g.finish();
}

criterion_group!(benches, dense_products, training_step, adam, reconstruct);
criterion_main!(benches);
