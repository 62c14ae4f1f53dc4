//! aelab: a workbench for understanding autoencoders. The library holds the
//! whole engine (data, PCA, models, training, checkpoints) and the desktop
//! app; the `aelab` binary is a thin wrapper over [`cli::main`].

pub mod cli;
pub mod data;
pub mod draw;
pub mod model;
pub mod pca;
pub mod report;
pub mod rng;
pub mod train;
pub mod worker;

/// The default allocator returns every large freed tensor to the kernel, so
/// each op pays page faults; mimalloc keeps freed memory for reuse (about 4x
/// faster training on these CPUs, see DESIGN.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The compute device: `cpu`, or `cuda` / `metal` when built with that feature.
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => Ok(candle_core::Device::new_cuda(0)?),
        "metal" => Ok(candle_core::Device::new_metal(0)?),
        other => anyhow::bail!("unknown device {other:?}: use cpu, cuda or metal"),
    }
}

/// The models folder: `--models-dir`, then `AELAB_MODELS_DIR`, then the
/// platform data folder's `models/`.
pub fn models_dir(flag: Option<&std::path::Path>) -> std::path::PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("AELAB_MODELS_DIR").filter(|p| !p.is_empty()) {
        return p.into();
    }
    data::registry::platform_dir().join("models")
}

pub mod app;

/// Where the app writes its log (`RUST_LOG` filters it, as on stderr).
pub fn log_file_path() -> std::path::PathBuf {
    data::registry::platform_dir().join("aelab.log")
}

/// The log file, appended to and echoed on stderr; None when it cannot be
/// opened (then only stderr is used).
pub fn open_log_file() -> Option<Tee> {
    let path = log_file_path();
    std::fs::create_dir_all(path.parent()?).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    Some(Tee(file))
}

/// Writes to a file and to stderr.
pub struct Tee(std::fs::File);

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        self.0.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `aelab` with no subcommand: the desktop app.
pub fn app_entry(common: &cli::Common) -> anyhow::Result<()> {
    app::run_native(common)
}
