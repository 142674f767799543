//! The paper's Table 1 on generated Blocks, the whole grid, resumable.
//!
//! ```text
//! cargo run --release --example table1
//! ```
//!
//! trains every row (Seq-MT (L), (L+A), (L+ELT), (L+ELT+A); Comm-MT (L), (L+A); Heatmap-MT
//! (L), (L+A), the heat-map model with its per-pixel softmax loss) at 1, 5, 10, 20, 50 and
//! 100% of the training images with landmark labels (no ELT rows at 100%), seeds 0-2. Every
//! run is `ExperimentConfig::default()` (the shipped Blocks recipe: data, warm-up, ELT,
//! schedule) with only the model, the costs, the landmark fraction and the seed set, and
//! the Comm-MT and Heatmap-MT rows at their own rate (1e-3, where their class paths were
//! tuned); `--epochs`, `--lr`, `--full` and the image counts override the recipe for every
//! run alike.
//!
//! Each finished run is appended as one JSON line to the results file (`--results`,
//! default `docs/results/table1.jsonl`), and after each one the page
//! (`--page`, default `docs/results/table1.md`, with its plot `table1.svg` beside it) is
//! written again. A run whose model, costs, fraction, seed and config fingerprint are
//! already in the results file is skipped, so the grid can be run in parts and over several
//! sittings; a run killed midway resumes from its last epoch's checkpoint in
//! `runs/table1/<row>-<pct>pct-seed<N>/`. A run that fails is reported and the others go
//! on; the command then exits with an error. One runner at a time per results file.
//!
//! Selection: `--rows seqmt-L,seqmt-L+ELT+A` (or a family: `seqmt`, `commmt`,
//! `heatmapmt`), `--fractions 0.05,0.1` (or `5%,10%`), `--seeds 0-2,5`. The runs go seed by
//! seed (every cell gets a seed before any gets the next), the Seq-MT rows first.
//! `--list` prints the plan, what is done and each run's config fingerprint; `--page-only`
//! writes the page from the results file without training (give it the same recipe flags
//! as the runs, since it shows only runs of the current config).

#[path = "support/jemalloc.rs"]
mod jemalloc;
#[path = "support/table1_grid.rs"]
mod table1_grid;
#[path = "support/table1_page.rs"]
mod table1_page;
#[path = "support/table1_results.rs"]
mod table1_results;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use landmark_ssl::train::{checkpoint, io::write_atomic, DeviceChoice, ExperimentConfig, Trainer};

use table1_grid::{parse_fractions, parse_rows, parse_seeds, plan, PlannedRun, Row};
use table1_page::{extract_notes, render_page, render_svg, PageInput};
use table1_results::{
    append_record, is_done, read_results, recipe_fingerprint, revision_label, run_fingerprint,
    RunKey, RunRecord,
};

