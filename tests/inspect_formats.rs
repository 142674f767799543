//! The `inspect` example reads a WFLW list file and a COCO keypoints file written here from
//! the formats' descriptions (`cargo test` builds the examples; this runs the binary).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built `inspect` example beside this test's executable (`target/<profile>/examples`).
fn inspect() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?;
    let bin = profile.join("examples").join("inspect");
    bin.exists().then_some(bin)
}

fn run(args: &[&str]) -> String {
    let Some(bin) = inspect() else {
        // `cargo test` builds the examples first; a test binary run on its own may not.
        eprintln!("the inspect example is not built; skipped");
        return String::new();
    };
    let out = Command::new(bin).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "inspect {args:?}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lssl-inspect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("img")).unwrap();
    d
}

fn png(path: &Path) {
    image::GrayImage::new(64, 48).save(path).unwrap();
}

#[test]
fn inspect_reads_a_wflw_list() {
    let dir = fresh_dir("wflw");
    let mut lines = String::new();
    for i in 0..3 {
        png(&dir.join(format!("img/{i}.png")));
        let mut v: Vec<String> = (0..98)
            .flat_map(|k| [10.0 + (k % 40) as f32, 8.0 + (k / 40) as f32 * 5.0])
            .map(|x| x.to_string())
            .collect();
        v.extend(["5", "5", "60", "44", "1", "0", "0", "0", "1", "0"].map(String::from));
        v.push(format!("img/{i}.png"));
        lines.push_str(&(v.join(" ") + "\n"));
    }
    std::fs::write(dir.join("list.txt"), lines).unwrap();
    let list = dir.join("list.txt");
    let text = run(&["--format", "wflw", list.to_str().unwrap()]);
    if !text.is_empty() {
        assert!(text.contains("images: 3"), "{text}");
        assert!(
            text.contains("98 points per image, flippable: true"),
            "{text}"
        );
        assert!(text.contains("class attribute `pose`"), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_reads_a_coco_keypoints_file() {
    let dir = fresh_dir("coco");
    png(&dir.join("img/a.png"));
    let kp = |dx: f32| -> Vec<f32> {
        (0..3)
            .flat_map(|k| [10.0 + dx + 5.0 * k as f32, 20.0, 2.0])
            .collect()
    };
    let json = serde_json::json!({
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "keypoints": kp(0.0), "num_keypoints": 3, "bbox": [5, 10, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "keypoints": kp(30.0), "num_keypoints": 3, "bbox": [35, 10, 20, 20], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 7, "keypoints": kp(15.0), "num_keypoints": 3, "bbox": [20, 10, 20, 20], "iscrowd": 1}
        ],
        "categories": [{"id": 7, "name": "face", "keypoints": ["left_eye", "right_eye", "nose"], "skeleton": []}]
    });
    std::fs::write(dir.join("kp.json"), json.to_string()).unwrap();
    let file = dir.join("kp.json");
    let images = dir.join("img");
    let text = run(&[
        "--format",
        "coco",
        file.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
    ]);
    if !text.is_empty() {
        // Two people in the one image; the crowd annotation is left out.
        assert!(text.contains("images: 2"), "{text}");
        assert!(
            text.contains("3 points per image, flippable: true"),
            "{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
