//! Turning 28x28 float images into egui textures: grey (ink white on black,
//! as MNIST is usually shown) and diverging (blue-white-red, zero in the
//! middle) colour maps, with textures created once and updated in place.

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use crate::data::IMAGE_SIDE;

/// Grey image of values in [0, 1].
pub fn gray(pixels: &[f32]) -> ColorImage {
    let px: Vec<Color32> = pixels
        .iter()
        .map(|&v| {
            let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            Color32::from_gray(g)
        })
        .collect();
    ColorImage::new([IMAGE_SIDE, IMAGE_SIDE], px)
}

/// Diverging map of a 28x28 image scaled so that ±`scale` are the saturated
/// ends (zero is white).
pub fn diverging(pixels: &[f32], scale: f32) -> ColorImage {
    diverging_sized(pixels, [IMAGE_SIDE, IMAGE_SIDE], scale)
}

/// Diverging map of a `[width, height]` image.
pub fn diverging_sized(pixels: &[f32], size: [usize; 2], scale: f32) -> ColorImage {
    let s = if scale > 0.0 { scale } else { 1.0 };
    let px: Vec<Color32> = pixels
        .iter()
        .map(|&v| {
            let t = (v / s).clamp(-1.0, 1.0);
            let fade = |c: f32| (255.0 * (1.0 - t.abs()) + c * t.abs()).round() as u8;
            if t >= 0.0 {
                Color32::from_rgb(fade(178.0), fade(24.0), fade(43.0)) // red
            } else {
                Color32::from_rgb(fade(33.0), fade(102.0), fade(172.0)) // blue
            }
        })
        .collect();
    ColorImage::new(size, px)
}

