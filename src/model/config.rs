//! One serde config type for every autoencoder of the study, and the presets
//! with their exact parameter counts.

use serde::{Deserialize, Serialize};

use crate::data::noise::{Noise, NoiseKind};
use crate::data::{DatasetKind, PIXELS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Sigmoid, Activation::Tanh];
    pub fn label(self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// How the convolutional decoder climbs back from 4x4 to 28x28.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ConvDecoder {
    /// Max-unpooling with the encoder's switches, then 3x3 convolutions.
    Unpool,
    /// Transposed convolutions with stride 2.
    Deconv,
    /// Max-unpooling, then stride-1 transposed convolutions.
    Both,
}

impl ConvDecoder {
    pub const ALL: [ConvDecoder; 3] = [ConvDecoder::Unpool, ConvDecoder::Deconv, ConvDecoder::Both];
    pub fn slug(self) -> &'static str {
        match self {
            ConvDecoder::Unpool => "unpool",
            ConvDecoder::Deconv => "deconv",
            ConvDecoder::Both => "both",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Arch {
    /// 784 -> encoder sizes (the last is the code) -> decoder sizes -> 784.
    Dense {
        encoder: Vec<usize>,
        decoder: Vec<usize>,
        activation: Activation,
    },
    /// conv8-pool-conv16-pool-conv16-pool (28->14->7->4), then a decoder.
    Conv { decoder: ConvDecoder },
    /// A variational autoencoder: 784 -> encoder sizes -> the mean and the
    /// log-variance of a `latent`-dimensional Gaussian code; the decoder
    /// mirrors the encoder back to 784 (sigmoid output). Trained on the
    /// reconstruction loss summed over pixels + `beta` · KL(q(z|x) ‖ N(0, I)),
    /// with `beta` ramped up from 0 over the first epoch when `warmup`.
    Vae {
        encoder: Vec<usize>,
        latent: usize,
        activation: Activation,
        beta: f64,
        #[serde(default)]
        warmup: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Mean squared error of the sigmoid output.
    #[default]
    Mse,
    /// Binary cross-entropy on the logits (numerically stable).
    Bce,
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mse" => Ok(LossKind::Mse),
            "bce" => Ok(LossKind::Bce),
            other => Err(format!("unknown loss {other:?}: use bce or mse")),
        }
    }
}

/// What a model is and what it is trained to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Preset name this config started from (for display and the library).
    pub preset: String,
    pub arch: Arch,
    /// λ of the L1 penalty on the code activations (0 = none).
    #[serde(default)]
    pub l1: f64,
    /// Noise applied to inputs during training (targets stay clean).
    #[serde(default)]
    pub noise: Noise,
    #[serde(default)]
    pub loss: LossKind,
}

/// Optimiser and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            seed: 1,
        }
    }
}

/// Everything one training run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainParams,
    pub dataset: DatasetKind,
}

pub const SPARSE_HIDDEN: usize = 1024;

impl ModelConfig {
    fn dense(preset: &str, encoder: Vec<usize>, decoder: Vec<usize>) -> Self {
        ModelConfig {
            preset: preset.into(),
            arch: Arch::Dense {
                encoder,
                decoder,
                activation: Activation::Relu,
            },
            l1: 0.0,
            noise: Noise::none(),
            loss: LossKind::Mse,
        }
    }

