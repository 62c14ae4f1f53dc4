//! Single-precision matrix products for the fused layers: register-blocked
//! kernels for AVX-512 and for AVX2 + FMA (chosen at run time; the `gemm`
//! crate on CPUs with neither), sized for this app's shapes — a batch of 32 to 256 rows
//! against layers of 30 to 1,024 units, where every weight meets only a few
//! dozen rows and a general library spends much of its time packing both
//! operands. Measured (`cargo bench --bench kernels`, one core): 125-165
//! GFLOP/s for the products of a dense layer, against 55-85 for `gemm`.
//!
//! `out [m, n] (+)= a [m, k] x b [k, n]` is computed as tiles of `MR` rows by
//! `NR` columns held in 24 vector registers. One operand is read in vectors
//! straight from memory (it must be contiguous along the vectors; only when
//! neither operand is, one is first copied transposed — for a layer's
//! forward pass, the small batch rather than the weights); the other is
//! broadcast one number at a time, also read where it lies. The vectors run
//! along whichever side of `out` costs less, so a product can also be
//! computed as its transpose and stored back transposed. `k` is cut into
//! blocks so a strip of the vector operand stays in the first-level cache
//! while it meets every row.
//!
//! A few rows against a layer (a forward pass of up to 8 images: the views'
//! reconstructions) are dot products instead, which read the weights once,
//! in order: 8 images through the 15 study models went from 6.6 to 4.8 ms
//! on one core (`sparse-1e-4`, 6.4 MB of weights: 0.72 -> 0.40 ms).

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
mod skip;
mod transpose;
#[cfg(target_arch = "x86_64")]
pub use skip::Sparse;
/// Which operand of a product is mostly zeros (see [`matmul_sparse`]).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sparse {
    A,
    B,
}

/// Below this many numbers along the vectors, [`gemm_into`] is faster
/// (for the few-row products that [`dots`] does not take: operands not
/// contiguous along `k`).
const MIN_VEC: usize = 8;
/// Depth of one block of `k`.
const KC: usize = 256;
/// Up to this many rows (or columns) of `out`, a product whose operands
/// both run contiguously along `k` is computed as dot products.
const DOT_ROWS: usize = 8;

