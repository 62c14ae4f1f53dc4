//! Products whose one operand is mostly zeros: a dense layer's input
//! batch, in its forward pass (`x W^T`) and in its weight gradient
//! (`dz^T x`). 81% of MNIST's pixels are 0, and in a batch of 128 digits
//! 16 neighbouring pixels are all blank in 42% of the images, and 16
//! images share a blank pixel at 47% of the pixels.
//!
//! The sparse operand is made the vector side of the product (the forward
//! pass is computed as its transpose), cut into strips of 16 columns, and
//! each strip lists the depths `p` at which it is not all zero. A tile of
//! 6 rows by one strip then runs over that list only, in the order of
//! `p`: the terms it leaves out are exact zeros. The strip's listed rows
//! are first copied together, so the tiles read them in order (scattered
//! reads of them cost 6-9% more). When the lists hold more than
//! [`MAX_SHARE`] of the depths, the caller's dense kernel is faster and
//! nothing is computed here. AVX2 + FMA only (the tiles are 8 lanes; the
//! AVX-512 kernel at twice the width is as fast as these lists).
//!
//! Measured on one core with 128 MNIST digits against 256 units: `x W^T`
//! 515 -> 360 µs, `dz^T x` 545 -> 390 µs (against 1,000 units: 2,030 ->
//! 1,470 and 2,190 -> 1,460 µs).

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::avx2::{mask, store};
use super::{grow, pack_rows, store_transposed, View, PACK, TRANSPOSED};

/// Rows of a tile (broadcast side).
const MR: usize = 6;
/// Columns of a strip (two vectors). Tiles of 12 rows by one vector (8
/// columns: 40% of the depths listed for a weight gradient instead of 58%)
/// measured no faster, with 13 loads per 12 multiply-adds.
const NR: usize = 16;
/// Above this share (in %) of listed depths the dense kernel is faster:
/// with every depth listed, a listed tile runs at about 80% of its speed
/// (the depths are read through the list, not blocked), and the lists cost
/// a pass over the operand.
const MAX_SHARE: usize = 70;
/// Smaller products are not worth the lists.
const MIN_MADDS: usize = 1 << 18;
/// Products of at least this many multiply-adds (before skipping) are split
/// in two halves along the strips, on two cores when there are two.
const SPLIT_MADDS: usize = 1 << 21;

/// Which operand of `a x b` is mostly zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sparse {
    A,
    B,
}

/// For each strip of 16 columns of the vector operand, the depths at which
/// it is not all zero: strip `j`'s are `rows[starts[j]..starts[j + 1]]`,
/// ascending.
#[derive(Default)]
struct Lists {
    flags: Vec<u8>,
    starts: Vec<usize>,
    rows: Vec<u32>,
}

thread_local! {
    /// The lists (the packed vector operand and the product computed
    /// transposed use the dense kernel's buffers).
    static LISTS: RefCell<Lists> = RefCell::default();
}

/// `out [m, n] (+)= a x b` (as [`super::matmul`]) without the terms where
/// the `sparse` operand is zero; false, with `out` untouched, when that
/// does not pay (too many nonzeros, a small product, or no AVX2).
///
/// # Safety
/// As for [`super::matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
    sparse: Sparse,
) -> bool {
    if !crate::cpu::has_avx2() || m * n * k < MIN_MADDS {
        return false;
    }
    // s [ms, k] x v [k, nv], v the sparse side (out^T = b^T a^T when it is a)
    let (s, v, ms, nv) = match sparse {
        Sparse::B => (a, b, m, n),
        Sparse::A => (b.t(), a.t(), n, m),
    };
    // (taken out while in use: a thread that waits for its other half in a
    // rayon pool may run another part's product meanwhile)
    let mut lists = LISTS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let mut packed = PACK.with(|b| std::mem::take(&mut b.borrow_mut()[0]));
    let mut transposed = TRANSPOSED.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let mut compute = || {
        // SAFETY: `v` is valid for reads as k x nv (the caller's a or b)
        let listed = unsafe { lists.build(v, k, nv) };
        if listed * 100 > MAX_SHARE * k * nv.div_ceil(NR) {
            return false;
        }
        let (vp, ldv) = if v.cs == 1 {
            (v.ptr, v.rs)
        } else {
            grow(&mut packed, k * nv);
            // SAFETY: as above; `packed` holds k x nv
            unsafe { pack_rows(v, k, nv, &mut packed) };
            (packed.as_ptr(), nv as isize)
        };
        let product = Product {
            s,
            vp,
            ldv,
            ms,
            lists: &lists,
        };
        let split = m * n * k >= SPLIT_MADDS && crate::par::can_split();
        match sparse {
            // SAFETY: `out` is m x n = ms x nv at stride ldo
            Sparse::B => unsafe { product.run(nv, split, Out(out), ldo, acc) },
            Sparse::A => {
                grow(&mut transposed, ms * nv);
                // SAFETY: `transposed` holds ms x nv = n x m; `out` m x n
                unsafe {
                    product.run(nv, split, Out(transposed.as_mut_ptr()), nv, false);
                    store_transposed(&transposed, m, n, out, ldo, acc);
                }
            }
        }
        true
    };
    let took = compute();
    LISTS.with(|b| *b.borrow_mut() = lists);
    PACK.with(|b| b.borrow_mut()[0] = packed);
    TRANSPOSED.with(|b| *b.borrow_mut() = transposed);
    took
}

