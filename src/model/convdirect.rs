//! Direct 3x3 convolutions (stride 1, padding 1, the size kept) for the
//! layers with one channel on a side: the unpooling decoder's last layer
//! (8 -> 1) and the encoder's first (1 -> 8).
//!
//! im2col makes nine copies of a layer's input, and for these layers the
//! product that follows is a matrix-vector product that reads them once:
//! copying, not arithmetic, was the time (the 8 -> 1 layer's columns are
//! 72 x 784 floats an image, its input 8 x 784). Here each image's planes
//! are padded with a zero border, `w + 2` wide, so that every tap of the
//! kernel is one shifted read of the whole padded plane, and the outputs
//! are computed on that wider grid (two columns a row thrown away).
//!
//! Sums run in a fixed order without fused multiply-adds, so both builds
//! (AVX2 and plain) give the same numbers; the tests in `convops` check
//! values and gradients against candle's ops.

use super::convops::Scratch;

/// Whether a layer of `cin` -> `cout` channels runs here: one channel on
/// a side and at most 16 on the other (the taps are not blocked over
/// channels, so wide layers are faster as products). It must be a
/// stride-1, padding-1 convolution that keeps the size.
pub(super) fn suits(cin: usize, cout: usize) -> bool {
    cin.min(cout) == 1 && cin.max(cout) <= 16
}

/// The geometry of an `h x w` plane padded by one: `w2` wide, `len`
/// floats (two more than the padded plane, so every tap of every output
/// on the wide grid reads inside it); outputs on the wide grid: `n`.
#[derive(Clone, Copy)]
struct Padded {
    h: usize,
    w: usize,
    w2: usize,
    len: usize,
    n: usize,
}

impl Padded {
    fn new(h: usize, w: usize) -> Padded {
        let w2 = w + 2;
        Padded {
            h,
            w,
            w2,
            len: (h + 2) * w2 + 2,
            n: h * w2,
        }
    }

    /// `planes` planes of `src [planes * h * w]` padded into `dst`.
    fn pad(&self, src: &[f32], planes: usize, dst: &mut [f32]) {
        let (h, w, w2) = (self.h, self.w, self.w2);
        for (s, d) in src
            .chunks_exact(h * w)
            .zip(dst.chunks_exact_mut(self.len))
            .take(planes)
        {
            d.fill(0.0);
            for (y, row) in s.chunks_exact(w).enumerate() {
                d[(y + 1) * w2 + 1..][..w].copy_from_slice(row);
            }
        }
    }

    /// The wide grid's outputs `wide [n]` stored in the plane `out [h * w]`
    /// (its two extra columns a row dropped).
    fn unpad(&self, wide: &[f32], out: &mut [f32]) {
        for (o, r) in out.chunks_exact_mut(self.w).zip(wide.chunks(self.w2)) {
            o.copy_from_slice(&r[..self.w]);
        }
    }

    /// The offsets of the nine taps (row-major) in the padded plane.
    fn offsets(&self) -> [usize; 9] {
        std::array::from_fn(|k| (k / 3) * self.w2 + k % 3)
    }
}

/// `acc[i] += sum_k wk[k] * p[i + off[k]]` over the wide grid.
#[inline(always)]
fn taps(acc: &mut [f32], p: &[f32], off: &[usize; 9], wk: &[f32; 9]) {
    let n = acc.len();
    let s: [&[f32]; 9] = std::array::from_fn(|k| &p[off[k]..][..n]);
    for (i, a) in acc.iter_mut().enumerate() {
        let mut v = *a;
        for k in 0..9 {
            v += wk[k] * s[k][i];
        }
        *a = v;
    }
}

/// `gw[k] += sum_i g[i] * p[i + off[k]]` for the nine taps.
#[inline(always)]
fn tap_dots(g: &[f32], p: &[f32], off: &[usize; 9], gw: &mut [f32]) {
    for (k, s) in gw.iter_mut().zip(off) {
        *k += dot(g, &p[*s..][..g.len()]);
    }
}

