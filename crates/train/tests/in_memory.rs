//! Training on splits a program built in memory (`Trainer::from_splits`), stopping from an
//! epoch callback, and predicting with the saved weights.

use std::ops::ControlFlow;

use candle_core::Device;
use landmark_ssl_data::{Dataset, DatasetMeta, GreyImage, Image, ImageSource, Layout, Sample};
use landmark_ssl_models::{
    ConvSpec, CoordScale, InputSize, ModelConfig, Predictor, Region, SeqMtConfig,
};
use landmark_ssl_train::checkpoint::best_path;
use landmark_ssl_train::{DataKind, ExperimentConfig, Splits, Trainer};

const SIDE: usize = 16;

/// A fresh folder of this test process.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lssl-mem-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `n` images of a bright 3x3 square at a pseudo-random place; its centre is the landmark.
fn squares(n: usize, seed: usize, k: usize) -> Dataset {
    let samples = (0..n)
        .map(|i| {
            let h = (i * 7919 + seed * 104_729) % 100;
            let (cx, cy) = (3 + h % 10, 3 + (h / 10) % 10);
            let mut px = vec![20u8; SIDE * SIDE];
            for y in cy - 1..=cy + 1 {
                for x in cx - 1..=cx + 1 {
                    px[y * SIDE + x] = 230;
                }
            }
            let img = ImageSource::Memory(GreyImage::new(SIDE, SIDE, px).unwrap());
            Sample::new(img, vec![[cx as f32, cy as f32]; k])
        })
        .collect();
    let meta = DatasetMeta {
        name: "squares".into(),
        layout: Layout::Generic { n: k, flip: None },
        classes: Default::default(),
        reals: Default::default(),
    };
    Dataset::new(samples, meta).unwrap()
}

fn experiment(dir: &std::path::Path) -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    cfg.data.kind = DataKind::InMemory;
    cfg.model.config = Some(ModelConfig::SeqMt(SeqMtConfig {
        in_channels: 1,
        input_size: InputSize::square(SIDE),
        num_landmarks: 1,
        beta: 1.0,
        convs: vec![ConvSpec::new(5, 4), ConvSpec::new(1, 1)],
        map_negative_slope: 1.0,
        coord_scale: CoordScale::Unit,
        heads: vec![],
    }));
    cfg.costs.set_from_label("L").unwrap();
    cfg.labels.landmark_fraction = 0.5;
    cfg.schedule.epochs = 8;
    cfg.schedule.batch_size = 16;
    cfg.schedule.labelled_per_batch = 16;
    cfg.output.dir = dir.to_path_buf();
    cfg.output.progress = false;
    cfg
}

/// The mean distance of the truth to the image centre: what a model that learned nothing
/// (a flat map) scores.
fn centre_error(ds: &Dataset) -> f64 {
    let c = (SIDE as f64 - 1.0) / 2.0;
    let d: f64 = ds
        .samples
        .iter()
        .map(|s| {
            let p = s.landmarks[0];
            ((p[0] as f64 - c).powi(2) + (p[1] as f64 - c).powi(2)).sqrt()
        })
        .sum();
    d / ds.len() as f64
}

