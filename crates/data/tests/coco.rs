//! COCO keypoints JSON: files as the format's description gives them (images, annotations
//! with x, y, v triples, categories with keypoint names), several instances per image,
//! unlabelled and occluded points, points outside the image, crowd annotations, the category
//! choice, bad entries and their JSON paths, limits.

use std::path::{Path, PathBuf};

use landmark_ssl_data::formats::coco::{self, flip_from_names, CocoOptions};
use landmark_ssl_data::*;
use serde_json::{json, Value};

const PERSON: [&str; 17] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

fn write_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::new(w, h).save(path).unwrap();
}

/// 17 keypoints: point k at (10 + k, 20 + 2k) with visibility `v(k)`.
fn keypoints(v: impl Fn(usize) -> u8) -> Vec<Value> {
    (0..17)
        .flat_map(|k| {
            let v = v(k);
            if v == 0 {
                [json!(0), json!(0), json!(0)]
            } else {
                [json!(10 + k), json!(20 + 2 * k), json!(v)]
            }
        })
        .collect()
}

fn person_category() -> Value {
    json!({"id": 1, "name": "person", "supercategory": "person", "keypoints": PERSON,
           "skeleton": [[16, 14], [14, 12], [17, 15]]})
}

fn annotation(id: u64, image_id: u64, kp: Vec<Value>, bbox: [f64; 4], crowd: u8) -> Value {
    let n = kp.chunks(3).filter(|t| t.get(2) != Some(&json!(0))).count();
    json!({"id": id, "image_id": image_id, "category_id": 1, "keypoints": kp,
           "num_keypoints": n, "bbox": bbox, "iscrowd": crowd, "area": 100.0,
           "segmentation": [[0, 0, 1, 1, 2, 2]]})
}

/// A directory with `annotations/person_keypoints.json` and `images/{a,b}.jpg`.
fn dataset(annotations: Vec<Value>, categories: Vec<Value>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("images/a.png"), 640, 480);
    write_png(&dir.path().join("images/b.png"), 100, 200);
    let file = json!({
        "info": {"description": "test"},
        "images": [
            {"id": 7, "file_name": "a.png", "width": 640, "height": 480},
            {"id": 9, "file_name": "b.png", "width": 100, "height": 200},
        ],
        "annotations": annotations,
        "categories": categories,
    });
    let path = dir.path().join("annotations/person_keypoints.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    (dir, path)
}

fn with_root(dir: &tempfile::TempDir) -> CocoOptions {
    CocoOptions {
        image_root: Some(dir.path().join("images")),
        ..CocoOptions::default()
    }
}

fn skipping() -> LoadOptions {
    LoadOptions {
        skip_bad: true,
        ..LoadOptions::default()
    }
}

#[test]
fn instances_visibility_boxes_and_layout() {
    let (dir, path) = dataset(
        vec![
            // Two people in image 7, one with unlabelled (v = 0) and occluded (v = 1) points.
            annotation(1, 7, keypoints(|_| 2), [5.0, 6.0, 50.0, 60.5], 0),
            annotation(
                2,
                7,
                keypoints(|k| [0, 1, 2][k % 3]),
                [0.0, 0.0, 640.0, 480.0],
                0,
            ),
            // Another person in image 9.
            annotation(3, 9, keypoints(|_| 2), [1.0, 1.0, 2.0, 2.0], 0),
            // A crowd annotation: left out, counted.
            annotation(4, 9, keypoints(|_| 2), [0.0, 0.0, 10.0, 10.0], 1),
            // No labelled point: left out by default.
            annotation(5, 9, keypoints(|_| 0), [0.0, 0.0, 10.0, 10.0], 0),
        ],
        vec![person_category()],
    );
    let (d, rep) = coco::load(&path, &LoadOptions::default(), &with_root(&dir)).unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!((rep.entries, rep.filtered), (5, 2));
    assert!(rep.skipped.is_empty());
    // Layout: 17 points, the flip from the names.
    let flip = d.meta.layout.flip_permutation().unwrap();
    assert_eq!(d.meta.layout.num_points(), 17);
    assert_eq!(&flip[..5], &[0, 2, 1, 4, 3]);
    assert_eq!(flip[15], 16);
    // Same image twice, with the image's id as subject.
    let (a, b, c) = (&d.samples[0], &d.samples[1], &d.samples[2]);
    assert_eq!(a.image, b.image);
    assert!(matches!(&a.image, ImageSource::File(p) if p.ends_with("images/a.png")));
    assert_eq!(a.subject.as_deref(), Some("image 7"));
    assert_eq!(a.subject, b.subject);
    assert_ne!(a.subject, c.subject);
    assert_eq!(a.image_size, Some((640, 480)));
    assert_eq!(c.image_size, Some((100, 200)));
    // Box [x, y, x + w, y + h]; points as given, no offset.
    assert_eq!(a.bbox, Some([5.0, 6.0, 55.0, 66.5]));
    assert_eq!(a.landmarks[3], [13.0, 26.0]);
    assert!(a.visible.iter().all(|&v| v));
    // v = 0: not visible, coordinates kept (0, 0); v = 1: visible.
    assert!(!b.visible[0]);
    assert_eq!(b.landmarks[0], [0.0, 0.0]);
    assert!(b.visible[1] && b.visible[2]);
    assert_eq!(b.landmarks[1], [11.0, 22.0]);
    assert_eq!(c.landmarks[16], [26.0, 52.0]);

    // keep_unlabelled keeps the all-v = 0 annotation.
    let opts = CocoOptions {
        keep_unlabelled: true,
        ..with_root(&dir)
    };
    let (d, rep) = coco::load(&path, &LoadOptions::default(), &opts).unwrap();
    assert_eq!((d.len(), rep.filtered), (4, 1));
    assert!(d.samples[3].visible.iter().all(|&v| !v));
}

