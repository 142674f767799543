//! Loading real data sets by the experiment's `data.kind`.

use std::path::Path;

use landmark_ssl_data::Dataset;

use crate::error::{Error, Result};

/// Loads `path` as the format `kind` names.
pub fn load(kind: &str, path: &Path, image_root: Option<&Path>) -> Result<Dataset> {
    let _ = image_root;
    Err(Error::InvalidSetting {
        field: "data.kind".into(),
        reason: format!("`{kind}` ({}) is not a supported format", path.display()),
    })
}
