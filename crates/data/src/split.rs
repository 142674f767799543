//! Splits: semi-supervised label masks (which samples keep landmark / attribute labels),
//! random splits and subject-disjoint splits.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::rng::{purpose, rng_for};
use crate::sample::Dataset;

/// What [`semi_supervised`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSummary {
    /// Samples that keep landmark labels.
    pub with_landmarks: usize,
    /// Samples that keep attribute labels.
    pub with_attributes: usize,
    /// Landmark-labelled samples per class of the balancing attribute (empty without one).
    pub landmarks_per_class: Vec<usize>,
    /// The attribute used for balancing, if any.
    pub balanced_by: Option<String>,
}

/// A class-balanced order of the samples: each class shuffled, then classes interleaved
/// round-robin (in a shuffled class order each round), so every prefix holds each class
/// as evenly as availability allows. Samples without the attribute come last, shuffled.
/// Deterministic for `seed`.
pub fn balanced_order(dataset: &Dataset, attribute: Option<&str>, seed: u64) -> Vec<usize> {
    let mut rng = rng_for(seed, purpose::SPLIT, 0);
    let Some(attr) = attribute else {
        let mut all: Vec<usize> = (0..dataset.len()).collect();
        all.shuffle(&mut rng);
        return all;
    };
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut rest = Vec::new();
    for (i, s) in dataset.samples.iter().enumerate() {
        match s.classes.get(attr) {
            Some(&c) => groups.entry(c).or_default().push(i),
            None => rest.push(i),
        }
    }
    let mut queues: Vec<Vec<usize>> = groups
        .into_values()
        .map(|mut g| {
            g.shuffle(&mut rng);
            g.reverse(); // pop from the back = shuffled order
            g
        })
        .collect();
    let mut out = Vec::with_capacity(dataset.len());
    loop {
        let mut order: Vec<usize> = (0..queues.len())
            .filter(|&q| !queues[q].is_empty())
            .collect();
        if order.is_empty() {
            break;
        }
        order.shuffle(&mut rng);
        for q in order {
            if let Some(i) = queues[q].pop() {
                out.push(i);
            }
        }
    }
    rest.shuffle(&mut rng);
    out.extend(rest);
    out
}

/// Marks which samples keep their labels for semi-supervised training: the first
/// `round(landmark_fraction * N)` samples of a class-balanced order ([`balanced_order`],
/// balanced over the data set's first class attribute when it has one) keep landmark labels
/// (`has_landmarks = true`), and the first `round(attribute_fraction * N)` of the **same
/// order** keep attribute labels (`has_attributes = true`), so the two sets are nested (the
/// smaller inside the larger). All other samples get the flags cleared; ground truth stays
/// in the samples for evaluation. A positive fraction keeps at least one sample.
/// Deterministic for `seed`.
///
/// Errors with [`Error::InvalidArgument`] for fractions outside [0, 1] and
/// [`Error::EmptyDataset`] for an empty data set.
pub fn semi_supervised(
    dataset: &mut Dataset,
    landmark_fraction: f64,
    attribute_fraction: f64,
    seed: u64,
) -> Result<LabelSummary> {
    let attr = dataset.meta.classes.keys().next().cloned();
    semi_supervised_by(
        dataset,
        landmark_fraction,
        attribute_fraction,
        seed,
        attr.as_deref(),
    )
}

