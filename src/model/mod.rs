//! Autoencoders as candle graphs over one flat list of named parameters.
//!
//! Weight names and layouts follow PyTorch: a dense layer `enc.{i}` or
//! `dec.{i}` has `weight [out, in]` and `bias [out]`; a convolution has
//! `weight [out, in, 3, 3]`, a transposed convolution `weight [in, out, 3, 3]`.

pub mod checkpoint;
pub mod config;
mod convdirect;
mod convops;
mod denseops;
mod lossops;
pub mod manifest;
mod poolops;
pub mod record;
pub mod replay;
pub mod sgemm;
#[cfg(test)]
mod torch_fixtures;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};

pub use config::{
    param_shapes, Activation, Arch, ConvDecoder, LossKind, ModelConfig, RunConfig, TrainParams,
};
pub use denseops::GradSink;

use crate::data::PIXELS;
use crate::rng::Rng;

pub type Result<T> = candle_core::Result<T>;

/// Glorot-uniform bound sqrt(6 / (fan_in + fan_out)); symmetric in the two
/// fans, so plain `[out, in, k, k]` and transposed `[in, out, k, k]` agree.
fn glorot_bound(shape: &[usize]) -> f32 {
    let rf: usize = shape.iter().skip(2).product();
    (6.0 / ((shape[0] + shape[1]) * rf) as f32).sqrt()
}

/// An autoencoder: its config and its parameters.
#[derive(Debug)]
pub struct Autoencoder {
    pub config: ModelConfig,
    /// Parameters in [`param_shapes`] order.
    pub params: Vec<(String, Var)>,
    pub device: Device,
    /// Run conv layers through candle's own ops even on the CPU (tests
    /// compare them with the fused ones).
    pub(crate) reference_ops: bool,
}

/// One layer's feature maps for one image.
#[derive(Clone, Debug)]
pub struct FeatureMaps {
    pub name: String,
    /// `[channels, height, width]`
    pub shape: [usize; 3],
    pub values: Vec<f32>,
}

/// What a forward pass yields.
pub struct Forward {
    /// Pre-sigmoid output, `[b, 784]`.
    pub logits: Tensor,
    /// The code, `[b, bottleneck]` (a VAE's: the mean of its Gaussian).
    pub code: Tensor,
    /// A VAE's log-variance of the code, `[b, latent]`.
    pub logvar: Option<Tensor>,
}

