//! Colour through the data pipeline: decoding to RGB, channel conversion, planar crops that
//! warp every channel alike, per-channel normalisation and pad values, colour batches.

use std::path::Path;
use std::sync::Arc;

use approx::assert_abs_diff_eq;
use candle_core::Device;
use landmark_ssl_data::*;
use rand::SeedableRng;

/// The three channel values of pixel (x, y) of the test image: distinct patterns, so a
/// channel swap or a shared plane shows.
fn rgb_at(x: u32, y: u32) -> [u8; 3] {
    [
        ((x * 9 + y * 2) % 256) as u8,
        ((x * 3 + y * 11 + 40) % 256) as u8,
        (((x * y) % 97) * 2 + 30) as u8,
    ]
}

fn rgb_image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(rgb_at(x, y)))
}

/// The test image as an in-memory [`Image`] of 3 channels.
fn rgb_memory(w: u32, h: u32) -> Image {
    Image::with_channels(w as usize, h as usize, 3, rgb_image(w, h).into_raw()).unwrap()
}

/// Channel `ch` of an interleaved image as a grey image.
fn channel(img: &Image, ch: usize) -> Image {
    let px: Vec<u8> = img
        .pixels
        .iter()
        .skip(ch)
        .step_by(img.channels)
        .copied()
        .collect();
    Image::new(img.width, img.height, px).unwrap()
}

fn meta(k: usize) -> DatasetMeta {
    DatasetMeta {
        name: "colour".into(),
        layout: Layout::Generic {
            n: k,
            flip: Some((0..k).rev().collect()),
        },
        classes: Default::default(),
        reals: Default::default(),
    }
}

fn sample(img: Image) -> Sample {
    let mut s = Sample::new(
        ImageSource::Memory(img),
        vec![[30.0, 25.0], [60.0, 30.0], [45.0, 55.0]],
    );
    s.bbox = Some([20.0, 15.0, 75.0, 65.0]);
    s
}

fn plane(p: &PreparedSample, ch: usize) -> &[f32] {
    let n = p.size * p.size;
    &p.image[ch * n..(ch + 1) * n]
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

#[test]
fn rgb_png_decodes_to_three_channels_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (37u32, 23u32);
    let path = dir.path().join("c.png");
    rgb_image(w, h).save(&path).unwrap();
    let img = Image::open_with_channels(&path, 3).unwrap();
    assert_eq!((img.width, img.height, img.channels), (37, 23, 3));
    assert_eq!(img.pixels.len(), 37 * 23 * 3);
    for (x, y) in [(0, 0), (36, 0), (5, 7), (36, 22), (20, 11)] {
        let i = ((y * w + x) * 3) as usize;
        assert_eq!(&img.pixels[i..i + 3], &rgb_at(x, y), "pixel ({x}, {y})");
    }
    // Planar floats: channel planes of value / 255.
    let planar = img.to_f32_planar();
    let n = (w * h) as usize;
    assert_eq!(planar.len(), 3 * n);
    let (x, y) = (11u32, 13u32);
    for ch in 0..3 {
        assert_eq!(
            planar[ch * n + (y * w + x) as usize],
            rgb_at(x, y)[ch] as f32 / 255.0
        );
    }
    // RGBA: alpha dropped. 16-bit: rounded to 8 bits.
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        let [r, g, b] = rgb_at(x, y);
        image::Rgba([r, g, b, (x * 5) as u8])
    });
    rgba.save(dir.path().join("a.png")).unwrap();
    assert_eq!(
        Image::open_with_channels(&dir.path().join("a.png"), 3).unwrap(),
        img
    );
    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(w, h, |x, y| {
        let [r, g, b] = rgb_at(x, y);
        image::Rgb([r as u16 * 257, g as u16 * 257, b as u16 * 257])
    });
    deep.save(dir.path().join("d.png")).unwrap();
    assert_eq!(
        Image::open_with_channels(&dir.path().join("d.png"), 3).unwrap(),
        img
    );
    // A colour JPEG decodes to 3 channels near its values (lossy).
    rgb_image(w, h).save(dir.path().join("c.jpg")).unwrap();
    let jpg = Image::open_with_channels(&dir.path().join("c.jpg"), 3).unwrap();
    assert_eq!((jpg.width, jpg.height, jpg.channels), (37, 23, 3));
    let err: f64 = jpg
        .pixels
        .iter()
        .zip(img.pixels.iter())
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / img.pixels.len() as f64;
    assert!(err < 12.0, "mean JPEG error {err}");
    // Grey decoding is unchanged, and equals the RGB image turned grey.
    let grey = Image::open(&path).unwrap();
    assert_eq!((grey.channels, grey.pixels.len()), (1, 37 * 23));
    assert_eq!(grey, Image::open_with_channels(&path, 1).unwrap());
    assert_eq!(img.to_channels(1).unwrap(), grey);
    let expected = image::open(&path).unwrap().to_luma8().into_raw();
    assert_eq!(&grey.pixels[..], &expected[..]);
}