/// A matrix view: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// `data` as a row-major `[_, cols]` matrix.
    pub fn rows(data: &[f32], cols: usize) -> View {
        View {
            ptr: data.as_ptr(),
            rs: cols as isize,
            cs: 1,
        }
    }

    /// The transpose of `data` seen as a row-major `[_, cols]` matrix.
    pub fn cols(data: &[f32], cols: usize) -> View {
        View {
            ptr: data.as_ptr(),
            rs: 1,
            cs: cols as isize,
        }
    }

    fn t(self) -> View {
        View {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// Which matrix kernels this CPU runs: `AVX-512`, `AVX2 + FMA`, or the
/// `gemm` crate's code (`aelab bench` prints it, so figures from different
/// machines can be compared).
pub fn kernel_name() -> &'static str {
    if crate::cpu::has_avx512() {
        "AVX-512"
    } else if crate::cpu::has_avx2() {
        "AVX2 + FMA"
    } else {
        "gemm crate (no AVX2)"
    }
}

thread_local! {
    /// A packed vector operand, one packed strip.
    static PACK: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// A product computed transposed, before it is stored.
    static TRANSPOSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out [m, n] = a x b`, or `+=` when `acc`; `out` row-major with row
/// stride `ldo`. Runs on the calling thread.
///
/// # Safety
/// `a` must be valid for reads as an `m x k` matrix, `b` as `k x n`, and
/// `out` for reads and writes as `m x n` with row stride `ldo >= n`.
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
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                std::ptr::write_bytes(out.add(i * ldo), 0, n);
            }
        }
        return;
    }
    if !crate::cpu::has_avx512() {
        return without_avx512(m, k, n, a, b, out, ldo, acc);
    }
    #[cfg(target_arch = "x86_64")]
    {
        // a few rows against a layer stored along k (a forward pass of a
        // few images): dot products, which stream the weights in order
        if a.cs == 1 && b.rs == 1 && m.min(n) <= DOT_ROWS {
            return if m <= n {
                dots::run(m, k, n, a.ptr, a.rs, b.ptr, b.cs, out, ldo as isize, 1, acc)
            } else {
                dots::run(n, k, m, b.ptr, b.cs, a.ptr, a.rs, out, 1, ldo as isize, acc)
            };
        }
        tiled::<avx512::Tiles>(m, k, n, a, b, out, ldo, acc)
    }
}

/// [`matmul`] where the operand `sparse` names, if any, is mostly zeros (a
/// layer's input batch): on CPUs with AVX2, the terms where it is
/// zero are left out when that pays (see `skip`); the same product either
/// way.
///
/// # Safety
/// As for [`matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_sparse(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
    sparse: Option<Sparse>,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(side) = sparse {
        if skip::matmul(m, k, n, a, b, out, ldo, acc, side) {
            return;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = sparse;
    matmul(m, k, n, a, b, out, ldo, acc)
}

/// The product in register tiles of the kernel `K`: vectors along `n`
/// (plan N) or, when that costs less, along `m` with the product computed
/// as its transpose (plan T); split in two halves on two cores when large.
///
/// # Safety
/// As for [`matmul`], and the CPU must have `K`'s instructions.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tiled<K: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
) {
    // Plan N: vectors along n from b (needs b contiguous along n).
    // Plan T: out^T = b^T a^T, vectors along m from a^T (needs a
    // contiguous along m), stored transposed.
    // (a transposing copy of the vector side costs more per number
    // than packing the broadcast side, which is read row by row)
    let cost = |vec_dim: usize, other: usize, contiguous: bool| -> f64 {
        let lanes = vec_dim.div_ceil(K::LANES) * K::LANES;
        let flops = (2 * lanes * other * k) as f64 / (2 * K::LANES) as f64;
        let copies = if contiguous {
            0.0
        } else {
            4.0 * (k * vec_dim) as f64
        };
        flops + copies
    };
    let plan_n = cost(n, m, b.cs == 1);
    let plan_t = cost(m, n, a.rs == 1);
    let vec_dim = if plan_n <= plan_t { n } else { m };
    if vec_dim < MIN_VEC {
        // a few rows against a layer (one drawn digit): vectors that
        // would be mostly empty lanes; `gemm` runs these as dot products
        return gemm_into(m, k, n, a, b, out, ldo, acc);
    }
    if plan_n <= plan_t {
        run_split::<K>(m, n, k, a, b, out, ldo, acc);
    } else {
        // out^T into a scratch buffer, then added or copied across
        let mut t = TRANSPOSED.with(|t| std::mem::take(&mut *t.borrow_mut()));
        if t.len() < m * n {
            t.clear();
            t.resize(m * n, 0.0);
        }
        run_split::<K>(n, m, k, b.t(), a.t(), t.as_mut_ptr(), m, false);
        store_transposed(&t, m, n, out, ldo, acc);
        TRANSPOSED.with(|b| *b.borrow_mut() = t);
    }
}

/// `out [m, n] (+)= t^T`, `t` holding `n` rows of `m`.
///
/// # Safety
/// `out` must be valid for reads and writes as `m x n` at row stride
/// `ldo`, and `t` hold at least `n * m` numbers.
unsafe fn store_transposed(t: &[f32], m: usize, n: usize, out: *mut f32, ldo: usize, acc: bool) {
    assert!(t.len() >= n * m);
    // SAFETY: `t` is n x m (checked), `out` m x n at stride ldo (the caller's)
    unsafe { transpose::transpose(t.as_ptr(), m, n, m, out, ldo, acc) }
}

/// A register-tiled kernel for [`tiled`]: tiles of `MR` rows (broadcast
/// side) by `NR` columns (vector side) of `LANES`-float vectors.
#[cfg(target_arch = "x86_64")]
trait Kernel {
    const MR: usize;
    const NR: usize;
    const LANES: usize;
    /// One `mr x nc` tile (`mr <= MR`, `nc <= NR`) over depth `kc`: `sp`
    /// the broadcast side's panel (element `(i, p)` at `sp + i * srs + p *
    /// scs`), `vt` the vector operand's strip (row stride `ldv`), `o` the
    /// tile's corner in the output (row stride `ldo`), added to when `add`.
    ///
    /// # Safety
    /// The pointers must be valid for those reads and writes, and the CPU
    /// must have the kernel's instructions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        mr: usize,
        nc: usize,
        kc: usize,
        sp: *const f32,
        srs: isize,
        scs: isize,
        vt: *const f32,
        ldv: isize,
        o: *mut f32,
        ldo: usize,
        add: bool,
    );
}

/// `impl Kernel for $tiles` in a kernel module whose `kernel::<M, V>`
/// computes an `M`-row tile of `V` vectors of `$lanes` floats: `tile`
/// picks the `kernel` for the tile's rows (`$m`, every count up to `$mr`)
/// and for one or two vectors.
macro_rules! kernel_tiles {
    ($tiles:ident, $mr:expr, $nr:expr, $lanes:literal, $($m:literal)*) => {
        impl super::Kernel for $tiles {
            const MR: usize = $mr;
            const NR: usize = $nr;
            const LANES: usize = $lanes;
            /// # Safety
            /// As [`super::Kernel::tile`].
            unsafe fn tile(
                mr: usize,
                nc: usize,
                kc: usize,
                sp: *const f32,
                srs: isize,
                scs: isize,
                vt: *const f32,
                ldv: isize,
                o: *mut f32,
                ldo: usize,
                add: bool,
            ) {
                match (mr, nc > $lanes) {
                    $(($m, true) => kernel::<$m, 2>(nc, kc, sp, srs, scs, vt, ldv, o, ldo, add),
                      ($m, false) => kernel::<$m, 1>(nc, kc, sp, srs, scs, vt, ldv, o, ldo, add),)*
                    _ => unreachable!(),
                }
            }
        }
    };
}
use kernel_tiles;

/// The product on a CPU without AVX-512, when it has AVX2 and FMA (most
/// laptops): few-row products whose operands run along `k` as dot
/// products, the rest in 6x16 register tiles (the same blocking as the
/// AVX-512 kernel, and split across two cores the same way); [`gemm_into`]
/// on other CPUs.
///
/// # Safety
/// As for [`matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn without_avx512(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2() && a.cs == 1 && b.rs == 1 && m.min(n) <= DOT_ROWS && m > 0 && n > 0 {
        return if m <= n {
            dots_avx2::run(m, k, n, a.ptr, a.rs, b.ptr, b.cs, out, ldo as isize, 1, acc)
        } else {
            dots_avx2::run(n, k, m, b.ptr, b.cs, a.ptr, a.rs, out, 1, ldo as isize, acc)
        };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2() && m > 0 && n > 0 && k > 0 {
        return tiled::<avx2::Tiles>(m, k, n, a, b, out, ldo, acc);
    }
    gemm_into(m, k, n, a, b, out, ldo, acc)
}

/// The same product through the `gemm` crate (any x86 or other CPU).
///
/// # Safety
/// As for [`matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_into(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
) {
    gemm::gemm(
        m,
        n,
        k,
        out,
        1,
        ldo as isize,
        acc,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        if acc { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Products of at least this many multiply-adds are split in two halves
/// run on two cores, when this thread has a second core at hand (a
/// training run's helper or pool: see [`crate::par`]).
const SPLIT_FLOPS: usize = 1 << 21;

/// Raw pointers handed to the other half of a split product.
#[derive(Clone, Copy)]
struct Shared(View, View, *mut f32);
// SAFETY: the halves read the same inputs and write disjoint parts of the
// output; `par::join` returns only when both are done.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// (A method, so a closure captures the whole wrapper, not its fields.)
    fn get(self) -> (View, View, *mut f32) {
        (self.0, self.1, self.2)
    }
}

/// [`run`], in two halves on two cores when it is large enough: split
/// along the vectors (whole strips each) or, when there is only one strip,
/// along the rows.
///
/// # Safety
/// As for [`tiled`]: `s` and `v` valid for reads as `m x k` and `k x n` matrices, `out` for
/// writes as `m x n` with row stride `ldo`, and the CPU has `K`'s instructions.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn run_split<K: Kernel>(
    m: usize,
    n: usize,
    k: usize,
    s: View,
    v: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
) {
    let parallel = m * n * k >= SPLIT_FLOPS && crate::par::can_split();
    let strips = n.div_ceil(K::NR);
    if !parallel || (strips < 2 && m < 2 * K::MR) {
        return run::<K>(m, n, k, s, v, out, ldo, acc);
    }
    let sh = Shared(s, v, out);
    if strips >= 2 {
        let j = strips / 2 * K::NR;
        crate::par::join(
            move || {
                let (s, v, out) = sh.get();
                run::<K>(m, j, k, s, v, out, ldo, acc)
            },
            move || {
                let (s, v, out) = sh.get();
                let v2 = View {
                    ptr: v.ptr.offset(j as isize * v.cs),
                    ..v
                };
                run::<K>(m, n - j, k, s, v2, out.add(j), ldo, acc)
            },
        );
    } else {
        let i = m.div_ceil(K::MR) / 2 * K::MR;
        crate::par::join(
            move || {
                let (s, v, out) = sh.get();
                run::<K>(i, n, k, s, v, out, ldo, acc)
            },
            move || {
                let (s, v, out) = sh.get();
                let s2 = View {
                    ptr: s.ptr.offset(i as isize * s.rs),
                    ..s
                };
                run::<K>(m - i, n, k, s2, v, out.add(i * ldo), ldo, acc)
            },
        );
    }
}

fn grow(buf: &mut Vec<f32>, n: usize) {
    if buf.len() < n {
        buf.clear();
        buf.resize(n, 0.0);
    }
}

/// `out [m, n] (+)= s [m, k] x v [k, n]` with vectors along `n`; `out`
/// row-major with row stride `ldo`.
///
/// # Safety
/// As for [`run_split`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn run<K: Kernel>(
    m: usize,
    n: usize,
    k: usize,
    s: View,
    v: View,
    out: *mut f32,
    ldo: usize,
    acc: bool,
) {
    PACK.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let [vpack, strip] = &mut *bufs;
        let panels = m.div_ceil(K::MR);
        // k in equal blocks of at most KC
        let blocks = k.div_ceil(KC);
        let kc_max = k.div_ceil(blocks);
        // the vector operand, copied contiguous along n when it is not
        let (vptr, ldv) = if v.cs == 1 {
            (v.ptr, v.rs)
        } else {
            grow(vpack, k * n);
            pack_rows(v, k, n, vpack);
            (vpack.as_ptr(), n as isize)
        };
        // rows a multiple of 512 bytes apart fall into a few sets of the
        // first-level cache: such a strip is copied before it is reused
        let copy_strip = panels > 1 && ldv > K::NR as isize && ldv % 128 == 0;
        if copy_strip {
            grow(strip, kc_max * K::NR);
        }
        let mut p0 = 0;
        while p0 < k {
            let kc = kc_max.min(k - p0);
            let add = acc || p0 > 0;
            let mut j0 = 0;
            while j0 < n {
                let nc = K::NR.min(n - j0);
                let mut vt = vptr.offset(p0 as isize * ldv + j0 as isize);
                let mut ld = ldv;
                if copy_strip {
                    for p in 0..kc {
                        std::ptr::copy_nonoverlapping(
                            vt.offset(p as isize * ldv),
                            strip.as_mut_ptr().add(p * K::NR),
                            nc,
                        );
                    }
                    vt = strip.as_ptr();
                    ld = K::NR as isize;
                }
                for q in 0..panels {
                    let i0 = q * K::MR;
                    let mr = K::MR.min(m - i0);
                    let sp = s.ptr.offset(i0 as isize * s.rs + p0 as isize * s.cs);
                    let o = out.add(i0 * ldo + j0);
                    K::tile(mr, nc, kc, sp, s.rs, s.cs, vt, ld, o, ldo, add);
                }
                j0 += K::NR;
            }
            p0 += kc;
        }
    })
}

