//! Output buffers for the CPU kernels: [`zeroed`] ones, and empty ones with room for a
//! kernel that writes every value ([`for_overwrite`]), both with a transparent-huge-page
//! hint when large.
//!
//! A kernel output of tens of MB (a soft-argmax map gradient, a convolution's activations)
//! is usually a fresh allocation (glibc maps blocks above 32 MB anew on every call), so
//! each page faults on its first write, and on virtual machines a fault is slow. With 2 MiB
//! pages there are 512 times fewer faults (measured in `docs/performance.md`, "Huge pages
//! for large outputs"). On Linux, buffers of [`HUGE_PAGE_MIN_BYTES`] and more are therefore
//! marked `MADV_HUGEPAGE` before their first write (what PyTorch's CPU allocator does when
//! `THP_MEM_ALLOC_ENABLE` is set). The hint changes no value; where transparent huge pages
//! are disabled the kernel ignores it.

/// Buffers from this size on get the huge-page hint: below it, few whole 2 MiB pages fit.
pub(crate) const HUGE_PAGE_MIN_BYTES: usize = 8 << 20;

/// `n` copies of `zero` (the type's zero), for a kernel to overwrite. For floats and
/// integers `vec![zero; n]` is a `calloc`: a large block comes back untouched (the kernel
/// zero-fills pages on their first write), so the hint given here applies to every page.
pub(crate) fn zeroed<T: Clone>(n: usize, zero: T) -> Vec<T> {
    let v = vec![zero; n];
    advise_huge_pages(&v);
    v
}

/// An empty vector with room for `n` values, for a kernel that writes every one of them
/// through `spare_capacity_mut()` and then sets the length: no memset first, which matters
/// when the allocator hands back memory it already had (it must then zero it for a
/// `calloc`). Large buffers get the same huge-page hint as [`zeroed`].
pub(crate) fn for_overwrite<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    let spare = v.spare_capacity_mut();
    advise_huge_pages_raw(spare.as_ptr() as usize, std::mem::size_of_val(spare));
    v
}

fn advise_huge_pages<T>(v: &[T]) {
    advise_huge_pages_raw(v.as_ptr() as usize, std::mem::size_of_val(v));
}

#[cfg(target_os = "linux")]
fn advise_huge_pages_raw(addr: usize, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < HUGE_PAGE_MIN_BYTES {
        return;
    }
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: [start, end) lies inside the caller's allocation, which this function does not
        // free or resize; MADV_HUGEPAGE only changes how the kernel backs the pages, never
        // their contents. A failure (THP compiled out) is harmless, so the result is ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages_raw(_addr: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buffers_are_zero_at_every_size() {
        for n in [0usize, 1, 1000, HUGE_PAGE_MIN_BYTES / 4 + 12_345] {
            let v: Vec<f32> = zeroed(n, 0.0);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
        }
        let v: Vec<f64> = zeroed(HUGE_PAGE_MIN_BYTES / 8 + 3, 0.0);
        assert!(v.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn buffers_for_overwrite_have_room_and_no_length() {
        for n in [0usize, 7, HUGE_PAGE_MIN_BYTES / 4 + 5] {
            let mut v: Vec<f32> = for_overwrite(n);
            assert!(v.is_empty() && v.capacity() >= n);
            for (i, s) in v.spare_capacity_mut()[..n].iter_mut().enumerate() {
                s.write(i as f32);
            }
            // SAFETY: the loop above wrote the first n slots.
            unsafe { v.set_len(n) };
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }
}
