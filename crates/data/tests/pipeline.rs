//! Splits, preparation (crop, jitter, flip), batches and the epoch iterator.

use std::collections::BTreeSet;
use std::sync::Arc;

use candle_core::{DType, Device};
use landmark_ssl_data::split::{balanced_order, random_split_indices, subject_split_indices};
use landmark_ssl_data::*;
use rand::SeedableRng;

#[test]
fn semi_supervised_is_balanced_nested_and_deterministic() {
    let mut d = blocks::generate(300, 1).unwrap();
    let s = semi_supervised(&mut d, 0.1, 0.5, 9).unwrap();
    assert_eq!(s.with_landmarks, 30);
    assert_eq!(s.with_attributes, 150);
    assert_eq!(s.landmarks_per_class, vec![2; 15]);
    assert_eq!(d.samples.iter().filter(|s| s.has_landmarks).count(), 30);
    assert!(d
        .samples
        .iter()
        .all(|s| !s.has_landmarks || s.has_attributes));
    let mut d2 = blocks::generate(300, 1).unwrap();
    semi_supervised(&mut d2, 0.1, 0.5, 9).unwrap();
    assert_eq!(d, d2);
    let mut d3 = blocks::generate(300, 1).unwrap();
    semi_supervised(&mut d3, 0.1, 0.5, 10).unwrap();
    assert_ne!(d, d3);
    // 1% of 300 = 3 samples, from 3 different classes.
    let s = semi_supervised(&mut d3, 0.01, 1.0, 2).unwrap();
    assert_eq!(s.landmarks_per_class.iter().filter(|&&c| c == 1).count(), 3);
    assert!(semi_supervised(&mut d3, 1.5, 1.0, 2).is_err());
    // The balanced order is a permutation.
    let o: BTreeSet<usize> = balanced_order(&d, Some("config"), 3).into_iter().collect();
    assert_eq!(o.len(), 300);
}

#[test]
fn subject_split_is_disjoint_and_complete() {
    let mut d = shapes::generate(120, 2).unwrap();
    for (i, s) in d.samples.iter_mut().enumerate() {
        s.subject = Some(format!("p{}", i % 12));
    }
    let parts = subject_split_indices(&d, &[0.6, 0.2, 0.2], 5).unwrap();
    let subj = |p: &Vec<usize>| -> BTreeSet<String> {
        p.iter()
            .map(|&i| d.samples[i].subject.clone().unwrap())
            .collect()
    };
    let s: Vec<_> = parts.iter().map(subj).collect();
    assert!(s[0].is_disjoint(&s[1]) && s[0].is_disjoint(&s[2]) && s[1].is_disjoint(&s[2]));
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 120);
    assert_eq!(parts[0].len(), 70); // 7 subjects of 10 (the middle of subject 7 crosses 72)
    let r = random_split_indices(100, &[0.9, 0.1], 1).unwrap();
    assert_eq!((r[0].len(), r[1].len()), (90, 10));
    assert!(random_split_indices(10, &[0.9, 0.2], 1).is_err());
}

/// An image with a bright 3x3 dot at each landmark.
fn dotted(w: usize, h: usize, pts: &[[f32; 2]]) -> Sample {
    let mut px = vec![0u8; w * h];
    for p in pts {
        let (x, y) = (p[0].round() as i64, p[1].round() as i64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                px[(y + dy) as usize * w + (x + dx) as usize] = 255;
            }
        }
    }
    Sample::new(
        ImageSource::Memory(GreyImage::new(w, h, px).unwrap()),
        pts.to_vec(),
    )
}

fn meta_with_flip(k: usize, perm: Vec<usize>) -> DatasetMeta {
    DatasetMeta {
        name: "dots".into(),
        layout: Layout::Generic {
            n: k,
            flip: Some(perm),
        },
        classes: Default::default(),
        reals: Default::default(),
    }
}

