//! The Latent view's panel for a VAE: the digit decoded at the point
//! dragged on a 2-D VAE's plane, the grid of digits it decodes over the
//! plane (range adjustable), and digits sampled from the prior.

use egui::{RichText, TextureHandle};

use super::export;
use super::images::{self, Gallery, GalleryRow};
use crate::analysis::vae::{self, GRID, SAMPLES};
use crate::analysis::{Compute, ModelRef, Pending};

type Images = Result<Vec<f32>, String>;

pub struct VaePanel {
    /// The point of the plane being decoded (dragged on the map).
    pub point: Option<[f32; 2]>,
    decoded: Pending<(std::path::PathBuf, [u32; 2]), Images>,
    decoded_tex: Option<(u64, TextureHandle)>,
    decoded_generation: u64,
    /// Half the side of the grid's square of the plane.
    pub range: f32,
    grid: Pending<(std::path::PathBuf, u32), Images>,
    grid_tex: Option<TextureHandle>,
    grid_shown: Option<u64>,
    grid_generation: u64,
    /// Seed of the samples ("Sample" draws the next).
    pub seed: u64,
    samples: Pending<(std::path::PathBuf, u64), Images>,
    samples_gallery: Gallery,
    samples_shown: Option<u64>,
    samples_generation: u64,
}

impl Default for VaePanel {
    fn default() -> Self {
        VaePanel {
            point: None,
            decoded: Pending::default(),
            decoded_tex: None,
            decoded_generation: 0,
            range: 3.0,
            grid: Pending::default(),
            grid_tex: None,
            grid_shown: None,
            grid_generation: 0,
            seed: 1,
            samples: Pending::default(),
            samples_gallery: Gallery::default(),
            samples_shown: None,
            samples_generation: 0,
        }
    }
}

impl VaePanel {
    /// The image decoded at [`Self::point`], once computed.
    pub fn decoded(&self) -> Option<&[f32]> {
        self.decoded
            .get()
            .and_then(|r| r.as_ref().ok())
            .map(Vec::as_slice)
    }

    /// The latest samples from the prior.
    pub fn samples(&self) -> Option<&[f32]> {
        self.samples
            .get()
            .and_then(|r| r.as_ref().ok())
            .map(Vec::as_slice)
    }

    /// The panel for `model` (a VAE).
    pub fn ui(&mut self, ui: &mut egui::Ui, compute: &Compute, model: &ModelRef) {
        self.poll();
        ui.label(RichText::new(format!("{}: its code space", model.label)).strong());
        if vae::is_plane(model) {
            self.point_ui(ui, compute, model);
            ui.separator();
            self.grid_ui(ui, compute, model);
            ui.separator();
        }
        self.samples_ui(ui, compute, model);
    }

    fn poll(&mut self) {
        if self.decoded.poll() {
            self.decoded_generation += 1;
        }
        if self.grid.poll() {
            self.grid_generation += 1;
        }
        if self.samples.poll() {
            self.samples_generation += 1;
        }
    }

    fn point_ui(&mut self, ui: &mut egui::Ui, compute: &Compute, model: &ModelRef) {
        let Some(z) = self.point else {
            ui.label(
                RichText::new(
                    "Press and drag anywhere on the plane: the decoder draws that point.",
                )
                .weak(),
            );
            return;
        };
        let (cache, m) = (compute.models.clone(), model.clone());
        self.decoded
            .request((model.path.clone(), z.map(f32::to_bits)), || {
                compute.submit("vae-point", move || vae::decode_point(&cache, &m, z))
            });
        if let Some(Ok(img)) = self.decoded.get() {
            let gen = self.decoded_generation;
            if self.decoded_tex.as_ref().is_none_or(|(g, _)| *g != gen) {
                let t = ui.ctx().load_texture(
                    "vae-point",
                    images::gray(img),
                    egui::TextureOptions::NEAREST,
                );
                self.decoded_tex = Some((gen, t));
            }
        }
        ui.horizontal(|ui| {
            if let Some((_, t)) = &self.decoded_tex {
                images::show(ui, t, 112.0, "what the decoder draws at this point");
            }
            if let Some(Err(e)) = self.decoded.get() {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            ui.label(format!("decoded at z = ({:.2}, {:.2})", z[0], z[1]));
        });
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui, compute: &Compute, model: &ModelRef) {
        ui.horizontal(|ui| {
            let l = ui.label("Grid range ±");
            ui.add(egui::Slider::new(&mut self.range, 0.5..=6.0).step_by(0.5))
                .labelled_by(l.id)
                .on_hover_text("How far from the centre of the plane the grid reaches, in the prior's standard deviations");
        });
        let (cache, m, range) = (compute.models.clone(), model.clone(), self.range);
        let key = (model.path.clone(), (range * 1000.0).round() as u32);
        self.grid.request(key, || {
            compute.submit_slow("vae-grid", move || {
                let model = cache.get(&m.path)?;
                vae::decode_grid(&model, GRID, range)
            })
        });
        if self.grid_shown != Some(self.grid_generation) {
            if let Some(Ok(g)) = self.grid.get() {
                let (px, size) = vae::mosaic(g, GRID);
                self.grid_tex = Some(ui.ctx().load_texture(
                    "vae-grid",
                    images::gray_sized(&px, size),
                    egui::TextureOptions::LINEAR,
                ));
                self.grid_shown = Some(self.grid_generation);
            }
        }
        let title = format!(
            "The plane decoded: z1 from −{range} to {range} left to right, z2 from {range} to −{range} top to bottom"
        );
        export::figure(ui, "vae-grid", &title, None, |ui| {
            if let Some(t) = &self.grid_tex {
                let side = ui.available_width().clamp(160.0, 360.0);
                images::show(
                    ui,
                    t,
                    side,
                    "the digit the decoder draws at each point of the grid",
                );
            }
        });
    }

    fn samples_ui(&mut self, ui: &mut egui::Ui, compute: &Compute, model: &ModelRef) {
        ui.horizontal(|ui| {
            if ui
                .button("Sample")
                .on_hover_text(
                    "Draw new codes from the prior N(0, I) and decode them: digits nobody drew",
                )
                .clicked()
            {
                self.seed = self.seed.wrapping_add(1);
            }
            ui.label(RichText::new(format!("seed {}", self.seed)).weak());
        });
        let (cache, m, seed) = (compute.models.clone(), model.clone(), self.seed);
        self.samples.request((model.path.clone(), seed), || {
            compute.submit("vae-samples", move || {
                let model = cache.get(&m.path)?;
                vae::sample(&model, SAMPLES, seed)
            })
        });
        if self.samples_shown != Some(self.samples_generation) {
            if let Some(Ok(s)) = self.samples.get() {
                let rows = vec![GalleryRow::plain("samples", s)];
                self.samples_gallery.set(ui.ctx(), "vae-samples", rows);
                self.samples_shown = Some(self.samples_generation);
            }
        }
        export::figure(ui, "vae-samples", "Digits from the prior", None, |ui| {
            self.samples_gallery.show(ui, "vae-samples-cells", 40.0);
        });
        if let Some(Err(e)) = self.samples.get() {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    }
}
