//! Ranks a data set's attributes by their adjusted mutual information (AMI) with the
//! landmarks: the attribute-selection heuristic of supplementary S.5.2 of Honari et al.
//! (CVPR 2018), printed as Table S2 prints it (AMI mean and max over landmarks, plus a
//! "random" baseline row of shuffled labels).
//!
//! For attribute A and landmark l: `AMI(A; x_l) + AMI(A; y_l)`, each coordinate (and each
//! real-valued attribute) discretised uniformly into at most `--levels` (20) levels; "AMI
//! mean" is the mean over landmarks, "AMI max" the max
//! (`landmark_ssl::metrics::attribute_landmark_ami`).
//!
//! ```text
//! cargo run --release --example select_attributes -- data.csv
//! cargo run --release --example select_attributes -- --blocks --num 3200
//! ```
//!
//! # CSV input
//! Plain comma-separated text (no quoting; `#` lines and blank lines are skipped), with a
//! header row:
//!
//! ```text
//! image,x1,y1,x2,y2,...,xK,yK,<attribute 1>,<attribute 2>,...
//! img/0001.png,31.5,40.0,52.25,41.0,...,3,-12.5
//! ```
//!
//! - column 1: an image name (not used);
//! - then the landmark columns, named `x1,y1,...,xK,yK` in the header (K is the number of
//!   such pairs), in pixels (any unit works: coordinates are discretised); an empty cell or
//!   `nan` marks a landmark not visible in that image (it is left out of that landmark's
//!   AMI);
//! - then one column per attribute, named in the header. A column whose every value is an
//!   integer is a **class** attribute (used as is); otherwise it is **real**-valued and
//!   discretised like the coordinates.
//!
//! # `--blocks`
//! Generates `--num` Blocks images (`landmark_ssl::data::blocks::generate`) and ranks their
//! attributes (the 15-class configuration).

#[path = "support/jemalloc.rs"]
mod jemalloc;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use landmark_ssl::metrics::{attribute_landmark_ami, AttributeScore, AttributeValues};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Parser, Debug)]
#[command(about = "Rank attributes by AMI with the landmarks (supplementary S.5.2)")]
struct Args {
    /// The CSV file (format in the example's docs).
    data: Option<PathBuf>,
    /// Use generated Blocks data instead of a CSV file.
    #[arg(long)]
    blocks: bool,
    /// Number of Blocks images to generate.
    #[arg(long, default_value_t = 3200)]
    num: usize,
    /// Seed of the Blocks generator and of the shuffled baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Discretisation levels (the paper: at most 20).
    #[arg(long, default_value_t = landmark_ssl::metrics::PAPER_LEVELS)]
    levels: usize,
    /// Also print each attribute's per-landmark scores.
    #[arg(long)]
    per_landmark: bool,
}

/// One attribute's values over the images.
enum Column {
    Classes(Vec<usize>),
    Real(Vec<f64>),
}

impl Column {
    fn as_values(&self) -> AttributeValues<'_> {
        match self {
            Column::Classes(c) => AttributeValues::Classes(c),
            Column::Real(r) => AttributeValues::Real(r),
        }
    }

    fn kind(&self) -> String {
        match self {
            Column::Classes(c) => {
                let mut u = c.clone();
                u.sort_unstable();
                u.dedup();
                format!("classes ({})", u.len())
            }
            Column::Real(_) => "real".to_string(),
        }
    }
}

/// A data set reduced to what the score needs.
struct Table {
    name: String,
    landmarks: Vec<Vec<[f64; 2]>>,
    visible: Vec<Vec<bool>>,
    attributes: Vec<(String, Column)>,
}

fn read_csv(path: &PathBuf) -> Result<Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (hline, header) = lines
        .next()
        .ok_or_else(|| anyhow!("{}: no header row", path.display()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut k = 0;
    while names.get(1 + 2 * k) == Some(&format!("x{}", k + 1).as_str())
        && names.get(2 + 2 * k) == Some(&format!("y{}", k + 1).as_str())
    {
        k += 1;
    }
    if k == 0 {
        bail!(
            "{}:{hline}: the header must be `image,x1,y1,...,xK,yK,<attributes>`; found {:?}",
            path.display(),
            names.iter().take(3).collect::<Vec<_>>()
        );
    }
    let attr_names: Vec<String> = names[1 + 2 * k..].iter().map(|s| s.to_string()).collect();
    if attr_names.is_empty() {
        bail!(
            "{}:{hline}: no attribute columns after y{k}",
            path.display()
        );
    }
    let mut landmarks = Vec::new();
    let mut visible = Vec::new();
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); attr_names.len()];
    for (line, row) in lines {
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            bail!(
                "{}:{line}: {} columns, the header has {}",
                path.display(),
                cells.len(),
                names.len()
            );
        }
        let mut pts = Vec::with_capacity(k);
        let mut vis = Vec::with_capacity(k);
        for j in 0..k {
            let parse = |c: usize| -> Result<Option<f64>> {
                let s = cells[1 + 2 * j + c];
                if s.is_empty() || s.eq_ignore_ascii_case("nan") {
                    return Ok(None);
                }
                let v: f64 = s.parse().with_context(|| {
                    format!(
                        "{}:{line}: column {}: {s:?}",
                        path.display(),
                        names[1 + 2 * j + c]
                    )
                })?;
                if !v.is_finite() {
                    bail!(
                        "{}:{line}: column {}: {v}",
                        path.display(),
                        names[1 + 2 * j + c]
                    );
                }
                Ok(Some(v))
            };
            match (parse(0)?, parse(1)?) {
                (Some(x), Some(y)) => {
                    pts.push([x, y]);
                    vis.push(true);
                }
                _ => {
                    pts.push([0.0, 0.0]);
                    vis.push(false);
                }
            }
        }
        landmarks.push(pts);
        visible.push(vis);
        for (a, col) in raw.iter_mut().enumerate() {
            let s = cells[1 + 2 * k + a];
            if s.is_empty() {
                bail!(
                    "{}:{line}: attribute {} is empty",
                    path.display(),
                    attr_names[a]
                );
            }
            col.push(s.to_string());
        }
    }
    if landmarks.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    let mut attributes = Vec::new();
    for (name, col) in attr_names.into_iter().zip(raw) {
        let column = if let Ok(ints) = col
            .iter()
            .map(|s| s.parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
        {
            // Classes: map the integers to 0..C in sorted order.
            let mut u = ints.clone();
            u.sort_unstable();
            u.dedup();
            Column::Classes(
                ints.iter()
                    .map(|v| u.binary_search(v).unwrap_or(0))
                    .collect(),
            )
        } else {
            let reals = col
                .iter()
                .map(|s| s.parse::<f64>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!(
                        "{}: attribute {name} is neither integer nor real",
                        path.display()
                    )
                })?;
            Column::Real(reals)
        };
        attributes.push((name, column));
    }
    Ok(Table {
        name: path.display().to_string(),
        landmarks,
        visible,
        attributes,
    })
}

