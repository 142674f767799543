//! What `[data] kind` names: generated data, a file format, or splits a program builds
//! itself; and how images are cropped for the model.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The source of an experiment's data (`kind` in `[data]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    /// Generated Blocks (`generated_sizes` images per split).
    #[serde(rename = "blocks")]
    Blocks,
    /// Generated Shapes.
    #[serde(rename = "shapes")]
    Shapes,
    /// iBUG `.pts` folders (300W, Multi-PIE, HGR1 converted), `train` a folder.
    #[serde(rename = "300w", alias = "pts")]
    Pts,
    /// MTFL's `training.txt` / `testing.txt`.
    #[serde(rename = "mtfl")]
    Mtfl,
    /// AFLW's SQLite database (the data crate's `aflw` feature).
    #[serde(rename = "aflw")]
    Aflw,
    /// The generic CSV format (`docs/data-formats.md`).
    #[serde(rename = "generic-csv")]
    GenericCsv,
    /// The generic JSON format.
    #[serde(rename = "generic-json")]
    GenericJson,
    /// WFLW's annotation list files (98 points, box, six attribute flags, image path).
    #[serde(rename = "wflw")]
    Wflw,
    /// COCO keypoints JSON (one sample per annotation; `data.category` picks a category).
    #[serde(rename = "coco")]
    Coco,
    /// Splits the program builds itself and gives to `Trainer::from_splits`; nothing is
    /// loaded from the config.
    #[serde(rename = "in-memory")]
    InMemory,
}

impl DataKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [DataKind; 10] = [
        DataKind::Blocks,
        DataKind::Shapes,
        DataKind::Pts,
        DataKind::Mtfl,
        DataKind::Aflw,
        DataKind::GenericCsv,
        DataKind::GenericJson,
        DataKind::Wflw,
        DataKind::Coco,
        DataKind::InMemory,
    ];

    /// The name written in an experiment file.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Blocks => "blocks",
            DataKind::Shapes => "shapes",
            DataKind::Pts => "300w",
            DataKind::Mtfl => "mtfl",
            DataKind::Aflw => "aflw",
            DataKind::GenericCsv => "generic-csv",
            DataKind::GenericJson => "generic-json",
            DataKind::Wflw => "wflw",
            DataKind::Coco => "coco",
            DataKind::InMemory => "in-memory",
        }
    }

    /// Generated data (`generated_sizes` apply).
    pub fn is_generated(self) -> bool {
        matches!(self, DataKind::Blocks | DataKind::Shapes)
    }

    /// A file format read from `train` (and `test`).
    pub fn is_file_format(self) -> bool {
        !self.is_generated() && self != DataKind::InMemory
    }

    /// How [`CropChoice::Auto`] crops this kind: generated and in-memory images are the
    /// whole object; files are cropped around each sample's box (or landmarks).
    pub fn auto_crop(self) -> CropChoice {
        if self.is_file_format() {
            CropChoice::Object
        } else {
            CropChoice::Whole
        }
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How each image becomes the model's square input (`crop` in `[data]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CropChoice {
    /// By the kind: see [`DataKind::auto_crop`].
    #[default]
    Auto,
    /// The whole image, centred, its longer side scaled to the input.
    Whole,
    /// A square around the sample's box times `crop_factor` (else its landmarks' extent
    /// times 1.1 `crop_factor`, else the whole image).
    Object,
}