/// `dst [k, n]` row-major from the view `v` of that shape.
///
/// # Safety
/// `v` must be valid for reads as a `k x n` matrix.
unsafe fn pack_rows(v: View, k: usize, n: usize, dst: &mut [f32]) {
    if v.rs == 1 && v.cs > 0 {
        // a transpose: v^T is n rows of k at stride cs
        assert!(dst.len() >= k * n);
        // SAFETY: v is valid for reads as k x n (the caller's), so v^T as
        // n x k at stride cs; dst holds k x n (checked)
        unsafe { transpose::transpose(v.ptr, v.cs as usize, n, k, dst.as_mut_ptr(), n, false) }
    } else {
        for p in 0..k {
            let src = v.ptr.offset(p as isize * v.rs);
            for j in 0..n {
                *dst.get_unchecked_mut(p * n + j) = *src.offset(j as isize * v.cs);
            }
        }
    }
}

/// The `run` of [`dots`] and [`dots_avx2`]: `out [m, n]` in tiles of all
/// `m` rows against `cols(m)` of `b`'s, the last few columns one by one
/// (`cols` and `tile` are the module's own).
macro_rules! dot_products_run {
    () => {
        /// # Safety
        /// `a` must be valid for reads as `m` rows of `k` (row stride `lda`), `b` as `n` rows
        /// of `k` (stride `ldb`), `out` for writes at `i * ors + j * ocs` for every `i < m`, `j
        /// < n`; the CPU has the module's instructions.
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn run(
            m: usize,
            k: usize,
            n: usize,
            a: *const f32,
            lda: isize,
            b: *const f32,
            ldb: isize,
            out: *mut f32,
            ors: isize,
            ocs: isize,
            acc: bool,
        ) {
            /// # Safety
            /// As the enclosing function: the CPU has the kernel's
            /// features, and `a`, `b` and `out` address `M` rows of `k`,
            /// `k` rows of `n` and `M` rows of `n` floats at their strides.
            #[allow(clippy::too_many_arguments)]
            unsafe fn columns<const M: usize, const N: usize>(
                k: usize,
                n: usize,
                a: *const f32,
                lda: isize,
                b: *const f32,
                ldb: isize,
                out: *mut f32,
                ors: isize,
                ocs: isize,
                acc: bool,
            ) {
                let mut j = 0;
                while j + N <= n {
                    let (bj, oj) = (b.offset(j as isize * ldb), out.offset(j as isize * ocs));
                    tile::<M, N>(k, a, lda, bj, ldb, oj, ors, ocs, acc);
                    j += N;
                }
                while j < n {
                    let (bj, oj) = (b.offset(j as isize * ldb), out.offset(j as isize * ocs));
                    tile::<M, 1>(k, a, lda, bj, ldb, oj, ors, ocs, acc);
                    j += 1;
                }
            }
            let f = match m {
                1 => columns::<1, { cols(1) }>,
                2 => columns::<2, { cols(2) }>,
                3 => columns::<3, { cols(3) }>,
                4 => columns::<4, { cols(4) }>,
                5 => columns::<5, { cols(5) }>,
                6 => columns::<6, { cols(6) }>,
                7 => columns::<7, { cols(7) }>,
                8 => columns::<8, { cols(8) }>,
                _ => unreachable!("at most DOT_ROWS rows"),
            };
            const _: () = assert!(super::DOT_ROWS == 8);
            f(k, n, a, lda, b, ldb, out, ors, ocs, acc)
        }
    };
}

