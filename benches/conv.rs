//! Convolution throughput on the layer shapes of the presets, ours vs candle's `conv2d`,
//! forward and forward + backward (weight, bias and input gradients), in GFLOP/s
//! (criterion's `Throughput::Elements` counts flops: 2 * B * I * O * kh * kw * H * W per
//! convolution; forward + backward counts 3 convolutions).
//!
//! ```text
//! cargo bench --bench conv                 # every shape
//! cargo bench --bench conv -- blocks       # Seq-MT Blocks layers only
//! CONV_BENCH_BATCH=8 cargo bench --bench conv -- multipie   # a smaller batch
//! CONV_BENCH_CANDLE=0 cargo bench --bench conv              # ours only
//! ```
//!
//! The shapes (batch 32 unless `CONV_BENCH_BATCH` is set): Seq-MT Blocks 9x9 1->8 and 8->8
//! at 60x60, Seq-MT Multi-PIE 9x9 64->64 at 64x64, RCN 3x3 64->64 at 80x80, all SAME
//! padding, stride 1, bias and ReLU fused (ours) or composed (candle).

#[path = "../examples/support/jemalloc.rs"]
mod jemalloc;

use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use landmark_ssl::ops::conv::{conv2d_fast_relu, conv2d_reference, Conv2dConfig};

struct Shape {
    name: &'static str,
    cin: usize,
    cout: usize,
    size: usize,
    kernel: usize,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "seqmt_blocks_9x9_1to8_60",
        cin: 1,
        cout: 8,
        size: 60,
        kernel: 9,
    },
    Shape {
        name: "seqmt_blocks_9x9_8to8_60",
        cin: 8,
        cout: 8,
        size: 60,
        kernel: 9,
    },
    Shape {
        name: "seqmt_multipie_9x9_64to64_64",
        cin: 64,
        cout: 64,
        size: 64,
        kernel: 9,
    },
    Shape {
        name: "rcn_3x3_64to64_80",
        cin: 64,
        cout: 64,
        size: 80,
        kernel: 3,
    },
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench(c: &mut Criterion) {
    let batch = env_usize("CONV_BENCH_BATCH", 32);
    let with_candle = env_usize("CONV_BENCH_CANDLE", 1) == 1;
    let dev = Device::Cpu;
    for s in SHAPES {
        let cfg = Conv2dConfig::same(s.kernel);
        let flops = 2 * batch * s.cin * s.cout * s.kernel * s.kernel * s.size * s.size;
        let x = Var::from_tensor(
            &Tensor::randn(0f32, 1.0, (batch, s.cin, s.size, s.size), &dev).expect("input"),
        )
        .expect("var");
        let w = Var::from_tensor(
            &Tensor::randn(0f32, 0.05, (s.cout, s.cin, s.kernel, s.kernel), &dev).expect("weight"),
        )
        .expect("var");
        let b =
            Var::from_tensor(&Tensor::zeros(s.cout, DType::F32, &dev).expect("bias")).expect("var");
        // A hidden layer: the input is tracked, so backward computes all three gradients
        // (the first layer of a model, on images, skips the input gradient).
        let mut impls: Vec<(&str, bool)> = vec![("ours", false)];
        if with_candle {
            impls.push(("candle", true));
        }

        let mut g = c.benchmark_group(format!("{}/forward", s.name));
        g.sample_size(10).warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(flops as u64));
        for &(name, reference) in &impls {
            g.bench_function(BenchmarkId::from_parameter(name), |bench| {
                bench.iter(|| {
                    let xi = x.as_tensor().detach();
                    if reference {
                        conv2d_reference(&xi, &w, Some(&b), cfg, true).expect("candle conv")
                    } else {
                        conv2d_fast_relu(&xi, &w, Some(&b), cfg).expect("conv")
                    }
                })
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("{}/forward_backward", s.name));
        g.sample_size(10).warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(3));
        g.throughput(Throughput::Elements(3 * flops as u64));
        for &(name, reference) in &impls {
            g.bench_function(BenchmarkId::from_parameter(name), |bench| {
                bench.iter(|| {
                    let y = if reference {
                        conv2d_reference(&x, &w, Some(&b), cfg, true).expect("candle conv")
                    } else {
                        conv2d_fast_relu(&x, &w, Some(&b), cfg).expect("conv")
                    };
                    y.sum_all().and_then(|l| l.backward()).expect("backward")
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
