//! The view model: plain data the panels read, built from an [`Analysis`] off the UI thread.
//! [`ViewModel::load`] gathers what every panel needs at once (datasets, layers, the neuron
//! table, the layer profile); the Neuron, Image and Category panels' details are filled on
//! demand ([`ViewModel::missing`] → [`Fill::run`] on a worker → [`ViewModel::put`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use shiftscope_analysis::{
    Analysis, AnalysisError, ClassId, ClassProbability, ClassView, Comparison, ImageId, NeuronId,
    NeuronScores, NeuronValue, PairwiseView, ScoreKind, ScoreSummary, ScoredImage,
};
use shiftscope_store::Role;

use crate::search::{Fields, LayerName};
use crate::state::{Score, UiState};

/// Why a view model or a detail could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The analysis failed.
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    /// Reading the store failed.
    #[error("reading the store: {0}")]
    Store(#[from] shiftscope_store::StoreError),
    /// The search does not parse.
    #[error("search: {0}")]
    Search(#[from] crate::search::SearchError),
    /// Writing an export failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
}

/// How much each detail gathers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Top images per dataset in the Neuron panel.
    pub top_images: usize,
    /// Histogram bins.
    pub bins: usize,
    /// Top predictions in the Image panel.
    pub predictions: usize,
    /// Top neurons in the Image and Category panels.
    pub top_neurons: usize,
    /// Images in each top neuron's strip.
    pub strip: usize,
    /// Nearest ID images.
    pub nearest: usize,
    /// Images per confusion group or pairwise list.
    pub grid: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            top_images: 12,
            bins: 30,
            predictions: 5,
            top_neurons: 8,
            strip: 6,
            nearest: 8,
            grid: 24,
        }
    }
}

/// A detail that may still be on its way.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Loadable<T> {
    /// Not asked for.
    #[default]
    Empty,
    /// A worker is on it (with a note for the spinner).
    Loading(String),
    /// Here.
    Ready(T),
    /// It failed; the message.
    Failed(String),
}

impl<T> Loadable<T> {
    /// The value when ready.
    pub fn ready(&self) -> Option<&T> {
        match self {
            Loadable::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// One dataset of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetInfo {
    /// Its name.
    pub name: String,
    /// ID or OOD.
    pub role: Role,
    /// Images recorded.
    pub images: usize,
    /// Accuracy over labelled images.
    pub accuracy: Option<f64>,
    /// Reference accuracy minus this one.
    pub drop: Option<f64>,
}

/// One recorded layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// Tensor name.
    pub name: String,
    /// `conv`, `dense`, `tokens`, `logits`.
    pub kind: String,
    /// Neurons.
    pub neurons: usize,
}

/// One neuron-table row. NaN: undefined.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronRow {
    /// The neuron.
    pub id: NeuronId,
    /// The normaliser's maximum.
    pub max: f32,
    /// Rafegas selectivity on the reference.
    pub rafegas: f32,
    /// Morcos selectivity on the reference.
    pub morcos: f32,
    /// `[spurious, novelty, shift]` per OOD dataset, in [`ViewModel::ood`] order.
    pub shifts: Vec<[f32; 3]>,
}

impl NeuronRow {
    /// A score, the shift scores against OOD dataset number `ood` (in [`ViewModel::ood`]).
    pub fn score(&self, score: Score, ood: Option<usize>) -> f32 {
        let shift = |i: usize| {
            ood.and_then(|o| self.shifts.get(o))
                .map_or(f32::NAN, |s| s[i])
        };
        match score {
            Score::Max => self.max,
            Score::Rafegas => self.rafegas,
            Score::Morcos => self.morcos,
            Score::Spurious => shift(0),
            Score::Novelty => shift(1),
            Score::Shift => shift(2),
        }
    }
}

/// A row seen through the OOD dataset in focus, for the search's filters.
pub(crate) struct RowFields<'a>(pub(crate) &'a NeuronRow, pub(crate) Option<usize>);

impl Fields for RowFields<'_> {
    fn layer(&self) -> usize {
        self.0.id.layer
    }
    fn score(&self, score: Score) -> f32 {
        self.0.score(score, self.1)
    }
}

/// One layer's channel maps for the live image, channel-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelMaps {
    /// The layer.
    pub layer: usize,
    /// Channels (one map each).
    pub channels: usize,
    /// Map height.
    pub height: usize,
    /// Map width.
    pub width: usize,
    /// `channels × height × width` values.
    pub values: Vec<f32>,
}

