//! Headless figures (the report's, and the replay's animation): an RGB
//! canvas with lines, rectangles, text (egui's own Ubuntu font through
//! ab_glyph) and images, plus line plots, bar charts and labelled image grids with the app's colour maps
//! (grey digits, blue-white-red for signed weights).

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use crate::data::IMAGE_SIDE;

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GREY: Rgb = [120, 120, 120];
pub const LIGHT: Rgb = [225, 225, 225];
/// Series colours (Tableau 10, as the app's class colours).
pub const PALETTE: [Rgb; 10] = [
    [78, 121, 167],
    [242, 142, 43],
    [225, 87, 89],
    [118, 183, 178],
    [89, 161, 79],
    [237, 201, 72],
    [176, 122, 161],
    [255, 157, 167],
    [156, 117, 95],
    [186, 176, 172],
];

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Rgb>,
    font: FontRef<'static>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![WHITE; width * height],
            font: FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
                .expect("egui's bundled font parses"),
        }
    }

    fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height || alpha <= 0.0 {
            return;
        }
        let p = &mut self.pixels[y as usize * self.width + x as usize];
        let a = alpha.min(1.0);
        for k in 0..3 {
            p[k] = (p[k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8;
        }
    }

    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Rgb) {
        for y in y0.round() as i64..y1.round() as i64 {
            for x in x0.round() as i64..x1.round() as i64 {
                self.blend(x, y, c, 1.0);
            }
        }
    }

    /// A line `width` pixels wide (distance-based anti-aliasing).
    pub fn line(&mut self, a: [f32; 2], b: [f32; 2], width: f32, c: Rgb) {
        let r = width / 2.0;
        let (x0, x1) = (a[0].min(b[0]) - r - 1.0, a[0].max(b[0]) + r + 1.0);
        let (y0, y1) = (a[1].min(b[1]) - r - 1.0, a[1].max(b[1]) + r + 1.0);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = (dx * dx + dy * dy).max(1e-9);
        for y in y0.floor() as i64..=y1.ceil() as i64 {
            for x in x0.floor() as i64..=x1.ceil() as i64 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = (((px - a[0]) * dx + (py - a[1]) * dy) / len2).clamp(0.0, 1.0);
                let d = ((px - a[0] - t * dx).powi(2) + (py - a[1] - t * dy).powi(2)).sqrt();
                self.blend(x, y, c, r + 0.5 - d);
            }
        }
    }

    pub fn dot(&mut self, at: [f32; 2], radius: f32, c: Rgb) {
        self.line(at, at, radius * 2.0, c);
    }

    /// Width of `text` at `size` pixels.
    pub fn text_width(&self, text: &str, size: f32) -> f32 {
        let f = self.font.as_scaled(PxScale::from(size));
        text.chars().map(|ch| f.h_advance(f.glyph_id(ch))).sum()
    }

    /// Text with its top-left corner at (x, y).
    pub fn text(&mut self, x: f32, y: f32, size: f32, text: &str, c: Rgb) {
        let scale = PxScale::from(size);
        let scaled = self.font.as_scaled(scale);
        let ascent = scaled.ascent();
        let mut pen = x;
        let mut drawn = Vec::new();
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, y + ascent));
            pen += scaled.h_advance(id);
            if let Some(o) = self.font.outline_glyph(glyph) {
                let b = o.px_bounds();
                o.draw(|gx, gy, cov| {
                    drawn.push((b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64, cov));
                });
            }
        }
        for (px, py, cov) in drawn {
            self.blend(px, py, c, cov);
        }
    }

    /// Text centred on x.
    pub fn text_centred(&mut self, x: f32, y: f32, size: f32, text: &str, c: Rgb) {
        let w = self.text_width(text, size);
        self.text(x - w / 2.0, y, size, text, c);
    }

    /// Blit an image (`w`x`h` colours) scaled by an integer factor.
    pub fn image(&mut self, x: usize, y: usize, w: usize, h: usize, px: &[Rgb], scale: usize) {
        for r in 0..h * scale {
            for col in 0..w * scale {
                let c = px[(r / scale) * w + col / scale];
                self.blend((x + col) as i64, (y + r) as i64, c, 1.0);
            }
        }
    }

    pub fn to_png(&self) -> Vec<u8> {
        let raw: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("buffer matches the size");
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG encoding into memory");
        out.into_inner()
    }
}

