//! Samples (one image with its labels) and data sets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image_file::{check_channels, Image};
use crate::layout::Layout;
use crate::limits::Limits;
use landmark_ssl_ops::Affine2;

/// Where a sample's image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// An image file, decoded when the sample is prepared (so a data set of thousands of
    /// faces never holds thousands of full-resolution images).
    File(PathBuf),
    /// An image already in memory (generated data, or crops cached by
    /// [`Dataset::cache_crops`](crate::Dataset::cache_crops)), grey or RGB.
    Memory(Image),
}

impl ImageSource {
    /// Decodes a file image to grey, or clones an in-memory image as it is (grey or RGB),
    /// within the default [`Limits`] (see [`Sample::load_image`] for an image a reader
    /// approved with other limits).
    pub fn load(&self) -> Result<Image> {
        match self {
            ImageSource::File(p) => Image::open(p),
            ImageSource::Memory(g) => Ok(g.clone()),
        }
    }

    /// The image with `channels` channels (1 grey, 3 RGB): a file is decoded with that
    /// many, an in-memory image is converted ([`Image::to_channels`]); default [`Limits`].
    pub fn load_with_channels(&self, channels: usize) -> Result<Image> {
        match self {
            ImageSource::File(p) => Image::open_with_channels(p, channels),
            ImageSource::Memory(g) => g.to_channels(channels),
        }
    }

    /// The file path, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ImageSource::File(p) => Some(p),
            ImageSource::Memory(_) => None,
        }
    }
}

/// One image with its labels.
///
/// Points are (x, y) in the pixels of the image `image` refers to, 0-based, with the origin
/// at the centre of the top-left pixel (the workspace convention, `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image.
    pub image: ImageSource,
    /// Image size `(width, height)` when known without decoding (read from the file header
    /// by the loaders, exact for in-memory images).
    pub image_size: Option<(usize, usize)>,
    /// K landmarks (x, y) in pixels. Points marked not visible may hold any finite value.
    pub landmarks: Vec<[f32; 2]>,
    /// Per-landmark visibility / annotation flag (length K).
    pub visible: Vec<bool>,
    /// Whether this sample's landmarks may be used as training labels (the semi-supervised
    /// splits clear it; ground truth stays in `landmarks` for evaluation).
    pub has_landmarks: bool,
    /// Whether this sample's attributes (`classes`, `reals`) may be used as training labels.
    pub has_attributes: bool,
    /// Object box `[x0, y0, x1, y1]` in pixels (same convention as the points).
    pub bbox: Option<[f32; 4]>,
    /// Class labels by attribute name, 0-based.
    pub classes: BTreeMap<String, usize>,
    /// Real-valued attributes by name (e.g. `"pose"` -> `[yaw, pitch, roll]` in radians).
    pub reals: BTreeMap<String, Vec<f32>>,
    /// Subject (person) id, for subject-disjoint splits.
    pub subject: Option<String>,
    /// The annotation file (or list file) this sample was read from.
    pub path: Option<PathBuf>,
    /// When `image` is a cached crop ([`Dataset::cache_crops`]): the map from the original
    /// image's pixels to the cached image's pixels (landmarks and box are then in cached
    /// pixels; apply the inverse to get original pixels). `None`: the image is the original.
    pub cache_transform: Option<Affine2>,
}

impl Sample {
    /// A sample with all K points visible, labels flagged as present, no attributes.
    pub fn new(image: ImageSource, landmarks: Vec<[f32; 2]>) -> Self {
        let image_size = match &image {
            ImageSource::Memory(g) => Some((g.width, g.height)),
            ImageSource::File(_) => None,
        };
        let k = landmarks.len();
        Sample {
            image,
            image_size,
            landmarks,
            visible: vec![true; k],
            has_landmarks: true,
            has_attributes: true,
            bbox: None,
            classes: BTreeMap::new(),
            reals: BTreeMap::new(),
            subject: None,
            path: None,
            cache_transform: None,
        }
    }

    /// Decodes a file image to grey, or clones an in-memory image as it is (grey or RGB).
    /// A file image whose size a reader checked at load time (`image_size`, possibly with
    /// raised [`Limits`]) is admitted at that size; otherwise the default limits apply.
    pub fn load_image(&self) -> Result<Image> {
        match &self.image {
            ImageSource::File(_) => self.load_image_with_channels(1),
            ImageSource::Memory(g) => Ok(g.clone()),
        }
    }

    /// The image with `channels` channels (1 grey, 3 RGB), as the data pipeline takes it: a
    /// file image is decoded with that many (within the limits of [`Sample::load_image`]),
    /// an in-memory image is converted ([`Image::to_channels`]: grey to RGB repeats the
    /// value, RGB to grey takes the decoder's luma).
    ///
    /// Errors: those of decoding, and [`Error::InvalidArgument`] for a channel count other
    /// than 1 or 3.
    pub fn load_image_with_channels(&self, channels: usize) -> Result<Image> {
        check_channels("channels", channels)?;
        match &self.image {
            ImageSource::File(p) => Image::open_with_limits_channels(
                p,
                &Limits::default().admitting(self.image_size),
                channels,
            ),
            ImageSource::Memory(g) => g.to_channels(channels),
        }
    }