/// Dot products: `out [m, n]` for `m <= DOT_ROWS`, from `a` (`m` rows of
/// `k`, row stride `lda`) and `b` (`n` rows of `k`, row stride `ldb`), element
/// `(i, j)` stored at `out + i * ors + j * ocs`. Each tile holds all `m`
/// rows against a few of `b`'s, so `b` (the weights) is read once, in order,
/// which the hardware prefetches; the tile's vectors are summed across at
/// the end.
#[cfg(target_arch = "x86_64")]
mod dots {
    use std::arch::x86_64::*;

    /// Columns per tile for `m` rows: as many as keep 16 accumulators (with
    /// 24, 8x3, the compiler kept some on the stack; 8x2 measured 20%
    /// faster).
    const fn cols(m: usize) -> usize {
        let c = 16 / m;
        if c > 8 {
            8
        } else {
            c
        }
    }

    dot_products_run!();

    /// The tile's sums over `steps` blocks of 16 along `k` (masked loads:
    /// one block of fewer), kept in registers (as the main kernel's
    /// `depth`; updated through a reference, they were kept in memory).
    ///
    /// # Safety
    /// The `M` rows of `a` and `N` of `b` must be valid for reads of `steps` blocks of 8 or 16
    /// floats (a masked block: the lanes the mask sets), and the CPU has the module's
    /// instructions.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sums<const M: usize, const N: usize, const MASKED: bool>(
        steps: usize,
        mut a: *const f32,
        lda: isize,
        mut b: *const f32,
        ldb: isize,
        mask: __mmask16,
    ) -> [[__m512; N]; M] {
        let mut c = [[_mm512_setzero_ps(); N]; M];
        for _ in 0..steps {
            let mut w = [_mm512_setzero_ps(); N];
            for (j, wj) in w.iter_mut().enumerate() {
                let p = b.offset(j as isize * ldb);
                *wj = if MASKED {
                    _mm512_maskz_loadu_ps(mask, p)
                } else {
                    _mm512_loadu_ps(p)
                };
            }
            for (i, ci) in c.iter_mut().enumerate() {
                let p = a.offset(i as isize * lda);
                let x = if MASKED {
                    _mm512_maskz_loadu_ps(mask, p)
                } else {
                    _mm512_loadu_ps(p)
                };
                for j in 0..N {
                    ci[j] = _mm512_fmadd_ps(x, w[j], ci[j]);
                }
            }
            // (past the end after the last block: never read)
            a = a.wrapping_add(16);
            b = b.wrapping_add(16);
        }
        c
    }

    /// # Safety
    /// As for the module's `run`, for `M` rows and `N` columns.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const M: usize, const N: usize>(
        k: usize,
        a: *const f32,
        lda: isize,
        b: *const f32,
        ldb: isize,
        out: *mut f32,
        ors: isize,
        ocs: isize,
        acc: bool,
    ) {
        let whole = k / 16;
        let mut c = sums::<M, N, false>(whole, a, lda, b, ldb, 0xFFFF);
        if whole * 16 < k {
            let mask = ((1u32 << (k - whole * 16)) - 1) as __mmask16;
            let (a, b) = (a.add(whole * 16), b.add(whole * 16));
            let t = sums::<M, N, true>(1, a, lda, b, ldb, mask);
            for (ci, ti) in c.iter_mut().zip(&t) {
                for (v, &tv) in ci.iter_mut().zip(ti) {
                    *v = _mm512_add_ps(*v, tv);
                }
            }
        }
        for (i, ci) in c.iter().enumerate() {
            for (j, &v) in ci.iter().enumerate() {
                let o = out.offset(i as isize * ors + j as isize * ocs);
                let s = _mm512_reduce_add_ps(v);
                *o = if acc { *o + s } else { s };
            }
        }
    }
}