/// `a . b` in eight running sums (one would be a chain of dependent adds),
/// a loop the compiler vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The nine weights of kernel `(co, ci)` of `weight [cout, cin, 3, 3]`,
/// flipped (for the input gradient) or not.
fn kernel(weight: &[f32], cin: usize, co: usize, ci: usize, flip: bool) -> [f32; 9] {
    let k = &weight[(co * cin + ci) * 9..][..9];
    std::array::from_fn(|t| if flip { k[8 - t] } else { k[t] })
}

/// `out [b, cout, h, w]` = the convolution of `x [b, cin, h, w]` by
/// `weight [cout, cin, 3, 3]` (no bias).
pub(super) fn forward(
    x: &[f32],
    (b, cin, h, w): (usize, usize, usize, usize),
    weight: &[f32],
    cout: usize,
    out: &mut [f32],
) {
    #[inline(always)]
    fn run(x: &[f32], dims: [usize; 5], weight: &[f32], out: &mut [f32]) {
        let [b, cin, h, w, cout] = dims;
        let g = Padded::new(h, w);
        let off = g.offsets();
        let mut pads = Scratch::new(cin * g.len);
        let mut acc = Scratch::new(g.n);
        for n in 0..b {
            g.pad(&x[n * cin * h * w..], cin, &mut pads);
            for co in 0..cout {
                acc.fill(0.0);
                for ci in 0..cin {
                    let p = &pads[ci * g.len..][..g.len];
                    taps(&mut acc, p, &off, &kernel(weight, cin, co, ci, false));
                }
                g.unpad(&acc, &mut out[(n * cout + co) * h * w..][..h * w]);
            }
        }
    }
    let dims = [b, cin, h, w, cout];
    avx2_or_plain!(run(x: &[f32], dims: [usize; 5], weight: &[f32], out: &mut [f32]))
}

/// The weight gradient `gw [cout, cin, 3, 3]` (added to) and, when asked,
/// the input gradient `gx [b, cin, h, w]` (overwritten) from `gy
/// [b, cout, h, w]`, the gradient at the pre-activation output.
pub(super) fn backward(
    x: &[f32],
    (b, cin, h, w): (usize, usize, usize, usize),
    weight: &[f32],
    cout: usize,
    gy: &[f32],
    gw: &mut [f32],
    gx: Option<&mut [f32]>,
) {
    #[inline(always)]
    fn run(
        x: &[f32],
        dims: [usize; 5],
        weight: &[f32],
        gy: &[f32],
        gw: &mut [f32],
        mut gx: Option<&mut [f32]>,
    ) {
        let [b, cin, h, w, cout] = dims;
        let g = Padded::new(h, w);
        let off = g.offsets();
        let mut pads = Scratch::new(cin * g.len);
        let mut gpads = Scratch::new(cout * g.len);
        let mut acc = Scratch::new(g.n);
        for n in 0..b {
            g.pad(&x[n * cin * h * w..], cin, &mut pads);
            g.pad(&gy[n * cout * h * w..], cout, &mut gpads);
            for co in 0..cout {
                // the gradient on the wide grid, zeros in its two extra
                // columns: the padded plane from its first inner position
                let gwide = &gpads[co * g.len + g.w2 + 1..][..g.n];
                for ci in 0..cin {
                    let p = &pads[ci * g.len..][..g.len];
                    tap_dots(gwide, p, &off, &mut gw[(co * cin + ci) * 9..][..9]);
                }
            }
            let Some(gx) = gx.as_deref_mut() else {
                continue;
            };
            // the input gradient: the padded output gradient through the
            // flipped kernels
            for ci in 0..cin {
                acc.fill(0.0);
                for co in 0..cout {
                    let p = &gpads[co * g.len..][..g.len];
                    taps(&mut acc, p, &off, &kernel(weight, cin, co, ci, true));
                }
                g.unpad(&acc, &mut gx[(n * cin + ci) * h * w..][..h * w]);
            }
        }
    }
    let dims = [b, cin, h, w, cout];
    avx2_or_plain!(run(
        x: &[f32],
        dims: [usize; 5],
        weight: &[f32],
        gy: &[f32],
        gw: &mut [f32],
        gx: Option<&mut [f32]>
    ))
}