    /// A preset by name: `deep`, `shallow-64|128|256` (any size works),
    /// `sparse` / `sparse-1e-4`, `denoise` / `denoise-0.7`,
    /// `conv-unpool|deconv|both`.
    pub fn preset(name: &str) -> Result<ModelConfig, String> {
        let bad = || format!("unknown preset {name:?}; run `aelab presets` for the list");
        Ok(match name {
            "deep" => Self::dense("deep", vec![512, 256, 128, 30], vec![128, 256]),
            "sparse" => Self::preset("sparse-1e-4")?,
            "vae" => Self::preset("vae-2")?,
            "denoise" => Self::preset("denoise-0.5")?,
            _ => {
                if let Some(size) = name.strip_prefix("shallow-") {
                    let size: usize = size.parse().map_err(|_| bad())?;
                    if size == 0 || size > 8192 {
                        return Err(bad());
                    }
                    Self::dense(name, vec![size], vec![])
                } else if let Some(l) = name.strip_prefix("sparse-") {
                    let l1: f64 = l.parse().map_err(|_| bad())?;
                    let mut c = Self::dense(name, vec![SPARSE_HIDDEN], vec![]);
                    c.l1 = l1;
                    c
                } else if let Some(l) = name.strip_prefix("denoise-") {
                    let level: f32 = l.parse().map_err(|_| bad())?;
                    if !(0.0..=1.0).contains(&level) {
                        return Err(bad());
                    }
                    let mut c = Self::dense(name, vec![256], vec![]);
                    c.noise = Noise {
                        kind: NoiseKind::Gaussian,
                        level,
                    };
                    c
                } else if let Some(d) = name.strip_prefix("vae-") {
                    let latent: usize = d.parse().map_err(|_| bad())?;
                    if latent == 0 || latent > 256 {
                        return Err(bad());
                    }
                    ModelConfig {
                        preset: name.into(),
                        arch: Arch::Vae {
                            encoder: vec![512, 256],
                            latent,
                            activation: Activation::Relu,
                            beta: 1.0,
                            warmup: false,
                        },
                        l1: 0.0,
                        noise: Noise::none(),
                        // BCE summed over the pixels: the Bernoulli likelihood
                        loss: LossKind::Bce,
                    }
                } else if let Some(d) = name.strip_prefix("conv-") {
                    let decoder = ConvDecoder::ALL
                        .into_iter()
                        .find(|x| x.slug() == d)
                        .ok_or_else(bad)?;
                    ModelConfig {
                        preset: name.into(),
                        arch: Arch::Conv { decoder },
                        l1: 0.0,
                        noise: Noise::none(),
                        // Sigmoid + MSE collapses conv AEs to black; BCE trains.
                        loss: LossKind::Bce,
                    }
                } else {
                    return Err(bad());
                }
            }
        })
    }

    /// Parameter count (weights and biases).
    pub fn param_count(&self) -> usize {
        param_shapes(self)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Size of the code (the bottleneck).
    pub fn bottleneck(&self) -> usize {
        match &self.arch {
            Arch::Dense { encoder, .. } => *encoder.last().unwrap_or(&PIXELS),
            Arch::Conv { .. } => 16 * 4 * 4,
            Arch::Vae { latent, .. } => *latent,
        }
    }

    pub fn is_conv(&self) -> bool {
        matches!(self.arch, Arch::Conv { .. })
    }

    pub fn is_vae(&self) -> bool {
        matches!(self.arch, Arch::Vae { .. })
    }

    /// The VAE's β and warm-up (None for the other models).
    pub fn vae_beta(&self) -> Option<(f64, bool)> {
        match self.arch {
            Arch::Vae { beta, warmup, .. } => Some((beta, warmup)),
            _ => None,
        }
    }

    /// One plain-language sentence on what this kind of model is for.
    pub fn explain(&self) -> &'static str {
        match &self.arch {
            Arch::Conv {
                decoder: ConvDecoder::Unpool,
            } => "Unpooling: the decoder puts each value back where the encoder's max-pooling found its maximum, then smooths with 3x3 convolutions.",
            Arch::Conv {
                decoder: ConvDecoder::Deconv,
            } => "Transposed convolution: the decoder learns its own 3x3 upsampling filters (stride 2), with no help from the encoder.",
            Arch::Conv {
                decoder: ConvDecoder::Both,
            } => "Both: unpooling with the encoder's switches, then learned transposed convolutions.",
            Arch::Dense { .. } if self.l1 > 0.0 => {
                "Sparse: an L1 penalty (λ) pushes most code units to zero for each image, so each unit learns a distinct stroke."
            }
            Arch::Dense { .. } if !self.noise.is_none() => {
                "Denoising: trained to rebuild the clean digit from a corrupted one, so it learns what digits look like rather than copying pixels."
            }
            Arch::Dense { encoder, .. } if encoder.len() == 1 => {
                "Shallow: one hidden layer; its size is the bottleneck, the number of values the image is squeezed into."
            }
            Arch::Dense { .. } => {
                "Deep: several layers squeeze the image into a small code (the bottleneck) and expand it back; the non-linear cousin of PCA."
            }
            Arch::Vae { .. } => {
                "Variational: the encoder gives a Gaussian over codes, not one code, and a KL penalty pulls it towards N(0, I), so every point of the code space decodes to a plausible digit: you can walk it and sample from it."
            }
        }
    }

