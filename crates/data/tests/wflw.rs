//! WFLW list files: lines as the benchmark's description gives them (98 points, box, six
//! flags, image path), points outside the image, bad lines and their messages, skipping.

use std::path::Path;

use landmark_ssl_data::formats::wflw;
use landmark_ssl_data::*;

fn write_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::new(w, h).save(path).unwrap();
}

/// A line with point k at (k + 0.5, 2k), the box and flags given, then the image path.
fn line(flags: [u8; 6], image: &str) -> String {
    let mut t: Vec<String> = (0..98)
        .flat_map(|k| [format!("{}", k as f64 + 0.5), format!("{}", 2 * k)])
        .collect();
    t.extend(["1.5", "2", "120.25", "200"].map(String::from));
    t.extend(flags.iter().map(|f| f.to_string()));
    t.push(image.to_string());
    t.join(" ")
}

#[test]
fn reads_points_box_flags_and_resolves_from_the_image_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("WFLW_images");
    write_png(&root.join("51--Dresses/a.jpg"), 40, 30);
    write_png(&root.join("0--Parade/b.png"), 50, 60);
    let ann = dir.path().join("WFLW_annotations");
    std::fs::create_dir_all(&ann).unwrap();
    let list = ann.join("list_98pt_rect_attr_test.txt");
    std::fs::write(
        &list,
        format!(
            "{}\n\n{}\n",
            line([1, 0, 0, 1, 0, 1], "51--Dresses/a.jpg"),
            line([0, 1, 1, 0, 1, 0], "0--Parade\\b.png")
        ),
    )
    .unwrap();
    let (d, rep) = wflw::load(&list, Some(&root), &LoadOptions::default()).unwrap();
    assert_eq!((d.len(), rep.entries), (2, 2));
    assert!(rep.skipped.is_empty());
    assert_eq!(d.meta.layout, Layout::Wflw98);
    assert_eq!(d.meta.classes.len(), 6);
    assert!(d.meta.classes.values().all(|&c| c == 2));
    let s = &d.samples[0];
    assert_eq!(s.landmarks.len(), 98);
    // Points as stored (no offset), even far outside the 40x30 image.
    assert_eq!(s.landmarks[0], [0.5, 0.0]);
    assert_eq!(s.landmarks[97], [97.5, 194.0]);
    assert!(s.visible.iter().all(|&v| v));
    assert_eq!(s.bbox, Some([1.5, 2.0, 120.25, 200.0]));
    assert_eq!(s.image_size, Some((40, 30)));
    let want = [1, 0, 0, 1, 0, 1];
    for (name, v) in wflw::ATTRIBUTES.iter().zip(want) {
        assert_eq!(s.classes[*name], v, "{name}");
    }
    assert_eq!(d.samples[1].classes["make_up"], 0);
    assert_eq!(d.samples[1].classes["occlusion"], 1);
    assert!(matches!(&d.samples[1].image, ImageSource::File(p) if p.ends_with("0--Parade/b.png")));
    assert_eq!(d.samples[1].image_size, Some((50, 60)));
}

#[test]
fn default_image_root_is_the_list_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("img/a.png"), 8, 8);
    let list = dir.path().join("list.txt");
    std::fs::write(&list, line([0; 6], "img/a.png")).unwrap();
    let (d, _) = wflw::load(&list, None, &LoadOptions::default()).unwrap();
    assert_eq!(d.samples[0].image_size, Some((8, 8)));
}

