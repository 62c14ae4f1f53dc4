//! Figures with a title bar that saves them: "PNG" captures exactly what is
//! on screen inside the figure (through egui's screenshot of the next
//! frame, cropped to the figure), "CSV" writes the figure's data. Both go
//! through the save dialog with a sensible default name and are written
//! atomically; the outcome is reported in the app's message line.

use std::path::{Path, PathBuf};

use egui::{ColorImage, Rect};

use super::action::{Action, Actions};
use crate::data::registry::write_atomic;

/// Tell the user how an export went (through the app's actions: a PNG is
/// saved a frame later, from egui's screenshot callback).
pub(crate) fn note(ctx: &egui::Context, msg: String) {
    Actions::of(ctx).push(Action::Notify(msg));
}

/// The part of a screenshot inside `rect` (points), encoded as PNG.
pub fn crop_png(image: &ColorImage, rect: Rect, pixels_per_point: f32) -> Result<Vec<u8>, String> {
    let [w, h] = image.size;
    let x0 = ((rect.min.x * pixels_per_point).floor().max(0.0) as usize).min(w);
    let y0 = ((rect.min.y * pixels_per_point).floor().max(0.0) as usize).min(h);
    let x1 = ((rect.max.x * pixels_per_point).ceil().max(0.0) as usize).min(w);
    let y1 = ((rect.max.y * pixels_per_point).ceil().max(0.0) as usize).min(h);
    if x1 <= x0 || y1 <= y0 {
        return Err("the figure is not on screen".into());
    }
    let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
    for y in y0..y1 {
        for px in &image.pixels[y * w + x0..y * w + x1] {
            rgba.extend_from_slice(&px.to_srgba_unmultiplied());
        }
    }
    encode_png(&rgba, (x1 - x0) as u32, (y1 - y0) as u32)
}

pub fn encode_png(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let img = image::RgbaImage::from_raw(width, height, rgba.to_vec())
        .ok_or_else(|| "image buffer has the wrong size".to_string())?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

pub(crate) fn save(ctx: &egui::Context, path: &Path, bytes: &[u8]) {
    match write_atomic(path, bytes) {
        Ok(()) => note(ctx, format!("saved {}", path.display())),
        Err(e) => note(ctx, format!("could not save {}: {e}", path.display())),
    }
}

pub(crate) fn pick(ctx: &egui::Context, default_name: &str, ext: &str) -> Option<PathBuf> {
    let picked = rfd::FileDialog::new()
        .set_file_name(default_name)
        .add_filter(ext, &[ext])
        .save_file();
    if picked.is_none() {
        note(
            ctx,
            format!("no file dialog available (or cancelled): nothing saved for {default_name}"),
        );
    }
    picked
}

/// Ask for a file and save the figure inside `rect` as it appears on the
/// next frame.
fn export_png(ctx: &egui::Context, key: &str, rect: Option<Rect>) {
    let Some(rect) = rect else {
        note(
            ctx,
            format!("{key}: the figure is not on screen yet; try again"),
        );
        return;
    };
    if let Some(path) = pick(ctx, &format!("aelab-{key}.png"), "png") {
        let ppp = ctx.pixels_per_point();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |img| {
            match crop_png(&img, rect, ppp) {
                Ok(bytes) => save(&repaint, &path, &bytes),
                Err(e) => note(&repaint, format!("could not save {}: {e}", path.display())),
            }
            repaint.request_repaint();
        });
    }
}

fn export_csv(ctx: &egui::Context, key: &str, csv: &dyn Fn() -> String) {
    if let Some(path) = pick(ctx, &format!("aelab-{key}.csv"), "csv") {
        save(ctx, &path, csv().as_bytes());
    }
}

/// Draw a figure under a title bar with PNG (and, given data, CSV) export,
/// offered both as buttons in the title bar and in a context menu on a
/// right click anywhere on the figure. `key` names the default files
/// (`aelab-{key}.png`).
pub fn figure<R>(
    ui: &mut egui::Ui,
    key: &str,
    title: &str,
    csv: Option<&dyn Fn() -> String>,
    body: impl FnOnce(&mut egui::Ui) -> R,
) -> R {
    let rect_id = egui::Id::unique(("figure-rect", key));
    let last_rect = |ui: &egui::Ui| -> Option<Rect> { ui.ctx().data(|d| d.get_temp(rect_id)) };
    let title_bar = ui.horizontal(|ui| {
        ui.label(egui::RichText::new(title).strong())
            .on_hover_text("Right-click the figure to save it");
        let png = ui
            .small_button("PNG")
            .on_hover_text("Save this figure as a PNG image, as it is on screen");
        if png.clicked() {
            export_png(ui.ctx(), key, last_rect(ui));
        }
        if let Some(csv) = csv {
            let b = ui
                .small_button("CSV")
                .on_hover_text("Save the numbers behind this figure as CSV");
            if b.clicked() {
                export_csv(ui.ctx(), key, csv);
            }
        }
    });
    let inner = ui.scope(body);
    let rect = title_bar.response.rect.union(inner.response.rect);
    ui.ctx()
        .data_mut(|d| d.insert_temp(rect_id, inner.response.rect));
    // The context menu: a right click anywhere on the figure (the plots and
    // images inside keep their own left-click behaviour).
    let opened = ui.input(|i| i.pointer.secondary_clicked())
        && ui
            .ctx()
            .pointer_interact_pos()
            .is_some_and(|p| rect.contains(p) && ui.ctx().layer_id_at(p) == Some(ui.layer_id()));
    let menu_id = egui::Id::unique(("figure-menu", key));
    egui::Popup::new(
        menu_id,
        ui.ctx().clone(),
        egui::PopupAnchor::PointerFixed,
        ui.layer_id(),
    )
    .kind(egui::PopupKind::Menu)
    .layout(egui::Layout::top_down_justified(egui::Align::Min))
    .open_memory(opened.then_some(egui::SetOpenCommand::Bool(true)))
    .close_behavior(egui::PopupCloseBehavior::CloseOnClick)
    .show(|ui| {
        ui.label(egui::RichText::new(title).weak());
        if ui.button("Save figure as PNG…").clicked() {
            export_png(ui.ctx(), key, Some(inner.response.rect));
        }
        if let Some(csv) = csv {
            if ui.button("Save data as CSV…").clicked() {
                export_csv(ui.ctx(), key, csv);
            }
        }
    });
    inner.inner
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{pos2, Color32};

    #[test]
    fn crop_takes_the_figure_in_pixels() {
        let mut img = ColorImage::new([8, 6], vec![Color32::BLACK; 48]);
        img.pixels[2 * 8 + 4] = Color32::WHITE; // (x 4, y 2)
                                                // rect in points at 2 px per point: x 2..3, y 1..2 -> pixels 4..6, 2..4
        let png = crop_png(
            &img,
            Rect::from_min_max(pos2(2.0, 1.0), pos2(3.0, 2.0)),
            2.0,
        )
        .unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (2, 2));
        assert_eq!(back.get_pixel(0, 0).0, [255, 255, 255, 255]);
        assert_eq!(back.get_pixel(1, 1).0, [0, 0, 0, 255]);
        assert!(crop_png(
            &img,
            Rect::from_min_max(pos2(20.0, 20.0), pos2(30.0, 30.0)),
            1.0
        )
        .is_err());
    }
}
