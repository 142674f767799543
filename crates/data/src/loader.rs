//! The epoch batch iterator: shuffles per (seed, epoch), prepares (decode, crop, jitter)
//! the next batches on a background thread with rayon, and hands out [`Batch`]es.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::Device;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::image_file::check_channels;
use crate::prepare::{prepare, Augment, Jitter, PreparedSample, Preprocess};
use crate::rng::{mix, purpose, rng_for};
use crate::sample::Dataset;

/// Configuration of a [`BatchLoader`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch (> 0).
    pub batch_size: usize,
    /// Shuffle each epoch (by `seed` and the epoch number).
    pub shuffle: bool,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    /// Seed of the shuffles and of the jitter.
    pub seed: u64,
    /// Batches prepared ahead (the channel's bound; at least 1).
    pub prefetch: usize,
    /// Crop / resize / normalisation.
    pub preprocess: Preprocess,
    /// Per-epoch jitter (None: none).
    pub augment: Option<Augment>,
}

impl LoaderConfig {
    /// Shuffled batches of `batch_size` at `preprocess`, no jitter, 3 batches ahead.
    pub fn new(batch_size: usize, preprocess: Preprocess, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed,
            prefetch: 3,
            preprocess,
            augment: None,
        }
    }
}

/// Hands out the batches of a data set, epoch after epoch.
#[derive(Debug, Clone)]
pub struct BatchLoader {
    dataset: Arc<Dataset>,
    indices: Arc<Vec<usize>>,
    config: LoaderConfig,
}

impl BatchLoader {
    /// A loader over every sample of `dataset`.
    ///
    /// Errors: an empty data set, `batch_size == 0`, a crop size of 0, a channel count
    /// other than 1 or 3, or an invalid [`Augment`] (see [`Augment::validate`]).
    pub fn new(dataset: Arc<Dataset>, config: LoaderConfig) -> Result<Self> {
        let n = dataset.len();
        Self::with_indices(dataset, (0..n).collect(), config)
    }

    /// A loader over the samples `indices` of `dataset` (e.g. only the landmark-labelled
    /// ones).
    pub fn with_indices(
        dataset: Arc<Dataset>,
        indices: Vec<usize>,
        config: LoaderConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::arg("batch_size", "must be positive"));
        }
        if config.preprocess.size == 0 {
            return Err(Error::arg("preprocess.size", "must be positive"));
        }
        check_channels("preprocess.channels", config.preprocess.channels)?;
        if let Some(a) = &config.augment {
            a.validate()?;
        }
        if indices.is_empty() {
            return Err(Error::EmptyDataset {
                what: format!("loader over {}", dataset.meta.name),
            });
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= dataset.len()) {
            return Err(Error::arg(
                "indices",
                format!("index {i} out of range 0..{}", dataset.len()),
            ));
        }
        Ok(BatchLoader {
            dataset,
            indices: Arc::new(indices),
            config,
        })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of `epoch` (a permutation of the loader's indices when shuffling,
    /// their given order otherwise); deterministic for (seed, epoch).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order = (*self.indices).clone();
        if self.config.shuffle {
            order.shuffle(&mut rng_for(self.config.seed, purpose::SHUFFLE, epoch));
        }
        order
    }

    /// Prepares the samples `indices` for `epoch` (jitter drawn from (seed, epoch, index),
    /// so the result does not depend on batch composition or threads), in parallel.
    pub fn prepare_indices(&self, indices: &[usize], epoch: u64) -> Result<Vec<PreparedSample>> {
        prepare_many(&self.dataset, indices, &self.config, epoch)
    }

    /// One batch of the samples `indices` (e.g. for evaluation), prepared on this thread
    /// pool.
    pub fn batch(&self, indices: &[usize], epoch: u64, device: &Device) -> Result<Batch> {
        let prepared = self.prepare_indices(indices, epoch)?;
        let refs: Vec<&PreparedSample> = prepared.iter().collect();
        Batch::from_samples(&refs, device)
    }

    /// The batches of `epoch`, prepared `prefetch` batches ahead on a background thread.
    /// Dropping the iterator early stops the producer.
    pub fn epoch(&self, epoch: u64, device: &Device) -> EpochIter {
        let order = self.epoch_order(epoch);
        let b = self.config.batch_size;
        let mut chunks: Vec<Vec<usize>> = order.chunks(b).map(<[usize]>::to_vec).collect();
        if self.config.drop_last && chunks.last().is_some_and(|c| c.len() < b) {
            chunks.pop();
        }
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (dataset, config, stop2) = (self.dataset.clone(), self.config.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("batches-epoch-{epoch}"))
            .spawn(move || {
                for chunk in chunks {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = prepare_many(&dataset, &chunk, &config, epoch);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
        match handle {
            Ok(h) => EpochIter {
                rx: Some(rx),
                handle: Some(h),
                stop,
                device: device.clone(),
                failed: None,
            },
            Err(e) => EpochIter {
                rx: None,
                handle: None,
                stop,
                device: device.clone(),
                failed: Some(Error::Producer(format!("cannot spawn thread: {e}"))),
            },
        }
    }
}

fn prepare_many(
    dataset: &Dataset,
    indices: &[usize],
    config: &LoaderConfig,
    epoch: u64,
) -> Result<Vec<PreparedSample>> {
    let epoch_seed = mix(config.seed) ^ mix(epoch.wrapping_add(0x51));
    let can_flip = dataset.meta.layout.flip_permutation().is_some();
    indices
        .par_iter()
        .map(|&i| {
            let sample = dataset.samples.get(i).ok_or_else(|| {
                Error::arg(
                    "indices",
                    format!("index {i} out of range 0..{}", dataset.len()),
                )
            })?;
            let mut rng = rng_for(epoch_seed, purpose::AUGMENT, i as u64);
            let (jitter, occ) = match &config.augment {
                Some(a) => (Jitter::draw(a, can_flip, &mut rng), a.occlusion),
                None => (Jitter::none(), None),
            };
            let occlusion = occ
                .as_ref()
                .map(|o| (o, &mut rng as &mut dyn rand::RngCore));
            prepare(
                sample,
                i,
                &dataset.meta,
                &config.preprocess,
                &jitter,
                occlusion,
            )
        })
        .collect()
}

/// Iterator over one epoch's batches (see [`BatchLoader::epoch`]).
pub struct EpochIter {
    rx: Option<Receiver<Result<Vec<PreparedSample>>>>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    device: Device,
    failed: Option<Error>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(Ok(prepared)) => {
                let refs: Vec<&PreparedSample> = prepared.iter().collect();
                Some(Batch::from_samples(&refs, &self.device))
            }
            Ok(Err(e)) => {
                self.rx = None;
                Some(Err(e))
            }
            Err(_) => {
                // Producer finished (or panicked).
                self.rx = None;
                let panicked = self
                    .handle
                    .take()
                    .map(|h| h.join().is_err())
                    .unwrap_or(false);
                panicked.then(|| Err(Error::Producer("the batch thread panicked".into())))
            }
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a producer waiting to send.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
