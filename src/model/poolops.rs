//! 2x2 max-pooling (stride 2, ceil mode: an odd side's last window is
//! clipped) and max-unpooling as fused candle custom ops for the CPU.
//!
//! A window's "switch" is its first maximum in row-major order, as PyTorch
//! picks it. Max-pooling's gradient and max-unpooling both put each value
//! at its window's switch and zeros at the window's other positions (one
//! job, [`scatter_plane`]); max-unpooling's gradient reads each window's
//! switch ([`gather_plane`]). Both write every position of their output.
//! Which position wins is data, so the full windows take no branch on it
//! (a mispredicted branch per window cost more than the rest of
//! unpooling): AVX2 for the scatter, a loop the compiler vectorises for
//! the gather. (With NaN in a window the pick may differ from PyTorch's;
//! training stops at a non-finite loss.) `Autoencoder` uses these on the
//! CPU and candle's own ops on other devices; the tests check both against
//! the definition.

use super::convops::{dims4, slice, tensor, with_data};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Shape};
use candle_core::{Result, Tensor};

/// `max` as one instruction (`f32::max`'s NaN rule takes four).
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The switch of the window `[a b; c d]`: (in the bottom row, in the right
/// column). The later of equal values never wins, so ties go to the first.
#[inline(always)]
fn switch(a: f32, b: f32, c: f32, d: f32) -> (bool, bool) {
    let right_top = b > a;
    let right_bottom = d > c;
    let low = max(c, d) > max(a, b);
    (low, if low { right_bottom } else { right_top })
}

/// `v` where `on`, else zero.
#[inline(always)]
fn keep(on: bool, v: f32) -> f32 {
    if on {
        v
    } else {
        0.0
    }
}

/// Row `y` of an `h x w` plane, or `None` below the plane (the missing
/// second row of an odd height's last windows).
#[inline(always)]
fn row(plane: &[f32], h: usize, w: usize, y: usize) -> Option<&[f32]> {
    (y < h).then(|| &plane[y * w..][..w])
}

/// The switch of a clipped window: the one at column `x` of `r0` and
/// `r1` when one of its sides is missing (the right column when `x` is
/// the last of an odd width, the bottom row when `r1` is `None`); the
/// missing positions never win.
#[inline]
fn clipped_switch(r0: &[f32], r1: Option<&[f32]>, x: usize) -> (bool, bool) {
    let at = |r: Option<&[f32]>, x: usize| {
        r.and_then(|r| r.get(x).copied())
            .unwrap_or(f32::NEG_INFINITY)
    };
    switch(
        at(Some(r0), x),
        at(Some(r0), x + 1),
        at(r1, x),
        at(r1, x + 1),
    )
}

/// The clipped windows of a row pair `w` wide: the last one of an odd
/// width when the pair has both rows, else (an odd height's last row) all.
fn clipped(both_rows: bool, w: usize) -> std::ops::Range<usize> {
    let first = if both_rows { w / 2 } else { 0 };
    first..w.div_ceil(2)
}

/// Each window's value of `vals [ceil(h/2) * ceil(w/2)]` at the switch of
/// the same window of `pre [h * w]`, zeros elsewhere, into `out [h * w]`
/// (every position written).
fn scatter_plane(pre: &[f32], h: usize, w: usize, vals: &[f32], out: &mut [f32]) {
    let wo = w.div_ceil(2);
    for (yo, v) in vals.chunks_exact(wo).enumerate() {
        let (r0, r1) = (&pre[2 * yo * w..][..w], row(pre, h, w, 2 * yo + 1));
        let (o0, rest) = out[2 * yo * w..].split_at_mut(w);
        let mut o1 = r1.map(|_| &mut rest[..w]);
        if let (Some(r1), Some(o1)) = (r1, o1.as_deref_mut()) {
            // the full windows: by AVX2 where the CPU has it, else here
            let done = wide_scatter(r0, r1, v, o0, o1);
            plain_scatter(r0, r1, v, o0, o1, done);
        }
        for xo in clipped(r1.is_some(), w) {
            let x = 2 * xo;
            let (low, right) = clipped_switch(r0, r1, x);
            let v = v[xo];
            o0[x] = keep(!low & !right, v);
            if x + 1 < w {
                o0[x + 1] = keep(!low & right, v);
            }
            if let Some(o1) = o1.as_deref_mut() {
                o1[x] = keep(low & !right, v);
                if x + 1 < w {
                    o1[x + 1] = keep(low & right, v);
                }
            }
        }
    }
}

/// The values of `grad [h * w]` at the switches of the windows of
/// `pre [h * w]`, into `out [ceil(h/2) * ceil(w/2)]`.
#[inline(always)]
fn gather_plane(pre: &[f32], h: usize, w: usize, grad: &[f32], out: &mut [f32]) {
    let wo = w.div_ceil(2);
    let pick = |(low, right): (bool, bool), g0: &[f32], g1: Option<&[f32]>, x: usize| {
        let r = if low { g1.unwrap_or(g0) } else { g0 };
        r[x + right as usize]
    };
    for (yo, o) in out.chunks_exact_mut(wo).enumerate() {
        let (r0, r1) = (&pre[2 * yo * w..][..w], row(pre, h, w, 2 * yo + 1));
        let (g0, g1) = (&grad[2 * yo * w..][..w], row(grad, h, w, 2 * yo + 1));
        if let (Some(r1), Some(g1)) = (r1, g1) {
            for ((((a, c), ga), gc), o) in r0
                .chunks_exact(2)
                .zip(r1.chunks_exact(2))
                .zip(g0.chunks_exact(2))
                .zip(g1.chunks_exact(2))
                .zip(o.iter_mut())
            {
                let (low, right) = switch(a[0], a[1], c[0], c[1]);
                let top = if right { ga[1] } else { ga[0] };
                let bottom = if right { gc[1] } else { gc[0] };
                *o = if low { bottom } else { top };
            }
        }
        for xo in clipped(r1.is_some(), w) {
            o[xo] = pick(clipped_switch(r0, r1, 2 * xo), g0, g1, 2 * xo);
        }
    }
}

/// The maxima of the 2x2 windows of an `h x w` plane into
/// `out [ceil(h/2) * ceil(w/2)]`, row pair by row pair, without branches
/// on the data.
fn pool_plane(plane: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let wo = w.div_ceil(2);
    for (yo, orow) in out.chunks_exact_mut(wo).enumerate() {
        let r0 = &plane[2 * yo * w..][..w];
        // a clipped last window reads its one row twice
        let r1 = row(plane, h, w, 2 * yo + 1).unwrap_or(r0);
        for ((o, a), b) in orow
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            *o = max(max(a[0], a[1]), max(b[0], b[1]));
        }
        if w % 2 == 1 {
            orow[wo - 1] = max(r0[w - 1], r1[w - 1]);
        }
    }
}

