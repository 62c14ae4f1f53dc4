//! The desktop app driven through egui_kittest on a small generated data
//! set: pick a preset by its label, Start, watch the loss plot fill, Stop,
//! find the model in the library; and hand-made worker events shown.

use aelab::app::state::{DataStatus, RunStatus, View};
use aelab::data::{self, DatasetKind};
use aelab::model::checkpoint::Manifest;
use aelab::train::{Status, TrainEvent};
use aelab::worker::{Event, Finished};
use egui_kittest::kittest::Queryable;

mod common;
use common::{harness, step_until};

#[test]
fn start_train_stop_and_find_it_in_the_library() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 200, 3).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    step_until(&mut h, 60, "data", |a| {
        matches!(a.state.data, DataStatus::Ready { .. })
    });

    // choose the preset by its label in the combo box
    h.get_by_label("Preset").click();
    h.run_steps(3);
    h.get_by_label("shallow-64").click();
    h.step();
    assert_eq!(h.state().state.settings.form.preset, "shallow-64");
    h.state_mut().state.settings.form.train.epochs = 200;

    h.get_by_label("Start").click();
    h.step();
    step_until(&mut h, 60, "loss points and one epoch", |a| {
        a.state
            .runs
            .first()
            .is_some_and(|r| r.steps.len() > 5 && !r.val.is_empty())
    });
    assert!(h.query_by_label("Loss plot").is_some());
    assert!(h.state().state.active.is_some());

    h.get_by_label("Stop").click();
    step_until(&mut h, 60, "the run to end", |a| a.state.active.is_none());
    let run = &h.state().state.runs[0];
    assert_eq!(run.status, RunStatus::Stopped);
    assert!(run.epoch < 200);
    let saved = run
        .checkpoint
        .clone()
        .expect("a stopped run with finished epochs is saved");
    assert!(saved.starts_with(models.path()));

    h.get_by_label("Library").click();
    h.step();
    assert_eq!(h.state().state.settings.view, View::Library);
    h.run_steps(2);
    assert!(
        h.query_by_label("shallow-64").is_some(),
        "the library lists the model"
    );
    assert_eq!(h.state().state.library.len(), 1);
}

#[test]
fn queue_controls_reorder_and_cancel() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    // no data: nothing starts, the queue stays visible
    let mut h = harness(data_dir.path(), models.path());
    step_until(&mut h, 30, "missing-data message", |a| {
        matches!(a.state.data, DataStatus::Missing { .. })
    });
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("MNIST is missing train-images-idx3-ubyte.gz")
        .is_some());
    assert!(h.query_by_label("Download now").is_some());
    h.get_by_label("Train the whole study").click();
    h.run_steps(2);
    assert_eq!(h.state().state.queue.len(), 17);
    let second = h.state().state.queue[1];
    h.get_all_by_label("Up").nth(1).unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().state.queue[0], second);
    h.get_all_by_label("Remove").next().unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().state.queue.len(), 16);
    assert!(!h.state().state.queue.contains(&second));
}

#[test]
fn hand_made_events_failed_and_diverged_are_shown() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut h = harness(data_dir.path(), models.path());
    let cfg = h
        .state()
        .state
        .settings
        .form
        .to_run(DatasetKind::Mnist)
        .unwrap();
    let (a, b) = {
        let s = &mut h.state_mut().state;
        (s.enqueue(cfg.clone()), s.enqueue(cfg.clone()))
    };
    {
        let s = &mut h.state_mut().state;
        s.queue.clear();
        s.active = Some(a);
        s.apply(Event::Train {
            id: a,
            event: TrainEvent::Started {
                steps_per_epoch: 10,
                total_steps: 10,
                params: 1,
            },
            earlier: vec![],
        });
        s.apply(Event::Train {
            id: a,
            event: TrainEvent::Step {
                epoch: 0,
                step: 1,
                loss: 0.5,
                lr: 1e-3,
                samples_per_sec: 10.0,
                terms: None,
            },
            earlier: vec![],
        });
        s.apply(Event::Train {
            id: a,
            event: TrainEvent::Step {
                epoch: 0,
                step: 2,
                loss: f32::NAN,
                lr: 1e-3,
                samples_per_sec: 10.0,
                terms: None,
            },
            earlier: vec![],
        });
        s.apply(Event::Failed {
            id: a,
            error: "the disk is full".into(),
        });
        s.active = Some(b);
        s.apply(Event::Finished {
            id: b,
            result: Box::new(Finished {
                manifest: Manifest {
                    status: Status::Diverged {
                        epoch: 0,
                        step: 7,
                        loss: f32::INFINITY,
                    },
                    ..Manifest::new(cfg, 1)
                },
                checkpoint: None,
                save_error: None,
                weights: vec![],
            }),
        });
    }
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("failed: the disk is full")
            .count()
            >= 1
    );
    assert!(h.query_all_by_label_contains("diverged at step 7").count() >= 1);
    assert_eq!(
        h.state().state.run(a).unwrap().steps.len(),
        1,
        "the NaN loss is not plotted"
    );
}

