//! Loading real data sets by the experiment's `data.kind`, through the data crate's
//! readers. Bad samples stop loading with an error naming the file and line, unless
//! `data.skip_bad` is set; then each skipped file is reported on stderr, never silently.

use std::path::Path;

use landmark_ssl_data::formats::{aflw, coco, generic, mtfl, pts, wflw};
use landmark_ssl_data::{Dataset, LayoutFile, LoadOptions, LoadReport};

use crate::config::{DataConfig, DataKind, LimitsConfig};
use crate::error::{Error, Result};

/// Loads `path` in the format `d.kind` names, within `limits`.
pub fn load(d: &DataConfig, limits: &LimitsConfig, path: &Path) -> Result<Dataset> {
    let opts = LoadOptions {
        skip_bad: d.skip_bad,
        limits: limits.data(),
        ..LoadOptions::default()
    };
    let (ds, report): (Dataset, LoadReport) = match d.kind {
        DataKind::Pts => pts::load_dir(path, &opts)?,
        DataKind::Mtfl => mtfl::load(path, &opts)?,
        DataKind::Aflw => {
            let a = aflw::AflwOptions {
                image_root: d.image_root.clone(),
                points19: d.aflw_points19,
                require_landmarks: true,
            };
            aflw::load(path, &opts, &a)?
        }
        DataKind::Wflw => wflw::load(path, d.image_root.as_deref(), &opts)?,
        DataKind::Coco => {
            let c = coco::CocoOptions {
                category: d.category.clone(),
                image_root: d.image_root.clone(),
                ..Default::default()
            };
            coco::load(path, &opts, &c)?
        }
        DataKind::GenericCsv | DataKind::GenericJson => {
            let layout = match &d.layout {
                Some(p) => Some(LayoutFile::read(p, &limits.data())?.layout),
                None => None,
            };
            let g = generic::GenericOptions {
                one_based: d.one_based,
                layout,
            };
            if d.kind == DataKind::GenericCsv {
                generic::load_csv(path, &opts, &g)?
            } else {
                generic::load_json(path, &opts, &g)?
            }
        }
        other => {
            return Err(Error::InvalidSetting {
                field: "data.kind".into(),
                reason: format!("`{other}` is not a file format"),
            })
        }
    };
    if report.filtered > 0 {
        eprintln!(
            "{}: {} entries left out on purpose (COCO: crowd, other categories, no labelled point)",
            path.display(),
            report.filtered
        );
    }
    for s in &report.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.error);
    }
    if !report.skipped.is_empty() {
        eprintln!(
            "{}: {} entries skipped (data.skip_bad = true), {} loaded",
            path.display(),
            report.skipped.len(),
            ds.len()
        );
    }
    Ok(ds)
}