/// [`dots`] for CPUs with AVX2 and FMA but not AVX-512: 8-float vectors,
/// and tiles of at most 12 accumulators (16 vector registers).
#[cfg(target_arch = "x86_64")]
mod dots_avx2 {
    use std::arch::x86_64::*;

    const fn cols(m: usize) -> usize {
        let c = 12 / m;
        if c > 6 {
            6
        } else if c == 0 {
            1
        } else {
            c
        }
    }

    dot_products_run!();

    /// Sums over `steps` blocks of 8 along `k` (`MASKED`: one block of
    /// fewer, the lanes past the end read as zero).
    ///
    /// # Safety
    /// The `M` rows of `a` and `N` of `b` must be valid for reads of `steps` blocks of 8 or 16
    /// floats (a masked block: the lanes the mask sets), and the CPU has the module's
    /// instructions.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sums<const M: usize, const N: usize, const MASKED: bool>(
        steps: usize,
        mut a: *const f32,
        lda: isize,
        mut b: *const f32,
        ldb: isize,
        mask: __m256i,
    ) -> [[__m256; N]; M] {
        let load = |p: *const f32| {
            if MASKED {
                _mm256_maskload_ps(p, mask)
            } else {
                _mm256_loadu_ps(p)
            }
        };
        let mut c = [[_mm256_setzero_ps(); N]; M];
        for _ in 0..steps {
            let mut w = [_mm256_setzero_ps(); N];
            for (j, wj) in w.iter_mut().enumerate() {
                *wj = load(b.offset(j as isize * ldb));
            }
            for (i, ci) in c.iter_mut().enumerate() {
                let x = load(a.offset(i as isize * lda));
                for j in 0..N {
                    ci[j] = _mm256_fmadd_ps(x, w[j], ci[j]);
                }
            }
            // (past the end after the last block: never read)
            a = a.wrapping_add(8);
            b = b.wrapping_add(8);
        }
        c
    }

    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn reduce(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// As for the module's `run`, for `M` rows and `N` columns.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const M: usize, const N: usize>(
        k: usize,
        a: *const f32,
        lda: isize,
        b: *const f32,
        ldb: isize,
        out: *mut f32,
        ors: isize,
        ocs: isize,
        acc: bool,
    ) {
        let whole = k / 8;
        let mut c = sums::<M, N, false>(whole, a, lda, b, ldb, _mm256_setzero_si256());
        if whole * 8 < k {
            let left = (k - whole * 8) as i32;
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            // lanes below `left` set (all ones), the others clear
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
            let (a, b) = (a.add(whole * 8), b.add(whole * 8));
            let t = sums::<M, N, true>(1, a, lda, b, ldb, mask);
            for (ci, ti) in c.iter_mut().zip(&t) {
                for (v, &tv) in ci.iter_mut().zip(ti) {
                    *v = _mm256_add_ps(*v, tv);
                }
            }
        }
        for (i, ci) in c.iter().enumerate() {
            for (j, &v) in ci.iter().enumerate() {
                let o = out.offset(i as isize * ors + j as isize * ocs);
                let s = reduce(v);
                *o = if acc { *o + s } else { s };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of a tile (broadcast side).
    const MR: usize = 12;
    /// Columns of a tile (vector side): two 16-float registers.
    const NR: usize = 32;

    /// The kernel for [`super::tiled`]: 12x32 tiles in 24 registers.
    pub(super) struct Tiles;

    const _: () = assert!(MR == 12 && NR == 32);
    super::kernel_tiles!(Tiles, MR, NR, 16, 1 2 3 4 5 6 7 8 9 10 11 12);

    /// The tile's sums over depth `kc`, the vector loads masked or not.
    ///
    /// # Safety
    /// `sp` must be valid for reads of `M` rows (stride `srs`) of `kc` numbers (stride `scs`),
    /// `vp` of `kc` rows (stride `ldv`) of `V` vectors (the lanes the masks set when `MASKED`),
    /// and the CPU has the module's instructions.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn depth<const M: usize, const V: usize, const MASKED: bool>(
        kc: usize,
        mut sp: *const f32,
        srs: isize,
        scs: isize,
        mut vp: *const f32,
        ldv: isize,
        masks: [__mmask16; 2],
    ) -> [[__m512; V]; M] {
        let mut c = [[_mm512_setzero_ps(); V]; M];
        for _ in 0..kc {
            let mut v = [_mm512_setzero_ps(); V];
            for (x, vx) in v.iter_mut().enumerate() {
                *vx = if MASKED {
                    _mm512_maskz_loadu_ps(masks[x], vp.add(16 * x))
                } else {
                    _mm512_loadu_ps(vp.add(16 * x))
                };
            }
            for (r, cr) in c.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*sp.offset(r as isize * srs));
                for x in 0..V {
                    cr[x] = _mm512_fmadd_ps(a, v[x], cr[x]);
                }
            }
            // (past the end after the last step: never read)
            sp = sp.wrapping_offset(scs);
            vp = vp.wrapping_offset(ldv);
        }
        c
    }

    #[inline]
    fn mask(lanes: usize) -> __mmask16 {
        if lanes >= 16 {
            0xFFFF
        } else {
            ((1u32 << lanes) - 1) as __mmask16
        }
    }

    /// # Safety
    /// As for [`super::Kernel::tile`], with `mr = M` and `nc <= V` vectors; the CPU has the
    /// module's instructions.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const M: usize, const V: usize>(
        nc: usize,
        kc: usize,
        sp: *const f32,
        srs: isize,
        scs: isize,
        vt: *const f32,
        ldv: isize,
        o: *mut f32,
        ldo: usize,
        add: bool,
    ) {
        let masks = [mask(nc), mask(nc.saturating_sub(16))];
        // full-width loads where the strip is whole: masked ones cost 6%
        // more over the dense layers' products, even with every lane set
        let c = if nc == V * 16 {
            depth::<M, V, false>(kc, sp, srs, scs, vt, ldv, masks)
        } else {
            depth::<M, V, true>(kc, sp, srs, scs, vt, ldv, masks)
        };
        for (r, cr) in c.iter().enumerate() {
            let row = o.add(r * ldo);
            for x in 0..V {
                let p = row.add(16 * x);
                let val = if add {
                    _mm512_add_ps(cr[x], _mm512_maskz_loadu_ps(masks[x], p))
                } else {
                    cr[x]
                };
                _mm512_mask_storeu_ps(p, masks[x], val);
            }
        }
    }
}

