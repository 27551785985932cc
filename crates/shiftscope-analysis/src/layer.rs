//! Everything per neuron for one layer: the pass over every dataset, the normaliser, the
//! shift scores against the reference (ID) dataset, the selectivity indexes, top classes.

use serde::{Deserialize, Serialize};
use shiftscope_store::{Role, Store, StoreError};

use crate::pass::{layer_pass, parallel_map};
use crate::scores::{
    Histogram, TOP_CLASSES, morcos_selectivity, rafegas_selectivity, spearman, top_indices,
};
use crate::shift::layer_w1;

/// What an analysis computes with; part of the cache key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisParams {
    /// Top images kept per neuron (design: 100).
    pub top_k: usize,
    /// The dataset whose per-neuron maximum normalises every dataset; `None`: the reference.
    pub normaliser: Option<usize>,
    /// Rafegas's cumulative-frequency threshold `th` (design: 1.0).
    pub rafegas_threshold: f64,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        AnalysisParams {
            top_k: 100,
            normaliser: None,
            rafegas_threshold: 1.0,
        }
    }
}

/// Per-class means of a neuron's raw activations (`K × C`, row-major by class) over the
/// images of each ground-truth class; NaN where a class has no finite value.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMeans {
    /// Classes (rows).
    pub classes: usize,
    /// Neurons (columns).
    pub neurons: usize,
    /// Raw means; divide by the normaliser for the design's `Y` (see [`LayerScores::class_mean`]).
    pub means: Vec<f32>,
    /// Images per class.
    pub counts: Vec<u32>,
}

impl ClassMeans {
    /// Raw mean of `neuron` over `class`'s images; `None` when undefined.
    pub fn raw(&self, class: usize, neuron: usize) -> Option<f32> {
        (class < self.classes && neuron < self.neurons)
            .then(|| self.means[class * self.neurons + neuron])
            .filter(|m| m.is_finite())
    }

    /// One neuron's profile over the classes (NaN where undefined).
    pub fn profile(&self, neuron: usize) -> impl Iterator<Item = f32> + '_ {
        (0..self.classes).map(move |c| self.means[c * self.neurons + neuron])
    }
}

/// The top images of every neuron, best first; NaN, ±inf and exact zeros never enter, ties
/// are broken by image index.
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    /// Capacity per neuron.
    pub k: usize,
    /// Entries per neuron (≤ k).
    pub len: Vec<u32>,
    /// Image indices (rows of the dataset), `C × k`.
    pub images: Vec<u32>,
    /// Raw activations, `C × k`.
    pub values: Vec<f32>,
}

impl TopK {
    /// One neuron's top images and their raw activations.
    pub fn neuron(&self, neuron: usize) -> (&[u32], &[f32]) {
        let Some(&len) = self.len.get(neuron) else {
            return (&[], &[]);
        };
        let start = neuron * self.k;
        let end = start + len as usize;
        (&self.images[start..end], &self.values[start..end])
    }
}

/// Non-finite values found in a layer of a dataset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NonFinite {
    /// NaN values.
    pub nan: u64,
    /// `+inf` values.
    pub pos_inf: u64,
    /// `-inf` values.
    pub neg_inf: u64,
    /// Non-finite values per neuron.
    #[serde(skip)]
    pub per_neuron: Vec<u32>,
}

impl NonFinite {
    /// All non-finite values.
    pub fn total(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf
    }
}

/// One layer of one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetLayer {
    /// Index into the manifest's datasets.
    pub dataset: usize,
    /// Rows analysed (the committed ones).
    pub rows: usize,
    /// Rows whose label is no class index (left out of class means).
    pub unlabelled: u64,
    /// Maximum finite raw activation per neuron (NaN when none).
    pub max: Vec<f32>,
    /// Class means of raw activations.
    pub class_means: ClassMeans,
    /// Top images per neuron.
    pub top_k: TopK,
    /// NaN/Inf counts.
    pub non_finite: NonFinite,
    /// Rafegas class selectivity per neuron over its top images (NaN: undefined).
    pub rafegas: Vec<f32>,
    /// Morcos class selectivity per neuron over raw class means (NaN: undefined).
    pub morcos: Vec<f32>,
    /// Top classes per neuron, `C × TOP_CLASSES`, highest mean first; `u32::MAX` pads.
    pub top_classes: Vec<u32>,
}

