//! Robustness: random and mutated bytes fed to every text reader (.pts, MTFL, generic CSV,
//! generic JSON) and to the image checks and decoder must give `Ok` or `Err`, never a
//! panic. Mutations start from a valid document so that they reach deep into each parser.
//! Case counts stay small (seconds on two cores); `FUZZ_CASES=N` runs N cases per property
//! for a longer search.

use std::path::Path;

use landmark_ssl_data::formats::generic::{load_csv, load_json, GenericOptions};
use landmark_ssl_data::formats::{mtfl, pts};
use landmark_ssl_data::*;
use proptest::prelude::*;

/// One edit of a byte string: overwrite, insert, delete, or cut the rest.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to the parsers, plus any byte.
    let byte = prop_oneof![
        prop::sample::select(b"0123456789.-+eE \n\t,;:{}[]\"\\nx/".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), prop::collection::vec(byte, 1..24)).prop_map(|(i, v)| Edit::Insert(i, v)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Set(i, v) if !b.is_empty() => {
                let n = b.len();
                b[i % n] = *v;
            }
            Edit::Set(..) => {}
            Edit::Insert(i, v) => {
                let i = at(*i, b.len());
                b.splice(i..i, v.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, b.len());
                let j = (i + n).min(b.len());
                b.drain(i..j);
            }
            Edit::Truncate(i) => {
                let i = at(*i, b.len());
                b.truncate(i);
            }
        }
    }
    b
}

const PTS: &str = "version: 1\nn_points: 3\n{\n10.5 20\n30 40.25\n1e2 -3\n}\n";
const MTFL: &str =
    "img\\a.png 1 2 3 4 5 6 7 8 9 10 1 2 1 3\nimg/b.png 5 6 7 8 9 1 2 3 4 5 2 1 2 5\n";
const CSV: &str = "image,points,visible,box,subject,class:g,real:pose\n\
a.png,1 2 3 4,1 0,0 0 9 9,s1,2,0.5 0.25\n\
a.png,\"5;6;7;8\",,,s2,,\n";
const JSON: &str = r#"{"samples": [
 {"image": "a.png", "points": [[1, 2], [3, 4]], "classes": {"g": 1}, "reals": {"yaw": 0.5}},
 {"image": "a.png", "points": [[5, 6], [7, 8]], "visible": [true, false], "box": [0, 0, 9, 9]}
], "classes": {"g": 4}, "flip": [1, 0]}"#;

fn small_png() -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 7]))
        .write_to(&mut c, image::ImageFormat::Png)
        .unwrap();
    c.into_inner()
}

fn small_jpeg() -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 15, y as u8 * 15, 99]))
        .write_to(&mut c, image::ImageFormat::Jpeg)
        .unwrap();
    c.into_inner()
}

/// Cases per property: `FUZZ_CASES` from the environment, else 64.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// A folder holding the image the list files name.
fn folder() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.png"), small_png()).unwrap();
    t
}

fn both() -> [LoadOptions; 2] {
    [
        LoadOptions::default(),
        LoadOptions {
            skip_bad: true,
            ..LoadOptions::default()
        },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pts_reader_survives_mutations(edits in prop::collection::vec(edit(), 1..6)) {
        let bytes = mutate(PTS.as_bytes(), &edits);
        let _ = pts::parse_pts(&String::from_utf8_lossy(&bytes), Path::new("p.pts"));
        let t = folder();
        std::fs::write(t.path().join("a.pts"), &bytes).unwrap();
        std::fs::write(t.path().join("b.pts"), PTS).unwrap();
        std::fs::copy(t.path().join("a.png"), t.path().join("b.png")).unwrap();
        for o in both() {
            let _ = pts::load_dir(t.path(), &o);
        }
    }

    #[test]
    fn mtfl_reader_survives_mutations(edits in prop::collection::vec(edit(), 1..6)) {
        let bytes = mutate(MTFL.as_bytes(), &edits);
        let t = folder();
        std::fs::create_dir(t.path().join("img")).unwrap();
        std::fs::write(t.path().join("img/a.png"), small_png()).unwrap();
        std::fs::write(t.path().join("img/b.png"), small_png()).unwrap();
        let list = t.path().join("l.txt");
        std::fs::write(&list, &bytes).unwrap();
        for o in both() {
            let _ = mtfl::load(&list, &o);
        }
    }

    #[test]
    fn csv_reader_survives_mutations(edits in prop::collection::vec(edit(), 1..6)) {
        let t = folder();
        let f = t.path().join("l.csv");
        std::fs::write(&f, mutate(CSV.as_bytes(), &edits)).unwrap();
        for o in both() {
            let _ = load_csv(&f, &o, &GenericOptions::default());
        }
    }

    #[test]
    fn json_reader_survives_mutations(edits in prop::collection::vec(edit(), 1..6)) {
        let t = folder();
        let f = t.path().join("l.json");
        std::fs::write(&f, mutate(JSON.as_bytes(), &edits)).unwrap();
        for o in both() {
            let _ = load_json(&f, &o, &GenericOptions::default());
        }
    }

    #[test]
    fn text_readers_survive_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = pts::parse_pts(&String::from_utf8_lossy(&bytes), Path::new("p.pts"));
        let _ = mtfl::parse_line(&String::from_utf8_lossy(&bytes), Path::new("m.txt"), 1);
        let t = folder();
        for name in ["r.csv", "r.json", "r.txt"] {
            std::fs::write(t.path().join(name), &bytes).unwrap();
        }
        let o = LoadOptions { skip_bad: true, ..LoadOptions::default() };
        let _ = load_csv(&t.path().join("r.csv"), &o, &GenericOptions::default());
        let _ = load_json(&t.path().join("r.json"), &o, &GenericOptions::default());
        let _ = mtfl::load(&t.path().join("r.txt"), &o);
    }

    #[test]
    fn image_checks_survive_mutations(
        edits in prop::collection::vec(edit(), 1..4),
        jpeg in any::<bool>(),
    ) {
        let seed = if jpeg { small_jpeg() } else { small_png() };
        let bytes = mutate(&seed, &edits);
        let lim = Limits::default();
        let name = Path::new("m");
        let checked = image_file::check_bytes(&bytes, name, &lim);
        let decoded = image_file::decode_bytes(&bytes, name, &lim);
        // Whatever decodes passed the checks and has the size the header declared.
        if let Ok(g) = &decoded {
            prop_assert_eq!(checked.as_ref().ok().copied(), Some((g.width, g.height)));
            prop_assert_eq!(g.pixels.len(), g.width * g.height);
        }
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join(if jpeg { "m.jpg" } else { "m.png" });
        std::fs::write(&f, &bytes).unwrap();
        let on_disk = image_file::check_file(&f, &f, 0, &lim);
        prop_assert_eq!(on_disk.is_ok(), checked.is_ok(), "{:?} / {:?}", on_disk, checked);
    }

    #[test]
    fn image_checks_survive_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let lim = Limits::default();
        let _ = image_file::check_bytes(&bytes, Path::new("r"), &lim);
        let _ = image_file::decode_bytes(&bytes, Path::new("r"), &lim);
        // With a PNG or JPEG signature in front, so that the format-specific walks run.
        for head in [&b"\x89PNG\r\n\x1a\n"[..], &[0xFF, 0xD8, 0xFF][..]] {
            let b: Vec<u8> = head.iter().chain(&bytes).copied().collect();
            let _ = image_file::check_bytes(&b, Path::new("r"), &lim);
            let _ = image_file::decode_bytes(&b, Path::new("r"), &lim);
        }
    }
}
