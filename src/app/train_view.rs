//! The Train view: a preset and its parameters, Start / Pause / Resume /
//! Stop, the run queue, progress, and the live loss plot of every run.

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, VLine};

use super::action::{Action, Actions};
use super::state::{parse_sizes, AppState, RunStatus, TrainForm, View};
use crate::analysis::study;
use crate::data::noise::{Noise, NoiseKind};
use crate::model::{Activation, Arch, LossKind, ModelConfig};

#[derive(Default)]
pub struct TrainView {
    /// The learning rate typed while a run is active.
    pub live_lr: Option<f64>,
    pub form_error: Option<String>,
    /// The training replay under the progress.
    pub replay: super::replay_panel::ReplayPanel,
}

/// A colour per run id, stable across frames.
pub fn run_color(id: u64) -> Color32 {
    const PALETTE: [Color32; 8] = [
        Color32::from_rgb(31, 119, 180),
        Color32::from_rgb(255, 127, 14),
        Color32::from_rgb(44, 160, 44),
        Color32::from_rgb(214, 39, 40),
        Color32::from_rgb(148, 103, 189),
        Color32::from_rgb(140, 86, 75),
        Color32::from_rgb(227, 119, 194),
        Color32::from_rgb(23, 190, 207),
    ];
    PALETTE[(id as usize) % PALETTE.len()]
}