impl ChannelMaps {
    /// Channel `c`'s map.
    pub fn map(&self, c: usize) -> &[f32] {
        let area = self.height * self.width;
        self.values.get(c * area..(c + 1) * area).unwrap_or(&[])
    }
}

/// What the model made of an image from outside the store (live mode).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveView {
    /// Distinguishes live results (texture caches key on it).
    pub generation: u64,
    /// The image file's name.
    pub name: String,
    /// What the model saw, RGB, `width × height`.
    pub rgb: Vec<u8>,
    /// Its width.
    pub width: usize,
    /// Its height.
    pub height: usize,
    /// Top-5 predictions: class and softmax probability.
    pub predictions: Vec<(ClassId, f32)>,
    /// Per recorded layer, one value per neuron (pooled as the store's).
    pub layers: Vec<Vec<f32>>,
    /// The selected layer's channel maps, when asked for.
    pub maps: Option<ChannelMaps>,
}

impl LiveView {
    /// Top-5 of `logits` by softmax probability.
    pub fn top5(logits: &[f32]) -> Vec<(ClassId, f32)> {
        let max = logits
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
        let total: f32 = exp.iter().filter(|v| v.is_finite()).sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(5)
            .map(|k| (ClassId(k), exp[k] / total))
            .collect()
    }

    /// The `n` most active neurons of `layer`, normalised by each neuron's normaliser
    /// maximum where it is positive (raw otherwise), with that value.
    pub fn top_neurons(&self, vm: &ViewModel, layer: usize, n: usize) -> Vec<(NeuronId, f32)> {
        let Some(values) = self.layers.get(layer) else {
            return Vec::new();
        };
        let start = vm.layer_start.get(layer).copied().unwrap_or(0);
        let mut out: Vec<(NeuronId, f32)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| {
                let max = vm.neurons.get(start + i).map_or(f32::NAN, |r| r.max);
                let value = if max > 0.0 { v / max } else { v };
                (NeuronId { layer, neuron: i }, value)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.neuron.cmp(&b.0.neuron)));
        out.truncate(n);
        out
    }
}

/// A thumbnail: RGB, `side × side`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thumb {
    /// Side in pixels.
    pub side: usize,
    /// `side² × 3` bytes, row-major.
    pub rgb: Vec<u8>,
}

/// Thumbnails by image.
pub type Thumbs = HashMap<ImageId, Thumb>;

/// Equal-width bins over a shared range (so histograms overlay).
#[derive(Clone, Debug, PartialEq)]
pub struct Bins {
    /// Lower edge.
    pub min: f32,
    /// Upper edge.
    pub max: f32,
    /// Counts per bin.
    pub counts: Vec<u64>,
}

/// One dataset's column of the Neuron panel.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronColumn {
    /// The dataset.
    pub dataset: usize,
    /// Its maximum activation (NaN: none finite).
    pub max: f32,
    /// That maximum as a fraction of the normaliser's.
    pub of_normaliser: Option<f32>,
    /// Top images: raw activation, normalised.
    pub top: Vec<(ImageId, f32, Option<f32>)>,
    /// Top classes with their normalised means.
    pub top_classes: Vec<(ClassId, Option<f32>)>,
    /// The distribution of its activations.
    pub histogram: Bins,
}

/// The Neuron panel's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronDetail {
    /// The neuron.
    pub id: NeuronId,
    /// Its scores.
    pub scores: NeuronScores,
    /// One column per dataset.
    pub columns: Vec<NeuronColumn>,
    /// Its colour selectivity and Neuron Feature, per dataset and N where computed.
    pub features: Vec<NeuronFeature>,
    /// Thumbnails of every image shown.
    pub thumbs: Thumbs,
}

/// A neuron's colour selectivity index and Neuron Feature on one dataset (Rafegas et al.;
/// computed by `shiftscope features` and read from its cache).
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronFeature {
    /// The dataset whose top images were used.
    pub dataset: usize,
    /// N: top images per neuron asked for.
    pub top: usize,
    /// How many top images the neuron had (≤ N).
    pub images: u32,
    /// `1 − Σ a'_j / Σ a_j` (grey versions over originals); `None` when undefined.
    pub csi: Option<f32>,
    /// `mean_j (1 − clamp(a'_j / a_j, 0, 1))`; `None` when undefined.
    pub csi_clipped: Option<f32>,
    /// The Neuron Feature: height, width and 8-bit RGB pixels; `None` when it has none.
    pub image: Option<(usize, usize, Vec<u8>)>,
    /// Notes of the computation (whole-image crops and why).
    pub notes: Vec<String>,
}

