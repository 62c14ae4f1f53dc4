//! The explorer views driven through egui_kittest on small generated data
//! with a model trained for a few steps: Compare, Denoise, Noise & OOD,
//! Draw and Latent space follow their controls and show real results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aelab::app::state::DataStatus;
use aelab::app::{AelabApp, Launch};
use aelab::data::{self, idx, registry, Dataset, DatasetKind, PIXELS};
use aelab::model::checkpoint::{self, Manifest};
use aelab::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
use aelab::train::{self, Control};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;

mod common;
use common::{drag, harness, ready, step_until, step_until_shown};

/// Generated MNIST-like data and a `preset` trained on it for `epochs`,
/// saved into the model library.
fn setup(preset: &str, epochs: usize) -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 300, 7).unwrap();
    let ds = Dataset::load(data_dir.path(), DatasetKind::Mnist).unwrap();
    let run = RunConfig {
        model: ModelConfig::preset(preset).unwrap(),
        train: TrainParams {
            epochs,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    };
    let model = Autoencoder::new(&run.model, 1, &candle_core::Device::Cpu).unwrap();
    let out = train::run(&run, &ds, &model, &mut (), &Control::default()).unwrap();
    let manifest = Manifest::from_outcome(run, model.param_count(), &out, None);
    let path = models.path().join(format!("{preset}.safetensors"));
    checkpoint::save(&path, &model, &manifest).unwrap();
    (data_dir, models, path)
}

#[test]
fn denoise_noise_slider_changes_the_noisy_input_and_curves_arrive() {
    let (data_dir, models, _) = setup("shallow-64", 2);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Denoise").click();
    step_until(&mut h, 60, "denoise rows", |a| {
        a.views.denoise_view.rows().is_some()
    });
    let noisy_before = h.state().views.denoise_view.noisy().unwrap().to_vec();
    let rows = h.state().views.denoise_view.rows().unwrap();
    assert_eq!(rows.len(), 2, "the model and PCA-30");
    assert_eq!(rows[1].label, "PCA-30");
    h.get_by_role_and_label(Role::Slider, "Noise level")
        .set_value_accesskit(0.9);
    step_until(&mut h, 60, "noisier rows", |a| {
        a.views
            .denoise_view
            .noisy()
            .is_some_and(|n| n != noisy_before.as_slice())
    });
    let noisy_after = h.state().views.denoise_view.noisy().unwrap().to_vec();
    let clean: Vec<f32> = {
        let ds = Dataset::load(data_dir.path(), DatasetKind::Mnist).unwrap();
        ds.test.rows_f32(0..noisy_after.len() / PIXELS)
    };
    let mse = |x: &[f32]| {
        x.iter()
            .zip(&clean)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
    };
    assert!(
        mse(&noisy_after) > mse(&noisy_before),
        "level 0.9 corrupts more than 0.5"
    );
    step_until(&mut h, 120, "error-vs-level curves", |a| {
        a.views.denoise_view.curves().is_some()
    });
    let curves = h.state().views.denoise_view.curves().unwrap();
    assert_eq!(curves.len(), 2);
    for c in curves {
        let m = c.mse.as_ref().unwrap();
        assert!(m[10] > m[0], "{}: MSE grows with the noise {m:?}", c.label);
    }
}

#[test]
fn compare_shows_every_model_and_sorts_the_table() {
    let (data_dir, models, _) = setup("shallow-64", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Compare").click();
    step_until(&mut h, 60, "compare rows", |a| {
        a.views.compare_view.rows().is_some()
    });
    let rows = h.state().views.compare_view.rows().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["PCA-30", "shallow-64"]
    );
    for r in rows {
        assert_eq!(r.scores.len(), aelab::app::compare_view::COMPARE_DIGITS);
        assert!(r.scores.iter().all(|s| s.mse.is_finite() && s.ssim <= 1.0));
    }
    assert!(h.query_by_label_contains("shallow-64 image 0").is_some());
    // sorting by params puts PCA-30 (23,520) before shallow-64 (101,200)
    h.get_by_label_contains("params").click();
    h.run_steps(2);
    let state = &h.state().state;
    let names: Vec<String> = h
        .state()
        .views
        .compare_view
        .table_rows(state)
        .into_iter()
        .map(|r| r.model)
        .collect();
    assert_eq!(names, ["PCA-30", "shallow-64"]);
    h.get_by_label_contains("params").click();
    h.run_steps(2);
    let names: Vec<String> = h
        .state()
        .views
        .compare_view
        .table_rows(&h.state().state)
        .into_iter()
        .map(|r| r.model)
        .collect();
    assert_eq!(names, ["shallow-64", "PCA-30"], "a second click reverses");
}