#[test]
fn augmented_dots_follow_their_landmarks() {
    let pts = vec![
        [75.0, 55.0],
        [125.0, 58.0],
        [100.0, 80.0],
        [80.0, 105.0],
        [122.0, 104.0],
    ];
    let mut s = dotted(200, 160, &pts);
    s.bbox = Some([50.0, 30.0, 150.0, 130.0]);
    let meta = meta_with_flip(5, vec![1, 0, 2, 4, 3]);
    let crop = CropMode::Object {
        box_scale: 1.5,
        landmark_scale: 1.0,
    };
    let pre = Preprocess {
        normalize: false,
        crop,
        ..Preprocess::object(64)
    };
    let aug = Augment {
        flip: true,
        ..Augment::paper(30.0)
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for _ in 0..20 {
        let j = Jitter::draw(&aug, true, &mut rng);
        let p = prepare(&s, 0, &meta, &pre, &j, None).unwrap();
        assert_eq!(p.image.len(), 64 * 64);
        for (k, q) in p.landmarks.iter().enumerate() {
            assert!(p.visible[k]);
            // Brightness-weighted centroid in a 7x7 window around the landmark.
            let (cx, cy) = (q[0].round() as i64, q[1].round() as i64);
            let (mut sw, mut sx, mut sy) = (0.0f32, 0.0f32, 0.0f32);
            for y in cy - 3..=cy + 3 {
                for x in cx - 3..=cx + 3 {
                    if (0..64).contains(&x) && (0..64).contains(&y) {
                        let v = p.image[y as usize * 64 + x as usize];
                        sw += v;
                        sx += v * x as f32;
                        sy += v * y as f32;
                    }
                }
            }
            assert!(sw > 1.0, "no dot near landmark {k} ({j:?})");
            let (mx, my) = (sx / sw, sy / sw);
            assert!(
                (mx - q[0]).abs() < 0.6 && (my - q[1]).abs() < 0.6,
                "dot at ({mx}, {my}), landmark {q:?}"
            );
        }
    }
}

#[test]
fn flip_permutes_mirrored_landmarks() {
    let pts = vec![
        [60.0, 40.0],
        [140.0, 45.0],
        [100.0, 90.0],
        [70.0, 120.0],
        [130.0, 118.0],
    ];
    let s = dotted(200, 160, &pts);
    let perm = vec![1, 0, 2, 4, 3];
    let meta = meta_with_flip(5, perm.clone());
    let pre = Preprocess::object(64);
    let j = Jitter {
        scale: 1.05,
        shift: [0.02, -0.03],
        angle: 0.2,
        flip: false,
    };
    let a = prepare(&s, 0, &meta, &pre, &j, None).unwrap();
    let b = prepare(&s, 0, &meta, &pre, &Jitter { flip: true, ..j }, None).unwrap();
    for (q, &src) in b.landmarks.iter().zip(&perm) {
        approx::assert_abs_diff_eq!(q[0], 63.0 - a.landmarks[src][0], epsilon = 1e-3);
        approx::assert_abs_diff_eq!(q[1], a.landmarks[src][1], epsilon = 1e-3);
    }
    // Images are mirror images.
    for y in 0..64 {
        for x in 0..64 {
            approx::assert_abs_diff_eq!(
                b.image[y * 64 + x],
                a.image[y * 64 + 63 - x],
                epsilon = 1e-4
            );
        }
    }
    // Normalised crop: zero mean, unit std.
    let n = a.image.len() as f32;
    let mean = a.image.iter().sum::<f32>() / n;
    let var = a.image.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3);
}

#[test]
fn crop_pads_with_zeros_and_masks_points_outside() {
    // Box near the corner: part of the crop leaves the image.
    let pts = vec![[2.0, 2.0], [30.0, 30.0]];
    let mut s = dotted(40, 40, &pts);
    s.bbox = Some([-20.0, -20.0, 20.0, 20.0]);
    let meta = meta_with_flip(2, vec![0, 1]);
    let pre = Preprocess {
        normalize: false,
        ..Preprocess::object(40)
    };
    let p = prepare(&s, 0, &meta, &pre, &Jitter::none(), None).unwrap();
    // The box edge -20 lands on -0.5: crop = original + 19.5; the top-left quarter is padding.
    assert!(p.image[..19].iter().all(|&v| v == 0.0));
    approx::assert_abs_diff_eq!(p.landmarks[0][0], 21.5, epsilon = 1e-4);
    assert!(p.visible[0]);
    assert!(
        !p.visible[1],
        "point (50, 50) in crop pixels is outside the crop"
    );
}