impl Lists {
    /// The lists of `v` (`k x nv`); returns how many depths they hold in
    /// all.
    ///
    /// # Safety
    /// `v` must be valid for reads as a `k x nv` matrix.
    unsafe fn build(&mut self, v: View, k: usize, nv: usize) -> usize {
        let strips = nv.div_ceil(NR);
        self.flags.clear();
        self.flags.resize(strips * k, 0);
        // SAFETY: as this function's; the flags are strips x k
        unsafe {
            if v.cs == 1 {
                flag_rows(v, k, nv, &mut self.flags)
            } else if v.rs == 1 {
                flag_columns(v, k, nv, &mut self.flags)
            } else {
                for p in 0..k {
                    for j in 0..nv {
                        if *v.ptr.offset(p as isize * v.rs + j as isize * v.cs) != 0.0 {
                            self.flags[j / NR * k + p] = 1;
                        }
                    }
                }
            }
        }
        self.starts.clear();
        self.rows.clear();
        for strip in self.flags.chunks_exact(k) {
            self.starts.push(self.rows.len());
            let listed = strip.iter().enumerate().filter(|(_, &f)| f != 0);
            self.rows.extend(listed.map(|(p, _)| p as u32));
        }
        self.starts.push(self.rows.len());
        self.rows.len()
    }

    fn of(&self, strip: usize) -> &[u32] {
        &self.rows[self.starts[strip]..self.starts[strip + 1]]
    }
}

/// Whether any of 8 floats (the lanes of `mask`) is nonzero.
///
/// # Safety
/// The lanes `mask` sets must be valid for reads at `p`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nonzero(p: *const f32, mask: __m256i) -> bool {
    let x = _mm256_maskload_ps(p, mask);
    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(x, _mm256_setzero_ps())) != 0
}

/// The flags of `v` stored along its rows (`v.cs == 1`): each row's
/// strips, 8 numbers at a time.
///
/// # Safety
/// As for [`Lists::build`], with `flags` of `strips x k`; the CPU has AVX2.
#[target_feature(enable = "avx2")]
unsafe fn flag_rows(v: View, k: usize, nv: usize, flags: &mut [u8]) {
    let full = mask(8);
    for p in 0..k {
        let row = v.ptr.offset(p as isize * v.rs);
        for j in (0..nv).step_by(8) {
            let lanes = if nv - j >= 8 { full } else { mask(nv - j) };
            if nonzero(row.add(j), lanes) {
                flags[j / NR * k + p] = 1;
            }
        }
    }
}

/// The flags of `v` stored along its columns (`v.rs == 1`, the transpose
/// of a row-major batch): 8 depths of a strip's columns at a time.
///
/// # Safety
/// As for [`flag_rows`].
#[target_feature(enable = "avx2")]
unsafe fn flag_columns(v: View, k: usize, nv: usize, flags: &mut [u8]) {
    for j0 in (0..nv).step_by(NR) {
        let strip = &mut flags[j0 / NR * k..][..k];
        for p0 in (0..k).step_by(8) {
            let lanes = mask(k - p0);
            let mut any = _mm256_setzero_ps();
            for j in j0..(j0 + NR).min(nv) {
                let x = _mm256_maskload_ps(v.ptr.offset(j as isize * v.cs).add(p0), lanes);
                any = _mm256_or_ps(any, _mm256_cmp_ps::<_CMP_NEQ_UQ>(x, _mm256_setzero_ps()));
            }
            let bits = _mm256_movemask_ps(any);
            for (d, f) in strip[p0..(p0 + 8).min(k)].iter_mut().enumerate() {
                *f = ((bits >> d) & 1) as u8;
            }
        }
    }
}

