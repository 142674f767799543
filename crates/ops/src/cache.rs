//! The CPU's data cache sizes, read once with CPUID, for the kernels' memory choices:
//! which cache to prefetch the next map into, and when a large output is better written
//! with streaming (non-temporal) stores that go around the caches.
//!
//! Both choices depend on the machine. A 64x64 f32 map is 16 KiB: with the next map
//! prefetched into a 48 KiB L1d (recent Intel cores) the next maximum pass reads L1, but
//! two of them fill a 32 KiB L1d (AMD Zen), where prefetching into L1 evicts the map being
//! computed. Streaming stores skip reading each output line before writing it, which pays
//! when the kernel's input and output together exceed the last-level cache (the output
//! goes to memory anyway); where they fit, streaming is slower, as the output's next reader
//! then finds it in memory instead of in cache. Measured in `docs/performance.md`
//! ("Prefetch and streaming stores, from the cache sizes").

use std::sync::OnceLock;

/// Data cache sizes in bytes, per core for L1 and as reported for the last level (which a
/// core may share with others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CacheSizes {
    /// L1 data cache of one core.
    pub l1d: usize,
    /// The last-level cache (L3 on current x86 CPUs), `None` where CPUID does not say.
    pub llc: Option<usize>,
}

/// The L1d assumed where CPUID does not report it: the smallest of current x86 cores.
const DEFAULT_L1D: usize = 32 * 1024;

impl CacheSizes {
    /// Whether the next map of `map_bytes` bytes should be prefetched into L1: when it and
    /// the map being computed fit in L1d together, with room to spare for the coordinates
    /// and accumulators (so 64x64 f32 maps go to L1 on a 48 KiB L1d, not on 32 KiB).
    pub fn prefetch_into_l1(&self, map_bytes: usize) -> bool {
        2 * map_bytes < self.l1d
    }

    /// Whether a kernel that reads `read_bytes` and writes `write_bytes` should write with
    /// streaming stores: when both together exceed the last-level cache, so that the
    /// output would reach memory anyway. Never where the cache size is unknown.
    pub fn stream_output(&self, read_bytes: usize, write_bytes: usize) -> bool {
        self.llc
            .is_some_and(|llc| read_bytes.saturating_add(write_bytes) > llc)
    }
}

/// This CPU's cache sizes, read once.
pub(crate) fn cache_sizes() -> CacheSizes {
    static SIZES: OnceLock<CacheSizes> = OnceLock::new();
    *SIZES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CacheSizes {
    use raw_cpuid::{CacheType, CpuId};
    let mut l1d = None;
    let mut llc: Option<(u8, usize)> = None;
    // Intel's leaf 4 and AMD's leaf 0x8000_001D describe every cache, level by level.
    if let Some(caches) = CpuId::new().get_cache_parameters() {
        for c in caches {
            let bytes = c.associativity()
                * c.physical_line_partitions()
                * c.coherency_line_size()
                * c.sets();
            if bytes == 0 {
                continue;
            }
            let data = matches!(c.cache_type(), CacheType::Data | CacheType::Unified);
            if data && c.level() == 1 {
                l1d = Some(bytes);
            }
            if data && c.level() >= 2 && llc.is_none_or(|(level, _)| c.level() > level) {
                llc = Some((c.level(), bytes));
            }
        }
    }
    CacheSizes {
        l1d: l1d.unwrap_or(DEFAULT_L1D),
        llc: llc.map(|(_, bytes)| bytes),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CacheSizes {
    CacheSizes {
        l1d: DEFAULT_L1D,
        llc: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_prefetch_needs_room_for_two_maps() {
        let intel = CacheSizes {
            l1d: 48 * 1024,
            llc: Some(480 << 20),
        };
        let zen = CacheSizes {
            l1d: 32 * 1024,
            llc: Some(32 << 20),
        };
        // 60x60, 64x64 and 80x80 f32 maps.
        assert!(intel.prefetch_into_l1(14_400) && intel.prefetch_into_l1(16_384));
        assert!(!intel.prefetch_into_l1(25_600));
        assert!(zen.prefetch_into_l1(14_400));
        assert!(!zen.prefetch_into_l1(16_384) && !zen.prefetch_into_l1(25_600));
    }

    #[test]
    fn streams_only_past_the_last_level_cache() {
        let zen = CacheSizes {
            l1d: 32 * 1024,
            llc: Some(32 << 20),
        };
        let maps_64 = 32 * 68 * 64 * 64 * 4;
        let maps_60 = 32 * 5 * 60 * 60 * 4;
        assert!(zen.stream_output(maps_64, maps_64));
        assert!(!zen.stream_output(maps_60, maps_60));
        let unknown = CacheSizes {
            l1d: 32 * 1024,
            llc: None,
        };
        assert!(!unknown.stream_output(usize::MAX, usize::MAX));
    }

    #[test]
    fn detected_sizes_are_plausible() {
        let s = cache_sizes();
        assert!((4 * 1024..=4 << 20).contains(&s.l1d), "{s:?}");
        if let Some(llc) = s.llc {
            assert!(llc >= s.l1d, "{s:?}");
        }
    }
}