impl DatasetLayer {
    /// A neuron's top classes (fewer than [`TOP_CLASSES`] when fewer are defined).
    pub fn top_classes(&self, neuron: usize) -> Vec<usize> {
        self.top_classes
            .get(neuron * TOP_CLASSES..(neuron + 1) * TOP_CLASSES)
            .unwrap_or(&[])
            .iter()
            .filter(|&&c| c != u32::MAX)
            .map(|&c| c as usize)
            .collect()
    }
}

/// Shift scores of one OOD dataset against the reference, per neuron (NaN: undefined, which
/// includes every silent neuron).
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftScores {
    /// Index of the OOD dataset in the manifest.
    pub dataset: usize,
    /// `1 − |ρ_s(Y_ID, Y_OOD)|`.
    pub spurious: Vec<f32>,
    /// `max_c Y_ID − max_c Y_OOD` (normalised).
    pub novelty: Vec<f32>,
    /// Wasserstein-1 between the normalised per-image distributions.
    pub shift: Vec<f32>,
}

/// Every per-neuron number of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerScores {
    /// Index into the manifest's layers.
    pub layer: usize,
    /// Neurons (columns).
    pub neurons: usize,
    /// Classes.
    pub classes: usize,
    /// The reference (ID) dataset the shift scores compare against.
    pub reference: usize,
    /// The normaliser dataset.
    pub normaliser: usize,
    /// The normaliser's per-neuron maximum.
    pub normaliser_max: Vec<f32>,
    /// Neurons whose normaliser maximum is ≤ 0 (or absent): normalised values undefined.
    pub silent: Vec<bool>,
    /// One entry per manifest dataset, in manifest order.
    pub datasets: Vec<DatasetLayer>,
    /// One entry per OOD dataset.
    pub shifts: Vec<ShiftScores>,
}

/// One neuron's scores, gathered for a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronScores {
    /// The normaliser's maximum.
    pub max_normaliser: f32,
    /// Whether the neuron is silent on the normaliser.
    pub silent: bool,
    /// Rafegas selectivity on the reference dataset.
    pub rafegas: Option<f32>,
    /// Morcos selectivity on the reference dataset.
    pub morcos: Option<f32>,
    /// Top classes on the reference dataset.
    pub top_classes: Vec<usize>,
    /// Shift scores per OOD dataset.
    pub shifts: Vec<NeuronShift>,
}

/// One neuron's shift scores against one OOD dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronShift {
    /// The OOD dataset.
    pub dataset: usize,
    /// Spurious score.
    pub spurious: Option<f32>,
    /// Novelty score.
    pub novelty: Option<f32>,
    /// W1 shift.
    pub shift: Option<f32>,
}

/// Which score a histogram or profile is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreKind {
    /// Spurious score.
    Spurious,
    /// Novelty score.
    Novelty,
    /// W1 shift.
    Shift,
}

/// Summary of one score over a layer's neurons for one OOD dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// Which score.
    pub kind: ScoreKind,
    /// The OOD dataset.
    pub dataset: usize,
    /// Mean over defined neurons (NaN when none).
    pub mean: f64,
    /// Median over defined neurons (NaN when none).
    pub median: f64,
    /// The distribution.
    pub histogram: Histogram,
}

