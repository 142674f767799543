//! Flush-to-zero for subnormal floats inside the CPU kernels.
//!
//! Training drives many values (tails of soft-argmax probabilities, small gradients) into
//! the subnormal range, where x86 arithmetic runs up to ~100x slower, and training steps
//! slow down with them (`docs/performance.md`, "Flush-to-zero"). Each kernel task therefore sets the FTZ and DAZ bits of MXCSR (subnormal results and inputs read as
//! zero, as deep-learning libraries commonly do) and restores the caller's bits when done,
//! so code outside the kernels is unaffected. A subnormal f32 is below 1.2e-38: flushing it
//! changes no result that matters. On other architectures this is a no-op.

/// Sets FTZ and DAZ on the current thread while alive; restores the previous MXCSR on drop.
pub(crate) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl FlushDenormals {
    /// Turns flush-to-zero on for the current thread.
    #[inline]
    pub(crate) fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut saved: u32 = 0;
            // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register of this thread
            // only; SSE is part of the x86-64 baseline. Only the FTZ and DAZ bits change.
            unsafe {
                std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
                let new = saved | FTZ_DAZ;
                std::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, readonly, preserves_flags));
            }
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self {}
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the value read in `new` on the same thread.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved, options(nostack, readonly, preserves_flags));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_flush_inside_and_not_after() {
        let tiny = std::hint::black_box(1e-38f32);
        let half = std::hint::black_box(0.5f32);
        {
            let _g = FlushDenormals::new();
            let r = std::hint::black_box(tiny * half);
            if cfg!(target_arch = "x86_64") {
                assert_eq!(r, 0.0, "5e-39 is subnormal and flushes");
            }
        }
        let r = std::hint::black_box(tiny * half);
        assert!(r > 0.0, "outside the guard subnormals survive");
    }
}