#[test]
fn trains_on_memory_stops_from_the_callback_and_predicts_from_the_checkpoint() {
    let dir = fresh_dir("train");
    let cfg = experiment(&dir);
    let test = squares(40, 3, 1);
    let baseline = centre_error(&test);
    let splits = Splits::new(squares(320, 1, 1), squares(40, 2, 1), test.clone(), &cfg).unwrap();
    assert_eq!(splits.labels.with_landmarks, 160);
    let mut trainer = Trainer::from_splits(cfg, splits).unwrap();
    let mut seen = Vec::new();
    let outcome = trainer
        .run_with(|e| {
            seen.push(e.epoch);
            if e.epoch == 6 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    assert_eq!(outcome.epochs, 6);
    assert!(
        outcome.test.mean_error < 0.5 * baseline,
        "test error {} px against {baseline} px at the centre",
        outcome.test.mean_error
    );

    // The checkpoint, reloaded, predicts in the images' pixels with a confidence.
    let p = Predictor::from_checkpoint(best_path(&dir), &Device::Cpu).unwrap();
    let mut err = 0.0;
    for s in &test.samples {
        let img = s.load_image().unwrap();
        let out = p
            .predict_pixels(&img.to_f32(), SIDE, SIDE, Region::Whole)
            .unwrap();
        let (q, t) = (out.landmarks[0], s.landmarks[0]);
        err += (((q[0] - t[0]).powi(2) + (q[1] - t[1]).powi(2)) as f64).sqrt();
        let c = out.confidence.unwrap()[0];
        assert!(c > 1.0 / (SIDE * SIDE) as f32 && c <= 1.0, "{c}");
    }
    let err = err / test.len() as f64;
    assert!(
        (err - outcome.test.mean_error).abs() < 1e-3,
        "the predictor's error {err} px, the trainer's {} px",
        outcome.test.mean_error
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flagged_splits_keep_the_programs_labels() {
    let mut train = squares(20, 1, 1);
    for (i, s) in train.samples.iter_mut().enumerate() {
        s.has_landmarks = i < 3;
        s.has_attributes = false;
    }
    let s = Splits::as_flagged(train, squares(5, 2, 1), squares(5, 3, 1)).unwrap();
    assert_eq!(s.labels.with_landmarks, 3);
    assert_eq!(
        s.train.samples.iter().filter(|s| s.has_landmarks).count(),
        3
    );
}

#[test]
fn splits_that_disagree_and_loading_in_memory_data_are_errors() {
    let dir = fresh_dir("errors");
    let cfg = experiment(&dir);
    let e = Splits::new(squares(10, 1, 1), squares(5, 2, 2), squares(5, 3, 1), &cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("splits.valid") && e.contains("2 landmarks"),
        "{e}"
    );
    let e = Trainer::new(cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("from_splits"), "{e}");
    // The model must match the data.
    let cfg = experiment(&dir);
    let splits = Splits::new(squares(10, 1, 2), squares(5, 2, 2), squares(5, 3, 2), &cfg).unwrap();
    let e = Trainer::from_splits(cfg, splits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("landmarks"), "{e}");
}

/// `n` RGB images: a red square (the landmark) and a green one of the same luma elsewhere,
/// so that only colour tells them apart.
fn red_and_green(n: usize, seed: usize) -> Dataset {
    let samples = (0..n)
        .map(|i| {
            let h = (i * 7919 + seed * 104_729) % 10_000;
            let red = (3 + h % 10, 3 + (h / 10) % 10);
            let mut green = (3 + (h / 100) % 10, 3 + (h / 1000) % 10);
            if red.0.abs_diff(green.0) < 4 && red.1.abs_diff(green.1) < 4 {
                green = ((red.0 + 5) % 10 + 3, (red.1 + 5) % 10 + 3);
            }
            let mut px = vec![20u8; SIDE * SIDE * 3];
            for (c, rgb) in [(red, [255u8, 0, 0]), (green, [0, 76, 0])] {
                for y in c.1 - 1..=c.1 + 1 {
                    for x in c.0 - 1..=c.0 + 1 {
                        px[(y * SIDE + x) * 3..][..3].copy_from_slice(&rgb);
                    }
                }
            }
            let img = Image::with_channels(SIDE, SIDE, 3, px).unwrap();
            Sample::new(ImageSource::Memory(img), vec![[red.0 as f32, red.1 as f32]])
        })
        .collect();
    let meta = DatasetMeta {
        name: "red-and-green".into(),
        layout: Layout::Generic { n: 1, flip: None },
        classes: Default::default(),
        reals: Default::default(),
    };
    Dataset::new(samples, meta).unwrap()
}

/// Trains on red-and-green images with `channels` (1: their luma, where the squares look
/// alike; 3: colour); returns the test error and the run folder.
fn train_red_and_green(channels: usize) -> (f64, std::path::PathBuf) {
    let dir = fresh_dir(&format!("colour{channels}"));
    let mut cfg = experiment(&dir);
    cfg.data.channels = channels;
    if let Some(ModelConfig::SeqMt(c)) = &mut cfg.model.config {
        c.in_channels = channels;
    }
    let splits = Splits::new(
        red_and_green(320, 1),
        red_and_green(40, 2),
        red_and_green(40, 3),
        &cfg,
    )
    .unwrap();
    let outcome = Trainer::from_splits(cfg, splits).unwrap().run().unwrap();
    (outcome.test.mean_error, dir)
}

#[test]
fn a_colour_model_trains_and_predicts_end_to_end() {
    let (grey, grey_dir) = train_red_and_green(1);
    let (colour, dir) = train_red_and_green(3);
    println!("test error: grey {grey:.3} px, colour {colour:.3} px");
    assert!(
        colour < 0.5 * grey,
        "colour {colour} px against grey {grey} px: colour should tell the squares apart"
    );
    // The checkpoint records 3 channels; the predictor takes RGB pixels as decoded.
    let p = Predictor::from_checkpoint(best_path(&dir), &Device::Cpu).unwrap();
    assert_eq!(p.in_channels(), 3);
    let test = red_and_green(40, 3);
    let mut err = 0.0;
    for s in &test.samples {
        let img = s.load_image().unwrap();
        assert_eq!(img.channels, 3);
        let out = p
            .predict_pixels_interleaved(&img.to_f32(), 3, SIDE, SIDE, Region::Whole)
            .unwrap();
        let (q, t) = (out.landmarks[0], s.landmarks[0]);
        err += (((q[0] - t[0]).powi(2) + (q[1] - t[1]).powi(2)) as f64).sqrt();
    }
    let err = err / test.len() as f64;
    assert!(
        (err - colour).abs() < 1e-3,
        "predictor {err} px, trainer {colour} px"
    );
    // A colour model on grey-prepared data is refused, naming the setting.
    let mut cfg = experiment(&dir);
    if let Some(ModelConfig::SeqMt(c)) = &mut cfg.model.config {
        c.in_channels = 3;
    }
    let splits = Splits::new(squares(10, 1, 1), squares(5, 2, 1), squares(5, 3, 1), &cfg).unwrap();
    let e = Trainer::from_splits(cfg, splits)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("data.channels"), "{e}");
    for d in [dir, grey_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
