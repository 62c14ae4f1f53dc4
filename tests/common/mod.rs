//! What the kittest files share: the app on a data and a models folder,
//! opened on the Train view, and stepping it until a condition holds.

use std::path::Path;
use std::time::{Duration, Instant};

use aelab::app::state::{DataStatus, Settings};
use aelab::app::{AelabApp, Launch};
use egui_kittest::Harness;

/// The app on these folders, without downloading or an automatic first model.
pub fn launch(data_dir: &Path, models_dir: &Path) -> Launch {
    Launch {
        data_dir: Some(data_dir.to_path_buf()),
        models_dir: Some(models_dir.to_path_buf()),
        download: false,
        auto_first_model: false,
        start: None,
        frame_log: false,
        device: None,
    }
}

/// The app started with `launch`, opened on the Train view.
pub fn harness_for(launch: Launch) -> Harness<'static, AelabApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| {
            AelabApp::new(
                &cc.egui_ctx,
                Settings {
                    view: aelab::app::state::View::Train,
                    ..Settings::default()
                },
                launch,
            )
        })
}

pub fn harness(data_dir: &Path, models_dir: &Path) -> Harness<'static, AelabApp> {
    harness_for(launch(data_dir, models_dir))
}

/// Step the UI until `done` holds (or fail after `secs`, saying where the
/// data stands and what the app reported).
pub fn step_until(
    h: &mut Harness<'static, AelabApp>,
    secs: u64,
    what: &str,
    done: impl Fn(&AelabApp) -> bool,
) {
    let t = Instant::now();
    while !done(h.state()) {
        if t.elapsed() > Duration::from_secs(secs) {
            let data = match &h.state().state.data {
                DataStatus::Loading { message, .. } => format!("loading: {message}"),
                DataStatus::Missing { message } | DataStatus::Failed { message } => message.clone(),
                DataStatus::Ready { .. } => "ready".into(),
                DataStatus::NotLoaded => "not loaded".into(),
            };
            panic!(
                "timed out waiting for {what}; data: {data}; messages: {:?}",
                h.state().state.messages
            );
        }
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Step the UI until a widget whose label contains `label` is on screen
/// (or fail after `secs`). (Not every test file that shares this module
/// uses it.)
#[allow(dead_code)]
pub fn step_until_shown(h: &mut Harness<'static, AelabApp>, secs: u64, label: &str) {
    use egui_kittest::kittest::Queryable;
    let t = Instant::now();
    while h.query_by_label_contains(label).is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {label:?} on screen"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Step until the data set is loaded and PCA fitted. (Not every test file
/// that shares this module uses it.)
#[allow(dead_code)]
pub fn ready(h: &mut Harness<'static, AelabApp>) {
    step_until(h, 90, "data and PCA", |a| {
        matches!(a.state.data, DataStatus::Ready { pca: Some(_), .. })
    });
}

/// Press at the first point, move through the others, release at the last.
#[allow(dead_code)]
pub fn drag(h: &mut Harness<'static, AelabApp>, points: &[egui::Pos2]) {
    h.hover_at(points[0]);
    h.step();
    h.drag_at(points[0]);
    h.step();
    for p in &points[1..] {
        h.hover_at(*p);
        h.step();
    }
    h.drop_at(*points.last().unwrap());
    h.step();
}

/// Draw a vertical stroke down the middle of the Draw view's canvas.
#[allow(dead_code)]
pub fn draw_stroke(h: &mut Harness<'static, AelabApp>) {
    use egui_kittest::kittest::Queryable;
    let rect = h.get_by_label("Drawing canvas").rect();
    let at = |fy: f32| egui::pos2(rect.center().x, rect.min.y + fy * rect.height());
    drag(h, &[at(0.2), at(0.5), at(0.8)]);
}
