//! Products whose one operand is mostly zeros: a dense layer's input
//! batch, in its forward pass (`x W^T`) and in its weight gradient
//! (`dz^T x`). 81% of MNIST's pixels are 0.
//!
//! The sparse operand is the broadcast side of the product (the weight
//! gradient is computed as its transpose), in groups of [`G`] neighbouring
//! rows: two digits of the batch in the forward pass, two neighbouring
//! pixels in the weight gradient. Each group lists the depths at which it
//! is not all zero, with its values there, and its tiles run over that
//! list only: the terms they leave out are exact zeros. In a batch of
//! MNIST digits a pair of digits is blank at 71% of the pixels, and a
//! pair of neighbouring pixels is blank in 78% of the digits, so a tile
//! does 29% or 22% of the dense product's multiply-adds. (Grouping along
//! the dense operand instead, 16 digits or 16 pixels to a strip, left
//! 53% and 58%.) When the lists hold more than [`MAX_SHARE`] of the
//! depths, the caller's dense kernel is faster and nothing is computed
//! here, as for batches of fewer than [`MIN_ROWS`]. The tiles are AVX2 +
//! FMA; on a CPU with AVX-512 they still beat the dense kernel at twice
//! their width from [`MIN_ROWS_WITH_AVX512`] rows of the batch on (128
//! digits against 256 units: 320 -> 270 µs).
//!
//! The lists are built without branching on which depths they take: 8
//! depths at a time packed to the front of the vectors through a table
//! of permutations (the forward pass), or each group's next entry written
//! whether it is taken or not (the weight gradient). With a branch on
//! each listed depth they took 5% of a `shallow-256` b256 training step's
//! time on the two cores, 3.3% now.
//!
//! Measured on one core with 128 MNIST digits against 256 units: `x W^T`
//! 516 -> 252 µs (with `W` transposed), `dz^T x` 546 -> 253 µs (the
//! strips of 16 along the dense side that this design replaced took 0.70
//! and 0.72 of the dense time); against 1,000 units 1,973 -> 929 and
//! 2,152 -> 822 µs.

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::avx2::mask;
use super::{grow, pack_rows, View};

/// Rows of the sparse side to a group (a tile's broadcast rows).
const G: usize = 2;
/// Vectors of 8 columns to a tile: 12 accumulators, two broadcasts and a
/// loaded vector in the 16 vector registers.
const V: usize = 6;
/// Columns of a tile.
const NC: usize = 8 * V;
/// Above this share (in %) of listed depths the dense kernel is faster:
/// with every depth listed, a listed tile runs at about 80% of its speed
/// (the depths are read through the list, not blocked), and the lists cost
/// a pass over the operand.
const MAX_SHARE: usize = 70;
/// Smaller products are not worth the lists.
const MIN_MADDS: usize = 1 << 18;
/// Below this many rows of the batch the dense kernel is faster: the
/// forward pass's packing of `W^T` and the tiles' set-up are not paid back
/// (one core, against 256 units, dense / listed: 8 rows 40 / 47 µs, 16
/// rows 62 / 63, 24 rows 109 / 73; one digit against 1,000 units 105 /
/// 155 µs).
const MIN_ROWS: usize = 24;
/// The same on a CPU with AVX-512, whose dense kernel is twice as wide
/// (32 rows 77 / 90 µs, 64 rows 163 / 134).
const MIN_ROWS_WITH_AVX512: usize = 64;

/// The fewest rows of the batch worth the lists on this CPU.
fn min_rows() -> usize {
    if crate::cpu::has_avx512() {
        MIN_ROWS_WITH_AVX512
    } else {
        MIN_ROWS
    }
}
/// Products of at least this many multiply-adds (before skipping) are split
/// in two halves (of the column chunks or of the groups), on two cores when
/// there are two.
const SPLIT_MADDS: usize = 1 << 21;

/// Which operand of `a x b` is mostly zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sparse {
    A,
    B,
}