#[test]
fn grey_files_decode_to_three_equal_channels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.png");
    image::GrayImage::from_fn(19, 17, |x, y| image::Luma([((x * 13 + y * 7) % 256) as u8]))
        .save(&path)
        .unwrap();
    let grey = Image::open(&path).unwrap();
    let rgb = Image::open_with_channels(&path, 3).unwrap();
    assert_eq!(rgb.channels, 3);
    for (i, px) in rgb.pixels.chunks(3).enumerate() {
        assert_eq!(px, [grey.pixels[i]; 3]);
    }
    assert_eq!(grey.to_channels(3).unwrap(), rgb);
    assert_eq!(rgb.to_channels(1).unwrap(), grey);
}

#[test]
fn channel_counts_are_checked() {
    assert!(Image::with_channels(2, 2, 3, vec![0; 12]).is_ok());
    assert!(matches!(
        Image::with_channels(2, 2, 3, vec![0; 4]),
        Err(Error::InvalidArgument { name: "pixels", .. })
    ));
    assert!(matches!(
        Image::with_channels(2, 2, 2, vec![0; 8]),
        Err(Error::InvalidArgument {
            name: "channels",
            ..
        })
    ));
    assert!(Image::new(2, 2, vec![0; 4])
        .unwrap()
        .to_channels(4)
        .is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.png");
    rgb_image(8, 8).save(&path).unwrap();
    assert!(Image::open_with_channels(&path, 4).is_err());
    // The size limits hold for colour decoding as for grey.
    let tight = Limits {
        max_image_pixels: 63,
        ..Limits::default()
    };
    assert!(matches!(
        Image::open_with_limits_channels(&path, &tight, 3),
        Err(Error::Limit {
            setting: "max_image_pixels",
            ..
        })
    ));
    // A loader with a channel count other than 1 or 3 is refused.
    let d = Arc::new(shapes::generate(4, 0).unwrap());
    let cfg = LoaderConfig::new(
        2,
        Preprocess {
            channels: 2,
            ..Preprocess::whole(60)
        },
        0,
    );
    assert!(matches!(
        BatchLoader::new(d, cfg),
        Err(Error::InvalidArgument {
            name: "preprocess.channels",
            ..
        })
    ));
}

#[test]
fn identity_colour_crop_has_the_planar_values() {
    // A whole-image crop of a square image at its own size is the identity map.
    let s = 48u32;
    let img = rgb_memory(s, s);
    let smp = Sample::new(ImageSource::Memory(img.clone()), vec![[10.0, 10.0]]);
    let pre = Preprocess {
        normalize: false,
        channels: 3,
        ..Preprocess::whole(s as usize)
    };
    let p = prepare(&smp, 0, &meta(1), &pre, &Jitter::none(), None).unwrap();
    assert_eq!((p.channels, p.image.len()), (3, 3 * 48 * 48));
    assert_eq!(p.pad_values, vec![0.0; 3]);
    for ch in 0..3 {
        for (x, y) in [(0u32, 0u32), (47, 0), (3, 29), (47, 47), (24, 9)] {
            let got = plane(&p, ch)[(y * s + x) as usize];
            let want = rgb_at(x, y)[ch] as f32 / 255.0;
            assert_abs_diff_eq!(got, want, epsilon = 1e-6);
        }
    }
}

#[test]
fn colour_crops_are_per_channel_grey_crops() {
    // Every channel goes through the same crop, jitter, downscaling, flip and normalisation
    // as a grey image holding that channel would.
    let img = rgb_memory(100, 80);
    let m = meta(3);
    let pre3 = Preprocess {
        channels: 3,
        ..Preprocess::object(24)
    };
    let aug = Augment {
        flip: true,
        ..Augment::paper(25.0)
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for _ in 0..6 {
        let j = Jitter::draw(&aug, true, &mut rng);
        for normalize in [false, true] {
            let pre3 = Preprocess { normalize, ..pre3 };
            let pre1 = Preprocess {
                channels: 1,
                ..pre3
            };
            let p = prepare(&sample(img.clone()), 0, &m, &pre3, &j, None).unwrap();
            assert_eq!(p.channels, 3);
            for ch in 0..3 {
                let g = prepare(&sample(channel(&img, ch)), 0, &m, &pre1, &j, None).unwrap();
                assert_eq!(plane(&p, ch), &g.image[..], "channel {ch}");
                assert_eq!(p.pad_values[ch], g.pad_values[0]);
                assert_eq!((&p.landmarks, &p.visible), (&g.landmarks, &g.visible));
            }
        }
    }
}

#[test]
fn normalisation_is_per_channel() {
    let img = rgb_memory(100, 80);
    let m = meta(3);
    let j = Jitter {
        scale: 1.2,
        shift: [0.1, -0.05],
        angle: 0.3,
        flip: false,
    };
    let raw_pre = Preprocess {
        normalize: false,
        channels: 3,
        ..Preprocess::object(32)
    };
    let raw = prepare(&sample(img.clone()), 0, &m, &raw_pre, &j, None).unwrap();
    let norm = prepare(
        &sample(img),
        0,
        &m,
        &Preprocess {
            normalize: true,
            ..raw_pre
        },
        &j,
        None,
    )
    .unwrap();
    assert!(norm.normalized);
    let mut stds = Vec::new();
    for ch in 0..3 {
        // Independent statistics of the raw crop's channel.
        let (mean, std) = mean_std(plane(&raw, ch));
        stds.push(std);
        for (r, n) in plane(&raw, ch).iter().zip(plane(&norm, ch)) {
            assert_abs_diff_eq!(*n as f64, (*r as f64 - mean) / std, epsilon = 1e-5);
        }
        let (m2, s2) = mean_std(plane(&norm, ch));
        assert_abs_diff_eq!(m2, 0.0, epsilon = 1e-6);
        assert_abs_diff_eq!(s2, 1.0, epsilon = 1e-5);
        // Black in channel ch, normalised with channel ch's statistics.
        assert_abs_diff_eq!(norm.pad_values[ch] as f64, -mean / std, epsilon = 1e-5);
    }
    // The channels differ, so one shared normalisation would not do.
    assert!((stds[0] - stds[1]).abs() > 1e-3 && (stds[1] - stds[2]).abs() > 1e-3);
}

#[test]
fn grey_images_through_a_colour_preprocess_give_three_equal_planes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.png");
    let grey_img = image::GrayImage::from_fn(100, 80, |x, y| {
        image::Luma([((x * 7 + y * 3 + (x * y) % 13) % 256) as u8])
    });
    grey_img.save(&path).unwrap();
    let mem = Image::new(100, 80, grey_img.into_raw()).unwrap();
    let m = meta(3);
    let pre1 = Preprocess::object(32);
    let pre3 = Preprocess {
        channels: 3,
        ..pre1
    };
    let j = Jitter {
        scale: 0.9,
        shift: [-0.05, 0.08],
        angle: -0.4,
        flip: true,
    };
    let mut from_file = sample(mem.clone());
    from_file.image = ImageSource::File(path.clone());
    from_file.image_size = None;
    for s in [sample(mem), from_file] {
        let g = prepare(&s, 0, &m, &pre1, &j, None).unwrap();
        let c = prepare(&s, 0, &m, &pre3, &j, None).unwrap();
        assert_eq!((g.channels, c.channels), (1, 3));
        for ch in 0..3 {
            assert_eq!(plane(&c, ch), &g.image[..]);
        }
        assert_eq!(c.pad_values, vec![g.pad_values[0]; 3]);
        assert_eq!(c.landmarks, g.landmarks);
    }
    // Generated data stay grey, and give three equal planes (occlusion included) in a
    // colour loader.
    let d = Arc::new(blocks::generate(6, 2).unwrap());
    assert!(d.samples.iter().all(|s| match &s.image {
        ImageSource::Memory(g) => g.channels == 1,
        ImageSource::File(_) => false,
    }));
    let mut cfg = LoaderConfig::new(3, Preprocess::whole(60), 1);
    cfg.preprocess.channels = 3;
    cfg.augment = Some(Augment {
        occlusion: Some(Occlusion {
            probability: 1.0,
            max_boxes: 2,
            min_side: 0.2,
            max_side: 0.4,
        }),
        ..Augment::paper(20.0)
    });
    let loader = BatchLoader::new(d, cfg).unwrap();
    for p in loader.prepare_indices(&[0, 1, 2], 0).unwrap() {
        assert_eq!(plane(&p, 0), plane(&p, 1));
        assert_eq!(plane(&p, 0), plane(&p, 2));
    }
}

#[test]
fn colour_batches_have_channel_dimensions() {
    let samples: Vec<Sample> = (0..5)
        .map(|i| {
            let mut s = sample(rgb_memory(90 + i, 80));
            s.landmarks[0][0] += i as f32;
            s
        })
        .collect();
    let d = Arc::new(Dataset::new(samples, meta(3)).unwrap());
    let mut cfg = LoaderConfig::new(
        2,
        Preprocess {
            channels: 3,
            ..Preprocess::object(40)
        },
        3,
    );
    cfg.augment = Some(Augment {
        flip: true,
        ..Augment::paper(15.0)
    });
    let loader = BatchLoader::new(d.clone(), cfg).unwrap();
    let batches: Vec<Batch> = loader
        .epoch(0, &Device::Cpu)
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].images.dims(), &[2, 3, 40, 40]);
    assert_eq!(batches[0].pad_values.dims(), &[2, 3]);
    assert_eq!(batches[2].images.dims(), &[1, 3, 40, 40]);
    assert_eq!(batches[0].channels(), 3);
    // The batch holds each sample's planar crop and pad values.
    let b = &batches[0];
    let prepared = loader.prepare_indices(&b.indices, 0).unwrap();
    let imgs = b.images.get(1).unwrap().flatten_all().unwrap();
    assert_eq!(imgs.to_vec1::<f32>().unwrap(), prepared[1].image);
    assert_eq!(
        b.pad_values.to_vec2::<f32>().unwrap()[1],
        prepared[1].pad_values
    );
    // Grey batches keep their shapes, with one pad value per image.
    let grey = BatchLoader::new(d, LoaderConfig::new(2, Preprocess::object(40), 3)).unwrap();
    let g = grey.batch(&[0, 1], 0, &Device::Cpu).unwrap();
    assert_eq!(
        (g.images.dims(), g.pad_values.dims()),
        (&[2, 1, 40, 40][..], &[2, 1][..])
    );
}