/// Blocky "clothes": filled rectangles, unlike the generated digits.
fn write_blocky_fashion(root: &Path, n: usize) {
    let dir = root.join(DatasetKind::FashionMnist.slug());
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = aelab::rng::Rng::new(9);
    let mut px = vec![0u8; n * PIXELS];
    for img in px.chunks_exact_mut(PIXELS) {
        let (x0, y0) = (2 + rng.below(6), 2 + rng.below(6));
        let (x1, y1) = (18 + rng.below(8), 18 + rng.below(8));
        let v = 120 + rng.below(130) as u8;
        for y in y0..y1 {
            for x in x0..x1 {
                img[y * 28 + x] = v;
            }
        }
    }
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (name, bytes) in [
        (registry::TRAIN_IMAGES, idx::encode_images(&px, n)),
        (registry::TRAIN_LABELS, idx::encode_labels(&labels)),
        (registry::TEST_IMAGES, idx::encode_images(&px, n)),
        (registry::TEST_LABELS, idx::encode_labels(&labels)),
    ] {
        std::fs::write(dir.join(name), idx::gzip(&bytes)).unwrap();
    }
}

#[test]
fn ood_auroc_of_fashion_against_mnist_is_above_chance() {
    let (data_dir, models, _) = setup("shallow-64", 3);
    write_blocky_fashion(data_dir.path(), 400);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Noise & OOD").click();
    step_until(&mut h, 90, "the separation of the test sets", |a| {
        a.views.ood_view.separation().is_some()
    });
    let s = h.state().views.ood_view.separation().unwrap();
    assert!(
        s.auroc_other.is_some_and(|a| a > 0.5 && a <= 1.0),
        "AUROC Fashion vs MNIST {:?}",
        s.auroc_other
    );
    assert!(
        s.auroc_noise > 0.5 && s.auroc_noise <= 1.0,
        "noise {}",
        s.auroc_noise
    );
    assert!(h.query_by_label_contains("AUROC").is_some());
    step_until(&mut h, 60, "OOD rows", |a| {
        a.views.ood_view.rows().is_some()
    });
    assert_eq!(h.state().views.ood_view.rows().unwrap().len(), 1);
}