/// Every cached feature computation of `id`'s layer, as `id`'s rows.
fn neuron_features(analysis: &Analysis, id: NeuronId) -> Vec<NeuronFeature> {
    let cache = analysis.cache_dir();
    // The cache folder is `<store>/analysis/<manifest sha256>`.
    let Some(root) = cache.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    shiftscope_features::LayerFeatures::cached(analysis.store(), root, id.layer)
        .into_iter()
        .map(|f| NeuronFeature {
            dataset: f.dataset,
            top: f.top,
            images: f.images.get(id.neuron).copied().unwrap_or(0),
            csi: f.csi.get(id.neuron).copied().flatten(),
            csi_clipped: f.csi_clipped.get(id.neuron).copied().flatten(),
            image: f
                .feature_bytes(id.neuron)
                .map(|b| (f.nf_size[0], f.nf_size[1], b.to_vec())),
            notes: f.notes.clone(),
        })
        .collect()
}

/// One of the Image panel's top neurons.
#[derive(Clone, Debug, PartialEq)]
pub struct TopNeuron {
    /// The neuron and its (normalised) activation on the image.
    pub value: NeuronValue,
    /// Its own top images on the image's dataset.
    pub strip: Vec<ImageId>,
}

/// The Image panel's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageDetail {
    /// The image.
    pub id: ImageId,
    /// The layer its neurons come from.
    pub layer: usize,
    /// Its ground truth.
    pub truth: Option<ClassId>,
    /// Most probable classes.
    pub predictions: Vec<ClassProbability>,
    /// Its top neurons with their strips.
    pub top_neurons: Vec<TopNeuron>,
    /// Nearest images in the ID dataset.
    pub nearest: Vec<ScoredImage>,
    /// The same row on the other datasets: the lead's neurons, their own values.
    pub comparison: Option<Comparison>,
    /// Thumbnails of every image shown.
    pub thumbs: Thumbs,
}

/// The Category panel's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDetail {
    /// Per dataset accuracy, drop and confusions.
    pub view: ClassView,
    /// The layer of the top neurons.
    pub layer: usize,
    /// Top neurons by normalised class mean on the reference dataset.
    pub top_neurons: Vec<NeuronValue>,
    /// The pairwise view with the other class on the lead dataset.
    pub pairwise: Option<PairwiseView>,
    /// The dataset the pairwise view is on.
    pub lead: usize,
    /// Thumbnails of every image shown.
    pub thumbs: Thumbs,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Everything the panels read.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewModel {
    /// Distinguishes view models (texture and table caches key on it).
    pub generation: u64,
    /// The store's folder name.
    pub store: String,
    /// The model file.
    pub model: String,
    /// Every dataset, in manifest order.
    pub datasets: Vec<DatasetInfo>,
    /// The reference (ID) dataset.
    pub reference: usize,
    /// The normaliser dataset the numbers were computed with.
    pub normaliser: usize,
    /// OOD datasets, the order of [`NeuronRow::shifts`].
    pub ood: Vec<usize>,
    /// Recorded layers.
    pub layers: Vec<LayerInfo>,
    /// Class names.
    pub classes: Vec<String>,
    /// Every neuron of every layer, in network order.
    pub neurons: Vec<NeuronRow>,
    /// First row of each layer in [`ViewModel::neurons`].
    pub layer_start: Vec<usize>,
    /// Per layer, summaries of each shift score per OOD dataset.
    pub profile: Vec<Vec<ScoreSummary>>,
    /// The Options details are loaded with.
    pub options: LoadOptions,
    /// The selected neuron's detail.
    pub neuron: Loadable<NeuronDetail>,
    /// The selected image's detail.
    pub image: Loadable<ImageDetail>,
    /// The selected class's detail.
    pub class: Loadable<ClassDetail>,
    /// Thumbnails gathered so far.
    pub thumbs: Thumbs,
    /// The live image's results (live mode).
    pub live: Loadable<LiveView>,
    /// The Mistakes panel's class, explained.
    pub mistakes: Loadable<crate::panels::MistakesView>,
}