/// Largest absolute value (for a symmetric diverging scale).
pub fn abs_max(pixels: &[f32]) -> f32 {
    pixels.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// A row of textures kept across frames; `put` updates in place.
#[derive(Default)]
pub struct Tiles {
    handles: Vec<TextureHandle>,
}

impl Tiles {
    pub fn put(
        &mut self,
        ctx: &egui::Context,
        i: usize,
        name: &str,
        image: ColorImage,
    ) -> &TextureHandle {
        let opts = TextureOptions::NEAREST;
        if i < self.handles.len() {
            self.handles[i].set(image, opts);
        } else {
            while self.handles.len() < i {
                let blank = ColorImage::new([1, 1], vec![Color32::BLACK]);
                self.handles.push(ctx.load_texture(
                    format!("{name}-{}", self.handles.len()),
                    blank,
                    opts,
                ));
            }
            self.handles
                .push(ctx.load_texture(format!("{name}-{i}"), image, opts));
        }
        &self.handles[i]
    }

    pub fn get(&self, i: usize) -> Option<&TextureHandle> {
        self.handles.get(i)
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// Show a texture at `size` points, with a hover text.
pub fn show(ui: &mut egui::Ui, tex: &TextureHandle, size: f32, hover: &str) -> egui::Response {
    ui.add(egui::Image::new((tex.id(), egui::vec2(size, size))))
        .on_hover_text(hover)
}

/// One labelled row of a [`Gallery`].
pub struct GalleryRow {
    pub label: String,
    /// Hover text of the row label (e.g. what the model is).
    pub hover: String,
    /// Images with the caption shown under each (e.g. its error) and a
    /// longer hover text.
    pub images: Vec<(ColorImage, String, String)>,
    /// Shown instead of images when the row could not be computed.
    pub error: Option<String>,
}

impl GalleryRow {
    pub fn new(label: impl Into<String>) -> GalleryRow {
        GalleryRow {
            label: label.into(),
            hover: String::new(),
            images: Vec::new(),
            error: None,
        }
    }
}

type GalleryTextures = (
    String,
    String,
    Option<String>,
    Vec<(TextureHandle, String, String)>,
);

impl GalleryRow {
    /// Images without captions (the inputs of a figure).
    pub fn plain(label: impl Into<String>, pixels: &[f32]) -> GalleryRow {
        let mut g = GalleryRow::new(label);
        for img in pixels.chunks_exact(crate::data::PIXELS) {
            g.images.push((gray(img), String::new(), String::new()));
        }
        g
    }

    /// A model's reconstructions: its label with the row's mean MSE, each
    /// image captioned with its MSE (PSNR and SSIM on hover when
    /// `scores_on_hover`), or the reason it could not run.
    pub fn of_row(r: &crate::analysis::recon::Row, scores_on_hover: bool) -> GalleryRow {
        let mut g = GalleryRow::new(match r.mean_mse() {
            Some(m) => format!("{}\nMSE {m:.4}", r.label),
            None => r.label.clone(),
        });
        match &r.images {
            Err(e) => g.error = Some(e.clone()),
            Ok(rec) => {
                for (img, s) in rec.chunks_exact(crate::data::PIXELS).zip(&r.scores) {
                    let hover = if scores_on_hover {
                        format!("(PSNR {:.1} dB, SSIM {:.3})", s.psnr, s.ssim)
                    } else {
                        String::new()
                    };
                    g.images.push((gray(img), format!("{:.4}", s.mse), hover));
                }
            }
        }
        g
    }
}

/// Rows of images (a label column, then one image per column with a
/// caption), with textures made once per [`Gallery::set`].
#[derive(Default)]
pub struct Gallery {
    rows: Vec<GalleryTextures>,
}

impl Gallery {
    pub fn set(&mut self, ctx: &egui::Context, name: &str, rows: Vec<GalleryRow>) {
        self.rows = rows
            .into_iter()
            .enumerate()
            .map(|(r, row)| {
                let tex = row
                    .images
                    .into_iter()
                    .enumerate()
                    .map(|(c, (img, cap, hover))| {
                        (
                            ctx.load_texture(
                                format!("{name}-{r}-{c}"),
                                img,
                                TextureOptions::NEAREST,
                            ),
                            cap,
                            hover,
                        )
                    })
                    .collect();
                (row.label, row.hover, row.error, tex)
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row_labels(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.0.as_str()).collect()
    }

    /// Draw with images `size` points wide; `id` keeps grids apart.
    pub fn show(&self, ui: &mut egui::Ui, id: &str, size: f32) {
        egui::Grid::new(id)
            .spacing(egui::vec2(4.0, 2.0))
            .show(ui, |ui| {
                for (label, hover, error, tex) in &self.rows {
                    ui.vertical(|ui| {
                        // extend, never wrap: the column grows to the longest label
                        let l = ui.add(
                            egui::Label::new(egui::RichText::new(label).strong())
                                .wrap_mode(egui::TextWrapMode::Extend),
                        );
                        if !hover.is_empty() {
                            l.on_hover_text(hover);
                        }
                        if let Some(e) = error {
                            // short, in the label column: a long message in an
                            // image column would widen that column for every row
                            ui.colored_label(ui.visuals().error_fg_color, "not available (hover)")
                                .on_hover_text(e.as_str());
                        }
                    });
                    for (i, (t, cap, hover)) in tex.iter().enumerate() {
                        ui.vertical(|ui| {
                            let first = label.lines().next().unwrap_or_default();
                            show(ui, t, size, &format!("{first} image {i}: {cap} {hover}"));
                            if !cap.is_empty() {
                                ui.label(egui::RichText::new(cap).small());
                            }
                        });
                    }
                    ui.end_row();
                }
            });
    }
}

/// Absolute-error heat map (black = exact, bright = far) of two images.
pub fn error_map(a: &[f32], b: &[f32]) -> ColorImage {
    let px: Vec<Color32> = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let e = (x - y).abs().clamp(0.0, 1.0);
            // black -> red -> yellow
            let r = (e * 2.0).min(1.0);
            let g = (e * 2.0 - 1.0).clamp(0.0, 1.0);
            Color32::from_rgb((r * 255.0) as u8, (g * 255.0) as u8, 0)
        })
        .collect();
    ColorImage::new([IMAGE_SIDE, IMAGE_SIDE], px)
}

/// Grey image of any size (values in [0, 1]).
pub fn gray_sized(pixels: &[f32], size: [usize; 2]) -> ColorImage {
    let px: Vec<Color32> = pixels
        .iter()
        .map(|&v| Color32::from_gray((v.clamp(0.0, 1.0) * 255.0).round() as u8))
        .collect();
    ColorImage::new(size, px)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps() {
        let g = gray(&[0.0, 1.0, 2.0, -1.0].repeat(196));
        assert_eq!(g.pixels[0], Color32::from_gray(0));
        assert_eq!(g.pixels[1], Color32::from_gray(255));
        assert_eq!(g.pixels[2], Color32::from_gray(255), "clamped");
        let d = diverging(&[0.0, 1.0, -1.0, 0.5].repeat(196), 1.0);
        assert_eq!(d.pixels[0], Color32::WHITE);
        assert_eq!(d.pixels[1], Color32::from_rgb(178, 24, 43));
        assert_eq!(d.pixels[2], Color32::from_rgb(33, 102, 172));
        assert_eq!(abs_max(&[0.1, -0.7, 0.3]), 0.7);
    }
}