#[test]
fn drawing_on_the_canvas_gives_an_input_and_every_model_answers() {
    let (data_dir, models, _) = setup("shallow-64", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Draw").click();
    h.run_steps(3);
    assert!(h.state().views.draw_view.input.is_none());
    assert!(
        h.query_by_label_contains("Draw something").is_some(),
        "empty canvas state"
    );
    let rect = h.get_by_label("Drawing canvas").rect();
    let at = |fx: f32, fy: f32| {
        egui::pos2(
            rect.min.x + fx * rect.width(),
            rect.min.y + fy * rect.height(),
        )
    };
    // a vertical stroke
    drag(
        &mut h,
        &[at(0.5, 0.2), at(0.5, 0.4), at(0.5, 0.6), at(0.5, 0.8)],
    );
    let input1 = h
        .state()
        .views
        .draw_view
        .input
        .clone()
        .expect("the stroke gives an input");
    assert!(input1.iter().any(|&v| v > 0.5));
    step_until(&mut h, 60, "answers", |a| {
        a.views.draw_view.answers().is_some_and(|r| r.len() == 2)
    });
    let answer1 = h.state().views.draw_view.answers().unwrap()[1]
        .image
        .clone()
        .unwrap();
    // a horizontal bar on top: a "7"-ish shape, the answers change
    drag(
        &mut h,
        &[at(0.3, 0.2), at(0.45, 0.2), at(0.6, 0.2), at(0.7, 0.2)],
    );
    let input2 = h.state().views.draw_view.input.clone().unwrap();
    assert_ne!(input1, input2);
    step_until(&mut h, 60, "new answers", |a| {
        a.views
            .draw_view
            .answers()
            .and_then(|r| r.get(1))
            .and_then(|r| r.image.as_ref().ok())
            .is_some_and(|img| *img != answer1)
    });
    let answers = h.state().views.draw_view.answers().unwrap();
    assert_eq!(answers[0].label, "PCA-30");
    assert!(answers.iter().all(|a| a.mse.is_some_and(|m| m.is_finite())));
    step_until(&mut h, 60, "nearest training images", |a| {
        a.views.draw_view.nearest().is_some_and(|n| n.len() == 6)
    });
    // the drawn digit's marker on the latent map under the canvas
    // (the placement of this drawing, not a stale one of the first stroke:
    // the undo below goes back to that one)
    step_until(&mut h, 60, "the drawn digit on the map", |a| {
        a.latent_map.marker().is_some() && !a.latent_map.marker_pending()
    });
    let m1 = h.state().latent_map.marker().unwrap();
    // undo and clear through the buttons
    h.get_by_label("Undo").click();
    h.run_steps(2);
    assert_eq!(h.state().views.draw_view.drawing.strokes.len(), 1);
    step_until(&mut h, 60, "the marker to move with the drawing", |a| {
        a.latent_map.marker().is_some_and(|m| m != m1)
    });
    h.get_by_label("Clear").click();
    h.run_steps(2);
    assert!(h.state().views.draw_view.input.is_none());
}

#[test]
fn interpolation_slider_ends_show_the_two_inputs() {
    let (data_dir, models, _) = setup("shallow-64", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Latent space").click();
    h.run_steps(3);
    let ds = Dataset::load(data_dir.path(), DatasetKind::Mnist).unwrap();
    let (a, b) = (ds.test.image_f32(0), ds.test.image_f32(1));
    let last = |app: &AelabApp| -> Option<Vec<f32>> {
        let rows = app.views.latent_view.interpolation()?;
        let px = rows[0].images.as_ref().ok()?;
        Some(px[px.len() - PIXELS..].to_vec())
    };
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
    h.get_by_role_and_label(Role::Slider, "Blend t")
        .set_value_accesskit(0.0);
    step_until(&mut h, 60, "t = 0 shows A", |app| {
        last(app).is_some_and(|v| close(&v, &a))
    });
    h.get_by_role_and_label(Role::Slider, "Blend t")
        .set_value_accesskit(1.0);
    step_until(&mut h, 60, "t = 1 shows B", |app| {
        last(app).is_some_and(|v| close(&v, &b))
    });
    let rows = h.state().views.latent_view.interpolation().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["pixels", "PCA-30", "shallow-64"]
    );
    // the model's row at t = 1 decodes B's code: its reconstruction of B
    let model = checkpoint::load(
        &models.path().join("shallow-64.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap()
    .0;
    let rec_b = model.reconstruct(&b).unwrap();
    let px = rows[2].images.as_ref().unwrap();
    assert!(close(&px[px.len() - PIXELS..], &rec_b));
    step_until(&mut h, 60, "the map", |app| app.latent_map.map().is_some());
    assert_eq!(h.state().latent_map.map().unwrap().points.len(), 300);
}

#[test]
fn filters_show_activation_statistics_and_conv_feature_maps() {
    let (data_dir, models, _) = setup("shallow-64", 1);
    // a conv model next to it
    let run = RunConfig {
        model: ModelConfig::preset("conv-deconv").unwrap(),
        train: TrainParams::default(),
        dataset: DatasetKind::Mnist,
    };
    let conv = Autoencoder::new(&run.model, 1, &candle_core::Device::Cpu).unwrap();
    let mut manifest = Manifest::new(run, conv.param_count());
    manifest.epochs_done = 1;
    checkpoint::save(&models.path().join("conv.safetensors"), &conv, &manifest).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Filters").click();
    h.run_steps(3);
    h.get_by_label("Left model").click();
    h.run_steps(3);
    h.get_by_label("shallow-64 (1 epochs)").click();
    h.run_steps(3);
    h.get_by_label("Right model").click();
    h.run_steps(3);
    h.get_by_label("conv-deconv (1 epochs)").click();
    step_until(&mut h, 60, "activations and feature maps", |a| {
        let v = &a.views.filters_view;
        v.activations(0).is_some() && v.activations(1).is_some() && v.feature_maps(1).is_some()
    });
    let v = &h.state().views.filters_view;
    let dense = v.activations(0).unwrap();
    assert_eq!(dense.units(), 64);
    assert_eq!(dense.n_images, 300);
    assert!(dense.dead <= 64);
    assert_eq!(v.activations(1).unwrap().units(), 256);
    let maps = v.feature_maps(1).unwrap();
    assert_eq!(
        maps.len(),
        7,
        "conv1, conv2, conv3, code, two decoder layers, output"
    );
    assert_eq!(maps[0].shape, [8, 28, 28]);
    assert!(h
        .query_by_label_contains("enc.conv1 + ReLU channel 7")
        .is_some());
    assert_eq!(h.query_all_by_label_contains("units never fire").count(), 2);
}

#[test]
fn the_study_report_runs_from_the_app_with_progress() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 800, 200, 3).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Library").click();
    h.run_steps(2);
    assert!(h.query_by_label("Write the study report…").is_some());
    h.state_mut()
        .apply(aelab::app::action::Action::WriteReport {
            out: out.path().to_path_buf(),
            quick: true,
        });
    step_until(&mut h, 120, "progress", |a| {
        a.report.as_ref().is_some_and(|r| r.last.contains("/17]"))
    });
    step_until(&mut h, 300, "the report", |a| {
        a.report.as_ref().is_some_and(|r| r.finished.is_some())
    });
    assert_eq!(h.state().report.as_ref().unwrap().finished, Some(Ok(())));
    assert!(out.path().join("REPORT.md").is_file());
    assert!(out.path().join("metrics.json").is_file());
    h.run_steps(2);
    assert!(h.query_by_label_contains("Written:").is_some());
}

#[test]
fn shortcuts_switch_views_and_the_help_window_copies_diagnostics() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 300, 50, 3).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    h.run_steps(2);
    assert_eq!(
        h.state().state.settings.view,
        aelab::app::state::View::Train
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::PageDown);
    h.run_steps(2);
    assert_eq!(h.state().state.settings.view, aelab::app::state::View::Draw);
    for _ in 0..3 {
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::PageUp);
        h.run_steps(2);
    }
    assert_eq!(
        h.state().state.settings.view,
        aelab::app::state::View::Library,
        "wraps around"
    );
    h.key_press(egui::Key::F1);
    h.run_steps(2);
    assert!(h.query_by_label("Keyboard shortcuts").is_some());
    h.get_by_label("Copy diagnostics").click();
    h.run_steps(2);
    assert!(h
        .state()
        .state
        .messages
        .iter()
        .any(|m| m.text.contains("diagnostics copied")));
    let d = h.state().diagnostics();
    assert!(
        d.contains(env!("CARGO_PKG_VERSION")) && d.contains(&data_dir.path().display().to_string()),
        "{d}"
    );
    // Ctrl+Enter queues the Train view's run
    ready(&mut h);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    h.run_steps(2);
    assert_eq!(h.state().state.runs.len(), 1);
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Enter,
    );
    step_until(&mut h, 60, "the run to stop", |a| {
        a.state.active.is_none() && a.state.queue.is_empty()
    });
}

