use anyhow::Context;
use clap::Args;

use super::Common;
use crate::data::DatasetKind;
use crate::pca::Pca;
use crate::train::metrics;

#[derive(Args, Debug)]
pub struct PcaArgs {
    /// Number of components for the test reconstruction.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=784))]
    pub k: u16,
    #[arg(long, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Also fit a linear probe on the PCA-k codes (softmax regression).
    #[arg(long)]
    pub probe: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(common: &Common, a: PcaArgs) -> anyhow::Result<()> {
    let ds = super::load_dataset(common, a.dataset)?;
    let pca = Pca::fit(&ds.train).context("fitting PCA")?;
    let k = a.k as usize;
    let test = ds.test.to_f32();
    let rec = pca.reconstruct(&test, k);
    let m = metrics::reconstruction_metrics(&rec, &test);
    let probe = a.probe.then(|| {
        let train = ds.train.head(crate::train::run::PROBE_TRAIN_IMAGES);
        let tr = pca.project(&train.to_f32(), k);
        let te = pca.project(&test, k);
        metrics::linear_probe(&tr, &train.labels, &te, &ds.test.labels, k, 1)
    });
    let s = pca.summary();
    if a.json {
        let ev: Vec<f64> = [2usize, 10, 30, 50, 100]
            .iter()
            .map(|&i| pca.cumulative_ratio[i - 1])
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "dataset": a.dataset.slug(),
                "k": k,
                "fit_secs": pca.fit_secs,
                "n_train": pca.n_samples,
                "explained_variance_ratio_at_k": pca.explained_variance_ratio[k - 1],
                "cumulative_ratio_at_k": pca.cumulative_ratio[k - 1],
                "cumulative_ratio_at": {"2": ev[0], "10": ev[1], "30": ev[2], "50": ev[3], "100": ev[4]},
                "components_for_90": s.components_for_90,
                "components_for_95": s.components_for_95,
                "components_for_99": s.components_for_99,
                "test_mse_per_pixel": m.mse_per_pixel,
                "test_sse_per_image": m.sse_per_image,
                "test_psnr": m.psnr,
                "test_ssim": m.ssim,
                "probe_accuracy": probe,
            })
        );
    } else {
        println!(
            "PCA on {} training images of {} ({:.2} s)",
            pca.n_samples,
            a.dataset.display_name(),
            pca.fit_secs
        );
        for (kk, c) in &s.cumulative_ratio_at {
            println!(
                "  {kk:>4} components explain {:6.2}% of the variance",
                c * 100.0
            );
        }
        println!(
            "  components for 90% / 95% / 99%: {} / {} / {}",
            s.components_for_90, s.components_for_95, s.components_for_99
        );
        println!(
            "test reconstruction with k = {k}: MSE/pixel {:.5}, squared error/image {:.2}, PSNR {:.2} dB, SSIM {:.4}",
            m.mse_per_pixel, m.sse_per_image, m.psnr, m.ssim
        );
        if let Some(p) = probe {
            println!(
                "linear probe on PCA-{k} codes: {:.2}% test accuracy",
                p * 100.0
            );
        }
    }
    Ok(())
}