/// A detail to fetch, for a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The Neuron panel's.
    Neuron(NeuronId),
    /// The Image panel's, with this layer's neurons, following the lead dataset.
    Image {
        /// The image.
        image: ImageId,
        /// The layer.
        layer: usize,
    },
    /// The Category panel's.
    Class {
        /// The class.
        class: ClassId,
        /// The class to compare with (`None`: the most confused one).
        pair: Option<ClassId>,
        /// The layer of its top neurons.
        layer: usize,
        /// The dataset of the pairwise view.
        lead: usize,
    },
}

/// A fetched detail.
#[derive(Clone, Debug, PartialEq)]
pub enum Filled {
    /// The Neuron panel's.
    Neuron(NeuronDetail),
    /// The Image panel's.
    Image(ImageDetail),
    /// The Category panel's.
    Class(ClassDetail),
}

fn thumbs_of(
    analysis: &Analysis,
    images: impl IntoIterator<Item = ImageId>,
) -> Result<Thumbs, UiError> {
    let store = analysis.store();
    let side = store.manifest().thumb;
    let size = side * side * 3;
    let mut out = Thumbs::new();
    for id in images {
        if out.contains_key(&id) || size == 0 {
            continue;
        }
        let all = store.thumbs(id.dataset)?;
        if let Some(rgb) = all.get(id.index * size..(id.index + 1) * size) {
            out.insert(
                id,
                Thumb {
                    side,
                    rgb: rgb.to_vec(),
                },
            );
        }
    }
    Ok(out)
}

/// Histograms of one neuron's activations on every dataset over their common range.
fn histograms(analysis: &Analysis, id: NeuronId, bins: usize) -> Result<Vec<Bins>, UiError> {
    let store = analysis.store();
    let bins = bins.max(1);
    let mut values = Vec::new();
    for d in 0..store.manifest().datasets.len() {
        let rows = store.committed(d)?;
        let m = store.layer(d, id.layer)?;
        values.push(
            (0..rows.min(m.shape().0))
                .map(|r| m.get(r, id.neuron))
                .filter(|v| v.is_finite())
                .collect::<Vec<f32>>(),
        );
    }
    let all = values.iter().flatten();
    let min = all.clone().fold(f32::INFINITY, |a, &b| a.min(b));
    let max = all.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let (min, max) = if min.is_finite() {
        (min, max)
    } else {
        (0.0, 0.0)
    };
    let width = (max - min) / bins as f32;
    Ok(values
        .iter()
        .map(|vs| {
            let mut counts = vec![0u64; bins];
            for &v in vs {
                let b = if width > 0.0 {
                    (((v - min) / width) as usize).min(bins - 1)
                } else {
                    0
                };
                counts[b] += 1;
            }
            Bins { min, max, counts }
        })
        .collect())
}