#[test]
fn the_study_view_walks_from_step_1_to_5() {
    let (data_dir, models, _) = setup("deep", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Study").click();
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("1. PCA versus a deep autoencoder")
        .is_some());
    assert!(h.query_by_label_contains("deep: ready").is_some());
    step_until(&mut h, 60, "PCA-30 and deep rows", |a| {
        a.views.study_view.rows().is_some_and(|r| r.len() == 2)
    });
    let labels: Vec<String> = h
        .state()
        .views
        .study_view
        .rows()
        .unwrap()
        .iter()
        .map(|r| r.label.clone())
        .collect();
    assert_eq!(labels, ["PCA-30", "deep"]);
    // the take-away is computed from this library's deep model (its test metrics are absent here, so it says so)
    assert!(
        h.query_by_label_contains("Train the deep autoencoder")
            .is_some()
            || h.query_by_label_contains("PCA's error is").is_some()
    );
    let titles = [
        "2. How wide must the hidden layer be?",
        "3. Sparsity: few units at a time",
        "4. Denoising: learn to clean",
        "5. Convolutional decoders",
        "6. A variational autoencoder",
    ];
    for (i, t) in titles.iter().enumerate() {
        h.get_by_label("Next").click();
        h.run_steps(2);
        if i == 0 {
            // nothing of step 2 trained yet: a message, not empty axes
            assert!(h
                .query_by_label_contains("No model of this step has finished an epoch yet")
                .is_some());
        }
        assert!(h.query_by_label_contains(t).is_some(), "step {}", i + 2);
        if i == 0 {
            // step 2 needs three models: one button queues them
            assert!(h
                .query_by_label_contains("shallow-64: not trained")
                .is_some());
            h.get_by_label("Train this step").click();
            h.run_steps(2);
            let presets: Vec<String> = h
                .state()
                .state
                .runs
                .iter()
                .map(|r| r.config.model.preset.clone())
                .collect();
            assert_eq!(presets, ["shallow-64", "shallow-128", "shallow-256"]);
        }
    }
    h.get_by_label("Next").click();
    h.run_steps(2);
    assert_eq!(h.state().views.study_view.step, 5, "step 6 is the last");
    h.get_by_label("Back").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("5. Convolutional").is_some());
    // each step points to the view with the rest of its figures
    h.get_by_label("More on this in the Compare view").click();
    h.run_steps(2);
    assert_eq!(
        h.state().state.settings.view,
        aelab::app::state::View::Compare
    );
}

