//! The hot kernels, one at a time: the matrix products of a dense layer
//! (this crate's AVX-512 kernel against the `gemm` crate).
//! `cargo bench --bench kernels`.

use aelab::model::sgemm::{self, View};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn rows(d: &[f32], cols: usize) -> View {
    View {
        ptr: d.as_ptr(),
        rs: cols as isize,
        cs: 1,
    }
}

fn cols(d: &[f32], cols: usize) -> View {
    View {
        ptr: d.as_ptr(),
        rs: 1,
        cs: cols as isize,
    }
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
            if name == "avx512" && !sgemm::available() {
                continue;
            }
            let id = format!("{name}/b{b}-{n_in}x{n_out}");
            g.bench_function(BenchmarkId::new("forward", &id), |bn| {
                bn.iter(|| unsafe {
                    f(
                        b,
                        n_in,
                        n_out,
                        rows(&x, n_in),
                        cols(&w, n_in),
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
                        cols(&dz, n_out),
                        rows(&x, n_in),
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
                        rows(&dz, n_out),
                        rows(&w, n_in),
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

criterion_group!(benches, dense_products);
criterion_main!(benches);
