//! ELT's penalties (squared, Huber), its per-term distances and its settings' parsing.

use approx::assert_relative_eq;
use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_losses::{Elt, EltConfig, EltPenalty};
use landmark_ssl_ops::Affine2;

/// ELT with identity transforms on one 16x16 image whose two points are (4, 4) and
/// (10, 10), located on the warped image at `offsets` from them: the terms' distances are
/// the offsets' lengths.
fn cost(penalty: EltPenalty, offsets: &Var) -> (Tensor, Vec<f32>) {
    let dev = Device::Cpu;
    let images = Tensor::zeros((1, 1, 16, 16), DType::F32, &dev).unwrap();
    let landmarks = Tensor::new(&[[[4f32, 4.0], [10.0, 10.0]]], &dev).unwrap();
    let mask = Tensor::ones(1, DType::F32, &dev).unwrap();
    let elt = Elt::new(EltConfig {
        penalty,
        ..Default::default()
    })
    .unwrap();
    let locate = |_: &Tensor| -> candle_core::Result<Tensor> {
        landmarks.broadcast_add(&offsets.as_tensor().unsqueeze(0)?)
    };
    let out = elt
        .loss_with(locate, &images, &landmarks, &mask, &[Affine2::identity()])
        .unwrap();
    (out.loss, out.sq_distances)
}

#[test]
fn huber_is_squared_up_to_delta_then_linear() {
    // Distances 1 (inside delta = 3) and 5 (beyond it).
    let offsets = Var::new(&[[0.6f32, 0.8], [3.0, 4.0]], &Device::Cpu).unwrap();
    let (sq, d2) = cost(EltPenalty::Squared, &offsets);
    assert_relative_eq!(d2[0], 1.0, epsilon = 1e-5);
    assert_relative_eq!(d2[1], 25.0, epsilon = 1e-4);
    assert_relative_eq!(sq.to_scalar::<f32>().unwrap(), 13.0, epsilon = 1e-4);
    let (hub, _) = cost(EltPenalty::Huber { delta: 3.0 }, &offsets);
    // (1 + (2 * 3 * 5 - 9)) / 2.
    assert_relative_eq!(hub.to_scalar::<f32>().unwrap(), 11.0, epsilon = 1e-4);
}

#[test]
fn huber_gradient_matches_finite_differences() {
    let base = [[0.6f32, 0.8], [3.0, 4.0]];
    let offsets = Var::new(&base, &Device::Cpu).unwrap();
    let (loss, _) = cost(EltPenalty::Huber { delta: 3.0 }, &offsets);
    let grads = loss.backward().unwrap();
    let g = grads
        .get(offsets.as_tensor())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let h = 1e-2f32;
    for i in 0..2 {
        for j in 0..2 {
            let at = |delta: f32| -> f32 {
                let mut v = base;
                v[i][j] += delta;
                let o = Var::new(&v, &Device::Cpu).unwrap();
                cost(EltPenalty::Huber { delta: 3.0 }, &o)
                    .0
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            assert_relative_eq!(g[i][j], fd, epsilon = 2e-3);
        }
    }
    // Beyond delta the gradient's length is delta (2 delta / 2 terms), whatever the error.
    let len = (g[1][0].powi(2) + g[1][1].powi(2)).sqrt();
    assert_relative_eq!(len, 3.0, epsilon = 1e-4);
}

#[test]
fn dropped_terms_have_no_distance() {
    let dev = Device::Cpu;
    let images = Tensor::zeros((1, 1, 16, 16), DType::F32, &dev).unwrap();
    // The second point is outside the image, so its term is dropped.
    let landmarks = Tensor::new(&[[[4f32, 4.0], [30.0, 10.0]]], &dev).unwrap();
    let mask = Tensor::ones(1, DType::F32, &dev).unwrap();
    let out = Elt::default()
        .loss_with(
            |x: &Tensor| Tensor::zeros((x.dim(0)?, 2, 2), DType::F32, x.device()),
            &images,
            &landmarks,
            &mask,
            &[Affine2::identity()],
        )
        .unwrap();
    assert_eq!(out.n_terms, 1);
    assert_relative_eq!(out.sq_distances[0], 32.0, epsilon = 1e-4);
    assert!(out.sq_distances[1].is_nan());
}

#[test]
fn settings_reject_unknown_fields_and_bad_deltas() {
    let typo = serde_json::from_str::<EltConfig>(r#"{"max_rotation": 90}"#);
    assert!(typo.unwrap_err().to_string().contains("max_rotation"));
    let cfg: EltConfig =
        serde_json::from_str(r#"{"penalty": {"kind": "huber", "delta": 2.5}}"#).unwrap();
    assert_eq!(cfg.penalty, EltPenalty::Huber { delta: 2.5 });
    for delta in [0.0, -1.0, f64::INFINITY] {
        let err = Elt::new(EltConfig {
            penalty: EltPenalty::Huber { delta },
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("delta"), "{err}");
    }
}