#[test]
fn a_download_shows_progress_and_can_be_cancelled_and_retried() {
    use std::io::{Read, Write};
    // a mirror that trickles a large file
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n",
                );
                for _ in 0..10_000 {
                    if s.write_all(&[0x1f; 1000]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
    });
    // only this test binary's download-enabled test reads the variable
    std::env::set_var("AELAB_MIRRORS", format!("http://{addr}/"));
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let launch = Launch {
        download: true,
        ..common::launch(data_dir.path(), models.path())
    };
    let mut h = common::harness_for(launch);
    step_until(
        &mut h,
        60,
        "download progress",
        |a| matches!(&a.state.data, DataStatus::Loading { fraction: Some(f), message } if *f > 0.0 && message.contains("downloading")),
    );
    assert!(h.query_all_by_label_contains("downloading").count() >= 1);
    h.get_by_label("Cancel").click();
    step_until(
        &mut h,
        60,
        "the cancelled download",
        |a| matches!(&a.state.data, DataStatus::Missing { message } if message.contains("cancelled")),
    );
    h.run_steps(2);
    assert!(h.query_by_label("Download now").is_some(), "a retry button");
    assert_eq!(
        std::fs::read_dir(data_dir.path())
            .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn right_clicking_a_figure_offers_png_and_csv_export() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 300, 50, 3).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.run_steps(2);
    assert!(h.query_by_label("Save figure as PNG…").is_none());
    // A right click inside the loss plot, below its title bar.
    let png = h.get_by_label("PNG").rect();
    let inside = egui::pos2(png.center().x, png.max.y + 80.0);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: inside,
            button: egui::PointerButton::Secondary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    h.run_steps(3);
    assert!(h.query_by_label("Save figure as PNG…").is_some());
    assert!(h.query_by_label("Save data as CSV…").is_some());
    // A left click elsewhere closes it.
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: egui::pos2(5.0, 5.0),
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    h.run_steps(3);
    assert!(h.query_by_label("Save figure as PNG…").is_none());
}

