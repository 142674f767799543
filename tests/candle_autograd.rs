//! The workspace builds on a patched candle-core (vendor/README.md): `backward` stores the
//! first gradient of a tensor as it is (negated where the rule subtracts) instead of adding
//! it to fresh zeros. These tests check the gradients that patch touches against their
//! closed forms in f64: a tensor whose only gradient is negated; a tensor reached by adding
//! and subtracting rules in turn; a gradient shared by two tensors, which later
//! accumulation into one of them must not change; and a first gradient cut from a larger
//! one, which must get a buffer of its own.

use candle_core::{DType, Device, Tensor, Var};

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{i}: {g} vs {w}");
    }
}

fn weights(seed: f64) -> Tensor {
    let v: Vec<f64> = (0..6).map(|i| (i as f64 * 0.7 + seed).sin()).collect();
    Tensor::from_vec(v, (2, 3), &Device::Cpu).unwrap()
}

#[test]
fn a_gradient_that_is_only_subtracted_is_negated() {
    let x0 = Tensor::from_vec(vec![0.3, -1.2, 2.0, 0.5, 0.9, -0.4], (2, 3), &Device::Cpu).unwrap();
    let x = Var::from_tensor(&x0).unwrap();
    let w = weights(0.1);
    // L = sum(w * (1 - x)): the only gradient of x comes through Sub's right-hand side.
    let one = Tensor::ones((2, 3), DType::F64, &Device::Cpu).unwrap();
    let loss = (&w * (one - x.as_tensor()).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss.backward().unwrap();
    let want: Vec<f64> = values(&w).iter().map(|w| -w).collect();
    close(&values(g.get(x.as_tensor()).unwrap()), &want);
}

#[test]
fn adding_and_subtracting_rules_accumulate_in_any_order() {
    let xs = vec![0.3, -1.2, 2.0, 0.5, 0.9, -0.4];
    let x0 = Tensor::from_vec(xs.clone(), (2, 3), &Device::Cpu).unwrap();
    let x = Var::from_tensor(&x0).unwrap();
    let xt = x.as_tensor();
    let w: Vec<Tensor> = (0..6).map(|i| weights(i as f64)).collect();
    let term = |w: &Tensor, t: Tensor| (w * t).unwrap().sum_all().unwrap();
    // Neg, Recip, Cos and Tanh subtract their gradients; Mul and Exp add them.
    let terms = [
        term(&w[0], xt.neg().unwrap()),
        term(&w[1], xt.recip().unwrap()),
        term(&w[2], xt.cos().unwrap()),
        term(&w[3], xt.tanh().unwrap()),
        term(&w[4], xt.clone()),
        term(&w[5], xt.exp().unwrap()),
    ];
    let mut loss = terms[0].clone();
    for t in &terms[1..] {
        loss = (loss + t).unwrap();
    }
    let g = loss.backward().unwrap();
    let wv: Vec<Vec<f64>> = w.iter().map(values).collect();
    let want: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            -wv[0][i] - wv[1][i] / (x * x) - wv[2][i] * x.sin()
                + wv[3][i] * (1.0 - x.tanh().powi(2))
                + wv[4][i]
                + wv[5][i] * x.exp()
        })
        .collect();
    close(&values(g.get(xt).unwrap()), &want);
}

#[test]
fn a_gradient_shared_by_two_tensors_stays_theirs() {
    // z = a + b hands the same gradient tensor to a and b; b also feeds b * 3, so its entry
    // is accumulated into afterwards. a's gradient must stay w.
    let a = Var::from_tensor(&weights(2.0)).unwrap();
    let b = Var::from_tensor(&weights(3.0)).unwrap();
    let w = weights(0.5);
    let z = (a.as_tensor() + b.as_tensor()).unwrap();
    let loss = ((&w * &z).unwrap().sum_all().unwrap()
        + (b.as_tensor() * 3.0).unwrap().sum_all().unwrap())
    .unwrap();
    let g = loss.backward().unwrap();
    let wv = values(&w);
    close(&values(g.get(a.as_tensor()).unwrap()), &wv);
    let want_b: Vec<f64> = wv.iter().map(|w| w + 3.0).collect();
    close(&values(g.get(b.as_tensor()).unwrap()), &want_b);
}

#[test]
fn a_first_gradient_cut_from_a_larger_one_gets_its_own_buffer() {
    // cat's backward narrows the output gradient; b's piece starts at an offset of it. The
    // stored gradient must start at the beginning of its own contiguous buffer, as stock
    // candle's zeros + add gave (custom ops may read storage from offset 0).
    let a = Var::from_tensor(&weights(1.0)).unwrap();
    let b = Var::from_tensor(&weights(2.0)).unwrap();
    let w = Tensor::from_vec(
        (0..12).map(|i| i as f64 * 0.5 - 2.0).collect::<Vec<_>>(),
        (4, 3),
        &Device::Cpu,
    )
    .unwrap();
    let c = Tensor::cat(&[a.as_tensor(), b.as_tensor()], 0).unwrap();
    let g = (&w * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = g.get(b.as_tensor()).unwrap();
    assert!(gb.is_contiguous());
    assert_eq!(gb.layout().start_offset(), 0);
    close(&values(gb), &values(&w.narrow(0, 2, 2).unwrap()));
    close(
        &values(g.get(a.as_tensor()).unwrap()),
        &values(&w.narrow(0, 0, 2).unwrap()),
    );
}
