//! Hostile and broken images: decompression bombs, truncated files, the limits on image
//! size, and decoding that matches the `image` crate's grey conversion.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use landmark_ssl_data::formats::generic::{load_csv, GenericOptions};
use landmark_ssl_data::*;

fn write_png(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(path)
        .unwrap();
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A small, otherwise valid PNG whose header declares `w` x `h` pixels (the IHDR chunk is
/// rewritten with a correct CRC, so only the declared size is hostile).
fn png_declaring(path: &Path, w: u32, h: u32) {
    let mut buf = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(4, 4)
        .write_to(&mut buf, image::ImageFormat::Png)
        .unwrap();
    let mut b = buf.into_inner();
    assert_eq!(&b[12..16], b"IHDR");
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    assert!(b.len() < 1024);
    std::fs::write(path, b).unwrap();
}

/// A real `w` x `h` colour JPEG.
fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
    });
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
    buf.into_inner()
}

fn skip() -> LoadOptions {
    LoadOptions {
        skip_bad: true,
        ..LoadOptions::default()
    }
}

/// A folder with a good image `a.png` (40x30), a bomb `bomb.png` declaring 100000^2, a
/// 400x300 JPEG `whole.jpg` and the same cut to 10% of its bytes, `cut.jpg` (its headers
/// are whole, its scan data is not).
fn image_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_path_buf();
    write_png(&d.join("a.png"), 40, 30);
    png_declaring(&d.join("bomb.png"), 100_000, 100_000);
    let j = jpeg_bytes(400, 300);
    assert!(j.len() / 10 > 2000, "{}", j.len());
    std::fs::write(d.join("cut.jpg"), &j[..j.len() / 10]).unwrap();
    std::fs::write(d.join("whole.jpg"), &j).unwrap();
    (t, d)
}