/// [`scatter_plane`] for every plane of `pre [planes * h * w]` and
/// `vals [planes * ceil(h/2) * ceil(w/2)]`.
fn scatter(pre: &[f32], h: usize, w: usize, vals: &[f32]) -> Vec<f32> {
    let small = h.div_ceil(2) * w.div_ceil(2);
    let mut out = vec![0f32; pre.len()];
    for ((p, v), o) in pre
        .chunks_exact(h * w)
        .zip(vals.chunks_exact(small))
        .zip(out.chunks_exact_mut(h * w))
    {
        scatter_plane(p, h, w, v, o);
    }
    out
}

/// [`scatter_plane`]'s full windows of one row pair from window `from` on,
/// without AVX2.
fn plain_scatter(r0: &[f32], r1: &[f32], v: &[f32], o0: &mut [f32], o1: &mut [f32], from: usize) {
    for ((((a, c), oa), oc), &v) in r0
        .chunks_exact(2)
        .zip(r1.chunks_exact(2))
        .zip(o0.chunks_exact_mut(2))
        .zip(o1.chunks_exact_mut(2))
        .zip(v)
        .skip(from)
    {
        let (low, right) = switch(a[0], a[1], c[0], c[1]);
        oa[0] = keep(!low & !right, v);
        oa[1] = keep(!low & right, v);
        oc[0] = keep(low & !right, v);
        oc[1] = keep(low & right, v);
    }
}