/// The AVX2 + FMA counterpart of [`avx512`], for CPUs without AVX-512:
/// 6x16 tiles, 12 accumulators of 8 floats plus two vector loads and one
/// broadcast in the 16 vector registers (the blocking of the BLIS and
/// OpenBLAS Haswell kernels).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    const MR: usize = 6;
    const NR: usize = 16;

    /// The kernel for [`super::tiled`].
    pub(super) struct Tiles;

    const _: () = assert!(MR == 6 && NR == 16);
    super::kernel_tiles!(Tiles, MR, NR, 8, 1 2 3 4 5 6);

    /// The tile's sums over depth `kc`, the vector loads masked or not.
    ///
    /// # Safety
    /// `sp` must be valid for reads of `M` rows (stride `srs`) of `kc` numbers (stride `scs`),
    /// `vp` of `kc` rows (stride `ldv`) of `V` vectors (the lanes the masks set when `MASKED`),
    /// and the CPU has the module's instructions.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn depth<const M: usize, const V: usize, const MASKED: bool>(
        kc: usize,
        mut sp: *const f32,
        srs: isize,
        scs: isize,
        mut vp: *const f32,
        ldv: isize,
        masks: [__m256i; 2],
    ) -> [[__m256; V]; M] {
        let mut c = [[_mm256_setzero_ps(); V]; M];
        for _ in 0..kc {
            let mut v = [_mm256_setzero_ps(); V];
            for (x, vx) in v.iter_mut().enumerate() {
                *vx = if MASKED {
                    _mm256_maskload_ps(vp.add(8 * x), masks[x])
                } else {
                    _mm256_loadu_ps(vp.add(8 * x))
                };
            }
            for (r, cr) in c.iter_mut().enumerate() {
                let a = _mm256_set1_ps(*sp.offset(r as isize * srs));
                for x in 0..V {
                    cr[x] = _mm256_fmadd_ps(a, v[x], cr[x]);
                }
            }
            sp = sp.wrapping_offset(scs);
            vp = vp.wrapping_offset(ldv);
        }
        c
    }

    /// Lanes below `lanes` set (all ones), the others clear.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn mask(lanes: usize) -> __m256i {
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes.min(8) as i32), index)
    }

    /// # Safety
    /// As for [`super::Kernel::tile`], with `mr = M` and `nc <= V` vectors; the CPU has the
    /// module's instructions.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const M: usize, const V: usize>(
        nc: usize,
        kc: usize,
        sp: *const f32,
        srs: isize,
        scs: isize,
        vt: *const f32,
        ldv: isize,
        o: *mut f32,
        ldo: usize,
        add: bool,
    ) {
        let whole = nc == V * 8;
        let masks = [mask(nc), mask(nc.saturating_sub(8))];
        let c = if whole {
            depth::<M, V, false>(kc, sp, srs, scs, vt, ldv, masks)
        } else {
            depth::<M, V, true>(kc, sp, srs, scs, vt, ldv, masks)
        };
        store(&c, nc, masks, o, ldo, add);
    }

    /// Stores the tile `c` (`M` rows of `V` vectors; its first `nc`
    /// columns, `masks` those of each vector) at `o`, row stride `ldo`,
    /// added to what is there when `add`.
    ///
    /// # Safety
    /// `o` must be valid for reads and writes of `M` rows of `nc` floats
    /// at stride `ldo`; the CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store<const M: usize, const V: usize>(
        c: &[[__m256; V]; M],
        nc: usize,
        masks: [__m256i; 2],
        o: *mut f32,
        ldo: usize,
        add: bool,
    ) {
        let whole = nc == V * 8;
        for (r, cr) in c.iter().enumerate() {
            let row = o.add(r * ldo);
            for (x, &cx) in cr.iter().enumerate() {
                let p = row.add(8 * x);
                if whole {
                    let val = if add {
                        _mm256_add_ps(cx, _mm256_loadu_ps(p))
                    } else {
                        cx
                    };
                    _mm256_storeu_ps(p, val);
                } else {
                    let val = if add {
                        _mm256_add_ps(cx, _mm256_maskload_ps(p, masks[x]))
                    } else {
                        cx
                    };
                    _mm256_maskstore_ps(p, masks[x], val);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn naive(m: usize, k: usize, n: usize, a: View, b: View) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    // SAFETY: the views come from `view` over buffers of
                    // exactly these shapes, and i < m, p < k, j < n
                    unsafe {
                        s += *a.ptr.offset(i as isize * a.rs + p as isize * a.cs) as f64
                            * *b.ptr.offset(p as isize * b.rs + j as isize * b.cs) as f64;
                    }
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    pub(super) fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    pub(super) fn view(d: &[f32], rows: usize, cols: usize, transposed: bool) -> View {
        if transposed {
            // stored as [cols, rows]
            View::cols(d, rows)
        } else {
            View::rows(d, cols)
        }
    }

    #[test]
    fn products_match_a_naive_loop_for_every_layout_and_edge() {
        check_products(&SHAPES);
        // large products split in halves across two cores (along the
        // vectors, or along the rows when there is one strip)
        let _helper = crate::par::Helper::start(|| {}).unwrap();
        check_products(&[(64, 513, 100), (200, 784, 12), (256, 300, 64)]);
    }

    const SHAPES: [(usize, usize, usize); 17] = [
        (1, 1, 1),
        (3, 5, 7),
        (12, 3, 32),
        (13, 300, 33),
        (32, 784, 30),
        (30, 32, 784),
        (31, 257, 17),
        (64, 513, 100),
        (8, 600, 72),
        (144, 40, 9),
        // every row count of a 6-row tile and a half-empty second vector
        (6, 20, 16),
        (11, 9, 13),
        (25, 64, 41),
        // dot products (a few rows or columns, operands along k),
        // with and without a tail of k
        (8, 784, 100),
        (7, 37, 50),
        (40, 100, 5),
        (2, 16, 3),
    ];

    fn check_products(shapes: &[(usize, usize, usize)]) {
        for (si, &(m, k, n)) in shapes.iter().enumerate() {
            let ad = data(m * k, si as u64 * 4 + 1);
            let bd = data(k * n, si as u64 * 4 + 2);
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a, b) = (view(&ad, m, k, at), view(&bd, k, n, bt));
                let want = naive(m, k, n, a, b);
                type Product = unsafe fn(usize, usize, usize, View, View, *mut f32, usize, bool);
                let products: [(&str, Product); 3] = [
                    ("matmul", matmul),
                    ("without-avx512", without_avx512),
                    ("gemm", gemm_into),
                ];
                for ((name, product), acc) in
                    products.into_iter().flat_map(|p| [(p, false), (p, true)])
                {
                    // a padded output (row stride n + 3) checks the stride
                    let ldo = n + 3;
                    let start = data(m * ldo, 99);
                    let mut out = start.clone();
                    // SAFETY: `a`, `b` view m x k and k x n buffers; `out`
                    // holds m rows of stride ldo >= n
                    unsafe { product(m, k, n, a, b, out.as_mut_ptr(), ldo, acc) };
                    for i in 0..m {
                        for j in 0..ldo {
                            let got = out[i * ldo + j] as f64;
                            let expect = if j >= n {
                                start[i * ldo + j] as f64
                            } else {
                                want[i * n + j] + if acc { start[i * ldo + j] as f64 } else { 0.0 }
                            };
                            let tol = 1e-4 * (1.0 + (k as f64).sqrt());
                            assert!(
                                (got - expect).abs() < tol,
                                "{name} {m}x{k}x{n} at={at} bt={bt} acc={acc} ({i},{j}): {got} vs {expect}"
                            );
                        }
                    }
                }
            }
        }
    }
}