#[derive(Parser, Debug)]
#[command(about = "The paper's Table 1 on Blocks: every row, fraction and seed, resumable")]
struct Args {
    /// Rows: `all`, or row ids and families, comma-separated (seqmt-L, seqmt-L+A,
    /// seqmt-L+ELT, seqmt-L+ELT+A, commmt-L, commmt-L+A, heatmapmt-L, heatmapmt-L+A).
    #[arg(long, default_value = "all")]
    rows: String,
    /// Fractions of training images with landmark labels: `all`, or columns of Table 1
    /// (0.01, 0.05, 0.1, 0.2, 0.5, 1, or 1%, 5%, ...), comma-separated.
    #[arg(long, default_value = "all")]
    fractions: String,
    /// Seeds: numbers and inclusive ranges, comma-separated.
    #[arg(long, default_value = "0-2")]
    seeds: String,
    /// The paper-length schedule: 100 epochs, early stopping after 15 without improvement.
    #[arg(long)]
    full: bool,
    /// Override the number of epochs of every run.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the learning rate of every run, whatever its row's rate (Adam's; the
    /// attribute path keeps its multiple of it).
    #[arg(long)]
    lr: Option<f64>,
    /// Override the number of training images (the recipe's otherwise).
    #[arg(long)]
    train_images: Option<usize>,
    /// Override the number of validation and test images each.
    #[arg(long)]
    eval_images: Option<usize>,
    /// The results file: one JSON line per finished run.
    #[arg(long, default_value = "docs/results/table1.jsonl")]
    results: PathBuf,
    /// The generated page; its plot is written beside it with the extension `.svg`.
    #[arg(long, default_value = "docs/results/table1.md")]
    page: PathBuf,
    /// Folder of the runs' checkpoints, logs and reports.
    #[arg(long, default_value = "runs/table1")]
    out: PathBuf,
    /// Write the page from the results file, train nothing.
    #[arg(long)]
    page_only: bool,
    /// Print the selected runs, whether each is done and its fingerprint; train nothing.
    #[arg(long)]
    list: bool,
    /// Where to train: cpu, cuda or cuda:N (a build with the `cuda` feature). Not part of
    /// a run's fingerprint.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// The name of the file in a run folder holding the fingerprint of the config it trains.
const MARKER: &str = "table1-fingerprint";

/// The largest earlier page read for its notes, in bytes.
const MAX_PAGE_BYTES: u64 = 4 << 20;

/// One run's resolved config and fingerprints.
struct RunSpec {
    cfg: ExperimentConfig,
    fingerprint: String,
    recipe: String,
}

fn percent(fraction: f64) -> String {
    format!("{:.0}", fraction * 100.0)
}

/// The recipe with this run's model, costs, fraction, seed, output folder and the
/// command's overrides.
fn run_spec(args: &Args, run: &PlannedRun) -> Result<RunSpec> {
    let (row, fraction, seed) = (run.row, run.fraction, run.seed);
    let mut cfg = ExperimentConfig::default();
    cfg.model.preset = row.preset.into();
    cfg.costs.set_from_label(row.costs)?;
    if let Some(lr) = row.lr {
        cfg.schedule.adam.lr = lr;
    }
    if let Some(smoothing) = row.label_smoothing {
        cfg.costs.label_smoothing = smoothing;
    }
    cfg.schedule.attribute_lr_scale = row.attribute_lr_scale;
    cfg.labels.landmark_fraction = fraction;
    cfg.seed = seed;
    cfg.device = args.device;
    cfg.name = format!("table1 {} {}% seed {seed}", row.name, percent(fraction));
    if args.full {
        cfg.schedule.epochs = 100;
        cfg.schedule.patience = 15;
    }
    if let Some(epochs) = args.epochs {
        cfg.schedule.epochs = epochs;
    }
    if let Some(lr) = args.lr {
        cfg.schedule.adam.lr = lr;
    }
    let sizes = &mut cfg.data.generated_sizes;
    if let Some(n) = args.train_images {
        sizes[0] = n;
    }
    if let Some(n) = args.eval_images {
        sizes[1] = n;
        sizes[2] = n;
    }
    cfg.output.progress = false;
    cfg.output.dir = args.out.join(format!(
        "{}-{}pct-seed{seed}",
        row.id.replace('+', "_"),
        percent(fraction)
    ));
    cfg.validate()
        .with_context(|| format!("the config of {} at {fraction}", row.id))?;
    let experiment = serde_json::to_value(&cfg)?;
    let model = serde_json::to_value(cfg.resolved_model()?)?;
    Ok(RunSpec {
        fingerprint: run_fingerprint(&experiment, &model),
        recipe: recipe_fingerprint(&experiment),
        cfg,
    })
}

/// The revision this example was built from (recorded by the package's `build.rs`), so
/// that a run is labelled with the code it runs whatever the checkout holds by then.
fn revision() -> String {
    revision_label(
        env!("LANDMARK_SSL_BUILD_HEAD"),
        env!("LANDMARK_SSL_BUILD_DIRTY") == "1",
    )
}

/// Writes the page and its plot from the runs of the current config (`records` whose
/// fingerprint is the one this command would give their run).
fn write_page(args: &Args, records: &[RunRecord]) -> Result<()> {
    let mut current = Vec::new();
    for r in records {
        let Some(row) = Row::by_id(&r.row).filter(|row| row.paper_at(r.fraction).is_some()) else {
            continue;
        };
        let run = PlannedRun {
            row,
            fraction: r.fraction,
            seed: r.seed,
        };
        if run_spec(args, &run)?.fingerprint == r.fingerprint {
            current.push(r.clone());
        }
    }
    let old = match std::fs::metadata(&args.page) {
        Ok(m) if m.len() > MAX_PAGE_BYTES => bail!(
            "{}: {} bytes, more than a page may have ({MAX_PAGE_BYTES})",
            args.page.display(),
            m.len()
        ),
        Ok(_) => std::fs::read_to_string(&args.page)
            .with_context(|| format!("reading {}", args.page.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        // Never replace a page whose notes could not be read.
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.page.display())),
    };
    let svg_path = args.page.with_extension("svg");
    let svg_name = svg_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = render_page(&PageInput {
        records: &current,
        stale: records.len() - current.len(),
        results_name: &args.results.display().to_string(),
        svg_name: &svg_name,
        notes: extract_notes(&old),
    });
    write_atomic(&svg_path, render_svg(&current).as_bytes())?;
    write_atomic(&args.page, page.as_bytes())?;
    Ok(())
}

/// Makes the run folder ready: a folder of this config resumes; one of another config
/// (its marker differs) is removed; a folder without the marker is not ours to touch.
fn prepare_run_dir(dir: &Path, fingerprint: &str) -> Result<()> {
    let marker = dir.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(fp) if fp.trim() == fingerprint => return Ok(()),
        Ok(_) => {
            println!(
                "{} holds a run of another config: starting again",
                dir.display()
            );
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let used = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if used {
                bail!(
                    "{} exists but was not made by table1 (no {MARKER} file): move it away or choose another --out",
                    dir.display()
                );
            }
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    }
    write_atomic(&marker, fingerprint.as_bytes())?;
    Ok(())
}

fn train(spec: &RunSpec, run: &PlannedRun, revision: &str) -> Result<RunRecord> {
    prepare_run_dir(&spec.cfg.output.dir, &spec.fingerprint)?;
    let outcome = Trainer::new(spec.cfg.clone())?.run()?;
    // The epochs' seconds over every session of a resumed run, not only this one's.
    let seconds =
        checkpoint::read_state(&spec.cfg.output.dir)?.map_or(outcome.seconds, |s| s.seconds);
    // Only the A cost trains the class head; without it its accuracy means nothing.
    let class_accuracy = if spec.cfg.costs.attribute {
        outcome.test.accuracy.get("config").copied()
    } else {
        None
    };
    Ok(RunRecord {
        row: run.row.id.into(),
        model: run.row.preset.into(),
        costs: spec.cfg.costs.label(),
        fraction: run.fraction,
        seed: run.seed,
        test_error_px: outcome.test.mean_error,
        class_accuracy,
        best_epoch: outcome.best_epoch,
        epochs: outcome.epochs,
        seconds,
        revision: revision.into(),
        fingerprint: spec.fingerprint.clone(),
        recipe: spec.recipe.clone(),
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rows = parse_rows(&args.rows)?;
    let fractions = parse_fractions(&args.fractions)?;
    let seeds = parse_seeds(&args.seeds)?;
    if args.epochs == Some(0) {
        bail!("--epochs must be at least 1");
    }
    let loaded = read_results(&args.results)?;
    if loaded.torn_bytes > 0 {
        println!(
            "{}: ignoring a cut-off last line ({} bytes), from a run killed while writing",
            args.results.display(),
            loaded.torn_bytes
        );
    }
    let mut records = loaded.records;
    if args.page_only {
        write_page(&args, &records)?;
        println!("page written: {}", args.page.display());
        return Ok(());
    }
    let runs = plan(&rows, &fractions, &seeds);
    if runs.is_empty() {
        bail!("the selection has no cell of Table 1 (ELT rows have no 100% column)");
    }
    // Every config is checked before the first run starts.
    let specs = runs
        .iter()
        .map(|r| run_spec(&args, r))
        .collect::<Result<Vec<_>>>()?;
    let done = |records: &[RunRecord], run: &PlannedRun, spec: &RunSpec| {
        is_done(
            records,
            &RunKey {
                model: run.row.preset,
                costs: run.row.costs,
                fraction: run.fraction,
                seed: run.seed,
                fingerprint: &spec.fingerprint,
            },
        )
    };
    let todo = runs
        .iter()
        .zip(&specs)
        .filter(|(r, s)| !done(&records, r, s))
        .count();
    let sizes = specs[0].cfg.data.generated_sizes;
    let mut rates: Vec<String> = Vec::new();
    for spec in &specs {
        let rate = spec.cfg.schedule.adam.lr.to_string();
        if !rates.contains(&rate) {
            rates.push(rate);
        }
    }
    println!(
        "Table 1 on Blocks: {} run(s) selected, {} done, {todo} to run; {} epochs at a rate of {}, {}/{}/{} images; results {}",
        runs.len(),
        runs.len() - todo,
        specs[0].cfg.schedule.epochs,
        rates.join(" or "),
        sizes[0],
        sizes[1],
        sizes[2],
        args.results.display()
    );
    if args.list {
        for (run, spec) in runs.iter().zip(&specs) {
            let state = if done(&records, run, spec) {
                "done"
            } else {
                "to run"
            };
            println!(
                "{:<14} {:>4}% seed {:<3} {state:<7} {}",
                run.row.id,
                percent(run.fraction),
                run.seed,
                spec.fingerprint
            );
        }
        return Ok(());
    }
    let revision = revision();
    let started = Instant::now();
    let (mut failed, mut ran) = (0usize, 0usize);
    for (i, (run, spec)) in runs.iter().zip(&specs).enumerate() {
        let what = format!(
            "{} at {}%, seed {}",
            run.row.name,
            percent(run.fraction),
            run.seed
        );
        if done(&records, run, spec) {
            println!("[{}/{}] {what}: done, skipped", i + 1, runs.len());
            continue;
        }
        println!("[{}/{}] {what}: training", i + 1, runs.len());
        let record = match train(spec, run, &revision) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                eprintln!("[{}/{}] {what} failed: {e:#}", i + 1, runs.len());
                continue;
            }
        };
        ran += 1;
        println!(
            "[{}/{}] {what}: test error {:.2} px (paper {:.2}), class accuracy {}, best epoch {}/{}, {:.0} s",
            i + 1,
            runs.len(),
            record.test_error_px,
            run.row.paper_at(run.fraction).unwrap_or(f64::NAN),
            record
                .class_accuracy
                .map_or("-".into(), |a| format!("{:.1}%", a * 100.0)),
            record.best_epoch,
            record.epochs,
            record.seconds
        );
        append_record(&args.results, &record)?;
        records.push(record);
        write_page(&args, &records)?;
    }
    write_page(&args, &records)?;
    println!(
        "{ran} run(s) trained in {:.0} s; page {}",
        started.elapsed().as_secs_f64(),
        args.page.display()
    );
    if failed > 0 {
        // The failures were reported as they happened; the others ran.
        eprintln!("{failed} of {todo} runs failed (their errors are above)");
        std::process::exit(1);
    }
    Ok(())
}