impl TrainView {
    fn show(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut AppState,
        actions: &Actions,
        compute: &crate::analysis::Compute,
    ) {
        egui::Panel::left("train_form")
            .resizable(false)
            .exact_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.form_ui(ui, state, actions);
                    ui.separator();
                    self.controls_ui(ui, state, actions);
                    ui.separator();
                    queue_ui(ui, state, actions);
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            progress_ui(ui, state);
            let mut log = state.settings.log_scale;
            {
                let st: &AppState = state;
                self.replay.ui(ui, st, compute);
                let mark = self.replay.step_shown(st);
                if st.runs.iter().any(|r| !r.terms.is_empty()) {
                    super::export::figure(
                        ui,
                        "vae-terms",
                        "A VAE's two terms per step: reconstruction and KL (nats per image)",
                        Some(&|| terms_csv(st)),
                        |ui| terms_plot(ui, st),
                    );
                }
                super::export::figure(ui, "loss", "", Some(&|| loss_csv(st)), |ui| {
                    loss_plot(ui, st, &mut log, mark)
                });
            }
            state.settings.log_scale = log;
        });
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, state: &mut AppState, actions: &Actions) {
        let form = &mut state.settings.form;
        ui.heading("New run");
        let mut chosen = form.preset.clone();
        egui::ComboBox::from_label("Preset")
            .selected_text(&chosen)
            .show_ui(ui, |ui| {
                for p in study::presets() {
                    let tip = ModelConfig::preset(p)
                        .map(|c| format!("{}\n{}", c.explain(), c.describe()))
                        .unwrap_or_default();
                    ui.selectable_value(&mut chosen, p.to_string(), p)
                        .on_hover_text(tip);
                }
            })
            .response
            .on_hover_text("A model of the study; its parameters can be edited below");
        if chosen != form.preset {
            let train = form.train.clone();
            *form = TrainForm::from_preset(&chosen);
            form.train = train;
        }
        ui.label(RichText::new(form.model.describe()).small().weak());
        egui::Grid::new("model_params").num_columns(2).show(ui, |ui| {
            if let Arch::Dense { activation, .. } = &mut form.model.arch {
                row(ui, "Encoder sizes", "Hidden layer sizes from the input; the last one is the bottleneck (the code)", |ui| {
                    ui.add(egui::TextEdit::singleline(&mut form.encoder_text).desired_width(140.0))
                });
                row(ui, "Decoder sizes", "Hidden layer sizes from the code back towards the 784-pixel output", |ui| {
                    ui.add(egui::TextEdit::singleline(&mut form.decoder_text).desired_width(140.0))
                });
                row(ui, "Activation", "Non-linearity of the hidden layers", |ui| {
                    egui::ComboBox::from_id_salt("activation")
                        .selected_text(activation.label())
                        .show_ui(ui, |ui| {
                            for a in Activation::ALL {
                                ui.selectable_value(activation, a, a.label());
                            }
                        })
                        .response
                });
            }
            if let Arch::Vae { latent, beta, warmup, .. } = &mut form.model.arch {
                row(ui, "Encoder sizes", "Hidden layer sizes from the input; the mean and log-variance of the code follow", |ui| {
                    ui.add(egui::TextEdit::singleline(&mut form.encoder_text).desired_width(140.0))
                });
                row(ui, "Code size", "Dimensions of the Gaussian code (2: a plane you can drag through in the Latent space view)", |ui| {
                    ui.add(egui::DragValue::new(latent).range(1..=256))
                });
                row(ui, "β (KL weight)", "Weight of the KL term: 0 is a plain (noisy) autoencoder, 1 the standard VAE, more a smoother, blurrier code space", |ui| {
                    ui.add(egui::DragValue::new(beta).speed(0.01).range(0.0..=100.0).max_decimals(3))
                });
                row(ui, "Warm-up", "Ramp β up from 0 over the first epoch, so the code is used before it is pulled to the prior", |ui| {
                    ui.checkbox(warmup, "β over epoch 1")
                });
            } else {
                row(ui, "L1 λ", "Sparsity: penalty on the absolute code activations; 0 = a plain autoencoder", |ui| {
                    ui.add(egui::DragValue::new(&mut form.model.l1).speed(1e-6).range(0.0..=1.0).max_decimals(6))
                });
            }
            let mut kind = form.model.noise.kind;
            let mut level = form.model.noise.level;
            row(ui, "Noise", "Inputs are corrupted during training, targets stay clean (a denoising autoencoder)", |ui| {
                egui::ComboBox::from_id_salt("noise_kind")
                    .selected_text(kind.label())
                    .show_ui(ui, |ui| {
                        for k in NoiseKind::ALL {
                            ui.selectable_value(&mut kind, k, k.label());
                        }
                    })
                    .response
            });
            row(ui, "Noise level", "Gaussian: standard deviation; masking and salt-and-pepper: fraction of pixels hit", |ui| {
                ui.add(egui::Slider::new(&mut level, 0.0..=1.0))
            });
            form.model.noise = Noise { kind, level };
            row(ui, "Loss", "What training minimises; validation always reports MSE", |ui| {
                egui::ComboBox::from_id_salt("loss")
                    .selected_text(match form.model.loss {
                        LossKind::Mse => "MSE",
                        LossKind::Bce => "binary cross-entropy",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut form.model.loss, LossKind::Mse, "MSE");
                        ui.selectable_value(&mut form.model.loss, LossKind::Bce, "binary cross-entropy");
                    })
                    .response
            });
            row(ui, "Epochs", "Passes over the 50,000 training images", |ui| {
                ui.add(egui::DragValue::new(&mut form.train.epochs).range(1..=1000))
            });
            row(ui, "Batch", "Images per optimiser step", |ui| {
                ui.add(egui::DragValue::new(&mut form.train.batch_size).range(1..=4096))
            });
            row(ui, "Learning rate", "Adam step size", |ui| {
                ui.add(egui::DragValue::new(&mut form.train.lr).speed(1e-5).range(1e-6..=10.0).max_decimals(6))
            });
            row(ui, "Seed", "Seeds the initial weights, the shuffling and the noise", |ui| {
                ui.add(egui::DragValue::new(&mut form.train.seed))
            });
        });
        if let Err(e) = parse_sizes(&form.encoder_text).and(parse_sizes(&form.decoder_text)) {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.horizontal(|ui| {
            if ui
                .button("Start")
                .on_hover_text("Queue this run; it starts as soon as the trainer is free")
                .clicked()
            {
                match state.settings.form.to_run(state.settings.dataset) {
                    Ok(cfg) => {
                        self.form_error = None;
                        actions.push(Action::Enqueue(cfg));
                    }
                    Err(e) => self.form_error = Some(e),
                }
            }
            if ui
                .button("Train the whole study")
                .on_hover_text(format!(
                    "Queue all {} presets of the study with this schedule",
                    study::presets().len()
                ))
                .clicked()
            {
                actions.push(Action::EnqueueStudy);
            }
        });
        if let Some(e) = &self.form_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, state: &AppState, actions: &Actions) {
        let Some(run) = state.active_run() else {
            ui.label(RichText::new("No run is training.").weak());
            return;
        };
        ui.label(RichText::new(format!("Training {}", run.label())).strong());
        ui.horizontal(|ui| {
            if state.paused {
                if ui.button("Resume").clicked() {
                    actions.push(Action::Resume);
                }
            } else if ui.button("Pause").clicked() {
                actions.push(Action::Pause);
            }
            if ui
                .button("Stop")
                .on_hover_text("End the run after the current batch; the model is kept")
                .clicked()
            {
                actions.push(Action::Stop);
            }
        });
        ui.horizontal(|ui| {
            let lr = self.live_lr.get_or_insert(run.config.train.lr);
            let l = ui.label("New learning rate");
            ui.add(
                egui::DragValue::new(lr)
                    .speed(1e-5)
                    .range(1e-6..=10.0)
                    .max_decimals(6),
            )
            .labelled_by(l.id);
            if ui
                .button("Apply")
                .on_hover_text("Takes effect at the next step and is marked on the plot")
                .clicked()
            {
                actions.push(Action::SetLearningRate(*lr));
            }
        });
    }
}

