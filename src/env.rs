//! Every environment variable aelab reads, in one place (std only: the
//! checkpoint fuzz target compiles this file too). Each is read when asked
//! for, so tests that set one see it.

use std::path::PathBuf;

/// A variable that is set, non-empty and not `0`.
fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A non-empty path variable.
fn path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// `AELAB_DATA_DIR`: the folder holding `mnist/` and `fashion-mnist/`
/// (after `--data-dir`, before the platform data folder).
pub fn data_dir() -> Option<PathBuf> {
    path("AELAB_DATA_DIR")
}

/// `AELAB_MODELS_DIR`: the model library (after `--models-dir`).
pub fn models_dir() -> Option<PathBuf> {
    path("AELAB_MODELS_DIR")
}

/// `AELAB_OFFLINE=1`: never download a data set.
pub fn offline() -> bool {
    flag("AELAB_OFFLINE")
}

/// The download mirrors of the data set `slug` (comma-separated base URLs
/// that replace the built-in ones): `AELAB_MIRRORS_MNIST`,
/// `AELAB_MIRRORS_FASHION_MNIST` (the slug upper-cased, `-` as `_`), else
/// `AELAB_MIRRORS` for every data set.
pub fn mirrors(slug: &str) -> Option<Vec<String>> {
    let own = format!("AELAB_MIRRORS_{}", slug.to_uppercase().replace('-', "_"));
    let list = std::env::var(own)
        .or_else(|_| std::env::var("AELAB_MIRRORS"))
        .ok()?;
    Some(
        list.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// `AELAB_NO_AVX512=1`: run the AVX2 kernels on a CPU with AVX-512 (to
/// measure what most laptops get).
pub fn no_avx512() -> bool {
    flag("AELAB_NO_AVX512")
}

/// `AELAB_FRAME_LOG=1`: the app logs its frame times every few seconds.
pub fn frame_log() -> bool {
    flag("AELAB_FRAME_LOG")
}

/// `AELAB_WINDOW=WIDTHxHEIGHT` (points): the first window size, e.g. for
/// screenshots at a laptop's 1366x768 (the window then does not remember
/// its size).
pub fn window() -> Option<[f32; 2]> {
    let v = std::env::var("AELAB_WINDOW").ok()?;
    let (w, h) = v.split_once('x')?;
    Some([w.trim().parse().ok()?, h.trim().parse().ok()?])
}

/// `RAYON_NUM_THREADS`, if set and valid: the training ways asked for when
/// `--ways` is not given (aelab then sets it to 1 for candle's own ops).
pub fn rayon_threads() -> Option<usize> {
    std::env::var("RAYON_NUM_THREADS")
        .ok()?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_data_set_has_its_own_mirrors() {
        std::env::set_var("AELAB_MIRRORS_FASHION_MNIST", "http://f/ , http://g/");
        assert_eq!(
            super::mirrors("fashion-mnist"),
            Some(vec!["http://f/".to_string(), "http://g/".to_string()])
        );
        // MNIST keeps its own (or the shared list, or the built-in ones)
        if std::env::var_os("AELAB_MIRRORS").is_none()
            && std::env::var_os("AELAB_MIRRORS_MNIST").is_none()
        {
            assert_eq!(super::mirrors("mnist"), None);
        }
        std::env::remove_var("AELAB_MIRRORS_FASHION_MNIST");
    }

    #[test]
    fn flags_read_zero_and_empty_as_unset() {
        // a name no other test sets
        let name = "AELAB_ENV_TEST_FLAG";
        std::env::remove_var(name);
        assert!(!super::flag(name));
        std::env::set_var(name, "0");
        assert!(!super::flag(name));
        std::env::set_var(name, "");
        assert!(!super::flag(name));
        std::env::set_var(name, "1");
        assert!(super::flag(name));
        std::env::remove_var(name);
    }
}
