use clap::Args;

use crate::analysis::study;
use crate::model::ModelConfig;

#[derive(Args, Debug)]
pub struct PresetsArgs {
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PresetsArgs) -> anyhow::Result<()> {
    let rows: Vec<ModelConfig> = study::presets()
        .into_iter()
        .map(|n| ModelConfig::preset(n).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    if a.json {
        let list: Vec<_> = rows
            .iter()
            .map(|c| {
                serde_json::json!({
                    "preset": c.preset, "params": c.param_count(), "bottleneck": c.bottleneck(),
                    "description": c.describe(), "config": c,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "presets": list }));
    } else {
        println!(
            "{:<14} {:>10} {:>10}  description",
            "preset", "params", "bottleneck"
        );
        for c in &rows {
            println!(
                "{:<14} {:>10} {:>10}  {}",
                c.preset,
                c.param_count(),
                c.bottleneck(),
                c.describe()
            );
        }
        println!("\n`sparse` means sparse-1e-4 and `denoise` means denoise-0.5; any shallow-N, sparse-λ or denoise-LEVEL works.");
    }
    Ok(())
}
