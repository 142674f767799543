//! Seeds: every random choice of a run is drawn from a generator seeded by the experiment
//! seed, a purpose and one or two counters (the epoch and the step, or a variable's index),
//! so that no two purposes share a stream and a resumed run draws what the uninterrupted
//! run would have drawn.

/// The batch order of an epoch ([`crate::plan::epoch_plan`]).
pub(crate) const PURPOSE_ORDER: u64 = 1;
/// The ELT transforms of a step.
pub(crate) const PURPOSE_ELT: u64 = 2;
/// The initial weights ([`crate::init::reinit_seeded`]).
pub(crate) const PURPOSE_INIT: u64 = 3;
/// The dropout masks of a step.
pub(crate) const PURPOSE_DROPOUT: u64 = 4;

/// Derives an independent seed for one purpose of one step (SplitMix64 finaliser).
pub(crate) fn derive_seed(seed: u64, purpose: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ a.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ b.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
