//! The reconstruction losses as fused candle custom ops for the CPU: from
//! the decoder's logits and the clean targets straight to the mean loss, and
//! back in one pass to the gradient at the logits. candle's version is a
//! sigmoid, a subtraction, a square and a mean forward (four tensors the
//! size of the batch) and as many allocating passes backward. Tested
//! against those ops.

use std::sync::{Arc, Mutex};

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::convops::{slice, tensor, with_data};
use super::LossKind;

/// The loss of a batch's logits against its targets.
#[derive(Clone, Debug)]
pub struct Loss {
    pub kind: LossKind,
    /// Where the forward pass leaves its gradient at the logits (the mean's, for an incoming gradient of 1), for the
    /// backward pass to scale instead of computing every sigmoid again
    /// (the loss runs only in training, where it is always differentiated).
    kept: Arc<Mutex<Vec<f32>>>,
}

impl Loss {
    pub fn new(kind: LossKind) -> Loss {
        Loss {
            kind,
            kept: Arc::default(),
        }
    }
}

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp(-z))
}

/// e^x to within 2 ulp for the f32 range (the usual reduction to
/// `2^n * e^r`, |r| <= ln 2 / 2, and a degree-6 polynomial), written so the
/// compiler can run it 8 lanes at a time; libm's `expf` is a scalar call.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // round to nearest by adding 1.5 * 2^23: the sum's low mantissa bits
    // are then n itself (plain float and integer ops, no saturating cast,
    // so it vectorises)
    const SHIFT: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let bits = shifted.to_bits().wrapping_sub(SHIFT.to_bits());
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(bits.wrapping_add(127) << 23)
}

/// The logistic sigmoid of every value, in place, with the vectorisable
/// exp (compiled for AVX2 + FMA when the CPU has them): reconstructions
/// from logits, where candle's sigmoid makes a libm call per pixel.
pub fn sigmoid_in_place(v: &mut [f32]) {
    #[inline(always)]
    fn run(v: &mut [f32]) {
        for x in v {
            *x = sigmoid(*x);
        }
    }
    avx2_or_plain!(run(v: &mut [f32]))
}

/// ln(1 + u) for `u` in [0, 1], to within 2 ulp, written so the compiler
/// can run it 8 lanes at a time (libm's `log1pf` is a scalar call): Cephes'
/// `logf` polynomial on 1 + u reduced to [sqrt(1/2), sqrt(2)), where the
/// reduced argument is `u` itself below sqrt(2) - 1 (no rounding of 1 + u).
#[inline(always)]
fn ln1p_unit(u: f32) -> f32 {
    let big = u > std::f32::consts::SQRT_2 - 1.0;
    // 1 + u = 2^e (1 + x)
    let x = if big { (u - 1.0) * 0.5 } else { u };
    let e = if big { 1.0 } else { 0.0 };
    let z = x * x;
    let mut p = 7.037_683_6e-2;
    for c in [
        -1.151_461_1e-1,
        1.167_699_9e-1,
        -1.242_014_1e-1,
        1.424_932_3e-1,
        -1.666_805_8e-1,
        2.000_071_5e-1,
        -2.499_999_4e-1,
        0.333_333_3,
    ] {
        p = p * x + c;
    }
    // ln 2 in two parts (0.693359375 is exact in a few bits)
    let y = p * x * z + e * -2.121_944_4e-4 - 0.5 * z;
    x + y + e * 0.693_359_4
}

/// One pixel's MSE term and its gradient at the logit scaled by `k`.
#[inline(always)]
fn mse_term(z: f32, t: f32, k: f32) -> (f32, f32) {
    let y = sigmoid(z);
    let d = y - t;
    (d * d, k * d * y * (1.0 - y))
}

/// One pixel's BCE term, `max(z, 0) - z t + ln(1 + e^-|z|)`, and its
/// gradient at the logit scaled by `k`, `k (sigmoid(z) - t)`, from one exp.
#[inline(always)]
fn bce_term(z: f32, t: f32, k: f32) -> (f32, f32) {
    let u = exp(-z.abs());
    let r = 1.0 / (1.0 + u);
    let y = if z >= 0.0 { r } else { u * r };
    let relu = if z > 0.0 { z } else { 0.0 };
    (relu - z * t + ln1p_unit(u), k * (y - t))
}