#[test]
fn a_vae_plane_decodes_the_dragged_point_and_sample_draws_new_digits() {
    let (data_dir, models, _) = setup("vae-2", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Latent space").click();
    h.run_steps(3);
    // pick the VAE's map in the "Map of" box
    h.get_by_role_and_label(Role::ComboBox, "Map of").click();
    h.run_steps(2);
    h.get_by_label("vae-2 (its code plane)").click();
    step_until(&mut h, 60, "the VAE's plane", |a| {
        matches!(
            &a.latent_map.source,
            aelab::analysis::latent::MapSource::Model(_)
        ) && a.latent_map.map().is_some()
    });
    // the plane's points are the codes' means themselves
    step_until_shown(&mut h, 60, "press and drag anywhere to decode that point");
    let title = h
        .get_by_label_contains("press and drag anywhere to decode that point")
        .rect();
    let start = egui::pos2(title.left() + 120.0, title.bottom() + 160.0);
    drag(
        &mut h,
        &[
            start,
            start + egui::vec2(15.0, -10.0),
            start + egui::vec2(30.0, -20.0),
        ],
    );
    step_until(&mut h, 30, "the point decoded", |a| {
        a.views.latent_view.vae.decoded().is_some()
    });
    let (p1, img1) = {
        let v = &h.state().views.latent_view.vae;
        (v.point.unwrap(), v.decoded().unwrap().to_vec())
    };
    assert_eq!(img1.len(), PIXELS);
    drag(
        &mut h,
        &[
            start,
            start + egui::vec2(-45.0, 55.0),
            start + egui::vec2(-90.0, 110.0),
        ],
    );
    let model = checkpoint::load(
        &models.path().join("vae-2.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap()
    .0;
    // the drag passes other points first: wait for the image of the last
    // one, which is the decoder's image at that point, and another than
    // the first drag's
    step_until(&mut h, 30, "the dragged-to point decoded", |a| {
        let v = &a.views.latent_view.vae;
        let (Some(z), Some(d)) = (v.point, v.decoded()) else {
            return false;
        };
        z != p1 && d == model.decode(&z).unwrap().as_slice()
    });
    let v = &h.state().views.latent_view.vae;
    assert_ne!(v.decoded().unwrap(), img1.as_slice());
    let ds = Dataset::load(data_dir.path(), DatasetKind::Mnist).unwrap();
    let map = h.state().latent_map.map().unwrap();
    let codes = model
        .encode(&ds.test.rows_f32(0..map.points.len()))
        .unwrap();
    assert_eq!(
        map.points[7],
        [codes[14], codes[15]],
        "the plane is the code itself"
    );
    // Sample draws other digits
    step_until(&mut h, 30, "samples", |a| {
        a.views.latent_view.vae.samples().is_some()
    });
    let first = h.state().views.latent_view.vae.samples().unwrap().to_vec();
    assert_eq!(first.len(), 10 * PIXELS);
    h.get_by_label("Sample").click();
    step_until(&mut h, 30, "new samples", |a| {
        a.views
            .latent_view
            .vae
            .samples()
            .is_some_and(|s| s != first.as_slice())
    });
    assert!(h.query_by_label_contains("The plane decoded").is_some());
}

#[test]
fn a_vae_shows_its_reconstruction_and_kl_curves_while_it_trains() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 100, 3).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    let id = h.state_mut().state.enqueue(RunConfig {
        model: ModelConfig::preset("vae-2").unwrap(),
        train: TrainParams {
            epochs: 50,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    });
    step_until(&mut h, 120, "the VAE's terms while it trains", |a| {
        a.state
            .run(id)
            .is_some_and(|r| r.status.is_active() && r.terms.len() >= 2)
    });
    h.run_steps(2);
    assert!(h.query_by_label("VAE terms plot").is_some());
    let r = h.state().state.run(id).unwrap();
    assert!(r.terms.iter().all(|t| t[1] > 0.0 && t[2] >= 0.0));
    // each epoch's validation ELBO and active dimensions, while it trains
    step_until(&mut h, 120, "an epoch's ELBO", |a| {
        a.state
            .run(id)
            .is_some_and(|r| r.status.is_active() && r.vae_epoch.is_some())
    });
    h.run_steps(2);
    assert!(h.query_by_label_contains("validation ELBO").is_some());
    let (_, v) = h.state().state.run(id).unwrap().vae_epoch.clone().unwrap();
    assert!(v.val_elbo.is_finite() && v.val_elbo < 0.0 && v.active_dims <= 2);
}

#[test]
fn a_vae_offers_its_elbo_as_the_ood_score() {
    let (data_dir, models, _) = setup("vae-2", 2);
    write_blocky_fashion(data_dir.path(), 400);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Noise & OOD").click();
    step_until(&mut h, 90, "the separation by MSE", |a| {
        a.views.ood_view.separation().is_some()
    });
    let by_mse = h.state().views.ood_view.separation().unwrap().clone();
    assert_eq!(by_mse.score, aelab::analysis::ood::Score::Mse);
    h.get_by_role_and_label(Role::ComboBox, "Score").click();
    h.run_steps(2);
    h.get_by_label("−ELBO (nats)").click();
    step_until(&mut h, 90, "the separation by the ELBO", |a| {
        a.views
            .ood_view
            .separation()
            .is_some_and(|s| s.score == aelab::analysis::ood::Score::NegElbo)
    });
    let by_elbo = h.state().views.ood_view.separation().unwrap();
    // −ELBO is in nats per image (hundreds), not an MSE per pixel
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&by_elbo.inside) > 10.0 && mean(&by_mse.inside) < 1.0);
    assert!(by_elbo
        .auroc_other
        .is_some_and(|a| (0.0..=1.0).contains(&a)));
    assert!(h
        .query_all_by_label_contains("Threshold (−ELBO)")
        .next()
        .is_some());
}

