//! aelab against PyTorch itself, without PyTorch in the test run: the
//! fixtures in `tests/fixtures/pytorch/` (made by
//! `scripts/pytorch_fixtures.py`) hold PyTorch weights of one model per
//! conv decoder and of a small deep dense model, named and laid out by the
//! README's checkpoint table, with a few images and PyTorch's
//! reconstructions of them. The images are strokes on zeros, so max-pooling
//! windows tie all over: max-unpooling must follow `torch.nn.MaxUnpool2d`.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

use super::checkpoint::{self, Manifest};
use super::{param_shapes, Activation, Arch, Autoencoder, ModelConfig, RunConfig, TrainParams};
use crate::data::DatasetKind;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/pytorch"]
        .iter()
        .collect::<PathBuf>()
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The model a fixture holds: a conv preset, or `dense-6-3`
/// (784-6-3-6-784, ReLU).
fn config(name: &str) -> ModelConfig {
    if name.starts_with("conv-") {
        return ModelConfig::preset(name).unwrap();
    }
    let mut c = ModelConfig::preset("deep").unwrap();
    c.preset = name.into();
    c.arch = Arch::Dense {
        encoder: vec![6, 3],
        decoder: vec![6],
        activation: Activation::Relu,
    };
    c
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    assert!(
        d <= 1e-5,
        "{what}: pixel {i} is {} against PyTorch's {} (differs by {d})",
        got[i],
        want[i]
    );
}

#[test]
fn every_decoder_reconstructs_what_pytorch_does_to_1e_5() {
    for name in ["conv-unpool", "conv-deconv", "conv-both", "dense-6-3"] {
        let mut t = fixture(name);
        let cfg = config(name);
        let input = flat(&t.remove("input").unwrap());
        let want = flat(&t.remove("output").unwrap());
        let tensors: Vec<(String, Tensor)> = param_shapes(&cfg)
            .into_iter()
            .map(|(n, shape)| {
                let w = t.remove(&n).unwrap_or_else(|| panic!("{name}: no {n}"));
                assert_eq!(w.dims(), shape.as_slice(), "{name}: {n}'s layout");
                (n, w)
            })
            .collect();
        assert!(t.is_empty(), "{name}: tensors left over: {:?}", t.keys());
        let model = Autoencoder::from_tensors(&cfg, tensors.clone(), &Device::Cpu).unwrap();
        check(
            &format!("{name}, fused ops"),
            &model.reconstruct(&input).unwrap(),
            &want,
        );
        // the candle-op path (every other device) computes the same
        let reference = Autoencoder {
            reference_ops: true,
            ..Autoencoder::from_tensors(&cfg, tensors, &Device::Cpu).unwrap()
        };
        check(
            &format!("{name}, candle ops"),
            &reference.reconstruct(&input).unwrap(),
            &want,
        );
        // and through a saved checkpoint
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let run = RunConfig {
            model: cfg.clone(),
            train: TrainParams::default(),
            dataset: DatasetKind::Mnist,
        };
        checkpoint::save(&path, &model, &Manifest::new(run, model.param_count())).unwrap();
        let (loaded, _) = checkpoint::load(&path, &Device::Cpu).unwrap();
        check(
            &format!("{name}, saved and loaded"),
            &loaded.reconstruct(&input).unwrap(),
            &want,
        );
    }
}
