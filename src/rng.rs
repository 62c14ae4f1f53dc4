//! A small, seeded, reproducible random generator (xoshiro256**), so that
//! shuffles, noise and initialisations are identical on every platform and
//! every run with the same seed.

/// xoshiro256** seeded through SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare_normal: Option<f32>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
            spare_normal: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Standard normal (Box-Muller, caching the second value).
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = (self.uniform() as f64).max(1e-12);
        let u2 = self.uniform() as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare_normal = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }

    /// Standard normals into `out`, many at a time: Box-Muller over blocks
    /// of pairs, with its logarithm, square root, sine and cosine computed
    /// in f32 by loops the compiler vectorises (about 4.5 ns a value, against
    /// 20 for [`Rng::normal`]'s libm calls; the noise of every denoising
    /// batch and of each Denoise-view change comes from here). One draw of
    /// the generator gives both uniforms of a pair.
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for chunk in out.chunks_mut(2 * PAIRS) {
            let mut draws = [0u64; PAIRS];
            for d in &mut draws {
                *d = self.next_u64();
            }
            let z = box_muller(&draws);
            chunk.copy_from_slice(&z[..chunk.len()]);
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

/// Pairs per block of [`Rng::fill_normal`].
const PAIRS: usize = 16;

/// `[r cos t, r sin t]` per pair from one 64-bit draw: `r = sqrt(-2 ln u1)`
/// with `u1` in (0, 1] from the top 24 bits, `t = 2 pi u2` with `u2` in
/// [0, 1) from 24 lower ones. Integer work and branch-free arithmetic only,
/// so the loop vectorises; compiled for AVX2 + FMA when the CPU has them.
fn box_muller(draws: &[u64; PAIRS]) -> [f32; 2 * PAIRS] {
    #[inline(always)]
    fn run(draws: &[u64; PAIRS]) -> [f32; 2 * PAIRS] {
        const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
        let (mut r, mut c, mut s) = ([0f32; PAIRS], [0f32; PAIRS], [0f32; PAIRS]);
        for i in 0..PAIRS {
            let u1 = (((draws[i] >> 40) + 1) as i32) as f32 * SCALE;
            r[i] = (-2.0 * ln(u1)).sqrt();
            (s[i], c[i]) = sin_cos_turns(((draws[i] >> 8) & 0xFF_FFFF) as u32);
        }
        let mut z = [0f32; 2 * PAIRS];
        for i in 0..PAIRS {
            z[2 * i] = r[i] * c[i];
            z[2 * i + 1] = r[i] * s[i];
        }
        z
    }
    avx2_or_plain!(run(draws: &[u64; PAIRS]) -> [f32; 2 * PAIRS])
}

/// Natural logarithm of a positive, finite, normal `x` (relative error
/// about 1e-7): `x = m 2^e` with `m` in [sqrt(1/2), sqrt(2)), and
/// `ln m = 2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| < 0.172`, as a series.
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xFF) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f32 * std::f32::consts::LN_2 + 2.0 * s * series
}

/// `(sin, cos)` of `2 pi u` for `u = bits / 2^24` in [0, 1) (error about
/// 1e-7): the quarter turn `q` (the top two bits) and the angle `a` within
/// it (below pi/2), Taylor series for `a`, then the quarter turn applied by
/// swaps and signs.
#[inline(always)]
fn sin_cos_turns(bits: u32) -> (f32, f32) {
    let q = bits >> 22;
    let a = (bits & 0x3F_FFFF) as i32 as f32 * (std::f32::consts::FRAC_PI_2 / (1u32 << 22) as f32);
    let a2 = a * a;
    // (products with constants: a division by 6.0 is a division)
    let sin = a
        * (1.0
            - a2 * (1.0 / 6.0)
                * (1.0
                    - a2 * (1.0 / 20.0)
                        * (1.0
                            - a2 * (1.0 / 42.0)
                                * (1.0 - a2 * (1.0 / 72.0) * (1.0 - a2 * (1.0 / 110.0))))));
    let cos = 1.0
        - a2 * 0.5
            * (1.0
                - a2 * (1.0 / 12.0)
                    * (1.0
                        - a2 * (1.0 / 30.0)
                            * (1.0
                                - a2 * (1.0 / 56.0)
                                    * (1.0 - a2 * (1.0 / 90.0) * (1.0 - a2 * (1.0 / 132.0))))));
    // quarter turns: (sin, cos) -> (cos, -sin) -> (-sin, -cos) -> (-cos, sin)
    let (s, c) = if q & 1 == 1 { (cos, sin) } else { (sin, cos) };
    let s = if q >= 2 { -s } else { s };
    let c = if q == 1 || q == 2 { -c } else { c };
    (s, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let (mut su, mut sn, mut sn2) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            su += u as f64;
            let z = r.normal() as f64;
            sn += z;
            sn2 += z * z;
        }
        assert!((su / n as f64 - 0.5).abs() < 0.01);
        assert!((sn / n as f64).abs() < 0.01);
        assert!((sn2 / n as f64 - 1.0).abs() < 0.02);
    }

    #[test]
    fn block_normals_have_normal_moments_and_tails() {
        let mut r = Rng::new(11);
        // an odd length: the last block is partial
        let mut z = vec![f32::NAN; 400_001];
        r.fill_normal(&mut z);
        let n = z.len() as f64;
        let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let kurt = z.iter().map(|&v| (v as f64 - mean).powi(4)).sum::<f64>() / n / var.powi(2);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        // P(|z| > 2) = 4.55%, P(|z| > 3) = 0.27%
        let beyond = |k: f32| z.iter().filter(|v| v.abs() > k).count() as f64 / n;
        assert!((beyond(2.0) - 0.0455).abs() < 0.002, "{}", beyond(2.0));
        assert!((beyond(3.0) - 0.0027).abs() < 0.0004, "{}", beyond(3.0));
        // both members of a pair are used: the odd positions are normal too
        let odd_var = z
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&v| (v as f64).powi(2))
            .sum::<f64>()
            / (n / 2.0);
        assert!((odd_var - 1.0).abs() < 0.015, "odd variance {odd_var}");
        // reproducible
        let mut again = vec![0f32; z.len()];
        Rng::new(11).fill_normal(&mut again);
        assert_eq!(z, again);
    }

    #[test]
    fn vectorisable_ln_and_sin_cos_match_libm() {
        let mut worst_ln = 0f64;
        let mut worst_trig = 0f64;
        for i in 0..=(1u32 << 16) {
            let u = (i as f32 + 0.5) / (1u32 << 16) as f32;
            for x in [u, u * 1e-7, 1.0 - u * 1e-3] {
                let x = x.clamp(f32::MIN_POSITIVE, 1.0);
                let want = (x as f64).ln();
                worst_ln = worst_ln.max((ln(x) as f64 - want).abs() / want.abs().max(1e-3));
            }
            let bits = (i * 256).min((1 << 24) - 1);
            let (s, c) = sin_cos_turns(bits);
            let t = std::f64::consts::TAU * bits as f64 / (1u32 << 24) as f64;
            worst_trig = worst_trig.max((s as f64 - t.sin()).abs().max((c as f64 - t.cos()).abs()));
        }
        assert!(worst_ln < 1e-6, "ln: relative error {worst_ln}");
        assert!(worst_trig < 1e-6, "sin/cos: error {worst_trig}");
        assert_eq!(ln(1.0), 0.0);
        assert!(
            (ln(1.0 / (1u32 << 24) as f32) as f64 + 24.0 * std::f64::consts::LN_2).abs() < 1e-5
        );
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(5);
        let mut v: Vec<usize> = (0..1000).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
        }
    }
}
