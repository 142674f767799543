//! The AFLW reader: a small database read back, bad rows, property tests (with the `aflw`
//! feature; `cargo test --workspace` turns it on through the root crate's examples), and the
//! error that names the feature when the crate is built without it.

#[cfg(feature = "aflw")]
mod with_sqlite {
    use std::path::{Path, PathBuf};

    use landmark_ssl_data::formats::aflw;
    use landmark_ssl_data::*;
    use proptest::prelude::*;

    fn write_png(path: &Path, w: u32, h: u32) {
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn aflw_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flickr/0")).unwrap();
        write_png(&dir.path().join("flickr/0/image00002.png"), 100, 80);
        let db = dir.path().join("aflw.sqlite");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id INTEGER);
             CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id INTEGER, file_id TEXT, filepath TEXT, bw INTEGER, width INTEGER, height INTEGER);
             CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
             CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
             CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
             INSERT INTO FaceImages VALUES (1, 1, 'image00002.jpg', '0/image00002.png', 0, 100, 80);
             INSERT INTO Faces VALUES (39341, 'image00002.jpg', 1);
             INSERT INTO Faces VALUES (39342, 'image00002.jpg', 1);
             INSERT INTO FeatureCoords VALUES (39341, 1, 10.5, 20.0, 1);
             INSERT INTO FeatureCoords VALUES (39341, 21, 50.0, 70.0, 1);
             INSERT INTO FeatureCoords VALUES (39341, 13, 5.0, 30.0, 1);
             INSERT INTO FeatureCoords VALUES (39342, 22, 1.0, 1.0, 1);
             INSERT INTO FaceRect VALUES (39341, 5, 10, 60, 65, 1);
             INSERT INTO FacePose VALUES (39341, 0.1, -0.2, 0.3, 1);",
        )
        .unwrap();
        drop(c);
        let e = aflw::load(&db, &LoadOptions::default(), &Default::default()).unwrap_err();
        assert!(
            e.to_string().contains("face_id=39342") && e.to_string().contains("feature_id 22"),
            "{e}"
        );
        let opts = LoadOptions {
            skip_bad: true,
            check_images: true,
            ..LoadOptions::default()
        };
        let (d, rep) = aflw::load(&db, &opts, &Default::default()).unwrap();
        assert_eq!((d.len(), rep.skipped.len()), (1, 1));
        let s = &d.samples[0];
        assert_eq!(d.meta.layout, Layout::Aflw21);
        assert_eq!(s.landmarks[0], [10.5, 20.0]);
        assert_eq!(s.landmarks[20], [50.0, 70.0]);
        assert_eq!(s.visible.iter().filter(|&&v| v).count(), 3);
        assert_eq!(s.bbox, Some([5.0, 10.0, 65.0, 75.0]));
        assert_eq!(s.reals["pose"], vec![0.3, -0.2, 0.1]);
        assert_eq!(s.image_size, Some((100, 80)));
        let (d19, _) = aflw::load(
            &db,
            &opts,
            &aflw::AflwOptions {
                points19: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d19.meta.layout, Layout::Aflw19);
        assert_eq!(d19.samples[0].landmarks.len(), 19);
        assert_eq!(d19.samples[0].landmarks[18], [50.0, 70.0]);
        assert_eq!(
            d19.samples[0].visible.iter().filter(|&&v| v).count(),
            2,
            "the ear is dropped"
        );
    }

    fn aflw_db(dir: &Path, rows: &[(i64, Option<f64>, Option<f64>)]) -> PathBuf {
        let db = dir.join("aflw.sqlite");
        let _ = std::fs::remove_file(&db);
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;
             CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT);
             CREATE TABLE FaceImages (file_id TEXT, filepath TEXT, width INTEGER, height INTEGER);
             CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL);
             CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER);
             CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL);
             INSERT INTO FaceImages VALUES ('f', 'im.png', 10, 10);
             INSERT INTO Faces VALUES (1, 'f');",
        )
        .unwrap();
        c.execute_batch("BEGIN").unwrap();
        for (id, x, y) in rows {
            c.execute(
                "INSERT INTO FeatureCoords VALUES (1, ?1, ?2, ?3)",
                rusqlite::params![id, x, y],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        db
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 30, ..ProptestConfig::default() })]

        #[test]
        fn aflw_reader_never_panics_and_round_trips(
            rows in prop::collection::vec((-2i64..25, prop::option::of(-1e4f64..1e4), prop::option::of(-1e4f64..1e4)), 0..25)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let db = aflw_db(dir.path(), &rows);
            let opts = LoadOptions { skip_bad: false, check_images: false, ..LoadOptions::default() };
            let r = aflw::load(&db, &opts, &Default::default());
            let valid = rows.iter().all(|(id, x, y)| (1..=21).contains(id) && x.is_some() && y.is_some());
            prop_assert_eq!(r.is_ok(), valid, "{:?}", r.as_ref().err().map(|e| e.to_string()));
            if let Ok((d, _)) = r {
                let s = &d.samples[0];
                for (id, x, y) in rows.iter().rev() {
                    // The last row of a feature id wins; check the ones that appear once.
                    if rows.iter().filter(|r| r.0 == *id).count() == 1 {
                        let k = (*id - 1) as usize;
                        prop_assert!(s.visible[k]);
                        prop_assert_eq!(s.landmarks[k], [x.unwrap() as f32, y.unwrap() as f32]);
                    }
                }
                prop_assert_eq!(s.visible.iter().filter(|&&v| v).count(),
                    rows.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>().len());
            }
        }
    }
}

#[cfg(not(feature = "aflw"))]
#[test]
fn without_the_feature_the_error_names_it() {
    use landmark_ssl_data::formats::aflw;
    use landmark_ssl_data::{Error, LoadOptions};
    let db = std::path::Path::new("faces/aflw.sqlite");
    let e = aflw::load(db, &LoadOptions::default(), &Default::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::FeatureDisabled {
                feature: "aflw",
                ..
            }
        ),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(
        m.contains("`aflw` feature") && m.contains("faces/aflw.sqlite"),
        "{m}"
    );
}
