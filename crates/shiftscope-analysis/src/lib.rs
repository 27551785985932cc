//! The analysis: every number a view or a report shows, computed over an activation store
//! (design/analyses.md). It owns the Deephys normaliser; per neuron the top-k images (one
//! streaming pass per layer and dataset), class means, top classes, the spurious and novelty
//! scores and the Wasserstein-1 activation shift of each OOD dataset against the ID one, and
//! both class selectivity indexes (Rafegas, Morcos); per image predictions, top neurons,
//! comparison-mode followers and nearest images; per class accuracy, drop, top neurons,
//! false positives/negatives and the pairwise view; per layer score distributions. NaN/Inf
//! are counted, never averaged; silent neurons are marked, never divided by.
//!
//! Per-layer numbers are cached under `<store>/analysis/<manifest sha256>/`, recomputed when
//! stale, and safe to delete. Per-image and per-class numbers are computed on demand from
//! the memory-mapped store, reading only what the view needs.
//!
//! [`mistakes`]: the neurons responsible for a class's mistakes (NeuroInspect's counterfactual
//! search on the penultimate features and the decision layer), their importance, and the
//! decision-layer repair (ratio-penalty training or zeroing outgoing weights); pure functions
//! over matrices the caller reads from the store and the model adapter.
//!
//! Not here (yet): colour selectivity, Neuron Features and activation maximisation (they
//! need model runs or gradients).

mod cache;
mod error;
mod ids;
mod keys;
mod layer;
pub mod mistakes;
mod pass;
mod scores;
mod shift;
mod simd;
mod views;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use shiftscope_sdk::DatasetInfo;
use shiftscope_store::{Store, StoreError};

pub use error::AnalysisError;
pub use ids::{ClassId, ImageId, NeuronId};
pub use layer::{
    AnalysisParams, ClassMeans, DatasetLayer, LayerScores, NeuronScores, NeuronShift, NonFinite,
    ScoreKind, ScoreSummary, ShiftScores, TopK,
};
pub use scores::{
    Histogram, TOP_CLASSES, morcos_selectivity, rafegas_selectivity, ranked, spearman,
};
pub use views::{
    Accuracy, ClassInDataset, ClassProbability, ClassView, Comparison, ConfusionGroup, NeuronValue,
    PairwiseView, Predictions, ScoredImage,
};

/// Where a layer's numbers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Held in memory already.
    Memory,
    /// Read from the cache under `analysis/`.
    Cache,
    /// Computed from the store (and written to the cache).
    Computed,
}

/// An analysis over one store: opens it, then serves each view's numbers by id.
#[derive(Debug)]
pub struct Analysis {
    root: PathBuf,
    store: Store,
    params: AnalysisParams,
    reference: usize,
    normaliser: usize,
    manifest_sha256: String,
    threads: usize,
    layers: Vec<Mutex<Option<Arc<LayerScores>>>>,
    predictions: Vec<Mutex<Option<Arc<Predictions>>>>,
}

