//! The loader: one named worker thread owns the [`Analysis`]. It opens the store, builds the
//! [`ViewModel`] (reporting progress per layer), then answers requests over crossbeam
//! channels: panel details ([`Fill`]), per-layer values of a measure for the map, and a
//! neuron's strongest inputs. The Bevy side only sends requests and polls replies, so the
//! window never waits on the disk or the analysis.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bevy::prelude::*;
use crossbeam::channel::{Receiver, Sender, unbounded};
use shiftscope_analysis::{Analysis, AnalysisParams, ClassId, ImageId, NeuronId};
use shiftscope_ui::{Fill, Filled, LoadOptions, Measure, UiError, ViewModel};

/// Which values the map shows: everything a measure's numbers depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValuesKey {
    /// The measure.
    pub measure: Measure,
    /// The image (activation, difference).
    pub image: ImageId,
    /// The class (class mean).
    pub class: ClassId,
    /// The lead dataset (class mean).
    pub lead: usize,
    /// The OOD dataset the shift scores and the difference are against.
    pub ood: Option<usize>,
}

/// A measure's values, one vector per layer (NaN: undefined).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerValues {
    /// What they are.
    pub key: ValuesKey,
    /// Per layer, per neuron.
    pub layers: Vec<Vec<f32>>,
}

/// What the UI asks the worker for.
#[derive(Clone, Debug)]
pub enum Request {
    /// A panel's detail.
    Fill(Fill),
    /// A measure's values for every layer.
    Values(ValuesKey),
    /// A neuron's strongest inputs in the previous layer.
    Inputs(NeuronId),
    /// Re-analyse with another normaliser dataset (rebuilds the view model).
    Normaliser(usize),
}

/// What the worker sends back.
#[derive(Debug)]
pub enum Reply {
    /// Layers analysed so far, of all.
    Progress(usize, usize),
    /// The view model is ready.
    Loaded(Box<ViewModel>),
    /// Opening or analysing the store failed.
    Failed(String),
    /// A detail.
    Filled(Fill, Result<Filled, UiError>),
    /// A measure's values.
    Values(Result<LayerValues, String>),
    /// A neuron's strongest inputs: `(previous-layer neuron, correlation)`, strongest first.
    Inputs(NeuronId, Vec<(usize, f32)>),
}

/// The channels to the worker, as a Bevy resource.
#[derive(Resource, Debug)]
pub struct Loader {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    _thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts the worker on `store`.
    pub fn spawn(store: PathBuf, options: LoadOptions) -> std::io::Result<Loader> {
        let (requests, rx) = unbounded();
        let (tx, replies) = unbounded();
        let thread = std::thread::Builder::new()
            .name("shiftscope-viewer-loader".into())
            .spawn(move || worker(&store, options, &rx, &tx))?;
        Ok(Loader {
            requests,
            replies,
            _thread: Some(thread),
        })
    }

    /// A loader with no worker: tests answer through the returned ends.
    pub fn detached() -> (Loader, Receiver<Request>, Sender<Reply>) {
        let (requests, rx) = unbounded();
        let (tx, replies) = unbounded();
        (
            Loader {
                requests,
                replies,
                _thread: None,
            },
            rx,
            tx,
        )
    }

    /// Sends a request (a worker that has gone away has already reported why).
    pub fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::warn!("the viewer's loader thread has stopped");
        }
    }

    /// The next reply, if one is waiting.
    pub fn poll(&self) -> Option<Reply> {
        // Empty or disconnected alike: nothing to take now.
        self.replies.try_recv().ok()
    }
}

fn open(
    store: &Path,
    normaliser: Option<usize>,
    options: LoadOptions,
    tx: &Sender<Reply>,
) -> Option<Analysis> {
    let params = AnalysisParams {
        normaliser,
        ..AnalysisParams::default()
    };
    let analysis = match Analysis::open(store, params) {
        Ok(a) => a,
        Err(e) => {
            let _ = tx.send(Reply::Failed(format!(
                "opening the store {}: {e}",
                store.display()
            )));
            return None;
        }
    };
    match ViewModel::load(&analysis, options, |done, all| {
        let _ = tx.send(Reply::Progress(done, all));
    }) {
        Ok(vm) => {
            let _ = tx.send(Reply::Loaded(Box::new(vm)));
            Some(analysis)
        }
        Err(e) => {
            let _ = tx.send(Reply::Failed(format!(
                "analysing the store {}: {e}",
                store.display()
            )));
            None
        }
    }
}

fn worker(store: &Path, options: LoadOptions, rx: &Receiver<Request>, tx: &Sender<Reply>) {
    let Some(mut analysis) = open(store, None, options, tx) else {
        return;
    };
    while let Ok(request) = rx.recv() {
        let reply = match request {
            Request::Fill(fill) => Reply::Filled(fill, fill.run(&analysis, options)),
            Request::Values(key) => Reply::Values(measure_values(&analysis, key)),
            Request::Inputs(id) => Reply::Inputs(id, strongest_inputs(&analysis, id, 8, 2000)),
            Request::Normaliser(d) => match open(store, Some(d), options, tx) {
                Some(a) => {
                    analysis = a;
                    continue;
                }
                None => continue,
            },
        };
        if tx.send(reply).is_err() {
            return;
        }
    }
}