/// For each group of [`G`] rows of the sparse side, the depths at which it
/// is not all zero, ascending, and its rows' values at each: group `g`'s
/// `lens[g]` depths start at `depths[g * cap]`, its row `r`'s values at
/// `values[(g * G + r) * cap]`. `cap` is the depth and 8 more: along the
/// depths the lists are written 8 entries at a time, the ones past the end
/// left over.
#[derive(Default)]
struct Lists {
    cap: usize,
    lens: Vec<usize>,
    depths: Vec<u32>,
    values: Vec<f32>,
}

/// For each 8-bit mask, the indices of its set bits in order, then zeros:
/// the permutation that moves a vector's lanes that the mask sets to its
/// front.
static PACK_LANES: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut n, mut b) = (0, 0);
        while b < 8 {
            if (m >> b) & 1 == 1 {
                table[m][n] = b as u32;
                n += 1;
            }
            b += 1;
        }
        m += 1;
    }
    table
};

thread_local! {
    /// The lists.
    static LISTS: RefCell<Lists> = RefCell::default();
    /// A tile's columns of the dense side, packed when they do not run
    /// contiguously.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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
    // out' [ms, nv] = s [ms, k] x v [k, nv], s the sparse side: out' is
    // out, or its transpose (b^T a^T) when b is the sparse one; `rows` the
    // batch's
    let (s, v, ms, nv, layout, rows) = match sparse {
        Sparse::A => (a, b, m, n, Layout::Rows, m),
        Sparse::B => (b.t(), a.t(), n, m, Layout::Transposed, k),
    };
    // (a batch is stored along its rows or its columns)
    let contiguous = s.cs == 1 || s.rs == 1;
    if !crate::cpu::has_avx2() || m * n * k < MIN_MADDS || !contiguous || rows < min_rows() {
        return false;
    }
    // (taken out while in use: a thread that waits for its other half in a
    // rayon pool may run another part's product meanwhile)
    let mut lists = LISTS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    // SAFETY: `s` is valid for reads as ms x k (the caller's a or b^T)
    let listed = unsafe { lists.build(s, ms, k) };
    let took = listed * 100 <= MAX_SHARE * k * ms.div_ceil(G);
    if took {
        let product = Product {
            v,
            k,
            ms,
            nv,
            lists: &lists,
            out,
            ldo,
            acc,
            layout,
        };
        let split = m * n * k >= SPLIT_MADDS && crate::par::can_split();
        // SAFETY: `out` is m x n at stride ldo, so out' is ms x nv in
        // `layout`; `v` is valid for reads as k x nv
        unsafe { product.run(split) };
    }
    LISTS.with(|b| *b.borrow_mut() = lists);
    took
}

impl Lists {
    /// The lists of `s` (`ms x k`); returns how many entries they hold in
    /// all.
    ///
    /// # Safety
    /// `s` must be valid for reads as an `ms x k` matrix, contiguous along
    /// its depths or its rows; the CPU has AVX2.
    unsafe fn build(&mut self, s: View, ms: usize, k: usize) -> usize {
        let groups = ms.div_ceil(G);
        self.cap = k + 8;
        self.lens.clear();
        self.lens.resize(groups, 0);
        // (every entry is written before it is read: no clearing)
        grow(&mut self.values, groups * G * self.cap);
        if self.depths.len() < groups * self.cap {
            self.depths.resize(groups * self.cap, 0);
        }
        // SAFETY: as this function's; the buffers are grown for the groups
        unsafe {
            if s.cs == 1 {
                self.along_depth(s, ms, k);
            } else {
                self.along_rows(s, ms, k);
            }
        }
        self.lens.iter().sum()
    }

