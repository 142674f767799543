//! The Blocks data set (Honari et al. 2018, section 4.1): 60x60 grey images of a chain of
//! five white squares with a white triangle at its head, on black.
//!
//! # Configurations
//! A configuration is a chain of five grid cells, each 4-adjacent to the next, read from the
//! head (cell 0, beside the triangle) to the tail (cell 4). It is written as the three turns
//! taken at cells 1, 2 and 3 when walking from head to tail: `S` straight on, `L` a left
//! turn, `R` a right turn (as seen on screen). The 15 configurations, class `c` being entry
//! `c` of [`CONFIGURATIONS`]:
//!
//! | class | turns | | class | turns | | class | turns |
//! |---|---|---|---|---|---|---|---|---|
//! | 0 | SSS (straight bar) | | 5 | SRS | | 10 | LRS |
//! | 1 | SSL | | 6 | SRL | | 11 | RSS |
//! | 2 | SSR | | 7 | LSS | | 12 | RSL |
//! | 3 | SLS | | 8 | LSL | | 13 | RSR |
//! | 4 | SLR | | 9 | LSR | | 14 | RLS |
//!
//! These are the 17 turn strings with no two equal turns in a row (`LL`, `RR` would fold the
//! chain into a 2x2 block, where the walk can no longer be read from the picture), less the
//! two zig-zags `LRL` and `RLR`. Because the walk can be read back from the picture
//! (non-consecutive cells are never adjacent) and the triangle marks the head, no two
//! configurations coincide under any rotation; mirror images (`L` <-> `R`) are distinct
//! classes, and images are never flipped.
//!
//! # Geometry
//! Cells are spaced one unit apart; each square has side 0.8 units (a 0.2-unit gap shows the
//! chain's links); the triangle's 0.8-unit base lies 0.6 units from the head cell's centre,
//! on the side away from cell 1, and its apex 1.4 units out. One unit is `s` pixels with `s`
//! uniform in [6, 9]; the figure is rotated about its centre by an angle uniform in
//! [0, 360) degrees and translated uniformly so that every vertex lies in
//! [0.5, 58.5] x [0.5, 58.5] (fully inside the 60x60 image).
//!
//! # Landmarks
//! Five landmarks, the centres of the five squares from head (the square touching the
//! triangle) to tail, in pixels (workspace convention). Attribute: `"config"`, 15 classes.
//! Images are anti-aliased (4x4 sub-samples per pixel, see `render`). Image `i` has class
//! `i % 15`, so classes are balanced within one image.

use std::collections::BTreeMap;

use rand::Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::render::{rotate, Canvas};
use crate::rng::{purpose, rng_for};
use crate::sample::{Dataset, DatasetMeta, ImageSource, Sample};

/// Image side in pixels.
pub const SIZE: usize = 60;
/// Number of configurations (classes).
pub const NUM_CLASSES: usize = 15;
/// Name of the class attribute.
pub const ATTRIBUTE: &str = "config";
/// The 15 configurations as turn strings, head to tail (see the module docs).
pub const CONFIGURATIONS: [&str; NUM_CLASSES] = [
    "SSS", "SSL", "SSR", "SLS", "SLR", "SRS", "SRL", "LSS", "LSL", "LSR", "LRS", "RSS", "RSL",
    "RSR", "RLS",
];
/// Training, validation and test sizes of the paper.
pub const PAPER_SPLIT: [usize; 3] = [3200, 3200, 3200];

/// Cell centres (head to tail) of configuration `class` in grid units, first move along +x.
pub fn cells(class: usize) -> [[i32; 2]; 5] {
    let turns = CONFIGURATIONS[class % NUM_CLASSES].as_bytes();
    let mut out = [[0i32; 2]; 5];
    let mut d = [1i32, 0];
    let mut p = [0i32, 0];
    for (i, cell) in out.iter_mut().enumerate().skip(1) {
        if i >= 2 {
            d = match turns[i - 2] {
                // Left on screen (y down): (dx, dy) -> (dy, -dx).
                b'L' => [d[1], -d[0]],
                b'R' => [-d[1], d[0]],
                _ => d,
            };
        }
        p = [p[0] + d[0], p[1] + d[1]];
        *cell = p;
    }
    out
}

/// Polygons (5 squares then the triangle) and the 5 landmarks, in grid units.
fn figure(class: usize) -> (Vec<Vec<[f64; 2]>>, [[f64; 2]; 5]) {
    let c = cells(class);
    let h = 0.4;
    let mut polys = Vec::with_capacity(6);
    let mut marks = [[0.0; 2]; 5];
    for (k, cell) in c.iter().enumerate() {
        let (x, y) = (cell[0] as f64, cell[1] as f64);
        polys.push(vec![
            [x - h, y - h],
            [x + h, y - h],
            [x + h, y + h],
            [x - h, y + h],
        ]);
        marks[k] = [x, y];
    }
    // Triangle on the side of cell 0 away from cell 1.
    let u = [(c[0][0] - c[1][0]) as f64, (c[0][1] - c[1][1]) as f64];
    let v = [-u[1], u[0]];
    let b = [u[0] * 0.6, u[1] * 0.6];
    polys.push(vec![
        [b[0] + v[0] * h, b[1] + v[1] * h],
        [u[0] * 1.4, u[1] * 1.4],
        [b[0] - v[0] * h, b[1] - v[1] * h],
    ]);
    (polys, marks)
}

