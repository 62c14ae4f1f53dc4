//! aelab: a workbench for understanding autoencoders. The library holds the
//! whole engine (data, PCA, models, training, checkpoints) and the desktop
//! app; the `aelab` binary is a thin wrapper over [`cli::main`].

#[macro_use]
pub mod cpu;

pub mod analysis;
pub mod app;
pub mod canvas;
pub mod cli;
pub mod data;
pub mod draw;
pub mod env;
pub mod model;
pub mod par;
pub mod pca;
pub mod report;
pub mod rng;
pub mod train;
pub mod worker;

/// The default allocator returns every large freed tensor to the kernel, so
/// each op pays page faults; mimalloc keeps freed memory for reuse (about 4x
/// faster training on these CPUs: every conv step allocates and frees
/// multi-megabyte buffers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc hands freed pages back to the kernel 10 ms after they go idle;
/// a conv training step (tens of ms) then finds its multi-megabyte buffers
/// gone and pays a page fault and a page clear for every 4 KiB of them
/// (`clear_page_erms` was 21% of `conv-unpool`'s profile). Keep idle pages
/// for 10 s instead (1 s still left `shallow-256` at batch 32 with 2,400
/// faults an epoch, 8% of its time; 10 s: none): memory still goes back
/// soon after training stops.
pub fn tune_allocator() {
    // index of mi_option_purge_delay in mimalloc's option enum (the same
    // in v2 and v3; libmimalloc-sys builds v3)
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: plain option setter; called once at start-up, before any
    // other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 10_000) };
}

static ASKED_WAYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// A number no other call in this process returns (from 1): the identity
/// of a result that the views key their work on (a PCA fit, an index).
pub fn fresh_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The machine's cores (2 where it cannot tell), read once.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    })
}

/// Into how many parts training splits each batch, each part's forward and
/// backward on its own core (see [`set_up_threads`]): as many as asked
/// for, but no more than the machine has cores (more parts than cores only
/// contend: on 2 cores, 4 or 8 ways trained dense models at batch 256 at
/// 0.7x of 2 ways, `aelab bench --ways 8`).
pub fn ways() -> usize {
    asked_ways().min(cores())
}

/// The ways asked for (`--ways`), before the cap at the core count
/// (`aelab bench` measures them all, to show the cap's reason).
pub fn asked_ways() -> usize {
    ASKED_WAYS.load(std::sync::atomic::Ordering::Relaxed).max(1)
}

/// Threads. rayon's global pool (the PCA fit, the views' rows of models)
/// gets every core. Training uses [`ways`] of them by splitting each batch
/// into that many parts, one per core, and summing their gradients in the
/// optimiser step; a batch too small to split hands half of each large
/// matrix product and of the optimiser pass to a helper thread
/// ([`par`], [`train::run::run_in_parts`]). candle's own element-wise ops
/// run on one thread (the `RAYON_NUM_THREADS` it reads on every op; unset,
/// it re-reads /proc/cpuinfo each time, ~9% of a conv run): splitting
/// single small ops across threads cost more than it gained here.
///
/// Call before any other thread starts (it writes the environment).
pub fn set_up_threads(ways: usize) {
    // (fails only if already built, e.g. by a test harness: keep that one)
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(cores())
        .build_global();
    ASKED_WAYS.store(ways.max(1), std::sync::atomic::Ordering::Relaxed);
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

/// The compute device: `cpu`, or `cuda` / `metal` when built with that feature.
pub fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => Ok(candle_core::Device::new_cuda(0)?),
        "metal" => Ok(candle_core::Device::new_metal(0)?),
        other => anyhow::bail!("unknown device {other:?}: use cpu, cuda or metal"),
    }
}

/// The device as the status bar and the logs name it: `CPU`, `CUDA 0`, `Metal 0`.
pub fn device_label(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "CPU".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("CUDA {gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("Metal {gpu_id}"),
    }
}

/// The models folder: `--models-dir`, then `AELAB_MODELS_DIR`, then the
/// platform data folder's `models/`.
pub fn models_dir(flag: Option<&std::path::Path>) -> std::path::PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = env::models_dir() {
        return p;
    }
    data::registry::platform_dir().join("models")
}

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
