//! Hand-drawn and loaded digits, prepared the way MNIST was made: strokes
//! are kept as vector points (so the window size does not matter) and
//! rasterised with anti-aliasing on a fine grid; then the ink is cropped to
//! its bounding box, scaled (area averaging) so its longer side is 20 pixels
//! keeping the aspect ratio, and placed in a 28x28 image so that its centre
//! of mass sits at the centre (a sub-pixel shift by bilinear sampling).

use crate::data::{IMAGE_SIDE, PIXELS};

/// Side of the grid strokes are rasterised on (4x oversampling of 28).
pub const CANVAS_RES: usize = 112;
/// Longer side of the digit box in MNIST.
pub const BOX: f32 = 20.0;
/// Values below this count as no ink when cropping.
const INK: f32 = 0.05;

/// One stroke: points in canvas units ([0, 1] both ways, y down), its
/// width in the same units, and whether it erases.
#[derive(Clone, Debug, PartialEq)]
pub struct Stroke {
    pub points: Vec<[f32; 2]>,
    pub width: f32,
    pub erase: bool,
}

/// Strokes drawn on the canvas, with undo.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drawing {
    pub strokes: Vec<Stroke>,
}

impl Drawing {
    pub fn is_empty(&self) -> bool {
        self.strokes.iter().all(|s| s.erase || s.points.is_empty())
    }

    pub fn undo(&mut self) {
        self.strokes.pop();
    }

    pub fn clear(&mut self) {
        self.strokes.clear();
    }

    /// Rasterise on a `res`x`res` grid: ink in [0, 1], anti-aliased by the
    /// distance of each pixel centre to the stroke's segments.
    pub fn rasterise(&self, res: usize) -> Vec<f32> {
        let mut img = vec![0f32; res * res];
        for s in &self.strokes {
            let r = s.width * res as f32 / 2.0;
            let pts: Vec<[f32; 2]> = s
                .points
                .iter()
                .map(|p| [p[0] * res as f32, p[1] * res as f32])
                .collect();
            if pts.is_empty() {
                continue;
            }
            let segs: Vec<([f32; 2], [f32; 2])> = if pts.len() == 1 {
                vec![(pts[0], pts[0])]
            } else {
                pts.windows(2).map(|w| (w[0], w[1])).collect()
            };
            for (a, b) in segs {
                let x0 = (a[0].min(b[0]) - r - 1.0).floor().max(0.0) as usize;
                let y0 = (a[1].min(b[1]) - r - 1.0).floor().max(0.0) as usize;
                let x1 = ((a[0].max(b[0]) + r + 1.0).ceil().max(0.0) as usize).min(res);
                let y1 = ((a[1].max(b[1]) + r + 1.0).ceil().max(0.0) as usize).min(res);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let p = [x as f32 + 0.5, y as f32 + 0.5];
                        let d = segment_distance(p, a, b);
                        let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                        if cover > 0.0 {
                            let v = &mut img[y * res + x];
                            *v = if s.erase {
                                v.min(1.0 - cover)
                            } else {
                                v.max(cover)
                            };
                        }
                    }
                }
            }
        }
        img
    }
}

fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a[0] + t * dx, a[1] + t * dy);
    ((p[0] - qx).powi(2) + (p[1] - qy).powi(2)).sqrt()
}

/// Bounding box `(x0, y0, x1, y1)` (exclusive ends) of pixels above the ink
/// threshold, or None for an empty image.
pub fn ink_box(img: &[f32], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    let mut b: Option<(usize, usize, usize, usize)> = None;
    for y in 0..h {
        for x in 0..w {
            if img[y * w + x] > INK {
                b = Some(match b {
                    None => (x, y, x + 1, y + 1),
                    Some((a, c, d, e)) => (a.min(x), c.min(y), d.max(x + 1), e.max(y + 1)),
                });
            }
        }
    }
    b
}

/// Area-average the `cw`x`ch` window at (`x0`, `y0`) of a `w`-wide image
/// into `tw`x`th` pixels.
fn resample_area(
    img: &[f32],
    w: usize,
    (x0, y0, cw, ch): (usize, usize, usize, usize),
    tw: usize,
    th: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; tw * th];
    let sx = cw as f32 / tw as f32;
    let sy = ch as f32 / th as f32;
    for ty in 0..th {
        let (fy0, fy1) = (ty as f32 * sy, (ty + 1) as f32 * sy);
        for tx in 0..tw {
            let (fx0, fx1) = (tx as f32 * sx, (tx + 1) as f32 * sx);
            let mut acc = 0f32;
            let mut area = 0f32;
            let mut y = fy0.floor() as usize;
            while (y as f32) < fy1 && y < ch {
                let oy = (fy1.min(y as f32 + 1.0) - fy0.max(y as f32)).max(0.0);
                let mut x = fx0.floor() as usize;
                while (x as f32) < fx1 && x < cw {
                    let ox = (fx1.min(x as f32 + 1.0) - fx0.max(x as f32)).max(0.0);
                    acc += img[(y0 + y) * w + x0 + x] * ox * oy;
                    area += ox * oy;
                    x += 1;
                }
                y += 1;
            }
            out[ty * tw + tx] = if area > 0.0 { acc / area } else { 0.0 };
        }
    }
    out
}