impl ViewModel {
    /// Gathers what every panel needs from an analysis: datasets with accuracy, layers, every
    /// neuron's scores (computing or reading each layer's numbers, the slow part: `progress`
    /// hears `(layers done, layers)`), and the layer shift profile.
    pub fn load(
        analysis: &Analysis,
        options: LoadOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ViewModel, UiError> {
        let manifest = analysis.store().manifest();
        let accuracy = analysis.accuracy()?;
        let datasets = manifest
            .datasets
            .iter()
            .enumerate()
            .map(|(d, e)| {
                let a = accuracy.iter().find(|a| a.dataset == d);
                Ok(DatasetInfo {
                    name: e.name.clone(),
                    role: e.role,
                    images: analysis.store().committed(d)?,
                    accuracy: a.and_then(|a| a.accuracy),
                    drop: a.and_then(|a| a.drop_from_reference),
                })
            })
            .collect::<Result<Vec<_>, UiError>>()?;
        let ood = analysis.ood_datasets();
        let layers: Vec<LayerInfo> = manifest
            .layers
            .iter()
            .map(|l| LayerInfo {
                name: l.name.clone(),
                kind: l.kind.clone(),
                neurons: l.neurons,
            })
            .collect();
        let mut neurons = Vec::with_capacity(layers.iter().map(|l| l.neurons).sum());
        let mut layer_start = Vec::with_capacity(layers.len());
        let mut profile = Vec::with_capacity(layers.len());
        for l in 0..layers.len() {
            progress(l, layers.len());
            let scores = analysis.layer(l)?;
            layer_start.push(neurons.len());
            let reference = &scores.datasets[scores.reference];
            for n in 0..scores.neurons {
                let finite = |v: f32| if v.is_finite() { v } else { f32::NAN };
                neurons.push(NeuronRow {
                    id: NeuronId {
                        layer: l,
                        neuron: n,
                    },
                    max: finite(scores.normaliser_max[n]),
                    rafegas: finite(reference.rafegas[n]),
                    morcos: finite(reference.morcos[n]),
                    shifts: ood
                        .iter()
                        .map(|&d| {
                            scores.shift(d).map_or([f32::NAN; 3], |s| {
                                [
                                    finite(s.spurious[n]),
                                    finite(s.novelty[n]),
                                    finite(s.shift[n]),
                                ]
                            })
                        })
                        .collect(),
                });
            }
            profile.push(scores.profile(options.bins));
        }
        progress(layers.len(), layers.len());
        let model = analysis
            .store()
            .manifest()
            .model
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(ViewModel {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            store: analysis
                .cache_dir()
                .parent()
                .and_then(|p| p.parent())
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            model,
            datasets,
            reference: analysis.reference(),
            normaliser: analysis.normaliser(),
            ood,
            layers,
            classes: manifest.classes.clone(),
            neurons,
            layer_start,
            profile,
            options,
            neuron: Loadable::Empty,
            image: Loadable::Empty,
            class: Loadable::Empty,
            thumbs: Thumbs::new(),
            live: Loadable::Empty,
            mistakes: Loadable::Empty,
        })
    }

    /// The layers as the search knows them.
    pub fn layer_names(&self) -> Vec<LayerName<'_>> {
        self.layers
            .iter()
            .map(|l| LayerName {
                name: &l.name,
                neurons: l.neurons,
            })
            .collect()
    }

    /// A neuron's table row.
    pub fn row(&self, id: NeuronId) -> Option<&NeuronRow> {
        let start = *self.layer_start.get(id.layer)?;
        let layer = self.layers.get(id.layer)?;
        (id.neuron < layer.neurons)
            .then(|| self.neurons.get(start + id.neuron))
            .flatten()
    }

    /// The OOD dataset the table's shift scores are against: the lead when it is OOD, else the
    /// first OOD dataset (as a position in [`ViewModel::ood`]).
    pub fn focus(&self, state: &UiState) -> Option<usize> {
        self.ood
            .iter()
            .position(|&d| d == state.lead)
            .or((!self.ood.is_empty()).then_some(0))
    }

    /// A neuron's name, `layer:index`.
    pub fn neuron_name(&self, id: NeuronId) -> String {
        match self.layers.get(id.layer) {
            Some(l) => format!("{}:{}", l.name, id.neuron),
            None => format!("{}:{}", id.layer, id.neuron),
        }
    }

    /// An image's name, `dataset#index`.
    pub fn image_name(&self, id: ImageId) -> String {
        match self.datasets.get(id.dataset) {
            Some(d) => format!("{}#{}", d.name, id.index),
            None => format!("{}#{}", id.dataset, id.index),
        }
    }

    /// A class's name.
    pub fn class_name(&self, class: ClassId) -> String {
        self.classes
            .get(class.0)
            .cloned()
            .unwrap_or_else(|| format!("class {}", class.0))
    }

    /// A dataset's name.
    pub fn dataset_name(&self, d: usize) -> String {
        self.datasets
            .get(d)
            .map_or_else(|| format!("dataset {d}"), |d| d.name.clone())
    }

    /// A layer's mean of a shift score against an OOD dataset (NaN: none).
    pub fn profile_mean(&self, layer: usize, kind: ScoreKind, dataset: usize) -> f64 {
        self.profile
            .get(layer)
            .and_then(|p| p.iter().find(|s| s.kind == kind && s.dataset == dataset))
            .map_or(f64::NAN, |s| s.mean)
    }