#[test]
fn strong_downscale_is_area_averaged() {
    // 1-px checkerboard, 640 px -> 64 px: bilinear alone would alias; area-averaging gives 0.5.
    let w = 640;
    let px: Vec<u8> = (0..w * w)
        .map(|i| if (i % w + i / w) % 2 == 0 { 255 } else { 0 })
        .collect();
    let s = Sample::new(
        ImageSource::Memory(GreyImage::new(w, w, px).unwrap()),
        vec![[320.0, 320.0]],
    );
    let meta = meta_with_flip(1, vec![0]);
    let pre = Preprocess {
        normalize: false,
        ..Preprocess::whole(64)
    };
    let p = prepare(&s, 0, &meta, &pre, &Jitter::none(), None).unwrap();
    let inner: Vec<f32> = (2..62)
        .flat_map(|y| (2..62).map(move |x| (x, y)))
        .map(|(x, y)| p.image[y * 64 + x])
        .collect();
    assert!(
        inner.iter().all(|&v| (v - 0.5).abs() < 0.05),
        "{:?}",
        &inner[..8]
    );
    approx::assert_abs_diff_eq!(p.landmarks[0][0], 31.55, epsilon = 1e-4); // (320 + 0.5) / 10 - 0.5
}

#[test]
fn loader_covers_each_sample_once_and_is_deterministic() {
    let mut d = blocks::generate(45, 3).unwrap();
    semi_supervised(&mut d, 0.2, 0.6, 1).unwrap();
    let d = Arc::new(d);
    let cfg = LoaderConfig::new(8, Preprocess::whole(60), 42);
    let loader = BatchLoader::new(d.clone(), cfg).unwrap();
    assert_eq!(loader.num_batches(), 6);
    let dev = Device::Cpu;
    let mut seen = Vec::new();
    let mut n_lab = 0.0;
    for b in loader.epoch(0, &dev) {
        let b = b.unwrap();
        let bs = b.len();
        assert_eq!(b.images.dims(), &[bs, 1, 60, 60]);
        assert_eq!(b.landmarks.dims(), &[bs, 5, 2]);
        assert_eq!(b.landmark_mask.dims(), &[bs, 5]);
        let (labels, mask) = &b.classes["config"];
        assert_eq!(labels.dtype(), DType::U32);
        let labels = labels.to_vec1::<u32>().unwrap();
        let mask = mask.to_vec1::<f32>().unwrap();
        for (j, &i) in b.indices.iter().enumerate() {
            let s = &d.samples[i];
            assert_eq!(mask[j], if s.has_attributes { 1.0 } else { 0.0 });
            if s.has_attributes {
                assert_eq!(labels[j] as usize, s.classes["config"]);
            }
        }
        let has = b.has_landmarks.to_vec1::<f32>().unwrap();
        let lm = b.landmark_mask.to_vec2::<f32>().unwrap();
        for j in 0..bs {
            assert!(lm[j].iter().all(|&m| m == has[j]));
        }
        // Whole-image crop of a 60x60 image at 60: landmarks unchanged.
        let pts = b.landmarks.to_vec3::<f32>().unwrap();
        let s0 = &d.samples[b.indices[0]];
        approx::assert_abs_diff_eq!(pts[0][2][0], s0.landmarks[2][0], epsilon = 1e-4);
        n_lab += has.iter().sum::<f32>();
        seen.extend(b.indices);
    }
    assert_eq!(n_lab, 9.0);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..45).collect::<Vec<_>>());
    let again: Vec<usize> = loader
        .epoch(0, &dev)
        .flat_map(|b| b.unwrap().indices)
        .collect();
    assert_eq!(again, seen);
    let other: Vec<usize> = loader
        .epoch(1, &dev)
        .flat_map(|b| b.unwrap().indices)
        .collect();
    assert_ne!(other, seen);
    // Dropping an epoch early does not hang.
    let mut it = loader.epoch(2, &dev);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn loader_jitter_is_deterministic_and_reports_bad_images() {
    let d = Arc::new(shapes::generate(10, 3).unwrap());
    let mut cfg = LoaderConfig::new(4, Preprocess::whole(64), 1);
    cfg.augment = Some(Augment::paper(20.0));
    cfg.drop_last = true;
    let loader = BatchLoader::new(d, cfg.clone()).unwrap();
    assert_eq!(loader.num_batches(), 2);
    let a = loader.batch(&[1, 2], 5, &Device::Cpu).unwrap();
    let b = loader.batch(&[2, 1], 5, &Device::Cpu).unwrap();
    let ib = b.images.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    let a2 = a.images.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(a2[0], ib[1], "jitter depends on (seed, epoch, index) only");
    // A missing image file gives a typed error through the iterator.
    let mut s = Sample::new(
        ImageSource::File("/nonexistent/x.png".into()),
        vec![[1.0, 1.0]],
    );
    s.image_size = Some((10, 10));
    let meta = DatasetMeta {
        name: "bad".into(),
        layout: Layout::Generic { n: 1, flip: None },
        classes: Default::default(),
        reals: Default::default(),
    };
    let d = Arc::new(Dataset::new(vec![s], meta).unwrap());
    let loader = BatchLoader::new(d, cfg).unwrap();
    let r: Vec<_> = loader.epoch(0, &Device::Cpu).collect();
    assert_eq!(
        r.len(),
        0,
        "drop_last with 1 sample and batch 4: no batches"
    );
    let loader = BatchLoader::new(
        loader.dataset().clone(),
        LoaderConfig::new(4, Preprocess::whole(8), 0),
    )
    .unwrap();
    let r: Vec<_> = loader.epoch(0, &Device::Cpu).collect();
    assert_eq!(r.len(), 1);
    let e = r.into_iter().next().unwrap().unwrap_err().to_string();
    assert!(e.contains("/nonexistent/x.png"), "{e}");
}