/// An output pointer handed to the other half of a split product.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the halves write disjoint strips of the output, and
// `par::join` returns only when both are done.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `s [ms, k]` against the packed sparse operand `vp` (row stride `ldv`)
/// and its lists.
struct Product<'a> {
    s: View,
    vp: *const f32,
    ldv: isize,
    ms: usize,
    lists: &'a Lists,
}
// SAFETY: the halves only read `s`, `vp` and the lists.
unsafe impl Sync for Product<'_> {}

impl Product<'_> {
    /// Every strip of the `nv` columns into `out` (row stride `ldo`): in
    /// two halves of strips when `split`.
    ///
    /// # Safety
    /// `out` must be valid for writes (and reads when `acc`) as `ms x nv`
    /// at row stride `ldo`; `s` and `vp` as given to [`matmul`].
    unsafe fn run(&self, nv: usize, split: bool, out: Out, ldo: usize, acc: bool) {
        let strips = nv.div_ceil(NR);
        if split && strips >= 2 {
            let half = strips / 2;
            crate::par::join(
                // SAFETY: as this function's; the halves' strips are disjoint
                || unsafe { self.strips(0..half, nv, out, ldo, acc) },
                || unsafe { self.strips(half..strips, nv, out, ldo, acc) },
            );
        } else {
            // SAFETY: as this function's
            unsafe { self.strips(0..strips, nv, out, ldo, acc) }
        }
    }

    /// The strips `range`, each against every tile of `MR` rows (the strip
    /// stays in the first-level cache while it meets them).
    ///
    /// # Safety
    /// As for [`Self::run`].
    unsafe fn strips(
        &self,
        range: std::ops::Range<usize>,
        nv: usize,
        out: Out,
        ldo: usize,
        acc: bool,
    ) {
        let s = self.s;
        // the strip's listed rows, copied together: the tiles then read
        // them in order, one after the other
        let mut compact = Vec::new();
        for strip in range {
            let j0 = strip * NR;
            let nc = NR.min(nv - j0);
            let rows = self.lists.of(strip);
            compact.clear();
            for &p in rows {
                // SAFETY: row p, columns j0..j0 + nc of v
                let row = unsafe {
                    std::slice::from_raw_parts(self.vp.offset(p as isize * self.ldv).add(j0), nc)
                };
                compact.extend_from_slice(row);
                compact.resize(compact.len() + NR - nc, 0.0);
            }
            for i0 in (0..self.ms).step_by(MR) {
                let mr = MR.min(self.ms - i0);
                let sp = s.ptr.offset(i0 as isize * s.rs);
                let o = out.0.add(i0 * ldo + j0);
                // SAFETY: rows i0.. of s, the compact strip, columns j0..
                // of out, all within the shapes the caller vouched for
                unsafe { tile(mr, nc, rows, sp, s.rs, s.cs, compact.as_ptr(), o, ldo, acc) };
            }
        }
    }
}

/// One `mr x nc` tile over the depths `rows`: `sp` the broadcast side's
/// rows (element `(i, p)` at `sp + i * srs + p * scs`), `vp` the strip's
/// listed rows copied together (`NR` numbers each, zero past `nc`), `o` the
/// tile's corner in the output.
///
/// # Safety
/// Those reads and writes must be valid for `mr <= MR` rows, `nc <= NR`
/// columns and every depth in `rows` (and `vp` for `rows.len()` rows); the
/// CPU has AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(
    mr: usize,
    nc: usize,
    rows: &[u32],
    sp: *const f32,
    srs: isize,
    scs: isize,
    vp: *const f32,
    o: *mut f32,
    ldo: usize,
    add: bool,
) {
    macro_rules! by_rows {
        ($($m:literal)*) => {
            match (mr, nc > 8) {
                $(($m, true) => kernel::<$m, 2>(nc, rows, sp, srs, scs, vp, o, ldo, add),
                  ($m, false) => kernel::<$m, 1>(nc, rows, sp, srs, scs, vp, o, ldo, add),)*
                _ => unreachable!("more rows than the tile"),
            }
        };
    }
    const _: () = assert!(MR == 6 && NR == 16);
    by_rows!(1 2 3 4 5 6)
}

/// [`tile`] for `M` rows of `V` vectors.
///
/// # Safety
/// As for [`tile`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const M: usize, const V: usize>(
    nc: usize,
    rows: &[u32],
    sp: *const f32,
    srs: isize,
    scs: isize,
    vp: *const f32,
    o: *mut f32,
    ldo: usize,
    add: bool,
) {
    let masks = [mask(nc), mask(nc.saturating_sub(8))];
    let c = depth::<M, V>(rows, sp, srs, scs, vp);
    store(&c, nc, masks, o, ldo, add);
}

