//! The headless command line: `aelab pca|train|eval|replay|presets|fetch|bench|report`. Every
//! subcommand has `--help` and `--json` (one JSON object on stdout).

mod bench;
mod eval;
mod pca;
mod presets;
mod progress;
mod replay;
mod report;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::data::{registry, Dataset, DatasetKind};

#[derive(Parser, Debug)]
#[command(
    name = "aelab",
    version,
    about = "A workbench for understanding autoencoders: PCA vs autoencoders on MNIST.\n\nWith no subcommand, opens the desktop app."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Folder holding mnist/ and fashion-mnist/ (else AELAB_DATA_DIR, else the platform data folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Folder of the model library (else AELAB_MODELS_DIR, else the platform data folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Compute device: cpu, cuda or metal (the last two need the cargo feature).
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// Ways a training run takes: each batch is split into up to this
    /// many parts, each part's forward and backward on its own core (else
    /// RAYON_NUM_THREADS, else every core on the command line; the app
    /// leaves one core to the window). At most the core count (`bench`
    /// times every count up to N, to show why). `--threads` is the same.
    #[arg(long, global = true, value_name = "N", alias = "threads")]
    pub ways: Option<usize>,
    /// App only: queue a run of this preset at launch (e.g. --start deep).
    #[arg(long, value_name = "PRESET")]
    pub start: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fit PCA on the training split and report explained variance and test error at k.
    Pca(pca::PcaArgs),
    /// Train one autoencoder preset and save it.
    Train(train::TrainArgs),
    /// Metrics of a saved model on a test set.
    Eval(eval::EvalArgs),
    /// A saved model's training replay as an animated GIF of its reconstructions.
    Replay(replay::ReplayArgs),
    /// Every preset with its parameter count.
    Presets(presets::PresetsArgs),
    /// Download a data set into the data folder (with checksums).
    Fetch(FetchArgs),
    /// Time training, the PCA fit, the interactive paths and start-up on this machine.
    Bench(bench::BenchArgs),
    /// Train (or reuse) every model of the study and write REPORT.md, metrics.json and figures.
    Report(report::ReportArgs),
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn main() -> ExitCode {
    crate::tune_allocator();
    let cli = Cli::parse();
    if cli.command.is_some() {
        // (the app sets its own count, one core fewer, in `run_native`)
        crate::set_up_threads(
            cli.common
                .ways
                .or_else(crate::env::rayon_threads)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        );
    }
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if cli.command.is_none() {
        // the app also logs to a file in the data folder, for bug reports
        logger.filter_module("aelab", log::LevelFilter::Info);
        if let Some(file) = crate::open_log_file() {
            logger.target(env_logger::Target::Pipe(Box::new(file)));
        }
    }
    let _ = logger.try_init();
    let result = match cli.command {
        None => crate::app_entry(&cli.common),
        Some(Command::Pca(a)) => pca::run(&cli.common, a),
        Some(Command::Report(a)) => report::run(&cli.common, a),
        Some(Command::Train(a)) => train::run(&cli.common, a),
        Some(Command::Eval(a)) => eval::run(&cli.common, a),
        Some(Command::Replay(a)) => replay::run(&cli.common, a),
        Some(Command::Presets(a)) => presets::run(a),
        Some(Command::Fetch(a)) => fetch(&cli.common, a),
        Some(Command::Bench(a)) => bench::run(&cli.common, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load a data set, downloading missing files with a progress bar.
pub fn load_dataset(common: &Common, kind: DatasetKind) -> anyhow::Result<Dataset> {
    let (root, _) = registry::resolve_data_dir(common.data_dir.as_deref());
    let mut bar = progress::DownloadBar::default();
    Ok(Dataset::load_or_download(&root, kind, &mut |p| {
        bar.update(p)
    })?)
}

fn fetch(common: &Common, a: FetchArgs) -> anyhow::Result<()> {
    let ds = load_dataset(common, a.dataset)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"dataset": a.dataset.slug(), "dir": ds.dir, "train": ds.train.len(), "val": ds.val.len(), "test": ds.test.len()})
        );
    } else {
        println!(
            "{} ready in {}: {} training, {} validation, {} test images",
            a.dataset.display_name(),
            ds.dir.display(),
            ds.train.len(),
            ds.val.len(),
            ds.test.len()
        );
    }
    Ok(())
}