/// Every layer's values of a measure (NaN where undefined). Activations and class means are
/// normalised by the normaliser's per-neuron maximum, as the panels show them.
pub fn measure_values(analysis: &Analysis, key: ValuesKey) -> Result<LayerValues, String> {
    let store = analysis.store();
    let layers = store.manifest().layers.len();
    let name = |e: &dyn std::fmt::Display| format!("{}: {e}", analysis.cache_dir().display());
    let row = |dataset: usize, layer: usize, index: usize| -> Result<Vec<f32>, String> {
        let scores = analysis.layer(layer).map_err(|e| name(&e))?;
        let rows = store.committed(dataset).map_err(|e| name(&e))?;
        let m = store.layer(dataset, layer).map_err(|e| name(&e))?;
        let (r, c) = m.shape();
        if index >= rows.min(r) {
            return Ok(vec![f32::NAN; scores.neurons]);
        }
        Ok((0..c)
            .map(|n| scores.normalise(n, m.get(index, n)).unwrap_or(f32::NAN))
            .collect())
    };
    let mut out = Vec::with_capacity(layers);
    for l in 0..layers {
        let scores = analysis.layer(l).map_err(|e| name(&e))?;
        let n = scores.neurons;
        let shift = |pick: fn(&shiftscope_analysis::ShiftScores) -> &Vec<f32>| {
            key.ood
                .and_then(|d| scores.shift(d))
                .map_or_else(|| vec![f32::NAN; n], |s| pick(s).clone())
        };
        let reference = &scores.datasets[scores.reference];
        let values = match key.measure {
            Measure::Activation => row(key.image.dataset, l, key.image.index)?,
            Measure::ClassMean => (0..n)
                .map(|i| {
                    scores
                        .class_mean(key.lead, key.class.0, i)
                        .unwrap_or(f32::NAN)
                })
                .collect(),
            Measure::Difference => match key.ood {
                Some(ood) => {
                    let a = row(analysis.reference(), l, key.image.index)?;
                    let b = row(ood, l, key.image.index)?;
                    a.iter().zip(&b).map(|(x, y)| x - y).collect()
                }
                None => vec![f32::NAN; n],
            },
            Measure::Spurious => shift(|s| &s.spurious),
            Measure::Novelty => shift(|s| &s.novelty),
            Measure::Shift => shift(|s| &s.shift),
            Measure::Rafegas => reference.rafegas.clone(),
            Measure::Morcos => reference.morcos.clone(),
            // Live values come from the live worker, never from the store.
            Measure::Live => vec![f32::NAN; n],
            Measure::ColourSelectivity => colour_selectivity(analysis, l, n),
        };
        out.push(values);
    }
    Ok(LayerValues { key, layers: out })
}

/// A layer's colour selectivity index where `shiftscope features` cached it (on the
/// reference dataset when computed there, else the first dataset computed; the largest N);
/// NaN where undefined or not computed.
fn colour_selectivity(analysis: &Analysis, layer: usize, n: usize) -> Vec<f32> {
    let cache = analysis.cache_dir();
    let Some(root) = cache.parent().and_then(Path::parent) else {
        return vec![f32::NAN; n];
    };
    let cached = shiftscope_features::LayerFeatures::cached(analysis.store(), root, layer);
    let reference = analysis.reference();
    let best = cached
        .iter()
        .filter(|f| f.dataset == reference)
        .max_by_key(|f| f.top)
        .or_else(|| cached.first());
    match best {
        Some(f) if f.csi.len() == n => f.csi.iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
        _ => vec![f32::NAN; n],
    }
}

/// A neuron's `count` strongest inputs in the previous recorded layer, by the Pearson
/// correlation of activations over the first `max_rows` images of the reference dataset
/// (weights are not in the store; the layers need not even be adjacent in the model).
pub fn strongest_inputs(
    analysis: &Analysis,
    id: NeuronId,
    count: usize,
    max_rows: usize,
) -> Vec<(usize, f32)> {
    let Some(prev) = id.layer.checked_sub(1) else {
        return Vec::new();
    };
    let store = analysis.store();
    let d = analysis.reference();
    let (Ok(rows), Ok(a), Ok(b)) = (
        store.committed(d),
        store.layer(d, id.layer),
        store.layer(d, prev),
    ) else {
        return Vec::new();
    };
    let rows = rows.min(max_rows).min(a.shape().0).min(b.shape().0);
    if rows < 2 || id.neuron >= a.shape().1 {
        return Vec::new();
    }
    let x: Vec<f64> = (0..rows).map(|r| f64::from(a.get(r, id.neuron))).collect();
    let mut found: Vec<(usize, f32)> = (0..b.shape().1)
        .filter_map(|m| {
            let y: Vec<f64> = (0..rows).map(|r| f64::from(b.get(r, m))).collect();
            let r = pearson(&x, &y)?;
            Some((m, r as f32))
        })
        .collect();
    found.sort_by(|p, q| q.1.abs().total_cmp(&p.1.abs()).then(p.0.cmp(&q.0)));
    found.truncate(count);
    found
}

/// Pearson correlation; `None` when either side is constant or not finite.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    let r = sxy / (sxx * syy).sqrt();
    r.is_finite().then_some(r)
}

#[cfg(test)]
mod tests {
    use super::pearson;

    #[test]
    fn pearson_of_lines_and_constants() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]).unwrap_or(0.0) - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[8.0, 6.0, 4.0, 2.0]).unwrap_or(0.0) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&x, &[1.0; 4]), None);
    }
}
