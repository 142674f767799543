//! The grid of `examples/table1.rs`: the paper's Table 1 on Blocks (eight rows of model
//! and costs, six columns of the fraction of training images with landmark labels, the
//! paper's value per cell), the selection of `--rows`, `--fractions` and `--seeds`, and the
//! order of the runs ([`plan`]).

use std::fmt;

/// The columns: fractions of the training images with landmark labels.
pub const FRACTIONS: [f64; 6] = [0.01, 0.05, 0.1, 0.2, 0.5, 1.0];

/// The most seeds one `--seeds` may select.
pub const MAX_SEEDS: usize = 1000;

/// One row of Table 1.
#[derive(Debug, PartialEq)]
pub struct Row {
    /// The name on the command line and in the results file: `<family>-<costs>`.
    pub id: &'static str,
    /// The paper's name.
    pub name: &'static str,
    /// The model-zoo preset.
    pub preset: &'static str,
    /// The costs, as `CostConfig::label` writes them (L, ELT, A in that order).
    pub costs: &'static str,
    /// `schedule.adam.lr`: `None` keeps the recipe's rate (`ExperimentConfig::default()`).
    /// Comm-MT and Heatmap-MT keep the rate at which their rows were measured and their
    /// class paths tuned, 1e-3; Seq-MT learns at the recipe's
    /// (docs/experiments/table1-schedule.md).
    pub lr: Option<f64>,
    /// `costs.label_smoothing`: `None` keeps the recipe's. Comm-MT and Heatmap-MT keep the
    /// plain cross-entropy with which their class paths were tuned and their rows measured.
    pub label_smoothing: Option<f64>,
    /// `schedule.attribute_lr_scale`: the class path's rate against the row's rate.
    /// The Comm-MT and Heatmap-MT class heads stay at chance at 1e-3, where their landmarks
    /// need it (docs/experiments/commmt-heatmapmt.md).
    pub attribute_lr_scale: f64,
    /// The paper's test error (px, mean of 5 seeds) per column of [`FRACTIONS`], from the
    /// first; the ELT rows stop before 100%, where no unlabelled image is left.
    pub paper: &'static [f64],
}

/// The rate of the Comm-MT and Heatmap-MT rows.
const BASELINE_LR: Option<f64> = Some(1e-3);
/// Their class cost: the paper's plain cross-entropy.
const BASELINE_SMOOTHING: Option<f64> = Some(0.0);
/// Seq-MT's class head learns at the recipe's rate.
const SEQMT_ATTRIBUTE: f64 = 1.0;
/// The deep-trunk models' class paths: 3e-4 (their class learns at that rate, A alone or
/// beside L, seed 0).
const BASELINE_ATTRIBUTE: f64 = 0.3;

/// The paper's Table 1 (Blocks), in the paper's order.
#[rustfmt::skip]
#[allow(clippy::approx_constant)] // Heatmap-MT (L+A) at 50% is 3.14 px, not pi
pub static ROWS: [Row; 8] = [
    Row { id: "seqmt-L", name: "Seq-MT (L)", preset: "seqmt-blocks", costs: "L",
          lr: None, label_smoothing: None, attribute_lr_scale: SEQMT_ATTRIBUTE,
          paper: &[8.33, 3.95, 3.35, 1.98, 1.19, 0.44] },
    Row { id: "seqmt-L+A", name: "Seq-MT (L+A)", preset: "seqmt-blocks", costs: "L+A",
          lr: None, label_smoothing: None, attribute_lr_scale: SEQMT_ATTRIBUTE,
          paper: &[8.02, 3.45, 3.20, 1.67, 1.05, 0.38] },
    Row { id: "seqmt-L+ELT", name: "Seq-MT (L+ELT)", preset: "seqmt-blocks", costs: "L+ELT",
          lr: None, label_smoothing: None, attribute_lr_scale: SEQMT_ATTRIBUTE,
          paper: &[6.42, 1.94, 1.37, 1.16, 0.85] },
    Row { id: "seqmt-L+ELT+A", name: "Seq-MT (L+ELT+A)", preset: "seqmt-blocks", costs: "L+ELT+A",
          lr: None, label_smoothing: None, attribute_lr_scale: SEQMT_ATTRIBUTE,
          paper: &[6.25, 1.70, 1.26, 1.07, 0.74] },
    Row { id: "commmt-L", name: "Comm-MT (L)", preset: "commmt-blocks", costs: "L",
          lr: BASELINE_LR, label_smoothing: BASELINE_SMOOTHING, attribute_lr_scale: BASELINE_ATTRIBUTE,
          paper: &[12.89, 11.56, 10.72, 9.39, 5.04, 3.41] },
    Row { id: "commmt-L+A", name: "Comm-MT (L+A)", preset: "commmt-blocks", costs: "L+A",
          lr: BASELINE_LR, label_smoothing: BASELINE_SMOOTHING, attribute_lr_scale: BASELINE_ATTRIBUTE,
          paper: &[12.28, 11.19, 10.36, 9.01, 4.21, 2.97] },
    Row { id: "heatmapmt-L", name: "Heatmap-MT (L)", preset: "heatmapmt-blocks", costs: "L",
          lr: BASELINE_LR, label_smoothing: BASELINE_SMOOTHING, attribute_lr_scale: BASELINE_ATTRIBUTE,
          paper: &[10.09, 6.59, 5.27, 3.82, 2.78, 2.01] },
    Row { id: "heatmapmt-L+A", name: "Heatmap-MT (L+A)", preset: "heatmapmt-blocks", costs: "L+A",
          lr: BASELINE_LR, label_smoothing: BASELINE_SMOOTHING, attribute_lr_scale: BASELINE_ATTRIBUTE,
          paper: &[9.27, 6.35, 5.62, 3.75, 3.14, 2.23] },
];

