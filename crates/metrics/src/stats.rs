//! Summary statistics of error lists: mean, median, percentiles.
//!
//! All functions reject empty input and NaN/infinite values with an [`Error`] instead of
//! returning NaN. Values keep the caller's unit (fraction, percent or pixels).

use crate::error::{check_finite, check_nonempty, Error, Result};

/// Arithmetic mean of `values` (any unit; the result has the same unit).
///
/// Errors: empty input, a non-finite value.
///
/// ```
/// use landmark_ssl_metrics::mean;
/// assert_eq!(mean(&[1.0, 2.0, 6.0]).unwrap(), 3.0);
/// assert!(mean(&[]).is_err());
/// ```
pub fn mean(values: &[f64]) -> Result<f64> {
    check_nonempty("mean", "values", values)?;
    check_finite("mean", "values", values)?;
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// Median of `values` (the mean of the two middle values for an even count), i.e.
/// `percentile(values, 50.0)`.
///
/// Errors: empty input, a non-finite value.
///
/// ```
/// use landmark_ssl_metrics::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]).unwrap(), 2.0);
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]).unwrap(), 2.5);
/// ```
pub fn median(values: &[f64]) -> Result<f64> {
    percentile(values, 50.0)
}

/// The `p`-th percentile of `values`, `p` in **percent** [0, 100], with linear
/// interpolation between the closest ranks (numpy's default `method="linear"`): the sorted
/// values sit at positions `i / (n - 1)`, and the percentile is read off at `p / 100`.
///
/// Errors: empty input, a non-finite value, `p` outside [0, 100].
///
/// ```
/// use landmark_ssl_metrics::percentile;
/// let v = [0.0, 10.0, 20.0, 30.0, 40.0];
/// assert_eq!(percentile(&v, 90.0).unwrap(), 36.0);
/// assert_eq!(percentile(&v, 0.0).unwrap(), 0.0);
/// ```
pub fn percentile(values: &[f64], p: f64) -> Result<f64> {
    Ok(percentiles(values, &[p])?[0])
}

/// Several percentiles at once (one sort): `ps` in percent [0, 100]; returns one value per
/// entry of `ps`, in the order given. See [`percentile`].
pub fn percentiles(values: &[f64], ps: &[f64]) -> Result<Vec<f64>> {
    const OP: &str = "percentiles";
    check_nonempty(OP, "values", values)?;
    check_finite(OP, "values", values)?;
    for &p in ps {
        if !(0.0..=100.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: OP,
                arg: "p",
                value: p.to_string(),
                reason: "a percentile must lie in [0, 100]",
            });
        }
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Ok(ps
        .iter()
        .map(|&p| {
            let pos = p / 100.0 * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = pos - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        })
        .collect())
}

/// Converts a fraction (e.g. a normalised mean error of 0.051) to percent (5.1).
pub fn to_percent(fraction: f64) -> f64 {
    fraction * 100.0
}

/// Converts every value of `fractions` to percent (multiplies by 100).
pub fn to_percent_all(fractions: &[f64]) -> Vec<f64> {
    fractions.iter().map(|&f| to_percent(f)).collect()
}

/// Converts a percentage (5.1) to a fraction (0.051).
pub fn from_percent(percent: f64) -> f64 {
    percent / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile([1, 7, 3, 9], [25, 50, 75, 100]) = [2.5, 5., 7.5, 9.]
        let v = [1.0, 7.0, 3.0, 9.0];
        let got = percentiles(&v, &[25.0, 50.0, 75.0, 100.0]).unwrap();
        assert_eq!(got, vec![2.5, 5.0, 7.5, 9.0]);
        assert_eq!(percentile(&[5.0], 37.0).unwrap(), 5.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(mean(&[]), Err(Error::Empty { .. })));
        assert!(matches!(
            median(&[1.0, f64::NAN]),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            percentile(&[1.0], 101.0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(percentile(&[1.0], f64::NAN).is_err());
    }

    #[test]
    fn percent_helpers() {
        assert!((to_percent(0.051) - 5.1).abs() < 1e-12);
        assert!((from_percent(5.1) - 0.051).abs() < 1e-12);
        assert_eq!(to_percent_all(&[0.5, 0.25]), vec![50.0, 25.0]);
    }
}
