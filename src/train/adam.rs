//! Adam(W) as one fused in-place pass per parameter on the CPU: the update
//! of the moments and the weights runs over raw buffers with no temporary
//! tensors, instead of candle-nn's dozen allocating tensor ops per
//! parameter. Same formula as `candle_nn::AdamW` (tested against it); other
//! devices fall back to it.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{bail, CpuStorage, Device, InplaceOp1, Layout, Result, Var};

use crate::model::GradSink;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

pub struct FusedAdam {
    vars: Vec<Var>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
    params: ParamsAdamW,
    fallback: Option<AdamW>,
}

struct AdamStep<'a> {
    /// The first part's gradient (a tensor's storage, or a [`GradSink`]'s
    /// slot).
    first: &'a [f32],
    /// Further gradients (of other parts of the batch) and the weights of
    /// every gradient: the step uses `w[0] g + w[1] extra[0] + ...`.
    extra: Vec<&'a [f32]>,
    weights: &'a [f32],
    m: Mutex<&'a mut [f32]>,
    v: Mutex<&'a mut [f32]>,
    lr: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    decay: f32,
    scale_m: f32,
    scale_v: f32,
}

/// Zero for subnormal values (|x| < f32::MIN_POSITIVE), x otherwise.
#[inline(always)]
fn flush(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

impl AdamStep<'_> {
    /// The update of every parameter, with its gradient from `grad(index)`
    /// (the parts of a batch summed on the fly, no temporary buffer).
    #[inline(always)]
    fn update(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], grad: impl Fn(usize) -> f32) {
        let keep = 1.0 - self.lr * self.decay;
        for (i, ((p, mi), vi)) in theta
            .iter_mut()
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .enumerate()
        {
            let gi = grad(i);
            // Moments of weights whose gradient has gone quiet (pixels that are
            // rarely inked) decay geometrically into the subnormal range, where
            // x86 arithmetic is ~100x slower: flush them to zero.
            *mi = flush(self.b1 * *mi + (1.0 - self.b1) * gi);
            *vi = flush(self.b2 * *vi + (1.0 - self.b2) * gi * gi);
            let m_hat = *mi * self.scale_m;
            let v_hat = *vi * self.scale_v;
            *p = *p * keep - self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
    }

    /// [`Self::update`] on the weighted sum of `g` and the `extra` parts,
    /// from index `start` on (the slices are that far into the parameter).
    #[inline(always)]
    fn update_parts(
        &self,
        theta: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        start: usize,
    ) {
        let n = theta.len();
        let g = &g[start..start + n];
        match (self.extra.as_slice(), self.weights) {
            ([], [] | [1.0]) => self.update(theta, m, v, |i| g[i]),
            ([], &[w0]) => self.update(theta, m, v, |i| w0 * g[i]),
            ([e1], &[w0, w1]) => {
                let e1 = &e1[start..start + n];
                self.update(theta, m, v, |i| w0 * g[i] + w1 * e1[i])
            }
            (extra, weights) => {
                // (`g` is already this chunk's; the parts are still whole)
                let extra: Vec<&[f32]> = extra.iter().map(|e| &e[start..start + n]).collect();
                self.update(theta, m, v, |i| {
                    weights[0] * g[i]
                        + extra
                            .iter()
                            .zip(&weights[1..])
                            .map(|(e, &w)| w * e[i])
                            .sum::<f32>()
                })
            }
        }
    }

    /// The same, compiled for AVX2 + FMA (8 lanes with a vector square
    /// root and division; the default build targets SSE2): 1.4x faster.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn update_parts_avx2(
        &self,
        theta: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        start: usize,
    ) {
        self.update_parts(theta, m, v, g, start)
    }

    fn update_chunk(
        &self,
        theta: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        start: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2() {
            // SAFETY: checked just above
            return unsafe { self.update_parts_avx2(theta, m, v, g, start) };
        }
        self.update_parts(theta, m, v, g, start)
    }
}

/// Parameters at least this long are updated in two halves on two cores
/// (when the pool has them): the pass is bound by memory traffic, and one
/// core cannot draw all of it.
const SPLIT: usize = 1 << 16;

