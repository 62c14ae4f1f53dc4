//! Reliability: a training process killed mid-save never leaves a torn
//! checkpoint or a pile of temporary files; a save that cannot happen keeps
//! the model; hostile bytes never panic the parsers. (The start/stop soak
//! is `tests/soak.rs`, a process of its own.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aelab::data::{self, idx, DatasetKind};
use aelab::model::checkpoint::{self, Manifest};
use aelab::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
use aelab::worker::{Event, Job, WorkerHandle};
use proptest::prelude::*;

mod support;
use support::{tiny, wait};

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count()
}

#[test]
fn killing_a_saving_process_never_tears_the_checkpoint() {
    let data_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 400, 50, 2).unwrap();
    let ckpt = out.path().join("model.safetensors");
    let mut last_epochs = 0;
    let mut loaded = 0;
    let mut rng = aelab::rng::Rng::new(5);
    for round in 0..25 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aelab"))
            .args([
                "train",
                "--preset",
                "shallow-64",
                "--epochs",
                "100000",
                "--save-every-epoch",
                "--out",
            ])
            .arg(&ckpt)
            .arg("--data-dir")
            .arg(data_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // let it start and save a few times, then kill at a random moment
        let t = Instant::now();
        while !ckpt.exists() && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(300) as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (model, manifest) = checkpoint::load(&ckpt, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint on disk does not load: {e}"));
        assert_eq!(model.param_count(), 101_200);
        // each process starts from scratch: within one round the epochs only
        // grow; across rounds the file is one process's latest whole save
        assert!(manifest.epochs_done >= 1);
        if round == 0 {
            last_epochs = manifest.epochs_done;
        }
        loaded += 1;
        assert!(
            temp_files(out.path()) <= 1,
            "round {round}: temporary files pile up"
        );
    }
    assert_eq!(loaded, 25);
    assert!(last_epochs >= 1);
}