/// A labelled grid row whose widget is named by its label (for screen readers and tests).
fn row(
    ui: &mut egui::Ui,
    label: &str,
    hover: &str,
    add: impl FnOnce(&mut egui::Ui) -> egui::Response,
) {
    let l = ui.label(label).on_hover_text(hover);
    add(ui).labelled_by(l.id).on_hover_text(hover);
    ui.end_row();
}

fn queue_ui(ui: &mut egui::Ui, state: &AppState, actions: &Actions) {
    ui.heading("Queue");
    if state.queue.is_empty() {
        ui.label(RichText::new("empty").weak());
    }
    let n = state.queue.len();
    for (i, &id) in state.queue.iter().enumerate() {
        let Some(run) = state.run(id) else { continue };
        ui.horizontal(|ui| {
            ui.label(run.label());
            if ui
                .add_enabled(i > 0, egui::Button::new("Up"))
                .on_hover_text("Move up")
                .clicked()
            {
                actions.push(Action::MoveQueued { id, up: true });
            }
            if ui
                .add_enabled(i + 1 < n, egui::Button::new("Down"))
                .on_hover_text("Move down")
                .clicked()
            {
                actions.push(Action::MoveQueued { id, up: false });
            }
            if ui
                .button("Remove")
                .on_hover_text("Remove from the queue")
                .clicked()
            {
                actions.push(Action::CancelQueued(id));
            }
        });
    }
    ui.add_space(8.0);
    ui.heading("Runs");
    for run in state
        .runs
        .iter()
        .rev()
        .filter(|r| r.status != RunStatus::Queued)
    {
        let color = match &run.status {
            RunStatus::Failed(_) | RunStatus::Diverged(_) => ui.visuals().error_fg_color,
            _ => run_color(run.id),
        };
        let mut text = format!("{}: {}", run.label(), run.status.label());
        if let Some(m) = run.test_mse {
            text += &format!(" · test MSE {m:.5}");
        }
        ui.colored_label(color, text);
        if let Some(e) = &run.save_error {
            ui.colored_label(ui.visuals().warn_fg_color, format!("not saved: {e}"));
        }
    }
}