/// Grey digit (ink white on black, as the app shows them).
pub fn gray(px: &[f32]) -> Vec<Rgb> {
    px.iter()
        .map(|&v| {
            let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            [g, g, g]
        })
        .collect()
}

/// Blue-white-red for signed values scaled to ±`scale` (the app's map).
pub fn diverging(px: &[f32], scale: f32) -> Vec<Rgb> {
    let s = if scale > 0.0 { scale } else { 1.0 };
    px.iter()
        .map(|&v| {
            let t = (v / s).clamp(-1.0, 1.0);
            let fade = |c: f32| (255.0 * (1.0 - t.abs()) + c * t.abs()).round() as u8;
            if t >= 0.0 {
                [fade(178.0), fade(24.0), fade(43.0)]
            } else {
                [fade(33.0), fade(102.0), fade(172.0)]
            }
        })
        .collect()
}

/// One row of an image grid: a label and 28x28 images with captions.
pub struct GridRow {
    pub label: String,
    pub images: Vec<Vec<Rgb>>,
    pub captions: Vec<String>,
    /// Side of each image (28 for digits, 3 for kernels...).
    pub side: usize,
}

impl GridRow {
    pub fn digits(label: impl Into<String>, pixels: &[f32], captions: Vec<String>) -> GridRow {
        GridRow {
            label: label.into(),
            images: pixels
                .chunks_exact(IMAGE_SIDE * IMAGE_SIDE)
                .map(gray)
                .collect(),
            captions,
            side: IMAGE_SIDE,
        }
    }
}

/// Rows of images with a label column; each image drawn `cell` pixels wide.
pub fn image_grid(title: &str, rows: &[GridRow], cell: usize) -> Canvas {
    let probe = Canvas::new(1, 1);
    let label_w = rows
        .iter()
        .map(|r| probe.text_width(&r.label, 14.0))
        .fold(0.0f32, f32::max)
        .ceil() as usize
        + 16;
    let cols = rows.iter().map(|r| r.images.len()).max().unwrap_or(0);
    let has_caps = rows
        .iter()
        .any(|r| r.captions.iter().any(|c| !c.is_empty()));
    let row_h = cell + if has_caps { 16 } else { 4 };
    let width = label_w + cols * (cell + 4) + 8;
    let height = 34 + rows.len() * row_h + 4;
    let mut c = Canvas::new(width.max(200), height);
    c.text(8.0, 6.0, 16.0, title, BLACK);
    for (i, r) in rows.iter().enumerate() {
        let y = 34 + i * row_h;
        c.text(
            8.0,
            y as f32 + cell as f32 / 2.0 - 8.0,
            14.0,
            &r.label,
            BLACK,
        );
        for (j, img) in r.images.iter().enumerate() {
            let x = label_w + j * (cell + 4);
            let scale = (cell / r.side).max(1);
            c.image(x, y, r.side, r.side, img, scale);
            if let Some(cap) = r.captions.get(j) {
                c.text_centred(
                    (x + cell / 2) as f32,
                    (y + cell + 1) as f32,
                    11.0,
                    cap,
                    GREY,
                );
            }
        }
    }
    c
}

/// A series of a line plot.
pub struct Series {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    /// Draw markers only (no line).
    pub markers: bool,
}

