//! Rough forward / forward+backward timing of a preset on the CPU (a development aid; the
//! workspace's throughput example is the reference measurement).
//!
//! `cargo run --release -p landmark-ssl-models --example preset_timing -- seqmt-blocks 32 3`

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use landmark_ssl_models::{param_count, preset, LandmarkModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("seqmt-blocks", String::as_str);
    let batch: usize = args.get(2).map_or(Ok(32), |s| s.parse())?;
    let reps: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let cfg = preset(name)?;
    let vm = VarMap::new();
    let dev = Device::Cpu;
    let model = LandmarkModel::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let (h, w) = cfg.input_size();
    let x = Tensor::randn(0f32, 1.0, (batch, 1, h, w), &dev)?;
    println!("{name}: {} parameters", param_count(&vm));
    model.forward_t(&x, false)?;
    let t = Instant::now();
    for _ in 0..reps {
        model.forward_t(&x, false)?;
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    println!("forward: {:.1} images/s", batch as f64 / dt);
    let t = Instant::now();
    for _ in 0..reps {
        let out = model.forward_t(&x, true)?;
        let mut loss = out.landmarks.sqr()?.mean_all()?;
        for a in out.attributes.values() {
            loss = (loss + a.sqr()?.mean_all()?)?;
        }
        loss.backward()?;
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    println!("forward+backward: {:.1} images/s", batch as f64 / dt);
    Ok(())
}
