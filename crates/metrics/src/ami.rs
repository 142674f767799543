//! Mutual information between two labelings, and its adjustment for chance (AMI).
//!
//! Labels are arbitrary `usize` values (they need not be contiguous); only equality
//! matters. All logarithms are natural: entropies and mutual information are in **nats**.
//! AMI is unit-free.
//!
//! The definitions are those of Vinh, Epps and Bailey, "Information Theoretic Measures for
//! Clusterings Comparison", JMLR 2010, with the arithmetic-mean normalisation, i.e. what
//! scikit-learn's `adjusted_mutual_info_score(a, b)` computes by default (its edge cases and
//! its clamping of numerator and denominator away from zero included):
//!
//! `AMI(a, b) = (MI(a, b) - E[MI]) / ((H(a) + H(b)) / 2 - E[MI])`,
//!
//! where `E[MI]` is the expected mutual information of two random labelings with the same
//! cluster sizes (the hypergeometric model).

use rayon::prelude::*;

use crate::error::{check_len, check_nonempty, Result};

/// Cluster sizes of one labeling, and each sample's cluster index (0..sizes.len()).
struct Clusters {
    index: Vec<usize>,
    sizes: Vec<u64>,
}

fn clusters(labels: &[usize]) -> Clusters {
    let mut unique = labels.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut sizes = vec![0u64; unique.len()];
    let index: Vec<usize> = labels
        .iter()
        .map(|l| {
            // `l` is in `unique` by construction, so the search always succeeds.
            let i = unique.binary_search(l).unwrap_or_else(|i| i);
            sizes[i] += 1;
            i
        })
        .collect();
    Clusters { index, sizes }
}

fn check_pair(op: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    check_nonempty(op, "a", a)?;
    check_len(op, "b", "a", a.len(), b.len())
}

/// Entropy of the cluster sizes `sizes` summing to `n`, in nats (sklearn's `_entropy`).
fn entropy_of_sizes(sizes: &[u64], n: u64) -> f64 {
    if sizes.len() <= 1 {
        return 0.0;
    }
    let ln_n = (n as f64).ln();
    let nf = n as f64;
    -sizes
        .iter()
        .map(|&s| (s as f64 / nf) * ((s as f64).ln() - ln_n))
        .sum::<f64>()
}

/// The nonzero cells `(row, column, count)` of the contingency table of two labelings,
/// sorted by (row, column).
fn contingency_nonzero(ca: &Clusters, cb: &Clusters) -> Vec<(usize, usize, u64)> {
    let ncols = cb.sizes.len() as u128;
    let mut keys: Vec<u128> = ca
        .index
        .iter()
        .zip(&cb.index)
        .map(|(&i, &j)| i as u128 * ncols + j as u128)
        .collect();
    keys.sort_unstable();
    let mut cells = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let key = keys[start];
        let end = start + keys[start..].partition_point(|&k| k == key);
        cells.push((
            (key / ncols) as usize,
            (key % ncols) as usize,
            (end - start) as u64,
        ));
        start = end;
    }
    cells
}

/// Mutual information of the contingency table, in nats (sklearn's `mutual_info_score`,
/// term by term: cells whose term is below machine epsilon in magnitude count as 0, and
/// the sum is clipped at 0).
fn mutual_info_of(ca: &Clusters, cb: &Clusters, n: u64) -> f64 {
    if ca.sizes.len() == 1 || cb.sizes.len() == 1 {
        return 0.0;
    }
    let nf = n as f64;
    let ln_n = nf.ln();
    let mi: f64 = contingency_nonzero(ca, cb)
        .into_iter()
        .map(|(i, j, c)| {
            let cnm = c as f64 / nf;
            let outer = (ca.sizes[i] as f64) * (cb.sizes[j] as f64);
            let log_outer = -outer.ln() + ln_n + ln_n;
            let t = cnm * ((c as f64).ln() - ln_n) + cnm * log_outer;
            if t.abs() < f64::EPSILON {
                0.0
            } else {
                t
            }
        })
        .sum();
    mi.max(0.0)
}

