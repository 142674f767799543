//! The allocator of the examples and benches: jemalloc, set to keep large freed blocks
//! mapped for reuse.
//!
//! Why: a training step frees and re-allocates the same large tensors (maps, gradients,
//! activations) every step. glibc maps each block over 32 MB anew and unmaps it on free,
//! so every 4 KiB page faults again on first touch. Measured on the 2-core development
//! machine: the soft-argmax forward + backward on (32, 68, 64, 64) took 13-15 ms instead of
//! 31-37 ms, and Seq-MT Blocks trained 27-38% faster (docs/performance.md, "Allocator"). The options:
//! - `oversize_threshold:0`: no dedicated arena that purges large blocks at once;
//! - `dirty_decay_ms:-1,muzzy_decay_ms:-1`: freed pages stay mapped (the process keeps its
//!   peak memory, which a training run reaches in its first steps anyway);
//! - `thp:always`: 2 MiB pages where the kernel has transparent huge pages.
//!
//! Programs that use the library choose their own allocator; to do the same, copy this
//! file and add `tikv-jemallocator` to the binary's dependencies. Build an example or bench
//! with `--features system-allocator` to compare with the system allocator. Not on MSVC,
//! where jemalloc does not build.

#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's `malloc_conf` (a `const char *` it reads before `main`).
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a 'static, immutable C string literal.
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
unsafe impl Sync for MallocConf {}

// tikv-jemallocator builds jemalloc with the `_rjem_` prefix; jemalloc's own definition of
// the symbol is weak, so this one is the one it reads.
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always".as_ptr());

/// Which allocator this program runs on, for reports.
#[allow(dead_code)]
pub fn name() -> &'static str {
    if cfg!(all(
        not(target_env = "msvc"),
        not(feature = "system-allocator")
    )) {
        "jemalloc"
    } else {
        "system"
    }
}