#[test]
fn a_save_that_cannot_happen_keeps_the_model_in_memory() {
    // the "folder" is a regular file: no checkpoint can be written under it
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let result = train_into(blocker.path());
    let err = result.save_error.expect("the save failed");
    assert!(err.contains(&blocker.path().display().to_string()), "{err}");
    assert_eq!(err.lines().count(), 1);
    assert!(result.checkpoint.is_none());
    // the weights are still there and load
    let (m, _) = checkpoint::load_bytes(
        &result.weights,
        Path::new("memory"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.param_count(), 101_200);
}

fn valid_checkpoint() -> Vec<u8> {
    let run = RunConfig {
        model: ModelConfig::preset("shallow-64").unwrap(),
        train: TrainParams::default(),
        dataset: DatasetKind::Mnist,
    };
    let m = Autoencoder::new(&run.model, 1, &candle_core::Device::Cpu).unwrap();
    checkpoint::to_bytes(&m, &Manifest::new(run, m.param_count())).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Arbitrary bytes and mutated valid files through the IDX parser.
    #[test]
    fn idx_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), flip in any::<usize>(), cut in any::<usize>()) {
        let p = Path::new("fuzz.idx");
        let _ = idx::parse_images(&bytes, p);
        let _ = idx::parse_labels(&bytes, p);
        let _ = idx::gunzip(&bytes, p);
        let mut good = idx::encode_images(&vec![7u8; 3 * 784], 3);
        let i = flip % good.len();
        good[i] ^= 0xff;
        let _ = idx::parse_images(&good, p);
        let gz = idx::gzip(&good);
        let _ = idx::gunzip(&gz[..cut % (gz.len() + 1)], p);
    }

    /// Mutated and truncated checkpoints: an error, never a panic.
    #[test]
    fn checkpoint_loader_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), cut in any::<usize>()) {
        thread_local!(static GOOD: Vec<u8> = valid_checkpoint());
        let mut bytes = GOOD.with(|g| g.clone());
        for (at, v) in flips {
            let i = at % bytes.len();
            bytes[i] = v;
        }
        let n = bytes.len();
        bytes.truncate(if cut % 3 == 0 { cut % (n + 1) } else { n });
        let _ = checkpoint::load_bytes(&bytes, Path::new("fuzz.safetensors"), &candle_core::Device::Cpu);
    }

    /// Arbitrary bytes and damaged PNGs as a picture for the Draw view.
    #[test]
    fn image_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), flip in any::<usize>()) {
        let _ = aelab::draw::image_to_ink(&bytes);
        let img = image::GrayImage::from_fn(20, 12, |x, y| image::Luma([(x * 10 + y) as u8]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let mut png = png.into_inner();
        let i = flip % png.len();
        png[i] ^= 0x55;
        if let Ok((w, h, ink)) = aelab::draw::image_to_ink(&png) {
            prop_assert_eq!(ink.len(), w * h);
            prop_assert!(ink.iter().all(|v| (0.0..=1.0).contains(v)));
            let _ = aelab::draw::to_mnist(&ink, w, h, true);
        }
    }
}

/// Learning rate 10: with sigmoid outputs the loss stays finite, but the
/// model collapses to a blank output; the run ends and says what to try.
#[test]
fn learning_rate_10_ends_as_collapsed_with_advice() {
    let (_d, data) = tiny();
    for preset in ["shallow-64", "deep"] {
        let cfg = RunConfig {
            model: ModelConfig::preset(preset).unwrap(),
            train: TrainParams {
                epochs: 20,
                lr: 10.0,
                ..TrainParams::default()
            },
            dataset: DatasetKind::Mnist,
        };
        let m = Autoencoder::new(&cfg.model, 1, &candle_core::Device::Cpu).unwrap();
        let out =
            aelab::train::run(&cfg, &data, &m, &mut (), &aelab::train::Control::default()).unwrap();
        match &out.status {
            aelab::train::Status::Collapsed { epoch, .. }
            | aelab::train::Status::Diverged { epoch, .. } => {
                assert!(*epoch < 20, "{preset}: caught before the end");
                assert!(
                    out.status.label().contains("try a lower learning rate"),
                    "{}",
                    out.status.label()
                );
            }
            other => panic!(
                "{preset}: lr 10 ended as {other:?}, val {:?}",
                out.history.val_loss
            ),
        }
    }
}

/// A tmpfs mounted for one test (needs root; the test is skipped otherwise).
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Mount(dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Train one epoch with the library on `dir`; returns the finished event.
fn train_into(dir: &Path) -> Box<aelab::worker::Finished> {
    let (_d, data) = tiny();
    let worker = WorkerHandle::spawn(Arc::new(|| {}), candle_core::Device::Cpu).unwrap();
    let run = RunConfig {
        model: ModelConfig::preset("shallow-64").unwrap(),
        train: TrainParams {
            epochs: 1,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    };
    worker
        .start(
            Job {
                id: 1,
                run,
                save_dir: Some(dir.to_path_buf()),
            },
            data,
        )
        .unwrap();
    let Event::Finished { result, .. } =
        wait(&worker, "the end", |e| matches!(e, Event::Finished { .. }))
    else {
        unreachable!()
    };
    result
}

#[test]
fn full_and_read_only_devices_give_a_clear_error_and_keep_the_model() {
    for (options, expect) in [("size=64k", "No space left"), ("ro,size=1m", "Read-only")] {
        let Some(m) = Mount::tmpfs(options) else {
            return;
        };
        let result = train_into(m.0.path());
        let err = result
            .save_error
            .clone()
            .unwrap_or_else(|| panic!("{options}: the save should fail"));
        assert!(err.contains(expect), "{options}: {err}");
        assert!(
            err.contains(&m.0.path().display().to_string()),
            "{options}: {err}"
        );
        assert_eq!(err.lines().count(), 1);
        assert!(result.checkpoint.is_none());
        let (model, _) = checkpoint::load_bytes(
            &result.weights,
            Path::new("memory"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert_eq!(model.param_count(), 101_200, "the model is still in memory");
        assert_eq!(
            temp_files(m.0.path()),
            0,
            "{options}: no temporary file left behind"
        );
    }
}
