//! Layout files: names, flip pairs and normaliser points, their errors, and flip
//! augmentation of a generic CSV data set through one.

use std::path::{Path, PathBuf};

use landmark_ssl_data::formats::generic::{load_csv, GenericOptions};
use landmark_ssl_data::*;

fn parse(text: &str) -> Result<LayoutFile> {
    LayoutFile::parse(text, Path::new("face.json"), &Limits::default())
}

fn err(text: &str) -> String {
    parse(text).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn names_pairs_and_normaliser() {
    let lf = parse(
        r#"{"names": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
            "flip": [["left_eye", "right_eye"], [3, "mouth_right"]],
            "normalizer": ["left_eye", "right_eye"]}"#,
    )
    .unwrap();
    assert_eq!(lf.names.len(), 5);
    assert_eq!(lf.layout.num_points(), 5);
    assert_eq!(lf.layout.flip_permutation(), Some(vec![1, 0, 2, 4, 3]));
    assert_eq!(lf.normalizer, Some([0, 1]));
    // A count without names, no pairs: no flip.
    let lf = parse(r#"{"points": 3}"#).unwrap();
    assert_eq!(lf.names, ["point0", "point1", "point2"]);
    assert_eq!(lf.layout.flip_permutation(), None);
}

#[test]
fn bad_files_name_the_entry() {
    let names = r#""names": ["a", "b", "c"]"#;
    for (text, wants) in [
        (
            format!("{{{names}, \"flip\": [[\"a\", \"x\"]]}}"),
            &["face.json", "flip[0][1]", "`x`"][..],
        ),
        (
            format!("{{{names}, \"flip\": [[0, 7]]}}"),
            &["flip[0][1]", "index 7"],
        ),
        (
            format!("{{{names}, \"flip\": [[\"a\", \"a\"]]}}"),
            &["flip[0]", "itself"],
        ),
        (
            format!("{{{names}, \"flip\": [[\"a\", \"b\"], [\"b\", \"c\"]]}}"),
            &["flip[1]", "`b` is already in another pair"],
        ),
        (
            format!("{{{names}, \"normalizer\": [\"c\", \"c\"]}}"),
            &["normalizer", "two different"],
        ),
        (
            format!("{{{names}, \"points\": 4}}"),
            &["points: 4", "3 points"],
        ),
        (
            r#"{"names": ["a", "a"]}"#.to_string(),
            &["names[1]", "twice"],
        ),
        (
            r#"{"names": ["a", " "]}"#.to_string(),
            &["names[1]", "empty"],
        ),
        (r#"{"flip": []}"#.to_string(), &["names", "points"]),
        (r#"{"points": 0}"#.to_string(), &["at least one point"]),
        (
            r#"{"names": ["a"], "flips": []}"#.to_string(),
            &["unknown field", "flips"],
        ),
        (r#"{"points": 20000}"#.to_string(), &["max_points"]),
    ] {
        let e = err(&text);
        for w in wants {
            assert!(e.contains(w), "{text}\n-> {e}\n(wanted `{w}`)");
        }
    }
}

/// A generic CSV data set of 3 points flips through its layout file: the left and right
/// points swap, the middle one stays.
#[test]
fn flip_augmentation_of_a_generic_csv_through_its_layout_file() {
    let dir = std::env::temp_dir().join(format!("lssl-layoutfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    image::GrayImage::new(40, 30)
        .save(dir.join("a.png"))
        .unwrap();
    std::fs::write(
        dir.join("data.csv"),
        "image,points\na.png,10 12 20 14 31 12\n",
    )
    .unwrap();
    let layout_path: PathBuf = dir.join("layout.json");
    std::fs::write(
        &layout_path,
        r#"{"names": ["left", "middle", "right"], "flip": [["left", "right"]]}"#,
    )
    .unwrap();
    let lf = LayoutFile::read(&layout_path, &Limits::default()).unwrap();
    let gopts = GenericOptions {
        layout: Some(lf.layout.clone()),
        ..Default::default()
    };
    let (ds, _) = load_csv(&dir.join("data.csv"), &LoadOptions::default(), &gopts).unwrap();
    assert_eq!(ds.meta.layout, lf.layout);
    let pre = Preprocess {
        normalize: false,
        ..Preprocess::whole(40)
    };
    let plain = prepare(&ds.samples[0], 0, &ds.meta, &pre, &Jitter::none(), None).unwrap();
    let flip = Jitter {
        flip: true,
        ..Jitter::none()
    };
    let flipped = prepare(&ds.samples[0], 0, &ds.meta, &pre, &flip, None).unwrap();
    // Mirrored x (the crop is 40 wide: x -> 39 - x), and left and right swapped.
    for (k, src) in [(0, 2), (1, 1), (2, 0)] {
        let (p, q) = (flipped.landmarks[k], plain.landmarks[src]);
        assert!(
            (p[0] - (39.0 - q[0])).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3,
            "{k}: {p:?} {q:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