/// The order rows run in within a seed (indices into [`ROWS`]): the two Seq-MT rows the
/// issue's checks compare first, then the other Seq-MT rows, then the baselines.
const RUN_ORDER: [usize; 8] = [0, 3, 2, 1, 4, 5, 6, 7];

/// The column of `fraction` in [`FRACTIONS`].
pub fn column(fraction: f64) -> Option<usize> {
    FRACTIONS.iter().position(|f| (f - fraction).abs() < 1e-9)
}

impl Row {
    /// The paper's value at `fraction`; `None` outside the grid.
    pub fn paper_at(&self, fraction: f64) -> Option<f64> {
        column(fraction).and_then(|c| self.paper_in(c))
    }

    /// The paper's value in column `c` of [`FRACTIONS`]; `None` where it has none.
    pub fn paper_in(&self, c: usize) -> Option<f64> {
        self.paper.get(c).copied()
    }

    /// The row of `id` (exactly as [`Row::id`]).
    pub fn by_id(id: &str) -> Option<&'static Row> {
        ROWS.iter().find(|r| r.id == id)
    }
}

/// A `--rows`, `--fractions` or `--seeds` the grid cannot take.
#[derive(Debug)]
pub struct SelectionError {
    pub flag: &'static str,
    pub reason: String,
}

impl fmt::Display for SelectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{}: {}", self.flag, self.reason)
    }
}

impl std::error::Error for SelectionError {}

/// `L`, `ELT`, `A` joined in that order, from any order and case; `None` for an unknown
/// cost or a repeated one.
pub fn canonical_costs(label: &str) -> Option<String> {
    let mut on = [false; 3];
    for part in label.split('+') {
        let i = ["L", "ELT", "A"]
            .iter()
            .position(|c| c.eq_ignore_ascii_case(part.trim()))?;
        if on[i] {
            return None;
        }
        on[i] = true;
    }
    let names: Vec<&str> = ["L", "ELT", "A"]
        .iter()
        .zip(on)
        .filter_map(|(n, o)| o.then_some(*n))
        .collect();
    Some(names.join("+"))
}

fn selection_err(flag: &'static str, reason: String) -> SelectionError {
    SelectionError { flag, reason }
}

/// `--rows`: `all`, or a comma-separated list of row ids (`seqmt-L+ELT+A`, costs in any
/// order) and families (`seqmt`, `commmt`, `heatmapmt`: all their rows). In [`ROWS`]' order.
pub fn parse_rows(spec: &str) -> Result<Vec<&'static Row>, SelectionError> {
    let mut chosen = [false; 8];
    for item in spec.split(',').map(str::trim) {
        if item.eq_ignore_ascii_case("all") {
            chosen = [true; 8];
            continue;
        }
        let (family, costs) = item.split_once('-').unwrap_or((item, ""));
        let family = family.to_ascii_lowercase();
        let costs = if costs.is_empty() {
            None
        } else {
            Some(canonical_costs(costs).ok_or_else(|| {
                selection_err("rows", format!("`{item}`: costs are L, ELT, A joined by +"))
            })?)
        };
        let mut found = false;
        for (i, r) in ROWS.iter().enumerate() {
            let (f, c) = r.id.split_once('-').unwrap_or((r.id, ""));
            if f == family && costs.as_deref().is_none_or(|costs| costs == c) {
                chosen[i] = true;
                found = true;
            }
        }
        if !found {
            let ids: Vec<&str> = ROWS.iter().map(|r| r.id).collect();
            return Err(selection_err(
                "rows",
                format!("no row `{item}`; the rows are {}", ids.join(", ")),
            ));
        }
    }
    Ok(ROWS
        .iter()
        .zip(chosen)
        .filter(|(_, c)| *c)
        .map(|(r, _)| r)
        .collect())
}

