//! Heat maps, hard argmax, affine transforms, warps and coordinate conventions.

#[path = "common/maps.rs"]
mod maps;

use candle_core::{DType, Device, Tensor, Var};
use landmark_ssl_ops::coords::{self, CoordConvention};
use landmark_ssl_ops::{
    affine_from_tensor, affine_to_tensor, hard_argmax_subpixel, hard_argmax_subpixel_with,
    render_gaussian_heatmaps, soft_argmax, transform_points, warp_image_slice, warp_images,
    Affine2, SubpixelRefinement,
};
use maps::flat;

#[track_caller]
fn err(r: landmark_ssl_ops::Result<impl std::fmt::Debug>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn heatmaps_match_direct_formula_and_normalise() {
    let pts = [[2.3, 4.1], [-3.0, 1.0], [7.5, 5.5]];
    let (h, w, sigma) = (6, 9, 1.7);
    let v: Vec<f64> = pts.iter().flatten().cloned().collect();
    let p = Tensor::from_vec(v, (1, 3, 2), &Device::Cpu).unwrap();
    let m = render_gaussian_heatmaps(&p, h, w, sigma, false).unwrap();
    assert_eq!(m.dims(), &[1, 3, h, w]);
    let mv = flat(&m);
    for (k, q) in pts.iter().enumerate() {
        let mut sum = 0.0;
        for i in 0..h {
            for j in 0..w {
                let want = (-((j as f64 - q[0]).powi(2) + (i as f64 - q[1]).powi(2))
                    / (2.0 * sigma * sigma))
                    .exp();
                let got = mv[k * h * w + i * w + j];
                assert!((got - want).abs() < 1e-12);
                sum += want;
            }
        }
        let n = flat(&render_gaussian_heatmaps(&p, h, w, sigma, true).unwrap());
        for idx in 0..h * w {
            assert!((n[k * h * w + idx] - mv[k * h * w + idx] / sum).abs() < 1e-12);
        }
    }
    // Far outside: still finite and summing to 1 once normalised.
    let far = Tensor::new(&[[[1e4f32, -1e4]]], &Device::Cpu).unwrap();
    let n = render_gaussian_heatmaps(&far, 4, 4, 1.0, true).unwrap();
    let s = flat(&n);
    assert!(s.iter().all(|x| x.is_finite()));
    assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    // f32 works and the gradient with respect to the points flows.
    let var = Var::from_tensor(&Tensor::new(&[[[2.2f32, 1.4]]], &Device::Cpu).unwrap()).unwrap();
    let m = render_gaussian_heatmaps(var.as_tensor(), 5, 5, 1.0, false).unwrap();
    assert_eq!(m.dtype(), DType::F32);
    let g = m.sum_all().unwrap().backward().unwrap();
    assert!(flat(g.get(var.as_tensor()).unwrap())
        .iter()
        .any(|x| x.abs() > 1e-3));
}

#[test]
fn soft_argmax_of_rendered_heatmaps_recovers_points() {
    // beta * (log-Gaussian) is exactly a Gaussian: with the log of an unnormalised map the
    // soft-argmax recovers the sub-pixel point (up to sampling, tiny for sigma >= 1).
    let pts = [[10.3f32, 20.7], [31.25, 5.5]];
    let v: Vec<f32> = pts.iter().flatten().cloned().collect();
    let p = Tensor::from_vec(v, (1, 2, 2), &Device::Cpu).unwrap();
    let m = render_gaussian_heatmaps(&p, 32, 40, 1.5, false).unwrap();
    let logm = m.log().unwrap().maximum(-1e4f32).unwrap();
    let got = flat(&soft_argmax(&logm, 1.0).unwrap());
    for (k, q) in pts.iter().enumerate() {
        assert!((got[2 * k] - q[0] as f64).abs() < 1e-3, "{got:?}");
        assert!((got[2 * k + 1] - q[1] as f64).abs() < 1e-3, "{got:?}");
    }
}

#[test]
fn hard_argmax_quarter_pixel_and_parabolic() {
    let (h, w) = (16, 16);
    let q = [6.3f64, 9.8];
    let p = Tensor::new(&[[[q[0], q[1]]]], &Device::Cpu).unwrap();
    let m = render_gaussian_heatmaps(&p, h, w, 2.0, false).unwrap();
    let quarter = flat(&hard_argmax_subpixel(&m).unwrap());
    assert_eq!(quarter, vec![6.25, 9.75]);
    let none = flat(&hard_argmax_subpixel_with(&m, SubpixelRefinement::None).unwrap());
    assert_eq!(none, vec![6.0, 10.0]);
    // Parabolic on the log of a Gaussian is exact.
    let para =
        flat(&hard_argmax_subpixel_with(&m.log().unwrap(), SubpixelRefinement::Parabolic).unwrap());
    assert!(
        (para[0] - q[0]).abs() < 1e-9 && (para[1] - q[1]).abs() < 1e-9,
        "{para:?}"
    );
    // At a border: no shift; f32 in, f32 out.
    let mut v = vec![0f32; 9];
    v[0] = 1.0;
    v[1] = 0.5;
    let t = Tensor::from_vec(v, (1, 1, 3, 3), &Device::Cpu).unwrap();
    let r = hard_argmax_subpixel(&t).unwrap();
    assert_eq!(r.dtype(), DType::F32);
    assert_eq!(flat(&r), vec![0.0, 0.0]);
    let m = err(hard_argmax_subpixel(
        &Tensor::zeros((1, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    ));
    assert!(
        m.contains("hard_argmax_subpixel") && m.contains("maps") && m.contains("rank 4"),
        "{m}"
    );
    let m = err(hard_argmax_subpixel(
        &Tensor::zeros((1, 1, 0, 3), DType::F32, &Device::Cpu).unwrap(),
    ));
    assert!(m.contains("K, H and W > 0"), "{m}");
}

#[test]
fn affine2_algebra() {
    let a = Affine2::from_params(0.3, 1.4, 2.0, -3.0, (5.0, 7.0));
    let b = Affine2::from_params(-1.1, 0.8, -1.0, 0.5, (2.0, 1.0));
    let p = [3.5, -2.25];
    let ab = a.then(&b).apply_point(p);
    let seq = b.apply_point(a.apply_point(p));
    assert!((ab[0] - seq[0]).abs() < 1e-12 && (ab[1] - seq[1]).abs() < 1e-12);
    let back = a.inverse().unwrap().apply_point(a.apply_point(p));
    assert!((back[0] - p[0]).abs() < 1e-12 && (back[1] - p[1]).abs() < 1e-12);
    let id = a.then(&a.inverse().unwrap());
    for (x, y) in id.m.iter().zip(Affine2::identity().m) {
        assert!((x - y).abs() < 1e-12);
    }
    // Composition of the helpers equals from_params.
    let c = (5.0, 7.0);
    let manual = Affine2::rotation_about(0.3, c)
        .then(&Affine2::scaling_about(1.4, 1.4, c))
        .then(&Affine2::translation(2.0, -3.0));
    for (x, y) in manual.m.iter().zip(a.m) {
        assert!((x - y).abs() < 1e-12);
    }
    let m = err(Affine2::new([1.0, 2.0, 0.0, 2.0, 4.0, 0.0]).inverse());
    assert!(m.contains("determinant") && m.contains("singular"), "{m}");
    // crop_resize maps the box's pixel edges onto the output's.
    let t = Affine2::crop_resize(10.0, 20.0, 50.0, 25.0, 100, 100);
    assert_eq!(t.apply(9.5, 19.5), (-0.5, -0.5));
    let (x, y) = t.apply(59.5, 44.5);
    assert!((x - 99.5).abs() < 1e-12 && (y - 99.5).abs() < 1e-12);
}

#[test]
fn tensor_round_trip_and_transform_points() {
    let dev = Device::Cpu;
    let affs = vec![
        Affine2::from_params(0.2, 1.1, 1.0, 2.0, (4.0, 4.0)),
        Affine2::from_params(-0.7, 0.9, -3.0, 0.5, (1.0, 8.0)),
    ];
    let t = affine_to_tensor(&affs, &dev).unwrap();
    assert_eq!((t.dims(), t.dtype()), (&[2usize, 2, 3][..], DType::F32));
    let back = affine_from_tensor(&t).unwrap();
    for (a, b) in affs.iter().zip(&back) {
        assert!(a.m.iter().zip(b.m).all(|(x, y)| (x - y).abs() < 1e-5));
    }
    let pts = [
        [[1.0, 2.0], [3.5, -1.0], [0.0, 0.0]],
        [[4.0, 4.0], [2.0, 7.5], [9.0, 1.0]],
    ];
    let v: Vec<f64> = pts.iter().flatten().flatten().cloned().collect();
    let var = Var::from_tensor(&Tensor::from_vec(v, (2, 3, 2), &dev).unwrap()).unwrap();
    let out = transform_points(var.as_tensor(), &t).unwrap();
    assert_eq!(out.dtype(), DType::F64);
    let ov = flat(&out);
    for b in 0..2 {
        for k in 0..3 {
            let want = back[b].apply_point(pts[b][k]);
            assert!((ov[b * 6 + 2 * k] - want[0]).abs() < 1e-9);
            assert!((ov[b * 6 + 2 * k + 1] - want[1]).abs() < 1e-9);
        }
    }
    // d(sum of x')/d(x) = a, d(sum of x')/d(y) = b per batch item.
    let g = out
        .narrow(2, 0, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gv = flat(g.get(var.as_tensor()).unwrap());
    assert!((gv[0] - back[0].m[0]).abs() < 1e-12 && (gv[1] - back[0].m[1]).abs() < 1e-12);
    assert!((gv[6] - back[1].m[0]).abs() < 1e-12 && (gv[7] - back[1].m[1]).abs() < 1e-12);
    // A single (2, 3) matrix is shared by the batch.
    let one = affine_to_tensor(&affs[..1], &dev)
        .unwrap()
        .squeeze(0)
        .unwrap();
    assert_eq!(
        transform_points(var.as_tensor(), &one).unwrap().dims(),
        &[2, 3, 2]
    );
    // Errors.
    let m = err(transform_points(
        var.as_tensor(),
        &Tensor::zeros((3, 2, 3), DType::F32, &dev).unwrap(),
    ));
    assert!(
        m.contains("transform_points") && m.contains("mats") && m.contains("B = 2"),
        "{m}"
    );
    let m = err(transform_points(
        var.as_tensor(),
        &Tensor::zeros((2, 3, 3), DType::F32, &dev).unwrap(),
    ));
    assert!(m.contains("mats") && m.contains("(B, 2, 3)"), "{m}");
    let m = err(transform_points(
        &Tensor::zeros((2, 3), DType::F32, &dev).unwrap(),
        &t,
    ));
    assert!(m.contains("points") && m.contains("(B, K, 2)"), "{m}");
    let m = err(transform_points(
        &Tensor::zeros((2, 3, 2), DType::U32, &dev).unwrap(),
        &t,
    ));
    assert!(m.contains("points") && m.contains("dtype"), "{m}");
    let m = err(affine_from_tensor(
        &Tensor::zeros((2, 3, 2), DType::F32, &dev).unwrap(),
    ));
    assert!(
        m.contains("affine_from_tensor") && m.contains("mats"),
        "{m}"
    );
}

/// Independent bilinear sampling (zero outside), f64.
fn bilinear_ref(img: &[f64], h: usize, w: usize, x: f64, y: f64) -> f64 {
    let px = |i: i64, j: i64| {
        if i >= 0 && j >= 0 && (i as usize) < h && (j as usize) < w {
            img[i as usize * w + j as usize]
        } else {
            0.0
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (j, i) = (x0 as i64, y0 as i64);
    (1.0 - fy) * ((1.0 - fx) * px(i, j) + fx * px(i, j + 1))
        + fy * ((1.0 - fx) * px(i + 1, j) + fx * px(i + 1, j + 1))
}

#[test]
fn warp_matches_independent_bilinear() {
    let (b, c, h, w, oh, ow) = (2, 2, 9, 11, 7, 13);
    let src: Vec<f64> = (0..b * c * h * w)
        .map(|i| ((i * 7919) % 23) as f64 / 23.0)
        .collect();
    let affs = [
        Affine2::from_params(0.4, 1.3, 1.5, -0.5, (5.0, 4.0)),
        Affine2::from_params(-0.2, 0.7, -2.0, 1.0, (3.0, 3.0)),
    ];
    let img = Tensor::from_vec(src.clone(), (b, c, h, w), &Device::Cpu).unwrap();
    let mats = affine_to_tensor(&affs, &Device::Cpu).unwrap();
    let out = warp_images(&img, &mats, oh, ow).unwrap();
    assert_eq!((out.dims(), out.dtype()), (&[b, c, oh, ow][..], DType::F64));
    let ov = flat(&out);
    let back = affine_from_tensor(&mats).unwrap();
    let mut nonzero = 0;
    for bi in 0..b {
        let inv = back[bi].inverse().unwrap();
        for ci in 0..c {
            let plane = &src[(bi * c + ci) * h * w..(bi * c + ci + 1) * h * w];
            let plane32: Vec<f64> = plane.iter().map(|&v| v as f32 as f64).collect();
            for y in 0..oh {
                for x in 0..ow {
                    let (sx, sy) = inv.apply(x as f64, y as f64);
                    let want = bilinear_ref(&plane32, h, w, sx, sy);
                    let got = ov[((bi * c + ci) * oh + y) * ow + x];
                    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    nonzero += (want > 0.0) as usize;
                }
            }
            // The slice kernel gives the same.
            let p32: Vec<f32> = plane.iter().map(|&v| v as f32).collect();
            let s = warp_image_slice(&p32, 1, h, w, &back[bi], oh, ow);
            let o = &ov[(bi * c + ci) * oh * ow..(bi * c + ci + 1) * oh * ow];
            assert!(s.iter().zip(o).all(|(a, b)| (*a as f64 - b).abs() < 1e-6));
        }
    }
    assert!(nonzero > 50);
    // Identity is exact; a shared (2, 3) matrix broadcasts over the batch.
    let id = affine_to_tensor(&[Affine2::identity()], &Device::Cpu)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let same = warp_images(&img, &id, h, w).unwrap();
    assert!(flat(&same)
        .iter()
        .zip(&src)
        .all(|(a, b)| (a - (*b as f32 as f64)).abs() < 1e-7));
    // Singular matrices and bad shapes are named errors; the slice kernel gives zeros.
    let sing = affine_to_tensor(&[Affine2::new([0.0; 6]); 2], &Device::Cpu).unwrap();
    let m = err(warp_images(&img, &sing, 4, 4));
    assert!(
        m.contains("warp_images") && m.contains("mats") && m.contains("singular"),
        "{m}"
    );
    assert!(
        warp_image_slice(&[1.0; 4], 1, 2, 2, &Affine2::new([0.0; 6]), 2, 2)
            .iter()
            .all(|&v| v == 0.0)
    );
    let m = err(warp_images(&img, &mats, 0, 4));
    assert!(m.contains("out_h"), "{m}");
    let m = err(warp_images(
        &img.reshape((b * c, h, w)).unwrap(),
        &mats,
        4,
        4,
    ));
    assert!(m.contains("images") && m.contains("rank 4"), "{m}");
    let m = err(warp_images(
        &img,
        &Tensor::zeros((3, 2, 3), DType::F32, &Device::Cpu).unwrap(),
        4,
        4,
    ));
    assert!(m.contains("mats") && m.contains("B = 2"), "{m}");
    let m = err(warp_images(&img.to_dtype(DType::U8).unwrap(), &mats, 4, 4));
    assert!(m.contains("images") && m.contains("dtype"), "{m}");
    // A short slice does not panic.
    assert_eq!(
        warp_image_slice(&[1.0; 3], 1, 4, 4, &Affine2::identity(), 4, 4).len(),
        16
    );
}

/// The shared convention: warp a rendered Gaussian at p by T, locate it with soft-argmax,
/// and land on T(p).
#[test]
fn warp_then_locate_equals_locate_then_transform() {
    let (h, w) = (64, 64);
    let cases = [
        (
            [20.3, 30.6],
            Affine2::from_params(0.35, 1.15, 3.2, -2.7, (31.5, 31.5)),
        ),
        (
            [40.0, 25.25],
            Affine2::from_params(-0.5, 0.9, -4.0, 5.5, (30.0, 34.0)),
        ),
        ([31.7, 33.1], Affine2::translation(0.4, -0.3)),
    ];
    let v: Vec<f32> = cases
        .iter()
        .flat_map(|(p, _)| [p[0] as f32, p[1] as f32])
        .collect();
    let pts = Tensor::from_vec(v, (cases.len(), 1, 2), &Device::Cpu).unwrap();
    let maps = render_gaussian_heatmaps(&pts, h, w, 8.0, false).unwrap();
    let affs: Vec<Affine2> = cases.iter().map(|(_, a)| *a).collect();
    let mats = affine_to_tensor(&affs, &Device::Cpu).unwrap();
    let warped = warp_images(&maps, &mats, h, w).unwrap();
    // A large beta on a peak-1 map: softmax(beta * g) ~ a Gaussian of sigma / sqrt(beta).
    let located = flat(&soft_argmax(&warped, 40.0).unwrap());
    let moved = flat(&transform_points(&pts, &mats).unwrap());
    for (i, (p, a)) in cases.iter().enumerate() {
        let want = a.apply_point(*p);
        assert!((moved[2 * i] - want[0]).abs() < 1e-4 && (moved[2 * i + 1] - want[1]).abs() < 1e-4);
        let err =
            ((located[2 * i] - want[0]).powi(2) + (located[2 * i + 1] - want[1]).powi(2)).sqrt();
        eprintln!("warp-then-locate case {i}: error {err:.4} px");
        assert!(
            err < 0.05,
            "case {i}: located {:?}, want {want:?}, error {err}",
            &located[2 * i..2 * i + 2]
        );
    }
}

#[test]
fn coordinate_conventions() {
    use CoordConvention::*;
    let (h, w) = (5usize, 8usize);
    // Pixel centres: kornia puts the first and last at -1 and +1, dsnt at -1 + 1/W and 1 - 1/W.
    for (x, k, d) in [
        (0.0, -1.0, -1.0 + 1.0 / 8.0),
        (7.0, 1.0, 1.0 - 1.0 / 8.0),
        (3.5, 0.0, 0.0),
    ] {
        let kk = coords::convert_point([x, 0.0], Pixel, AlignCorners, h, w).unwrap();
        let dd = coords::convert_point([x, 0.0], Pixel, Dsnt, h, w).unwrap();
        assert!((kk[0] - k).abs() < 1e-12 && (dd[0] - d).abs() < 1e-12);
        assert!((kk[1] + 1.0).abs() < 1e-12 && (dd[1] - (-1.0 + 1.0 / 5.0)).abs() < 1e-12);
    }
    // Round trips between every pair, on tensors and on points, agree.
    let p = [2.7, 3.1];
    let t = Tensor::new(&[[p[0], p[1]], [0.0, 4.0]], &Device::Cpu).unwrap();
    for from in [Pixel, AlignCorners, Dsnt] {
        for to in [Pixel, AlignCorners, Dsnt] {
            let q = coords::convert_point(p, from, to, h, w).unwrap();
            let r = coords::convert_point(q, to, from, h, w).unwrap();
            assert!((r[0] - p[0]).abs() < 1e-12 && (r[1] - p[1]).abs() < 1e-12);
            let tq = flat(&coords::convert_points(&t, from, to, h, w).unwrap());
            assert!((tq[0] - q[0]).abs() < 1e-12 && (tq[1] - q[1]).abs() < 1e-12);
        }
    }
    let tk = coords::pixel_to_kornia(&t, h, w).unwrap();
    let tp = coords::kornia_to_pixel(&tk, h, w).unwrap();
    assert!(flat(&tp)
        .iter()
        .zip(flat(&t))
        .all(|(a, b)| (a - b).abs() < 1e-12));
    let td = coords::pixel_to_dsnt(&t.to_dtype(DType::F32).unwrap(), h, w).unwrap();
    assert_eq!(td.dtype(), DType::F32);
    let tp = coords::dsnt_to_pixel(&td, h, w).unwrap();
    assert!(flat(&tp)
        .iter()
        .zip(flat(&t))
        .all(|(a, b)| (a - b).abs() < 1e-5));
    let a = coords::pixel_to_kornia_point(p, h, w).unwrap();
    assert!(coords::kornia_to_pixel_point(a, h, w)
        .unwrap()
        .iter()
        .zip(p)
        .all(|(x, y)| (x - y).abs() < 1e-12));
    let d = coords::pixel_to_dsnt_point(p, h, w).unwrap();
    assert!(coords::dsnt_to_pixel_point(d, h, w)
        .unwrap()
        .iter()
        .zip(p)
        .all(|(x, y)| (x - y).abs() < 1e-12));
    // Errors name the argument.
    let m = err(coords::convert_point(p, Pixel, AlignCorners, 5, 1));
    assert!(m.contains("width") && m.contains("at least 2"), "{m}");
    let m = err(coords::convert_point(p, Pixel, Dsnt, 0, 4));
    assert!(m.contains("height"), "{m}");
    let m = err(coords::pixel_to_kornia(
        &Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
        h,
        w,
    ));
    assert!(m.contains("points") && m.contains("(..., 2)"), "{m}");
}

#[test]
fn heatmap_bad_arguments() {
    let dev = Device::Cpu;
    let p = Tensor::zeros((1, 2, 2), DType::F32, &dev).unwrap();
    let m = err(render_gaussian_heatmaps(
        &Tensor::zeros((2, 2), DType::F32, &dev).unwrap(),
        4,
        4,
        1.0,
        false,
    ));
    assert!(
        m.contains("render_gaussian_heatmaps") && m.contains("points") && m.contains("(B, K, 2)"),
        "{m}"
    );
    let m = err(render_gaussian_heatmaps(&p, 0, 4, 1.0, false));
    assert!(m.contains("height"), "{m}");
    let m = err(render_gaussian_heatmaps(&p, 4, 0, 1.0, false));
    assert!(m.contains("width"), "{m}");
    for s in [0.0, -1.0, f64::NAN] {
        let m = err(render_gaussian_heatmaps(&p, 4, 4, s, true));
        assert!(m.contains("sigma"), "{m}");
    }
    let m = err(render_gaussian_heatmaps(
        &p.to_dtype(DType::U32).unwrap(),
        4,
        4,
        1.0,
        true,
    ));
    assert!(m.contains("points") && m.contains("dtype"), "{m}");
}