    /// The lists of `s` stored along its depths (`s.cs == 1`, a row-major
    /// batch as `a`): group by group, 8 depths at a time, the listed ones
    /// packed to the front of the vectors (no branch on which they are).
    ///
    /// # Safety
    /// As for [`Self::build`], with the buffers grown as it grows them:
    /// `cap == k + 8`, `lens` of `ms.div_ceil(G)` groups, `depths` and
    /// `values` of that many groups' `cap` and `G * cap` entries.
    #[target_feature(enable = "avx2")]
    unsafe fn along_depth(&mut self, s: View, ms: usize, k: usize) {
        let cap = self.cap;
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let zero = _mm256_setzero_ps();
        for g in 0..ms.div_ceil(G) {
            let rows = G.min(ms - g * G);
            let first = s.ptr.offset((g * G) as isize * s.rs);
            let depths = self.depths.as_mut_ptr().add(g * cap);
            let values = self.values.as_mut_ptr().add(g * G * cap);
            let mut len = 0;
            for p0 in (0..k).step_by(8) {
                let tail = mask(k - p0);
                // the group's rows at these depths (a missing last row: zeros)
                let mut x = [zero; G];
                let mut any = zero;
                for (r, xr) in x.iter_mut().enumerate().take(rows) {
                    let at = first.offset(r as isize * s.rs).add(p0);
                    *xr = if p0 + 8 <= k {
                        _mm256_loadu_ps(at)
                    } else {
                        _mm256_maskload_ps(at, tail)
                    };
                    any = _mm256_or_ps(any, _mm256_cmp_ps::<_CMP_NEQ_UQ>(*xr, zero));
                }
                let bits = _mm256_movemask_ps(any) as usize;
                let order = _mm256_loadu_si256(PACK_LANES[bits].as_ptr().cast());
                let p = _mm256_add_epi32(_mm256_set1_epi32(p0 as i32), lanes);
                // (len <= p0 <= k - 1, so len + 8 < cap: within the lists)
                _mm256_storeu_si256(
                    depths.add(len).cast(),
                    _mm256_permutevar8x32_epi32(p, order),
                );
                for (r, &xr) in x.iter().enumerate() {
                    _mm256_storeu_ps(
                        values.add(r * cap + len),
                        _mm256_permutevar8x32_ps(xr, order),
                    );
                }
                len += bits.count_ones() as usize;
            }
            self.lens[g] = len;
        }
    }

    /// The lists of `s` stored along its rows (`s.rs == 1`, the transpose
    /// of a row-major batch as `b`): depth by depth, 8 rows (`8 / G`
    /// groups) at a time, each group's next entry written whether it is
    /// listed or not (its count moves on only if it is).
    ///
    /// # Safety
    /// As for [`Self::along_depth`].
    #[target_feature(enable = "avx2")]
    unsafe fn along_rows(&mut self, s: View, ms: usize, k: usize) {
        const _: () = assert!(8 % G == 0);
        let (cap, groups) = (self.cap, ms.div_ceil(G));
        let (lens, depths, values) = (
            self.lens.as_mut_ptr(),
            self.depths.as_mut_ptr(),
            self.values.as_mut_ptr(),
        );
        for p in 0..k {
            let col = s.ptr.offset(p as isize * s.cs);
            for r0 in (0..ms).step_by(8) {
                let v = if r0 + 8 <= ms {
                    _mm256_loadu_ps(col.add(r0))
                } else {
                    _mm256_maskload_ps(col.add(r0), mask(ms - r0))
                };
                let nonzero =
                    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps()));
                if nonzero == 0 {
                    continue;
                }
                let mut x = [0f32; 8];
                _mm256_storeu_ps(x.as_mut_ptr(), v);
                let g0 = r0 / G;
                for j in 0..(8 / G).min(groups - g0) {
                    let g = g0 + j;
                    let listed = (nonzero >> (j * G)) & ((1 << G) - 1) != 0;
                    // (an entry e <= p < k: within the group's lists)
                    let e = *lens.add(g);
                    *depths.add(g * cap + e) = p as u32;
                    for r in 0..G {
                        *values.add((g * G + r) * cap + e) = x[j * G + r];
                    }
                    *lens.add(g) = e + listed as usize;
                }
            }
        }
    }

    /// Group `g`'s depths and its rows' values there.
    fn of(&self, g: usize) -> (&[u32], [&[f32]; G]) {
        let (cap, len) = (self.cap, self.lens[g]);
        (
            &self.depths[g * cap..][..len],
            std::array::from_fn(|r| &self.values[(g * G + r) * cap..][..len]),
        )
    }
}

