use candle_core::{Device, Tensor, Var};
use landmark_ssl_ops::{soft_argmax, soft_argmax_composite};
use std::time::Instant;

fn time<F: FnMut()>(mut f: F, reps: usize) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps { let t = Instant::now(); f(); best = best.min(t.elapsed().as_secs_f64()); }
    best
}

#[test]
#[ignore]
fn perf() {
    {
        let maps = Tensor::randn(0f32, 1.0, (2, 8, 64, 64), &Device::Cpu).unwrap();
        let n = 2.0 * 8.0 * 4096.0;
        let f = time(|| { for _ in 0..50 { std::hint::black_box(soft_argmax(&maps, 1.0).unwrap()); } }, 10) / 50.0;
        println!("in-cache fwd: {:.3} ns/element (2 threads)", f / n * 1e9);
    }
    for &(b, k, h, w) in &[(32usize, 68usize, 64usize, 64usize), (32, 5, 60, 60), (64, 19, 80, 80)] {
        let maps = Tensor::randn(0f32, 1.0, (b, k, h, w), &Device::Cpu).unwrap();
        let raw: Vec<f32> = maps.flatten_all().unwrap().to_vec1().unwrap();
        let gb = (raw.len() * 4) as f64 / 1e9;
        let var = Var::from_tensor(&maps).unwrap();
        let vsum = |c: &[f32]| { let mut acc = [0f32; 16]; let mut it = c.chunks_exact(16); for x in &mut it { for l in 0..16 { acc[l] += x[l]; } } acc.iter().sum::<f32>() };
        let sum = time(|| { std::hint::black_box(vsum(&raw)); }, 10);
        let half = raw.len() / 2;
        let psum = time(|| { std::thread::scope(|s| { let a = s.spawn(|| vsum(&raw[..half])); let b = vsum(&raw[half..]); std::hint::black_box(a.join().unwrap() + b); }); }, 10);
        println!("vec-sum 1 thread {:.1} GB/s, 2 threads {:.1} GB/s", gb/sum, gb/psum);
        let f = time(|| { std::hint::black_box(soft_argmax(&maps, 1.0).unwrap()); }, 20);
        let fb = time(|| { let l = soft_argmax(var.as_tensor(), 1.0).unwrap().sum_all().unwrap(); std::hint::black_box(l.backward().unwrap()); }, 10);
        let c = time(|| { std::hint::black_box(soft_argmax_composite(&maps, 1.0).unwrap()); }, 3);
        let cb = time(|| { let l = soft_argmax_composite(var.as_tensor(), 1.0).unwrap().sum_all().unwrap(); std::hint::black_box(l.backward().unwrap()); }, 3);
        println!("{b}x{k}x{h}x{w}: serial-sum {:.1} GB/s | fused fwd {:.2} ms {:.1} GB/s | fused fb {:.2} ms | comp fwd {:.2} ms | comp fb {:.2} ms | fb ratio {:.1}", gb/sum, f*1e3, gb/f, fb*1e3, c*1e3, cb*1e3, cb/fb);
    }
}

#[test]
#[ignore]
fn fwd_only() {
    let maps = Tensor::randn(0f32, 1.0, (32, 68, 64, 64), &Device::Cpu).unwrap();
    let reps: usize = std::env::var("REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let f = if reps == 0 { 0.0 } else { time(|| { std::hint::black_box(soft_argmax(&maps, 1.0).unwrap()); }, reps) };
    println!("fwd {:.3} ms", f * 1e3);
}