/// Distinct values of `sizes` with their multiplicities.
fn size_histogram(sizes: &[u64]) -> Vec<(u64, u64)> {
    let mut s = sizes.to_vec();
    s.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for v in s {
        match out.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

/// Relative weight (to the mode's) below which hypergeometric terms are dropped. The
/// probability mass dropped is below ~1e-20 of the pair's total.
const TAIL_CUTOFF: f64 = 1e-22;

/// `sum_{nij} P(nij) * nij / n * ln(n * nij / (a * b))` for one pair of cluster sizes,
/// `P` the hypergeometric law of the overlap of a cluster of size `a` with one of size `b`
/// among `n` samples.
///
/// The probabilities are computed from the mode outwards with the ratio recurrence
/// `P(k+1) / P(k) = (a - k)(b - k) / ((k + 1)(n - a - b + k + 1))`, unnormalised (the mode
/// has weight 1), and normalised at the end by their sum over the whole support (which is
/// 1 for the exact law): no factorials, no cancellation of large log-gamma values, and the
/// loop stops where the weights become negligible, so it visits only the range that
/// contributes (O(standard deviation) terms instead of min(a, b)).
fn emi_pair(a: u64, b: u64, n: u64) -> f64 {
    let lo = (a + b).saturating_sub(n); // support of the overlap: [lo, hi]
    let hi = a.min(b);
    let mode = (((a as u128 + 1) * (b as u128 + 1)) / (n as u128 + 2)) as u64;
    let mode = mode.clamp(lo, hi);
    let nf = n as f64;
    let (af, bf) = (a as f64, b as f64);
    let c = nf.ln() - af.ln() - bf.ln();
    // n - a - b in f64 (may be negative); n - a - b + k >= 0 on the support k >= lo.
    let tail_base = nf - af - bf;
    let term = |k: u64, w: f64| -> f64 {
        if k == 0 {
            0.0
        } else {
            let kf = k as f64;
            w * kf * (kf.ln() + c)
        }
    };
    let mut weight_sum = 1.0;
    let mut acc = term(mode, 1.0);
    // Upwards: k -> k + 1.
    let mut w = 1.0;
    let mut k = mode;
    while k < hi {
        let kf = k as f64;
        w *= (af - kf) * (bf - kf) / ((kf + 1.0) * (tail_base + kf + 1.0));
        k += 1;
        weight_sum += w;
        acc += term(k, w);
        if w < TAIL_CUTOFF {
            break;
        }
    }
    // Downwards: k -> k - 1.
    let mut w = 1.0;
    let mut k = mode;
    while k > lo {
        let kf = k as f64;
        w *= kf * (tail_base + kf) / ((af - kf + 1.0) * (bf - kf + 1.0));
        k -= 1;
        weight_sum += w;
        acc += term(k, w);
        if w < TAIL_CUTOFF {
            break;
        }
    }
    acc / weight_sum / nf
}

/// Expected mutual information (nats) of two labelings with cluster sizes `a_sizes` and
/// `b_sizes` (each summing to `n`) under the hypergeometric (permutation) model.
///
/// The double sum over clusters is grouped by distinct cluster sizes (a labeling of n
/// samples has at most ~sqrt(2n) distinct sizes), and the rows are spread over rayon's
/// threads when there are many; the result is summed in a fixed order (deterministic).
fn expected_mutual_info_of(a_sizes: &[u64], b_sizes: &[u64], n: u64) -> f64 {
    if a_sizes.len() <= 1 || b_sizes.len() <= 1 {
        return 0.0;
    }
    let ha = size_histogram(a_sizes);
    let hb = size_histogram(b_sizes);
    let row = |&(a, ma): &(u64, u64)| -> f64 {
        hb.iter()
            .map(|&(b, mb)| (ma * mb) as f64 * emi_pair(a, b, n))
            .sum::<f64>()
    };
    let rows: Vec<f64> = if ha.len() * hb.len() >= 64 {
        ha.par_iter().map(row).collect()
    } else {
        ha.iter().map(row).collect()
    };
    rows.iter().sum()
}

/// Shannon entropy of a labeling, in **nats**: `-sum_c (n_c / n) ln(n_c / n)`.
///
/// Errors: empty `labels`.
///
/// ```
/// use landmark_ssl_metrics::entropy;
/// assert!((entropy(&[0, 1, 0, 1]).unwrap() - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(entropy(&[7, 7, 7]).unwrap(), 0.0);
/// ```
pub fn entropy(labels: &[usize]) -> Result<f64> {
    check_nonempty("entropy", "labels", labels)?;
    let c = clusters(labels);
    Ok(entropy_of_sizes(&c.sizes, labels.len() as u64))
}

/// Mutual information of two labelings of the same samples, in **nats** (scikit-learn's
/// `mutual_info_score`). `a`, `b`: one label per sample (N each).
///
/// Errors: empty input, length mismatch.
pub fn mutual_info(a: &[usize], b: &[usize]) -> Result<f64> {
    check_pair("mutual_info", a, b)?;
    let (ca, cb) = (clusters(a), clusters(b));
    Ok(mutual_info_of(&ca, &cb, a.len() as u64))
}

/// Expected mutual information (nats) between two random labelings with the cluster sizes
/// of `a` and `b` (hypergeometric model, Vinh et al. 2010, Eq. 24b); scikit-learn's
/// `expected_mutual_information`.
///
/// Errors: empty input, length mismatch.
pub fn expected_mutual_info(a: &[usize], b: &[usize]) -> Result<f64> {
    check_pair("expected_mutual_info", a, b)?;
    let (ca, cb) = (clusters(a), clusters(b));
    Ok(expected_mutual_info_of(
        &ca.sizes,
        &cb.sizes,
        a.len() as u64,
    ))
}

/// Adjusted mutual information of two labelings of the same N samples (unit-free; 1 for
/// identical partitions, about 0 for independent ones, possibly slightly negative).
///
/// `AMI = (MI - E[MI]) / ((H(a) + H(b)) / 2 - E[MI])` (Vinh et al. 2010, arithmetic-mean
/// normalisation), exactly as scikit-learn's `adjusted_mutual_info_score(a, b)` (default
/// `average_method="arithmetic"`), including its special cases:
/// - both labelings have a single cluster: 1.0 (a perfect match of "no clustering");
/// - exactly one has a single cluster: 0.0;
/// - numerator and denominator are clamped away from 0 by machine epsilon, keeping their
///   sign (so identical all-singleton labelings give 1.0, not 0/0).
///
/// Labels are compared for equality only (any `usize` values, permutation-invariant).
///
/// **Why a `Result`** (the issue sketched `-> f64`): inputs of different lengths, or empty
/// inputs, have no AMI. scikit-learn raises on the former and returns 1.0 for the latter;
/// here both are an [`crate::Error`] instead of a panic or a made-up value.
///
/// Cost: O(N log N) for the contingency table, plus the expected-MI sum over pairs of
/// *distinct* cluster sizes with O(standard deviation) hypergeometric terms each
/// (parallel over rows with rayon).
///
/// ```
/// use landmark_ssl_metrics::adjusted_mutual_info;
/// let a = [0, 0, 1, 1, 2, 2];
/// let b = [5, 5, 3, 3, 9, 9]; // the same partition, renamed
/// assert!((adjusted_mutual_info(&a, &b).unwrap() - 1.0).abs() < 1e-12);
/// assert!(adjusted_mutual_info(&a, &b[..5]).is_err());
/// ```
pub fn adjusted_mutual_info(a: &[usize], b: &[usize]) -> Result<f64> {
    check_pair("adjusted_mutual_info", a, b)?;
    let (ca, cb) = (clusters(a), clusters(b));
    let (ra, rb) = (ca.sizes.len(), cb.sizes.len());
    if ra == 1 && rb == 1 {
        return Ok(1.0);
    }
    if ra == 1 || rb == 1 {
        return Ok(0.0);
    }
    let n = a.len() as u64;
    let mi = mutual_info_of(&ca, &cb, n);
    let emi = expected_mutual_info_of(&ca.sizes, &cb.sizes, n);
    let h_a = entropy_of_sizes(&ca.sizes, n);
    let h_b = entropy_of_sizes(&cb.sizes, n);
    let normalizer = (h_a + h_b) / 2.0;
    let clamp = |x: f64| {
        if x < 0.0 {
            x.min(-f64::EPSILON)
        } else {
            x.max(f64::EPSILON)
        }
    };
    Ok(clamp(mi - emi) / clamp(normalizer - emi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hypergeometric sum computed directly from factorials (small n only).
    fn emi_pair_direct(a: u64, b: u64, n: u64) -> f64 {
        let lf = |k: u64| (1..=k).map(|i| (i as f64).ln()).sum::<f64>();
        let lo = (a + b).saturating_sub(n).max(1);
        let hi = a.min(b);
        let mut s = 0.0;
        for k in lo..=hi {
            let lnp = lf(a) + lf(b) + lf(n - a) + lf(n - b)
                - lf(n)
                - lf(k)
                - lf(a - k)
                - lf(b - k)
                - lf(n + k - a - b);
            let kf = k as f64;
            s += lnp.exp() * kf / n as f64 * (n as f64 * kf / (a as f64 * b as f64)).ln();
        }
        s
    }

    #[test]
    fn emi_pair_matches_direct_sum() {
        for &(a, b, n) in &[
            (1, 1, 2),
            (3, 4, 10),
            (7, 7, 10),
            (10, 10, 10),
            (9, 1, 10),
            (20, 35, 60),
            (50, 50, 100),
            (1, 99, 100),
            (120, 300, 400),
        ] {
            let fast = emi_pair(a, b, n);
            let direct = emi_pair_direct(a, b, n);
            assert!(
                (fast - direct).abs() < 1e-12 * (1.0 + direct.abs()),
                "a={a} b={b} n={n}: {fast} vs {direct}"
            );
        }
    }

    #[test]
    fn contingency_counts() {
        let ca = clusters(&[3, 3, 1, 1, 1]);
        let cb = clusters(&[0, 2, 2, 2, 0]);
        assert_eq!(ca.sizes, vec![3, 2]);
        let cells = contingency_nonzero(&ca, &cb);
        // label 1 -> row 0 (b: 2, 2, 0), label 3 -> row 1 (b: 0, 2)
        assert_eq!(cells, vec![(0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 1, 1)]);
    }

    #[test]
    fn size_histogram_groups() {
        assert_eq!(
            size_histogram(&[3, 1, 3, 2, 1, 3]),
            vec![(1, 2), (2, 1), (3, 3)]
        );
    }
}
