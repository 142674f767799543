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
    assert_eq!(c.join_epoch(), 0);
    assert!((0..4).all(|e| !c.joins_at(e)));
    // Without it but with A and ELT, A warms up and ELT joins.
    c.set_from_label("ELT+A")?;
    c.map_spread = 0.001;
    c.map_overlap = 1.0;
    assert_eq!(c.join_epoch(), 2);
    assert_eq!(c.active(0).label(), "A");
    // The costs on the maps' shape join with ELT.
    let warm = c.active(1);
    assert_eq!((warm.map_spread, warm.map_overlap), (0.0, 0.0));
    let joined = c.active(2);
    assert_eq!((joined.map_spread, joined.map_overlap), (0.001, 1.0));
    assert_eq!(c.active(1).label(), "A");
    assert_eq!(c.active(2).label(), "ELT+A");
    let joins: Vec<usize> = (0..6).filter(|&e| c.joins_at(e)).collect();
    assert_eq!(joins, [2]);
    // ELT alone has nothing to warm up with.
    c.set_from_label("ELT")?;
    assert_eq!(c.join_epoch(), 0);
    assert_eq!(c.active(0).label(), "ELT");
    Ok(())
}

#[test]
fn lr_rampup_grows_linearly_after_each_fresh_start_of_adam() -> TestResult {
    let mut cfg = ExperimentConfig::default();
    cfg.costs.warmup_epochs = 2;
    cfg.schedule.epochs = 6;
    cfg.schedule.lr_rampup_epochs = 2;
    cfg.schedule.restart_optimizer_at_join = false;
    let steps = 10;
    let rising = |cfg: &ExperimentConfig, from: usize| {
        let mut last = 0.0;
        for e in from..from + 2 {
            for s in 0..steps {
                let f = cfg.lr_rampup_factor(e, s, steps);
                assert!(f > last && f <= 1.0, "epoch {e} step {s}: {f} after {last}");
                last = f;
            }
        }
        assert_eq!(last, 1.0);
    };
    // Adam starts at the first step: 20 steps from 1/20 to 1, rising at every step.
    assert_relative_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0 / 20.0);
    assert_relative_eq!(cfg.lr_rampup_factor(0, 9, steps), 0.5);
    assert_relative_eq!(cfg.lr_rampup_factor(1, 4, steps), 15.0 / 20.0);
    rising(&cfg, 0);
    // Adam kept at the join: no second ramp.
    assert_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0);
    // Adam restarted at the join: a second ramp from there.
    cfg.schedule.restart_optimizer_at_join = true;
    assert_relative_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0 / 20.0);
    assert_relative_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0 / 20.0);
    rising(&cfg, 2);
    assert_eq!(cfg.lr_rampup_factor(5, 0, steps), 1.0);
    // The landmark cost alone: nothing joins, nothing restarts.
    cfg.costs.set_from_label("L")?;
    assert_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0);
    assert_relative_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0 / 20.0);
    // Without the landmark cost there is no warm-up: the one ramp starts at once.
    cfg.costs.set_from_label("A")?;
    assert_relative_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0 / 20.0);
    assert_eq!(cfg.lr_rampup_factor(2, 0, steps), 1.0);
    cfg.schedule.lr_rampup_epochs = 0;
    assert_eq!(cfg.lr_rampup_factor(0, 0, steps), 1.0);
    Ok(())
}

