//! A dense layer (`x W^T + b`, then an optional activation) as one fused
//! candle custom op for the CPU: forward is a single matrix product written
//! straight into the output with bias and activation applied in the same
//! pass; backward masks the incoming gradient with the activation's
//! derivative (from the saved output) and runs the two matrix products for
//! the weight and input gradients. candle's own version takes a matmul, a
//! broadcast add, an activation and, backwards, half a dozen allocating
//! element-wise ops and transposed copies. Tested against candle's ops.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::config::Activation;
use super::convops::{matmul_new, matmul_sparse_into, slice, tensor, with_data, Scratch};
use super::sgemm::{Sparse, View};

#[derive(Clone, Debug)]
pub struct Linear {
    /// None: the raw affine output (logits).
    pub act: Option<Activation>,
    /// Where the backward pass leaves the weight and bias gradients
    /// (slots of a [`GradSink`]) instead of returning them to candle.
    pub sink: Option<(Arc<GradSink>, usize, usize)>,
    /// The input is mostly zeros (the model's own input: MNIST's pixels
    /// are 81% zero): its products leave out the zero terms where that
    /// pays.
    pub sparse_input: bool,
}

/// Gradients that fused layers leave here during a backward pass, one
/// slot per model parameter (in the model's order), instead of returning
/// them to candle: candle adds every returned gradient into a freshly
/// zeroed tensor of its size (a zeroing pass, an adding pass and an
/// allocation per weight matrix, ~8% of a dense run at batch 32). The
/// slots persist from step to step and each backward overwrites them.
#[derive(Debug, Default)]
pub struct GradSink {
    slots: Vec<Mutex<Slot>>,
}

/// One parameter's gradient, and whether the last backward pass wrote it.
#[derive(Debug, Default)]
pub struct Slot {
    written: bool,
    pub grad: Vec<f32>,
}

impl GradSink {
    /// A sink for a model of `params` parameters.
    pub fn new(params: usize) -> GradSink {
        GradSink {
            slots: (0..params).map(|_| Mutex::default()).collect(),
        }
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget which slots were written (before a backward pass).
    pub fn clear(&self) {
        for i in 0..self.slots.len() {
            self.lock(i).written = false;
        }
    }

    /// Slot `i`, if the last backward pass wrote its gradient.
    pub fn get(&self, i: usize) -> Option<std::sync::MutexGuard<'_, Slot>> {
        let slot = self.slots.get(i)?.lock().unwrap_or_else(|e| e.into_inner());
        slot.written.then_some(slot)
    }

    /// Runs `fill` on slot `i` sized to `n` (contents unspecified: `fill`
    /// overwrites all of it).
    fn put(&self, i: usize, n: usize, fill: impl FnOnce(&mut [f32])) {
        let mut slot = self.lock(i);
        if slot.grad.len() != n {
            slot.grad.clear();
            slot.grad.resize(n, 0.0);
        }
        fill(&mut slot.grad);
        slot.written = true;
    }
}

/// `out [rows, n] += bias` row by row, then the activation, in place;
/// one pass, vectorised (the activation chosen once, outside the loop).
fn bias_and_activate(out: &mut [f32], bias: &[f32], act: Option<Activation>) {
    #[inline(always)]
    fn each(out: &mut [f32], bias: &[f32], f: impl Fn(f32) -> f32) {
        for row in out.chunks_exact_mut(bias.len()) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v = f(*v + b);
            }
        }
    }
    #[inline(always)]
    fn run(out: &mut [f32], bias: &[f32], act: Option<Activation>) {
        match act {
            None => each(out, bias, |v| v),
            Some(Activation::Relu) => each(out, bias, |v| v.max(0.0)),
            Some(Activation::Sigmoid) => each(out, bias, |v| 1.0 / (1.0 + (-v).exp())),
            Some(Activation::Tanh) => each(out, bias, f32::tanh),
        }
    }
    avx2_or_plain!(run(out: &mut [f32], bias: &[f32], act: Option<Activation>))
}

/// `dz = grad * act'(y)` (the derivative from the saved output `y`), row
/// by row of `bias_grad.len()` columns, and the bias gradient, the column
/// sums of `dz` (added in row order); one pass, vectorised.
fn backprop_activation(
    dz: &mut [f32],
    grad: &[f32],
    y: &[f32],
    bias_grad: &mut [f32],
    act: Option<Activation>,
) {
    #[inline(always)]
    fn each(dz: &mut [f32], grad: &[f32], y: &[f32], gb: &mut [f32], d: impl Fn(f32) -> f32) {
        let n = gb.len();
        for ((dz_row, g_row), y_row) in dz
            .chunks_exact_mut(n)
            .zip(grad.chunks_exact(n))
            .zip(y.chunks_exact(n))
        {
            for (((o, &g), &yv), s) in dz_row.iter_mut().zip(g_row).zip(y_row).zip(gb.iter_mut()) {
                *o = g * d(yv);
                *s += *o;
            }
        }
    }
    #[inline(always)]
    fn run(dz: &mut [f32], grad: &[f32], y: &[f32], gb: &mut [f32], act: Option<Activation>) {
        match act {
            None => each(dz, grad, y, gb, |_| 1.0),
            Some(Activation::Relu) => each(dz, grad, y, gb, |y| if y > 0.0 { 1.0 } else { 0.0 }),
            Some(Activation::Sigmoid) => each(dz, grad, y, gb, |y| y * (1.0 - y)),
            Some(Activation::Tanh) => each(dz, grad, y, gb, |y| 1.0 - y * y),
        }
    }
    avx2_or_plain!(run(
        dz: &mut [f32],
        grad: &[f32],
        y: &[f32],
        bias_grad: &mut [f32],
        act: Option<Activation>
    ))
}

