//! The layers of the convolutional autoencoders as fused candle custom ops
//! for the CPU: 3x3 convolution and transposed convolution (bias and an
//! optional ReLU folded in); the pooling is in [`super::poolops`].
//!
//! Each runs forward and backward as one im2col/col2im pass plus a single
//! matrix product over the whole batch, on plain buffers, where candle's CPU
//! backend takes a dozen allocating element-wise ops (its transposed
//! convolution and every convolution's input gradient are direct loops of
//! dot products). `Autoencoder` uses them on the CPU and candle's own ops on
//! other devices; the tests at the end check both give the same values and
//! gradients.

use super::sgemm::View;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Storage};
use candle_core::{Result, Tensor};
use std::cell::RefCell;

/// Kernel size of every convolution of the study's models.
const K: usize = 3;
const KK: usize = K * K;

/// Spatial geometry of a 3x3 convolution between a "big" image and a
/// "small" one: the convolution maps big to small, the transposed
/// convolution small to big.
#[derive(Clone, Copy, Debug)]
struct Geom {
    hb: usize,
    wb: usize,
    hs: usize,
    ws: usize,
    stride: usize,
    pad: usize,
}

impl Geom {
    /// For a convolution of a `h x w` input.
    fn conv(h: usize, w: usize, stride: usize, pad: usize) -> Geom {
        Geom {
            hb: h,
            wb: w,
            hs: (h + 2 * pad - K) / stride + 1,
            ws: (w + 2 * pad - K) / stride + 1,
            stride,
            pad,
        }
    }

    /// For a transposed convolution of a `h x w` input.
    fn transposed(h: usize, w: usize, stride: usize, pad: usize, out_pad: usize) -> Geom {
        Geom {
            hb: (h - 1) * stride + K + out_pad - 2 * pad,
            wb: (w - 1) * stride + K + out_pad - 2 * pad,
            hs: h,
            ws: w,
            stride,
            pad,
        }
    }

    fn big(&self) -> usize {
        self.hb * self.wb
    }

    fn small(&self) -> usize {
        self.hs * self.ws
    }
}

thread_local! {
    /// Buffers of finished [`Scratch`]es, kept for the next op on this thread.
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A reused working buffer of `n` floats with stale contents: every user
/// writes all of it before reading.
pub(super) struct Scratch {
    buf: Vec<f32>,
    n: usize,
}

impl Scratch {
    pub(super) fn new(n: usize) -> Scratch {
        let mut buf = SCRATCH
            .with(|s| {
                let mut s = s.borrow_mut();
                // the largest kept buffer, so big ones are not grown twice
                let i = (0..s.len()).max_by_key(|&i| s[i].len())?;
                Some(s.swap_remove(i))
            })
            .unwrap_or_default();
        if buf.len() < n {
            // (cleared first: growing need not copy the stale contents)
            buf.clear();
            buf.resize(n, 0.0);
        }
        Scratch { buf, n }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.buf);
        SCRATCH.with(|s| s.borrow_mut().push(v));
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.n]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.n]
    }
}

impl Geom {
    /// The range of small coordinates whose kernel offset `k` lands inside
    /// a big side of length `limit` (the others read the zero padding).
    #[inline]
    fn valid(&self, k: usize, small: usize, limit: usize) -> std::ops::Range<usize> {
        let lo = self.pad.saturating_sub(k).div_ceil(self.stride);
        let hi = (limit + self.pad).saturating_sub(k).div_ceil(self.stride);
        lo.min(small)..hi.min(small).max(lo.min(small))
    }
}

