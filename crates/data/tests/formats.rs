//! Readers: .pts directories, MTFL, generic CSV / JSON (AFLW: tests/aflw.rs); bad input; property
//! tests (arbitrary input never panics, round trips).

use std::path::{Path, PathBuf};

use landmark_ssl_data::formats::generic::{load_csv, load_json, GenericOptions};
use landmark_ssl_data::formats::{mtfl, pts};
use landmark_ssl_data::*;
use proptest::prelude::*;

fn write_png(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(path)
        .unwrap();
}

fn ibug_text(n: usize, f: impl Fn(usize) -> (f64, f64)) -> String {
    let mut s = format!("version: 1\nn_points:  {n}\n{{\n");
    for i in 0..n {
        let (x, y) = f(i);
        s.push_str(&format!("{x:.3} {y:.3}\n"));
    }
    s + "}\n"
}

#[test]
fn pts_directory_nested_one_based() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("helen/trainset");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("a.pts"), ibug_text(68, |i| (1.0 + i as f64, 2.0))).unwrap();
    write_png(&sub.join("a.png"), 80, 40);
    std::fs::write(dir.path().join("b.pts"), ibug_text(68, |_| (10.5, 20.25))).unwrap();
    image::GrayImage::new(30, 30)
        .save(dir.path().join("b.jpg"))
        .unwrap();
    let (d, rep) = pts::load_dir(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(d.len(), 2);
    assert!(rep.skipped.is_empty());
    assert_eq!(d.meta.layout, Layout::Ibug68);
    // Sorted: b.pts comes before helen/.
    assert_eq!(d.samples[0].landmarks[0], [9.5, 19.25]);
    assert_eq!(d.samples[1].landmarks[3], [3.0, 1.0]);
    assert_eq!(d.samples[1].image_size, Some((80, 40)));
    assert!(matches!(&d.samples[1].image, ImageSource::File(p) if p.ends_with("a.png")));
}

#[test]
fn pts_bad_files_name_file_and_line() {
    let p = Path::new("x.pts");
    let e = pts::parse_pts("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", p).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PointCount {
                expected: 3,
                found: 2,
                line: 6,
                ..
            }
        ),
        "{e}"
    );
    let e = pts::parse_pts("n_points: 2\n{\n1 2\n3 abc\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 4, .. }), "{e}");
    assert!(e.to_string().contains("x.pts:4"), "{e}");
    let e = pts::parse_pts("n_points: 2\n1 2\n3 4\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::Parse { .. }), "{e}");
    let e = pts::parse_pts("n_points: 2\n{\n1 2\n3 4\n", p).unwrap_err();
    assert!(e.to_string().contains("closing brace"), "{e}");
    let e = pts::parse_pts("n_points: 2\n{\n1 2\nnan 4\n}\n", p).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NonFinite {
                line: 4,
                index: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = pts::parse_pts("n_points: 1\n{\n1 inf\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::NonFinite { line: 3, .. }), "{e}");
    let e = pts::parse_pts("n_points: 1\n{\n1 2\n3 4\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::PointCount { line: 4, .. }), "{e}");
    let e = pts::parse_pts("{\n1 2\n}\n", p).unwrap_err();
    assert!(e.to_string().contains("n_points"), "{e}");
}

#[test]
fn pts_directory_skips_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.pts"), ibug_text(5, |i| (i as f64 + 1.0, 1.0))).unwrap();
    write_png(&d.join("a.png"), 10, 10);
    std::fs::write(d.join("b.pts"), ibug_text(5, |_| (1.0, 1.0))).unwrap(); // no image
    std::fs::write(d.join("c.pts"), ibug_text(4, |_| (1.0, 1.0))).unwrap(); // wrong count
    write_png(&d.join("c.png"), 10, 10);
    std::fs::write(d.join("d.pts"), "n_points: 1\n{\n1 2\n").unwrap(); // no brace
    write_png(&d.join("d.png"), 10, 10);
    std::fs::write(d.join("e.pts"), ibug_text(5, |_| (1.0, 1.0))).unwrap();
    std::fs::write(d.join("e.png"), b"not a png").unwrap(); // unreadable image
    let e = pts::load_dir(d, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::MissingImage { .. }), "{e}");
    assert!(e.to_string().contains("b.pts"));
    let opts = LoadOptions {
        skip_bad: true,
        check_images: true,
        ..LoadOptions::default()
    };
    let (ds, rep) = pts::load_dir(d, &opts).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(rep.entries, 5);
    let why: Vec<String> = rep.skipped.iter().map(|s| s.error.to_string()).collect();
    assert_eq!(why.len(), 4, "{why:?}");
    assert!(matches!(
        rep.skipped[1].error,
        Error::LandmarkCountMismatch {
            expected: 5,
            found: 4,
            ..
        }
    ));
    assert!(
        matches!(rep.skipped[3].error, Error::Image { .. }),
        "{why:?}"
    );
    // An empty directory is an error.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        pts::load_dir(empty.path(), &LoadOptions::default()),
        Err(Error::EmptyDataset { .. })
    ));
}

