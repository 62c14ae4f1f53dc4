//! `aelab replay`: a saved model's training replay, as an animated GIF of
//! its reconstructions of one test digit per class at every snapshot (the
//! Train view's Export GIF, headless), and the snapshots' moments.

use std::path::PathBuf;

use clap::Args;

use super::Common;
use crate::analysis::{replay, LibraryEntry, ModelCache, ModelRef};
use crate::model::checkpoint;
use crate::model::replay as snapshots;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A checkpoint written by `aelab train` or the app (its replay is the
    /// `.replay` file beside it).
    pub file: PathBuf,
    /// Where to write the GIF (default: the checkpoint's name with `.gif`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Milliseconds each snapshot shows (the last three times as long).
    #[arg(long, default_value_t = replay::FRAME_MS)]
    pub frame_ms: u32,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(common: &Common, a: ReplayArgs) -> anyhow::Result<()> {
    let manifest = checkpoint::read_manifest(&a.file)?;
    let replay_path = snapshots::path_for(&a.file);
    // the moments, or why the replay cannot be read
    let moments = snapshots::read_moments(&replay_path)?;
    anyhow::ensure!(
        !moments.is_empty(),
        "{}: the replay holds no snapshot",
        replay_path.display()
    );
    let entry = LibraryEntry {
        path: a.file.clone(),
        manifest,
        replay: moments.clone(),
    };
    let ds = super::load_dataset(common, entry.manifest.run.dataset)?;
    let images = replay::images(&ds.test);
    let cache = ModelCache::default();
    let frames = replay::frames(&cache, &ModelRef::of(&entry), &moments, &images)
        .map_err(anyhow::Error::msg)?;
    let gif = replay::gif(&frames, a.frame_ms).map_err(anyhow::Error::msg)?;
    let out = a.out.unwrap_or_else(|| a.file.with_extension("gif"));
    crate::data::registry::write_atomic(&out, &gif)?;
    if a.json {
        let v = serde_json::json!({
            "out": out,
            "frames": frames.len(),
            "bytes": gif.len(),
            "moments": moments,
        });
        println!("{v}");
    } else {
        for m in &moments {
            let val = m
                .val_loss
                .map(|v| format!(", val MSE {v:.5}"))
                .unwrap_or_default();
            println!("{}{val}", m.label());
        }
        println!(
            "wrote {} ({} frames, {} KB)",
            out.display(),
            frames.len(),
            gif.len() / 1024
        );
    }
    Ok(())
}