impl<'a> AdamStep<'a> {
    /// Step `t` of Adam with `p` on moments `m` and `v`, the first part's
    /// gradient in `first` and the others in `extra`.
    fn new(
        p: &ParamsAdamW,
        t: i32,
        m: &'a mut [f32],
        v: &'a mut [f32],
        weights: &'a [f32],
        first: &'a [f32],
        extra: Vec<&'a [f32]>,
    ) -> AdamStep<'a> {
        AdamStep {
            first,
            extra,
            weights,
            m: Mutex::new(m),
            v: Mutex::new(v),
            lr: p.lr as f32,
            b1: p.beta1 as f32,
            b2: p.beta2 as f32,
            eps: p.eps as f32,
            decay: p.weight_decay as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(t))) as f32,
        }
    }

    /// The step of the parameter in `dst` with the first part's gradient `g`.
    fn apply(&self, dst: &mut CpuStorage, dst_l: &Layout, g: &[f32]) -> Result<()> {
        let Some((ds, de)) = dst_l.contiguous_offsets() else {
            bail!("fused-adam: parameter is not contiguous")
        };
        let CpuStorage::F32(theta) = dst else {
            bail!("fused-adam: parameters must be f32")
        };
        let theta = &mut theta[ds..de];
        let mut m = self.m.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = self.v.lock().unwrap_or_else(|e| e.into_inner());
        if theta.len() != g.len() || m.len() != g.len() {
            bail!("fused-adam: shapes differ");
        }
        if self.extra.iter().any(|e| e.len() != g.len()) {
            bail!("fused-adam: gradient parts differ in size");
        }
        let (m, v) = (&mut **m, &mut **v);
        if theta.len() >= SPLIT && crate::par::can_split() {
            let half = theta.len() / 2;
            let (t0, t1) = theta.split_at_mut(half);
            let (m0, m1) = m.split_at_mut(half);
            let (v0, v1) = v.split_at_mut(half);
            crate::par::join(
                || self.update_chunk(t0, m0, v0, g, 0),
                || self.update_chunk(t1, m1, v1, g, half),
            );
        } else {
            self.update_chunk(theta, m, v, g, 0);
        }
        Ok(())
    }
}

impl InplaceOp1 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout) -> Result<()> {
        self.apply(dst, dst_l, self.first)
    }
}

