//! `aelab report`: the whole study headless, into a folder.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::progress::ReportBars;
use super::Common;
use crate::data::{registry, Dataset, DatasetKind};
use crate::report::{self, Options};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Folder for REPORT.md, metrics.json and the figures.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Epochs per model (models already in the library with the same
    /// settings and epochs are reused).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// The same pipeline on a few thousand images and one epoch (for tests
    /// and a first look); nothing is reused or added to the library.
    #[arg(long)]
    pub quick: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(common: &Common, a: ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.epochs > 0, "--epochs must be at least 1");
    let device = crate::device(&common.device)?;
    let data = super::load_dataset(common, a.dataset)?;
    let other_kind = match a.dataset {
        DatasetKind::Mnist => DatasetKind::FashionMnist,
        DatasetKind::FashionMnist => DatasetKind::Mnist,
    };
    let (dir, _) = registry::resolve_data_dir(common.data_dir.as_deref());
    let other = match Dataset::load(&dir, other_kind) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "note: {} is not available ({e}); its part of Q2 is left out",
                other_kind.display_name()
            );
            None
        }
    };
    let opts = Options {
        out: a.out.clone(),
        dataset: a.dataset,
        epochs: a.epochs,
        quick: a.quick,
        models_dir: crate::models_dir(common.models_dir.as_deref()),
        // every core busy: models side by side, each on one core (a
        // model split across cores gains less than a second model does);
        // on a GPU one after another
        models_at_once: if device.is_cpu() { crate::ways() } else { 1 },
        device,
    };
    let mut bars = ReportBars::default();
    let mut progress = |note: report::Note| bars.note(note);
    let summary =
        report::run(&opts, &data, other.as_ref(), &mut progress).context("writing the report")?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {} ({} models, {} figures) in {:.0} s",
            a.out.join("REPORT.md").display(),
            summary.models.len(),
            summary.figures.len(),
            summary.total_secs
        );
    }
    Ok(())
}
