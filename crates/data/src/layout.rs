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
    /// WFLW, 98 points (0-based): jaw 0-32, left brow 33-41, right brow 42-50, nose 51-59,
    /// left eye 60-67, right eye 68-75, outer mouth 76-87, inner mouth 88-95, pupils 96
    /// (left) and 97 (right); "left" as seen in the image. The benchmark's inter-ocular
    /// normaliser is the distance between the outer eye corners 60 and 72
    /// ([`WFLW98_OUTER_EYE_CORNERS`]; give the metrics crate `Normalizer::Points(60, 72)`).
    Wflw98,
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

/// WFLW 98 flip permutation (0-based), from the layout's definition: the jaw reverses
/// (16, the chin, stays); the brows swap upper contour for upper contour (33-37 <-> 46-42)
/// and lower for lower (38-41 <-> 50-47); the nose bridge 51-54 and tip 57 stay, the nostrils
/// swap (55, 56 <-> 59, 58); the eyes swap starting from the outer corners (60 <-> 72, upper
/// lids 61-63 <-> 71-69, inner corners 64 <-> 68, lower lids 65-67 <-> 75-73); the mouth
/// swaps its corners (76 <-> 82, 88 <-> 92) and mirrors its contours about the middle points
/// 79, 85, 90 and 94, which stay; the pupils swap (96 <-> 97).
const WFLW98_FLIP: [usize; 98] = [
    32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, // jaw 0-16
    15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, // jaw 17-32
    46, 45, 44, 43, 42, 50, 49, 48, 47, // left brow 33-41
    37, 36, 35, 34, 33, 41, 40, 39, 38, // right brow 42-50
    51, 52, 53, 54, 59, 58, 57, 56, 55, // nose 51-59
    72, 71, 70, 69, 68, 75, 74, 73, // left eye 60-67
    64, 63, 62, 61, 60, 67, 66, 65, // right eye 68-75
    82, 81, 80, 79, 78, 77, 76, 87, 86, 85, 84, 83, // outer mouth 76-87
    92, 91, 90, 89, 88, 95, 94, 93, // inner mouth 88-95
    97, 96, // pupils
];

/// The WFLW benchmark's inter-ocular normaliser points (0-based): the outer eye corners 60
/// and 72 of [`Layout::Wflw98`]. The metrics crate takes them as
/// `Normalizer::Points(60, 72)`.
pub const WFLW98_OUTER_EYE_CORNERS: [usize; 2] = [60, 72];

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
            Layout::Wflw98 => 98,
            Layout::Aflw21 => 21,
            Layout::Aflw19 => 19,
            Layout::Blocks5 => 5,
            Layout::Shapes2 => 2,
            Layout::Generic { n, .. } => *n,
        }
    }

    /// A short name (`"ibug68"`, `"mtfl5"`, `"wflw98"`, `"aflw21"`, `"aflw19"`, `"blocks5"`, `"shapes2"`,
    /// `"generic<n>"`).
    pub fn name(&self) -> String {
        match self {
            Layout::Ibug68 => "ibug68".into(),
            Layout::Mtfl5 => "mtfl5".into(),
            Layout::Wflw98 => "wflw98".into(),
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
            Layout::Wflw98 => Some(WFLW98_FLIP.to_vec()),
            Layout::Aflw21 => Some(AFLW21_FLIP.to_vec()),
            Layout::Aflw19 => Some(AFLW19_FLIP.to_vec()),
            Layout::Blocks5 | Layout::Shapes2 => None,
            Layout::Generic { flip, .. } => flip.clone(),
        }
    }

    /// The layout usually meant by a point count: 68 -> iBUG, 5 -> MTFL, 98 -> WFLW,
    /// 21 / 19 -> AFLW,
    /// anything else a generic layout without flip permutation.
    pub fn guess(n: usize) -> Layout {
        match n {
            68 => Layout::Ibug68,
            5 => Layout::Mtfl5,
            98 => Layout::Wflw98,
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
            Layout::Wflw98,
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

    #[test]
    fn wflw98_flip_follows_the_layout() {
        let p = Layout::Wflw98.flip_permutation().unwrap();
        assert_eq!(p.len(), 98);
        // Involution (so also a permutation).
        for (k, &j) in p.iter().enumerate() {
            assert_eq!(p[j], k, "not an involution at {k}");
        }
        let [a, b] = WFLW98_OUTER_EYE_CORNERS;
        assert_eq!((p[a], p[b]), (b, a));
        assert_eq!((p[96], p[97]), (97, 96));
        assert_eq!((p[0], p[32], p[16]), (32, 0, 16));
        assert_eq!((p[64], p[68]), (68, 64));
        assert_eq!((p[76], p[82], p[88], p[92]), (82, 76, 92, 88));
        // Fixed points: the chin, the nose bridge and tip, the mouth's middle points.
        let fixed: Vec<usize> = (0..98).filter(|&k| p[k] == k).collect();
        assert_eq!(fixed, [16, 51, 52, 53, 54, 57, 79, 85, 90, 94]);
        // Every group maps onto its mirror group.
        let group = |k: usize| match k {
            0..=32 => 0,
            33..=41 => 1,
            42..=50 => 2,
            51..=59 => 3,
            60..=67 => 4,
            68..=75 => 5,
            76..=87 => 6,
            88..=95 => 7,
            _ => 8,
        };
        let mirror = [0, 2, 1, 3, 5, 4, 6, 7, 8];
        for (k, &j) in p.iter().enumerate() {
            assert_eq!(group(j), mirror[group(k)], "point {k} -> {j}");
        }
        assert_eq!(Layout::guess(98), Layout::Wflw98);
        assert_eq!(Layout::Wflw98.name(), "wflw98");
    }
}
