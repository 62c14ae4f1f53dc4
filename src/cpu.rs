//! What this CPU can run, found once: the AVX-512 and AVX2 + FMA kernels
//! and the element-wise passes compiled twice (std only: the checkpoint
//! fuzz target compiles this file for the random numbers).

/// `run(args)`, where `run` is a loop the compiler vectorises (marked
/// `#[inline(always)]`, so that its copy below is compiled with the
/// features): a copy of `run` compiled for AVX2 + FMA when the CPU has them
/// (the default build targets SSE2, without 8-lane vectors or fused
/// multiply-adds), else `run` itself. An expression, of `run`'s type:
/// `let sum = avx2_or_plain!(run(x: &[f32], k: f32) -> f64);`.
macro_rules! avx2_or_plain {
    ($run:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {{
        /// `run`, compiled for AVX2 + FMA.
        ///
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
            $run($($arg),*)
        }
        /// `run` (no other CPU has the features).
        ///
        /// # Safety
        /// None needed: the same as `run`.
        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
            $run($($arg),*)
        }
        if $crate::cpu::has_avx2() {
            // SAFETY: `has_avx2` is true only on an x86-64 CPU with AVX2
            // and FMA, the features `fast` is compiled for
            unsafe { fast($($arg),*) }
        } else {
            $run($($arg),*)
        }
    }};
}

/// Whether this CPU runs the AVX-512 kernels (it has AVX-512F, and
/// `AELAB_NO_AVX512` does not hide it, to compare).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            !crate::env::no_avx512() && std::arch::is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has AVX2 and FMA (for the element-wise passes compiled
/// twice: the default build targets SSE2).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}