#[test]
fn pca_slider_changes_the_reconstruction_and_the_error() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 200, 5).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    step_until(&mut h, 60, "PCA", |a| {
        matches!(a.state.data, DataStatus::Ready { pca: Some(_), .. })
    });
    h.get_by_label("PCA").click();
    h.run_steps(3);
    let (rec30, err30) = {
        let v = &h.state().views.pca_view;
        assert_eq!(v.k, 30);
        (v.reconstructions.clone(), v.mean_error().unwrap())
    };
    assert!(h
        .query_by_label_contains(&format!("mean MSE {err30:.4}"))
        .is_some());
    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Components k")
        .set_value_accesskit(3.0);
    h.run_steps(3);
    let v = &h.state().views.pca_view;
    assert_eq!(v.k, 3);
    assert_ne!(
        v.reconstructions, rec30,
        "the reconstruction follows the slider"
    );
    let err3 = v.mean_error().unwrap();
    assert!(
        err3 > err30,
        "fewer components, larger error: {err3} vs {err30}"
    );
    assert!(
        h.query_by_label_contains(&format!("mean MSE {err3:.4}"))
            .is_some(),
        "the shown error follows the slider"
    );
    assert!(h.query_by_label("Explained variance").is_some());
}

#[test]
fn filter_grid_has_one_tile_per_hidden_unit() {
    use aelab::model::checkpoint;
    use aelab::model::{Autoencoder, ModelConfig, RunConfig, TrainParams};
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for preset in ["shallow-64", "conv-deconv"] {
        let run = RunConfig {
            model: ModelConfig::preset(preset).unwrap(),
            train: TrainParams::default(),
            dataset: DatasetKind::Mnist,
        };
        let m = Autoencoder::new(&run.model, 1, &candle_core::Device::Cpu).unwrap();
        let path = models.path().join(format!("{preset}.safetensors"));
        checkpoint::save(&path, &m, &Manifest::new(run, m.param_count())).unwrap();
        paths.push(path);
    }
    let mut h = harness(data_dir.path(), models.path());
    h.run_steps(2);
    h.get_by_label("Filters").click();
    h.run_steps(2);
    h.get_by_label("Left model").click();
    h.run_steps(3);
    h.get_by_label("shallow-64 (0 epochs)").click();
    h.run_steps(3);
    h.get_by_label("Right model").click();
    h.run_steps(3);
    h.get_by_label("conv-deconv (0 epochs)").click();
    // (the filters are read on the compute thread)
    let (dense, conv) = (paths[0].clone(), paths[1].clone());
    step_until(&mut h, 30, "both models' filters", |a| {
        let v = &a.views.filters_view;
        v.filters(&dense).is_some() && v.filters(&conv).is_some()
    });
    h.run_steps(2);
    let v = &h.state().views.filters_view;
    assert_eq!(
        v.filters(&paths[0])
            .expect("dense filters loaded")
            .tile_count(),
        64,
        "one tile per hidden unit"
    );
    // conv: every kernel of every layer: 8·1 + 16·8 + 16·16 + 16·16 + 16·8 + 8·1
    assert_eq!(
        v.filters(&paths[1])
            .expect("conv filters loaded")
            .tile_count(),
        784
    );
    assert!(h.query_by_label_contains("shallow-64 filter 63").is_some());
}

#[test]
fn the_status_bar_names_the_device_and_an_unusable_one_falls_back_to_the_cpu() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let mut h = harness(data_dir.path(), models.path());
    h.run_steps(2);
    assert!(h.query_by_label_contains("device: CPU").is_some());

    let mut launch = common::launch(data_dir.path(), models.path());
    launch.device = Some("tpu".into());
    let mut h = common::harness_for(launch);
    h.run_steps(2);
    assert!(h.query_by_label_contains("device: CPU").is_some());
    let messages = &h.state().state.messages;
    assert!(
        messages
            .iter()
            .any(|m| m.text.contains("unknown device \"tpu\"")
                && m.text.contains("training on the CPU")),
        "{messages:?}"
    );
}