/// The tile's sums over the depths `rows`, kept in registers: the strip's
/// rows in order from `vp`, the broadcast side's at each listed depth.
///
/// # Safety
/// As for [`tile`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn depth<const M: usize, const V: usize>(
    rows: &[u32],
    sp: *const f32,
    srs: isize,
    scs: isize,
    mut vp: *const f32,
) -> [[__m256; V]; M] {
    let mut c = [[_mm256_setzero_ps(); V]; M];
    for &p in rows {
        let mut v = [_mm256_setzero_ps(); V];
        for (x, vx) in v.iter_mut().enumerate() {
            *vx = _mm256_loadu_ps(vp.add(8 * x));
        }
        vp = vp.add(NR);
        let sq = sp.offset(p as isize * scs);
        for (r, cr) in c.iter_mut().enumerate() {
            let a = _mm256_set1_ps(*sq.offset(r as isize * srs));
            for x in 0..V {
                cr[x] = _mm256_fmadd_ps(a, v[x], cr[x]);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, naive, view};
    use super::*;

    /// A `rows x cols` operand (stored transposed when `transposed`, as
    /// [`view`] reads it) that is zero but for blocks of 13 x 11 in a
    /// diagonal pattern, a quarter of it: as a digit's blank margins.
    fn sparse(rows: usize, cols: usize, transposed: bool, seed: u64) -> Vec<f32> {
        let mut d = data(rows * cols, seed);
        for r in 0..rows {
            for c in 0..cols {
                if (r / 13 + c / 11) % 4 != 0 {
                    d[if transposed {
                        c * rows + r
                    } else {
                        r * cols + c
                    }] = 0.0;
                }
            }
        }
        d
    }

    #[test]
    fn products_that_skip_zeros_match_a_naive_loop() {
        if !crate::cpu::has_avx2() {
            return;
        }
        // a layer's forward pass and weight gradient, odd sizes (partial
        // tiles and strips), the input on either side of the product
        let shapes = [
            (128, 784, 256),
            (256, 128, 784),
            (37, 300, 75),
            (61, 129, 100),
        ];
        let run = || {
            for (si, &(m, k, n)) in shapes.iter().enumerate() {
                for (side, at, bt) in [
                    (Sparse::A, false, true),
                    (Sparse::A, true, false),
                    (Sparse::B, false, false),
                    (Sparse::B, true, true),
                ] {
                    let (ad, bd) = match side {
                        Sparse::A => (sparse(m, k, at, si as u64), data(k * n, 7)),
                        Sparse::B => (data(m * k, 7), sparse(k, n, bt, si as u64)),
                    };
                    let (a, b) = (view(&ad, m, k, at), view(&bd, k, n, bt));
                    let want = naive(m, k, n, a, b);
                    for acc in [false, true] {
                        let ldo = n + 3;
                        let start = data(m * ldo, 99);
                        let mut out = start.clone();
                        // SAFETY: `a`, `b` view m x k and k x n buffers;
                        // `out` holds m rows of stride ldo >= n
                        let took =
                            unsafe { matmul(m, k, n, a, b, out.as_mut_ptr(), ldo, acc, side) };
                        assert!(took, "{m}x{k}x{n} {side:?}: the lists should pay");
                        for i in 0..m {
                            for j in 0..ldo {
                                let (got, was) =
                                    (out[i * ldo + j] as f64, start[i * ldo + j] as f64);
                                let expect = if j >= n {
                                    was
                                } else {
                                    want[i * n + j] + if acc { was } else { 0.0 }
                                };
                                assert!(
                                    (got - expect).abs() < 1e-4 * (1.0 + (k as f64).sqrt()),
                                    "{m}x{k}x{n} {side:?} at={at} bt={bt} acc={acc} ({i},{j}): {got} vs {expect}"
                                );
                            }
                        }
                    }
                }
            }
        };
        run();
        // split along the strips on two cores
        let _helper = crate::par::Helper::start(|| {}).unwrap();
        run();
    }

    #[test]
    fn dense_operands_and_small_products_are_left_to_the_dense_kernel() {
        let (m, k, n) = (128, 784, 256);
        let (ad, bd) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![1.5f32; m * n];
        let (a, b) = (View::rows(&ad, k), View::rows(&bd, n));
        // SAFETY: m x k, k x n and m x n buffers
        let took = unsafe { matmul(m, k, n, a, b, out.as_mut_ptr(), n, false, Sparse::A) };
        assert!(!took);
        assert!(out.iter().all(|&v| v == 1.5), "untouched when not taken");
        let small = sparse(8, 8, false, 3);
        let v = View::rows(&small, 8);
        // SAFETY: 8 x 8 buffers
        assert!(!unsafe { matmul(8, 8, 8, v, v, out.as_mut_ptr(), 8, false, Sparse::B) });
    }
}
