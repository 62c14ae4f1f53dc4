use std::path::PathBuf;

use clap::Args;

use super::Common;
use crate::data::noise::Noise;
use crate::data::DatasetKind;
use crate::model::checkpoint;
use crate::train;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `aelab train` or the app.
    pub file: PathBuf,
    /// Test set to use (default: the one the model was trained on).
    #[arg(long)]
    pub dataset: Option<DatasetKind>,
    /// Corrupt the test inputs (targets stay clean), e.g. gaussian:0.5.
    #[arg(long, default_value = "none")]
    pub noise: Noise,
    /// Skip the linear probe.
    #[arg(long)]
    pub no_probe: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(common: &Common, a: EvalArgs) -> anyhow::Result<()> {
    let device = crate::device(&common.device)?;
    let (model, manifest) = checkpoint::load(&a.file, &device)?;
    let kind = a.dataset.unwrap_or(manifest.run.dataset);
    let ds = super::load_dataset(common, kind)?;
    let probe = (!a.no_probe).then_some(&ds.train);
    let m = train::evaluate(&model, &ds.test, a.noise, a.seed, probe)?;
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        v["preset"] = manifest.run.model.preset.clone().into();
        v["dataset"] = kind.slug().into();
        v["noise"] = a.noise.to_string().into();
        v["params"] = manifest.params.into();
        println!("{v}");
    } else {
        println!(
            "{} on {} test ({} images, noise {}): MSE/pixel {:.5}, squared error/image {:.2}, PSNR {:.2} dB, SSIM {:.4}{}",
            manifest.run.model.preset,
            kind.display_name(),
            m.n_images,
            a.noise,
            m.mse_per_pixel,
            m.sse_per_image,
            m.psnr,
            m.ssim,
            m.probe_accuracy.map(|p| format!(", linear probe {:.2}%", p * 100.0)).unwrap_or_default()
        );
        if let (Some(elbo), Some(kl)) = (m.elbo, m.kl) {
            println!(
                "VAE: ELBO {elbo:.2} nats/image, KL {kl:.2} nats, {} active code dimensions",
                m.active_dims.unwrap_or(0)
            );
        }
    }
    Ok(())
}
