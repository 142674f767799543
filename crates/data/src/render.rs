//! Anti-aliased rasterisation of convex polygons (used by the Shapes and Blocks generators).
//!
//! Each pixel is sampled on a regular 4x4 grid of sub-pixel points; a polygon sets the bits
//! of the sub-samples it covers in a per-pixel 16-bit mask, so overlapping or touching
//! polygons form an exact union (no double counting along shared edges). The grey value of
//! a pixel is its covered fraction (0, 1/16, ..., 1) times 255.
//!
//! Coordinates follow the workspace convention: pixel `(i, j)` (column, row) covers
//! `[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]`; its sub-samples sit at
//! `i - 0.5 + (s + 0.5) / 4`, `s = 0..4`.

use crate::image_file::Image;

/// Sub-samples per pixel side.
const SS: usize = 4;

/// A coverage canvas of `width x height` pixels.
pub(crate) struct Canvas {
    width: usize,
    height: usize,
    masks: Vec<u16>,
}

impl Canvas {
    /// An empty (black) canvas.
    pub(crate) fn new(width: usize, height: usize) -> Self {
        Canvas {
            width,
            height,
            masks: vec![0; width * height],
        }
    }

    /// Fills a convex polygon (vertices in pixel coordinates, either orientation). Parts
    /// outside the canvas are clipped.
    pub(crate) fn fill_convex(&mut self, poly: &[[f64; 2]]) {
        let n = poly.len();
        if n < 3 {
            return;
        }
        // Orientation from the signed area.
        let mut area = 0.0;
        for i in 0..n {
            let a = poly[i];
            let b = poly[(i + 1) % n];
            area += a[0] * b[1] - a[1] * b[0];
        }
        let sign = if area >= 0.0 { 1.0 } else { -1.0 };
        // Half-planes e(p) = nx * x + ny * y + c >= 0 inside.
        let edges: Vec<[f64; 3]> = (0..n)
            .map(|i| {
                let a = poly[i];
                let b = poly[(i + 1) % n];
                let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
                // cross(b - a, p - a) = dx * (py - ay) - dy * (px - ax)
                let nx = -dy * sign;
                let ny = dx * sign;
                let c = -(nx * a[0] + ny * a[1]);
                [nx, ny, c]
            })
            .collect();
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in poly {
            x0 = x0.min(p[0]);
            y0 = y0.min(p[1]);
            x1 = x1.max(p[0]);
            y1 = y1.max(p[1]);
        }
        if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
            return;
        }
        let clampi = |v: f64, hi: usize| -> usize { v.max(0.0).min(hi as f64 - 1.0) as usize };
        if x1 < -0.5 || y1 < -0.5 || x0 > self.width as f64 - 0.5 || y0 > self.height as f64 - 0.5 {
            return;
        }
        let (ix0, ix1) = (
            clampi((x0 + 0.5).floor(), self.width),
            clampi((x1 + 0.5).floor(), self.width),
        );
        let (iy0, iy1) = (
            clampi((y0 + 0.5).floor(), self.height),
            clampi((y1 + 0.5).floor(), self.height),
        );
        let off: [f64; SS] = std::array::from_fn(|s| -0.5 + (s as f64 + 0.5) / SS as f64);
        for py in iy0..=iy1 {
            for px in ix0..=ix1 {
                let mut m: u16 = 0;
                for (sy, oy) in off.iter().enumerate() {
                    let y = py as f64 + oy;
                    for (sx, ox) in off.iter().enumerate() {
                        let x = px as f64 + ox;
                        if edges.iter().all(|e| e[0] * x + e[1] * y + e[2] >= 0.0) {
                            m |= 1 << (sy * SS + sx);
                        }
                    }
                }
                self.masks[py * self.width + px] |= m;
            }
        }
    }

    /// The coverage as an 8-bit grey image (covered fraction x 255, rounded).
    pub(crate) fn to_grey(&self) -> Image {
        let pixels: Vec<u8> = self
            .masks
            .iter()
            .map(|m| ((m.count_ones() as f32 / (SS * SS) as f32) * 255.0).round() as u8)
            .collect();
        Image {
            width: self.width,
            height: self.height,
            channels: 1,
            pixels: pixels.into(),
        }
    }
}

/// Rotates `p` by `angle` (radians, counter-clockwise in (x, y) with y down, i.e. clockwise
/// on screen) about the origin.
pub(crate) fn rotate(p: [f64; 2], angle: f64) -> [f64; 2] {
    let (s, c) = angle.sin_cos();
    [c * p[0] - s * p[1], s * p[0] + c * p[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_area_matches_coverage() {
        let mut c = Canvas::new(20, 20);
        // A 6.5 x 4.25 axis-aligned rectangle aligned to the sub-sample grid.
        c.fill_convex(&[[2.0, 3.0], [8.5, 3.0], [8.5, 7.25], [2.0, 7.25]]);
        let g = c.to_grey();
        let total: f64 = g.pixels.iter().map(|&v| v as f64 / 255.0).sum();
        // Up to 0.5/255 rounding per edge pixel.
        approx::assert_abs_diff_eq!(total, 6.5 * 4.25, epsilon = 0.05);
        // Drawing it twice (and in the other orientation) changes nothing.
        c.fill_convex(&[[2.0, 3.0], [2.0, 7.25], [8.5, 7.25], [8.5, 3.0]]);
        assert_eq!(c.to_grey(), g);
    }

    #[test]
    fn rotated_square_area_close() {
        let mut c = Canvas::new(40, 40);
        let h = 7.0;
        let poly: Vec<[f64; 2]> = [[-h, -h], [h, -h], [h, h], [-h, h]]
            .iter()
            .map(|&p| {
                let r = rotate(p, 0.4);
                [r[0] + 20.0, r[1] + 19.3]
            })
            .collect();
        c.fill_convex(&poly);
        let total: f64 = c.to_grey().pixels.iter().map(|&v| v as f64 / 255.0).sum();
        assert!((total - 4.0 * h * h).abs() < 0.02 * 4.0 * h * h, "{total}");
    }
}