    /// A one-line description, e.g. `784-512-256-128-30-128-256-784 ReLU`.
    pub fn describe(&self) -> String {
        match &self.arch {
            Arch::Dense {
                encoder,
                decoder,
                activation,
            } => {
                let sizes: Vec<String> = std::iter::once(PIXELS)
                    .chain(encoder.iter().copied())
                    .chain(decoder.iter().copied())
                    .chain(std::iter::once(PIXELS))
                    .map(|s| s.to_string())
                    .collect();
                let mut s = format!("dense {} {}", sizes.join("-"), activation.label());
                if self.l1 > 0.0 {
                    s += &format!(", L1 λ={}", self.l1);
                }
                if !self.noise.is_none() {
                    s += &format!(
                        ", trained on {} noise {}",
                        self.noise.kind.label(),
                        self.noise.level
                    );
                }
                s
            }
            Arch::Vae {
                encoder,
                latent,
                activation,
                beta,
                warmup,
            } => {
                let enc: Vec<String> = std::iter::once(PIXELS)
                    .chain(encoder.iter().copied())
                    .map(|s| s.to_string())
                    .collect();
                let dec: Vec<String> = encoder
                    .iter()
                    .rev()
                    .copied()
                    .chain(std::iter::once(PIXELS))
                    .map(|s| s.to_string())
                    .collect();
                format!(
                    "VAE {}-(μ, log σ² of {latent})-{} {}, {} + β={beta}·KL{}",
                    enc.join("-"),
                    dec.join("-"),
                    activation.label(),
                    match self.loss {
                        LossKind::Bce => "BCE",
                        LossKind::Mse => "MSE",
                    },
                    if *warmup {
                        " (β warmed up over epoch 1)"
                    } else {
                        ""
                    }
                )
            }
            Arch::Conv { decoder } => format!(
                "conv 8-16-16 (28-14-7-4), {} decoder",
                match decoder {
                    ConvDecoder::Unpool => "max-unpooling",
                    ConvDecoder::Deconv => "transposed-convolution",
                    ConvDecoder::Both => "unpooling + transposed-convolution",
                }
            ),
        }
    }
}

/// Dense layers `{prefix}.{i}` of `sizes` outputs, fed `fan_in` values:
/// their weights `[out, in]` and biases `[out]` into `out`; the last size.
fn dense_stack(
    out: &mut Vec<(String, Vec<usize>)>,
    prefix: &str,
    sizes: &[usize],
    mut fan_in: usize,
) -> usize {
    for (i, &h) in sizes.iter().enumerate() {
        out.push((format!("{prefix}.{i}.weight"), vec![h, fan_in]));
        out.push((format!("{prefix}.{i}.bias"), vec![h]));
        fan_in = h;
    }
    fan_in
}