    /// Details the state shows that are neither here nor on their way; the host runs each
    /// [`Fill`] (on a worker) and hands the result to [`ViewModel::put`]. Marks them loading.
    pub fn missing(&mut self, state: &UiState) -> Vec<Fill> {
        let mut out = Vec::new();
        if let Some(id) = state.neuron() {
            let have = match &self.neuron {
                Loadable::Ready(d) => d.id == id,
                Loadable::Loading(what) | Loadable::Failed(what) => *what == self.neuron_name(id),
                Loadable::Empty => false,
            };
            if !have {
                self.neuron = Loadable::Loading(self.neuron_name(id));
                out.push(Fill::Neuron(id));
            }
        }
        if let Some(image) = state.image() {
            let key = format!("{}@{}", self.image_name(image), state.layer);
            let have = match &self.image {
                Loadable::Ready(d) => d.id == image && d.layer == state.layer,
                Loadable::Loading(what) | Loadable::Failed(what) => *what == key,
                Loadable::Empty => false,
            };
            if !have {
                self.image = Loadable::Loading(key);
                out.push(Fill::Image {
                    image,
                    layer: state.layer,
                });
            }
        }
        if let Some(class) = state.class() {
            let key = format!(
                "{}/{:?}@{}/{}",
                class.0, state.view.pair, state.layer, state.lead
            );
            let have = match &self.class {
                Loadable::Ready(d) => {
                    d.view.class == class
                        && d.layer == state.layer
                        && d.lead == state.lead
                        && (state.view.pair.is_none()
                            || d.pairwise.as_ref().map(|p| p.b) == state.view.pair)
                }
                Loadable::Loading(what) | Loadable::Failed(what) => *what == key,
                Loadable::Empty => false,
            };
            if !have {
                self.class = Loadable::Loading(key);
                out.push(Fill::Class {
                    class,
                    pair: state.view.pair,
                    layer: state.layer,
                    lead: state.lead,
                });
            }
        }
        out
    }

    /// Takes a fetched detail (its thumbnails join the model's).
    pub fn put(&mut self, filled: Filled) {
        match filled {
            Filled::Neuron(mut d) => {
                self.thumbs.extend(std::mem::take(&mut d.thumbs));
                self.neuron = Loadable::Ready(d);
            }
            Filled::Image(mut d) => {
                self.thumbs.extend(std::mem::take(&mut d.thumbs));
                self.image = Loadable::Ready(d);
            }
            Filled::Class(mut d) => {
                self.thumbs.extend(std::mem::take(&mut d.thumbs));
                self.class = Loadable::Ready(d);
            }
        }
    }

    /// Records a failed fill, shown in its panel.
    pub fn fail(&mut self, fill: Fill, error: &UiError) {
        let message = error.to_string();
        match fill {
            Fill::Neuron(_) => self.neuron = Loadable::Failed(message),
            Fill::Image { .. } => self.image = Loadable::Failed(message),
            Fill::Class { .. } => self.class = Loadable::Failed(message),
        }
    }

    /// Fills everything the state shows, here and now (tests and simple hosts).
    pub fn fill_now(&mut self, analysis: &Analysis, state: &UiState) {
        for fill in self.missing(state) {
            match fill.run(analysis, self.options) {
                Ok(filled) => self.put(filled),
                Err(e) => self.fail(fill, &e),
            }
        }
    }
}

impl Fill {
    /// Fetches the detail from the analysis (reads the store; run it off the UI thread).
    pub fn run(self, analysis: &Analysis, options: LoadOptions) -> Result<Filled, UiError> {
        match self {
            Fill::Neuron(id) => neuron_detail(analysis, id, options).map(Filled::Neuron),
            Fill::Image { image, layer } => {
                image_detail(analysis, image, layer, options).map(Filled::Image)
            }
            Fill::Class {
                class,
                pair,
                layer,
                lead,
            } => class_detail(analysis, class, pair, layer, lead, options).map(Filled::Class),
        }
    }
}

