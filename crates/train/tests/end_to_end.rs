//! A tiny model trained for a few steps through the whole pipeline: data, model, costs
//! L + ELT + A, checkpoints, resume, report.

use std::path::{Path, PathBuf};

use landmark_ssl_models::{ConvSpec, HeadConfig, InputSize, ModelConfig, SeqMtConfig};
use landmark_ssl_train::{Error, ExperimentConfig, Trainer};

fn tiny_experiment(dir: &Path, epochs: usize) -> ExperimentConfig {
    let mut cfg = ExperimentConfig {
        name: "tiny".into(),
        seed: 7,
        ..Default::default()
    };
    cfg.data.kind = landmark_ssl_train::DataKind::Blocks;
    cfg.data.generated_sizes = [96, 24, 24];
    cfg.labels.landmark_fraction = 0.25;
    cfg.model.config = Some(ModelConfig::SeqMt(SeqMtConfig {
        in_channels: 1,
        input_size: InputSize::square(60),
        num_landmarks: 5,
        beta: 1.0,
        convs: vec![ConvSpec::new(5, 4), ConvSpec::new(3, 5)],
        map_negative_slope: 0.0,
        coord_scale: Default::default(),
        heads: vec![HeadConfig::class("config", 15, &[16], 0.25)],
    }));
    cfg.schedule.epochs = epochs;
    // Every cost from the first step: these tests are about the loop, not the recipe.
    cfg.costs.warmup_epochs = 0;
    cfg.schedule.lr_rampup_epochs = 0;
    cfg.schedule.restart_optimizer_at_join = false;
    cfg.schedule.batch_size = 12;
    cfg.schedule.labelled_per_batch = 4;
    cfg.schedule.max_steps_per_epoch = 3;
    cfg.output.dir = dir.to_path_buf();
    cfg.output.progress = false;
    cfg.output.overlays = 3;
    cfg
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lssl-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The best checkpoint's tensors, by name, as flat f32 vectors.
fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    weights_in(&dir.join("best.safetensors"))
}