/// Renders one Blocks image of configuration `class` with unit `scale` (pixels per grid
/// unit), rotation `angle` (radians) and figure centre `centre` (pixels). Returns the sample
/// (landmarks in pixels); used by [`generate`], public for tests and custom sets.
pub fn render(class: usize, scale: f64, angle: f64, centre: [f64; 2]) -> Sample {
    let (polys, marks) = figure(class);
    let (lo, hi) = bounds(&polys);
    let mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let place = |p: [f64; 2]| {
        let r = rotate([(p[0] - mid[0]) * scale, (p[1] - mid[1]) * scale], angle);
        [r[0] + centre[0], r[1] + centre[1]]
    };
    let mut canvas = Canvas::new(SIZE, SIZE);
    for poly in &polys {
        let pts: Vec<[f64; 2]> = poly.iter().map(|&p| place(p)).collect();
        canvas.fill_convex(&pts);
    }
    let landmarks = marks
        .iter()
        .map(|&m| {
            let p = place(m);
            [p[0] as f32, p[1] as f32]
        })
        .collect();
    let mut s = Sample::new(ImageSource::Memory(canvas.to_grey()), landmarks);
    s.classes.insert(ATTRIBUTE.to_string(), class);
    s
}

fn bounds(polys: &[Vec<[f64; 2]>]) -> ([f64; 2], [f64; 2]) {
    let mut lo = [f64::MAX; 2];
    let mut hi = [f64::MIN; 2];
    for p in polys.iter().flatten() {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// The metadata of a Blocks data set (layout [`Layout::Blocks5`], attribute `"config"`
/// with 15 classes).
pub fn meta() -> DatasetMeta {
    DatasetMeta {
        name: "blocks".into(),
        layout: Layout::Blocks5,
        classes: BTreeMap::from([(ATTRIBUTE.to_string(), NUM_CLASSES)]),
        reals: BTreeMap::new(),
    }
}

/// Generates `n` Blocks images (60x60, see the module docs), deterministic for `seed`
/// (image `i` depends only on `(seed, i)`), rendered in parallel with rayon.
///
/// Errors with [`Error::EmptyDataset`] when `n == 0`.
pub fn generate(n: usize, seed: u64) -> Result<Dataset> {
    if n == 0 {
        return Err(Error::EmptyDataset {
            what: "blocks::generate(n = 0)".into(),
        });
    }
    let samples: Vec<Sample> = (0..n)
        .into_par_iter()
        .map(|i| {
            let class = i % NUM_CLASSES;
            let mut rng = rng_for(seed, purpose::BLOCKS, i as u64);
            let (polys, _) = figure(class);
            let (lo, hi) = bounds(&polys);
            let mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
            let (min_lo, max_hi) = (0.5, SIZE as f64 - 1.5);
            loop {
                let scale = rng.random_range(6.0..9.0);
                let angle = rng.random_range(0.0..std::f64::consts::TAU);
                // Extent of the rotated, scaled figure about its centre.
                let mut elo = [f64::MAX; 2];
                let mut ehi = [f64::MIN; 2];
                for p in polys.iter().flatten() {
                    let r = rotate([(p[0] - mid[0]) * scale, (p[1] - mid[1]) * scale], angle);
                    for a in 0..2 {
                        elo[a] = elo[a].min(r[a]);
                        ehi[a] = ehi[a].max(r[a]);
                    }
                }
                let (ax, bx) = (min_lo - elo[0], max_hi - ehi[0]);
                let (ay, by) = (min_lo - elo[1], max_hi - ehi[1]);
                if ax >= bx || ay >= by {
                    continue; // too large at this angle: draw again
                }
                let centre = [rng.random_range(ax..bx), rng.random_range(ay..by)];
                return render(class, scale, angle, centre);
            }
        })
        .collect();
    Ok(Dataset {
        samples,
        meta: meta(),
    })
}

/// Train / validation / test sets of the given sizes, each from its own seed derived from
/// `seed`. `generate_splits([3200, 3200, 3200], seed)` ([`PAPER_SPLIT`]) gives the paper's
/// sizes.
pub fn generate_splits(sizes: [usize; 3], seed: u64) -> Result<[Dataset; 3]> {
    let s = crate::rng::mix(seed);
    Ok([
        generate(sizes[0], s)?,
        generate(sizes[1], s.wrapping_add(1))?,
        generate(sizes[2], s.wrapping_add(2))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_simple_chains_without_folds() {
        let mut seen = std::collections::BTreeSet::new();
        for c in 0..NUM_CLASSES {
            let cs = cells(c);
            for i in 0..5 {
                for j in i + 1..5 {
                    let d = (cs[i][0] - cs[j][0]).abs() + (cs[i][1] - cs[j][1]).abs();
                    assert!(d > 0, "config {c}: cells {i} and {j} coincide");
                    if j == i + 1 {
                        assert_eq!(d, 1);
                    } else {
                        assert!(d > 1, "config {c}: cells {i} and {j} touch");
                    }
                }
            }
            // Canonical form under the 4 rotations (head fixed by the triangle).
            let canon = (0..4)
                .map(|r| {
                    cs.iter()
                        .map(|p| {
                            let mut q = *p;
                            for _ in 0..r {
                                q = [-q[1], q[0]];
                            }
                            q
                        })
                        .collect::<Vec<_>>()
                })
                .min()
                .unwrap();
            assert!(seen.insert(canon), "config {c} duplicates another");
        }
    }
}