impl Autoencoder {
    /// Fresh Glorot-uniform weights and zero biases from `seed`.
    pub fn new(config: &ModelConfig, seed: u64, device: &Device) -> Result<Autoencoder> {
        let mut rng = Rng::new(seed ^ 0xA5A5_5A5A);
        let mut params = Vec::new();
        for (name, shape) in param_shapes(config) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let b = glorot_bound(&shape);
                (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * b).collect()
            };
            let t = Tensor::from_vec(data, shape, device)?;
            params.push((name, Var::from_tensor(&t)?));
        }
        Ok(Autoencoder {
            config: config.clone(),
            params,
            device: device.clone(),
            reference_ops: false,
        })
    }

    /// Build from named tensors (already checked against the config).
    pub fn from_tensors(
        config: &ModelConfig,
        tensors: Vec<(String, Tensor)>,
        device: &Device,
    ) -> Result<Autoencoder> {
        let params = tensors
            .into_iter()
            .map(|(n, t)| {
                Ok((
                    n,
                    Var::from_tensor(&t.to_device(device)?.to_dtype(DType::F32)?)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Autoencoder {
            config: config.clone(),
            params,
            device: device.clone(),
            reference_ops: false,
        })
    }

    /// The model with its weights on `device` (copied there; shared when
    /// they are already on it).
    pub fn to_device(&self, device: &Device) -> Result<Autoencoder> {
        let tensors = self
            .params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        Autoencoder::from_tensors(&self.config, tensors, device)
    }

    fn param_index(&self, name: &str) -> usize {
        self.params
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("parameter {name} exists by construction"))
    }

    pub fn param(&self, name: &str) -> &Tensor {
        self.params[self.param_index(name)].1.as_tensor()
    }

    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn param_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// A deep copy of the weights (for last-good snapshots).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(_, v)| v.as_tensor().copy())
            .collect()
    }

    /// Put back weights from [`Self::snapshot`].
    pub fn restore(&self, snap: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.params.iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Forward pass on `x [b, 784]` in [0, 1].
    pub fn forward(&self, x: &Tensor) -> Result<Forward> {
        self.forward_with_sink(x, None)
    }

    /// [`Autoencoder::forward`] whose backward pass leaves the fused dense
    /// layers' weight and bias gradients in `sink` (slots in the order of
    /// [`Autoencoder::params`]) rather than in candle's gradient store.
    pub fn forward_with_sink(&self, x: &Tensor, sink: Option<&Arc<GradSink>>) -> Result<Forward> {
        self.forward_sampled(x, sink, None)
    }

    /// [`Autoencoder::forward_with_sink`]; a VAE decodes `μ + σ·eps` (the
    /// reparameterised sample: `eps [b, latent]` standard normal) when
    /// `eps` is given, else its mean `μ`. Other models ignore `eps`.
    pub fn forward_sampled(
        &self,
        x: &Tensor,
        sink: Option<&Arc<GradSink>>,
        eps: Option<&Tensor>,
    ) -> Result<Forward> {
        match &self.config.arch {
            Arch::Dense {
                encoder,
                decoder,
                activation,
            } => {
                let mut h = x.clone();
                for i in 0..encoder.len() {
                    // [b, in] -> [b, out]
                    h = self.dense(&h, &format!("enc.{i}"), Some(*activation), sink)?;
                }
                let logits = self.dense_decode(&h, decoder.len(), *activation, sink)?;
                Ok(Forward {
                    logits,
                    code: h,
                    logvar: None,
                })
            }
            Arch::Vae {
                encoder,
                activation,
                ..
            } => {
                let mut h = x.clone();
                for i in 0..encoder.len() {
                    h = self.dense(&h, &format!("enc.{i}"), Some(*activation), sink)?;
                }
                let mu = self.dense(&h, "enc.mu", None, sink)?;
                let logvar = self.dense(&h, "enc.logvar", None, sink)?;
                let z = match eps {
                    Some(e) => (&mu + ((&logvar * 0.5)?.exp()? * e)?)?,
                    None => mu.clone(),
                };
                let logits = self.dense_decode(&z, encoder.len(), *activation, sink)?;
                Ok(Forward {
                    logits,
                    code: mu,
                    logvar: Some(logvar),
                })
            }
            Arch::Conv { decoder } => self.conv_forward(x, *decoder, &mut Vec::new()),
        }
    }

    fn dense_decode(
        &self,
        code: &Tensor,
        layers: usize,
        activation: Activation,
        sink: Option<&Arc<GradSink>>,
    ) -> Result<Tensor> {
        let mut h = code.clone();
        for i in 0..layers {
            h = self.dense(&h, &format!("dec.{i}"), Some(activation), sink)?;
        }
        self.dense(&h, &format!("dec.{layers}"), None, sink)
    }

    /// Transposed-convolution decoder from the pooled code `[b, 16, 4, 4]`.
    fn deconv_decode(&self, p3: &Tensor, maps: &mut Vec<(&'static str, Tensor)>) -> Result<Tensor> {
        let d3 = self.deconv(p3, "dec.layer3", 2, 0, true)?; // [b, 16, 7, 7]
        let d2 = self.deconv(&d3, "dec.layer2", 2, 1, true)?; // [b, 8, 14, 14]
        maps.push(("dec.layer3 + ReLU", d3));
        maps.push(("dec.layer2 + ReLU", d2.clone()));
        self.deconv(&d2, "dec.layer1", 2, 1, false) // [b, 1, 28, 28]
    }

    /// Every layer's feature maps for one image (conv models): name,
    /// `[channels, height, width]` and the values; empty for dense models.
    pub fn feature_maps(&self, image: &[f32]) -> Result<Vec<FeatureMaps>> {
        let Arch::Conv { decoder } = self.config.arch else {
            return Ok(Vec::new());
        };
        let x = Tensor::from_slice(&image[..PIXELS], (1, PIXELS), &self.device)?;
        let mut maps = Vec::new();
        let f = self.conv_forward(&x, decoder, &mut maps)?;
        let output = candle_nn::ops::sigmoid(&f.logits)?.reshape((1, 1, 28, 28))?;
        maps.push(("output (sigmoid)", output));
        maps.into_iter()
            .map(|(name, t)| {
                let (_, c, h, w) = t.dims4()?;
                Ok(FeatureMaps {
                    name: name.to_string(),
                    shape: [c, h, w],
                    values: t.flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect()
    }

    /// Whether images can be decoded from a code alone: max-unpooling
    /// decoders also need the encoder's pooling switches.
    pub fn can_decode(&self) -> bool {
        !matches!(
            self.config.arch,
            Arch::Conv {
                decoder: ConvDecoder::Unpool | ConvDecoder::Both
            }
        )
    }

    /// Images in [0, 1] decoded from `codes [n * bottleneck]` (see
    /// [`Self::can_decode`]).
    pub fn decode(&self, codes: &[f32]) -> Result<Vec<f32>> {
        let dim = self.config.bottleneck();
        let n = codes.len() / dim.max(1);
        let code = Tensor::from_slice(&codes[..n * dim], (n, dim), &self.device)?;
        let logits = match &self.config.arch {
            Arch::Dense {
                decoder,
                activation,
                ..
            } => self.dense_decode(&code, decoder.len(), *activation, None)?,
            Arch::Vae {
                encoder,
                activation,
                ..
            } => self.dense_decode(&code, encoder.len(), *activation, None)?,
            Arch::Conv {
                decoder: ConvDecoder::Deconv,
            } => self.deconv_decode(&code.reshape((n, 16, 4, 4))?, &mut Vec::new())?,
            Arch::Conv { .. } => candle_core::bail!(
                "{}: the unpooling decoder needs the encoder's pooling switches; it cannot decode a code alone",
                self.config.preset
            ),
        };
        candle_nn::ops::sigmoid(&logits)?
            .flatten_all()?
            .to_vec1::<f32>()
    }

    /// A dense layer `x W^T + b`, then `act` if given.
    fn dense(
        &self,
        x: &Tensor,
        name: &str,
        act: Option<Activation>,
        sink: Option<&Arc<GradSink>>,
    ) -> Result<Tensor> {
        let (wi, bi) = (
            self.param_index(&format!("{name}.weight")),
            self.param_index(&format!("{name}.bias")),
        );
        let (w, b) = (self.params[wi].1.as_tensor(), self.params[bi].1.as_tensor());
        let op = denseops::Linear {
            act,
            sink: sink.map(|s| (s.clone(), wi, bi)),
            // (not computed from other tensors: the model's input)
            sparse_input: !x.track_op(),
        };
        if self.fused() {
            x.contiguous()?.apply_op3(w, b, op)
        } else {
            op.with_candle_ops(x, w, b)
        }
    }

    fn fused(&self) -> bool {
        self.device.is_cpu() && !self.reference_ops
    }

    /// 3x3 convolution, stride 1, padding 1, plus bias (and ReLU).
    fn conv(&self, x: &Tensor, name: &str, relu: bool) -> Result<Tensor> {
        let op = convops::Conv3x3 {
            transposed: false,
            stride: 1,
            pad: 1,
            out_pad: 0,
            relu,
        };
        self.conv_layer(x, name, op)
    }

    /// 3x3 transposed convolution, padding 1, plus bias (and ReLU).
    fn deconv(
        &self,
        x: &Tensor,
        name: &str,
        stride: usize,
        output_padding: usize,
        relu: bool,
    ) -> Result<Tensor> {
        let op = convops::Conv3x3 {
            transposed: true,
            stride,
            pad: 1,
            out_pad: output_padding,
            relu,
        };
        self.conv_layer(x, name, op)
    }

    fn conv_layer(&self, x: &Tensor, name: &str, op: convops::Conv3x3) -> Result<Tensor> {
        let w = self.param(&format!("{name}.weight"));
        let b = self.param(&format!("{name}.bias"));
        if self.fused() {
            x.apply_op3(w, b, op)
        } else {
            op.with_candle_ops(x, w, b)
        }
    }

    /// 2x2 max-pooling in ceil mode (an odd side gets a clipped last
    /// window); the gradient goes to each window's first maximum, as in
    /// PyTorch.
    fn pool(&self, x: &Tensor) -> Result<Tensor> {
        if self.fused() {
            return x.apply_op1(poolops::MaxPool2);
        }
        pool_with_candle_ops(x)
    }

    /// Max-unpooling of `y` to the shape of `pre` (the map before pooling),
    /// as `torch.nn.MaxUnpool2d` does: each value goes to the position its
    /// window's max-pooling picked (the first maximum), zeros elsewhere.
    fn unpool(&self, y: &Tensor, pre: &Tensor) -> Result<Tensor> {
        let pre = pre.detach();
        if self.fused() {
            return y.apply_op2(&pre, poolops::Unpool2);
        }
        unpool_with_candle_ops(y, &pre)
    }

    /// Conv forward pass; `maps` receives each layer's output (named).
    fn conv_forward(
        &self,
        x: &Tensor,
        decoder: ConvDecoder,
        maps: &mut Vec<(&'static str, Tensor)>,
    ) -> Result<Forward> {
        let b = x.dim(0)?;
        let x = x.reshape((b, 1, 28, 28))?;
        let h1 = self.conv(&x, "enc.conv1", true)?; // [b, 8, 28, 28]
        let p1 = self.pool(&h1)?; // [b, 8, 14, 14]
        let h2 = self.conv(&p1, "enc.conv2", true)?; // [b, 16, 14, 14]
        let p2 = self.pool(&h2)?; // [b, 16, 7, 7]
        let h3 = self.conv(&p2, "enc.conv3", true)?; // [b, 16, 7, 7]
        let p3 = self.pool(&h3)?; // [b, 16, 4, 4] (ceil mode)
        let code = p3.flatten_from(1)?;
        maps.push(("enc.conv1 + ReLU", h1.clone()));
        maps.push(("enc.conv2 + ReLU", h2.clone()));
        maps.push(("enc.conv3 + ReLU", h3.clone()));
        maps.push(("code (after the last pooling)", p3.clone()));
        let logits = match decoder {
            ConvDecoder::Unpool | ConvDecoder::Both => {
                let layer = |t: &Tensor, name: &str, relu: bool| -> Result<Tensor> {
                    if decoder == ConvDecoder::Unpool {
                        self.conv(t, name, relu)
                    } else {
                        self.deconv(t, name, 1, 0, relu)
                    }
                };
                let u3 = self.unpool(&p3, &h3)?; // [b, 16, 7, 7]
                let d3 = layer(&u3, "dec.layer3", true)?; // [b, 16, 7, 7]
                let u2 = self.unpool(&d3, &h2)?; // [b, 16, 14, 14]
                let d2 = layer(&u2, "dec.layer2", true)?; // [b, 8, 14, 14]
                let u1 = self.unpool(&d2, &h1)?; // [b, 8, 28, 28]
                maps.push(("dec.layer3 + ReLU", d3));
                maps.push(("dec.layer2 + ReLU", d2));
                layer(&u1, "dec.layer1", false)? // [b, 1, 28, 28]
            }
            ConvDecoder::Deconv => self.deconv_decode(&p3, maps)?,
        };
        Ok(Forward {
            logits: logits.reshape((b, PIXELS))?,
            code,
            logvar: None,
        })
    }

    /// Reconstructions in [0, 1] for `images [n * 784]`, computed in batches.
    pub fn reconstruct(&self, images: &[f32]) -> Result<Vec<f32>> {
        let [mut out] = self.map_batches(images, |f| [f.logits.clone()])?;
        lossops::sigmoid_in_place(&mut out);
        Ok(out)
    }

    /// Codes for `images [n * 784]`: `[n * bottleneck]`.
    pub fn encode(&self, images: &[f32]) -> Result<Vec<f32>> {
        let [codes] = self.map_batches(images, |f| [f.code.clone()])?;
        Ok(codes)
    }

    /// [`Autoencoder::reconstruct`] and [`Autoencoder::encode`] from one
    /// forward pass.
    pub fn reconstruct_and_encode(&self, images: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let [mut out, codes] = self.map_batches(images, |f| [f.logits.clone(), f.code.clone()])?;
        lossops::sigmoid_in_place(&mut out);
        Ok((out, codes))
    }

    fn map_batches<const N: usize>(
        &self,
        images: &[f32],
        pick: impl Fn(&Forward) -> [Tensor; N],
    ) -> Result<[Vec<f32>; N]> {
        // Conv activations are ~30x the input: smaller batches keep them
        // a few MB (cache-friendly, and reused by the allocator).
        let batch = match self.config.arch {
            Arch::Dense { .. } | Arch::Vae { .. } => 1000,
            Arch::Conv { .. } => 128,
        };
        let n = images.len() / PIXELS;
        let mut out = std::array::from_fn(|_| Vec::new());
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let x = Tensor::from_slice(
                &images[start * PIXELS..end * PIXELS],
                (end - start, PIXELS),
                &self.device,
            )?;
            let f = self.forward(&x)?;
            for (o, t) in out.iter_mut().zip(pick(&f)) {
                if start == 0 {
                    // all of it at once (growing by doubling copied and
                    // page-faulted ~2x the result for a 10k-image pass)
                    o.reserve_exact(t.elem_count() / (end - start).max(1) * n);
                }
                o.extend(t.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }
}

fn activate(t: Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Relu => relu(&t),
        Activation::Sigmoid => candle_nn::ops::sigmoid(&t),
        Activation::Tanh => t.tanh(),
    }
}

/// ReLU in candle's ops with PyTorch's gradient (and the fused ops'): none
/// at an exactly-zero input, where candle's own `relu` passes it.
pub(crate) fn relu(t: &Tensor) -> Result<Tensor> {
    t * t.gt(0.0)?.to_dtype(t.dtype())?.detach()
}

/// [`Autoencoder`]'s max-pooling in candle's ops (every device). Not
/// `max_pool2d`: candle 0.11's gradient for it is the incoming gradient
/// times (number of maxima / 4), and where maxima tie it would not give it
/// all to the one PyTorch (and the fused op) picks.
fn pool_with_candle_ops(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let padded = pad_to_even(x)?;
    // (a select, not a product: f32::MIN or -inf times 0 would not be 0
    // in every dtype)
    let mask = first_max_mask(&padded)?.ne(0.0)?;
    mask.where_cond(&padded, &padded.zeros_like()?)?
        .reshape((b, c, h.div_ceil(2), 2, w.div_ceil(2), 2))?
        .sum(5)?
        .sum(3)
}

/// [`Autoencoder`]'s max-unpooling in candle's ops (every device): `y`
/// at the first maximum of each 2x2 window of `pre`, zeros elsewhere.
fn unpool_with_candle_ops(y: &Tensor, pre: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = pre.dims4()?;
    let mask = first_max_mask(&pad_to_even(pre)?)?;
    let (_, _, h2, w2) = mask.dims4()?;
    y.upsample_nearest2d(h2, w2)?
        .mul(&mask)?
        .narrow(2, 0, h)?
        .narrow(3, 0, w)
}

/// `x [b, c, h, w]` with an odd side padded by one row or column of the
/// lowest f32, so that 2x2 windows tile it and a padded position never
/// holds a window's maximum (ceil-mode pooling).
fn pad_to_even(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h % 2 == 1 {
        let row = Tensor::full(f32::MIN, (b, c, 1, w), x.device())?.to_dtype(x.dtype())?;
        x = Tensor::cat(&[&x, &row], 2)?;
    }
    if w % 2 == 1 {
        let h = x.dim(2)?;
        let col = Tensor::full(f32::MIN, (b, c, h, 1), x.device())?.to_dtype(x.dtype())?;
        x = Tensor::cat(&[&x, &col], 3)?;
    }
    Ok(x)
}

/// The switches of 2x2 max-pooling of `x [b, c, h, w]` (even sides): 1 at
/// the first maximum of each window in row-major order (the position
/// PyTorch's max-pooling returns as its index), 0 elsewhere; a constant for
/// the gradient. Written in candle's ops, so it runs on every device.
fn first_max_mask(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let x6 = x.detach().reshape((b, c, h / 2, 2, w / 2, 2))?;
    let at = |dy: usize, dx: usize| x6.narrow(3, dy, 1)?.narrow(5, dx, 1);
    let corners = [at(0, 0)?, at(0, 1)?, at(1, 0)?, at(1, 1)?];
    let max = corners[1..]
        .iter()
        .try_fold(corners[0].clone(), |m, t| m.maximum(t))?;
    // each corner is the pick if it holds the max and no earlier one did
    let mut none_yet = max.ones_like()?;
    let mut picks = Vec::with_capacity(4);
    for t in &corners {
        let pick = (t.eq(&max)?.to_dtype(x.dtype())? * &none_yet)?;
        none_yet = (none_yet - &pick)?;
        picks.push(pick);
    }
    let top = Tensor::cat(&[&picks[0], &picks[1]], 5)?;
    let bottom = Tensor::cat(&[&picks[2], &picks[3]], 5)?;
    Tensor::cat(&[&top, &bottom], 3)?.reshape((b, c, h, w))
}

/// Loss of a forward pass against clean targets, plus the L1 penalty on the
/// code when λ > 0, or a VAE's β·KL. Returns (objective, reconstruction part).
pub fn loss(config: &ModelConfig, f: &Forward, target: &Tensor) -> Result<(Tensor, Tensor)> {
    let beta = config.vae_beta().map_or(0.0, |(b, _)| b);
    let p = loss_parts(config, f, target, beta)?;
    Ok((p.objective, p.reconstruction))
}

/// The terms of a loss.
pub struct LossParts {
    pub objective: Tensor,
    /// Per pixel (mean) for autoencoders; summed over the pixels (mean over
    /// the images) for a VAE.
    pub reconstruction: Tensor,
    /// A VAE's KL(q(z|x) ‖ N(0, I)) in nats, mean over the images.
    pub kl: Option<Tensor>,
}

/// [`loss`] with a VAE's KL weighted by `beta` (its warm-up's value).
pub fn loss_parts(
    config: &ModelConfig,
    f: &Forward,
    target: &Tensor,
    beta: f64,
) -> Result<LossParts> {
    let op = lossops::Loss::new(config.loss);
    let rec = if target.device().is_cpu() {
        f.logits
            .contiguous()?
            .apply_op2(&target.contiguous()?, op)?
    } else {
        op.with_candle_ops(&f.logits, target)?
    };
    if let (Some(logvar), true) = (&f.logvar, config.is_vae()) {
        let rec = (rec * PIXELS as f64)?;
        let kl = kl_divergence(&f.code, logvar)?;
        return Ok(LossParts {
            objective: (&rec + (&kl * beta)?)?,
            reconstruction: rec,
            kl: Some(kl),
        });
    }
    let (objective, reconstruction) = plain_loss(config, f, rec)?;
    Ok(LossParts {
        objective,
        reconstruction,
        kl: None,
    })
}

/// KL(N(μ, σ²) ‖ N(0, I)) summed over the code, mean over the rows.
pub fn kl_divergence(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let b = mu.dim(0)? as f64;
    let per = ((logvar.exp()? + mu.sqr()?)? - logvar)?;
    // ½ Σ (σ² + μ² − log σ² − 1)
    (per - 1.0)?.sum_all()? * (0.5 / b)
}

fn plain_loss(config: &ModelConfig, f: &Forward, rec: Tensor) -> Result<(Tensor, Tensor)> {
    if config.l1 > 0.0 {
        let b = f.code.dim(0)? as f64;
        let pen = (f.code.abs()?.sum_all()? * (config.l1 / b))?;
        Ok(((&rec + pen)?, rec))
    } else {
        Ok((rec.clone(), rec))
    }
}

/// A CPU tensor of `shape` with values uniform in [-1, 1) from `seed` (tests).
#[cfg(test)]
pub(crate) fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("a shape and its values")
}

/// The gradients of `sum(t * weights)`: a loss that weighs every output of
/// `t` differently (tests).
#[cfg(test)]
pub(crate) fn weighted_grads(t: &Tensor, weights: &Tensor) -> candle_core::backprop::GradStore {
    (t * weights)
        .and_then(|l| l.sum_all())
        .and_then(|l| l.backward())
        .expect("a weighting of the same shape")
}

/// Largest absolute difference between two tensors of the same shape (tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_of_the_code_is_the_reconstruction() {
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..3 * PIXELS).map(|_| rng.uniform()).collect();
        for preset in ["deep", "shallow-64", "conv-deconv"] {
            let m =
                Autoencoder::new(&ModelConfig::preset(preset).unwrap(), 2, &Device::Cpu).unwrap();
            assert!(m.can_decode());
            let rec = m.reconstruct(&x).unwrap();
            let dec = m.decode(&m.encode(&x).unwrap()).unwrap();
            let diff = rec
                .iter()
                .zip(&dec)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "{preset}: {diff}");
        }
        let m = Autoencoder::new(
            &ModelConfig::preset("conv-unpool").unwrap(),
            2,
            &Device::Cpu,
        )
        .unwrap();
        assert!(!m.can_decode());
        assert!(m.decode(&vec![0.0; 256]).is_err());
    }

    #[test]
    fn one_pass_reconstruction_and_code_equal_the_separate_ones() {
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..2 * PIXELS).map(|_| rng.uniform()).collect();
        for preset in ["shallow-64", "conv-unpool"] {
            let m =
                Autoencoder::new(&ModelConfig::preset(preset).unwrap(), 5, &Device::Cpu).unwrap();
            let (rec, code) = m.reconstruct_and_encode(&x).unwrap();
            assert_eq!(rec, m.reconstruct(&x).unwrap(), "{preset}");
            assert_eq!(code, m.encode(&x).unwrap(), "{preset}");
            assert_eq!(code.len(), 2 * m.config.bottleneck());
        }
    }

    #[test]
    fn shapes_and_forward_for_every_preset() {
        let dev = Device::Cpu;
        for name in crate::analysis::study::presets() {
            let cfg = ModelConfig::preset(name).unwrap();
            let m = Autoencoder::new(&cfg, 1, &dev).unwrap();
            assert_eq!(m.param_count(), cfg.param_count());
            let x = Tensor::rand(0f32, 1f32, (3, PIXELS), &dev).unwrap();
            let f = m.forward(&x).unwrap();
            assert_eq!(f.logits.dims(), &[3, PIXELS], "{name}");
            assert_eq!(f.code.dims(), &[3, cfg.bottleneck()], "{name}");
        }
    }

    #[test]
    fn gradients_reach_every_parameter_of_every_conv_decoder() {
        let dev = Device::Cpu;
        for d in ConvDecoder::ALL {
            let cfg = ModelConfig::preset(&format!("conv-{}", d.slug())).unwrap();
            let m = Autoencoder::new(&cfg, 2, &dev).unwrap();
            let x = Tensor::rand(0f32, 1f32, (4, PIXELS), &dev).unwrap();
            let f = m.forward(&x).unwrap();
            let (l, _) = loss(&cfg, &f, &x).unwrap();
            let grads = l.backward().unwrap();
            for (name, v) in &m.params {
                let g = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{d:?}: no gradient for {name}"));
                let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(
                    norm > 0.0 && norm.is_finite(),
                    "{d:?}: zero gradient for {name}"
                );
            }
        }
    }

    #[test]
    fn fused_layers_match_candle_ops_for_dense_and_conv_models() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(9);
        // Digit-like inputs: mostly zeros with some ink.
        let x: Vec<f32> = (0..5 * PIXELS)
            .map(|_| (rng.uniform() * 2.0 - 1.0).max(0.0))
            .collect();
        let x = Tensor::from_vec(x, (5, PIXELS), &dev).unwrap();
        let mut tanh = ModelConfig::preset("deep").unwrap();
        if let Arch::Dense { activation, .. } = &mut tanh.arch {
            *activation = Activation::Tanh;
        }
        let configs = [
            "conv-unpool",
            "conv-deconv",
            "conv-both",
            "deep",
            "sparse-1e-3",
        ]
        .map(|p| ModelConfig::preset(p).unwrap())
        .into_iter()
        .chain([tanh]);
        for cfg in configs {
            let d = cfg.preset.clone();
            let fused = Autoencoder::new(&cfg, 4, &dev).unwrap();
            let mut reference = Autoencoder::new(&cfg, 4, &dev).unwrap();
            reference.reference_ops = true;
            let run = |m: &Autoencoder| {
                let f = m.forward(&x).unwrap();
                let (l, _) = loss(&cfg, &f, &x).unwrap();
                let grads = l.backward().unwrap();
                let g: Vec<Tensor> = m
                    .params
                    .iter()
                    .map(|(_, v)| grads.get(v.as_tensor()).unwrap().clone())
                    .collect();
                (f.logits, f.code, g)
            };
            let (l1, c1, g1) = run(&fused);
            let (l2, c2, g2) = run(&reference);
            assert!(max_abs_diff(&l1, &l2) < 1e-4, "{d:?} logits");
            assert!(max_abs_diff(&c1, &c2) < 1e-4, "{d:?} code");
            for ((name, _), (a, b)) in fused.params.iter().zip(g1.iter().zip(&g2)) {
                let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
                let diff = max_abs_diff(a, b);
                // (at an exactly-zero pre-activation, an empty input window
                // with zero bias, both ReLUs pass no gradient, as PyTorch's)
                assert!(
                    diff <= 1e-4 * scale.max(1e-3),
                    "{d:?} {name}: gradient differs by {diff} (scale {scale})"
                );
            }
        }
    }

    #[test]
    fn candle_op_unpool_puts_each_value_at_the_first_maximum_only() {
        let dev = Device::Cpu;
        // windows: a single max; a single max; all four tied (MNIST's flat
        // background); two tied in the bottom row
        let pre = Tensor::from_vec(
            vec![
                1f32, 5., 2., 0., 3., 4., 9., 1., 0., 0., 6., 0., 0., 0., 6., 0.,
            ],
            (1, 1, 4, 4),
            &dev,
        )
        .unwrap();
        let y = Var::from_tensor(
            &Tensor::from_vec(vec![10f32, 20., 30., 40.], (1, 1, 2, 2), &dev).unwrap(),
        )
        .unwrap();
        let u = unpool_with_candle_ops(&y, &pre).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        #[rustfmt::skip]
        assert_eq!(
            flat(&u),
            [0., 10., 0., 0.,
             0., 0., 20., 0.,
             30., 0., 40., 0.,
             0., 0., 0., 0.]
        );
        // the gradient reads the same one position per window
        let w = Tensor::arange(1f32, 17., &dev)
            .unwrap()
            .reshape((1, 1, 4, 4))
            .unwrap();
        let g = (u * w).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(flat(g.get(&y).unwrap()), [2., 7., 9., 11.]);
        // pooling: the max as the value, the gradient at the same position
        let x = Var::from_tensor(&pre).unwrap();
        let p = pool_with_candle_ops(&x).unwrap();
        assert_eq!(flat(&p), [5., 9., 0., 6.]);
        let g = p.sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        assert_eq!(
            flat(g.get(&x).unwrap()),
            [0., 1., 0., 0.,
             0., 0., 1., 0.,
             1., 0., 1., 0.,
             0., 0., 0., 0.]
        );
    }
}
