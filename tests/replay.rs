//! Training replay and the live model, driven through egui_kittest on small
//! generated data: a run's snapshots come to the Train view's scrubber and
//! are stored beside its checkpoint (replay after a restart), and a run
//! that trains shows in Draw, Compare, Denoise and Filters with its latest
//! weights.

use aelab::analysis::latent::MapSource;
use aelab::analysis::ModelRef;
use aelab::app::state::{DataStatus, RunStatus};
use aelab::app::AelabApp;
use aelab::data::{self, DatasetKind};
use aelab::model::{replay, ModelConfig, RunConfig, TrainParams};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;

mod common;
use common::{draw_stroke, harness, ready, step_until, step_until_shown};

fn run_of(preset: &str, epochs: usize) -> RunConfig {
    RunConfig {
        model: ModelConfig::preset(preset).unwrap(),
        train: TrainParams {
            epochs,
            ..TrainParams::default()
        },
        dataset: DatasetKind::Mnist,
    }
}

#[test]
fn moving_the_scrubber_shows_the_model_at_each_snapshot_even_after_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 200, 5).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    let id = h.state_mut().state.enqueue(run_of("shallow-64", 3));
    step_until(&mut h, 120, "the run to finish", |a| {
        a.state
            .run(id)
            .is_some_and(|r| r.status == RunStatus::Completed)
    });
    // before training, step 10, and the three epochs, stored beside the
    // checkpoint (and served from there, no longer from memory)
    let saved = h.state().state.run(id).unwrap().checkpoint.clone().unwrap();
    let moments = replay::read_moments(&replay::path_for(&saved)).unwrap();
    let steps: Vec<usize> = moments.iter().map(|m| m.step).collect();
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(h.state().state.run(id).unwrap().replay.is_empty());
    assert_eq!(&steps[..2], &[0, 10]);
    // (while it is evaluated the bar ends on its last snapshot, then on
    // the saved model)
    step_until(&mut h, 60, "the saved model's reconstructions", |a| {
        a.views
            .train_view
            .replay
            .shown()
            .is_some_and(|(l, _)| l == "shallow-64")
    });
    let trained = h
        .state()
        .views
        .train_view
        .replay
        .shown()
        .unwrap()
        .1
        .to_vec();
    // to the left end: the weights before the first step
    h.get_by_role_and_label(Role::Slider, "Training replay")
        .set_value_accesskit(0.0);
    step_until(&mut h, 60, "the untrained model's reconstructions", |a| {
        a.views
            .train_view
            .replay
            .shown()
            .is_some_and(|(l, _)| l.contains("before training"))
    });
    let (_, untrained) = h.state().views.train_view.replay.shown().unwrap();
    assert_ne!(untrained, trained.as_slice());
    // and the moment beside the bar
    step_until_shown(&mut h, 10, "before training");
    // Play steps through the snapshots in order, to the model itself
    h.get_by_label("Play").click();
    step_until(&mut h, 60, "the replay to reach step 10", |a| {
        a.views
            .train_view
            .replay
            .shown()
            .is_some_and(|(l, _)| l.contains("step 10 "))
    });
    assert!(h.query_by_label("Pause").is_some());
    step_until(&mut h, 60, "the replay to end on the model itself", |a| {
        !a.views.train_view.replay.bar.playing
            && a.views
                .train_view
                .replay
                .shown()
                .is_some_and(|(_, v)| v == trained.as_slice())
    });
    drop(h);

    // a restart: the library model's replay, in Draw
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    h.get_by_label("Draw").click();
    h.run_steps(3);
    draw_stroke(&mut h);
    step_until(&mut h, 60, "answers", |a| {
        a.views.draw_view.answers().is_some_and(|r| r.len() == 2)
    });
    assert!(h.query_by_label("Replay the training of").is_some());
    h.get_by_role_and_label(Role::Slider, "Training replay")
        .set_value_accesskit(1.0);
    step_until(
        &mut h,
        60,
        "the drawing through the model at step 10",
        |a| {
            a.views
                .draw_view
                .answers()
                .is_some_and(|r| r.iter().any(|x| x.label.contains("at step 10 ")))
        },
    );
    // and Latent space: the map of its codes before training
    let entry = h.state().state.library[0].clone();
    h.state_mut().latent_map.source = MapSource::Model(ModelRef::of(&entry));
    h.get_by_label("Latent space").click();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Slider, "Training replay")
        .set_value_accesskit(0.0);
    step_until(&mut h, 60, "the map of the untrained model's codes", |a| {
        let DataStatus::Ready { pca: Some(p), .. } = &a.state.data else {
            return false;
        };
        let shown = a.latent_map.shown();
        let key = (shown.label(), p.id());
        shown.label().contains("before training")
            && a.latent_map.map_for(&key).is_some_and(|m| m.is_ok())
    });
}

#[test]
fn a_model_in_training_shows_in_draw_compare_denoise_and_filters_as_it_learns() {
    let data_dir = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    data::write_synthetic(data_dir.path(), DatasetKind::Mnist, 1200, 200, 5).unwrap();
    let mut h = harness(data_dir.path(), models.path());
    ready(&mut h);
    let id = h.state_mut().state.enqueue(run_of("shallow-64", 500));
    let live = |a: &AelabApp| {
        a.state
            .run(id)
            .and_then(|r| r.live.as_ref().map(|(v, _)| *v))
    };
    step_until(&mut h, 120, "the run's first weights", |a| {
        live(a).is_some()
    });
    h.get_by_label("Draw").click();
    h.run_steps(3);
    draw_stroke(&mut h);
    let training = |a: &AelabApp| {
        a.views.draw_view.answers().and_then(|r| {
            r.iter()
                .find(|x| x.label.contains("training #"))
                .and_then(|x| Some((x.label.clone(), x.image.clone().ok()?)))
        })
    };
    step_until(&mut h, 60, "the training model's answer", |a| {
        training(a).is_some()
    });
    let (label1, image1) = training(h.state()).unwrap();
    assert!(label1.starts_with("shallow-64 · training #"), "{label1}");
    assert!(h
        .query_all_by_label_contains("shallow-64 · training #")
        .next()
        .is_some());
    // the weights refresh as it trains: the drawing's reconstruction follows
    step_until(&mut h, 60, "a later answer from newer weights", |a| {
        training(a).is_some_and(|(l, img)| l != label1 && img != image1)
    });
    assert!(h.state().state.run(id).unwrap().status.is_active());
    // Compare and Denoise show it among their rows, Filters its units
    h.get_by_label("Compare").click();
    step_until(&mut h, 60, "Compare's row of the training model", |a| {
        a.views.compare_view.rows().is_some_and(|r| {
            r.iter()
                .any(|x| x.label.contains("training #") && x.images.is_ok())
        })
    });
    h.get_by_label("Denoise").click();
    step_until(&mut h, 60, "Denoise's row of the training model", |a| {
        a.views.denoise_view.rows().is_some_and(|r| {
            r.iter()
                .any(|x| x.label.contains("training #") && x.images.is_ok())
        })
    });
    h.get_by_label("Filters").click();
    step_until(&mut h, 60, "the training model's filters", |a| {
        a.views
            .filters_view
            .left
            .as_ref()
            .and_then(|p| a.views.filters_view.filters(p))
            .is_some_and(|f| f.tile_count() == 64)
    });
    let left = h.state().views.filters_view.left.clone().unwrap();
    assert!(left.starts_with(format!("live/run-{id}")), "{left:?}");
}