/// Axes with ticks, series, a legend; `log_y` for a logarithmic y axis.
pub fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Canvas {
    let (w, h) = (760usize, 440usize);
    let mut c = Canvas::new(w, h);
    let (left, right, top, bottom) = (70.0f32, 190.0f32, 36.0f32, 48.0f32);
    c.text(10.0, 8.0, 16.0, title, BLACK);
    let ty = |v: f64| if log_y { v.max(1e-12).log10() } else { v };
    let all: Vec<[f64; 2]> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    if all.is_empty() {
        c.text(left, top + 40.0, 14.0, "no data", GREY);
        return c;
    }
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for p in &all {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(ty(p[1]));
        y1 = y1.max(ty(p[1]));
    }
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let pw = w as f32 - left - right;
    let ph = h as f32 - top - bottom;
    let sx = |x: f64| left + ((x - x0) / (x1 - x0)) as f32 * pw;
    let sy = |y: f64| top + ph - ((ty(y) - y0) / (y1 - y0)) as f32 * ph;
    // grid and ticks
    for t in ticks(x0, x1, 6) {
        let x = sx(t);
        c.line([x, top], [x, top + ph], 1.0, LIGHT);
        c.text_centred(x, top + ph + 6.0, 12.0, &fmt_tick(t), GREY);
    }
    let yt: Vec<f64> = if log_y {
        ticks(y0, y1, 6)
            .into_iter()
            .map(|e| 10f64.powf(e))
            .collect()
    } else {
        ticks(y0, y1, 6)
    };
    for t in yt {
        let y = sy(t);
        c.line([left, y], [left + pw, y], 1.0, LIGHT);
        let s = fmt_tick(t);
        let tw = c.text_width(&s, 12.0);
        c.text(left - tw - 6.0, y - 7.0, 12.0, &s, GREY);
    }
    c.line([left, top + ph], [left + pw, top + ph], 1.0, GREY);
    c.line([left, top], [left, top + ph], 1.0, GREY);
    c.text_centred(left + pw / 2.0, h as f32 - 22.0, 13.0, x_label, BLACK);
    c.text(left + 6.0, top + 2.0, 12.0, y_label, GREY);
    for (i, s) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        let pts: Vec<[f32; 2]> = s
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .map(|p| [sx(p[0]), sy(p[1])])
            .collect();
        if !s.markers {
            for w2 in pts.windows(2) {
                c.line(w2[0], w2[1], 2.0, col);
            }
        }
        if s.markers || pts.len() < 2 {
            for p in &pts {
                c.dot(*p, 3.5, col);
            }
        }
        let ly = top + 4.0 + i as f32 * 18.0;
        let lx = w as f32 - right + 14.0;
        c.line([lx, ly + 8.0], [lx + 18.0, ly + 8.0], 3.0, col);
        c.text(lx + 24.0, ly, 12.0, &s.label, BLACK);
    }
    c
}

/// A heat map: `values[row][column]` as cells coloured by `colour` (of
/// each value), row and column labels, and the cell `best[column]` of each
/// column outlined.
pub fn heatmap(
    title: &str,
    rows: &[String],
    columns: &[String],
    values: &[Vec<f64>],
    colour: &dyn Fn(f64) -> Rgb,
    best: &[usize],
) -> Canvas {
    let (label_w, cell_w, cell_h, top) = (150usize, 44usize, 26usize, 56usize);
    let w = label_w + cell_w * columns.len().max(1) + 20;
    let h = top + cell_h * rows.len() + 16;
    let mut c = Canvas::new(w, h);
    c.text(10.0, 8.0, 15.0, title, BLACK);
    for (j, l) in columns.iter().enumerate() {
        let x = (label_w + j * cell_w) as f32 + cell_w as f32 / 2.0;
        c.text_centred(x, (top - 20) as f32, 12.0, l, BLACK);
    }
    for (i, (label, row)) in rows.iter().zip(values).enumerate() {
        let y = (top + i * cell_h) as f32;
        c.text(10.0, y + 6.0, 12.0, label, BLACK);
        for (j, &v) in row.iter().enumerate() {
            let x = (label_w + j * cell_w) as f32;
            c.rect(
                x,
                y,
                x + cell_w as f32 - 1.0,
                y + cell_h as f32 - 1.0,
                colour(v),
            );
            if best.get(j) == Some(&i) {
                let (x1, y1) = (x + cell_w as f32 - 2.0, y + cell_h as f32 - 2.0);
                for (a, b) in [
                    ([x + 1.0, y + 1.0], [x1, y + 1.0]),
                    ([x1, y + 1.0], [x1, y1]),
                    ([x1, y1], [x + 1.0, y1]),
                    ([x + 1.0, y1], [x + 1.0, y + 1.0]),
                ] {
                    c.line(a, b, 2.0, [255, 255, 255]);
                }
            }
        }
    }
    c
}