fn message(text: &str) -> String {
    wflw::parse_line(text, Path::new("list.txt"), 12)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_lines_name_file_line_and_field() {
    let good = line([0; 6], "a.jpg");
    // A number missing before the path.
    let short = good.replacen("0.5 0 ", "0.5 ", 1);
    let m = message(&short);
    assert!(m.starts_with("list.txt:12: "), "{m}");
    assert!(
        m.contains("205 numbers before the path, expected 196 + 4 + 6"),
        "{m}"
    );
    // No path.
    let m = message(&line([0; 6], "7"));
    assert!(m.contains("no image path"), "{m}");
    // A non-number coordinate.
    let m = message(&good.replacen("1.5 2 ", "1.5 two ", 1));
    assert!(
        m.contains("landmark 1 y: `2` is not a number") || m.contains("`two`"),
        "{m}"
    );
    let m = message(&good.replacen("0.5 0 ", "x 0 ", 1));
    assert!(m.contains("landmark 0 x: `x` is not a number"), "{m}");
    // Box and flags.
    let m = message(&good.replace("1.5 2 120.25 200", "130 2 120.25 200"));
    assert!(m.contains("box:") && m.contains("x_min <= x_max"), "{m}");
    let m = message(&good.replace("200 0 0 0 0 0 0", "200 0 0 0 2 0 0"));
    assert!(m.contains("make_up flag: `2` is not 0 or 1"), "{m}");
    // Out of the range of f32.
    let m = message(&good.replacen("0.5 0 ", "1e300 0 ", 1));
    assert!(m.contains("landmark 0"), "{m}");
    let m = message(&good.replacen("1.5 2 120.25", "1.5 2 1e300", 1));
    assert!(m.contains("box x_max"), "{m}");
}

#[test]
fn skip_bad_reports_bad_lines_and_missing_images() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"), 10, 10);
    let list = dir.path().join("list.txt");
    let bad = line([0; 6], "a.png").replace(" 0 0 0 0 0 0 a.png", " 0 0 0 0 0 a.png");
    std::fs::write(
        &list,
        format!(
            "{}\n{bad}\n{}\n",
            line([0; 6], "a.png"),
            line([0; 6], "missing.png")
        ),
    )
    .unwrap();
    let strict = wflw::load(&list, None, &LoadOptions::default()).unwrap_err();
    assert!(strict.to_string().contains("list.txt:2:"), "{strict}");
    let opts = LoadOptions {
        skip_bad: true,
        ..LoadOptions::default()
    };
    let (d, rep) = wflw::load(&list, None, &opts).unwrap();
    assert_eq!((d.len(), rep.entries, rep.skipped.len()), (1, 3, 2));
    assert!(rep.skipped[0].error.to_string().contains("205 numbers"));
    assert!(matches!(
        rep.skipped[1].error,
        Error::MissingImage { line: 3, .. }
    ));
    // Every line bad: the lines' own errors.
    std::fs::write(&list, format!("{bad}\n")).unwrap();
    let e = wflw::load(&list, None, &opts).unwrap_err();
    assert!(matches!(e, Error::NothingLoaded { .. }), "{e}");
}

#[test]
fn limits_bound_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let l = line([0; 6], "a.png");
    std::fs::write(&list, format!("{l}\n{l}\n{l}\n")).unwrap();
    let opts = LoadOptions {
        check_images: false,
        limits: Limits {
            max_samples: 2,
            ..Limits::default()
        },
        ..LoadOptions::default()
    };
    let e = wflw::load(&list, None, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                setting: "max_samples",
                ..
            }
        ),
        "{e}"
    );
    let opts = LoadOptions {
        check_images: false,
        limits: Limits {
            max_file_bytes: 100,
            ..Limits::default()
        },
        ..LoadOptions::default()
    };
    let e = wflw::load(&list, None, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                setting: "max_file_bytes",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn parser_never_panics_on_near_valid_lines() {
    let good = line([0; 6], "a.jpg");
    let toks: Vec<&str> = good.split(' ').collect();
    for cut in 0..toks.len() {
        let _ = wflw::parse_line(&toks[..cut].join(" "), Path::new("l"), 1);
        let mut t = toks.clone();
        t[cut] = "nan";
        let _ = wflw::parse_line(&t.join(" "), Path::new("l"), 1);
    }
}