#[test]
fn cached_crops_match_direct_crops() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.png");
    let (w, h) = (900u32, 700u32);
    image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([(((x / 9) * 31 + (y / 7) * 17) % 256) as u8])
    })
    .save(&file)
    .unwrap();
    let mut s = Sample::new(
        ImageSource::File(file),
        vec![[400.0, 300.0], [520.0, 310.0], [460.0, 420.0]],
    );
    s.bbox = Some([380.0, 260.0, 560.0, 440.0]);
    let meta = meta_with_flip(3, vec![1, 0, 2]);
    let mut d = Dataset::new(vec![s], meta).unwrap();
    let pre = Preprocess {
        normalize: false,
        ..Preprocess::object(64)
    };
    let j = Jitter {
        scale: 0.95,
        shift: [0.05, -0.08],
        angle: 0.4,
        flip: true,
    };
    let direct = prepare(&d.samples[0], 0, &d.meta, &pre, &j, None).unwrap();
    d.cache_crops(&pre.crop, 2.0, 128).unwrap();
    let s = &d.samples[0];
    assert!(matches!(s.image, ImageSource::Memory(_)));
    assert_eq!(s.image_size, Some((256, 256)));
    for (a, b) in
        s.original_landmarks()
            .iter()
            .zip(&[[400.0f32, 300.0], [520.0, 310.0], [460.0, 420.0]])
    {
        assert!((a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3);
    }
    let cached = prepare(s, 0, &d.meta, &pre, &j, None).unwrap();
    for (a, b) in cached.landmarks.iter().zip(&direct.landmarks) {
        assert!(
            (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3,
            "{a:?} {b:?}"
        );
    }
    for (a, b) in cached.transform.m.iter().zip(&direct.transform.m) {
        assert!((a - b).abs() < 1e-6);
    }
    let mad = cached
        .image
        .iter()
        .zip(&direct.image)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / 4096.0;
    assert!(mad < 0.03, "mean abs difference {mad}");
}

#[test]
fn batch_reals_and_masks_and_occlusion() {
    let mut d = shapes::generate(3, 1).unwrap();
    d.meta.reals.insert("pose".into(), 3);
    d.samples[0]
        .reals
        .insert("pose".into(), vec![0.1, 0.2, 0.3]);
    d.samples[1]
        .reals
        .insert("pose".into(), vec![0.4, 0.5, 0.6]);
    d.samples[1].has_attributes = false;
    d.samples[2].classes.clear();
    d.samples[2].has_landmarks = false;
    d.validate().unwrap();
    let pre = Preprocess::whole(32);
    let prepared: Vec<PreparedSample> = (0..3)
        .map(|i| prepare(&d.samples[i], i, &d.meta, &pre, &Jitter::none(), None).unwrap())
        .collect();
    let refs: Vec<&PreparedSample> = prepared.iter().collect();
    let b = Batch::from_samples(&refs, &Device::Cpu).unwrap();
    let (vals, mask) = &b.reals["pose"];
    assert_eq!(vals.dims(), &[3, 3]);
    assert_eq!(mask.to_vec1::<f32>().unwrap(), vec![1.0, 0.0, 0.0]);
    assert_eq!(vals.to_vec2::<f32>().unwrap()[0], vec![0.1, 0.2, 0.3]);
    let (_, cmask) = &b.classes["closer"];
    assert_eq!(cmask.to_vec1::<f32>().unwrap(), vec![1.0, 0.0, 0.0]);
    assert_eq!(
        b.has_landmarks.to_vec1::<f32>().unwrap(),
        vec![1.0, 1.0, 0.0]
    );
    assert_eq!(b.landmark_mask.to_vec2::<f32>().unwrap()[2], vec![0.0, 0.0]);
    assert_eq!(b.visible.to_vec2::<f32>().unwrap()[2], vec![1.0, 1.0]);
    assert!(Batch::from_samples(&[], &Device::Cpu).is_err());
    // Occlusion: deterministic for a seed, and it changes the crop.
    let occ = Occlusion {
        probability: 1.0,
        max_boxes: 2,
        min_side: 0.2,
        max_side: 0.4,
    };
    let run = |seed: u64| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pre = Preprocess {
            normalize: false,
            ..pre
        };
        prepare(
            &d.samples[0],
            0,
            &d.meta,
            &pre,
            &Jitter::none(),
            Some((&occ, &mut rng)),
        )
        .unwrap()
        .image
    };
    let clean = prepare(
        &d.samples[0],
        0,
        &d.meta,
        &Preprocess {
            normalize: false,
            ..pre
        },
        &Jitter::none(),
        None,
    )
    .unwrap()
    .image;
    assert_eq!(run(3), run(3));
    let changed = run(3).iter().zip(&clean).filter(|(a, b)| a != b).count();
    assert!(changed >= 36, "{changed} pixels changed"); // at least one 6x6 box
}