fn from_dataset(d: &landmark_ssl::data::Dataset) -> Result<Table> {
    let landmarks = d
        .samples
        .iter()
        .map(|s| {
            s.landmarks
                .iter()
                .map(|p| [p[0] as f64, p[1] as f64])
                .collect()
        })
        .collect();
    let visible = d.samples.iter().map(|s| s.visible.clone()).collect();
    let mut attributes = Vec::new();
    for name in d.meta.classes.keys() {
        let labels = d
            .samples
            .iter()
            .map(|s| {
                s.classes.get(name).copied().ok_or_else(|| {
                    anyhow!("{}: a sample lacks class attribute {name}", d.meta.name)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        attributes.push((name.clone(), Column::Classes(labels)));
    }
    for (name, &dim) in &d.meta.reals {
        for c in 0..dim {
            let values = d
                .samples
                .iter()
                .map(|s| {
                    s.reals
                        .get(name)
                        .and_then(|v| v.get(c))
                        .map(|&v| v as f64)
                        .ok_or_else(|| {
                            anyhow!("{}: a sample lacks real attribute {name}[{c}]", d.meta.name)
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            attributes.push((format!("{name}[{c}]"), Column::Real(values)));
        }
    }
    if attributes.is_empty() {
        bail!("{}: the data set has no attributes", d.meta.name);
    }
    Ok(Table {
        name: d.meta.name.clone(),
        landmarks,
        visible,
        attributes,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let table = match (&args.data, args.blocks) {
        (Some(path), false) => read_csv(path)?,
        (None, true) => {
            let d = landmark_ssl::data::blocks::generate(args.num, args.seed)
                .map_err(|e| anyhow!("generating Blocks: {e}"))?;
            from_dataset(&d)?
        }
        _ => bail!("give either a CSV file or --blocks (see --help)"),
    };
    let score = |values: AttributeValues<'_>| -> Result<AttributeScore> {
        Ok(attribute_landmark_ami(
            values,
            &table.landmarks,
            Some(&table.visible),
            args.levels,
        )?)
    };
    let mut rows: Vec<(String, String, AttributeScore)> = Vec::new();
    for (name, column) in &table.attributes {
        rows.push((name.clone(), column.kind(), score(column.as_values())?));
    }
    rows.sort_by(|a, b| b.2.mean.total_cmp(&a.2.mean));
    // The random baseline: the first attribute's values, shuffled over the images.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    let (first_name, first) = &table.attributes[0];
    let baseline = match first {
        Column::Classes(c) => {
            let mut c = c.clone();
            c.shuffle(&mut rng);
            score(AttributeValues::Classes(&c))?
        }
        Column::Real(r) => {
            let mut r = r.clone();
            r.shuffle(&mut rng);
            score(AttributeValues::Real(&r))?
        }
    };
    rows.push((
        "random".to_string(),
        format!("{first_name}, shuffled"),
        baseline,
    ));

    let k = table.landmarks[0].len();
    println!(
        "{}: {} images, {} landmarks, {} levels; score = AMI(A; x) + AMI(A; y) per landmark",
        table.name,
        table.landmarks.len(),
        k,
        args.levels
    );
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(9).max(9);
    println!(
        "{:<width$}  {:>9}  {:>9}  kind",
        "attribute", "AMI mean", "AMI max"
    );
    for (name, kind, s) in &rows {
        println!("{:<width$}  {:>9.3}  {:>9.3}  {kind}", name, s.mean, s.max);
    }
    if args.per_landmark {
        println!();
        for (name, _, s) in &rows {
            let per: Vec<String> = s
                .per_landmark
                .iter()
                .map(|l| format!("{:.3}", l.score()))
                .collect();
            println!("{name}: {}", per.join(" "));
        }
    }
    Ok(())
}