/// `--fractions`: `all`, or a comma-separated list of the columns, as fractions (`0.05`)
/// or percentages (`5%`). Ascending, without repeats.
pub fn parse_fractions(spec: &str) -> Result<Vec<f64>, SelectionError> {
    let mut chosen = [false; 6];
    for item in spec.split(',').map(str::trim) {
        if item.eq_ignore_ascii_case("all") {
            chosen = [true; 6];
            continue;
        }
        let value = match item.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
            None => item.parse::<f64>(),
        };
        let col = value.ok().and_then(column).ok_or_else(|| {
            selection_err(
                "fractions",
                format!("`{item}` is not a column of Table 1 (0.01, 0.05, 0.1, 0.2, 0.5, 1, or 1%, 5%, ...)"),
            )
        })?;
        chosen[col] = true;
    }
    Ok(FRACTIONS
        .iter()
        .zip(chosen)
        .filter_map(|(f, c)| c.then_some(*f))
        .collect())
}

/// `--seeds`: comma-separated seeds and inclusive ranges (`0-2,5`). Ascending, without
/// repeats, at most [`MAX_SEEDS`].
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>, SelectionError> {
    let bad = |item: &str| {
        selection_err(
            "seeds",
            format!("`{item}`: expected seeds and ranges such as 0-2,5"),
        )
    };
    let mut seeds = std::collections::BTreeSet::new();
    for item in spec.split(',').map(str::trim) {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let (a, b) = match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(bad(item)),
        };
        if b - a >= MAX_SEEDS as u64 || seeds.len() + ((b - a) as usize) >= MAX_SEEDS {
            return Err(selection_err(
                "seeds",
                format!("`{spec}` selects more than {MAX_SEEDS} seeds"),
            ));
        }
        seeds.extend(a..=b);
    }
    Ok(seeds.into_iter().collect())
}

/// One run of the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedRun {
    pub row: &'static Row,
    pub fraction: f64,
    pub seed: u64,
}

/// The selected cells' runs, seed-major (every cell gets a seed before any gets the
/// next), within a seed in [`RUN_ORDER`], then by fraction; cells the paper does not have
/// (ELT rows at 100%) are left out.
pub fn plan(rows: &[&'static Row], fractions: &[f64], seeds: &[u64]) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for &seed in seeds {
        for &i in &RUN_ORDER {
            let row = &ROWS[i];
            if !rows.iter().any(|r| std::ptr::eq(*r, row)) {
                continue;
            }
            for &fraction in fractions {
                if row.paper_at(fraction).is_some() {
                    runs.push(PlannedRun {
                        row,
                        fraction,
                        seed,
                    });
                }
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_parses_lists_ranges_and_families() {
        let rows = parse_rows("seqmt-L, seqmt-A+L+ELT").unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["seqmt-L", "seqmt-L+ELT+A"]);
        assert_eq!(parse_rows("heatmapmt").unwrap().len(), 2);
        assert_eq!(parse_rows("all").unwrap().len(), 8);
        for bad in ["seqmt-L+X", "commmt-L+ELT", "nope", "seqmt-L+L"] {
            let err = parse_rows(bad).unwrap_err().to_string();
            assert!(err.starts_with("--rows:") && err.contains(bad), "{err}");
        }
        assert_eq!(parse_fractions("0.1,5%,0.05").unwrap(), [0.05, 0.1]);
        assert_eq!(parse_fractions("all").unwrap(), FRACTIONS);
        assert!(parse_fractions("0.3").is_err());
        assert!(parse_fractions("x").is_err());
        assert_eq!(parse_seeds("0-2").unwrap(), [0, 1, 2]);
        assert_eq!(parse_seeds("5,0-1,1").unwrap(), [0, 1, 5]);
        for bad in ["2-1", "a", "-1", "0-", "", "0-18446744073709551615"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_plan_is_seed_major_and_leaves_out_cells_the_paper_lacks() {
        let rows = parse_rows("seqmt-L,seqmt-L+ELT+A").unwrap();
        let runs = plan(&rows, &[0.5, 1.0], &[0, 1]);
        let got: Vec<(&str, f64, u64)> = runs
            .iter()
            .map(|r| (r.row.id, r.fraction, r.seed))
            .collect();
        assert_eq!(
            got,
            [
                ("seqmt-L", 0.5, 0),
                ("seqmt-L", 1.0, 0),
                ("seqmt-L+ELT+A", 0.5, 0),
                ("seqmt-L", 0.5, 1),
                ("seqmt-L", 1.0, 1),
                ("seqmt-L+ELT+A", 0.5, 1),
            ]
        );
        // The whole grid: 8 rows x 6 columns less the two ELT rows at 100%.
        let all = plan(&parse_rows("all").unwrap(), &FRACTIONS, &[0]);
        assert_eq!(all.len(), 46);
    }

    #[test]
    fn costs_are_canonical() {
        assert_eq!(canonical_costs("a+l+elt").as_deref(), Some("L+ELT+A"));
        assert_eq!(canonical_costs("L").as_deref(), Some("L"));
        assert_eq!(canonical_costs("L+Q"), None);
        assert_eq!(canonical_costs("A+A"), None);
    }
}