/// `big [b, c, hb, wb]` to `col [c * 9, b * hs * ws]`, every element written.
fn im2col(big: &[f32], b: usize, c: usize, g: Geom, col: &mut [f32]) {
    let n_cols = b * g.small();
    debug_assert_eq!(col.len(), c * KK * n_cols);
    for ci in 0..c {
        for ky in 0..K {
            let ys_ok = g.valid(ky, g.hs, g.hb);
            for kx in 0..K {
                let xs_ok = g.valid(kx, g.ws, g.wb);
                let row = &mut col[((ci * K + ky) * K + kx) * n_cols..][..n_cols];
                for n in 0..b {
                    let src = &big[(n * c + ci) * g.big()..][..g.big()];
                    let dst = &mut row[n * g.small()..][..g.small()];
                    if g.stride == 1 && g.hs == g.hb && g.ws == g.wb {
                        shifted_copy(src, dst, g.wb, ky, kx, g.pad, &ys_ok, &xs_ok);
                        continue;
                    }
                    for (ys, dst_row) in dst.chunks_exact_mut(g.ws).enumerate() {
                        if !ys_ok.contains(&ys) {
                            dst_row.fill(0.0);
                            continue;
                        }
                        let y = ys * g.stride + ky - g.pad;
                        let src_row = &src[y * g.wb..][..g.wb];
                        dst_row[..xs_ok.start].fill(0.0);
                        dst_row[xs_ok.end..].fill(0.0);
                        let x0 = xs_ok.start * g.stride + kx - g.pad;
                        if g.stride == 1 {
                            dst_row[xs_ok.clone()].copy_from_slice(&src_row[x0..x0 + xs_ok.len()]);
                        } else {
                            for (d, x) in dst_row[xs_ok.clone()]
                                .iter_mut()
                                .zip((x0..).step_by(g.stride))
                            {
                                *d = src_row[x];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One row of [`im2col`] for a stride-1 convolution that keeps the size
/// (`w` wide): the plane shifted by the kernel offset, as one contiguous
/// copy (a row-by-row copy made ~50,000 calls of 28 floats per forward
/// pass of 8 images), then the rows and columns that read the padding set
/// to zero (the copy wrapped those around from the neighbouring row).
#[allow(clippy::too_many_arguments)]
#[inline]
fn shifted_copy(
    src: &[f32],
    dst: &mut [f32],
    w: usize,
    ky: usize,
    kx: usize,
    pad: usize,
    rows: &std::ops::Range<usize>,
    cols: &std::ops::Range<usize>,
) {
    let len = dst.len();
    // dst[i] = src[i + off] for the valid positions
    let off = (ky * w + kx) as isize - (pad * w + pad) as isize;
    let lo = (rows.start * w).max((-off).max(0) as usize);
    let hi = (rows.end * w).min((len as isize - off).max(0) as usize);
    dst[..lo].fill(0.0);
    if lo < hi {
        let s = (lo as isize + off) as usize;
        dst[lo..hi].copy_from_slice(&src[s..s + (hi - lo)]);
    }
    dst[hi.max(lo)..].fill(0.0);
    // column by column (a zero or one float per row: as rows, each would
    // be a call to memset)
    for x in (0..cols.start).chain(cols.end..w) {
        for r in rows.clone() {
            dst[r * w + x] = 0.0;
        }
    }
}

/// The adjoint of [`im2col`]: `col [c * 9, b * hs * ws]` summed into
/// `big [b, c, hb, wb]`.
fn col2im_into(col: &[f32], b: usize, c: usize, g: Geom, big: &mut [f32]) {
    let n_cols = b * g.small();
    debug_assert_eq!(big.len(), b * c * g.big());
    for ci in 0..c {
        for ky in 0..K {
            let ys_ok = g.valid(ky, g.hs, g.hb);
            for kx in 0..K {
                let xs_ok = g.valid(kx, g.ws, g.wb);
                let x0 = xs_ok.start * g.stride + kx;
                let row = &col[((ci * K + ky) * K + kx) * n_cols..][..n_cols];
                for n in 0..b {
                    let dst = &mut big[(n * c + ci) * g.big()..][..g.big()];
                    let src = &row[n * g.small()..][..g.small()];
                    for ys in ys_ok.clone() {
                        let y = ys * g.stride + ky - g.pad;
                        let dst_row = &mut dst[y * g.wb..][..g.wb];
                        let src_row = &src[ys * g.ws..][xs_ok.clone()];
                        let x0 = x0 - g.pad;
                        if g.stride == 1 {
                            for (d, s) in dst_row[x0..x0 + src_row.len()].iter_mut().zip(src_row) {
                                *d += s;
                            }
                        } else {
                            for (s, x) in src_row.iter().zip((x0..).step_by(g.stride)) {
                                dst_row[x] += s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out [m, n] = a [m, k] x b [k, n]` (row-major `out`, overwritten, or
/// added to when `acc`) on this thread, by [`super::sgemm`]. The caller
/// guarantees the views cover valid memory of those shapes.
pub(super) fn matmul_into(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: &mut [f32],
    acc: bool,
) {
    matmul_sparse_into(m, k, n, a, b, out, acc, None)
}

/// [`matmul_into`] where the operand `sparse` names, if any, is mostly
/// zeros (a layer's input batch): see [`super::sgemm::matmul_sparse`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_sparse_into(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: &mut [f32],
    acc: bool,
    sparse: Option<super::sgemm::Sparse>,
) {
    assert_eq!(out.len(), m * n);
    // SAFETY: `out` is an m x n buffer (checked above); `a` and `b` come
    // from slices whose lengths the callers size for these shapes.
    unsafe {
        super::sgemm::matmul_sparse(m, k, n, a, b, out.as_mut_ptr(), n, acc, sparse);
    }
}

/// `a x b` (`m x n`, as [`matmul_into`]; as [`matmul_sparse_into`] when
/// `sparse` names a mostly-zero operand) in a new vector that is not zeroed
/// first: a layer's output is 400 KB at batch 128, and zeroing it was 1.5%
/// of a dense training step.
pub(super) fn matmul_new(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    sparse: Option<super::sgemm::Sparse>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: the views cover valid memory of these shapes (the callers
    // size them, as for `matmul_into`); `out` has room for m x n, and a
    // product that does not accumulate writes every one of them before it
    // reads any (each path stores its first block of depth, or zeros when
    // the depth is 0), so all are initialised when the length is set.
    unsafe {
        super::sgemm::matmul_sparse(m, k, n, a, b, out.as_mut_ptr(), n, false, sparse);
        out.set_len(m * n);
    }
    out
}

pub(super) fn matmul_scratch(m: usize, k: usize, n: usize, a: View, b: View) -> Scratch {
    let mut out = Scratch::new(m * n);
    matmul_into(m, k, n, a, b, &mut out, false);
    out
}

/// `[b, c, p]` <-> `[c, b * p]`.
fn batch_to_channels(x: &[f32], b: usize, c: usize, p: usize) -> Scratch {
    let mut out = Scratch::new(x.len());
    for n in 0..b {
        for ci in 0..c {
            out[(ci * b + n) * p..][..p].copy_from_slice(&x[(n * c + ci) * p..][..p]);
        }
    }
    out
}

fn channels_to_batch_into(x: &[f32], b: usize, c: usize, p: usize, out: &mut [f32]) {
    for n in 0..b {
        for ci in 0..c {
            out[(n * c + ci) * p..][..p].copy_from_slice(&x[(ci * b + n) * p..][..p]);
        }
    }
}

/// Images per chunk of a convolution's work, so that a column buffer of
/// `rows` rows stays near 2 MB however large the batch (inference runs
/// batches of a thousand images).
fn chunk_images(rows: usize, small: usize, b: usize) -> usize {
    const TARGET_FLOATS: usize = 1 << 19;
    (TARGET_FLOATS / (rows * small).max(1)).clamp(1, b.max(1))
}

/// A contiguous f32 view of a CPU storage.
pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: input is not contiguous")
    };
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Runs `f` on the contiguous f32 data of a CPU tensor.
pub(super) fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("fused conv ops run on the CPU only")
    };
    f(slice(cpu, layout, "fused conv op")?)
}

pub(super) fn tensor(data: Vec<f32>, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(data, shape, like.device())
}

/// Adds the bias per channel and applies the ReLU if asked, in place.
fn bias_act(out: &mut [f32], bias: &[f32], b: usize, p: usize, relu: bool) {
    let c = bias.len();
    for n in 0..b {
        for (ci, &bv) in bias.iter().enumerate() {
            for v in &mut out[(n * c + ci) * p..][..p] {
                *v += bv;
                if relu && *v < 0.0 {
                    *v = 0.0;
                }
            }
        }
    }
}

/// The gradient at the pre-activation (`grad` masked where the ReLU output
/// is zero) and the bias gradient, both from `[b, c, p]` tensors, in one
/// pass (compiled for AVX2 where the CPU has it).
fn grad_pre_act(
    grad: &[f32],
    out: &[f32],
    b: usize,
    c: usize,
    p: usize,
    relu: bool,
) -> (Scratch, Vec<f32>) {
    #[inline(always)]
    fn run(grad: &[f32], out: &[f32], g: &mut [f32], gb: &mut [f32], p: usize, relu: bool) {
        let c = gb.len();
        let planes = grad.chunks_exact(p).zip(out.chunks_exact(p));
        for (i, ((gp, op), dst)) in planes.zip(g.chunks_exact_mut(p)).enumerate() {
            let pass = |gv: f32, o: f32| if !relu || o > 0.0 { gv } else { 0.0 };
            // eight running sums: one would be a chain of dependent adds
            let mut lanes = [0f32; 8];
            let mut dst8 = dst.chunks_exact_mut(8);
            for ((g8, o8), d8) in gp.chunks_exact(8).zip(op.chunks_exact(8)).zip(&mut dst8) {
                for l in 0..8 {
                    d8[l] = pass(g8[l], o8[l]);
                    lanes[l] += d8[l];
                }
            }
            let tail = p - p % 8;
            for ((&gv, &o), d) in gp[tail..]
                .iter()
                .zip(&op[tail..])
                .zip(dst8.into_remainder())
            {
                *d = pass(gv, o);
                lanes[0] += *d;
            }
            gb[i % c] += lanes.iter().sum::<f32>();
        }
    }
    let mut g = Scratch::new(grad.len());
    let mut gb = vec![0f32; c];
    debug_assert_eq!(grad.len(), b * c * p);
    let (gs, gbs) = (&mut g[..], &mut gb[..]);
    avx2_or_plain!(run(grad: &[f32], out: &[f32], gs: &mut [f32], gbs: &mut [f32], p: usize, relu: bool));
    (g, gb)
}

pub(super) fn dims4(l: &Layout, what: &str) -> Result<(usize, usize, usize, usize)> {
    match l.shape().dims() {
        &[b, c, h, w] => Ok((b, c, h, w)),
        d => bail!("{what}: expected a [b, c, h, w] input, got {d:?}"),
    }
}

/// A 3x3 convolution (`weight [out, in, 3, 3]`) or transposed convolution
/// (`weight [in, out, 3, 3]`), plus bias and an optional ReLU.
#[derive(Clone, Copy, Debug)]
pub struct Conv3x3 {
    pub transposed: bool,
    pub stride: usize,
    pub pad: usize,
    /// Extra rows and columns at the end of a transposed convolution's output.
    pub out_pad: usize,
    pub relu: bool,
}

impl Conv3x3 {
    /// The same layer through candle's own ops (devices other than the
    /// CPU, and the reference the fused op is tested against).
    pub fn with_candle_ops(self, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let y = if self.transposed {
            x.conv_transpose2d(weight, self.pad, self.out_pad, self.stride, 1)?
        } else {
            x.conv2d(weight, self.pad, self.stride, 1, 1)?
        };
        let c = bias.dims1()?;
        let y = y.broadcast_add(&bias.reshape((1, c, 1, 1))?)?;
        if self.relu {
            super::relu(&y)
        } else {
            Ok(y)
        }
    }

    /// Whether the layer runs as a direct convolution
    /// ([`super::convdirect`]) rather than im2col and a product.
    fn direct(&self, g: Geom, cin: usize, cout: usize) -> bool {
        let same = self.stride == 1 && self.pad == 1 && g.hs == g.hb && g.ws == g.wb;
        !self.transposed && same && super::convdirect::suits(cin, cout)
    }

    fn geom(&self, h: usize, w: usize) -> Geom {
        if self.transposed {
            Geom::transposed(h, w, self.stride, self.pad, self.out_pad)
        } else {
            Geom::conv(h, w, self.stride, self.pad)
        }
    }

    /// (in channels, out channels) of a weight `[a, b, 3, 3]`.
    fn channels(&self, wshape: &[usize]) -> (usize, usize) {
        if self.transposed {
            (wshape[0], wshape[1])
        } else {
            (wshape[1], wshape[0])
        }
    }

    /// Forward on raw buffers: `x [b, cin, h, w]` to `[b, cout, h', w']`.
    fn forward(
        &self,
        x: &[f32],
        (b, cin, h, w): (usize, usize, usize, usize),
        weight: &[f32],
        cout: usize,
        bias: &[f32],
    ) -> (Vec<f32>, [usize; 4]) {
        let g = self.geom(h, w);
        let (ho, wo) = if self.transposed {
            (g.hb, g.wb)
        } else {
            (g.hs, g.ws)
        };
        let p_out = ho * wo;
        let mut out = vec![0f32; b * cout * p_out];
        if self.direct(g, cin, cout) {
            super::convdirect::forward(x, (b, cin, h, w), weight, cout, &mut out);
        } else {
            self.forward_by_products(x, (b, cin, h * w), weight, cout, g, &mut out);
        }
        bias_act(&mut out, bias, b, p_out, self.relu);
        (out, [b, cout, ho, wo])
    }

    /// The forward pass without bias into `out` (zeros: the transposed
    /// convolution's col2im adds to it) as im2col (col2im for the
    /// transposed convolution) and one product per chunk of images.
    fn forward_by_products(
        &self,
        x: &[f32],
        (b, cin, p_in): (usize, usize, usize),
        weight: &[f32],
        cout: usize,
        g: Geom,
        out: &mut [f32],
    ) {
        let p_out = out.len() / (b * cout);
        let rows = if self.transposed { cout } else { cin } * KK;
        let chunk = chunk_images(rows, g.small(), b);
        for n0 in (0..b).step_by(chunk) {
            let nb = chunk.min(b - n0);
            let x = &x[n0 * cin * p_in..][..nb * cin * p_in];
            let out = &mut out[n0 * cout * p_out..][..nb * cout * p_out];
            let cols = nb * g.small();
            if self.transposed {
                // col [cout*9, cols] = W^T [cout*9, cin] x X [cin, cols]
                let xs = batch_to_channels(x, nb, cin, g.small());
                let col = matmul_scratch(
                    cout * KK,
                    cin,
                    cols,
                    View::cols(weight, cout * KK),
                    View::rows(&xs, cols),
                );
                col2im_into(&col, nb, cout, g, out);
            } else {
                // Y [cout, cols] = W [cout, cin*9] x col [cin*9, cols]
                let mut col = Scratch::new(cin * KK * cols);
                im2col(x, nb, cin, g, &mut col);
                let y = matmul_scratch(
                    cout,
                    cin * KK,
                    cols,
                    View::rows(weight, cin * KK),
                    View::rows(&col, cols),
                );
                channels_to_batch_into(&y, nb, cout, g.small(), out);
            }
        }
    }
}

impl CustomOp3 for Conv3x3 {
    fn name(&self) -> &'static str {
        if self.transposed {
            "fused-conv-transpose3x3"
        } else {
            "fused-conv3x3"
        }
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
        let dims = dims4(l1, self.name())?;
        let wshape = l2.shape().dims();
        if wshape.len() != 4 || wshape[2] != K || wshape[3] != K {
            bail!("{}: expected a 3x3 kernel, got {wshape:?}", self.name());
        }
        let (cin, cout) = self.channels(wshape);
        if cin != dims.1 || l3.shape().elem_count() != cout {
            bail!(
                "{}: input {:?}, weight {wshape:?} and bias {:?} disagree",
                self.name(),
                l1.shape(),
                l3.shape()
            );
        }
        let x = slice(s1, l1, self.name())?;
        let weight = slice(s2, l2, self.name())?;
        let bias = slice(s3, l3, self.name())?;
        let (out, shape) = self.forward(x, dims, weight, cout, bias);
        Ok((CpuStorage::F32(out), Shape::from(shape.to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, cin, h, w) = x.dims4()?;
        let wshape = weight.dims().to_vec();
        let (_, cout) = self.channels(&wshape);
        let g = self.geom(h, w);
        let need_x = x.track_op();
        let (gx, gw, gb) = with_data(x, |xd| {
            with_data(weight, |wd| {
                with_data(res, |out| {
                    with_data(grad, |gd| {
                        let p_out = out.len() / (b * cout);
                        let (gy, gb) = grad_pre_act(gd, out, b, cout, p_out, self.relu);
                        Ok(self.backward(xd, (b, cin), wd, cout, g, &gy, need_x, gb))
                    })
                })
            })
        })?;
        let gx = gx.map(|d| tensor(d, &[b, cin, h, w], x)).transpose()?;
        Ok((
            gx,
            Some(tensor(gw, &wshape, weight)?),
            Some(tensor(gb, &[cout], weight)?),
        ))
    }
}

type Grads = (Option<Vec<f32>>, Vec<f32>, Vec<f32>);

impl Conv3x3 {
    /// Gradients of input, weight and bias from `gy`, the gradient at the
    /// pre-activation output.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        x: &[f32],
        (b, cin): (usize, usize),
        weight: &[f32],
        cout: usize,
        g: Geom,
        gy: &[f32],
        need_x: bool,
        gb: Vec<f32>,
    ) -> Grads {
        let (p_x, p_y) = if self.transposed {
            (g.small(), g.big())
        } else {
            (g.big(), g.small())
        };
        let mut gw = vec![0f32; cin * cout * KK];
        let mut gx = need_x.then(|| vec![0f32; b * cin * p_x]);
        if self.direct(g, cin, cout) {
            let dims = (b, cin, g.hb, g.wb);
            super::convdirect::backward(x, dims, weight, cout, gy, &mut gw, gx.as_deref_mut());
            return (gx, gw, gb);
        }
        let chunk = chunk_images(cin.max(cout) * KK, g.small(), b);
        for n0 in (0..b).step_by(chunk) {
            let nb = chunk.min(b - n0);
            let x = &x[n0 * cin * p_x..][..nb * cin * p_x];
            let gy = &gy[n0 * cout * p_y..][..nb * cout * p_y];
            let gx = gx
                .as_mut()
                .map(|gx| &mut gx[n0 * cin * p_x..][..nb * cin * p_x]);
            let (cols, acc) = (nb * g.small(), n0 > 0);
            if self.transposed {
                // gcol [cout*9, cols] = im2col(gy); X [cin, cols]
                let mut gcol = Scratch::new(cout * KK * cols);
                im2col(gy, nb, cout, g, &mut gcol);
                let xs = batch_to_channels(x, nb, cin, g.small());
                // gW [cin, cout*9] += X [cin, cols] x gcol^T [cols, cout*9]
                let (xm, gm) = (View::rows(&xs, cols), View::cols(&gcol, cols));
                matmul_into(cin, cols, cout * KK, xm, gm, &mut gw, acc);
                if let Some(gx) = gx {
                    // gX [cin, cols] = W [cin, cout*9] x gcol [cout*9, cols]
                    let (wm, gm) = (View::rows(weight, cout * KK), View::rows(&gcol, cols));
                    let gxs = matmul_scratch(cin, cout * KK, cols, wm, gm);
                    channels_to_batch_into(&gxs, nb, cin, g.small(), gx);
                }
            } else {
                let gys = batch_to_channels(gy, nb, cout, g.small());
                let mut col = Scratch::new(cin * KK * cols);
                im2col(x, nb, cin, g, &mut col);
                // gW [cout, cin*9] += gY [cout, cols] x col^T [cols, cin*9]
                let (gm, cm) = (View::rows(&gys, cols), View::cols(&col, cols));
                matmul_into(cout, cols, cin * KK, gm, cm, &mut gw, acc);
                if let Some(gx) = gx {
                    // gcol [cin*9, cols] = W^T [cin*9, cout] x gY [cout, cols]
                    let (wm, gm) = (View::cols(weight, cin * KK), View::rows(&gys, cols));
                    let gcol = matmul_scratch(cin * KK, cout, cols, wm, gm);
                    col2im_into(&gcol, nb, cin, g, gx);
                }
            }
        }
        (gx, gw, gb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{max_abs_diff, rand_tensor as rand, weighted_grads};
    use candle_core::Var;

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let d = max_abs_diff(a, b);
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "{what}: differs by {d} (scale {scale})"
        );
    }

    #[test]
    fn convolutions_match_candle_values_and_gradients() {
        let cases = [
            // (transposed, stride, pad, out_pad, relu, cin, cout, h, w)
            (false, 1, 1, 0, true, 1, 8, 28, 28),
            (false, 1, 1, 0, false, 16, 8, 7, 7),
            // direct (one channel on a side), odd and unequal sides too
            (false, 1, 1, 0, false, 8, 1, 28, 28),
            (false, 1, 1, 0, true, 5, 1, 9, 13),
            (false, 1, 1, 0, true, 1, 3, 6, 1),
            (false, 2, 1, 0, true, 3, 4, 9, 9),
            (true, 2, 0, 0, true, 16, 16, 4, 4),
            (true, 2, 1, 1, true, 16, 8, 7, 7),
            (true, 2, 1, 1, false, 8, 1, 14, 14),
            (true, 1, 1, 0, true, 16, 8, 14, 14),
        ];
        for (i, &(transposed, stride, pad, out_pad, relu, cin, cout, h, w)) in
            cases.iter().enumerate()
        {
            let op = Conv3x3 {
                transposed,
                stride,
                pad,
                out_pad,
                relu,
            };
            // the cases with one channel on a side check the direct path
            let direct = !transposed && stride == 1 && cin.min(cout) == 1;
            assert_eq!(op.direct(op.geom(h, w), cin, cout), direct, "case {i}");
            let seed = i as u64 * 10;
            let x = Var::from_tensor(&rand(&[3, cin, h, w], seed)).unwrap();
            let wshape = if transposed {
                [cin, cout, 3, 3]
            } else {
                [cout, cin, 3, 3]
            };
            let w = Var::from_tensor(&rand(&wshape, seed + 1)).unwrap();
            let b = Var::from_tensor(&rand(&[cout], seed + 2)).unwrap();
            let ours = x.apply_op3(&w, &b, op).unwrap();
            let theirs = op.with_candle_ops(&x, &w, &b).unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            close(&ours, &theirs, &format!("case {i} values"));
            // A loss that weighs every output differently.
            let weights = rand(ours.dims(), seed + 3);
            let g1 = weighted_grads(&ours, &weights);
            let g2 = weighted_grads(&theirs, &weights);
            for (name, v) in [("input", &x), ("weight", &w), ("bias", &b)] {
                close(
                    g1.get(v).unwrap(),
                    g2.get(v).unwrap(),
                    &format!("case {i} {name} gradient"),
                );
            }
        }
    }
}
