//! Point layouts: how many landmarks a format has, what they are, and how a horizontal flip
//! permutes them.

use serde::{Deserialize, Serialize};

/// A landmark layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// iBUG / 300W, 68 points (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67;
    /// 0-based indices).
    Ibug68,
    /// MTFL, 5 points: left eye, right eye, nose tip, left mouth corner, right mouth corner
    /// ("left" as seen in the image).
    Mtfl5,
    /// AFLW, all 21 points in the database's feature order (feature_id 1..21 at indices 0..20).
    Aflw21,
    /// AFLW 19-point protocol: the 21 points without the two ears (feature ids 13 and 17).
    Aflw19,
    /// Blocks: the five square centres, head to tail. Not flippable (a flip changes the class).
    Blocks5,
    /// Shapes: triangle centroid, square centre. Not flippable (a flip changes the class).
    Shapes2,
    /// Any other layout of `n` points, with an optional flip permutation.
    Generic {
        /// Number of points.
        n: usize,
        /// `flip[k]` = index of the point that point `k` becomes after a horizontal flip.
        flip: Option<Vec<usize>>,
    },
}

/// iBUG 68 flip permutation (0-based).
const IBUG68_FLIP: [usize; 68] = [
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, // jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17, // brows
    27, 28, 29, 30, // nose bridge
    35, 34, 33, 32, 31, // nose bottom
    45, 44, 43, 42, 47, 46, // left eye -> right eye
    39, 38, 37, 36, 41, 40, // right eye -> left eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, // outer mouth
    64, 63, 62, 61, 60, 67, 66, 65, // inner mouth
];

const MTFL5_FLIP: [usize; 5] = [1, 0, 2, 4, 3];

const AFLW21_FLIP: [usize; 21] = [
    5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20,
];

const AFLW19_FLIP: [usize; 19] = [
    5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 14, 13, 12, 17, 16, 15, 18,
];

/// Indices (0-based, into the 21 AFLW points) kept by the 19-point protocol.
pub const AFLW19_FROM_21: [usize; 19] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 17, 18, 19, 20,
];

impl Layout {
    /// Number of landmarks.
    pub fn num_points(&self) -> usize {
        match self {
            Layout::Ibug68 => 68,
            Layout::Mtfl5 => 5,
            Layout::Aflw21 => 21,
            Layout::Aflw19 => 19,
            Layout::Blocks5 => 5,
            Layout::Shapes2 => 2,
            Layout::Generic { n, .. } => *n,
        }
    }

    /// A short name (`"ibug68"`, `"mtfl5"`, `"aflw21"`, `"aflw19"`, `"blocks5"`, `"shapes2"`,
    /// `"generic<n>"`).
    pub fn name(&self) -> String {
        match self {
            Layout::Ibug68 => "ibug68".into(),
            Layout::Mtfl5 => "mtfl5".into(),
            Layout::Aflw21 => "aflw21".into(),
            Layout::Aflw19 => "aflw19".into(),
            Layout::Blocks5 => "blocks5".into(),
            Layout::Shapes2 => "shapes2".into(),
            Layout::Generic { n, .. } => format!("generic{n}"),
        }
    }

    /// The horizontal-flip permutation: after flipping an image, landmark `k` of the flipped
    /// image is the mirror of landmark `perm[k]` of the original (the permutations here are
    /// involutions, so the direction does not matter). `None` when the layout must not be
    /// flipped.
    pub fn flip_permutation(&self) -> Option<Vec<usize>> {
        match self {
            Layout::Ibug68 => Some(IBUG68_FLIP.to_vec()),
            Layout::Mtfl5 => Some(MTFL5_FLIP.to_vec()),
            Layout::Aflw21 => Some(AFLW21_FLIP.to_vec()),
            Layout::Aflw19 => Some(AFLW19_FLIP.to_vec()),
            Layout::Blocks5 | Layout::Shapes2 => None,
            Layout::Generic { flip, .. } => flip.clone(),
        }
    }

    /// The layout usually meant by a point count: 68 -> iBUG, 5 -> MTFL, 21 / 19 -> AFLW,
    /// anything else a generic layout without flip permutation.
    pub fn guess(n: usize) -> Layout {
        match n {
            68 => Layout::Ibug68,
            5 => Layout::Mtfl5,
            21 => Layout::Aflw21,
            19 => Layout::Aflw19,
            n => Layout::Generic { n, flip: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_are_involutive_permutations() {
        for l in [
            Layout::Ibug68,
            Layout::Mtfl5,
            Layout::Aflw21,
            Layout::Aflw19,
        ] {
            let p = l.flip_permutation().unwrap();
            assert_eq!(p.len(), l.num_points());
            let mut seen = vec![false; p.len()];
            for (k, &j) in p.iter().enumerate() {
                assert!(!seen[j]);
                seen[j] = true;
                assert_eq!(p[j], k, "{l:?} not an involution at {k}");
            }
        }
        // The 19-point flip is the 21-point flip restricted to the kept points.
        let p21 = AFLW21_FLIP;
        for (i, &j21) in AFLW19_FROM_21.iter().enumerate() {
            let mapped = p21[j21];
            assert_eq!(AFLW19_FROM_21[AFLW19_FLIP[i]], mapped);
        }
    }
}