#[test]
fn a_decompression_bomb_is_rejected_from_its_header() {
    let (_t, d) = image_dir();
    let bomb = d.join("bomb.png");
    let e = image_file::check_file(&bomb, &d.join("list.csv"), 3, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Limit {
                line: 3,
                value: 100_000,
                limit: 16_384,
                setting: "max_image_width",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("list.csv:3") && e.to_string().contains("bomb.png"),
        "{e}"
    );
    // Decoding checks again, before allocating anything.
    let e = GreyImage::open(&bomb).unwrap_err();
    assert!(matches!(e, Error::Limit { .. }), "{e}");
    // Within the width and height limits, the pixel count still bounds the area.
    png_declaring(&bomb, 16_000, 16_000);
    let e = GreyImage::open(&bomb).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                value: 256_000_000,
                setting: "max_image_pixels",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_truncated_image_is_an_error_not_a_grey_picture() {
    let (_t, d) = image_dir();
    let lim = Limits::default();
    let e = image_file::check_file(&d.join("cut.jpg"), &d.join("l.csv"), 2, &lim).unwrap_err();
    assert!(
        matches!(&e, Error::CorruptImage { path, .. } if path.ends_with("cut.jpg")),
        "{e}"
    );
    assert!(matches!(
        GreyImage::open(&d.join("cut.jpg")),
        Err(Error::CorruptImage { .. })
    ));
    // Every cut of a JPEG or PNG is caught, whichever byte it stops at.
    let j = jpeg_bytes(64, 48);
    let mut p = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(50, 40, |x, y| image::Luma([(x ^ y) as u8]))
        .write_to(&mut p, image::ImageFormat::Png)
        .unwrap();
    let p = p.into_inner();
    for whole in [&j, &p] {
        assert!(
            image_file::check_bytes(whole, Path::new("w"), &lim)
                .unwrap()
                .0
                > 0
        );
        for cut in (1..whole.len()).step_by(7) {
            let r = image_file::decode_bytes(&whole[..cut], Path::new("c"), &lim);
            assert!(r.is_err(), "cut at {cut} of {} decoded", whole.len());
        }
    }
    // A whole JPEG with bytes after its end marker is fine.
    let mut padded = j.clone();
    padded.extend_from_slice(&[0u8; 100]);
    std::fs::write(d.join("padded.jpg"), &padded).unwrap();
    assert_eq!(
        image_file::check_file(&d.join("padded.jpg"), &d, 0, &lim).unwrap(),
        (64, 48)
    );
    assert_eq!(GreyImage::open(&d.join("whole.jpg")).unwrap().width, 400);
}

#[test]
fn skip_bad_skips_bombs_and_cut_images_so_training_runs() {
    let (_t, d) = image_dir();
    let csv = d.join("list.csv");
    std::fs::write(
        &csv,
        "image,points\na.png,1 2 3 4\nbomb.png,1 2 3 4\ncut.jpg,1 2 3 4\nwhole.jpg,5 6 7 8\n",
    )
    .unwrap();
    let e = load_csv(&csv, &LoadOptions::default(), &GenericOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Limit { line: 3, .. }), "{e}");
    let (ds, rep) = load_csv(&csv, &skip(), &GenericOptions::default()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(rep.skipped.len(), 2);
    assert!(matches!(rep.skipped[0].error, Error::Limit { .. }));
    assert!(matches!(rep.skipped[1].error, Error::CorruptImage { .. }));
    let loader =
        BatchLoader::new(Arc::new(ds), LoaderConfig::new(2, Preprocess::whole(16), 0)).unwrap();
    for b in loader.epoch(0, &candle_core::Device::Cpu) {
        assert_eq!(b.unwrap().images.dims()[0], 2);
    }
    // Without the header check at load time, the batch that holds the bomb is an error
    // naming it (not an abort).
    let unchecked = LoadOptions {
        check_images: false,
        ..LoadOptions::default()
    };
    let (ds, _) = load_csv(&csv, &unchecked, &GenericOptions::default()).unwrap();
    let loader =
        BatchLoader::new(Arc::new(ds), LoaderConfig::new(4, Preprocess::whole(16), 0)).unwrap();
    let errors: Vec<String> = loader
        .epoch(0, &candle_core::Device::Cpu)
        .filter_map(|b| b.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("bomb.png") || errors[0].contains("cut.jpg"),
        "{errors:?}"
    );
}

#[test]
fn raised_limits_admit_a_large_image_end_to_end() {
    let t = tempfile::tempdir().unwrap();
    write_png(&t.path().join("wide.png"), 300, 20);
    let csv = t.path().join("l.csv");
    std::fs::write(&csv, "image,points\nwide.png,1 2\n").unwrap();
    let small = LoadOptions {
        limits: Limits {
            max_image_width: 200,
            ..Limits::default()
        },
        ..LoadOptions::default()
    };
    let e = load_csv(&csv, &small, &GenericOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                value: 300,
                limit: 200,
                ..
            }
        ),
        "{e}"
    );
    let large = LoadOptions {
        limits: Limits {
            max_image_width: 400,
            ..Limits::default()
        },
        ..LoadOptions::default()
    };
    let (ds, _) = load_csv(&csv, &large, &GenericOptions::default()).unwrap();
    // The sample remembers the approved size, so decoding admits it.
    assert_eq!(ds.samples[0].image_size, Some((300, 20)));
    assert_eq!(ds.samples[0].load_image().unwrap().width, 300);
    let approved = Limits::default().admitting(Some((20_000, 10)));
    assert!(approved.check_image(Path::new("p"), 0, 20_000, 10).is_ok());
    assert!(Limits::default()
        .check_image(Path::new("p"), 0, 20_000, 10)
        .is_err());
    let tight = Limits {
        max_image_pixels: 100,
        ..Limits::default()
    };
    assert!(matches!(
        GreyImage::open_with_limits(&t.path().join("wide.png"), &tight),
        Err(Error::Limit {
            setting: "max_image_pixels",
            ..
        })
    ));
}

#[test]
fn decoding_matches_to_luma8_for_every_colour_type() {
    let t = tempfile::tempdir().unwrap();
    let (w, h) = (300u32, 1200u32); // several conversion bands
    let f = |x: u32, y: u32, k: u32| ((x * 31 + y * 17 + k * 101) % 256) as u8;
    let g = |x: u32, y: u32, k: u32| ((x * 3001 + y * 1713 + k * 10101) % 65536) as u16;
    let imgs: Vec<(&str, image::DynamicImage)> = vec![
        (
            "l8.png",
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y, 0)])).into(),
        ),
        (
            "la8.png",
            image::GrayAlphaImage::from_fn(w, h, |x, y| image::LumaA([f(x, y, 0), f(x, y, 1)]))
                .into(),
        ),
        (
            "rgb8.png",
            image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
            })
            .into(),
        ),
        (
            "rgba16.png",
            image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(w, h, |x, y| {
                image::Rgba([g(x, y, 0), g(x, y, 1), g(x, y, 2), g(x, y, 3)])
            })
            .into(),
        ),
        (
            "l16.png",
            image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| {
                image::Luma([g(x, y, 0)])
            })
            .into(),
        ),
        (
            "rgb8.jpg",
            image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
            })
            .into(),
        ),
    ];
    for (name, img) in imgs {
        let p = t.path().join(name);
        img.save(&p).unwrap();
        let want = image::open(&p).unwrap().to_luma8();
        let got = GreyImage::open(&p).unwrap();
        assert_eq!((got.width, got.height), (w as usize, h as usize), "{name}");
        assert!(
            got.pixels[..] == want.as_raw()[..],
            "{name}: grey values differ"
        );
    }
}
