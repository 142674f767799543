//! Batches of prepared samples as candle tensors.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::image_file::check_channels;
use crate::prepare::PreparedSample;
use landmark_ssl_ops::Affine2;

/// A batch of B prepared samples (C channels, crop side S, K landmarks).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images (B, C, S, S) f32 (normalised crops; C = 1 grey, 3 RGB).
    pub images: Tensor,
    /// (B, C) f32: per image and channel, the value of a pixel outside the original image
    /// (black) in `images` ([`PreparedSample::pad_values`]); what a warp of `images` fills
    /// that channel with.
    pub pad_values: Tensor,
    /// Whether `images` are normalised per image and channel (a warped image is normalised
    /// again).
    pub normalized: bool,
    /// Landmarks (B, K, 2) f32, (x, y) in crop pixels (0 where a point is not visible).
    pub landmarks: Tensor,
    /// Training mask (B, K) f32 in {0, 1}: the point is annotated, inside the crop, and the
    /// sample keeps its landmark labels (`visible AND has_landmarks`).
    pub landmark_mask: Tensor,
    /// Evaluation mask (B, K) f32 in {0, 1}: annotated and inside the crop, regardless of
    /// `has_landmarks` (ground truth for validation / test).
    pub visible: Tensor,
    /// (B,) f32 in {0, 1}: the sample keeps its landmark labels.
    pub has_landmarks: Tensor,
    /// Class attributes: name -> (labels (B,) u32, mask (B,) f32). Samples without the
    /// label (or with attribute labels masked) have label 0 and mask 0.
    pub classes: BTreeMap<String, (Tensor, Tensor)>,
    /// Real attributes: name -> (values (B, A) f32, mask (B,) f32); absent values are 0.
    pub reals: BTreeMap<String, (Tensor, Tensor)>,
    /// Data-set indices of the samples, in batch order.
    pub indices: Vec<usize>,
    /// Per sample, the map from original image pixels to crop pixels (invert it to bring
    /// predictions back to the original image).
    pub transforms: Vec<Affine2>,
}

impl Batch {
    /// Number of samples B.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (never true for batches built by [`Batch::from_samples`]).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Channels C of the images (1 grey, 3 RGB).
    pub fn channels(&self) -> usize {
        self.images.dims().get(1).copied().unwrap_or(0)
    }

    /// Stacks prepared samples into tensors on `device` (shapes in the field docs).
    ///
    /// Errors: no samples ([`Error::EmptyDataset`]); samples with different crop sizes,
    /// channel counts, landmark counts or real-attribute dimensions ([`Error::BadSample`]
    /// naming the batch position and data-set index).
    pub fn from_samples(samples: &[&PreparedSample], device: &Device) -> Result<Batch> {
        let first = samples.first().ok_or_else(|| Error::EmptyDataset {
            what: "batch with no samples".into(),
        })?;
        let (b, s, k) = (samples.len(), first.size, first.landmarks.len());
        let c = first.channels;
        check_channels("channels", c)?;
        let mut images = Vec::with_capacity(b * c * s * s);
        let mut pads = Vec::with_capacity(b * c);
        let mut lm = Vec::with_capacity(b * k * 2);
        let mut mask = Vec::with_capacity(b * k);
        let mut vis = Vec::with_capacity(b * k);
        let mut has = Vec::with_capacity(b);
        let mut class_names = std::collections::BTreeSet::new();
        let mut real_dims: BTreeMap<String, usize> = BTreeMap::new();
        for (pos, p) in samples.iter().enumerate() {
            let bad = |message: String| Error::BadSample {
                index: p.index,
                message: format!("batch position {pos}: {message}"),
            };
            if p.channels != c {
                return Err(bad(format!(
                    "{} channels, the batch's first sample has {c}: prepare every sample \
                     with the same Preprocess::channels",
                    p.channels
                )));
            }
            if p.size != s || p.image.len() != c * s * s {
                return Err(bad(format!(
                    "crop {}x{} with {} values, batch uses {c}x{s}x{s}",
                    p.size,
                    p.size,
                    p.image.len()
                )));
            }
            if p.pad_values.len() != c {
                return Err(bad(format!(
                    "{} pad values for {c} channels",
                    p.pad_values.len()
                )));
            }
            if p.landmarks.len() != k || p.visible.len() != k {
                return Err(Error::LandmarkCountMismatch {
                    index: p.index,
                    path: format!("batch position {pos}").into(),
                    expected: k,
                    found: p.landmarks.len(),
                });
            }
            if p.normalized != first.normalized {
                return Err(bad("normalised and raw crops in one batch".into()));
            }
            images.extend_from_slice(&p.image);
            pads.extend_from_slice(&p.pad_values);
            let hl = if p.has_landmarks { 1.0f32 } else { 0.0 };
            has.push(hl);
            for (q, &v) in p.landmarks.iter().zip(&p.visible) {
                let vf = if v { 1.0f32 } else { 0.0 };
                lm.extend_from_slice(if v { q } else { &[0.0, 0.0] });
                vis.push(vf);
                mask.push(vf * hl);
            }
            class_names.extend(p.classes.keys().cloned());
            for (n, (v, _)) in &p.reals {
                match real_dims.get(n) {
                    Some(&a) if a != v.len() => {
                        return Err(bad(format!(
                            "real attribute `{n}` has {} values, others {a}",
                            v.len()
                        )))
                    }
                    _ => {
                        real_dims.insert(n.clone(), v.len());
                    }
                }
            }
        }
        let mut classes = BTreeMap::new();
        for n in class_names {
            let mut labels = Vec::with_capacity(b);
            let mut m = Vec::with_capacity(b);
            for p in samples {
                match p.classes.get(&n).copied().flatten() {
                    Some(c) => {
                        labels.push(c);
                        m.push(1.0f32);
                    }
                    None => {
                        labels.push(0u32);
                        m.push(0.0);
                    }
                }
            }
            classes.insert(
                n,
                (
                    Tensor::from_vec(labels, b, device)?,
                    Tensor::from_vec(m, b, device)?,
                ),
            );
        }
        let mut reals = BTreeMap::new();
        for (n, a) in real_dims {
            let mut vals = Vec::with_capacity(b * a);
            let mut m = Vec::with_capacity(b);
            for p in samples {
                match p.reals.get(&n) {
                    Some((v, usable)) => {
                        vals.extend_from_slice(v);
                        m.push(if *usable { 1.0f32 } else { 0.0 });
                    }
                    None => {
                        vals.extend(std::iter::repeat_n(0.0f32, a));
                        m.push(0.0);
                    }
                }
            }
            reals.insert(
                n,
                (
                    Tensor::from_vec(vals, (b, a), device)?,
                    Tensor::from_vec(m, b, device)?,
                ),
            );
        }
        Ok(Batch {
            images: Tensor::from_vec(images, (b, c, s, s), device)?,
            pad_values: Tensor::from_vec(pads, (b, c), device)?,
            normalized: first.normalized,
            landmarks: Tensor::from_vec(lm, (b, k, 2), device)?,
            landmark_mask: Tensor::from_vec(mask, (b, k), device)?,
            visible: Tensor::from_vec(vis, (b, k), device)?,
            has_landmarks: Tensor::from_vec(has, b, device)?,
            classes,
            reals,
            indices: samples.iter().map(|p| p.index).collect(),
            transforms: samples.iter().map(|p| p.transform).collect(),
        })
    }
}