/// How the product `out'` lies in the caller's `out`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `out' = out`.
    Rows,
    /// `out' = out^T`: row `i` of `out'` is column `i` of `out`.
    Transposed,
}

/// `out' [ms, nv]`: the lists of the sparse side against the dense side
/// `v` (`k x nv`), stored into `out` (row stride `ldo`) in `layout`, added
/// to what is there when `acc`.
struct Product<'a> {
    v: View,
    k: usize,
    ms: usize,
    nv: usize,
    lists: &'a Lists,
    out: *mut f32,
    ldo: usize,
    acc: bool,
    layout: Layout,
}
// SAFETY: the halves only read `v` and the lists, and write disjoint
// parts of out' (`par::join` returns only when both are done).
unsafe impl Sync for Product<'_> {}

impl Product<'_> {
    /// Every tile, in two halves when `split`: of the columns when the
    /// dense side is packed (each half packs its own), else of the groups,
    /// of about equal listed work.
    ///
    /// # Safety
    /// `out` must be valid for writes (and reads when `acc`) as out' in
    /// `layout`, `v` for reads as `k x nv`.
    unsafe fn run(&self, split: bool) {
        let groups = self.lists.lens.len();
        let chunks = self.nv.div_ceil(NC);
        let all = (0..groups, 0..chunks);
        let halves = if !split {
            None
        } else if self.v.cs != 1 && chunks >= 2 {
            let mid = chunks / 2;
            Some(((0..groups, 0..mid), (0..groups, mid..chunks)))
        } else if groups >= 2 {
            let half = self.lists.lens.iter().sum::<usize>() / 2;
            let mut seen = 0;
            let mid = self
                .lists
                .lens
                .iter()
                .position(|&len| {
                    seen += len;
                    seen >= half
                })
                .map_or(1, |g| g + 1)
                .clamp(1, groups - 1);
            Some(((0..mid, 0..chunks), (mid..groups, 0..chunks)))
        } else {
            None
        };
        match halves {
            Some((one, other)) => {
                crate::par::join(
                    // SAFETY: as this function's; the halves' tiles are disjoint
                    || unsafe { self.tiles(one) },
                    // SAFETY: as the first half's
                    || unsafe { self.tiles(other) },
                );
            }
            // SAFETY: as this function's
            None => unsafe { self.tiles(all) },
        }
    }

    /// The tiles of the groups and the column chunks (of [`NC`]) given,
    /// chunk by chunk: a chunk of the dense side stays in cache while the
    /// groups meet it.
    ///
    /// # Safety
    /// As for [`Self::run`].
    unsafe fn tiles(&self, (groups, chunks): (std::ops::Range<usize>, std::ops::Range<usize>)) {
        let mut packed = COLUMNS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        for chunk in chunks {
            let j0 = chunk * NC;
            let nc = NC.min(self.nv - j0);
            let columns = View {
                ptr: self.v.ptr.wrapping_offset(j0 as isize * self.v.cs),
                ..self.v
            };
            let (vp, ldv) = if self.v.cs == 1 {
                (columns.ptr, columns.rs)
            } else {
                grow(&mut packed, self.k * nc);
                // SAFETY: columns j0.. of v, k x nc; `packed` holds k x nc
                unsafe { pack_rows(columns, self.k, nc, &mut packed) };
                (packed.as_ptr(), nc as isize)
            };
            for g in groups.clone() {
                let (depths, values) = self.lists.of(g);
                let at = match self.layout {
                    Layout::Rows => g * G * self.ldo + j0,
                    Layout::Transposed => j0 * self.ldo + g * G,
                };
                let tile = Tile {
                    nc,
                    rows: G.min(self.ms - g * G),
                    o: self.out.add(at),
                    ldo: self.ldo,
                    acc: self.acc,
                    layout: self.layout,
                };
                // SAFETY: the tile's rows and columns lie within out' and
                // the dense side, as the caller vouched
                unsafe { tile.run(depths, values, vp, ldv) };
            }
        }
        COLUMNS.with(|b| *b.borrow_mut() = packed);
    }
}

