//! Locate a Gaussian heat map's centre with soft-argmax.
//!
//! Renders a Gaussian at a known sub-pixel point, runs `soft_argmax` and
//! `soft_argmax_detailed` on it, prints the located point, the confidence, the spread and
//! the error, and exits with status 1 if the error exceeds 0.01 px.
//!
//! Run: `cargo run --release --example soft_argmax [-- --device cuda:0]`.

#[path = "support/jemalloc.rs"]
mod jemalloc;

use candle_core::Tensor;
use clap::Parser;
use landmark_ssl::ops::{render_gaussian_heatmaps, soft_argmax, soft_argmax_detailed};
use landmark_ssl::train::DeviceChoice;

#[derive(Parser)]
struct Args {
    /// Where to compute: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

fn main() -> anyhow::Result<()> {
    let device = Args::parse().device.open()?;
    let (h, w) = (64, 64);
    let truth = [23.37f32, 40.81];
    let sigma = 2.0;
    let beta = 1.0;
    // (1, 1, 2) points.
    let points = Tensor::new(&[[truth]], &device)?;
    // (1, 1, H, W) heat map with its peak (1) at the point.
    let heat = render_gaussian_heatmaps(&points, h, w, sigma, false)?;
    // Soft-argmax of beta * log(heat map): softmax gives back the (normalised) Gaussian,
    // whose mean is the rendered point.
    let logits = heat.log()?.maximum(-1e4f32)?;
    let located = soft_argmax(&logits, beta)?.to_vec3::<f32>()?[0][0].clone();
    let detailed = soft_argmax_detailed(&logits, beta)?;
    let confidence = detailed.confidence.to_vec2::<f32>()?[0][0];
    let spread = detailed.spread.to_vec3::<f32>()?[0][0].clone();
    let err = ((located[0] - truth[0]).powi(2) + (located[1] - truth[1]).powi(2)).sqrt();
    println!(
        "map {h}x{w}, Gaussian sigma {sigma} px at (x, y) = ({}, {})",
        truth[0], truth[1]
    );
    println!(
        "soft_argmax (beta {beta}): ({:.4}, {:.4})",
        located[0], located[1]
    );
    println!("confidence (peak probability): {confidence:.4}");
    println!(
        "spread (variance x, y): ({:.4}, {:.4}) px^2, expected about sigma^2 = {:.4}",
        spread[0],
        spread[1],
        sigma * sigma
    );
    println!("error: {err:.5} px");
    // Also with a raw (peak 1) heat map as the logits and a large beta: softmax(beta * g)
    // is then close to a Gaussian of sigma / sqrt(beta), which must stay wider than about
    // a pixel for the sub-pixel position to survive the sampling; hence a wider map here.
    let (wide_sigma, big_beta) = (6.0, 30.0);
    let wide = render_gaussian_heatmaps(&points, h, w, wide_sigma, false)?;
    let raw = soft_argmax(&wide, big_beta)?.to_vec3::<f32>()?[0][0].clone();
    let err_raw = ((raw[0] - truth[0]).powi(2) + (raw[1] - truth[1]).powi(2)).sqrt();
    println!(
        "soft_argmax of a raw map (sigma {wide_sigma}), beta {big_beta}: ({:.4}, {:.4}), error {err_raw:.5} px",
        raw[0], raw[1]
    );
    if err > 0.01 || err_raw > 0.05 {
        eprintln!("error too large");
        std::process::exit(1);
    }
    Ok(())
}