#[test]
fn mtfl_lines_and_attributes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lfw_5590")).unwrap();
    write_png(&dir.path().join("lfw_5590/A_0001.jpg"), 250, 250);
    let list = dir.path().join("training.txt");
    std::fs::write(
        &list,
        " lfw_5590\\A_0001.jpg 107.25 147.75 126.25 106.25 140.75 108.75 113.25 143.75 157.75 155.25 1 2 2 3\n\n\
         lfw_5590\\A_0001.jpg 1 2 3 4 5 6 7 8 9 10 1 1 1 6\n",
    )
    .unwrap();
    let e = mtfl::load(&list, &LoadOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("training.txt:3") && e.to_string().contains("pose"),
        "{e}"
    );
    let (d, rep) = mtfl::load(
        &list,
        &LoadOptions {
            skip_bad: true,
            check_images: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!((d.len(), rep.skipped.len()), (1, 1));
    let s = &d.samples[0];
    assert_eq!(s.landmarks[0], [107.25, 108.75]);
    assert_eq!(s.landmarks[4], [140.75, 155.25]);
    assert_eq!(s.classes["gender"], 0);
    assert_eq!(s.classes["smile"], 1);
    assert_eq!(s.classes["pose"], 2);
    assert_eq!(d.meta.classes["pose"], 5);
    assert_eq!(s.image_size, Some((250, 250)));
}

fn generic_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"), 40, 30);
    write_png(&dir.path().join("b.png"), 40, 30);
    let p = dir.path().to_path_buf();
    (dir, p)
}

#[test]
fn generic_csv_and_json() {
    let (_t, d) = generic_dir();
    let csv = d.join("list.csv");
    std::fs::write(
        &csv,
        "image,points,visible,box,subject,class:gesture,real:pose\n\
         a.png,1 2 3 4 5 6,1 1 0,0 0 20 20,s1,3,0.5 0.25\n\
         b.png,\"7;8;9;10;11;12\",,,s2,,\n",
    )
    .unwrap();
    let (ds, _) = load_csv(&csv, &LoadOptions::default(), &GenericOptions::default()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.meta.classes["gesture"], 4);
    assert_eq!(ds.meta.reals["pose"], 2);
    let a = &ds.samples[0];
    assert_eq!(a.landmarks, vec![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    assert_eq!(a.visible, vec![true, true, false]);
    assert_eq!(a.bbox, Some([0.0, 0.0, 20.0, 20.0]));
    assert_eq!(a.subject.as_deref(), Some("s1"));
    assert_eq!(a.reals["pose"], vec![0.5, 0.25]);
    assert!(ds.samples[1].classes.is_empty());
    // One-based.
    let (ds1, _) = load_csv(
        &csv,
        &LoadOptions::default(),
        &GenericOptions {
            one_based: true,
            layout: None,
        },
    )
    .unwrap();
    assert_eq!(ds1.samples[0].landmarks[0], [0.0, 1.0]);

    let json = d.join("list.json");
    std::fs::write(
        &json,
        r#"{"samples": [
             {"image": "a.png", "points": [[1, 2], [3, 4]], "classes": {"emotion": 1}, "reals": {"yaw": 0.5}},
             {"image": "b.png", "points": [[5, 6], [7, 8]], "subject": "x"}
           ], "classes": {"emotion": 6}, "flip": [1, 0]}"#,
    )
    .unwrap();
    let (dj, _) = load_json(&json, &LoadOptions::default(), &GenericOptions::default()).unwrap();
    assert_eq!(dj.meta.classes["emotion"], 6);
    assert_eq!(dj.meta.layout.flip_permutation(), Some(vec![1, 0]));
    assert_eq!(dj.samples[0].reals["yaw"], vec![0.5]);
    assert_eq!(dj.samples[1].landmarks[1], [7.0, 8.0]);
}

#[test]
fn generic_bad_input() {
    let (_t, d) = generic_dir();
    let csv = d.join("bad.csv");
    std::fs::write(
        &csv,
        "image,points\na.png,1 2 3 4\nb.png,1 2 x 4\nmissing.png,1 2 3 4\na.png,1 2\na.png,1 2 3\n",
    )
    .unwrap();
    let e = load_csv(&csv, &LoadOptions::default(), &GenericOptions::default()).unwrap_err();
    assert!(e.to_string().contains("bad.csv:3"), "{e}");
    let (ds, rep) = load_csv(
        &csv,
        &LoadOptions {
            skip_bad: true,
            check_images: true,
            ..LoadOptions::default()
        },
        &GenericOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.len(), 1);
    let why: Vec<String> = rep.skipped.iter().map(|s| s.error.to_string()).collect();
    assert_eq!(why.len(), 4, "{why:?}");
    assert!(
        why[1].contains("bad.csv:4") && why[1].contains("missing.png"),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains("bad.csv:5") && w.contains("expected 2 points")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains("bad.csv:6") && w.contains("odd")),
        "{why:?}"
    );
    std::fs::write(&csv, "image,pts\na.png,1 2\n").unwrap();
    assert!(
        load_csv(&csv, &LoadOptions::default(), &GenericOptions::default())
            .unwrap_err()
            .to_string()
            .contains("unknown column")
    );
    std::fs::write(&csv, "image,points\n").unwrap();
    assert!(matches!(
        load_csv(&csv, &LoadOptions::default(), &GenericOptions::default()),
        Err(Error::EmptyDataset { .. })
    ));
    let json = d.join("bad.json");
    std::fs::write(&json, "[{\"image\": \"a.png\", \"points\": [[1, 2]]},\n {\"image\": \"a.png\", \"points\": [[1, null]]}]").unwrap();
    let e = load_json(&json, &LoadOptions::default(), &GenericOptions::default()).unwrap_err();
    assert!(e.to_string().contains("entry 1"), "{e}");
    std::fs::write(&json, "[{\"image\": \"a.png\",\n \"points\": [[1, 2]]").unwrap();
    let e = load_json(&json, &LoadOptions::default(), &GenericOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::Json { .. }) && e.to_string().contains("line 2"),
        "{e}"
    );
}