/// Centre of mass (x, y) in pixel-centre coordinates, or None with no ink.
pub fn centre_of_mass(img: &[f32], w: usize) -> Option<(f32, f32)> {
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (i, &v) in img.iter().enumerate() {
        let v = v as f64;
        m += v;
        mx += v * ((i % w) as f64 + 0.5);
        my += v * ((i / w) as f64 + 0.5);
    }
    (m > 1e-9).then(|| ((mx / m) as f32, (my / m) as f32))
}

fn bilinear(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    // x, y in pixel-centre coordinates; outside is 0
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (ix, iy) = (fx.floor(), fy.floor());
    let (ax, ay) = (fx - ix, fy - iy);
    let get = |xx: f32, yy: f32| -> f32 {
        if xx < 0.0 || yy < 0.0 || xx >= w as f32 || yy >= h as f32 {
            0.0
        } else {
            img[yy as usize * w + xx as usize]
        }
    };
    get(ix, iy) * (1.0 - ax) * (1.0 - ay)
        + get(ix + 1.0, iy) * ax * (1.0 - ay)
        + get(ix, iy + 1.0) * (1.0 - ax) * ay
        + get(ix + 1.0, iy + 1.0) * ax * ay
}

/// The 28x28 input a model receives from a `w`x`h` ink image (values in
/// [0, 1], ink bright): MNIST preprocessing when `centre`, else the whole
/// image scaled down as it is. None when there is no ink.
pub fn to_mnist(img: &[f32], w: usize, h: usize, centre: bool) -> Option<Vec<f32>> {
    let (x0, y0, x1, y1) = ink_box(img, w, h)?;
    if !centre {
        // no crop, no centring: the whole (square) canvas squeezed to 28x28
        let side = w.max(h);
        let mut square = vec![0f32; side * side];
        for y in 0..h {
            square[y * side..y * side + w].copy_from_slice(&img[y * w..(y + 1) * w]);
        }
        return Some(resample_area(
            &square,
            side,
            (0, 0, side, side),
            IMAGE_SIDE,
            IMAGE_SIDE,
        ));
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let scale = BOX / cw.max(ch) as f32;
    let tw = ((cw as f32 * scale).round() as usize).clamp(1, BOX as usize);
    let th = ((ch as f32 * scale).round() as usize).clamp(1, BOX as usize);
    let boxed = resample_area(img, w, (x0, y0, cw, ch), tw, th);
    let (cx, cy) = centre_of_mass(&boxed, tw)?;
    // place so that the box's centre of mass lands on (14, 14)
    let (ox, oy) = (IMAGE_SIDE as f32 / 2.0 - cx, IMAGE_SIDE as f32 / 2.0 - cy);
    let mut out = vec![0f32; PIXELS];
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let v = bilinear(&boxed, tw, th, x as f32 + 0.5 - ox, y as f32 + 0.5 - oy);
            out[y * IMAGE_SIDE + x] = v.clamp(0.0, 1.0);
        }
    }
    Some(out)
}

