//! Pictures for reports: landmark overlays and cumulative-error plots, drawn on
//! `image::RgbImage` (no plotting dependency).
//!
//! Overlay colours follow the paper's figures: ground truth green, prediction red, and a
//! yellow line between them.

use image::{Rgb, RgbImage};

/// Ground-truth colour (green).
pub const GT_COLOUR: Rgb<u8> = Rgb([40, 220, 40]);
/// Prediction colour (red).
pub const PRED_COLOUR: Rgb<u8> = Rgb([235, 40, 40]);
/// Error-line colour (yellow).
pub const LINE_COLOUR: Rgb<u8> = Rgb([250, 230, 30]);
/// Colour of a prediction below the confidence threshold (orange, drawn as a ring).
pub const LOW_CONFIDENCE_COLOUR: Rgb<u8> = Rgb([255, 150, 0]);

/// Converts a grey image (row-major `h * w` values, any range) to RGB, stretched to 0..255
/// and scaled up `scale` times (nearest neighbour).
pub fn grey_to_rgb(pixels: &[f32], h: usize, w: usize, scale: u32) -> RgbImage {
    let (lo, hi) = pixels
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let scale = scale.max(1);
    RgbImage::from_fn(w as u32 * scale, h as u32 * scale, |x, y| {
        let (sx, sy) = ((x / scale) as usize, (y / scale) as usize);
        let v = pixels.get(sy * w + sx).copied().unwrap_or(0.0);
        let g = if v.is_finite() {
            ((v - lo) / span * 255.0).clamp(0.0, 255.0) as u8
        } else {
            0
        };
        Rgb([g, g, g])
    })
}

/// Sets a pixel if it lies inside the image.
fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// Clips the segment a-b to the rectangle [x0, x1] x [y0, y1] (Liang-Barsky); `None` when
/// it lies outside.
fn clip(a: (f64, f64), b: (f64, f64), r: [f64; 4]) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r[0]),
        (dx, r[1] - a.0),
        (-dy, a.1 - r[2]),
        (dy, r[3] - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// Draws a line segment between two points in image pixels (Bresenham, `thickness` pixels),
/// clipped to the image.
pub fn draw_line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>, thickness: i64) {
    if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
        return;
    }
    let margin = thickness as f64 + 1.0;
    let rect = [
        -margin,
        img.width() as f64 + margin,
        -margin,
        img.height() as f64 + margin,
    ];
    let Some((a, b)) = clip(a, b, rect) else {
        return;
    };
    let (mut x0, mut y0) = (a.0.round() as i64, a.1.round() as i64);
    let (x1, y1) = (b.0.round() as i64, b.1.round() as i64);
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    let r = (thickness - 1) / 2;
    loop {
        for oy in -r..=r {
            for ox in -r..=r {
                put(img, x0 + ox, y0 + oy, c);
            }
        }
        if x0 == x1 && y0 == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x0 += sx;
        }
        if e2 <= dx {
            err += dx;
            y0 += sy;
        }
    }
}

/// Draws a filled disc of radius `r` pixels centred at `p`.
pub fn draw_dot(img: &mut RgbImage, p: (f64, f64), r: f64, c: Rgb<u8>) {
    if !(p.0.is_finite() && p.1.is_finite()) {
        return;
    }
    let ri = r.ceil() as i64;
    let (cx, cy) = (p.0.round() as i64, p.1.round() as i64);
    for dy in -ri..=ri {
        for dx in -ri..=ri {
            if (dx * dx + dy * dy) as f64 <= r * r {
                put(img, cx + dx, cy + dy, c);
            }
        }
    }
}

/// An overlay of predictions on a grey crop: the crop scaled up `scale` times, a yellow
/// line from each ground-truth point (green) to its prediction (red). Points are (x, y) in
/// crop pixels (pixel-centre origin); `gt` may be empty.
pub fn overlay(
    pixels: &[f32],
    h: usize,
    w: usize,
    gt: &[[f32; 2]],
    pred: &[[f32; 2]],
    scale: u32,
) -> RgbImage {
    let mut img = grey_to_rgb(pixels, h, w, scale);
    let s = scale.max(1) as f64;
    // Pixel centre (i) maps to the centre of the scaled block: (i + 0.5) * s.
    let to_img = |p: &[f32; 2]| ((p[0] as f64 + 0.5) * s, (p[1] as f64 + 0.5) * s);
    for (g, p) in gt.iter().zip(pred) {
        draw_line(&mut img, to_img(g), to_img(p), LINE_COLOUR, 1);
    }
    for g in gt {
        draw_dot(&mut img, to_img(g), s.max(2.0) * 0.6, GT_COLOUR);
    }
    for p in pred {
        draw_dot(&mut img, to_img(p), s.max(2.0) * 0.6, PRED_COLOUR);
    }
    img
}

/// Draws a ring of outer radius `r` pixels (about 1.5 pixels thick) centred at `p`.
pub fn draw_ring(img: &mut RgbImage, p: (f64, f64), r: f64, c: Rgb<u8>) {
    if !(p.0.is_finite() && p.1.is_finite()) {
        return;
    }
    let ri = r.ceil() as i64;
    let inner = (r - 1.5).max(0.0);
    let (cx, cy) = (p.0.round() as i64, p.1.round() as i64);
    for dy in -ri..=ri {
        for dx in -ri..=ri {
            let d2 = (dx * dx + dy * dy) as f64;
            if d2 <= r * r && d2 >= inner * inner {
                put(img, cx + dx, cy + dy, c);
            }
        }
    }
}