fn progress_ui(ui: &mut egui::Ui, state: &AppState) {
    if let Some(run) = state.active_run() {
        ui.horizontal(|ui| {
            ui.label(format!(
                "epoch {}/{}",
                (run.epoch + 1).min(run.config.train.epochs),
                run.config.train.epochs
            ));
            ui.add(
                egui::ProgressBar::new(run.epoch_fraction())
                    .desired_width(220.0)
                    .show_percentage(),
            );
            ui.label("run");
            ui.add(
                egui::ProgressBar::new(run.run_fraction())
                    .desired_width(220.0)
                    .show_percentage(),
            );
            ui.label(format!("{:.0} samples/s", run.samples_per_sec));
            if let Some(eta) = run.eta_secs() {
                ui.label(format!("ETA {}", format_secs(eta)));
            }
        });
        if let Some((epoch, v)) = &run.vae_epoch {
            ui.label(format!(
                "after epoch {epoch}: validation ELBO {:.1} nats (KL {:.1}), {} of {} code dimensions active; training terms: reconstruction {:.1}, KL {:.2}",
                v.val_elbo,
                v.val_kl,
                v.active_dims,
                run.config.model.bottleneck(),
                v.train_reconstruction,
                v.train_kl
            ));
        }
    }
    let mut shown = false;
    for m in state.recent_messages(std::time::Instant::now()).take(2) {
        ui.label(RichText::new(m).small());
        shown = true;
    }
    if shown {
        // (to take it away when it is old, even if nothing else happens)
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(1));
    }
}

/// Most points drawn per line of the loss plot.
const MAX_LINE_POINTS: usize = 2000;

/// A loss value with two significant figures (0.25, 0.012, 3.1e-5).
pub fn sig_figs(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..=4).contains(&mag) {
        return format!("{v:.1e}");
    }
    format!("{v:.*}", (1 - mag).max(0) as usize)
}

pub fn format_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Every run's step losses and validation MSE as CSV.
fn loss_csv(state: &AppState) -> String {
    let mut s = String::from("run,preset,kind,step,value\n");
    for r in &state.runs {
        for [step, loss] in &r.steps {
            s.push_str(&format!(
                "{},{},step_loss,{step},{loss}\n",
                r.id, r.config.model.preset
            ));
        }
        for [step, v] in &r.val {
            s.push_str(&format!(
                "{},{},val_mse,{step},{v}\n",
                r.id, r.config.model.preset
            ));
        }
    }
    s
}

/// Each VAE run's reconstruction and KL terms per step (log scale: the KL
/// is a few nats where the reconstruction is a hundred or more).
fn terms_plot(ui: &mut egui::Ui, state: &AppState) {
    let response = Plot::new("vae_terms_plot")
        .legend(Legend::default())
        .height(180.0)
        .x_axis_label("step")
        .y_axis_label("nats (log scale)")
        .y_axis_formatter(|mark, _| sig_figs(10f64.powf(mark.value)))
        .show(ui, |plot| {
            for run in state.runs.iter().filter(|r| !r.terms.is_empty()) {
                let c = run_color(run.id);
                let stride = run.terms.len().div_ceil(MAX_LINE_POINTS).max(1);
                let term = |i: usize| -> Vec<[f64; 2]> {
                    run.terms
                        .iter()
                        .step_by(stride)
                        .map(|t| [t[0], t[i].max(1e-6).log10()])
                        .collect()
                };
                plot.line(Line::new(format!("{} reconstruction", run.label()), term(1)).color(c));
                plot.line(
                    Line::new(format!("{} KL", run.label()), term(2))
                        .color(c)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
            }
        });
    response
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "VAE terms plot"));
}

fn terms_csv(state: &AppState) -> String {
    let mut s = String::from("run,preset,step,reconstruction,kl\n");
    for r in &state.runs {
        for t in &r.terms {
            s.push_str(&format!(
                "{},{},{},{},{}\n",
                r.id, r.config.model.preset, t[0], t[1], t[2]
            ));
        }
    }
    s
}

