//! An experiment on generic CSV data names a layout file: the data get its flip permutation,
//! relative to the experiment file; other kinds refuse one.

use landmark_ssl_train::{build_splits, ExperimentConfig};

#[test]
fn a_generic_csv_experiment_reads_its_layout_file() {
    let dir = std::env::temp_dir().join(format!("lssl-train-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("image,points\n");
    for i in 0..20 {
        image::GrayImage::new(40, 30)
            .save(dir.join(format!("a{i}.png")))
            .unwrap();
        csv.push_str(&format!("a{i}.png,10 12 20 14 31 12\n"));
    }
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    std::fs::write(
        dir.join("layout.json"),
        r#"{"names": ["left", "middle", "right"], "flip": [["left", "right"]]}"#,
    )
    .unwrap();
    let toml = "[data]\nkind = \"generic-csv\"\ntrain = \"data.csv\"\nlayout = \"layout.json\"\njitter_flip = true\n[labels]\nlandmark_fraction = 1.0\n";
    std::fs::write(dir.join("exp.toml"), toml).unwrap();
    let cfg = ExperimentConfig::from_toml_file(&dir.join("exp.toml")).unwrap();
    assert_eq!(
        cfg.data.layout.as_deref(),
        Some(dir.join("layout.json").as_path())
    );
    let splits = build_splits(&cfg).unwrap();
    assert_eq!(
        splits.train.meta.layout.flip_permutation(),
        Some(vec![2, 1, 0])
    );
    // A format with its own layout refuses one.
    let e = ExperimentConfig::from_toml_str(
        "[data]\nkind = \"mtfl\"\ntrain = \"x\"\nlayout = \"l.json\"\n",
    )
    .unwrap()
    .validate()
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("data.layout") && e.contains("mtfl"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