/// The sum of `term`'s losses over `z` against `t` and, into `grad`, their
/// gradients, in one pass.
#[inline(always)]
fn sum_and_grad_with(
    term: impl Fn(f32, f32, f32) -> (f32, f32),
    z: &[f32],
    t: &[f32],
    k: f32,
    grad: &mut Vec<f32>,
) -> f64 {
    assert_eq!(z.len(), t.len());
    grad.clear();
    grad.reserve(z.len());
    let out = &mut grad.spare_capacity_mut()[..z.len()];
    // sixteen f32 running sums (one per lane: a single sum is a chain
    // of dependent additions the compiler may not reorder) over blocks
    // of 1,024 numbers, each block's total then added in f64 (summing
    // in f64 throughout converted every number: 3.4% of a
    // shallow-256 b256 profile)
    let mut total = 0f64;
    for ((zb, tb), ob) in z.chunks(1024).zip(t.chunks(1024)).zip(out.chunks_mut(1024)) {
        let mut lanes = [0f32; 16];
        let (zc, tc, oc) = (
            zb.chunks_exact(16),
            tb.chunks_exact(16),
            ob.chunks_exact_mut(16),
        );
        let (zr, tr) = (zc.remainder(), tc.remainder());
        let tail = zb.len() / 16 * 16;
        for ((z16, t16), o16) in zc.zip(tc).zip(oc) {
            for (((s, &z), &t), o) in lanes.iter_mut().zip(z16).zip(t16).zip(o16) {
                let (l, g) = term(z, t, k);
                *s += l;
                o.write(g);
            }
        }
        for ((&z, &t), o) in zr.iter().zip(tr).zip(&mut ob[tail..]) {
            let (l, g) = term(z, t, k);
            lanes[0] += l;
            o.write(g);
        }
        total += lanes.iter().map(|&v| v as f64).sum::<f64>();
    }
    // SAFETY: every one of the z.len() was written above
    unsafe { grad.set_len(z.len()) };
    total
}

/// The loss's sum over the pixels and, into `grad`, its gradient at the
/// logits scaled by `k`, in one pass (each exp once), compiled for AVX2 +
/// FMA when the CPU has them (the default build targets SSE2).
fn sum_and_grad(kind: LossKind, z: &[f32], t: &[f32], k: f32, grad: &mut Vec<f32>) -> f64 {
    #[inline(always)]
    fn run(kind: LossKind, z: &[f32], t: &[f32], k: f32, grad: &mut Vec<f32>) -> f64 {
        match kind {
            LossKind::Mse => sum_and_grad_with(mse_term, z, t, k, grad),
            LossKind::Bce => sum_and_grad_with(bce_term, z, t, k, grad),
        }
    }
    avx2_or_plain!(run(kind: LossKind, z: &[f32], t: &[f32], k: f32, grad: &mut Vec<f32>) -> f64)
}

/// The scale of the mean loss's gradient over `n` pixels, for an incoming
/// gradient of 1.
fn scale(kind: LossKind, n: usize) -> f32 {
    let n = n.max(1) as f32;
    match kind {
        LossKind::Mse => 2.0 / n,
        LossKind::Bce => 1.0 / n,
    }
}

impl Loss {
    /// The same loss through candle's own ops (other devices, and the
    /// reference the fused op is tested against).
    pub fn with_candle_ops(self, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        match self.kind {
            LossKind::Mse => {
                let y = candle_nn::ops::sigmoid(logits)?;
                (y - target)?.sqr()?.mean_all()
            }
            LossKind::Bce => {
                // max(z, 0) - z * t + log(1 + exp(-|z|))
                let z = logits;
                let soft = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
                ((z.relu()? - (z * target)?)? + soft)?.mean_all()
            }
        }
    }
}