    /// Landmarks in the original image's pixels (undoing a crop cache).
    pub fn original_landmarks(&self) -> Vec<[f32; 2]> {
        match self.cache_transform.and_then(|c| c.inverse().ok()) {
            Some(inv) => self
                .landmarks
                .iter()
                .map(|p| {
                    let (x, y) = inv.apply(p[0] as f64, p[1] as f64);
                    [x as f32, y as f32]
                })
                .collect(),
            None => self.landmarks.clone(),
        }
    }

    /// A name for messages: the annotation path, else the image path, else `"<generated>"`.
    pub fn describe(&self) -> PathBuf {
        self.path
            .clone()
            .or_else(|| self.image.path().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("<generated>"))
    }
}

/// Description of a data set: its landmark layout and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetMeta {
    /// A name (e.g. `"blocks"`, `"300w"`, or the source path).
    pub name: String,
    /// The landmark layout (gives K and the flip permutation).
    pub layout: Layout,
    /// Class attributes: name -> number of classes.
    pub classes: BTreeMap<String, usize>,
    /// Real attributes: name -> dimension A.
    pub reals: BTreeMap<String, usize>,
}

impl DatasetMeta {
    /// Number of landmarks K.
    pub fn num_landmarks(&self) -> usize {
        self.layout.num_points()
    }
}

/// A data set: samples plus metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Layout and attributes.
    pub meta: DatasetMeta,
}

impl Dataset {
    /// Builds a data set and checks it with [`Dataset::validate`].
    pub fn new(samples: Vec<Sample>, meta: DatasetMeta) -> Result<Self> {
        let d = Dataset { samples, meta };
        d.validate()?;
        Ok(d)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Checks every sample: K landmarks (and K visibility flags), finite visible coordinates,
    /// class labels below the class count, real attributes of the declared dimension, a
    /// non-empty data set.
    pub fn validate(&self) -> Result<()> {
        if self.samples.is_empty() {
            return Err(Error::EmptyDataset {
                what: self.meta.name.clone(),
            });
        }
        let k = self.meta.num_landmarks();
        for (i, s) in self.samples.iter().enumerate() {
            if s.landmarks.len() != k || s.visible.len() != k {
                return Err(Error::LandmarkCountMismatch {
                    index: i,
                    path: s.describe(),
                    expected: k,
                    found: if s.landmarks.len() != k {
                        s.landmarks.len()
                    } else {
                        s.visible.len()
                    },
                });
            }
            for (j, (p, &v)) in s.landmarks.iter().zip(&s.visible).enumerate() {
                if v && !(p[0].is_finite() && p[1].is_finite()) {
                    return Err(Error::NonFinite {
                        path: s.describe(),
                        line: 0,
                        index: j,
                        x: p[0] as f64,
                        y: p[1] as f64,
                    });
                }
            }
            for (name, &c) in &s.classes {
                match self.meta.classes.get(name) {
                    Some(&n) if c < n => {}
                    Some(&n) => {
                        return Err(Error::BadSample {
                            index: i,
                            message: format!("class {c} of `{name}` is not below {n}"),
                        })
                    }
                    None => {
                        return Err(Error::BadSample {
                            index: i,
                            message: format!("class attribute `{name}` is not declared"),
                        })
                    }
                }
            }
            for (name, v) in &s.reals {
                match self.meta.reals.get(name) {
                    Some(&a) if a == v.len() => {}
                    _ => {
                        return Err(Error::BadSample {
                            index: i,
                            message: format!(
                                "real attribute `{name}` has {} values, declared {:?}",
                                v.len(),
                                self.meta.reals.get(name)
                            ),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// A data set with the samples at `indices` (cloned), same metadata.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let mut samples = Vec::with_capacity(indices.len());
        for &i in indices {
            let s = self.samples.get(i).ok_or_else(|| {
                Error::arg(
                    "indices",
                    format!("index {i} out of range 0..{}", self.len()),
                )
            })?;
            samples.push(s.clone());
        }
        Ok(Dataset {
            samples,
            meta: self.meta.clone(),
        })
    }

    /// Per-class sample counts of attribute `name` (length = its class count).
    pub fn class_counts(&self, name: &str) -> Vec<usize> {
        let n = self.meta.classes.get(name).copied().unwrap_or(0);
        let mut c = vec![0; n];
        for s in &self.samples {
            if let Some(&k) = s.classes.get(name) {
                if k < n {
                    c[k] += 1;
                }
            }
        }
        c
    }
}