/// Bars (one per value, x = index + 1) with an optional line over them on a
/// second scale (e.g. the cumulative explained variance).
pub fn bar_plot(title: &str, x_label: &str, bars: &[f64], line: Option<(&str, &[f64])>) -> Canvas {
    let (w, h) = (760usize, 400usize);
    let mut c = Canvas::new(w, h);
    let (left, right, top, bottom) = (70.0f32, 70.0f32, 36.0f32, 48.0f32);
    c.text(10.0, 8.0, 16.0, title, BLACK);
    let pw = w as f32 - left - right;
    let ph = h as f32 - top - bottom;
    let n = bars.len().max(1);
    let top_v = bars.iter().cloned().fold(1e-12, f64::max);
    let bw = pw / n as f32;
    for t in ticks(0.0, top_v, 5) {
        let y = top + ph - (t / top_v) as f32 * ph;
        c.line([left, y], [left + pw, y], 1.0, LIGHT);
        let s = fmt_tick(t);
        let tw = c.text_width(&s, 12.0);
        c.text(left - tw - 6.0, y - 7.0, 12.0, &s, GREY);
    }
    for (i, &v) in bars.iter().enumerate() {
        let x = left + i as f32 * bw;
        let y = top + ph - (v / top_v) as f32 * ph;
        c.rect(x + bw * 0.1, y, x + bw * 0.9, top + ph, PALETTE[0]);
    }
    for t in ticks(1.0, n as f64, 8) {
        let x = left + (t as f32 - 0.5) * bw;
        c.text_centred(x, top + ph + 6.0, 12.0, &fmt_tick(t), GREY);
    }
    if let Some((label, vals)) = line {
        let pts: Vec<[f32; 2]> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                [
                    left + (i as f32 + 0.5) * bw,
                    top + ph - v.clamp(0.0, 1.0) as f32 * ph,
                ]
            })
            .collect();
        for w2 in pts.windows(2) {
            c.line(w2[0], w2[1], 2.0, PALETTE[1]);
        }
        for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let y = top + ph - t as f32 * ph;
            c.text(
                left + pw + 6.0,
                y - 7.0,
                12.0,
                &format!("{:.0}%", t * 100.0),
                PALETTE[1],
            );
        }
        c.text(
            left + pw - c.text_width(label, 12.0),
            top - 16.0,
            12.0,
            label,
            PALETTE[1],
        );
    }
    c.line([left, top + ph], [left + pw, top + ph], 1.0, GREY);
    c.text_centred(left + pw / 2.0, h as f32 - 22.0, 13.0, x_label, BLACK);
    c
}

/// About `n` round tick values covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else if a >= 1e-3 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.013, 0.071, 5);
        assert!(t.first().unwrap() >= &0.013 && t.last().unwrap() <= &0.071);
        assert_eq!(fmt_tick(0.05), "0.05");
        assert_eq!(fmt_tick(2.5), "2.5");
    }

    #[test]
    fn text_and_images_land_on_the_canvas() {
        let mut c = Canvas::new(120, 40);
        c.text(2.0, 2.0, 20.0, "PCA", BLACK);
        assert!(c.pixels.iter().any(|p| p[0] < 100), "glyphs were drawn");
        let g = image_grid(
            "t",
            &[GridRow::digits("row", &[1.0; 784], vec!["0.1".into()])],
            28,
        );
        assert!(g.width > 28 && g.height > 28);
        let png = g.to_png();
        let back = image::load_from_memory(&png).unwrap();
        assert_eq!(back.width() as usize, g.width);
        let p = line_plot(
            "x",
            "a",
            "b",
            &[Series {
                label: "s".into(),
                points: vec![[0.0, 1.0], [1.0, 0.5]],
                markers: false,
            }],
            true,
        );
        assert_eq!(p.width, 760);
    }
}