#[test]
fn different_landmark_counts_in_a_dataset_are_rejected() {
    let mut d = blocks::generate(3, 0).unwrap();
    d.samples[1].landmarks.pop();
    let e = d.validate().unwrap_err();
    assert!(
        matches!(
            e,
            Error::LandmarkCountMismatch {
                index: 1,
                expected: 5,
                found: 4,
                ..
            }
        ),
        "{e}"
    );
    d.samples[1].landmarks.push([f32::NAN, 0.0]);
    assert!(matches!(
        d.validate(),
        Err(Error::NonFinite { index: 4, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pts_parser_never_panics(s in "\\PC*") {
        let _ = pts::parse_pts(&s, Path::new("p.pts"));
    }

    #[test]
    fn pts_parser_never_panics_on_near_valid(body in prop::collection::vec("[-0-9. a-z{}:\n]{0,12}", 0..12)) {
        let text = format!("version: 1\nn_points: 3\n{{\n{}\n}}", body.join("\n"));
        let _ = pts::parse_pts(&text, Path::new("p.pts"));
    }

    #[test]
    fn pts_round_trip(points in prop::collection::vec((-1e4f32..1e4, -1e4f32..1e4), 1..80)) {
        let pts: Vec<[f32; 2]> = points.iter().map(|&(x, y)| [x, y]).collect();
        let back = pts::parse_pts(&pts::write_pts(&pts), Path::new("p.pts")).unwrap();
        prop_assert_eq!(back.len(), pts.len());
        for (a, b) in back.iter().zip(&pts) {
            prop_assert!((a[0] - b[0]).abs() <= 1e-3 && (a[1] - b[1]).abs() <= 1e-3);
        }
    }

    #[test]
    fn mtfl_parser_never_panics(s in "\\PC*") {
        let _ = mtfl::parse_line(&s, Path::new("t.txt"), 1);
    }

    #[test]
    fn mtfl_round_trip(c in prop::collection::vec(-1e3f32..1e3, 10), a in (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=5)) {
        let line = format!("x\\y.jpg {} {} {} {} {}", c.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "), a.0, a.1, a.2, a.3);
        let e = mtfl::parse_line(&line, Path::new("t.txt"), 1).unwrap();
        for k in 0..5 {
            prop_assert_eq!(e.points[k], [c[k], c[k + 5]]);
        }
        prop_assert_eq!(e.attributes, [a.0 - 1, a.1 - 1, a.2 - 1, a.3 - 1]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn generic_readers_never_panic(s in "\\PC{0,200}", csv_like in "(image,points\n)?[a-z0-9., ;\"\n]{0,120}") {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let f = dir.join("x.json");
        std::fs::write(&f, &s).unwrap();
        let opts = LoadOptions { skip_bad: true, check_images: false, ..LoadOptions::default() };
        let _ = load_json(&f, &opts, &GenericOptions::default());
        let f = dir.join("x.csv");
        std::fs::write(&f, &csv_like).unwrap();
        let _ = load_csv(&f, &opts, &GenericOptions::default());
        let _ = load_csv(&f, &LoadOptions::default(), &GenericOptions::default());
    }

    #[test]
    fn generic_csv_round_trip(points in prop::collection::vec((-500f32..500.0, -500f32..500.0), 1..10), cls in 0usize..7) {
        let dir = tempfile::tempdir().unwrap();
        let cells: Vec<String> = points.iter().map(|(x, y)| format!("{x} {y}")).collect();
        let f = dir.path().join("l.csv");
        std::fs::write(&f, format!("image,points,class:c\nim.png,{},{cls}\n", cells.join(" "))).unwrap();
        let (d, _) = load_csv(&f, &LoadOptions { skip_bad: false, check_images: false, ..LoadOptions::default() }, &GenericOptions::default()).unwrap();
        let got: Vec<(f32, f32)> = d.samples[0].landmarks.iter().map(|p| (p[0], p[1])).collect();
        prop_assert_eq!(got, points);
        prop_assert_eq!(d.samples[0].classes["c"], cls);
    }
}