impl Linear {
    /// The same layer through candle's own ops (devices other than the
    /// CPU, and the reference the fused op is tested against).
    pub fn with_candle_ops(self, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&weight.t()?)?.broadcast_add(bias)?;
        match self.act {
            None => Ok(y),
            Some(a) => super::activate(y, a),
        }
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[b, n_in], &[n_out, w_in], &[n_bias]) =
            (l1.shape().dims(), l2.shape().dims(), l3.shape().dims())
        else {
            bail!(
                "fused-linear: expected x [b, in], weight [out, in], bias [out]; got {:?}, {:?}, {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        };
        if w_in != n_in || n_bias != n_out {
            bail!(
                "fused-linear: x {:?}, weight {:?} and bias {:?} disagree",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let x = slice(s1, l1, self.name())?;
        let w = slice(s2, l2, self.name())?;
        let bias = slice(s3, l3, self.name())?;
        // out [b, out] = x [b, in] x W^T [in, out]
        let (xm, wt) = (View::rows(x, n_in), View::cols(w, n_in));
        let sparse = self.sparse_input.then_some(Sparse::A);
        let mut out = matmul_new(b, n_in, n_out, xm, wt, sparse);
        bias_and_activate(&mut out, bias, self.act);
        Ok((CpuStorage::F32(out), Shape::from((b, n_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, n_in) = x.dims2()?;
        let n_out = w.dim(0)?;
        let need_x = x.track_op();
        let (gx, gw, gb) = with_data(x, |xd| {
            with_data(w, |wd| {
                with_data(res, |y| {
                    with_data(grad, |g| {
                        // dz = grad * act'(y), and the bias gradient
                        let mut dz = Scratch::new(b * n_out);
                        let mut gb = vec![0f32; n_out];
                        backprop_activation(&mut dz, g, y, &mut gb, self.act);
                        // gW [out, in] = dz^T [out, b] x x [b, in]
                        let (dzt, xm) = (View::cols(&dz, n_out), View::rows(xd, n_in));
                        let sparse = self.sparse_input.then_some(Sparse::B);
                        let gw = match &self.sink {
                            Some((sink, wi, bi)) => {
                                sink.put(*wi, n_out * n_in, |gw| {
                                    matmul_sparse_into(n_out, b, n_in, dzt, xm, gw, false, sparse)
                                });
                                sink.put(*bi, n_out, |s| s.copy_from_slice(&gb));
                                None
                            }
                            None => Some(matmul_new(n_out, b, n_in, dzt, xm, sparse)),
                        };
                        // gx [b, in] = dz [b, out] x W [out, in]
                        let gx = need_x.then(|| {
                            let (dzm, wm) = (View::rows(&dz, n_out), View::rows(wd, n_in));
                            matmul_new(b, n_out, n_in, dzm, wm, None)
                        });
                        Ok((gx, gw, gb))
                    })
                })
            })
        })?;
        let gx = gx.map(|d| tensor(d, &[b, n_in], x)).transpose()?;
        match gw {
            Some(gw) => Ok((
                gx,
                Some(tensor(gw, &[n_out, n_in], w)?),
                Some(tensor(gb, &[n_out], w)?),
            )),
            // (in the sink)
            None => Ok((gx, None, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{max_abs_diff, rand_tensor as rand, weighted_grads};
    use candle_core::Var;

    #[test]
    fn linear_layers_match_candle_values_and_gradients() {
        let acts = [
            None,
            Some(Activation::Relu),
            Some(Activation::Sigmoid),
            Some(Activation::Tanh),
        ];
        for (i, act) in acts.into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = Var::from_tensor(&rand(&[5, 7], seed)).unwrap();
            // (11 outputs: a vector of 8 and a tail, in the element-wise passes)
            let w = Var::from_tensor(&rand(&[11, 7], seed + 1)).unwrap();
            let b = Var::from_tensor(&rand(&[11], seed + 2)).unwrap();
            let op = Linear {
                act,
                sink: None,
                sparse_input: false,
            };
            let ours = x.apply_op3(&w, &b, op.clone()).unwrap();
            let theirs = op.with_candle_ops(&x, &w, &b).unwrap();
            assert!(max_abs_diff(&ours, &theirs) < 1e-5, "{act:?} values");
            let weights = rand(&[5, 11], seed + 3);
            let g1 = weighted_grads(&ours, &weights);
            let g2 = weighted_grads(&theirs, &weights);
            for (name, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
                let d = max_abs_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
                assert!(d < 1e-5, "{act:?} {name} gradient differs by {d}");
            }
        }
    }
}