fn defined(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

impl LayerScores {
    /// A neuron's scores; `None` when out of range.
    pub fn neuron(&self, neuron: usize) -> Option<NeuronScores> {
        if neuron >= self.neurons {
            return None;
        }
        let reference = &self.datasets[self.reference];
        Some(NeuronScores {
            max_normaliser: self.normaliser_max[neuron],
            silent: self.silent[neuron],
            rafegas: defined(reference.rafegas[neuron]),
            morcos: defined(reference.morcos[neuron]),
            top_classes: reference.top_classes(neuron),
            shifts: self
                .shifts
                .iter()
                .map(|s| NeuronShift {
                    dataset: s.dataset,
                    spurious: defined(s.spurious[neuron]),
                    novelty: defined(s.novelty[neuron]),
                    shift: defined(s.shift[neuron]),
                })
                .collect(),
        })
    }

    /// `value / max_normaliser`; `None` for a silent neuron or a non-finite value.
    pub fn normalise(&self, neuron: usize, value: f32) -> Option<f32> {
        (neuron < self.neurons && !self.silent[neuron] && value.is_finite())
            .then(|| value / self.normaliser_max[neuron])
    }

    /// The design's `Y[c, n]` on `dataset`: the normalised class mean.
    pub fn class_mean(&self, dataset: usize, class: usize, neuron: usize) -> Option<f32> {
        let raw = self.datasets.get(dataset)?.class_means.raw(class, neuron)?;
        self.normalise(neuron, raw)
    }

    /// The shift scores against one OOD dataset.
    pub fn shift(&self, dataset: usize) -> Option<&ShiftScores> {
        self.shifts.iter().find(|s| s.dataset == dataset)
    }

    /// Distribution and summary of every shift score, per OOD dataset: which layers change
    /// most under each shift.
    pub fn profile(&self, bins: usize) -> Vec<ScoreSummary> {
        let mut out = Vec::new();
        for s in &self.shifts {
            for (kind, values) in [
                (ScoreKind::Spurious, &s.spurious),
                (ScoreKind::Novelty, &s.novelty),
                (ScoreKind::Shift, &s.shift),
            ] {
                let mut finite: Vec<f64> = values
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| f64::from(v))
                    .collect();
                finite.sort_unstable_by(f64::total_cmp);
                let n = finite.len();
                let mean = if n > 0 {
                    finite.iter().sum::<f64>() / n as f64
                } else {
                    f64::NAN
                };
                let median = match n {
                    0 => f64::NAN,
                    _ if n % 2 == 1 => finite[n / 2],
                    _ => (finite[n / 2 - 1] + finite[n / 2]) / 2.0,
                };
                out.push(ScoreSummary {
                    kind,
                    dataset: s.dataset,
                    mean,
                    median,
                    histogram: Histogram::of(values, bins),
                });
            }
        }
        out
    }
}

/// A neuron is silent when its normaliser maximum is ≤ 0 or absent (NaN).
pub(crate) fn is_silent(max: f32) -> bool {
    max.is_nan() || max <= 0.0
}

/// The reference dataset: the first with role ID (dataset 0 when none is marked ID).
pub(crate) fn reference_dataset(store: &Store) -> usize {
    store
        .manifest()
        .datasets
        .iter()
        .position(|d| d.role == Role::Id)
        .unwrap_or(0)
}

/// The OOD datasets scored against the reference.
pub(crate) fn ood_datasets(store: &Store, reference: usize) -> Vec<usize> {
    store
        .manifest()
        .datasets
        .iter()
        .enumerate()
        .filter(|(i, d)| d.role == Role::Ood && *i != reference)
        .map(|(i, _)| i)
        .collect()
}

/// `rows × cols` row-major to `cols × rows` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}

