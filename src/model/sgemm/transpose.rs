//! Transposing copies for the products: a vector operand packed along its
//! vectors, and a product computed as its transpose stored back. In 8 x 8
//! blocks held in AVX2 registers (8 loads, 24 shuffles, 8 stores) where the
//! CPU has AVX2, element by element otherwise. A layer's forward pass on a
//! part of 128 rows transposes about 260,000 numbers this way.

/// `dst [cols, rows] (+)= src [rows, cols]^T`: `src` row-major with row
/// stride `lds`, `dst` with row stride `ldd`, added to when `acc`.
///
/// # Safety
/// `src` must be valid for reads as `rows x cols` at stride `lds`, and
/// `dst` for reads and writes as `cols x rows` at stride `ldd`; they must
/// not overlap.
pub(super) unsafe fn transpose(
    src: *const f32,
    lds: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
    acc: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has_avx2() {
        // SAFETY: as this function's; the CPU has AVX2
        return unsafe { blocks(src, lds, rows, cols, dst, ldd, acc) };
    }
    // SAFETY: as this function's
    unsafe { elements(src, lds, 0..rows, 0..cols, dst, ldd, acc) }
}

/// The elements `rows x cols` of [`transpose`] one by one.
///
/// # Safety
/// As for [`transpose`], for these rows and columns.
unsafe fn elements(
    src: *const f32,
    lds: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    dst: *mut f32,
    ldd: usize,
    acc: bool,
) {
    for r in rows {
        for c in cols.clone() {
            let v = *src.add(r * lds + c);
            let d = dst.add(c * ldd + r);
            *d = if acc { *d + v } else { v };
        }
    }
}

/// [`transpose`] in 8 x 8 blocks, the edges element by element.
///
/// # Safety
/// As for [`transpose`]; the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks(
    src: *const f32,
    lds: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
    acc: bool,
) {
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    for r0 in (0..r8).step_by(8) {
        for c0 in (0..c8).step_by(8) {
            block(
                src.add(r0 * lds + c0),
                lds,
                dst.add(c0 * ldd + r0),
                ldd,
                acc,
            );
        }
    }
    elements(src, lds, 0..r8, c8..cols, dst, ldd, acc);
    elements(src, lds, r8..rows, 0..cols, dst, ldd, acc);
}

/// One 8 x 8 block: `dst[c][r] (+)= src[r][c]`.
///
/// # Safety
/// `src` must be valid for reads of 8 rows of 8 at stride `lds`, `dst` for
/// reads and writes of 8 rows of 8 at stride `ldd`; the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block(src: *const f32, lds: usize, dst: *mut f32, ldd: usize, acc: bool) {
    use std::arch::x86_64::*;
    let mut r = [_mm256_setzero_ps(); 8];
    for (i, ri) in r.iter_mut().enumerate() {
        *ri = _mm256_loadu_ps(src.add(i * lds));
    }
    // pairs of rows interleaved: t[2i], t[2i + 1] from rows 2i, 2i + 1
    let mut t = [_mm256_setzero_ps(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // s[h * 4 + c]: rows 4h..4h + 4 of columns c (low half) and c + 4
    // (high half)
    let mut s = [_mm256_setzero_ps(); 8];
    for h in [0, 4] {
        s[h] = _mm256_shuffle_ps::<0x44>(t[h], t[h + 2]);
        s[h + 1] = _mm256_shuffle_ps::<0xEE>(t[h], t[h + 2]);
        s[h + 2] = _mm256_shuffle_ps::<0x44>(t[h + 1], t[h + 3]);
        s[h + 3] = _mm256_shuffle_ps::<0xEE>(t[h + 1], t[h + 3]);
    }
    for c in 0..8 {
        let (lo, hi) = (s[c % 4], s[c % 4 + 4]);
        let col = if c < 4 {
            _mm256_permute2f128_ps::<0x20>(lo, hi)
        } else {
            _mm256_permute2f128_ps::<0x31>(lo, hi)
        };
        let d = dst.add(c * ldd);
        let v = if acc {
            _mm256_add_ps(_mm256_loadu_ps(d), col)
        } else {
            col
        };
        _mm256_storeu_ps(d, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_match_element_by_element_for_every_edge() {
        for (rows, cols) in [
            (1, 1),
            (8, 8),
            (16, 24),
            (13, 9),
            (128, 784),
            (37, 61),
            (7, 20),
        ] {
            let (lds, ldd) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * lds).map(|i| i as f32 * 0.5 - 7.0).collect();
            for acc in [false, true] {
                let start: Vec<f32> = (0..cols * ldd).map(|i| (i % 11) as f32).collect();
                let (mut fast, mut slow) = (start.clone(), start.clone());
                // SAFETY: the buffers hold rows x lds and cols x ldd
                unsafe {
                    transpose(src.as_ptr(), lds, rows, cols, fast.as_mut_ptr(), ldd, acc);
                    elements(
                        src.as_ptr(),
                        lds,
                        0..rows,
                        0..cols,
                        slow.as_mut_ptr(),
                        ldd,
                        acc,
                    );
                }
                assert_eq!(fast, slow, "{rows}x{cols} acc={acc}");
                // and the reference is a transpose
                for r in 0..rows {
                    for c in 0..cols {
                        let want = src[r * lds + c] + if acc { start[c * ldd + r] } else { 0.0 };
                        assert_eq!(slow[c * ldd + r], want);
                    }
                }
            }
        }
    }
}