#[test]
fn semi_supervised_by_named_attribute() {
    let mut d = blocks::generate(30, 2).unwrap();
    assert!(split::semi_supervised_by(&mut d, 0.5, 1.0, 0, Some("nope")).is_err());
    let s = split::semi_supervised_by(&mut d, 0.5, 1.0, 0, None).unwrap();
    assert_eq!((s.with_landmarks, s.balanced_by), (15, None));
    let s = split::semi_supervised_by(&mut d, 0.5, 1.0, 0, Some("config")).unwrap();
    assert_eq!(s.landmarks_per_class, vec![1; 15]);
}

#[test]
fn invalid_loader_settings_are_errors() {
    let d = Arc::new(shapes::generate(4, 0).unwrap());
    let mut cfg = LoaderConfig::new(0, Preprocess::whole(60), 0);
    assert!(matches!(
        BatchLoader::new(d.clone(), cfg.clone()),
        Err(Error::InvalidArgument {
            name: "batch_size",
            ..
        })
    ));
    cfg.batch_size = 2;
    cfg.augment = Some(Augment {
        rotation_deg: f32::NAN,
        ..Augment::paper(10.0)
    });
    assert!(BatchLoader::new(d.clone(), cfg.clone()).is_err());
    cfg.augment = Some(Augment {
        occlusion: Some(Occlusion {
            probability: 0.5,
            max_boxes: 1,
            min_side: 0.5,
            max_side: 0.2,
        }),
        ..Augment::paper(10.0)
    });
    assert!(BatchLoader::new(d.clone(), cfg.clone()).is_err());
    assert!(
        BatchLoader::with_indices(d, vec![7], LoaderConfig::new(2, Preprocess::whole(60), 0))
            .is_err()
    );
}