/// Computes a layer from the store (no cache).
pub(crate) fn compute_layer(
    store: &Store,
    layer: usize,
    params: &AnalysisParams,
    reference: usize,
    normaliser: usize,
    threads: usize,
) -> Result<LayerScores, StoreError> {
    let manifest = store.manifest();
    let classes = manifest.classes.len();
    let neurons = manifest
        .layers
        .get(layer)
        .ok_or_else(|| StoreError::Invalid(format!("no layer {layer}")))?
        .neurons;
    let k = params.top_k;
    let mut datasets = Vec::with_capacity(manifest.datasets.len());
    // Per dataset, the class means transposed (`C × K`): each neuron's profile contiguous.
    let mut profiles = Vec::with_capacity(manifest.datasets.len());
    for d in 0..manifest.datasets.len() {
        let rows = store.committed(d)?;
        let labels = store.labels(d)?;
        let matrix = store.layer(d, layer)?;
        let pass = layer_pass(&matrix, rows, labels, classes, k, threads);
        let class_means = ClassMeans {
            classes,
            neurons,
            means: pass.means,
            counts: pass.class_counts,
        };
        let top_k = TopK {
            k,
            len: pass.top_len,
            images: pass.top_images,
            values: pass.top_values,
        };
        let by_neuron = transpose(&class_means.means, classes, neurons);
        let profile = |n: usize| by_neuron[n * classes..(n + 1) * classes].iter().copied();
        let per_neuron = parallel_map(neurons, threads, |n| {
            let (images, values) = top_k.neuron(n);
            let (labelled, top_labels): (Vec<f32>, Vec<u32>) = images
                .iter()
                .zip(values)
                .filter_map(|(&i, &v)| {
                    let y = labels[i as usize];
                    u32::try_from(y)
                        .ok()
                        .filter(|&c| (c as usize) < classes)
                        .map(|c| (v, c))
                })
                .unzip();
            let rafegas = rafegas_selectivity(&labelled, &top_labels, params.rafegas_threshold)
                .map_or(f32::NAN, |v| v as f32);
            let morcos = morcos_selectivity(profile(n)).map_or(f32::NAN, |v| v as f32);
            (rafegas, morcos, top_indices(profile(n), TOP_CLASSES))
        });
        let mut rafegas = vec![f32::NAN; neurons];
        let mut morcos = vec![f32::NAN; neurons];
        let mut top_classes = vec![u32::MAX; neurons * TOP_CLASSES];
        for (n, (r, m, top)) in per_neuron.into_iter().enumerate() {
            rafegas[n] = r;
            morcos[n] = m;
            for (slot, c) in top_classes[n * TOP_CLASSES..].iter_mut().zip(top) {
                *slot = c;
            }
        }
        profiles.push(by_neuron);
        datasets.push(DatasetLayer {
            dataset: d,
            rows,
            unlabelled: pass.unlabelled,
            max: pass.max,
            class_means,
            top_k,
            non_finite: NonFinite {
                nan: pass.nan,
                pos_inf: pass.pos_inf,
                neg_inf: pass.neg_inf,
                per_neuron: pass.non_finite,
            },
            rafegas,
            morcos,
            top_classes,
        });
    }
    let normaliser_max = datasets[normaliser].max.clone();
    let silent: Vec<bool> = normaliser_max.iter().map(|&m| is_silent(m)).collect();
    let mut shifts = Vec::new();
    for ood in ood_datasets(store, reference) {
        let (id, od) = (&datasets[reference], &datasets[ood]);
        let raw_w1 = layer_w1(
            &store.layer(reference, layer)?,
            id.rows,
            &store.layer(ood, layer)?,
            od.rows,
            threads,
        );
        let per_neuron = parallel_map(neurons, threads, |n| {
            if silent[n] {
                return (f32::NAN, f32::NAN, f32::NAN);
            }
            let m = normaliser_max[n];
            // Ranks are unchanged by the positive normalising scale: raw means suffice.
            let a = &profiles[reference][n * classes..(n + 1) * classes];
            let b = &profiles[ood][n * classes..(n + 1) * classes];
            let spurious = spearman(a, b).map_or(f32::NAN, |r| (1.0 - r.abs()) as f32);
            let max_of = |p: &[f32]| {
                p.iter()
                    .filter(|v| v.is_finite())
                    .fold(None, |acc: Option<f32>, &v| {
                        Some(acc.map_or(v, |a| a.max(v)))
                    })
            };
            let novelty = match (max_of(a), max_of(b)) {
                (Some(x), Some(y)) => x / m - y / m,
                _ => f32::NAN,
            };
            (spurious, novelty, raw_w1[n] / m)
        });
        let spurious = per_neuron.iter().map(|p| p.0).collect();
        let novelty = per_neuron.iter().map(|p| p.1).collect();
        let shift = per_neuron.iter().map(|p| p.2).collect();
        shifts.push(ShiftScores {
            dataset: ood,
            spurious,
            novelty,
            shift,
        });
    }
    Ok(LayerScores {
        layer,
        neurons,
        classes,
        reference,
        normaliser,
        normaliser_max,
        silent,
        datasets,
        shifts,
    })
}
