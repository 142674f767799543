//! The fast convolution with the GEMM kernels (the `gemm` crate) in f32, against candle's conv2d: forward and all
//! gradients. One test per binary: the kernel choice is read once per process.

mod common;

#[test]
fn matches_candle() {
    std::env::set_var("LANDMARK_SSL_CONV_KERNEL", "gemm");
    assert_eq!(landmark_ssl_ops::conv::cpu_kernel(), "gemm");
    common::check_kernel_cases();
}