#[test]
fn cost_rampup_grows_the_joining_weights_from_the_join() -> TestResult {
    let mut cfg = ExperimentConfig::default();
    cfg.costs.warmup_epochs = 2;
    cfg.costs.rampup_epochs = 2;
    let steps = 10;
    assert_eq!(cfg.cost_rampup_factor(1, 9, steps), 1.0);
    assert_relative_eq!(cfg.cost_rampup_factor(2, 0, steps), 1.0 / 20.0);
    assert_relative_eq!(cfg.cost_rampup_factor(3, 4, steps), 15.0 / 20.0);
    assert_eq!(cfg.cost_rampup_factor(3, 9, steps), 1.0);
    assert_eq!(cfg.cost_rampup_factor(7, 0, steps), 1.0);
    // Nothing joins after a warm-up with the landmark cost alone.
    cfg.costs.set_from_label("L")?;
    assert_eq!(cfg.cost_rampup_factor(2, 0, steps), 1.0);
    // Without a warm-up every cost starts together: nothing is ramped.
    cfg.costs.set_from_label("A")?;
    assert_eq!(cfg.cost_rampup_factor(0, 0, steps), 1.0);
    cfg.costs.set_from_label("L+ELT+A")?;
    cfg.costs.warmup_epochs = 0;
    assert_eq!(cfg.cost_rampup_factor(0, 0, steps), 1.0);
    cfg.costs.warmup_epochs = 2;
    cfg.costs.rampup_epochs = 0;
    assert_eq!(cfg.cost_rampup_factor(2, 0, steps), 1.0);
    Ok(())
}

#[test]
fn cosine_anneal_falls_from_the_end_of_the_warm_up_to_zero() -> TestResult {
    let mut cfg = ExperimentConfig::default();
    cfg.costs.warmup_epochs = 2;
    cfg.schedule.epochs = 6;
    cfg.schedule.lr_anneal = LrAnneal::None;
    let steps = 10;
    assert_eq!(cfg.lr_anneal_factor(4, 3, steps), 1.0);
    cfg.schedule.lr_anneal = LrAnneal::Cosine;
    // The warm-up: the full rate.
    assert_eq!(cfg.lr_anneal_factor(0, 0, steps), 1.0);
    assert_eq!(cfg.lr_anneal_factor(1, 9, steps), 1.0);
    // 40 steps after it, from 1 on the first to nearly 0 on the last, falling at each.
    assert_eq!(cfg.lr_anneal_factor(2, 0, steps), 1.0);
    assert_relative_eq!(cfg.lr_anneal_factor(4, 0, steps), 0.5, epsilon = 1e-12);
    let want = |done: f64| 0.5 * (1.0 + (std::f64::consts::PI * done / 40.0).cos());
    assert_relative_eq!(cfg.lr_anneal_factor(3, 7, steps), want(17.0));
    let mut last = f64::INFINITY;
    for e in 2..6 {
        for s in 0..steps {
            let f = cfg.lr_anneal_factor(e, s, steps);
            assert!(f < last && f > 0.0, "epoch {e} step {s}: {f} after {last}");
            last = f;
        }
    }
    assert!(last < 0.01);
    // The landmark cost alone keeps the same schedule (rows stay comparable).
    cfg.costs.set_from_label("L")?;
    assert_relative_eq!(cfg.lr_anneal_factor(4, 0, steps), 0.5, epsilon = 1e-12);
    // Without a warm-up, the whole run.
    cfg.costs.set_from_label("A")?;
    assert_relative_eq!(cfg.lr_anneal_factor(3, 0, steps), 0.5, epsilon = 1e-12);
    // Beyond the schedule (a resumed run given more epochs): 0, never negative.
    assert_eq!(cfg.lr_anneal_factor(9, 0, steps), 0.0);
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

/// The attribute path's rate scale is written only when it is not 1, so that configs (and
/// the fingerprints made from them) written before it existed keep their form; it reads
/// back, and is bounded to (0, 1].
#[test]
fn attribute_lr_scale_is_written_only_off_its_default() -> TestResult {
    let mut cfg = ExperimentConfig::default();
    assert!(!serde_json::to_string(&cfg)?.contains("attribute_lr_scale"));
    cfg.schedule.attribute_lr_scale = 0.3;
    let text = toml::to_string(&cfg)?;
    assert!(text.contains("attribute_lr_scale = 0.3"), "{text}");
    let back: ExperimentConfig = toml::from_str(&text)?;
    assert_eq!(back.schedule.attribute_lr_scale, 0.3);
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        cfg.schedule.attribute_lr_scale = bad;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("schedule.attribute_lr_scale"), "{err}");
    }
    Ok(())
}
