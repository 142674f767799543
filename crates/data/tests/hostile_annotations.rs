//! Hostile and broken annotations: absurd class labels and counts, bad `.pts` folders,
//! out-of-range values, and the limits every reader enforces.

use std::path::Path;

use landmark_ssl_data::formats::generic::{load_csv, load_json, GenericOptions};
use landmark_ssl_data::formats::{mtfl, pts};
use landmark_ssl_data::*;

fn write_png(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(path)
        .unwrap();
}

fn skip() -> LoadOptions {
    LoadOptions {
        skip_bad: true,
        ..LoadOptions::default()
    }
}

#[test]
fn class_labels_are_bounded_and_checked_against_declared_counts() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write_png(&d.join("a.png"), 10, 10);
    let csv = d.join("c.csv");
    let opts = LoadOptions::default();
    let g = GenericOptions::default();
    for (label, value) in [
        ("18446744073709551615", u64::MAX),
        ("100000000000", 100_000_000_001),
    ] {
        std::fs::write(
            &csv,
            format!("image,points,class:x\na.png,1 2,0\na.png,1 2,{label}\n"),
        )
        .unwrap();
        let e = load_csv(&csv, &opts, &g).unwrap_err();
        assert!(
            matches!(&e, Error::Limit { line: 3, setting: "max_classes", value: v, .. } if *v == value),
            "{e}"
        );
        assert!(e.to_string().contains("c.csv:3"), "{e}");
        // Skipped with skip_bad; the count stays that of the good labels.
        let (ds, rep) = load_csv(&csv, &skip(), &g).unwrap();
        assert_eq!(
            (ds.len(), rep.skipped.len(), ds.meta.classes["x"]),
            (1, 1, 1)
        );
    }
    std::fs::write(&csv, "image,points,class:x\na.png,1 2,1e11\n").unwrap();
    assert!(load_csv(&csv, &opts, &g)
        .unwrap_err()
        .to_string()
        .contains("c.csv:2"));

    let json = d.join("c.json");
    // A declared count of 1e11 (as an integer or a float) and of 0.
    for count in ["100000000000", "1e11", "0"] {
        std::fs::write(
            &json,
            format!("{{\"samples\": [{{\"image\": \"a.png\", \"points\": [[1, 2]]}}], \"classes\": {{\"x\": {count}}}}}"),
        )
        .unwrap();
        let e = load_json(&json, &opts, &g).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("c.json") && m.contains("classes.x"), "{m}");
    }
    // A label above the declared count is an error naming the entry's line, not a
    // silent growth of the count.
    std::fs::write(
        &json,
        "{\"classes\": {\"x\": 3},\n \"samples\": [\n  {\"image\": \"a.png\", \"points\": [[1, 2]], \"classes\": {\"x\": 2}},\n  {\"image\": \"a.png\", \"points\": [[1, 2]],\n   \"classes\": {\"x\": 5}}\n]}",
    )
    .unwrap();
    let e = load_json(&json, &opts, &g).unwrap_err();
    assert!(matches!(&e, Error::Parse { line: 4, .. }), "{e}");
    assert!(
        e.to_string().contains("declared count 3") && e.to_string().contains("entry 1"),
        "{e}"
    );
    let (ds, rep) = load_json(&json, &skip(), &g).unwrap();
    assert_eq!(
        (ds.len(), rep.skipped.len(), ds.meta.classes["x"]),
        (1, 1, 3)
    );
    // u64::MAX and 1e11 labels in JSON entries.
    for label in ["18446744073709551615", "100000000000", "1e11"] {
        std::fs::write(
            &json,
            format!("[{{\"image\": \"a.png\", \"points\": [[1, 2]]}},\n{{\"image\": \"a.png\", \"points\": [[1, 2]], \"classes\": {{\"x\": {label}}}}}]"),
        )
        .unwrap();
        let e = load_json(&json, &opts, &g).unwrap_err();
        assert!(e.to_string().contains("c.json:2"), "{e}");
    }
}

fn ibug(n: usize) -> String {
    let mut s = format!("version: 1\nn_points: {n}\n{{\n");
    for i in 0..n {
        s.push_str(&format!("{} {}\n", i + 1, 2 * i + 1));
    }
    s + "}\n"
}

#[test]
fn a_bad_first_pts_file_does_not_decide_k() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("a.pts"), ibug(3)).unwrap();
    for n in ["b", "c", "d"] {
        std::fs::write(d.join(format!("{n}.pts")), ibug(5)).unwrap();
    }
    for n in ["a", "b", "c", "d"] {
        write_png(&d.join(format!("{n}.png")), 10, 10);
    }
    let e = pts::load_dir(d, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::LandmarkCountMismatch { expected: 5, found: 3, path, .. } if path.ends_with("a.pts")),
        "{e}"
    );
    let (ds, rep) = pts::load_dir(d, &skip()).unwrap();
    assert_eq!((ds.len(), ds.meta.num_landmarks()), (3, 5));
    assert_eq!(rep.skipped.len(), 1);
    assert!(rep.skipped[0].path.ends_with("a.pts"));
}