/// [`scatter_plane`]'s full windows of one row pair (`r0`, `r1` of
/// `pre`, `o0`, `o1` of the output) by AVX2, 8 windows a step and the last
/// step masked, when the CPU has it: returns how many windows it did (all
/// of them, or none). The compiler made a branch of every select of the
/// plain loop, and could not vectorise it.
fn wide_scatter(r0: &[f32], r1: &[f32], v: &[f32], o0: &mut [f32], o1: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2() {
        let n = r0.len() / 2;
        assert!(r1.len() >= 2 * n && v.len() >= n && o0.len() >= 2 * n && o1.len() >= 2 * n);
        // SAFETY: the CPU has AVX2 (checked above), and the slices hold
        // `n` windows (asserted above).
        unsafe {
            wide::scatter_pairs(
                (r0.as_ptr(), r1.as_ptr()),
                v.as_ptr(),
                (o0.as_mut_ptr(), o1.as_mut_ptr()),
                n,
            )
        };
        return n;
    }
    let _ = (r0, r1, v, o0, o1);
    0
}

#[cfg(target_arch = "x86_64")]
mod wide {
    use crate::model::sgemm::avx2::mask;
    use std::arch::x86_64::*;

    /// 16 floats (`lo`, `hi`: 8 pairs) split into their even and their
    /// odd ones, each in the pair order 0 1 4 5 2 3 6 7 (in-lane shuffles).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn split(lo: __m256, hi: __m256) -> (__m256, __m256) {
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
        )
    }

    /// 8 floats in [`split`]'s order (its own inverse: swaps the middle
    /// two 64-bit quarters).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reorder(v: __m256) -> __m256 {
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
    }

    /// The inverse of [`split`]: even and odd floats back into pairs.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn merge(even: __m256, odd: __m256) -> (__m256, __m256) {
        (_mm256_unpacklo_ps(even, odd), _mm256_unpackhi_ps(even, odd))
    }

    /// `n` full windows of a row pair: `v[x]` at the switch of window `x`
    /// of rows `r`, zeros at its other three positions, into rows `o`.
    ///
    /// # Safety
    /// The CPU has AVX2; both `r` and both `o` are valid for `2 n` floats,
    /// `v` for `n`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scatter_pairs(
        r: (*const f32, *const f32),
        v: *const f32,
        o: (*mut f32, *mut f32),
        n: usize,
    ) {
        for x in (0..n).step_by(8) {
            let k = (n - x).min(8);
            // SAFETY: `mask` needs AVX2 (the caller's promise); the masks
            // cover the `2 k` floats of the rows and `k` values left from
            // window `x`, all within the caller's bounds. The second half's
            // pointers (`p + 8`) may lie past a short row's end, so they are
            // formed with `wrapping_add`; their mask is then empty, and a
            // masked-off lane is never read or written.
            unsafe {
                let (lo, hi, m) = (mask(2 * k), mask((2 * k).saturating_sub(8)), mask(k));
                let p = 2 * x;
                let (a, b) = split(
                    _mm256_maskload_ps(r.0.add(p), lo),
                    _mm256_maskload_ps(r.0.wrapping_add(p + 8), hi),
                );
                let (c, d) = split(
                    _mm256_maskload_ps(r.1.add(p), lo),
                    _mm256_maskload_ps(r.1.wrapping_add(p + 8), hi),
                );
                let v = reorder(_mm256_maskload_ps(v.add(x), m));
                // as `switch`: ties go to the first (`max` as vmaxps)
                let low = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_max_ps(c, d), _mm256_max_ps(a, b));
                let right = _mm256_blendv_ps(
                    _mm256_cmp_ps::<_CMP_GT_OQ>(b, a),
                    _mm256_cmp_ps::<_CMP_GT_OQ>(d, c),
                    low,
                );
                let (top, bottom) = (_mm256_andnot_ps(low, v), _mm256_and_ps(low, v));
                for (row, vals) in [(o.0, top), (o.1, bottom)] {
                    let (e, f) = merge(_mm256_andnot_ps(right, vals), _mm256_and_ps(right, vals));
                    _mm256_maskstore_ps(row.add(p), lo, e);
                    _mm256_maskstore_ps(row.wrapping_add(p + 8), hi, f);
                }
            }
        }
    }
}

