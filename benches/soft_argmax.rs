//! Soft-argmax: fused CPU kernel against the composite candle path, forward alone and
//! forward + backward, at the map shapes of the paper's models, in GB/s of maps read.
//! `read_bandwidth` sums the same bytes with all cores (rayon): the machine's memory read
//! bandwidth, the ceiling for the forward pass. `candle_grad_accumulate` is what stock
//! candle 0.11's autograd adds to every backward pass, whichever op produced the gradient:
//! a zero tensor plus the op's gradient. The workspace's patched candle-core
//! (vendor/README.md) no longer does it; the figure shows what that saves.
//!
//! It runs on the examples' allocator (jemalloc, see `examples/support/jemalloc.rs`);
//! `--features system-allocator` runs it on the system's.
//!
//! Run: `cargo bench --bench soft_argmax -- --warm-up-time 1 --measurement-time 3`.

#[path = "../examples/support/jemalloc.rs"]
mod jemalloc;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use landmark_ssl::ops::{soft_argmax, soft_argmax_composite};
use rayon::prelude::*;
use std::hint::black_box;

const SHAPES: [(usize, usize, usize, usize); 3] =
    [(32, 68, 64, 64), (32, 5, 60, 60), (64, 19, 80, 80)];
const BETA: f64 = 1.0;

/// A plain parallel sum over `v` on rayon's pool (the one the kernels use, already
/// started), 16 independent lanes per task: the machine's read bandwidth.
fn parallel_sum(v: &[f32]) -> f32 {
    v.par_chunks(1 << 14)
        .map(|c| {
            let mut acc = [0f32; 16];
            let mut it = c.chunks_exact(16);
            for x in &mut it {
                for l in 0..16 {
                    acc[l] += x[l];
                }
            }
            acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    for &(b, k, h, w) in &SHAPES {
        let maps = Tensor::randn(0f32, 1.0, (b, k, h, w), &dev).unwrap();
        let raw: Vec<f32> = maps.flatten_all().unwrap().to_vec1().unwrap();
        let weights = Tensor::randn(0f32, 1.0, (b, k, 2), &dev).unwrap();
        let var = Var::from_tensor(&maps).unwrap();
        let bytes = (b * k * h * w * DType::F32.size_in_bytes()) as u64;
        let id = format!("{b}x{k}x{h}x{w}");
        let mut g = c.benchmark_group("soft_argmax");
        g.sample_size(10);
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(BenchmarkId::new("read_bandwidth", &id), |bch| {
            bch.iter(|| black_box(parallel_sum(black_box(&raw))))
        });
        g.bench_function(BenchmarkId::new("fused_fwd", &id), |bch| {
            bch.iter(|| black_box(soft_argmax(&maps, BETA).unwrap()))
        });
        g.bench_function(BenchmarkId::new("composite_fwd", &id), |bch| {
            bch.iter(|| black_box(soft_argmax_composite(&maps, BETA).unwrap()))
        });
        g.bench_function(BenchmarkId::new("fused_fwd_bwd", &id), |bch| {
            bch.iter(|| {
                let loss = (soft_argmax(var.as_tensor(), BETA).unwrap() * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                black_box(loss.backward().unwrap())
            })
        });
        // What stock candle 0.11's autograd adds for any op on these maps: it adds each
        // gradient to a fresh zero tensor of the maps' size (the patched one stores it).
        g.bench_function(BenchmarkId::new("candle_grad_accumulate", &id), |bch| {
            bch.iter(|| black_box(maps.zeros_like().unwrap().add(&maps).unwrap()))
        });
        g.bench_function(BenchmarkId::new("composite_fwd_bwd", &id), |bch| {
            bch.iter(|| {
                let loss = (soft_argmax_composite(var.as_tensor(), BETA).unwrap() * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap();
                black_box(loss.backward().unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
