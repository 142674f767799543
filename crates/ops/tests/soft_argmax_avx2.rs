//! The fused soft-argmax with AVX-512 disabled (`LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512=1`):
//! the AVX2 + FMA kernels that CPUs without AVX-512 run, against an f64 computation and the
//! composite path, forward and backward. Where the CPU lacks AVX2 or FMA, or
//! `LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2=1` turns them off, the same checks run on the baseline
//! kernels. One test per binary: the kernel choice is read once per process.

#[path = "common/maps.rs"]
mod maps;

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_ops::soft_argmax::cpu_kernel;
use landmark_ssl_ops::{soft_argmax, soft_argmax_composite};
use maps::{flat, max_abs_diff, random_maps, reference};

#[test]
fn avx2_kernels_match_reference_and_composite() {
    std::env::set_var("LANDMARK_SSL_SOFT_ARGMAX_NO_AVX512", "1");
    let no_avx2 = std::env::var("LANDMARK_SSL_SOFT_ARGMAX_NO_AVX2").is_ok_and(|v| v == "1");
    #[cfg(target_arch = "x86_64")]
    let expected = if !no_avx2
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        "avx2"
    } else {
        "generic"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let expected = {
        let _ = no_avx2;
        "generic"
    };
    assert_eq!(cpu_kernel(), expected);
    if expected != "avx2" {
        eprintln!("soft_argmax_avx2: the AVX2 kernels do not run here; checking the baseline ones");
    }
    let dev = Device::Cpu;
    // Whole blocks of 256 values and partial ones, widths of whole 16-lane vectors and not.
    for (i, &(b, k, h, w)) in [
        (2, 3, 60, 60),
        (2, 2, 64, 64),
        (1, 3, 17, 100),
        (3, 1, 5, 7),
    ]
    .iter()
    .enumerate()
    {
        for &beta in &[0.01, 1.0, 30.0] {
            let v = random_maps(i as u64, b, k, h, w, 2.0);
            let want = reference(&v, b, k, h, w, beta);
            let t64 = Tensor::from_vec(v.clone(), (b, k, h, w), &dev).unwrap();
            let e64 = max_abs_diff(&flat(&soft_argmax(&t64, beta).unwrap()), &want);
            assert!(e64 < 1e-9, "f64 {b}x{k}x{h}x{w} beta {beta}: {e64}");
            let t32 = t64.to_dtype(DType::F32).unwrap();
            let e32 = max_abs_diff(&flat(&soft_argmax(&t32, beta).unwrap()), &want);
            // As in `soft_argmax.rs`: 2e-6 px per pixel of map size, the f32 rounding of
            // the logits (a relative 6e-8 of beta v) on top.
            let tol = 2e-6 * h.max(w) as f64 * (1.0 + 3e-4 * beta);
            assert!(e32 < tol, "f32 {b}x{k}x{h}x{w} beta {beta}: {e32} >= {tol}");

            // Backward (f64) against the composite path's autograd.
            let var = Var::from_tensor(&t64).unwrap();
            let gw = Tensor::from_vec(random_maps(99, b, k, 1, 2, 1.0), (b, k, 2), &dev).unwrap();
            let grad = |f: fn(&Tensor, f64) -> landmark_ssl_ops::Result<Tensor>| {
                let loss = (f(var.as_tensor(), beta).unwrap() * &gw)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                flat(loss.backward().unwrap().get(var.as_tensor()).unwrap())
            };
            let eg = max_abs_diff(&grad(soft_argmax), &grad(soft_argmax_composite));
            assert!(eg < 1e-9, "gradient {b}x{k}x{h}x{w} beta {beta}: {eg}");
        }
    }
}