impl CustomOp2 for Loss {
    fn name(&self) -> &'static str {
        "fused-loss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!(
                "fused-loss: logits {:?} and targets {:?} differ",
                l1.shape(),
                l2.shape()
            );
        }
        let z = slice(s1, l1, self.name())?;
        let t = slice(s2, l2, self.name())?;
        let n = z.len().max(1);
        let mut grad = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let sum = sum_and_grad(self.kind, z, t, scale(self.kind, n), &mut grad);
        let mean = (sum / n as f64) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        target: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_scalar::<f32>()?;
        // the forward pass's gradient, for an incoming 1 (taken: a second
        // backward pass computes it again below)
        let mut dz = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
        if dz.len() != logits.elem_count() {
            let k = g * scale(self.kind, logits.elem_count());
            with_data(logits, |z| {
                with_data(target, |t| Ok(sum_and_grad(self.kind, z, t, k, &mut dz)))
            })?;
        } else if g != 1.0 {
            dz.iter_mut().for_each(|d| *d *= g);
        }
        // (the targets are data: no gradient)
        Ok((Some(tensor(dz, logits.dims(), logits)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{max_abs_diff, rand_tensor as rand};
    use candle_core::Var;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x), x.exp());
            assert!(
                ((ours - libm) / libm).abs() <= 2.5 * f32::EPSILON,
                "exp({x}) = {ours}, libm {libm}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) < 1e-37 && exp(200.0).is_finite());
    }

    #[test]
    fn ln1p_is_within_two_ulp_of_libm() {
        let check = |u: f32| {
            let (ours, libm) = (ln1p_unit(u), (u as f64).ln_1p());
            let err = (ours as f64 - libm).abs() / libm.max(f64::MIN_POSITIVE);
            assert!(
                err <= 2.0 * f32::EPSILON as f64,
                "ln1p({u}) = {ours}, libm {libm}"
            );
        };
        let mut u = 0.0f32;
        while u <= 1.0 {
            if u > 0.0 {
                check(u);
            }
            u += 1.3e-4;
        }
        // both sides of the reduction's switch, the ends, and the tiny
        // values of a large |logit|
        for u in [
            0.414_213_5,
            0.414_213_6,
            1.0,
            1e-8,
            3e-20,
            f32::MIN_POSITIVE,
        ] {
            check(u);
        }
        assert_eq!(ln1p_unit(0.0), 0.0);
    }

    #[test]
    fn sigmoid_in_place_matches_candle() {
        // odd length (a vector tail), extreme logits included
        let z = (rand(&[1001], 3) * 30.0).unwrap();
        let mut ours = z.to_vec1::<f32>().unwrap();
        ours[0] = -200.0;
        ours[1] = 200.0;
        let z = Tensor::from_slice(&ours, 1001, &candle_core::Device::Cpu).unwrap();
        sigmoid_in_place(&mut ours);
        let theirs = candle_nn::ops::sigmoid(&z)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 2.0 * f32::EPSILON, "{a} vs {b}");
        }
        assert!(ours[0] < 1e-37 && ours[1] == 1.0, "{} {}", ours[0], ours[1]);
    }

    #[test]
    fn losses_match_candle_values_and_gradients() {
        // (an odd length, for the vector tails)
        for kind in [LossKind::Mse, LossKind::Bce] {
            // logits spread over [-4, 4), targets in [0, 1)
            let z = Var::from_tensor(&(rand(&[7, 301], 1) * 4.0).unwrap()).unwrap();
            let t = ((rand(&[7, 301], 2) + 1.0).unwrap() * 0.5).unwrap();
            let op = Loss::new(kind);
            let ours = z.apply_op2(&t, op.clone()).unwrap();
            let theirs = op.with_candle_ops(&z, &t).unwrap();
            assert!(max_abs_diff(&ours, &theirs) < 1e-6, "{kind:?} value");
            // scaled, so the incoming gradient is not 1; the first backward
            // pass scales the forward pass's gradient, a second one (which
            // finds it taken) computes it again
            let g2 = (&theirs * 3.0).unwrap().backward().unwrap();
            let scaled = (&ours * 3.0).unwrap();
            for pass in ["first", "second"] {
                let g1 = scaled.backward().unwrap();
                let d = max_abs_diff(g1.get(&z).unwrap(), g2.get(&z).unwrap());
                assert!(
                    d < 1e-6,
                    "{kind:?} {pass} backward: gradient differs by {d}"
                );
            }
        }
    }
}