fn neuron_detail(
    analysis: &Analysis,
    id: NeuronId,
    options: LoadOptions,
) -> Result<NeuronDetail, UiError> {
    let view = analysis.neuron(id)?;
    let scores = analysis.layer(id.layer)?;
    let hist = histograms(analysis, id, options.bins)?;
    let columns: Vec<NeuronColumn> = scores
        .datasets
        .iter()
        .zip(hist)
        .map(|(d, histogram)| {
            let max = d.max.get(id.neuron).copied().unwrap_or(f32::NAN);
            let top = view
                .top_images
                .get(d.dataset)
                .map(|t| t.iter().take(options.top_images).copied().collect())
                .unwrap_or_default();
            NeuronColumn {
                dataset: d.dataset,
                max,
                of_normaliser: scores.normalise(id.neuron, max),
                top,
                top_classes: d
                    .top_classes(id.neuron)
                    .into_iter()
                    .map(|c| (ClassId(c), scores.class_mean(d.dataset, c, id.neuron)))
                    .collect(),
                histogram,
            }
        })
        .collect();
    let thumbs = thumbs_of(
        analysis,
        columns.iter().flat_map(|c| c.top.iter().map(|t| t.0)),
    )?;
    Ok(NeuronDetail {
        id,
        scores: view.scores,
        columns,
        features: neuron_features(analysis, id),
        thumbs,
    })
}

fn image_detail(
    analysis: &Analysis,
    id: ImageId,
    layer: usize,
    options: LoadOptions,
) -> Result<ImageDetail, UiError> {
    let classes = analysis.store().manifest().classes.len();
    let truth = analysis
        .store()
        .labels(id.dataset)?
        .get(id.index)
        .and_then(|&l| usize::try_from(l).ok())
        .filter(|&l| l < classes)
        .map(ClassId);
    let predictions = analysis.image_predictions(id, options.predictions)?;
    let scores = analysis.layer(layer)?;
    let top = analysis.image_top_neurons(id, layer, options.top_neurons, true)?;
    let top_neurons: Vec<TopNeuron> = top
        .into_iter()
        .map(|value| {
            let strip = scores
                .datasets
                .get(id.dataset)
                .map(|d| {
                    d.top_k
                        .neuron(value.neuron.neuron)
                        .0
                        .iter()
                        .take(options.strip)
                        .map(|&i| ImageId {
                            dataset: id.dataset,
                            index: i as usize,
                        })
                        .collect()
                })
                .unwrap_or_default();
            TopNeuron { value, strip }
        })
        .collect();
    let nearest = analysis.nearest_images(id, layer, &[analysis.reference()], options.nearest)?;
    let comparison = analysis.comparison(id, layer, options.top_neurons, true)?;
    let comparison = (!comparison.followers.is_empty()).then_some(comparison);
    let mut shown = vec![id];
    shown.extend(top_neurons.iter().flat_map(|t| t.strip.iter().copied()));
    shown.extend(nearest.iter().map(|s| s.image));
    if let Some(c) = &comparison {
        shown.extend(c.followers.iter().map(|f| f.0));
    }
    let thumbs = thumbs_of(analysis, shown)?;
    Ok(ImageDetail {
        id,
        layer,
        truth,
        predictions,
        top_neurons,
        nearest,
        comparison,
        thumbs,
    })
}

fn class_detail(
    analysis: &Analysis,
    class: ClassId,
    pair: Option<ClassId>,
    layer: usize,
    lead: usize,
    options: LoadOptions,
) -> Result<ClassDetail, UiError> {
    let mut view = analysis.class_view(class)?;
    for d in &mut view.datasets {
        for g in d.false_negatives.iter_mut().chain(&mut d.false_positives) {
            g.images.truncate(options.grid);
        }
    }
    let top_neurons =
        analysis.class_top_neurons(class, layer, analysis.reference(), options.top_neurons)?;
    let lead = lead.min(view.datasets.len().saturating_sub(1));
    let pair = pair.or_else(|| {
        view.datasets
            .get(lead)
            .and_then(|d| d.false_negatives.first())
            .map(|g| g.confused_with)
    });
    let pairwise = match pair {
        Some(b) if b != class => {
            let mut p = analysis.pairwise(class, b, lead)?;
            p.a_as_b.truncate(options.grid);
            p.b_as_a.truncate(options.grid);
            Some(p)
        }
        _ => None,
    };
    let mut shown: Vec<ImageId> = view
        .datasets
        .iter()
        .flat_map(|d| d.false_negatives.iter().chain(&d.false_positives))
        .flat_map(|g| g.images.iter().map(|s| s.image))
        .collect();
    if let Some(p) = &pairwise {
        shown.extend(p.a_as_b.iter().chain(&p.b_as_a).map(|s| s.image));
    }
    let thumbs = thumbs_of(analysis, shown)?;
    Ok(ClassDetail {
        view,
        layer,
        top_neurons,
        pairwise,
        lead,
        thumbs,
    })
}