/// The tensors of a weight file, by name, as flat f32 vectors.
fn weights_in(file: &Path) -> Vec<(String, Vec<f32>)> {
    let tensors = candle_core::safetensors::load(file, &candle_core::Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            let t = t.to_dtype(candle_core::DType::F32).unwrap();
            (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn train_checkpoint_resume_and_report() {
    // An uninterrupted run of 2 epochs.
    let a = fresh_dir("a");
    let out_a = Trainer::new(tiny_experiment(&a, 2)).unwrap().run().unwrap();
    assert_eq!(out_a.epochs, 2);
    assert!(out_a.test.mean_error.is_finite() && out_a.test.mean_error > 0.0);
    assert_eq!(out_a.test.images, 24);
    assert!(out_a.test.accuracy.contains_key("config"));

    // The same experiment interrupted after epoch 1, then resumed by a new trainer.
    let b = fresh_dir("b");
    let out_b1 = Trainer::new(tiny_experiment(&b, 1)).unwrap().run().unwrap();
    assert_eq!(out_b1.epochs, 1);
    let mut resumed = Trainer::new(tiny_experiment(&b, 2)).unwrap();
    assert_eq!(
        resumed.epochs_done(),
        1,
        "the trainer must pick up the checkpoint"
    );
    let out_b = resumed.run().unwrap();
    assert_eq!(out_b.epochs, 2);
    assert_eq!(out_b.best_epoch, out_a.best_epoch);
    assert_eq!(
        out_b.test.per_image, out_a.test.per_image,
        "resume must equal the uninterrupted run"
    );
    assert!(
        weights(&a) == weights(&b),
        "resumed weights differ from the uninterrupted run's"
    );

    // The log has one line per epoch; the report and its pictures exist.
    let log = std::fs::read_to_string(a.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for term in ["landmark", "elt", "attribute:config", "total"] {
        assert!(
            first["train"][term].as_f64().unwrap().is_finite(),
            "term {term} in {first}"
        );
    }
    let report = std::fs::read_to_string(&out_a.report).unwrap();
    assert!(report.contains("mean error (px)"), "{report}");
    assert!(a.join("ced.png").exists());
    // The curve as numbers: 201 rows from 0 to the threshold, fractions rising to at most 1.
    let ced = std::fs::read_to_string(a.join("ced.csv")).unwrap();
    let mut rows = ced.lines();
    assert_eq!(rows.next(), Some("error_px,fraction"));
    let rows: Vec<(f64, f64)> = rows
        .map(|l| {
            let (e, f) = l.split_once(',').unwrap();
            (e.parse().unwrap(), f.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 201);
    assert_eq!(rows[0].0, 0.0);
    assert!((rows[200].0 - 5.0).abs() < 1e-12);
    assert!(rows.windows(2).all(|w| w[0].1 <= w[1].1 && w[1].1 <= 1.0));
    let passed = out_a.test.per_image.iter().filter(|e| **e <= 5.0).count();
    let expected = passed as f64 / out_a.test.images as f64;
    assert!(
        (rows[200].1 - expected).abs() < 1e-9,
        "{} against {expected}",
        rows[200].1
    );
    for i in 0..3 {
        assert!(a.join(format!("overlays/test-{i:03}.png")).exists());
    }
    // Only the last epoch's files are kept beside the best checkpoint.
    assert!(a.join("epoch-0002.safetensors").exists());
    assert!(!a.join("epoch-0001.safetensors").exists());
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn non_finite_loss_names_the_term_and_step() {
    let d = fresh_dir("nan");
    let mut cfg = tiny_experiment(&d, 1);
    cfg.costs.lambda = 1e300; // overflows f32: the landmark term becomes infinite
    let err = Trainer::new(cfg).unwrap().run().unwrap_err();
    match &err {
        Error::NonFinite {
            term, epoch, step, ..
        } => {
            assert_eq!(term, "landmark");
            assert_eq!((*epoch, *step), (1, 1));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("landmark"));
    assert!(
        !d.join("state.json").exists(),
        "no checkpoint from a broken step"
    );
    let _ = std::fs::remove_dir_all(d);
}

/// Each epoch reports its steps' gradient norms; with `clip_grad_norm` below every norm,
/// every step is clipped and the weights move differently; a negative bound is refused.
#[test]
fn gradient_norms_are_reported_and_clipped() {
    let epochs_of = |dir: &Path| -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let free = fresh_dir("clip-off");
    Trainer::new(tiny_experiment(&free, 1))
        .unwrap()
        .run()
        .unwrap();
    let rec = &epochs_of(&free)[0]["grad_norm"];
    let (mean, max) = (rec["mean"].as_f64().unwrap(), rec["max"].as_f64().unwrap());
    assert!(mean > 0.0 && mean.is_finite() && max >= mean, "{rec}");
    assert_eq!(rec["clipped_steps"].as_u64(), Some(0));

    let clipped = fresh_dir("clip-on");
    let mut cfg = tiny_experiment(&clipped, 1);
    cfg.schedule.clip_grad_norm = 1e-3;
    Trainer::new(cfg).unwrap().run().unwrap();
    let rec = &epochs_of(&clipped)[0]["grad_norm"];
    // The first step is the same in both runs (the norm is taken before clipping).
    assert!(rec["max"].as_f64().unwrap() > 1e-3, "{rec}");
    assert_eq!(
        rec["clipped_steps"].as_u64(),
        Some(3),
        "3 steps, all clipped"
    );
    assert_ne!(weights(&free), weights(&clipped));

    let mut bad = tiny_experiment(&fresh_dir("clip-bad"), 1);
    bad.schedule.clip_grad_norm = -1.0;
    let err = Trainer::new(bad).err().expect("must refuse").to_string();
    assert!(err.contains("schedule.clip_grad_norm"), "{err}");
    for d in [free, clipped] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn resuming_into_another_experiment_is_refused() {
    let d = fresh_dir("other");
    Trainer::new(tiny_experiment(&d, 1)).unwrap().run().unwrap();
    let mut cfg = tiny_experiment(&d, 2);
    cfg.labels.landmark_fraction = 0.5;
    let err = Trainer::new(cfg).err().expect("must refuse").to_string();
    assert!(err.contains("different experiment"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn learning_rate_ramps_up_after_each_start_of_adam_and_resumes_mid_ramp() {
    let ramped = |dir: &Path, epochs: usize, restart: bool| {
        let mut cfg = tiny_experiment(dir, epochs);
        cfg.costs.warmup_epochs = 1;
        cfg.schedule.lr_rampup_epochs = 2;
        cfg.schedule.lr_decay = 0.5;
        cfg.schedule.adam.lr = 1e-3;
        cfg.schedule.restart_optimizer_at_join = restart;
        cfg
    };
    let rates = |dir: &Path| -> Vec<f64> {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let check = |got: Vec<f64>, want: [f64; 4]| {
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} against {want:?}");
        }
    };
    // The rate of each epoch's last step: 3 steps per epoch, a ramp of 6 steps from the
    // first step, and the schedule halving the rate after every epoch.
    let a = fresh_dir("ramp-a");
    Trainer::new(ramped(&a, 4, false)).unwrap().run().unwrap();
    check(rates(&a), [1e-3 * 3.0 / 6.0, 0.5e-3, 0.25e-3, 0.125e-3]);
    // Adam restarted at the join: a second ramp from there.
    let c = fresh_dir("ramp-c");
    Trainer::new(ramped(&c, 4, true)).unwrap().run().unwrap();
    check(
        rates(&c),
        [1e-3 * 3.0 / 6.0, 0.5e-3 * 3.0 / 6.0, 0.25e-3, 0.125e-3],
    );
    // Interrupted inside the ramp and resumed: the same run.
    let b = fresh_dir("ramp-b");
    Trainer::new(ramped(&b, 1, false)).unwrap().run().unwrap();
    Trainer::new(ramped(&b, 4, false)).unwrap().run().unwrap();
    assert!(
        weights(&a) == weights(&b),
        "resumed weights differ from the uninterrupted run's"
    );
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn optimizer_restarts_when_the_unlabelled_costs_join_and_resumes_across_the_join() {
    let joined = |dir: &Path, epochs: usize, restart: bool| {
        let mut cfg = tiny_experiment(dir, epochs);
        cfg.costs.warmup_epochs = 1;
        cfg.schedule.restart_optimizer_at_join = restart;
        cfg
    };
    let a = fresh_dir("restart-a");
    Trainer::new(joined(&a, 3, true)).unwrap().run().unwrap();
    // Interrupted at the join (the checkpoint holds the warm-up's moments) and resumed:
    // the restart happens on resume, and the run is the same.
    let b = fresh_dir("restart-b");
    Trainer::new(joined(&b, 1, true)).unwrap().run().unwrap();
    Trainer::new(joined(&b, 3, true)).unwrap().run().unwrap();
    let last = |d: &Path| weights_in(&d.join("epoch-0003.safetensors"));
    assert!(
        last(&a) == last(&b),
        "resumed weights differ from the uninterrupted run's"
    );
    // Without the restart, the same schedule ends elsewhere.
    let c = fresh_dir("restart-c");
    Trainer::new(joined(&c, 3, false)).unwrap().run().unwrap();
    assert!(last(&a) != last(&c), "the restart changed nothing");
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn the_weight_average_is_validated_checkpointed_and_resumed() {
    let averaged = |dir: &Path, epochs: usize, decay: f64| {
        let mut cfg = tiny_experiment(dir, epochs);
        cfg.schedule.weight_average_decay = decay;
        cfg
    };
    let a = fresh_dir("average-a");
    let mut trainer = Trainer::new(averaged(&a, 3, 0.9)).unwrap();
    let out_a = trainer.run().unwrap();
    // The finished trainer holds the best weights and trains no further.
    let err = trainer.next_epoch().unwrap_err().to_string();
    assert!(err.contains("finish()"), "{err}");
    // Interrupted after epoch 1 and resumed: the same run, averages and all.
    let b = fresh_dir("average-b");
    Trainer::new(averaged(&b, 1, 0.9)).unwrap().run().unwrap();
    let out_b = Trainer::new(averaged(&b, 3, 0.9)).unwrap().run().unwrap();
    assert_eq!(out_a.test.per_image, out_b.test.per_image);
    let last = |d: &Path| weights_in(&d.join("epoch-0003.safetensors"));
    let optim = |d: &Path| weights_in(&d.join("epoch-0003.optim.safetensors"));
    assert!(last(&a) == last(&b), "resumed averages differ");
    assert!(optim(&a) == optim(&b), "resumed optimiser states differ");
    // The average does not steer the optimisation: the optimised weights (kept in the
    // optimiser file) are those of the same run without it, and the checkpoint holds
    // the average, which differs from them.
    let c = fresh_dir("average-c");
    Trainer::new(averaged(&c, 3, 0.0)).unwrap().run().unwrap();
    let raw: Vec<(String, Vec<f32>)> = optim(&a)
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("average.raw.")?.to_string(), v)))
        .collect();
    assert_eq!(raw.len(), last(&c).len());
    assert!(raw == last(&c), "averaging changed the optimised weights");
    assert!(
        last(&a) != last(&c),
        "the checkpoint holds the optimised weights"
    );
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Relative clipping keeps its running norm in the optimiser file, and a run interrupted
/// and resumed is the uninterrupted run.
#[test]
fn relative_clipping_resumes_exactly() {
    let clipped = |dir: &Path, epochs: usize| {
        let mut cfg = tiny_experiment(dir, epochs);
        cfg.schedule.clip_grad_relative = 1.5;
        cfg
    };
    let a = fresh_dir("relclip-a");
    Trainer::new(clipped(&a, 3)).unwrap().run().unwrap();
    let b = fresh_dir("relclip-b");
    Trainer::new(clipped(&b, 1)).unwrap().run().unwrap();
    Trainer::new(clipped(&b, 3)).unwrap().run().unwrap();
    let optim = |d: &Path| weights_in(&d.join("epoch-0003.optim.safetensors"));
    let running: Vec<f32> = optim(&a)
        .into_iter()
        .find(|(k, _)| k == "clip.running_norm")
        .expect("the running norm is saved")
        .1;
    assert!(running.len() == 1 && running[0] > 0.0, "{running:?}");
    assert!(optim(&a) == optim(&b), "resumed optimiser states differ");
    assert!(
        weights_in(&a.join("epoch-0003.safetensors"))
            == weights_in(&b.join("epoch-0003.safetensors")),
        "resumed weights differ"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// `schedule.attribute_lr_scale` scales the step of the attribute heads alone. Adam's first
/// step moves each weight by the rate times its gradient's sign, so after one step the
/// heads' weights are `w0 + scale * d` for one `d` whatever the scale, and the map network
/// takes the same step in every run.
#[test]
fn the_attribute_path_steps_at_its_own_rate() {
    let one_step = |name: &str, scale: f64| {
        let dir = fresh_dir(name);
        let mut cfg = tiny_experiment(&dir, 1);
        cfg.schedule.max_steps_per_epoch = 1;
        cfg.schedule.weight_average_decay = 0.0;
        cfg.schedule.attribute_lr_scale = scale;
        if let Some(ModelConfig::SeqMt(m)) = &mut cfg.model.config {
            m.heads[0].dropout = 0.0;
        }
        Trainer::new(cfg).unwrap().run().unwrap();
        let w = weights_in(&dir.join("epoch-0001.safetensors"));
        std::fs::remove_dir_all(dir).unwrap();
        w
    };
    let (full, half, quarter) = (
        one_step("attr-rate-1", 1.0),
        one_step("attr-rate-0.5", 0.5),
        one_step("attr-rate-0.25", 0.25),
    );
    let mut heads = 0;
    for ((name, f), ((_, h), (_, q))) in full.iter().zip(half.iter().zip(&quarter)) {
        if name.starts_with("heads.") {
            heads += 1;
            // (w0 + d) - (w0 + d / 2) = 2 ((w0 + d / 2) - (w0 + d / 4)).
            for ((f, h), q) in f.iter().zip(h).zip(q) {
                approx::assert_abs_diff_eq!(f - h, 2.0 * (h - q), epsilon = 1e-6);
            }
            assert!(f != h, "{name} did not move at its own rate");
        } else {
            assert!(f == h && h == q, "{name} moved with the heads' rate");
        }
    }
    assert!(heads > 0);
    let dir = fresh_dir("attr-rate-bad");
    let mut cfg = tiny_experiment(&dir, 1);
    cfg.schedule.attribute_lr_scale = 1.5;
    let err = Trainer::new(cfg)
        .err()
        .expect("a scale above 1")
        .to_string();
    assert!(err.contains("schedule.attribute_lr_scale"), "{err}");
}
