//! Tests of the experiment config: defaults, parsing, the cost schedule.

use super::*;
use approx::assert_relative_eq;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

#[test]
fn costs_join_only_where_a_warm_up_ends_and_something_joins() {
    let mut c = CostConfig {
        warmup_epochs: 3,
        ..Default::default()
    };
    assert!(c.landmark && (c.attribute || c.elt));
    let joins: Vec<usize> = (0..6).filter(|&e| c.joins_at(e)).collect();
    assert_eq!(joins, [3]);
    // L alone: nothing joins.
    c.attribute = false;
    c.elt = false;
    assert!((0..6).all(|e| !c.joins_at(e)));
    // No warm-up: A and ELT are on from the first step.
    let c = CostConfig {
        warmup_epochs: 0,
        ..Default::default()
    };
    assert!((0..6).all(|e| !c.joins_at(e)));
}

#[test]
fn smallest_file_takes_documented_defaults() -> TestResult {
    let cfg: ExperimentConfig = toml::from_str("[data]\nkind = \"blocks\"\n")?;
    assert_eq!(cfg.labels.landmark_fraction, 0.05);
    assert_eq!(cfg.model.preset, "seqmt-blocks");
    assert_eq!(cfg.costs.label(), "L+ELT+A");
    cfg.validate()?;
    Ok(())
}

#[test]
fn unknown_field_and_bad_ranges_are_named() {
    let err =
        toml::from_str::<ExperimentConfig>("[labels]\nlandmark_fractoin = 0.1\n").unwrap_err();
    assert!(err.to_string().contains("landmark_fractoin"), "{err}");
    let mut cfg = ExperimentConfig::default();
    cfg.labels.landmark_fraction = 1.5;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("labels.landmark_fraction"), "{err}");
}

#[test]
fn warmup_keeps_only_the_landmark_cost() -> TestResult {
    let mut c = CostConfig {
        warmup_epochs: 2,
        ..Default::default()
    };
    assert_eq!(c.active(0).label(), "L");
    assert_eq!(c.active(1).label(), "L");
    assert_eq!(c.active(2).label(), "L+ELT+A");
    // Without the landmark cost there is nothing to warm up with.
    c.set_from_label("A")?;
    assert_eq!(c.active(0).label(), "A");
    Ok(())
}

#[test]
fn lr_rampup_grows_linearly_from_the_join() -> TestResult {
    let mut cfg = ExperimentConfig::default();
    cfg.costs.warmup_epochs = 2;
    cfg.schedule.lr_rampup_epochs = 2;
    let steps = 10;
    // Before the join: the scheduled rate.
    assert_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0);
    assert_eq!(cfg.lr_rampup_factor(1, 9, steps), 1.0);
    // The ramp: 20 steps from 1/20 to 1, rising at every step.
    assert_relative_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0 / 20.0);
    assert_relative_eq!(cfg.lr_rampup_factor(2, 9, steps), 0.5);
    assert_relative_eq!(cfg.lr_rampup_factor(3, 4, steps), 15.0 / 20.0);
    assert_eq!(cfg.lr_rampup_factor(3, 9, steps), 1.0);
    assert_eq!(cfg.lr_rampup_factor(9, 0, steps), 1.0);
    let mut last = 0.0;
    for e in 2..4 {
        for s in 0..steps {
            let f = cfg.lr_rampup_factor(e, s, steps);
            assert!(f > last && f <= 1.0, "epoch {e} step {s}: {f} after {last}");
            last = f;
        }
    }
    // The landmark cost alone: nothing joins after the warm-up, so no ramp.
    cfg.costs.set_from_label("L")?;
    assert_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0);
    assert_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0);
    // Without the landmark cost nothing is warmed up: the ramp starts at once.
    cfg.costs.set_from_label("A")?;
    assert_relative_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0 / 20.0);
    cfg.schedule.lr_rampup_epochs = 0;
    assert_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0);
    Ok(())
}

#[test]
fn cost_labels_round_trip() -> TestResult {
    let mut c = CostConfig::default();
    for label in ["L", "L+A", "L+ELT", "L+ELT+A"] {
        c.set_from_label(label)?;
        assert_eq!(c.label(), label);
    }
    assert!(c.set_from_label("L+XYZ").is_err());
    Ok(())
}

#[test]
fn normalised_errors_get_the_face_benchmarks_thresholds() {
    let mut e = EvalConfig::default();
    assert_eq!(e.all_thresholds(), [5.0]);
    e.thresholds = vec![2.0, 5.0];
    assert_eq!(e.all_thresholds(), [2.0, 5.0]);
    e.normalizer = landmark_ssl_metrics::Normalizer::EyeCentres68;
    e.threshold = 0.1;
    e.thresholds = vec![0.05];
    assert_eq!(e.all_thresholds(), [0.05, 0.08, 0.1]);
}
