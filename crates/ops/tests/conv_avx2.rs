//! The fast convolution with the AVX2 + FMA kernels (AVX-512 disabled), against candle's
//! conv2d: forward and all gradients. Skipped, with a note, where the CPU lacks AVX2 or FMA
//! or `LANDMARK_SSL_CONV_NO_AVX2=1` turns them off (`conv_gemm.rs` covers the portable
//! path). One test per binary: the kernel choice is read once per process.

mod common;

/// Why the AVX2 kernels cannot run here, if they cannot.
fn avx2_unavailable() -> Option<&'static str> {
    if std::env::var("LANDMARK_SSL_CONV_NO_AVX2").is_ok_and(|v| v == "1") {
        return Some("LANDMARK_SSL_CONV_NO_AVX2=1");
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            None
        } else {
            Some("this CPU lacks AVX2 or FMA")
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Some("not an x86-64 CPU")
    }
}

#[test]
fn matches_candle() {
    std::env::set_var("LANDMARK_SSL_CONV_NO_AVX512", "1");
    if let Some(why) = avx2_unavailable() {
        eprintln!("conv_avx2: skipped, the AVX2 kernels do not run here ({why})");
        assert_eq!(landmark_ssl_ops::conv::cpu_kernel(), "gemm");
        return;
    }
    assert_eq!(landmark_ssl_ops::conv::cpu_kernel(), "avx2");
    common::check_kernel_cases();
}