/// A picture file's pixels as ink in [0, 1] (`w`, `h`, pixels): grey
/// levels stretched to the full range, inverted when the background (the
/// border) is light, so dark-on-light scans and MNIST-style white-on-black
/// images both work. Large pictures are first shrunk to at most 256 px.
pub fn image_to_ink(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("not a readable image ({e})"))?;
    let img = if img.width() > 256 || img.height() > 256 {
        img.thumbnail(256, 256)
    } else {
        img
    };
    let g = img.to_luma32f();
    let (w, h) = (g.width() as usize, g.height() as usize);
    if w == 0 || h == 0 {
        return Err("the image is empty".into());
    }
    let mut px: Vec<f32> = g.into_raw();
    // transparent backgrounds come out black here; that matches MNIST
    let border: Vec<f32> = (0..w)
        .flat_map(|x| [px[x], px[(h - 1) * w + x]])
        .chain((0..h).flat_map(|y| [px[y * w], px[y * w + w - 1]]))
        .collect();
    let bg = border.iter().sum::<f32>() / border.len() as f32;
    if bg > 0.5 {
        px.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    let lo = px.iter().cloned().fold(f32::MAX, f32::min);
    let hi = px.iter().cloned().fold(f32::MIN, f32::max);
    if hi - lo < 1e-3 {
        return Err("the image is blank (a single colour)".into());
    }
    // the background level goes to 0
    let bgv = if bg > 0.5 { 1.0 - bg } else { bg };
    let base = bgv.max(lo);
    px.iter_mut()
        .for_each(|v| *v = ((*v - base) / (hi - base).max(1e-3)).clamp(0.0, 1.0));
    Ok((w, h, px))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke(points: &[[f32; 2]], width: f32) -> Drawing {
        Drawing {
            strokes: vec![Stroke {
                points: points.to_vec(),
                width,
                erase: false,
            }],
        }
    }

    fn longer_side(img: &[f32]) -> usize {
        let (x0, y0, x1, y1) = ink_box(img, IMAGE_SIDE, IMAGE_SIDE).unwrap();
        (x1 - x0).max(y1 - y0)
    }

    fn check_centred(img: &[f32]) {
        let (cx, cy) = centre_of_mass(img, IMAGE_SIDE).unwrap();
        assert!((cx - 14.0).abs() <= 0.5, "x centre of mass {cx}");
        assert!((cy - 14.0).abs() <= 0.5, "y centre of mass {cy}");
    }

    #[test]
    fn vertical_bar_off_centre_is_centred_and_20_tall() {
        let d = stroke(&[[0.8, 0.1], [0.8, 0.45]], 0.06);
        let raster = d.rasterise(CANVAS_RES);
        let img = to_mnist(&raster, CANVAS_RES, CANVAS_RES, true).unwrap();
        check_centred(&img);
        let side = longer_side(&img);
        assert!((20..=21).contains(&side), "longer side {side}");
    }

    #[test]
    fn small_seven_in_a_corner() {
        let d = stroke(&[[0.05, 0.05], [0.2, 0.05], [0.1, 0.25]], 0.03);
        let raster = d.rasterise(CANVAS_RES);
        let img = to_mnist(&raster, CANVAS_RES, CANVAS_RES, true).unwrap();
        check_centred(&img);
        let side = longer_side(&img);
        assert!((20..=21).contains(&side), "longer side {side}");
        // without centring it stays small and in the corner
        let raw = to_mnist(&raster, CANVAS_RES, CANVAS_RES, false).unwrap();
        let (cx, cy) = centre_of_mass(&raw, IMAGE_SIDE).unwrap();
        assert!(cx < 8.0 && cy < 8.0, "{cx} {cy}");
        assert!(longer_side(&raw) < 10);
    }

    #[test]
    fn empty_canvas_is_a_state_not_a_nan() {
        let d = Drawing::default();
        assert!(d.is_empty());
        assert_eq!(
            to_mnist(&d.rasterise(CANVAS_RES), CANVAS_RES, CANVAS_RES, true),
            None
        );
        // a stroke fully erased is empty too
        let mut d = stroke(&[[0.5, 0.5], [0.5, 0.6]], 0.05);
        d.strokes.push(Stroke {
            points: vec![[0.5, 0.45], [0.5, 0.65]],
            width: 0.2,
            erase: true,
        });
        assert_eq!(
            to_mnist(&d.rasterise(CANVAS_RES), CANVAS_RES, CANVAS_RES, true),
            None
        );
        d.undo();
        assert!(to_mnist(&d.rasterise(CANVAS_RES), CANVAS_RES, CANVAS_RES, true).is_some());
    }

    #[test]
    fn resolution_does_not_change_the_input() {
        let d = stroke(&[[0.3, 0.2], [0.6, 0.5], [0.4, 0.8]], 0.05);
        let a = to_mnist(&d.rasterise(112), 112, 112, true).unwrap();
        let b = to_mnist(&d.rasterise(224), 224, 224, true).unwrap();
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / PIXELS as f32;
        assert!(diff < 0.03, "mean difference {diff}");
    }

    #[test]
    fn light_and_dark_pictures_give_the_same_ink() {
        let (w, h) = (60u32, 40u32);
        let mut dark = image::GrayImage::new(w, h);
        for y in 10..30 {
            for x in 25..32 {
                dark.put_pixel(x, y, image::Luma([255]));
            }
        }
        let mut light = dark.clone();
        light.pixels_mut().for_each(|p| p.0[0] = 255 - p.0[0]);
        let enc = |img: &image::GrayImage| {
            let mut c = std::io::Cursor::new(Vec::new());
            img.write_to(&mut c, image::ImageFormat::Png).unwrap();
            c.into_inner()
        };
        let (w1, h1, a) = image_to_ink(&enc(&dark)).unwrap();
        let (_, _, b) = image_to_ink(&enc(&light)).unwrap();
        assert_eq!((w1, h1), (60, 40));
        assert_eq!(a, b);
        let img = to_mnist(&a, w1, h1, true).unwrap();
        check_centred(&img);
        assert!(image_to_ink(b"not an image").is_err());
        let blank = image::GrayImage::new(5, 5);
        assert!(image_to_ink(&enc(&blank)).is_err());
    }
}