/// [`semi_supervised`] balancing over the class attribute `balance_by` (e.g. `"pose"` for
/// MTFL), or over nothing (a plain shuffle) with `None`.
///
/// Errors: as [`semi_supervised`], and [`Error::InvalidArgument`] when `balance_by` is not
/// a class attribute of the data set.
pub fn semi_supervised_by(
    dataset: &mut Dataset,
    landmark_fraction: f64,
    attribute_fraction: f64,
    seed: u64,
    balance_by: Option<&str>,
) -> Result<LabelSummary> {
    if let Some(a) = balance_by {
        if !dataset.meta.classes.contains_key(a) {
            return Err(Error::arg(
                "balance_by",
                format!(
                    "`{a}` is not a class attribute of {} ({:?})",
                    dataset.meta.name,
                    dataset.meta.classes.keys().collect::<Vec<_>>()
                ),
            ));
        }
    }
    for (name, f) in [
        ("landmark_fraction", landmark_fraction),
        ("attribute_fraction", attribute_fraction),
    ] {
        if !(0.0..=1.0).contains(&f) {
            return Err(Error::arg(name, format!("{f} is not in [0, 1]")));
        }
    }
    if dataset.is_empty() {
        return Err(Error::EmptyDataset {
            what: dataset.meta.name.clone(),
        });
    }
    let attr = balance_by.map(str::to_string);
    let order = balanced_order(dataset, attr.as_deref(), seed);
    let n = dataset.len();
    let count = |f: f64| -> usize {
        let c = (f * n as f64).round() as usize;
        if f > 0.0 {
            c.clamp(1, n)
        } else {
            0
        }
    };
    let (nl, na) = (count(landmark_fraction), count(attribute_fraction));
    for s in &mut dataset.samples {
        s.has_landmarks = false;
        s.has_attributes = false;
    }
    for (rank, &i) in order.iter().enumerate() {
        let s = &mut dataset.samples[i];
        s.has_landmarks = rank < nl;
        s.has_attributes = rank < na;
    }
    let landmarks_per_class = match &attr {
        Some(a) => {
            let k = dataset.meta.classes.get(a).copied().unwrap_or(0);
            let mut v = vec![0; k];
            for s in dataset.samples.iter().filter(|s| s.has_landmarks) {
                if let Some(&c) = s.classes.get(a) {
                    if c < k {
                        v[c] += 1;
                    }
                }
            }
            v
        }
        None => Vec::new(),
    };
    Ok(LabelSummary {
        with_landmarks: nl,
        with_attributes: na,
        landmarks_per_class,
        balanced_by: attr,
    })
}

fn check_fractions(fractions: &[f64]) -> Result<()> {
    if fractions.is_empty() || fractions.iter().any(|f| f.is_nan() || *f < 0.0) {
        return Err(Error::arg(
            "fractions",
            format!("{fractions:?}: need non-negative values"),
        ));
    }
    let total: f64 = fractions.iter().sum();
    if total.is_nan() || total <= 0.0 || total > 1.0 + 1e-9 {
        return Err(Error::arg(
            "fractions",
            format!("{fractions:?} sum to {total}, need (0, 1]"),
        ));
    }
    Ok(())
}

/// Random split of sample indices into parts of the given fractions of N (cumulative
/// rounding; fractions summing to 1 use every sample). Deterministic for `seed`.
pub fn random_split_indices(n: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    check_fractions(fractions)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng_for(seed, purpose::SPLIT, 1));
    let mut out = Vec::new();
    let mut cum = 0.0;
    let mut start = 0;
    for f in fractions {
        cum += f;
        let end = ((cum * n as f64).round() as usize).min(n);
        out.push(idx[start..end.max(start)].to_vec());
        start = end.max(start);
    }
    Ok(out)
}

/// Subject-disjoint split: subjects (samples without a subject each count as their own
/// subject) are shuffled with `seed`, then assigned in order to the parts, a subject going
/// to the part whose cumulative target `sum(fractions[..=j]) * N` its middle sample falls
/// under. No subject appears in two parts; part sizes approach the fractions as closely as
/// whole subjects allow. Returns sample indices per part.
pub fn subject_split_indices(
    dataset: &Dataset,
    fractions: &[f64],
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    check_fractions(fractions)?;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in dataset.samples.iter().enumerate() {
        let key = match &s.subject {
            Some(id) => format!("s:{id}"),
            None => format!("#:{i}"),
        };
        groups.entry(key).or_default().push(i);
    }
    let mut subjects: Vec<Vec<usize>> = groups.into_values().collect();
    subjects.shuffle(&mut rng_for(seed, purpose::SPLIT, 2));
    let n = dataset.len() as f64;
    let bounds: Vec<f64> = fractions
        .iter()
        .scan(0.0, |c, f| {
            *c += f;
            Some(*c * n)
        })
        .collect();
    let mut out = vec![Vec::new(); fractions.len()];
    let mut taken = 0usize;
    for g in subjects {
        let mid = taken as f64 + g.len() as f64 / 2.0;
        taken += g.len();
        if let Some(j) = bounds.iter().position(|&b| mid < b) {
            out[j].extend(g);
        }
    }
    for part in &mut out {
        part.sort_unstable();
    }
    Ok(out)
}

/// [`subject_split_indices`] as data sets.
pub fn split_by_subject(dataset: &Dataset, fractions: &[f64], seed: u64) -> Result<Vec<Dataset>> {
    subject_split_indices(dataset, fractions, seed)?
        .iter()
        .map(|idx| dataset.subset(idx))
        .collect()
}

/// [`random_split_indices`] as data sets.
pub fn random_split(dataset: &Dataset, fractions: &[f64], seed: u64) -> Result<Vec<Dataset>> {
    random_split_indices(dataset.len(), fractions, seed)?
        .iter()
        .map(|idx| dataset.subset(idx))
        .collect()
}
