//! The Shapes data set (Honari et al. 2018, section 4.1): 60x60 grey images with a white
//! equilateral triangle and a white square on black, each of random size, position and
//! rotation, not overlapping.
//!
//! * Triangle side uniform in [10, 18] px, square side uniform in [8, 14] px, rotations
//!   uniform in [0, 360) degrees, positions uniform with the whole shape in
//!   [0.5, 58.5]^2; the shapes' circumscribed circles are at least 1 px apart.
//! * Attribute `"closer"` (2 classes): **0 = the triangle** is closer to the image's
//!   top-left corner (the point (-0.5, -0.5)), **1 = the square** is. Distances are from the
//!   shapes' centres; draws whose distances differ by less than 2 px are rejected so the
//!   label is never ambiguous. Image `i` has class `i % 2` (balanced).
//! * Landmarks (2): the triangle's centroid, then the square's centre, in pixels (workspace
//!   convention). The paper never trains on them; they are kept for evaluation.
//! * Anti-aliased with 4x4 sub-samples per pixel (see `render`).

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
/// Name of the class attribute.
pub const ATTRIBUTE: &str = "closer";

/// The metadata of a Shapes data set.
pub fn meta() -> DatasetMeta {
    DatasetMeta {
        name: "shapes".into(),
        layout: Layout::Shapes2,
        classes: BTreeMap::from([(ATTRIBUTE.to_string(), 2)]),
        reals: BTreeMap::new(),
    }
}

/// Generates `n` Shapes images, deterministic for `seed` (image `i` depends only on
/// `(seed, i)`), rendered in parallel.
///
/// Errors with [`Error::EmptyDataset`] when `n == 0`.
pub fn generate(n: usize, seed: u64) -> Result<Dataset> {
    if n == 0 {
        return Err(Error::EmptyDataset {
            what: "shapes::generate(n = 0)".into(),
        });
    }
    let samples = (0..n)
        .into_par_iter()
        .map(|i| one(i % 2, &mut rng_for(seed, purpose::SHAPES, i as u64)))
        .collect();
    Ok(Dataset {
        samples,
        meta: meta(),
    })
}

fn one(class: usize, rng: &mut impl Rng) -> Sample {
    let (lo, hi) = (0.5, SIZE as f64 - 1.5);
    loop {
        let ts = rng.random_range(10.0..18.0);
        let ss = rng.random_range(8.0..14.0);
        // Triangle with centroid at the origin: circumradius ts / sqrt(3).
        let tr = ts / 3f64.sqrt();
        let tri: Vec<[f64; 2]> = (0..3)
            .map(|k| {
                let a = -std::f64::consts::FRAC_PI_2 + k as f64 * std::f64::consts::TAU / 3.0;
                [tr * a.cos(), tr * a.sin()]
            })
            .collect();
        let h = ss / 2.0;
        let sq = [[-h, -h], [h, -h], [h, h], [-h, h]];
        let ta = rng.random_range(0.0..std::f64::consts::TAU);
        let sa = rng.random_range(0.0..std::f64::consts::TAU);
        let tri: Vec<[f64; 2]> = tri.iter().map(|&p| rotate(p, ta)).collect();
        let sq: Vec<[f64; 2]> = sq.iter().map(|&p| rotate(p, sa)).collect();
        let tc = place(&tri, lo, hi, rng);
        let sc = place(&sq, lo, hi, rng);
        let (Some(tc), Some(sc)) = (tc, sc) else {
            continue;
        };
        let dist = ((tc[0] - sc[0]).powi(2) + (tc[1] - sc[1]).powi(2)).sqrt();
        if dist < tr + h * 2f64.sqrt() + 1.0 {
            continue;
        }
        let dt = ((tc[0] + 0.5).powi(2) + (tc[1] + 0.5).powi(2)).sqrt();
        let ds = ((sc[0] + 0.5).powi(2) + (sc[1] + 0.5).powi(2)).sqrt();
        if (dt - ds).abs() < 2.0 {
            continue;
        }
        let got = if dt < ds { 0 } else { 1 };
        if got != class {
            continue;
        }
        let mut canvas = Canvas::new(SIZE, SIZE);
        canvas.fill_convex(
            &tri.iter()
                .map(|p| [p[0] + tc[0], p[1] + tc[1]])
                .collect::<Vec<_>>(),
        );
        canvas.fill_convex(
            &sq.iter()
                .map(|p| [p[0] + sc[0], p[1] + sc[1]])
                .collect::<Vec<_>>(),
        );
        let landmarks = vec![[tc[0] as f32, tc[1] as f32], [sc[0] as f32, sc[1] as f32]];
        let mut s = Sample::new(ImageSource::Memory(canvas.to_grey()), landmarks);
        s.classes.insert(ATTRIBUTE.to_string(), class);
        return s;
    }
}

/// A uniform translation keeping all of `poly` (centred at the origin) in `[lo, hi]^2`.
fn place(poly: &[[f64; 2]], lo: f64, hi: f64, rng: &mut impl Rng) -> Option<[f64; 2]> {
    let mut c = [0.0; 2];
    for a in 0..2 {
        let mn = poly.iter().map(|p| p[a]).fold(f64::MAX, f64::min);
        let mx = poly.iter().map(|p| p[a]).fold(f64::MIN, f64::max);
        let (l, h) = (lo - mn, hi - mx);
        if l >= h {
            return None;
        }
        c[a] = rng.random_range(l..h);
    }
    Some(c)
}