/// [`gather_plane`] (`avx2` when the CPU has it) for every plane.
fn gather(pre: &[f32], h: usize, w: usize, grad: &[f32]) -> Vec<f32> {
    #[inline(always)]
    fn run(pre: &[f32], h: usize, w: usize, grad: &[f32], out: &mut [f32]) {
        let small = h.div_ceil(2) * w.div_ceil(2);
        for ((p, g), o) in pre
            .chunks_exact(h * w)
            .zip(grad.chunks_exact(h * w))
            .zip(out.chunks_exact_mut(small))
        {
            gather_plane(p, h, w, g, o);
        }
    }
    let mut out = vec![0f32; pre.len() / (h * w) * h.div_ceil(2) * w.div_ceil(2)];
    let o = &mut out[..];
    avx2_or_plain!(run(pre: &[f32], h: usize, w: usize, grad: &[f32], o: &mut [f32]));
    out
}

/// 2x2 max-pooling with stride 2 in ceil mode; the gradient goes to the
/// first maximum of each window.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "fused-max-pool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(l, self.name())?;
        let x = slice(s, l, self.name())?;
        let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = vec![0f32; b * c * ho * wo];
        for (plane, o) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(ho * wo)) {
            pool_plane(plane, h, w, o);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = arg.dims4()?;
        let gx = with_data(arg, |x| with_data(grad, |g| Ok(scatter(x, h, w, g))))?;
        Ok(Some(tensor(gx, &[b, c, h, w], arg)?))
    }
}

/// Max-unpooling as `torch.nn.MaxUnpool2d` does it: each value of
/// `y [b, c, ceil(h/2), ceil(w/2)]` goes to the position that max-pooling
/// `pre [b, c, h, w]` picked, the first maximum of its 2x2 window in
/// row-major order, and zeros go everywhere else; `pre` is a constant for
/// the gradient.
#[derive(Clone, Copy, Debug)]
pub struct Unpool2;