/// Predictions on a grey image, as [`overlay`] without ground truth, with each point's
/// confidence: points whose confidence is below `threshold` are orange rings, the others
/// red dots. `confidence` is one value per point (or `None`: all red dots).
pub fn overlay_with_confidence(
    pixels: &[f32],
    h: usize,
    w: usize,
    pred: &[[f32; 2]],
    confidence: Option<&[f32]>,
    threshold: f32,
    scale: u32,
) -> RgbImage {
    let mut img = grey_to_rgb(pixels, h, w, scale);
    let s = scale.max(1) as f64;
    let r = s.max(2.0) * 0.6;
    for (k, p) in pred.iter().enumerate() {
        let at = ((p[0] as f64 + 0.5) * s, (p[1] as f64 + 0.5) * s);
        match confidence.and_then(|c| c.get(k)) {
            Some(&c) if c < threshold => draw_ring(&mut img, at, r + 1.5, LOW_CONFIDENCE_COLOUR),
            _ => draw_dot(&mut img, at, r, PRED_COLOUR),
        }
    }
    img
}

/// 3x5 bitmap glyphs for the characters axis labels need.
fn glyph(ch: char) -> [u8; 5] {
    match ch {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '%' => [5, 1, 2, 4, 5],
        _ => [0; 5],
    }
}

/// Draws text in 3x5 bitmap glyphs (digits, `.` and `%`; other characters are blank) at
/// (x, y), each glyph pixel `px` image pixels wide.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, px: i64, c: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for oy in 0..px {
                        for ox in 0..px {
                            put(
                                img,
                                x + (i as i64 * 4 + col) * px + ox,
                                y + row as i64 * px + oy,
                                c,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Colours for successive curves of a plot.
pub const CURVE_COLOURS: [Rgb<u8>; 6] = [
    Rgb([31, 119, 180]),
    Rgb([214, 39, 40]),
    Rgb([44, 160, 44]),
    Rgb([255, 127, 14]),
    Rgb([148, 103, 189]),
    Rgb([140, 86, 75]),
];

/// Plots cumulative error curves: each curve is a list of (error, fraction) points with the
/// fraction in [0, 1]; the x axis runs from 0 to `x_max` (in the errors' unit). Curve `i`
/// is drawn in `CURVE_COLOURS[i % 6]`; the axes carry tick values (x at quarters of
/// `x_max`, y at 0, 0.5, 1).
pub fn plot_curves(curves: &[Vec<(f64, f64)>], x_max: f64) -> RgbImage {
    let (wd, ht) = (560u32, 400u32);
    let (left, right, top, bottom) = (50i64, 20i64, 20i64, 40i64);
    let mut img = RgbImage::from_pixel(wd, ht, Rgb([255, 255, 255]));
    let (pw, ph) = (wd as i64 - left - right, ht as i64 - top - bottom);
    let black = Rgb([0, 0, 0]);
    let grid = Rgb([225, 225, 225]);
    let x_max = if x_max.is_finite() && x_max > 0.0 {
        x_max
    } else {
        1.0
    };
    let to_px = |e: f64, f: f64| {
        (
            left as f64 + (e / x_max).clamp(0.0, 1.0) * pw as f64,
            (top + ph) as f64 - f.clamp(0.0, 1.0) * ph as f64,
        )
    };
    for q in 0..=4 {
        let t = q as f64 / 4.0;
        let (gx, _) = to_px(t * x_max, 0.0);
        draw_line(&mut img, (gx, top as f64), (gx, (top + ph) as f64), grid, 1);
        let (_, gy) = to_px(0.0, t);
        draw_line(
            &mut img,
            (left as f64, gy),
            ((left + pw) as f64, gy),
            grid,
            1,
        );
        let label = format!("{}", (t * x_max * 1000.0).round() / 1000.0);
        draw_text(&mut img, gx as i64 - 6, top + ph + 8, &label, 2, black);
    }
    for (f, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
        let (_, gy) = to_px(0.0, f);
        draw_text(&mut img, 8, gy as i64 - 5, label, 2, black);
    }
    draw_line(
        &mut img,
        (left as f64, top as f64),
        (left as f64, (top + ph) as f64),
        black,
        1,
    );
    draw_line(
        &mut img,
        (left as f64, (top + ph) as f64),
        ((left + pw) as f64, (top + ph) as f64),
        black,
        1,
    );
    for (i, curve) in curves.iter().enumerate() {
        let c = CURVE_COLOURS[i % CURVE_COLOURS.len()];
        for pair in curve.windows(2) {
            let a = to_px(pair[0].0, pair[0].1);
            let b = to_px(pair[1].0, pair[1].1);
            draw_line(&mut img, a, b, c, 2);
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_puts_colours_at_the_points() {
        let pixels = vec![0.0f32; 20 * 20];
        let img = overlay(&pixels, 20, 20, &[[2.0, 3.0]], &[[15.0, 12.0]], 4);
        assert_eq!(img.dimensions(), (80, 80));
        // Centre of pixel (2, 3) at scale 4 is (10, 14).
        assert_eq!(*img.get_pixel(10, 14), GT_COLOUR);
        assert_eq!(*img.get_pixel(62, 50), PRED_COLOUR);
        // Somewhere along the segment the line is yellow.
        assert_eq!(*img.get_pixel(36, 32), LINE_COLOUR);
    }

    #[test]
    fn drawing_survives_absurd_points() {
        let mut img = RgbImage::new(10, 10);
        draw_line(&mut img, (f64::NAN, 0.0), (5.0, 5.0), LINE_COLOUR, 1);
        draw_line(&mut img, (-1e9, -1e9), (1e9, 1e9), LINE_COLOUR, 3);
        draw_dot(&mut img, (f64::INFINITY, 1.0), 2.0, GT_COLOUR);
        let plot = plot_curves(&[vec![(0.0, 0.0), (0.5, 0.7), (1.0, 1.0)]], 1.0);
        assert_eq!(plot.dimensions(), (560, 400));
    }
}
