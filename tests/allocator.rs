//! The examples' allocator (`examples/support/jemalloc.rs`) is jemalloc and reads the
//! settings written there (a misspelt option would only print a warning).

#[path = "../examples/support/jemalloc.rs"]
mod jemalloc;

#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
fn read_opt<T: Default>(name: &std::ffi::CStr) -> T {
    let mut value = T::default();
    let mut len = std::mem::size_of::<T>();
    // SAFETY: `name` is a NUL-terminated option name whose value has type T (jemalloc's
    // manual: size_t / ssize_t for these), `value` and `len` are valid for writes.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            (&mut value as *mut T).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(rc, 0, "mallctl({name:?}) failed");
    assert_eq!(len, std::mem::size_of::<T>());
    value
}

#[test]
#[cfg(all(not(target_env = "msvc"), not(feature = "system-allocator")))]
fn examples_run_on_jemalloc_with_their_settings() {
    assert_eq!(jemalloc::name(), "jemalloc");
    // A large block, so that the allocator is initialised and used by this process.
    let v = vec![1u8; 40 << 20];
    assert_eq!(v.iter().map(|&x| x as usize).sum::<usize>(), 40 << 20);
    assert_eq!(read_opt::<usize>(c"opt.oversize_threshold"), 0);
    assert_eq!(read_opt::<isize>(c"opt.dirty_decay_ms"), -1);
    assert_eq!(read_opt::<isize>(c"opt.muzzy_decay_ms"), -1);
}

#[test]
#[cfg(any(target_env = "msvc", feature = "system-allocator"))]
fn examples_run_on_the_system_allocator() {
    assert_eq!(jemalloc::name(), "system");
}