/// Names and shapes of every parameter of `config`, in a fixed order.
pub fn param_shapes(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    match &config.arch {
        Arch::Dense {
            encoder, decoder, ..
        } => {
            let fan_in = dense_stack(&mut out, "enc", encoder, PIXELS);
            let sizes: Vec<usize> = decoder.iter().copied().chain([PIXELS]).collect();
            dense_stack(&mut out, "dec", &sizes, fan_in);
        }
        Arch::Vae {
            encoder, latent, ..
        } => {
            let fan_in = dense_stack(&mut out, "enc", encoder, PIXELS);
            for head in ["enc.mu", "enc.logvar"] {
                out.push((format!("{head}.weight"), vec![*latent, fan_in]));
                out.push((format!("{head}.bias"), vec![*latent]));
            }
            let sizes: Vec<usize> = encoder.iter().rev().copied().chain([PIXELS]).collect();
            dense_stack(&mut out, "dec", &sizes, *latent);
        }
        Arch::Conv { decoder } => {
            for (name, cin, cout) in [
                ("enc.conv1", 1, 8),
                ("enc.conv2", 8, 16),
                ("enc.conv3", 16, 16),
            ] {
                out.push((format!("{name}.weight"), vec![cout, cin, 3, 3]));
                out.push((format!("{name}.bias"), vec![cout]));
            }
            let transposed = !matches!(decoder, ConvDecoder::Unpool);
            for (name, cin, cout) in [
                ("dec.layer3", 16, 16),
                ("dec.layer2", 16, 8),
                ("dec.layer1", 8, 1),
            ] {
                let shape = if transposed {
                    vec![cin, cout, 3, 3]
                } else {
                    vec![cout, cin, 3, 3]
                };
                out.push((format!("{name}.weight"), shape));
                out.push((format!("{name}.bias"), vec![cout]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_parameter_counts() {
        let count = |n: &str| ModelConfig::preset(n).unwrap().param_count();
        assert_eq!(count("deep"), 808_494);
        assert_eq!(count("shallow-64"), 101_200);
        assert_eq!(count("shallow-128"), 201_616);
        assert_eq!(count("shallow-256"), 402_448);
        assert_eq!(count("sparse-1e-4"), 784 * 1024 + 1024 + 1024 * 784 + 784);
        assert_eq!(count("denoise-0.3"), 402_448);
        // encoder 80 + 1168 + 2320; decoders mirror it back to one channel
        assert_eq!(count("conv-unpool"), 3568 + 2320 + 1160 + 73);
        assert_eq!(count("conv-deconv"), 3568 + 2320 + 1160 + 73);
        assert_eq!(count("conv-both"), 3568 + 2320 + 1160 + 73);
    }

    #[test]
    fn presets_parse_their_parameters() {
        assert_eq!(ModelConfig::preset("sparse-1e-6").unwrap().l1, 1e-6);
        assert_eq!(ModelConfig::preset("denoise-0.8").unwrap().noise.level, 0.8);
        assert!(ModelConfig::preset("bogus").is_err());
        assert!(ModelConfig::preset("shallow-x").is_err());
    }

    #[test]
    fn vae_presets_have_mean_and_log_variance_heads() {
        let c = ModelConfig::preset("vae-2").unwrap();
        assert!(c.is_vae() && c.bottleneck() == 2 && c.loss == LossKind::Bce);
        assert_eq!(c.vae_beta(), Some((1.0, false)));
        let shapes = param_shapes(&c);
        let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "enc.0.weight",
                "enc.0.bias",
                "enc.1.weight",
                "enc.1.bias",
                "enc.mu.weight",
                "enc.mu.bias",
                "enc.logvar.weight",
                "enc.logvar.bias",
                "dec.0.weight",
                "dec.0.bias",
                "dec.1.weight",
                "dec.1.bias",
                "dec.2.weight",
                "dec.2.bias",
            ]
        );
        // 784-512-256, two heads of 2, 2-256-512-784
        let want = 784 * 512
            + 512
            + 512 * 256
            + 256
            + 2 * (256 * 2 + 2)
            + 2 * 256
            + 256
            + 256 * 512
            + 512
            + 512 * 784
            + 784;
        assert_eq!(c.param_count(), want);
        assert_eq!(ModelConfig::preset("vae-30").unwrap().bottleneck(), 30);
        assert!(ModelConfig::preset("vae-0").is_err());
        let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn serde_roundtrip() {
        let c = ModelConfig::preset("conv-both").unwrap();
        let s = serde_json::to_string(&c).unwrap();
        let back: ModelConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(c, back);
    }
}
