//! The fast convolution with the AVX2 + FMA kernels (AVX-512 disabled), against candle's conv2d: forward and all
//! gradients. One test per binary: the kernel choice is read once per process.

mod common;

#[test]
fn matches_candle() {
    std::env::set_var("LANDMARK_SSL_CONV_NO_AVX512", "1");
    assert_eq!(landmark_ssl_ops::conv::cpu_kernel(), "avx2");
    common::check_kernel_cases();
}