#[test]
fn points_outside_the_image_are_kept() {
    let kp: Vec<Value> = (0..17)
        .flat_map(|k| [json!(-5.5 - k as f64), json!(900 + k), json!(2)])
        .collect();
    let (dir, path) = dataset(
        vec![annotation(1, 9, kp, [0.0, 0.0, 1.0, 1.0], 0)],
        vec![person_category()],
    );
    let (d, _) = coco::load(&path, &LoadOptions::default(), &with_root(&dir)).unwrap();
    assert_eq!(d.samples[0].landmarks[0], [-5.5, 900.0]);
    assert!(d.samples[0].visible[0]);
}

#[test]
fn bad_entries_name_their_json_path() {
    let mut short = keypoints(|_| 2);
    short.truncate(50);
    let mut bad_v = keypoints(|_| 2);
    bad_v[3 * 4 + 2] = json!(3);
    let mut huge = keypoints(|_| 2);
    huge[6] = json!(1e300);
    let mut no_kp = annotation(9, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0);
    no_kp.as_object_mut().unwrap().remove("keypoints");
    let (dir, path) = dataset(
        vec![
            annotation(1, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(2, 7, keypoints(|_| 2), [0.0, 0.0, -1.0, 1.0], 0),
            annotation(3, 7, short, [0.0, 0.0, 1.0, 1.0], 0),
            annotation(4, 7, bad_v, [0.0, 0.0, 1.0, 1.0], 0),
            annotation(5, 42, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(6, 7, huge, [0.0, 0.0, 1.0, 1.0], 0),
            annotation(7, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 2),
            no_kp,
        ],
        vec![person_category()],
    );
    let strict = coco::load(&path, &LoadOptions::default(), &with_root(&dir)).unwrap_err();
    assert!(
        strict.to_string().contains("annotations[1].bbox:"),
        "{strict}"
    );
    let (d, rep) = coco::load(&path, &skipping(), &with_root(&dir)).unwrap();
    assert_eq!(d.len(), 1);
    let msgs: Vec<String> = rep.skipped.iter().map(|s| s.error.to_string()).collect();
    let want = [
        "annotations[1].bbox: [0.0, 0.0, -1.0, 1.0], expected 4 finite numbers",
        "annotations[2].keypoints: 50 values, expected 3 x 17",
        "annotations[3].keypoints[14]: visibility 3 of point 4, expected 0, 1 or 2",
        "annotations[4].image_id: 42 is not the id of an image",
        "annotations[5].keypoints[6]: point 2",
        "annotations[6].iscrowd: 2, expected 0 or 1",
        "annotations[7].keypoints: missing, expected 3 x 17 values",
    ];
    assert_eq!(msgs.len(), want.len(), "{msgs:#?}");
    for (m, w) in msgs.iter().zip(want) {
        assert!(m.contains(w), "{m}\nshould contain\n{w}");
        assert!(m.contains("person_keypoints.json"), "{m}");
    }
}

#[test]
fn images_are_checked_against_their_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"), 30, 20);
    let file = json!({
        "images": [
            {"id": 1, "file_name": "a.png", "width": 31, "height": 20},
            {"id": 2, "file_name": "missing.png", "width": 31, "height": 20},
            {"id": 3, "file_name": "a.png", "width": 100000, "height": 100000},
        ],
        "annotations": [
            annotation(1, 1, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(2, 2, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(3, 3, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
        ],
        "categories": [person_category()],
    });
    let path = dir.path().join("k.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let e = coco::load(&path, &skipping(), &CocoOptions::default()).unwrap_err();
    let Error::NothingLoaded { skipped, .. } = e else {
        panic!("{e}")
    };
    assert_eq!(skipped.len(), 3);
    let m = skipped[0].error.to_string();
    assert!(
        m.contains("images[0] (`a.png`): declared 31x20, the file is 30x20"),
        "{m}"
    );
    assert!(matches!(skipped[1].error, Error::MissingImage { .. }));
    let m = skipped[2].error.to_string();
    assert!(
        m.contains("images[2] (width, height):") && m.contains("max_image_width"),
        "{m}"
    );
    // Without image checks the declared size is taken (within the limits).
    let opts = LoadOptions {
        check_images: false,
        skip_bad: true,
        ..LoadOptions::default()
    };
    let (d, rep) = coco::load(&path, &opts, &CocoOptions::default()).unwrap();
    assert_eq!((d.len(), rep.skipped.len()), (2, 1));
    assert_eq!(d.samples[0].image_size, Some((31, 20)));
}

#[test]
fn the_category_is_chosen_or_named() {
    let face = json!({"id": 2, "name": "face", "keypoints": ["left_eye", "right_eye", "nose"]});
    let car = json!({"id": 3, "name": "car"});
    let mut face_ann = annotation(2, 9, vec![], [0.0, 0.0, 1.0, 1.0], 0);
    face_ann["category_id"] = json!(2);
    face_ann["keypoints"] = json!([1, 2, 2, 3, 4, 2, 5, 6, 1]);
    let (dir, path) = dataset(
        vec![
            annotation(1, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            face_ann,
        ],
        vec![person_category(), face, car],
    );
    let e = coco::load(&path, &LoadOptions::default(), &with_root(&dir)).unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                name: "category",
                ..
            }
        ),
        "{m}"
    );
    assert!(m.contains("`person` (id 1), `face` (id 2)"), "{m}");
    for wanted in ["face", "2"] {
        let opts = CocoOptions {
            category: Some(wanted.into()),
            ..with_root(&dir)
        };
        let (d, rep) = coco::load(&path, &LoadOptions::default(), &opts).unwrap();
        assert_eq!((d.len(), rep.filtered), (1, 1));
        assert_eq!(
            d.meta.layout,
            Layout::Generic {
                n: 3,
                flip: Some(vec![1, 0, 2])
            }
        );
    }
    let opts = CocoOptions {
        category: Some("car".into()),
        ..with_root(&dir)
    };
    let m = coco::load(&path, &LoadOptions::default(), &opts)
        .unwrap_err()
        .to_string();
    assert!(m.contains("no category `car` with keypoints"), "{m}");
}

#[test]
fn file_level_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    let load = |v: &Value| {
        std::fs::write(&path, v.to_string()).unwrap();
        coco::load(&path, &LoadOptions::default(), &CocoOptions::default())
            .unwrap_err()
            .to_string()
    };
    let m =
        load(&json!({"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}]}));
    assert!(
        m.contains("categories: none of the 1 categories has keypoint names"),
        "{m}"
    );
    let m = load(&json!({
        "images": [{"id": 1, "file_name": "a"}, {"id": 1, "file_name": "b"}],
        "annotations": [], "categories": [person_category()]}));
    assert!(m.contains("images[1].id: 1 repeats images[0].id"), "{m}");
    let m = load(
        &json!({"images": [], "annotations": [{"image_id": "x", "category_id": 1}],
                         "categories": [person_category()]}),
    );
    assert!(m.contains("JSON error") && m.contains("line 1"), "{m}");
    std::fs::write(&path, "{\"images\": [").unwrap();
    assert!(coco::load(&path, &LoadOptions::default(), &CocoOptions::default()).is_err());
    // Everything crowd: no samples.
    let m = load(&json!({"images": [{"id": 1, "file_name": "a"}],
        "annotations": [annotation(1, 1, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 1)],
        "categories": [person_category()]}));
    assert!(m.contains("empty data set"), "{m}");
}

#[test]
fn limits_bound_the_file() {
    let (dir, path) = dataset(
        vec![
            annotation(1, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(2, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
            annotation(3, 7, keypoints(|_| 2), [0.0, 0.0, 1.0, 1.0], 0),
        ],
        vec![person_category()],
    );
    let with = |limits: Limits| LoadOptions {
        limits,
        ..LoadOptions::default()
    };
    for (limits, setting) in [
        (
            Limits {
                max_samples: 2,
                ..Limits::default()
            },
            "max_samples",
        ),
        (
            Limits {
                max_points: 16,
                ..Limits::default()
            },
            "max_points",
        ),
        (
            Limits {
                max_file_bytes: 1000,
                ..Limits::default()
            },
            "max_file_bytes",
        ),
    ] {
        let e = coco::load(&path, &with(limits), &with_root(&dir)).unwrap_err();
        assert!(
            matches!(e, Error::Limit { setting: s, .. } if s == setting),
            "{e}"
        );
    }
}

#[test]
fn flips_from_names() {
    let names: Vec<String> = PERSON.iter().map(|s| s.to_string()).collect();
    let p = flip_from_names(&names).unwrap();
    for (k, &j) in p.iter().enumerate() {
        assert_eq!(p[j], k);
        if k > 0 {
            assert_ne!(j, k);
            assert_eq!(
                names[j].replace("right_", "left_"),
                names[k].replace("right_", "left_")
            );
        }
    }
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // No side names, a missing partner, a repeated name: no flip.
    assert_eq!(flip_from_names(&s(&["a", "b"])), None);
    assert_eq!(flip_from_names(&s(&["left_eye", "right_ear"])), None);
    assert_eq!(
        flip_from_names(&s(&["left_eye", "right_eye", "left_eye"])),
        None
    );
    assert_eq!(
        flip_from_names(&s(&["Right_Eye", "LEFT_EYE"])),
        Some(vec![1, 0])
    );
}
