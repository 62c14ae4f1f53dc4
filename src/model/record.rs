//! What a checkpoint records of its run, beside the config: the loss
//! history, how the run ended, its timings and the test metrics (plain
//! serde types of the manifest; the training loop fills them in).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Mean training objective per epoch.
    pub train_loss: Vec<f64>,
    /// Validation MSE per pixel per epoch.
    pub val_loss: Vec<f64>,
    /// Learning-rate changes as (step, lr).
    #[serde(default)]
    pub lr_changes: Vec<(usize, f64)>,
    /// A VAE's reconstruction term per epoch (summed over the pixels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train_reconstruction: Vec<f64>,
    /// A VAE's KL term per epoch (nats per image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub train_kl: Vec<f64>,
    /// A VAE's validation ELBO per epoch (nats per image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_elbo: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_kl: Vec<f64>,
    /// A VAE's code dimensions with a KL above 0.01 nats, per epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_dims: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    Completed,
    Stopped,
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
    },
    /// The output went (nearly) blank and stopped improving: validation
    /// error at the level of an all-black image for two epochs in a row.
    Collapsed {
        epoch: usize,
        val_mse: f64,
        blank_mse: f64,
    },
}

impl Status {
    pub fn label(&self) -> String {
        match self {
            Status::Completed => "completed".into(),
            Status::Stopped => "stopped".into(),
            Status::Diverged { step, loss, .. } => format!(
                "diverged at step {step} (loss {loss}); the weights of the last good epoch were kept — try a lower learning rate"
            ),
            Status::Collapsed {
                epoch,
                val_mse,
                blank_mse,
            } => format!(
                "collapsed after epoch {epoch}: the output is nearly blank (validation MSE {val_mse:.4}; an all-black image scores {blank_mse:.4}) and stopped improving — try a lower learning rate"
            ),
        }
    }
}

/// How a training run went: what the loop returns and the manifest keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub history: History,
    pub epochs_done: usize,
    pub steps_done: usize,
    pub train_secs: f64,
    /// Training samples per second over the whole run (excluding validation).
    pub samples_per_sec: f64,
}

/// Quality of reconstructions over a test set (see `train::metrics` for how
/// each is computed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean squared error per pixel over the whole set.
    pub mse_per_pixel: f64,
    /// Squared error per image (sum over 784 pixels), averaged over images.
    pub sse_per_image: f64,
    /// Mean over images of 10·log10(1 / mse_i), capped at 100 dB.
    pub psnr: f64,
    /// Mean SSIM over images.
    pub ssim: f64,
    /// Linear-probe test accuracy on the codes (when computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_accuracy: Option<f64>,
    pub n_images: usize,
    /// A VAE's ELBO (nats per image, one sampled code per image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elbo: Option<f64>,
    /// A VAE's KL of its code to N(0, I) (nats per image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// A VAE's code dimensions with a KL above 0.01 nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_dims: Option<usize>,
}