/// One tile of out': `rows <= G` rows by `nc <= NC` columns, its corner
/// at `o`.
struct Tile {
    nc: usize,
    rows: usize,
    o: *mut f32,
    ldo: usize,
    acc: bool,
    layout: Layout,
}

impl Tile {
    /// The tile's sums over its group's list (`depths`, `values`) against
    /// the dense side's columns from `vp`, stored.
    ///
    /// # Safety
    /// `vp` must be valid for reads of `nc` numbers at each listed row
    /// (stride `ldv`), `o` for the tile's writes; the CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run(&self, depths: &[u32], values: [&[f32]; G], vp: *const f32, ldv: isize) {
        macro_rules! by_vectors {
            ($($x:literal)*) => {
                match self.nc.div_ceil(8) {
                    $($x => {
                        let c = if self.nc == 8 * $x {
                            sums::<$x, false>(depths, values, vp, ldv, self.nc)
                        } else {
                            sums::<$x, true>(depths, values, vp, ldv, self.nc)
                        };
                        self.store(&c)
                    })*
                    _ => unreachable!("more columns than the tile"),
                }
            };
        }
        const _: () = assert!(V == 6);
        by_vectors!(1 2 3 4 5 6)
    }

    /// Stores the sums `c` (`G` rows of `X` vectors).
    ///
    /// # Safety
    /// As for [`Self::run`].
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store<const X: usize>(&self, c: &[[__m256; X]; G]) {
        let whole = self.nc == 8 * X;
        match self.layout {
            Layout::Transposed if whole && self.rows == G => {
                transposed_pairs(c, self.o, self.ldo, self.acc)
            }
            Layout::Rows => {
                let last = mask(self.nc - 8 * (X - 1));
                for (r, cr) in c.iter().enumerate().take(self.rows) {
                    let row = self.o.add(r * self.ldo);
                    for (x, &cx) in cr.iter().enumerate() {
                        let p = row.add(8 * x);
                        if whole || x + 1 < X {
                            let val = if self.acc {
                                _mm256_add_ps(cx, _mm256_loadu_ps(p))
                            } else {
                                cx
                            };
                            _mm256_storeu_ps(p, val);
                        } else {
                            let val = if self.acc {
                                _mm256_add_ps(cx, _mm256_maskload_ps(p, last))
                            } else {
                                cx
                            };
                            _mm256_maskstore_ps(p, last, val);
                        }
                    }
                }
            }
            Layout::Transposed => {
                // an edge tile (a short last group or a part of a vector)
                let mut t = [[0f32; NC]; G];
                for (tr, cr) in t.iter_mut().zip(c) {
                    for (x, &cx) in cr.iter().enumerate() {
                        _mm256_storeu_ps(tr.as_mut_ptr().add(8 * x), cx);
                    }
                }
                for j in 0..self.nc {
                    for (r, tr) in t.iter().enumerate().take(self.rows) {
                        let p = self.o.add(j * self.ldo + r);
                        *p = if self.acc { *p + tr[j] } else { tr[j] };
                    }
                }
            }
        }
    }
}

/// Stores a whole tile of two rows transposed: each of its columns is a
/// pair of numbers in a row of `out`.
///
/// # Safety
/// `o` must be valid for reads and writes of two numbers at each of `8 X`
/// rows (stride `ldo`; no alignment needed); the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transposed_pairs<const X: usize>(
    c: &[[__m256; X]; G],
    o: *mut f32,
    ldo: usize,
    acc: bool,
) {
    const _: () = assert!(G == 2);
    // (64-bit loads and stores that need no alignment: a pair of floats
    // is only 4-byte aligned)
    let pair = |j: usize, q: __m128d| {
        let p = o.add(j * ldo).cast::<u8>();
        let q = _mm_castpd_ps(q);
        let q = if acc {
            _mm_add_ps(q, _mm_castsi128_ps(_mm_loadu_si64(p)))
        } else {
            q
        };
        _mm_storeu_si64(p, _mm_castps_si128(q));
    };
    for (x, (&c0, &c1)) in c[0].iter().zip(&c[1]).enumerate() {
        // columns (0, 1) and (4, 5) of the vector, then (2, 3) and (6, 7)
        let lo = _mm256_castps_pd(_mm256_unpacklo_ps(c0, c1));
        let hi = _mm256_castps_pd(_mm256_unpackhi_ps(c0, c1));
        let j = 8 * x;
        for (q, j) in [
            (_mm256_castpd256_pd128(lo), j),
            (_mm256_castpd256_pd128(hi), j + 2),
            (_mm256_extractf128_pd::<1>(lo), j + 4),
            (_mm256_extractf128_pd::<1>(hi), j + 6),
        ] {
            pair(j, q);
            pair(j + 1, _mm_unpackhi_pd(q, q));
        }
    }
}