/// One neuron's view: its scores and its top images in every dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronView {
    /// The neuron.
    pub id: NeuronId,
    /// Its scores.
    pub scores: NeuronScores,
    /// Per dataset: its top images with raw and normalised activation (`None`: silent).
    pub top_images: Vec<Vec<(ImageId, f32, Option<f32>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Analysis {
    /// Opens the store at `root` for analysis. The reference (ID) dataset is the first with
    /// role `id`; the normaliser is `params.normaliser` or the reference.
    pub fn open(root: &Path, params: AnalysisParams) -> Result<Analysis, AnalysisError> {
        let store_error = |error| AnalysisError::Store {
            store: root.to_path_buf(),
            error,
        };
        let store = Store::open(root).map_err(store_error)?;
        let manifest_sha256 =
            shiftscope_store::sha256_file(&root.join("manifest.json")).map_err(store_error)?;
        let datasets = store.manifest().datasets.len();
        if datasets == 0 {
            return Err(AnalysisError::Invalid {
                store: root.to_path_buf(),
                problem: "the store holds no dataset to analyse".into(),
            });
        }
        let reference = layer::reference_dataset(&store);
        let normaliser = params.normaliser.unwrap_or(reference);
        if normaliser >= datasets {
            return Err(AnalysisError::Invalid {
                store: root.to_path_buf(),
                problem: format!("normaliser dataset {normaliser}, but the store holds {datasets}"),
            });
        }
        let layers = store.manifest().layers.len();
        Ok(Analysis {
            root: root.to_path_buf(),
            params,
            reference,
            normaliser,
            manifest_sha256,
            threads: pass::threads(),
            layers: (0..layers).map(|_| Mutex::new(None)).collect(),
            predictions: (0..datasets).map(|_| Mutex::new(None)).collect(),
            store,
        })
    }

    /// Uses `threads` worker threads for the layer passes (default: what the machine offers).
    pub fn with_threads(mut self, threads: usize) -> Analysis {
        self.threads = threads.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The parameters.
    pub fn params(&self) -> &AnalysisParams {
        &self.params
    }

    /// The reference (ID) dataset.
    pub fn reference(&self) -> usize {
        self.reference
    }

    /// The normaliser dataset.
    pub fn normaliser(&self) -> usize {
        self.normaliser
    }

    /// The OOD datasets scored against the reference.
    pub fn ood_datasets(&self) -> Vec<usize> {
        layer::ood_datasets(&self.store, self.reference)
    }

    /// This store's cache folder (`<store>/analysis/<manifest sha256>`).
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("analysis").join(&self.manifest_sha256)
    }

    fn invalid(&self, problem: impl Into<String>) -> AnalysisError {
        AnalysisError::Invalid {
            store: self.root.clone(),
            problem: problem.into(),
        }
    }

    fn store_error(&self, error: StoreError) -> AnalysisError {
        AnalysisError::Store {
            store: self.root.clone(),
            error,
        }
    }

    fn check_layer(&self, layer: usize) -> Result<(), AnalysisError> {
        let n = self.store.manifest().layers.len();
        if layer >= n {
            return Err(self.invalid(format!("no layer {layer} (the store has {n})")));
        }
        Ok(())
    }

    fn check_image(&self, image: ImageId) -> Result<(), AnalysisError> {
        let n = self.store.manifest().datasets.len();
        if image.dataset >= n {
            return Err(self.invalid(format!("no dataset {} (the store has {n})", image.dataset)));
        }
        let rows = self.rows(image.dataset)?;
        if image.index >= rows {
            return Err(self.invalid(format!(
                "no image {} in dataset {} ({rows} recorded)",
                image.index, image.dataset
            )));
        }
        Ok(())
    }

    fn check_class(&self, class: ClassId) -> Result<(), AnalysisError> {
        let k = self.store.manifest().classes.len();
        if class.0 >= k {
            return Err(self.invalid(format!("no class {} (the store has {k})", class.0)));
        }
        Ok(())
    }

    fn rows(&self, dataset: usize) -> Result<usize, AnalysisError> {
        self.store
            .committed(dataset)
            .map_err(|e| self.store_error(e))
    }

    fn key(&self, layer: usize) -> Result<cache::Key, AnalysisError> {
        let manifest = self.store.manifest();
        Ok(cache::Key {
            format: cache::FORMAT,
            manifest_sha256: self.manifest_sha256.clone(),
            layer_id: manifest.layers[layer].id.clone(),
            params: self.params.clone(),
            reference: self.reference,
            normaliser: self.normaliser,
            rows: (0..manifest.datasets.len())
                .map(|d| self.rows(d))
                .collect::<Result<_, _>>()?,
            neurons: manifest.layers[layer].neurons,
            classes: manifest.classes.len(),
        })
    }

    /// Every per-neuron number of a layer: from memory, else the cache, else computed (and
    /// cached; a cache that cannot be written is skipped, the numbers are still returned).
    pub fn layer(&self, layer: usize) -> Result<Arc<LayerScores>, AnalysisError> {
        self.layer_with_provenance(layer).map(|(s, _)| s)
    }

    /// [`Analysis::layer`], saying where the numbers came from.
    pub fn layer_with_provenance(
        &self,
        layer: usize,
    ) -> Result<(Arc<LayerScores>, Provenance), AnalysisError> {
        self.check_layer(layer)?;
        let mut slot = lock(&self.layers[layer]);
        if let Some(scores) = slot.as_ref() {
            return Ok((Arc::clone(scores), Provenance::Memory));
        }
        let key = self.key(layer)?;
        let file = cache::path(&self.root, &self.manifest_sha256, &key.layer_id);
        let (scores, provenance) = match cache::load(&file, &key).filter(|s| self.plausible(s)) {
            Some(scores) => (scores, Provenance::Cache),
            None => {
                let scores = self.compute_layer(layer)?;
                // The cache is an optimisation: failing to write it loses nothing.
                let _ = cache::save(&file, &key, &scores);
                (scores, Provenance::Computed)
            }
        };
        let scores = Arc::new(scores);
        *slot = Some(Arc::clone(&scores));
        Ok((scores, provenance))
    }

    /// Computes a layer from the store, bypassing every cache.
    pub fn compute_layer(&self, layer: usize) -> Result<LayerScores, AnalysisError> {
        self.check_layer(layer)?;
        layer::compute_layer(
            &self.store,
            layer,
            &self.params,
            self.reference,
            self.normaliser,
            self.threads,
        )
        .map_err(|e| self.store_error(e))
    }

    /// Indices in a cache file that would be out of range are a reason not to trust it.
    fn plausible(&self, s: &LayerScores) -> bool {
        let datasets = self.store.manifest().datasets.len();
        s.datasets.iter().all(|d| {
            (0..s.neurons).all(|n| d.top_k.neuron(n).0.iter().all(|&i| (i as usize) < d.rows))
                && d.top_classes
                    .iter()
                    .all(|&c| c == u32::MAX || (c as usize) < s.classes)
        }) && s.shifts.iter().all(|x| x.dataset < datasets)
    }

    /// One neuron's view.
    pub fn neuron(&self, id: NeuronId) -> Result<NeuronView, AnalysisError> {
        let scores = self.layer(id.layer)?;
        let neuron_scores = scores.neuron(id.neuron).ok_or_else(|| {
            self.invalid(format!("no neuron {} in layer {}", id.neuron, id.layer))
        })?;
        let top_images = scores
            .datasets
            .iter()
            .map(|d| {
                let (images, values) = d.top_k.neuron(id.neuron);
                images
                    .iter()
                    .zip(values)
                    .map(|(&i, &v)| {
                        (
                            ImageId {
                                dataset: d.dataset,
                                index: i as usize,
                            },
                            v,
                            scores.normalise(id.neuron, v),
                        )
                    })
                    .collect()
            })
            .collect();
        Ok(NeuronView {
            id,
            scores: neuron_scores,
            top_images,
        })
    }

    /// The softmax of one image's logits: the `count` most probable classes.
    pub fn image_predictions(
        &self,
        image: ImageId,
        count: usize,
    ) -> Result<Vec<ClassProbability>, AnalysisError> {
        self.check_image(image)?;
        let logits = self
            .store
            .logits(image.dataset)
            .map_err(|e| self.store_error(e))?;
        let (_, k) = logits.shape();
        let row: Vec<f32> = (0..k).map(|c| logits.get(image.index, c)).collect();
        let p = views::softmax(&row);
        Ok(scores::top_indices(p.iter().copied(), count)
            .into_iter()
            .map(|c| ClassProbability {
                class: ClassId(c as usize),
                probability: p[c as usize],
            })
            .collect())
    }

    /// One image's row of a layer, raw or normalised (`None` entries: undefined).
    fn image_row(
        &self,
        image: ImageId,
        layer: usize,
        normalised: bool,
    ) -> Result<Vec<Option<f32>>, AnalysisError> {
        self.check_layer(layer)?;
        self.check_image(image)?;
        let matrix = self
            .store
            .layer(image.dataset, layer)
            .map_err(|e| self.store_error(e))?;
        let (_, cols) = matrix.shape();
        let mut buffer = Vec::new();
        let row = pass::segment(&matrix, image.index, 0, cols, &mut buffer).to_vec();
        if normalised {
            let scores = self.layer(layer)?;
            Ok(row
                .iter()
                .enumerate()
                .map(|(n, &v)| scores.normalise(n, v))
                .collect())
        } else {
            Ok(row.iter().map(|&v| v.is_finite().then_some(v)).collect())
        }
    }

    /// An image's `count` most active neurons of a layer, by raw activation or, with
    /// `normalised`, by normalised activation (which needs the layer's normaliser).
    pub fn image_top_neurons(
        &self,
        image: ImageId,
        layer: usize,
        count: usize,
        normalised: bool,
    ) -> Result<Vec<NeuronValue>, AnalysisError> {
        let row = self.image_row(image, layer, normalised)?;
        Ok(
            scores::top_indices(row.iter().map(|v| v.unwrap_or(f32::NAN)), count)
                .into_iter()
                .map(|n| NeuronValue {
                    neuron: NeuronId {
                        layer,
                        neuron: n as usize,
                    },
                    value: row[n as usize].unwrap_or(f32::NAN),
                })
                .collect(),
        )
    }

    /// Comparison mode: the lead image's top neurons and, for the same row of every other
    /// dataset that has it, those neurons' values.
    pub fn comparison(
        &self,
        lead: ImageId,
        layer: usize,
        count: usize,
        normalised: bool,
    ) -> Result<Comparison, AnalysisError> {
        let neurons = self.image_top_neurons(lead, layer, count, normalised)?;
        let mut followers = Vec::new();
        for dataset in 0..self.store.manifest().datasets.len() {
            let image = ImageId {
                dataset,
                index: lead.index,
            };
            if dataset == lead.dataset || lead.index >= self.rows(dataset)? {
                continue;
            }
            let row = self.image_row(image, layer, normalised)?;
            followers.push((
                image,
                neurons
                    .iter()
                    .map(|n| row[n.neuron.neuron].unwrap_or(f32::NAN))
                    .collect(),
            ));
        }
        Ok(Comparison {
            lead,
            neurons,
            followers,
        })
    }

    /// The `count` images of `datasets` closest to `image` by cosine in the layer's
    /// normalised activation space (silent neurons and non-finite values left out).
    pub fn nearest_images(
        &self,
        image: ImageId,
        layer: usize,
        datasets: &[usize],
        count: usize,
    ) -> Result<Vec<ScoredImage>, AnalysisError> {
        let row = self.image_row(image, layer, true)?;
        let scores = self.layer(layer)?;
        let query: Vec<f32> = row.iter().map(|v| v.unwrap_or(0.0)).collect();
        let scale: Vec<f32> = scores
            .normaliser_max
            .iter()
            .zip(&scores.silent)
            .map(|(&m, &s)| if s { 0.0 } else { 1.0 / m })
            .collect();
        let mut found = Vec::new();
        for &d in datasets {
            let rows = self.rows(d)?;
            let matrix = self
                .store
                .layer(d, layer)
                .map_err(|e| self.store_error(e))?;
            let skip = (d == image.dataset).then_some(image.index);
            found.extend(views::nearest_in(
                d,
                &matrix,
                rows,
                &query,
                &scale,
                skip,
                count,
                self.threads,
            ));
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.image.cmp(&b.image)));
        found.truncate(count);
        Ok(found)
    }

    /// Predicted class and probability for every committed row of a dataset (read from the
    /// logits once, then held).
    pub fn predictions(&self, dataset: usize) -> Result<Arc<Predictions>, AnalysisError> {
        let slot = self
            .predictions
            .get(dataset)
            .ok_or_else(|| self.invalid(format!("no dataset {dataset}")))?;
        let mut slot = lock(slot);
        if let Some(p) = slot.as_ref() {
            return Ok(Arc::clone(p));
        }
        let rows = self.rows(dataset)?;
        let labels = self
            .store
            .labels(dataset)
            .map_err(|e| self.store_error(e))?;
        let logits = self
            .store
            .logits(dataset)
            .map_err(|e| self.store_error(e))?;
        let subset = self.class_subset(dataset, logits.shape().1)?;
        let p = Arc::new(views::predictions(
            dataset,
            labels,
            &logits,
            rows,
            self.threads,
            subset.as_deref(),
        ));
        *slot = Some(Arc::clone(&p));
        Ok(p)
    }

    /// The class subset a dataset declares (its catalog's `class_subset` parameter, e.g.
    /// ImageNet-R's 200 of the 1,000 classes): predictions and accuracy use only those
    /// logits. `None` for a dataset over all the model's classes.
    pub fn class_subset(
        &self,
        dataset: usize,
        classes: usize,
    ) -> Result<Option<Vec<u32>>, AnalysisError> {
        let Some(text) = self
            .store
            .manifest()
            .datasets
            .get(dataset)
            .and_then(|d| d.params.get(DatasetInfo::CLASS_SUBSET))
        else {
            return Ok(None);
        };
        let subset = DatasetInfo::parse_class_subset(text)
            .map_err(|e| self.invalid(format!("dataset {dataset}: {e}")))?;
        if subset.is_empty() || subset.iter().any(|&c| c as usize >= classes) {
            return Err(self.invalid(format!(
                "dataset {dataset}: class_subset names classes outside the model's {classes}"
            )));
        }
        Ok(Some(subset))
    }

    /// Accuracy of every dataset and its drop from the reference.
    pub fn accuracy(&self) -> Result<Vec<Accuracy>, AnalysisError> {
        let classes = self.store.manifest().classes.len();
        let mut out = (0..self.predictions.len())
            .map(|d| Ok(views::accuracy(&*self.predictions(d)?, classes, None)))
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        fill_drops(&mut out, self.reference);
        Ok(out)
    }

    /// Accuracy of every class on every dataset (`[dataset][class]`) with the drop from
    /// the reference dataset's accuracy on the same class; one pass over each dataset.
    pub fn class_accuracy(&self) -> Result<Vec<Vec<Accuracy>>, AnalysisError> {
        let classes = self.store.manifest().classes.len();
        let mut out = (0..self.predictions.len())
            .map(|d| Ok(views::class_accuracy(&*self.predictions(d)?, classes)))
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        let reference: Vec<Option<f64>> = out
            .get(self.reference)
            .map(|r| r.iter().map(|a| a.accuracy).collect())
            .unwrap_or_default();
        for per_class in &mut out {
            for (a, r) in per_class.iter_mut().zip(&reference) {
                a.drop_from_reference = r.zip(a.accuracy).map(|(r, x)| r - x);
            }
        }
        Ok(out)
    }

    /// The class view: per dataset accuracy and drop, false negatives and positives grouped
    /// by the confused class.
    pub fn class_view(&self, class: ClassId) -> Result<ClassView, AnalysisError> {
        self.check_class(class)?;
        let classes = self.store.manifest().classes.len();
        let mut datasets = (0..self.predictions.len())
            .map(|d| {
                Ok(views::class_in_dataset(
                    &*self.predictions(d)?,
                    classes,
                    class.0,
                ))
            })
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        let mut accuracies: Vec<Accuracy> = datasets.iter().map(|d| d.accuracy).collect();
        fill_drops(&mut accuracies, self.reference);
        for (d, a) in datasets.iter_mut().zip(accuracies) {
            d.accuracy = a;
        }
        Ok(ClassView { class, datasets })
    }

    /// A class's `count` neurons of a layer with the highest normalised class mean on a
    /// dataset (raw means order the same; silent neurons are left out).
    pub fn class_top_neurons(
        &self,
        class: ClassId,
        layer: usize,
        dataset: usize,
        count: usize,
    ) -> Result<Vec<NeuronValue>, AnalysisError> {
        self.check_class(class)?;
        let scores = self.layer(layer)?;
        if dataset >= scores.datasets.len() {
            return Err(self.invalid(format!("no dataset {dataset}")));
        }
        let means: Vec<f32> = (0..scores.neurons)
            .map(|n| scores.class_mean(dataset, class.0, n).unwrap_or(f32::NAN))
            .collect();
        Ok(scores::top_indices(means.iter().copied(), count)
            .into_iter()
            .map(|n| NeuronValue {
                neuron: NeuronId {
                    layer,
                    neuron: n as usize,
                },
                value: means[n as usize],
            })
            .collect())
    }

    /// The pairwise view of two classes on a dataset.
    pub fn pairwise(
        &self,
        a: ClassId,
        b: ClassId,
        dataset: usize,
    ) -> Result<PairwiseView, AnalysisError> {
        self.check_class(a)?;
        self.check_class(b)?;
        let classes = self.store.manifest().classes.len();
        Ok(views::pairwise(
            &*self.predictions(dataset)?,
            classes,
            a.0,
            b.0,
        ))
    }

    /// Per layer, the distribution and summary of each shift score for each OOD dataset
    /// (`bins` histogram bins): the layer shift profile.
    pub fn layer_profile(&self, bins: usize) -> Result<Vec<Vec<ScoreSummary>>, AnalysisError> {
        (0..self.layers.len())
            .map(|l| Ok(self.layer(l)?.profile(bins)))
            .collect()
    }
}

fn fill_drops(accuracies: &mut [Accuracy], reference: usize) {
    let base = accuracies.get(reference).and_then(|a| a.accuracy);
    for a in accuracies.iter_mut() {
        a.drop_from_reference = base.zip(a.accuracy).map(|(r, x)| r - x);
    }
}