#[test]
fn an_all_bad_pts_folder_shows_each_files_error() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("a.pts"), "n_points: 2\n{\n1 2\n").unwrap(); // no `}`
    std::fs::write(d.join("b.pts"), ibug(2)).unwrap(); // no image
    std::fs::write(d.join("c.pts"), "n_points: 0\n{\n}\n").unwrap();
    let e = pts::load_dir(d, &skip()).unwrap_err();
    let Error::NothingLoaded { skipped, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(skipped.len(), 3);
    let m = e.to_string();
    for what in [
        "a.pts:3",
        "closing brace",
        "b.pts",
        "no image",
        "c.pts:1",
        "n_points: 0",
    ] {
        assert!(m.contains(what), "`{what}` missing from: {m}");
    }
    // MTFL, CSV and JSON say the same when every entry is bad.
    let list = d.join("l.txt");
    std::fs::write(&list, "x.jpg 1 2\n").unwrap();
    let e = mtfl::load(&list, &skip()).unwrap_err();
    assert!(
        matches!(e, Error::NothingLoaded { .. }) && e.to_string().contains("l.txt:1"),
        "{e}"
    );
}

#[test]
fn pts_values_are_reported_at_their_line() {
    let p = Path::new("x.pts");
    let e = pts::parse_pts("version: 1\nn_points: 0\n{\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 2, .. }), "{e}");
    let e = pts::parse_pts("version: 1\nn_points: 2\n{\n1 2\n\n1e300 4\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 6, .. }), "{e}");
    assert!(e.to_string().contains("x.pts:6"), "{e}");
    let e = pts::parse_pts("n_points: 99999999999\n{\n}\n", p).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                line: 1,
                setting: "max_points",
                ..
            }
        ),
        "{e}"
    );
    let e = pts::parse_pts("n_points: 1e300\n{\n}\n", p).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 1, .. }), "{e}");
    // The same class of value in the other readers.
    let e = mtfl::parse_line(
        "a.jpg 1e300 2 3 4 5 6 7 8 9 10 1 1 1 1",
        Path::new("m.txt"),
        7,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Parse { line: 7, .. }), "{e}");
}

#[test]
fn every_reader_enforces_the_limits() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write_png(&d.join("a.png"), 10, 10);
    let with = |l: Limits| LoadOptions {
        limits: l,
        ..LoadOptions::default()
    };
    let g = GenericOptions::default();
    // .pts: point count, file size, number of files.
    std::fs::write(d.join("a.pts"), ibug(5)).unwrap();
    std::fs::write(d.join("b.pts"), ibug(5)).unwrap();
    write_png(&d.join("b.png"), 10, 10);
    let e = pts::load_dir(
        d,
        &with(Limits {
            max_points: 4,
            ..Limits::default()
        }),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                line: 2,
                setting: "max_points",
                ..
            }
        ),
        "{e}"
    );
    let e = pts::load_dir(
        d,
        &with(Limits {
            max_file_bytes: 10,
            ..Limits::default()
        }),
    )
    .unwrap_err();
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
    let e = pts::load_dir(
        d,
        &with(Limits {
            max_samples: 1,
            ..Limits::default()
        }),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                setting: "max_samples",
                value: 2,
                ..
            }
        ),
        "{e}"
    );
    // MTFL: entries.
    let list = d.join("m.txt");
    std::fs::write(&list, "a.png 1 2 3 4 5 1 2 3 4 5 1 1 1 1\n".repeat(3)).unwrap();
    let e = mtfl::load(
        &list,
        &with(Limits {
            max_samples: 2,
            ..Limits::default()
        }),
    )
    .unwrap_err();
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
    // CSV: points and file size.
    let csv = d.join("c.csv");
    std::fs::write(&csv, "image,points\na.png,1 2 3 4 5 6\n").unwrap();
    let e = load_csv(
        &csv,
        &with(Limits {
            max_points: 2,
            ..Limits::default()
        }),
        &g,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                line: 2,
                setting: "max_points",
                value: 3,
                ..
            }
        ),
        "{e}"
    );
    let e = load_csv(
        &csv,
        &with(Limits {
            max_file_bytes: 8,
            ..Limits::default()
        }),
        &g,
    )
    .unwrap_err();
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
    // JSON: entries and class labels.
    let json = d.join("j.json");
    std::fs::write(
        &json,
        "[{\"image\": \"a.png\", \"points\": [[1, 2]], \"classes\": {\"c\": 9}},\n {\"image\": \"a.png\", \"points\": [[1, 2]]}]",
    )
    .unwrap();
    let e = load_json(
        &json,
        &with(Limits {
            max_samples: 1,
            ..Limits::default()
        }),
        &g,
    )
    .unwrap_err();
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
    let e = load_json(
        &json,
        &with(Limits {
            max_classes: 5,
            ..Limits::default()
        }),
        &g,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Limit {
                line: 1,
                setting: "max_classes",
                value: 10,
                ..
            }
        ),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_in_a_pts_folder_is_visited_once() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d, d.join("sub/loop")).unwrap();
    std::fs::write(d.join("sub/a.pts"), ibug(5)).unwrap();
    write_png(&d.join("sub/a.png"), 10, 10);
    let (ds, _) = pts::load_dir(d, &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 1);
}