#[test]
fn noise_and_ood_offers_to_download_the_missing_data_set() {
    // a mirror that has nothing: the download starts, then says why it stopped
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    std::env::set_var("AELAB_MIRRORS_FASHION_MNIST", format!("http://{addr}/"));
    let (data_dir, models, _) = setup("shallow-64", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Noise & OOD").click();
    step_until_shown(&mut h, 30, "Download Fashion-MNIST");
    h.get_by_label("Download Fashion-MNIST").click();
    h.run_steps(1);
    assert!(
        h.state().state.other_download.is_some(),
        "the download started"
    );
    step_until(&mut h, 60, "the download to stop", |a| {
        a.state
            .other_download
            .as_ref()
            .is_some_and(|d| d.error.is_some())
    });
    h.run_steps(3);
    assert!(h.query_by_label_contains("the download stopped").is_some());
    // the data set itself is still missing, and the button is back
    assert!(h.query_by_label("Download Fashion-MNIST").is_some());
    std::env::remove_var("AELAB_MIRRORS_FASHION_MNIST");
}

#[test]
fn the_decoder_dictionary_shows_what_each_code_unit_draws() {
    let (data_dir, models, _) = setup("shallow-64", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Filters").click();
    step_until(&mut h, 60, "the dictionary", |a| {
        a.views.filters_view.dictionary(0).is_some()
    });
    h.run_steps(3);
    let d = h.state().views.filters_view.dictionary(0).unwrap();
    assert_eq!(d.images.len(), 64);
    assert!(
        d.encoder.is_some(),
        "a shallow model's units have encoder filters"
    );
    assert!(h
        .query_by_label_contains("What each code unit draws (left: its encoder filter)")
        .is_some());
    // each unit's tile is on screen, with how often it fires
    assert!(h.query_all_by_label_contains("fires on").count() >= 64);
}

#[test]
fn the_denoising_grid_fills_in_for_a_denoising_model() {
    let (data_dir, models, _) = setup("denoise-0.5", 1);
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Denoise").click();
    step_until(&mut h, 90, "the curves", |a| {
        a.views.denoise_view.curves().is_some()
    });
    h.run_steps(3);
    let refs: Vec<aelab::analysis::ModelRef> = h
        .state()
        .state
        .models()
        .into_iter()
        .map(aelab::analysis::ModelRef::of)
        .collect();
    let g = h.state().views.denoise_view.grid(&refs).expect("a grid");
    assert_eq!(g.rows, [("denoise-0.5".to_string(), 0.5)]);
    assert_eq!(g.mse[0].len(), 11);
    assert!(g.mse[0].iter().all(|m| m.is_finite() && *m > 0.0));
    assert!(h
        .query_by_label_contains("Denoisers: training level (rows)")
        .is_some());
}