impl FusedAdam {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<FusedAdam> {
        let on_cpu = vars
            .iter()
            .all(|v| matches!(v.device(), Device::Cpu) && v.dtype() == candle_core::DType::F32);
        let fallback = if on_cpu {
            None
        } else {
            Some(AdamW::new(vars.clone(), params.clone())?)
        };
        let sizes: Vec<usize> = vars.iter().map(|v| v.elem_count()).collect();
        Ok(FusedAdam {
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            vars,
            t: 0,
            params,
            fallback,
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        if let Some(f) = &mut self.fallback {
            f.set_learning_rate(lr);
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        if let Some(f) = &mut self.fallback {
            return f.step(grads);
        }
        self.step_parts(std::slice::from_ref(grads), &[], &[1.0])
    }

    /// One step on the weighted sum of gradients of several parts of a
    /// batch (`weights`: each part's share of the batch), summed inside the
    /// same pass over the parameters. A parameter's gradients come from
    /// the parts' stores, or, where the stores lack it, from the parts'
    /// `sinks` (one per part, or none), slot by the parameter's index.
    pub fn step_parts(
        &mut self,
        parts: &[GradStore],
        sinks: &[&GradSink],
        weights: &[f32],
    ) -> Result<()> {
        if parts.is_empty() || parts.len() != weights.len() {
            bail!(
                "fused-adam: {} gradient parts, {} weights",
                parts.len(),
                weights.len()
            );
        }
        if !sinks.is_empty() && sinks.len() != parts.len() {
            bail!(
                "fused-adam: {} gradient parts, {} sinks",
                parts.len(),
                sinks.len()
            );
        }
        if self.fallback.is_some() {
            bail!("fused-adam: gradient parts need the CPU");
        }
        self.t += 1;
        let p = &self.params;
        for (j, ((var, m), v)) in self
            .vars
            .iter()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .enumerate()
        {
            let t = self.t;
            let Some(g) = parts[0].get(var.as_tensor()) else {
                // a fused dense layer's gradient, in the sinks
                let Some(first) = sinks.first().and_then(|s| s.get(j)) else {
                    continue;
                };
                let others = sinks[1..]
                    .iter()
                    .map(|s| s.get(j))
                    .collect::<Option<Vec<_>>>();
                let Some(others) = others else {
                    bail!("fused-adam: a part left no gradient for parameter {j}")
                };
                let extra = others.iter().map(|g| g.grad.as_slice()).collect();
                let op = AdamStep::new(p, t, m, v, weights, first.grad.as_slice(), extra);
                var.as_tensor().inplace_op1(&op)?;
                continue;
            };
            let g = g.contiguous()?;
            let mut grads = vec![g.clone()];
            for gs in &parts[1..] {
                grads.push(match gs.get(var.as_tensor()) {
                    Some(t) => t.contiguous()?,
                    None => g.zeros_like()?,
                });
            }
            let guards: Vec<_> = grads.iter().map(|t| t.storage_and_layout()).collect();
            let mut slices = guards
                .iter()
                .map(|(s, l)| match (&**s, l.contiguous_offsets()) {
                    (candle_core::Storage::Cpu(c), Some((a, b))) => Ok(&c.as_slice::<f32>()?[a..b]),
                    _ => bail!("fused-adam: gradient parts need contiguous CPU f32"),
                })
                .collect::<Result<Vec<_>>>()?;
            let first = slices.remove(0);
            let op = AdamStep::new(p, t, m, v, weights, first, slices);
            var.as_tensor().inplace_op1(&op)?;
        }
        Ok(())
    }

    /// Backward pass of `loss`, then one step.
    pub fn backward_step(&mut self, loss: &candle_core::Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_on_weighted_parts_equals_the_step_on_the_whole_batch() {
        use candle_core::{Device, Tensor, Var};
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0], [0.5, -1.0], [3.0, 0.0], [-2.0, 1.0]], &dev).unwrap();
        let y = Tensor::new(&[[1f32], [0.0], [2.0], [-1.0]], &dev).unwrap();
        let loss = |w: &Var, rows: std::ops::Range<usize>| {
            let n = rows.len();
            let xs = x.narrow(0, rows.start, n).unwrap();
            let ys = y.narrow(0, rows.start, n).unwrap();
            (xs.matmul(&w.t().unwrap()).unwrap() - ys)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let params = ParamsAdamW {
            lr: 0.1,
            ..ParamsAdamW::default()
        };
        let start = Tensor::new(&[[0.3f32, -0.2]], &dev).unwrap();
        let (whole, parts) = (
            Var::from_tensor(&start).unwrap(),
            Var::from_tensor(&start).unwrap(),
        );
        let mut a = FusedAdam::new(vec![whole.clone()], params.clone()).unwrap();
        let mut b = FusedAdam::new(vec![parts.clone()], params).unwrap();
        for _ in 0..3 {
            a.backward_step(&loss(&whole, 0..4)).unwrap();
            // unequal parts (3 + 1 rows): wrong weights would turn the step
            let g1 = loss(&parts, 0..3).backward().unwrap();
            let g2 = loss(&parts, 3..4).backward().unwrap();
            b.step_parts(&[g1, g2], &[], &[0.75, 0.25]).unwrap();
        }
        let d = crate::model::max_abs_diff(whole.as_tensor(), parts.as_tensor());
        assert!(d < 1e-5, "parameters differ by {d}");
    }

    #[test]
    fn subnormal_moments_are_flushed() {
        assert_eq!(flush(1e-39), 0.0);
        assert_eq!(flush(-1e-39), 0.0);
        assert_eq!(flush(1e-30), 1e-30);
        assert_eq!(flush(0.5), 0.5);
    }
    use crate::data::PIXELS;
    use crate::model::{self, Autoencoder, ModelConfig};
    use candle_core::Tensor;

    #[test]
    fn matches_candle_adamw() {
        let dev = Device::Cpu;
        for preset in ["deep", "conv-deconv"] {
            let cfg = ModelConfig::preset(preset).unwrap();
            let a = Autoencoder::new(&cfg, 5, &dev).unwrap();
            let b = Autoencoder::new(&cfg, 5, &dev).unwrap();
            let params = ParamsAdamW {
                lr: 1e-3,
                weight_decay: 0.01,
                ..ParamsAdamW::default()
            };
            let mut fused = FusedAdam::new(a.vars(), params.clone()).unwrap();
            let mut plain = AdamW::new(b.vars(), params).unwrap();
            for step in 0..4 {
                let x = Tensor::rand(0f32, 1f32, (8, PIXELS), &dev).unwrap();
                if step == 2 {
                    fused.set_learning_rate(5e-4);
                    plain.set_learning_rate(5e-4);
                }
                // one set of gradients (a's) for both optimisers: two models
                // trained side by side drift apart by rounding after the first
                // step, and Adam turns a sign flip of a near-zero gradient
                // into a full step (this test used to fail ~1 run in 7 so)
                let (la, _) = model::loss(&cfg, &a.forward(&x).unwrap(), &x).unwrap();
                let mut grads = la.backward().unwrap();
                for (va, vb) in a.vars().iter().zip(b.vars()) {
                    if let Some(g) = grads.get(va).cloned() {
                        grads.insert(vb.as_tensor(), g);
                    }
                }
                fused.step(&grads).unwrap();
                plain.step(&grads).unwrap();
            }
            for ((name, va), (_, vb)) in a.params.iter().zip(&b.params) {
                // The same gradients and the same arithmetic up to rounding
                // (Adam still divides by sqrt(v) + eps, which magnifies the
                // rounding of a near-zero gradient): nearly all weights must
                // agree to 1% of lr, and none may differ by more than the 4
                // steps could move it.
                let fa = va
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let fb = vb
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let diffs: Vec<f32> = fa.iter().zip(&fb).map(|(x, y)| (x - y).abs()).collect();
                let off = diffs.iter().filter(|&&d| d >= 1e-5).count();
                let max = diffs.iter().cloned().fold(0f32, f32::max);
                assert!(
                    off * 1000 <= diffs.len(),
                    "{preset} {name}: {off} of {} weights differ by 1e-5 or more (max {max})",
                    diffs.len()
                );
                assert!(
                    max <= 4.0 * 1e-3 + 1e-6,
                    "{preset} {name}: max difference {max}"
                );
            }
        }
    }
}
