//! What a finished run records: its loss history and how it ended (plain
//! serde types, part of every checkpoint's manifest).

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