impl CustomOp2 for Unpool2 {
    fn name(&self) -> &'static str {
        "fused-max-unpool2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, hs, ws) = dims4(l1, self.name())?;
        let (b2, c2, h, w) = dims4(l2, self.name())?;
        if (b, c, hs, ws) != (b2, c2, h.div_ceil(2), w.div_ceil(2)) {
            bail!(
                "{}: values {:?} do not fit switches {:?}",
                self.name(),
                l1.shape(),
                l2.shape()
            );
        }
        let y = slice(s1, l1, self.name())?;
        let pre = slice(s2, l2, self.name())?;
        let out = scatter(pre, h, w, y);
        Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))))
    }

    fn bwd(
        &self,
        y: &Tensor,
        pre: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, _, h, w) = pre.dims4()?;
        let gy = with_data(pre, |p| with_data(grad, |g| Ok(gather(p, h, w, g))))?;
        Ok((Some(tensor(gy, y.dims(), y)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{max_abs_diff, rand_tensor as rand, weighted_grads};
    use candle_core::Var;

    /// Pooling only moves values: ours and the reference agree exactly.
    fn same(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        assert_eq!(max_abs_diff(a, b), 0.0, "{what}");
    }

    /// The gradient of max-pooling by its definition: each window's
    /// gradient goes to its first maximum (row-major). The same map is
    /// max-unpooling by its definition, with `grad` as the values.
    fn pool_gradient(x: &[f32], (h, w): (usize, usize), grad: &[f32]) -> Vec<f32> {
        let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = vec![0f32; x.len()];
        for p in 0..x.len() / (h * w) {
            for yo in 0..ho {
                for xo in 0..wo {
                    let mut best: Option<(usize, f32)> = None;
                    for (y, xx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (y, xx) = (2 * yo + y, 2 * xo + xx);
                        if y < h && xx < w {
                            let i = p * h * w + y * w + xx;
                            if best.is_none_or(|(_, v)| x[i] > v) {
                                best = Some((i, x[i]));
                            }
                        }
                    }
                    out[best.unwrap().0] += grad[p * ho * wo + yo * wo + xo];
                }
            }
        }
        out
    }

    #[test]
    fn pooling_and_unpooling_match_their_definitions() {
        // the model's sides, then odd, one-wide and one-tall planes (the
        // clipped windows of ceil mode) and rows longer than 8 windows
        for (h, w) in [
            (28, 28),
            (14, 14),
            (7, 7),
            (5, 9),
            (1, 6),
            (6, 1),
            (1, 1),
            (3, 35),
        ] {
            // ReLU outputs: many exact zeros (ties), as in the model.
            let seed = (h * 100 + w) as u64;
            let pre = Var::from_tensor(&rand(&[2, 3, h, w], seed).relu().unwrap()).unwrap();
            let ours = pre.apply_op1(MaxPool2).unwrap();
            let padded = pre
                .pad_with_zeros(2, 0, h % 2)
                .unwrap()
                .pad_with_zeros(3, 0, w % 2)
                .unwrap();
            same(&ours, &padded.max_pool2d(2).unwrap(), "max-pool values");
            let weights = rand(ours.dims(), 5);
            let g = weighted_grads(&ours, &weights);
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let expected = pool_gradient(&flat(&pre), (h, w), &flat(&weights));
            assert_eq!(
                flat(g.get(&pre).unwrap()),
                expected,
                "max-pool gradient, side {h}x{w}"
            );

            // the candle-op pooling (other devices) computes the same,
            // gradient included, ties and all
            let theirs = super::super::pool_with_candle_ops(&pre).unwrap();
            same(&ours, &theirs, "candle-op max-pool values");
            let g = weighted_grads(&theirs, &weights);
            assert_eq!(
                flat(g.get(&pre).unwrap()),
                expected,
                "candle-op max-pool gradient, side {h}x{w}"
            );

            let y = Var::from_tensor(&rand(ours.dims(), 6)).unwrap();
            let un = y.apply_op2(&pre.detach(), Unpool2).unwrap();
            // by definition: each value at its window's first maximum
            let expected = pool_gradient(&flat(&pre), (h, w), &flat(&y));
            let wrong = flat(&un)
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                wrong, 0,
                "unpool values, side {h}x{w}: {wrong} positions differ"
            );
            let reference = super::super::unpool_with_candle_ops(&y, &pre).unwrap();
            same(&un, &reference, "candle-op unpool values");
            let weights = rand(un.dims(), 7);
            let g1 = weighted_grads(&un, &weights);
            let g2 = weighted_grads(&reference, &weights);
            same(g1.get(&y).unwrap(), g2.get(&y).unwrap(), "unpool gradient");
        }
    }

    #[test]
    fn the_avx2_scatter_matches_the_plain_one() {
        if !crate::cpu::has_avx2() {
            return;
        }
        for n in 1..=19 {
            // three levels only, scrambled: ties in every pattern
            let level = |i: usize| {
                let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                (h % 3) as f32 - 1.0
            };
            let r0: Vec<f32> = (0..2 * n).map(|i| level(i + 100 * n)).collect();
            let r1: Vec<f32> = (0..2 * n).map(|i| level(i + 100 * n + 50)).collect();
            let v: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
            let (mut a0, mut a1) = (vec![9f32; 2 * n], vec![9f32; 2 * n]);
            let (mut b0, mut b1) = (vec![7f32; 2 * n], vec![7f32; 2 * n]);
            assert_eq!(wide_scatter(&r0, &r1, &v, &mut a0, &mut a1), n);
            plain_scatter(&r0, &r1, &v, &mut b0, &mut b1, 0);
            assert_eq!((&a0, &a1), (&b0, &b1), "{n} windows");
            // each window holds its value once
            for x in 0..n {
                let sum = a0[2 * x] + a0[2 * x + 1] + a1[2 * x] + a1[2 * x + 1];
                assert_eq!(sum, v[x], "window {x} of {n}");
            }
        }
    }
}
