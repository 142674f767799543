//! Deterministic seeding: every random draw of the crate comes from a ChaCha8 generator
//! seeded from (seed, purpose, index), so results never depend on thread scheduling.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator for draw `index` of stream `purpose` under `seed`.
pub(crate) fn rng_for(seed: u64, purpose: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(mix(seed) ^ purpose) ^ index))
}

/// Stream identifiers.
pub(crate) mod purpose {
    pub const BLOCKS: u64 = 0xB10C;
    pub const SHAPES: u64 = 0x5A9E;
    pub const SPLIT: u64 = 0x5911;
    pub const SHUFFLE: u64 = 0x5F1E;
    pub const AUGMENT: u64 = 0xA097;
}