/// A tile's sums over its group's list: at each listed depth, `X` vectors
/// of the dense side's row (the last one masked to `nc` when `MASKED`)
/// against the group's `G` values.
///
/// # Safety
/// As for [`Tile::run`], with `values` holding each row's value at each
/// listed depth.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sums<const X: usize, const MASKED: bool>(
    depths: &[u32],
    values: [&[f32]; G],
    vp: *const f32,
    ldv: isize,
    nc: usize,
) -> [[__m256; X]; G] {
    let last = mask(nc - 8 * (X - 1));
    let mut c = [[_mm256_setzero_ps(); X]; G];
    let vals = values.map(|v| v.as_ptr());
    for (e, &p) in depths.iter().enumerate() {
        let row = vp.offset(p as isize * ldv);
        let a: [__m256; G] = std::array::from_fn(|r| _mm256_set1_ps(*vals[r].add(e)));
        for x in 0..X {
            let v = if MASKED && x + 1 == X {
                _mm256_maskload_ps(row.add(8 * x), last)
            } else {
                _mm256_loadu_ps(row.add(8 * x))
            };
            for (cr, &ar) in c.iter_mut().zip(&a) {
                cr[x] = _mm256_fmadd_ps(ar, v, cr[x]);
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
    /// diagonal pattern, a quarter of it: as a digit's blank margins. Some
    /// pairs of rows and of columns are zero throughout (groups with empty
    /// lists, as the corner pixels of every digit), and rows 2-3 and
    /// columns 2-3 are nonzero throughout (groups that list every depth).
    fn sparse(rows: usize, cols: usize, transposed: bool, seed: u64) -> Vec<f32> {
        let mut d = data(rows * cols, seed);
        for r in 0..rows {
            for c in 0..cols {
                let blank = (r / 13 + c / 11) % 4 != 0 || r / 2 % 7 == 3 || c / 2 % 5 == 2;
                if blank && r / 2 != 1 && c / 2 != 1 {
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
        // a layer's forward pass and weight gradient, odd sizes (a short
        // last group, partial vectors and column chunks), the input on
        // either side of the product; the last is large enough to split
        let shapes = [
            (128, 784, 256),
            (256, 128, 784),
            (37, 300, 75),
            (61, 129, 100),
            (129, 300, 101),
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
                        // (few rows go to the dense kernel)
                        let rows = if side == Sparse::A { m } else { k };
                        let pays = rows >= min_rows();
                        assert_eq!(took, pays, "{m}x{k}x{n} {side:?}: whether the lists pay");
                        if !took {
                            assert_eq!(out, start, "untouched when not taken");
                            continue;
                        }
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
        // split along the column chunks or the groups on two cores: by a
        // helper thread, and in a rayon pool
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(run);
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
        // a few digits against a wide layer: a large product, too few rows
        let (m, k, n) = (MIN_ROWS - 1, 784, 1000);
        let (x, w) = (sparse(m, k, false, 4), data(k * n, 5));
        let mut out = vec![1.5f32; m * n];
        let (xm, wt) = (View::rows(&x, k), View::cols(&w, k));
        // SAFETY: m x k, (n x k seen as) k x n and m x n buffers
        let took = unsafe { matmul(m, k, n, xm, wt, out.as_mut_ptr(), n, false, Sparse::A) };
        assert!(!took && out.iter().all(|&v| v == 1.5));
    }
}
