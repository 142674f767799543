//! Timing probe of the fast convolution on the presets' layer shapes (ignored by default:
//! `cargo test --release -p landmark-ssl-ops --test conv_perf -- --ignored --nocapture`).
//! It asserts nothing about time; the criterion bench `benches/conv.rs` is the benchmark.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_ops::conv::{conv2d_fast_relu, conv2d_reference, Conv2dConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

#[test]
#[ignore]
fn probe() {
    let filter = std::env::var("CONV_PROBE").unwrap_or_default();
    let with_candle = std::env::var("CONV_PROBE_CANDLE").is_ok();
    // (name, batch, in, out, size, kernel)
    let shapes = [
        ("blocks-1-8", 32, 1, 8, 60, 9),
        ("blocks-8-8", 32, 8, 8, 60, 9),
        ("blocks-8-5-1x1", 32, 8, 5, 60, 1),
        ("multipie-64-64", 32, 64, 64, 64, 9),
        ("rcn-64-64", 32, 64, 64, 80, 3),
    ];
    for (name, b, ci, co, hw, k) in shapes {
        if !name.contains(&filter) {
            continue;
        }
        let reps = if ci >= 64 { 2 } else { 5 };
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, ci, hw, hw), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (co, ci, k, k), &dev).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::zeros(co, DType::F32, &dev).unwrap()).unwrap();
        let cfg = Conv2dConfig::same(k);
        let flops = 2.0 * (b * ci * co * k * k * hw * hw) as f64;
        let fwd = time(reps, || {
            conv2d_fast_relu(&x.as_tensor().detach(), &w, Some(&bias), cfg).unwrap();
        });
        let xi = x.as_tensor().detach();
        let fb_img = time(reps, || {
            let y = conv2d_fast_relu(&xi, &w, Some(&bias), cfg).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        let fb = time(reps, || {
            let y = conv2d_fast_relu(&x, &w, Some(&bias), cfg).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        });
        println!(
            "{name}: fwd {:.1} ms {:.1} GF/s | fwd+bwd(w) {:.1} ms {:.1} GF/s | fwd+bwd(w,x) {:.1} ms {:.1} GF/s",
            fwd * 1e3,
            flops / fwd / 1e9,
            fb_img * 1e3,
            2.0 * flops / fb_img / 1e9,
            fb * 1e3,
            3.0 * flops / fb / 1e9
        );
        if with_candle {
            let cf = time(2, || {
                conv2d_reference(&x.as_tensor().detach(), &w, Some(&bias), cfg, true).unwrap();
            });
            println!(
                "{name}: candle fwd {:.1} ms {:.1} GF/s",
                cf * 1e3,
                flops / cf / 1e9
            );
        }
    }
}