/// The loss of every run; `mark`: a run's step the replay shows.
fn loss_plot(
    ui: &mut egui::Ui,
    state: &AppState,
    log_scale: &mut bool,
    mark: Option<(u64, usize)>,
) {
    ui.horizontal(|ui| {
        ui.checkbox(log_scale, "Log scale")
            .on_hover_text("Logarithmic loss axis: late, small improvements stay visible");
        ui.label(RichText::new("faint: loss per step · bold: smoothed · dots: validation MSE per epoch · dashed: learning-rate change").small().weak());
    });
    let log = *log_scale;
    let tf = move |y: f64| if log { y.max(1e-12).log10() } else { y };
    let runs: Vec<_> = state
        .runs
        .iter()
        .filter(|r| !r.steps.is_empty() || !r.val.is_empty())
        .collect();
    if runs.is_empty() {
        // an empty plot with made-up axes says nothing: say what will be here
        let size = egui::vec2(ui.available_width(), ui.available_height().max(200.0));
        ui.allocate_ui_with_layout(size, egui::Layout::centered_and_justified(egui::Direction::TopDown), |ui| {
            ui.label(
                RichText::new(if state.active.is_some() || !state.queue.is_empty() {
                    "The first loss values arrive in a moment…"
                } else {
                    "Press Start (Ctrl+Enter) to train the model set up on the left: its loss per step, smoothed, and its validation error per epoch are drawn here as it learns."
                })
                .weak(),
            );
        });
        return;
    }
    let response = Plot::new("loss_plot")
        .legend(Legend::default())
        .x_axis_label("step")
        .y_axis_label(if log { "loss (log scale)" } else { "loss" })
        .y_axis_formatter(move |mark, _| {
            sig_figs(if log {
                10f64.powf(mark.value)
            } else {
                mark.value
            })
        })
        .show(ui, |plot| {
            for run in runs {
                let name = run.label();
                let c = run_color(run.id);
                // at most ~2,000 points per line: drawing cost stays flat as a run grows
                let pts = |v: &[[f64; 2]]| {
                    let stride = v.len().div_ceil(MAX_LINE_POINTS).max(1);
                    let mut out: Vec<[f64; 2]> =
                        v.iter().step_by(stride).map(|p| [p[0], tf(p[1])]).collect();
                    if let Some(last) = v.last().filter(|_| stride > 1) {
                        out.push([last[0], tf(last[1])]);
                    }
                    out
                };
                plot.line(
                    Line::new(name.clone(), pts(&run.steps))
                        .color(c.gamma_multiply(0.3))
                        .width(1.0),
                );
                plot.line(
                    Line::new(name.clone(), pts(&run.smoothed))
                        .color(c)
                        .width(2.0),
                );
                if !run.val.is_empty() {
                    plot.points(
                        egui_plot::Points::new(name.clone(), pts(&run.val))
                            .color(c)
                            .radius(4.0),
                    );
                }
                if let Some((_, step)) = mark.filter(|(id, _)| *id == run.id) {
                    plot.vline(VLine::new("", step as f64).color(c).width(2.0));
                }
                for &(step, lr) in &run.lr_marks {
                    plot.vline(
                        VLine::new(format!("{name} lr {lr}"), step)
                            .color(c)
                            .style(egui_plot::LineStyle::dashed_dense()),
                    );
                }
            }
        });
    response
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "Loss plot"));
}

impl super::view::AppView for TrainView {
    fn id(&self) -> View {
        View::Train
    }

    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut super::view::ViewCx) {
        self.show(ui, cx.state, cx.actions, cx.compute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_and_durations() {
        assert_eq!(sig_figs(0.25), "0.25");
        assert_eq!(sig_figs(0.0123), "0.012");
        assert_eq!(sig_figs(3.0), "3.0");
        assert_eq!(sig_figs(0.00003), "3.0e-5");
        assert_eq!(format_secs(3725.0), "1h02m");
        assert_eq!(format_secs(75.0), "1m15s");
    }
}