#[test]
fn mixed_channel_counts_in_a_batch_are_an_error() {
    let img = rgb_memory(60, 60);
    let m = meta(3);
    let pre = Preprocess::whole(32);
    let grey = prepare(&sample(img.clone()), 4, &m, &pre, &Jitter::none(), None).unwrap();
    let colour = prepare(
        &sample(img),
        7,
        &m,
        &Preprocess { channels: 3, ..pre },
        &Jitter::none(),
        None,
    )
    .unwrap();
    assert_eq!((grey.channels, colour.channels), (1, 3));
    let e = Batch::from_samples(&[&grey, &colour], &Device::Cpu).unwrap_err();
    match &e {
        Error::BadSample { index: 7, message } => {
            assert!(
                message.contains("3 channels") && message.contains("has 1"),
                "{message}"
            )
        }
        other => panic!("unexpected error {other}"),
    }
    // A sample whose pad values do not match its channels is refused too.
    let mut odd = colour.clone();
    odd.pad_values.pop();
    assert!(Batch::from_samples(&[&colour, &odd], &Device::Cpu).is_err());
}

#[test]
fn cached_colour_crops_keep_their_colour() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.png");
    rgb_image(200, 160).save(&path).unwrap();
    let mut s = Sample::new(
        ImageSource::File(path.clone()),
        vec![[60.0, 50.0], [120.0, 60.0], [90.0, 110.0]],
    );
    s.bbox = Some([40.0, 30.0, 150.0, 130.0]);
    let d = Dataset::new(vec![s], meta(3)).unwrap();
    let crop = Preprocess::object(40).crop;
    let mut colour = d.clone();
    colour.cache_crops_with_channels(&crop, 2.0, 50, 3).unwrap();
    let mut grey = d.clone();
    grey.cache_crops(&crop, 2.0, 50).unwrap();
    let (ImageSource::Memory(c), ImageSource::Memory(g)) =
        (&colour.samples[0].image, &grey.samples[0].image)
    else {
        panic!("crops not cached");
    };
    assert_eq!((c.channels, g.channels), (3, 1));
    assert_eq!((c.width, c.height), (g.width, g.height));
    assert_eq!(colour.samples[0].landmarks, grey.samples[0].landmarks);
    // Each cached channel is the cached crop of that channel of the original.
    let orig = Image::open_with_channels(Path::new(&path), 3).unwrap();
    for ch in 0..3 {
        // The same sample over a grey file holding channel ch.
        let p = dir.path().join(format!("ch{ch}.png"));
        image::GrayImage::from_raw(200, 160, channel(&orig, ch).pixels.to_vec())
            .unwrap()
            .save(&p)
            .unwrap();
        let mut one = d.clone();
        one.samples[0].image = ImageSource::File(p);
        one.cache_crops(&crop, 2.0, 50).unwrap();
        let ImageSource::Memory(cg) = &one.samples[0].image else {
            panic!("crop not cached");
        };
        assert_eq!(&channel(c, ch).pixels[..], &cg.pixels[..], "channel {ch}");
    }
}
