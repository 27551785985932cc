//! Neurons responsible for mistakes and the decision-layer repair (design/analyses.md,
//! "Neurons responsible for mistakes" and "Repair", after NeuroInspect): pure functions over
//! penultimate features `f` (`N × D`, row-major), labels, and the decision layer `W` (`K × D`),
//! `b` (`K`). Nothing here runs a model; the caller reads `W, b` from the model adapter and the
//! features from the store.

use serde::{Deserialize, Serialize};

use crate::{Analysis, AnalysisError, ImageId, NeuronId};

/// A decision layer `z = W f + b` borrowed as plain slices.
#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    /// `W`, `K × D` row-major.
    pub weights: &'a [f32],
    /// `b`, `K`.
    pub bias: &'a [f32],
}

impl Linear<'_> {
    /// Classes `K`.
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// Features `D` (0 when `W` does not fit `b`).
    pub fn features(&self) -> usize {
        let k = self.bias.len();
        if k == 0 || !self.weights.len().is_multiple_of(k) {
            0
        } else {
            self.weights.len() / k
        }
    }

    /// Checks that `W` is `K × D` for `b` of length `K > 0` and that `d` matches.
    pub fn check(&self, d: usize) -> Result<(), String> {
        let k = self.bias.len();
        if k == 0 || self.weights.len() != k * d {
            return Err(format!(
                "the decision layer has {} weights and {k} biases; {d} features need {} weights",
                self.weights.len(),
                k * d
            ));
        }
        Ok(())
    }

    /// `W f + b` in `f64`.
    pub fn logits(&self, f: &[f32]) -> Vec<f64> {
        let d = f.len();
        self.bias
            .iter()
            .enumerate()
            .map(|(c, &b)| {
                let row = &self.weights[c * d..(c + 1) * d];
                f64::from(b)
                    + row
                        .iter()
                        .zip(f)
                        .map(|(&w, &x)| f64::from(w) * f64::from(x))
                        .sum::<f64>()
            })
            .collect()
    }
}

/// Softmax of `z` (max-shifted).
pub fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Index of the largest value (the first on ties).
pub fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in z.iter().enumerate() {
        if *v > z[best] {
            best = i;
        }
    }
    best
}

/// Parameters of the counterfactual search and the vote.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MistakeParams {
    /// L1 weight α (divided by `D`).
    pub alpha: f64,
    /// L2 weight β (divided by `D`).
    pub beta: f64,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Most SGD steps per image.
    pub max_steps: usize,
    /// Entries of δ taken per image on each side.
    pub per_image: usize,
    /// Least share of the class's mistakes a neuron must be voted by (0.03 = 3%).
    pub min_share: f64,
}

impl Default for MistakeParams {
    fn default() -> MistakeParams {
        MistakeParams {
            alpha: 0.1,
            beta: 0.01,
            lr: 0.01,
            momentum: 0.9,
            max_steps: 2000,
            per_image: 5,
            min_share: 0.03,
        }
    }
}

/// The counterfactual δ of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterfactual {
    /// δ, `D` values.
    pub delta: Vec<f32>,
    /// SGD steps taken.
    pub steps: usize,
    /// Whether `W(f+δ)+b` predicts the target class at the end.
    pub flipped: bool,
}

/// Finds δ minimising `CE(W(f+δ)+b, target) + α‖δ‖₁/D + β‖δ‖₂/D` by SGD with momentum from
/// δ = 0, stopping as soon as the prediction is `target` (checked before every step) or after
/// `max_steps`. Deterministic.
pub fn counterfactual(
    linear: Linear<'_>,
    f: &[f32],
    target: usize,
    params: &MistakeParams,
) -> Counterfactual {
    let d = f.len();
    let mut delta = vec![0.0f64; d];
    let mut velocity = vec![0.0f64; d];
    let mut x: Vec<f32> = f.to_vec();
    let dn = d.max(1) as f64;
    let mut steps = 0;
    loop {
        let z = linear.logits(&x);
        if argmax(&z) == target {
            break;
        }
        if steps == params.max_steps {
            break;
        }
        let p = softmax(&z);
        let norm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
        for j in 0..d {
            // ∂CE/∂δ_j = Σ_c (p_c − [c = target]) W[c, j].
            let mut g: f64 = p
                .iter()
                .enumerate()
                .map(|(c, &pc)| {
                    let e = if c == target { 1.0 } else { 0.0 };
                    (pc - e) * f64::from(linear.weights[c * d + j])
                })
                .sum();
            g += params.alpha / dn * sign(delta[j]);
            if norm > 0.0 {
                g += params.beta / dn * delta[j] / norm;
            }
            velocity[j] = params.momentum * velocity[j] + g;
            delta[j] -= params.lr * velocity[j];
            x[j] = f[j] + delta[j] as f32;
        }
        steps += 1;
    }
    let flipped = argmax(&linear.logits(&x)) == target;
    Counterfactual {
        delta: delta.iter().map(|&v| v as f32).collect(),
        steps,
        flipped,
    }
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The `n` indices with the largest values among those `> 0` (`positive`) or the smallest
/// among those `< 0`; ties by index.
fn extreme(delta: &[f32], n: usize, positive: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..delta.len())
        .filter(|&j| {
            if positive {
                delta[j] > 0.0
            } else {
                delta[j] < 0.0
            }
        })
        .collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (delta[a], delta[b]);
        let ord = if positive {
            y.total_cmp(&x)
        } else {
            x.total_cmp(&y)
        };
        ord.then(a.cmp(&b))
    });
    idx.truncate(n);
    idx
}

/// One neuron responsible for a class's mistakes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponsibleNeuron {
    /// Index in the features layer.
    pub neuron: usize,
    /// Mistakes whose δ put it among the top entries.
    pub votes: usize,
    /// `votes` as a percentage of the class's mistakes.
    pub percent: f64,
    /// Its importance for the class ([`importance`]); `None` when undefined.
    pub importance: Option<f64>,
}

/// The neurons responsible for one class's mistakes in one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMistakes {
    /// The class.
    pub class: usize,
    /// Labelled images of the class.
    pub images: usize,
    /// Of them, misclassified (by `W f + b` on the stored features).
    pub mistakes: usize,
    /// Mistakes whose counterfactual search reached the class.
    pub flipped: usize,
    /// Neurons that needed more activation (δ most positive), most votes first.
    pub insufficient: Vec<ResponsibleNeuron>,
    /// Neurons that needed less activation (δ most negative), most votes first.
    pub excessive: Vec<ResponsibleNeuron>,
    /// Neurons voted in both lists above the cut, dropped from both.
    pub dropped: Vec<usize>,
}

/// Mean feature vector of the rows whose label is `class` (`None` without any).
pub fn class_mean(features: &[f32], d: usize, labels: &[i32], class: usize) -> Option<Vec<f32>> {
    let mut sum = vec![0.0f64; d];
    let mut n = 0usize;
    for (row, &y) in features.chunks_exact(d.max(1)).zip(labels) {
        if usize::try_from(y).ok() == Some(class) {
            n += 1;
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
    }
    (n > 0).then(|| sum.iter().map(|s| (s / n as f64) as f32).collect())
}

/// Importance of neuron `neuron` for `class`: `p_c(W f̄ + b) / p_c(W f̄' + b)`, `f̄'` the mean
/// feature with that neuron set to 0. Above 1: the class relies on the neuron.
pub fn importance(linear: Linear<'_>, mean: &[f32], class: usize, neuron: usize) -> Option<f64> {
    let p = softmax(&linear.logits(mean));
    let mut ablated = mean.to_vec();
    *ablated.get_mut(neuron)? = 0.0;
    let q = softmax(&linear.logits(&ablated));
    let (p, q) = (*p.get(class)?, *q.get(class)?);
    (q > 0.0).then(|| p / q)
}

/// The neurons responsible for `class`'s mistakes: for every image labelled `class` that
/// `W f + b` misclassifies, the counterfactual δ; its `per_image` most positive entries vote
/// "insufficient", its most negative "excessive"; neurons voted by at least `min_share` of the
/// mistakes are kept, those kept in both lists dropped. Importance is computed on the class's
/// mean feature. `features` is `N × D`.
pub fn class_mistakes(
    linear: Linear<'_>,
    features: &[f32],
    labels: &[i32],
    class: usize,
    params: &MistakeParams,
) -> Result<ClassMistakes, String> {
    let d = linear.features();
    linear.check(d)?;
    if features.len() != labels.len() * d {
        return Err(format!(
            "{} feature values for {} images of {d} features",
            features.len(),
            labels.len()
        ));
    }
    if class >= linear.classes() {
        return Err(format!(
            "class {class} is out of range ({} classes)",
            linear.classes()
        ));
    }
    let mut insufficient = vec![0usize; d];
    let mut excessive = vec![0usize; d];
    let (mut images, mut mistakes, mut flipped) = (0, 0, 0);
    for (row, &y) in features.chunks_exact(d).zip(labels) {
        if usize::try_from(y).ok() != Some(class) {
            continue;
        }
        images += 1;
        if argmax(&linear.logits(row)) == class {
            continue;
        }
        mistakes += 1;
        let cf = counterfactual(linear, row, class, params);
        flipped += usize::from(cf.flipped);
        for j in extreme(&cf.delta, params.per_image, true) {
            insufficient[j] += 1;
        }
        for j in extreme(&cf.delta, params.per_image, false) {
            excessive[j] += 1;
        }
    }
    let mean = class_mean(features, d, labels, class);
    let keep = |votes: &[usize]| -> Vec<usize> {
        (0..d)
            .filter(|&j| votes[j] > 0 && votes[j] as f64 >= params.min_share * mistakes as f64)
            .collect()
    };
    let (ins, exc) = (keep(&insufficient), keep(&excessive));
    let dropped: Vec<usize> = ins.iter().copied().filter(|j| exc.contains(j)).collect();
    let list = |kept: &[usize], votes: &[usize]| -> Vec<ResponsibleNeuron> {
        let mut out: Vec<ResponsibleNeuron> = kept
            .iter()
            .filter(|j| !dropped.contains(j))
            .map(|&j| ResponsibleNeuron {
                neuron: j,
                votes: votes[j],
                percent: 100.0 * votes[j] as f64 / mistakes.max(1) as f64,
                importance: mean.as_ref().and_then(|m| importance(linear, m, class, j)),
            })
            .collect();
        out.sort_by(|a, b| b.votes.cmp(&a.votes).then(a.neuron.cmp(&b.neuron)));
        out
    };
    Ok(ClassMistakes {
        class,
        images,
        mistakes,
        flipped,
        insufficient: list(&ins, &insufficient),
        excessive: list(&exc, &excessive),
        dropped,
    })
}

/// How the repair edits the decision layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RepairMethod {
    /// Train `W, b` with the ratio penalty (NeuroInspect).
    Train,
    /// Zero the chosen neurons' outgoing weights.
    Zero,
}

/// Parameters of the repair training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepairParams {
    /// Weight λ of the ratio penalty.
    pub lambda: f64,
    /// Target γ of the ratio.
    pub gamma: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Most epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Seed of the minibatch shuffle.
    pub seed: u64,
    /// Training stops (keeping the previous epoch's weights) when the training accuracy falls
    /// more than this below where it started.
    pub max_accuracy_loss: f64,
}

impl Default for RepairParams {
    fn default() -> RepairParams {
        RepairParams {
            lambda: 0.01,
            gamma: 1.0,
            lr: 1e-3,
            epochs: 20,
            batch: 64,
            seed: 0x5eed,
            max_accuracy_loss: 0.01,
        }
    }
}

/// A repaired decision layer and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Repaired {
    /// New `W`, `K × D`.
    pub weights: Vec<f32>,
    /// New `b`, `K`.
    pub bias: Vec<f32>,
    /// Epochs kept (0 for the zero edit).
    pub epochs: usize,
    /// Accuracy of `W f + b` on the training features, per epoch (the first: before).
    pub train_accuracy: Vec<f64>,
    /// Why training stopped.
    pub stopped: String,
}

/// Share of rows `W f + b` classifies as their label (unlabelled rows skipped).
pub fn accuracy(linear: Linear<'_>, features: &[f32], labels: &[i32]) -> Option<f64> {
    let d = linear.features();
    let (mut n, mut ok) = (0usize, 0usize);
    for (row, &y) in features.chunks_exact(d.max(1)).zip(labels) {
        let Ok(y) = usize::try_from(y) else { continue };
        if y >= linear.classes() {
            continue;
        }
        n += 1;
        ok += usize::from(argmax(&linear.logits(row)) == y);
    }
    (n > 0).then(|| ok as f64 / n as f64)
}

/// The plain edit: `W[:, j] = 0` for every chosen neuron `j`.
pub fn zero_outgoing(linear: Linear<'_>, neurons: &[usize]) -> Result<Repaired, String> {
    let d = linear.features();
    linear.check(d)?;
    if let Some(bad) = neurons.iter().find(|&&j| j >= d) {
        return Err(format!("neuron {bad} is out of range ({d} features)"));
    }
    let mut weights = linear.weights.to_vec();
    for c in 0..linear.classes() {
        for &j in neurons {
            weights[c * d + j] = 0.0;
        }
    }
    Ok(Repaired {
        weights,
        bias: linear.bias.to_vec(),
        epochs: 0,
        train_accuracy: Vec::new(),
        stopped: "zeroed the outgoing weights".to_owned(),
    })
}

/// The loss of the repair on a minibatch and its gradient with respect to `W` and `b`:
/// `mean CE(W f + b, y) + λ ‖r − γ‖₂`, `r_i = p_{y_i}(W f_i + b) / (p_{y_i}(W (f_i ⊙ m) + b) +
/// 1e−9)`, `m` zero on `masked`. Returns `(loss, dW, db)`.
pub fn repair_loss(
    linear: Linear<'_>,
    rows: &[&[f32]],
    labels: &[usize],
    masked: &[usize],
    params: &RepairParams,
) -> (f64, Vec<f64>, Vec<f64>) {
    const EPS: f64 = 1e-9;
    let (k, d) = (linear.classes(), linear.features());
    let n = rows.len().max(1) as f64;
    let mut dw = vec![0.0f64; k * d];
    let mut db = vec![0.0f64; k];
    let mut ce = 0.0;
    let mut ratios = Vec::with_capacity(rows.len());
    let mut cache = Vec::with_capacity(rows.len());
    for (row, &y) in rows.iter().zip(labels) {
        let p = softmax(&linear.logits(row));
        ce -= p[y].max(1e-300).ln();
        for c in 0..k {
            let g = (p[c] - if c == y { 1.0 } else { 0.0 }) / n;
            db[c] += g;
            for j in 0..d {
                dw[c * d + j] += g * f64::from(row[j]);
            }
        }
        let mut m = row.to_vec();
        for &j in masked {
            if let Some(v) = m.get_mut(j) {
                *v = 0.0;
            }
        }
        let q = softmax(&linear.logits(&m));
        ratios.push(p[y] / (q[y] + EPS));
        cache.push((p, q, m));
    }
    let norm = ratios
        .iter()
        .map(|r| (r - params.gamma).powi(2))
        .sum::<f64>()
        .sqrt();
    let loss = ce / n + params.lambda * norm;
    if norm > 0.0 && params.lambda != 0.0 {
        for (i, ((row, &y), (p, q, m))) in rows.iter().zip(labels).zip(&cache).enumerate() {
            let dr = params.lambda * (ratios[i] - params.gamma) / norm;
            let dp = dr / (q[y] + EPS);
            let dq = -dr * p[y] / (q[y] + EPS).powi(2);
            for c in 0..k {
                let e = if c == y { 1.0 } else { 0.0 };
                // ∂p_y/∂z_c = p_y (e − p_c); likewise for q on the masked features.
                let gz = dp * p[y] * (e - p[c]);
                let gzm = dq * q[y] * (e - q[c]);
                db[c] += gz + gzm;
                for j in 0..d {
                    dw[c * d + j] += gz * f64::from(row[j]) + gzm * f64::from(m[j]);
                }
            }
        }
    }
    (loss, dw, db)
}

/// Trains `W, b` on `features` (`N × D`) and `labels` with [`repair_loss`] and Adam, from the
/// current weights, shuffling with `params.seed`; after each epoch the training accuracy is
/// measured and training stops when it falls more than `max_accuracy_loss` below where it
/// started (the previous epoch's weights are kept).
pub fn train_repair(
    linear: Linear<'_>,
    features: &[f32],
    labels: &[i32],
    masked: &[usize],
    params: &RepairParams,
) -> Result<Repaired, String> {
    let d = linear.features();
    linear.check(d)?;
    let k = linear.classes();
    if features.len() != labels.len() * d {
        return Err(format!(
            "{} feature values for {} images of {d} features",
            features.len(),
            labels.len()
        ));
    }
    if let Some(bad) = masked.iter().find(|&&j| j >= d) {
        return Err(format!("neuron {bad} is out of range ({d} features)"));
    }
    let rows: Vec<(usize, usize)> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, &y)| usize::try_from(y).ok().filter(|&y| y < k).map(|y| (i, y)))
        .collect();
    if rows.is_empty() {
        return Err("no labelled images to train on".to_owned());
    }
    let mut w: Vec<f64> = linear.weights.iter().map(|&v| f64::from(v)).collect();
    let mut b: Vec<f64> = linear.bias.iter().map(|&v| f64::from(v)).collect();
    let (mut mw, mut vw) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    let (mut mb, mut vb) = (vec![0.0; b.len()], vec![0.0; b.len()]);
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut t = 0i32;
    let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let start = accuracy(linear, features, labels).unwrap_or(0.0);
    let mut history = vec![start];
    let mut kept = (to_f32(&w), to_f32(&b), 0usize);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = shiftscope_rng(params.seed);
    let mut stopped = format!("ran all {} epochs", params.epochs);
    for epoch in 1..=params.epochs {
        // Fisher–Yates with a SplitMix64 stream: the same seed, the same order.
        for i in (1..order.len()).rev() {
            let j = (rng() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for chunk in order.chunks(params.batch.max(1)) {
            let (wf, bf) = (to_f32(&w), to_f32(&b));
            let lin = Linear {
                weights: &wf,
                bias: &bf,
            };
            let batch_rows: Vec<&[f32]> = chunk
                .iter()
                .map(|&r| &features[rows[r].0 * d..(rows[r].0 + 1) * d])
                .collect();
            let batch_labels: Vec<usize> = chunk.iter().map(|&r| rows[r].1).collect();
            let (_, gw, gb) = repair_loss(lin, &batch_rows, &batch_labels, masked, params);
            t += 1;
            let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
            let adam = |x: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64]| {
                for i in 0..x.len() {
                    m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
                    v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
                    x[i] -= params.lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                }
            };
            adam(&mut w, &mut mw, &mut vw, &gw);
            adam(&mut b, &mut mb, &mut vb, &gb);
        }
        let (wf, bf) = (to_f32(&w), to_f32(&b));
        let acc = accuracy(
            Linear {
                weights: &wf,
                bias: &bf,
            },
            features,
            labels,
        )
        .unwrap_or(0.0);
        if acc < start - params.max_accuracy_loss {
            stopped = format!(
                "stopped after epoch {epoch}: training accuracy {:.2}% fell below {:.2}% − {:.2} points; kept epoch {}",
                100.0 * acc,
                100.0 * start,
                100.0 * params.max_accuracy_loss,
                epoch - 1
            );
            break;
        }
        history.push(acc);
        kept = (wf, bf, epoch);
    }
    Ok(Repaired {
        weights: kept.0,
        bias: kept.1,
        epochs: kept.2,
        train_accuracy: history,
        stopped,
    })
}

/// A SplitMix64 stream (the same generator as `shiftscope-sdk::rng`, which this crate does
/// not depend on).
fn shiftscope_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The neurons responsible for one class's mistakes in one dataset, with their top images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetMistakes {
    /// The dataset (index into the manifest's datasets).
    pub dataset: usize,
    /// Its name.
    pub name: String,
    /// The neurons and their votes.
    pub mistakes: ClassMistakes,
    /// Share of the dataset's images where `argmax(W f + b)` on the stored features equals
    /// the argmax of the stored logits (1 when the features and the decision layer fit).
    pub agreement: Option<f64>,
    /// Per listed neuron (insufficient, then excessive): its top images in this dataset.
    pub top_images: Vec<(usize, Vec<ImageId>)>,
}

impl Analysis {
    /// The index of the layer called `name` in the store.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.store()
            .manifest()
            .layers
            .iter()
            .position(|l| l.name == name)
    }

    /// The committed rows of `layer` in `dataset` as `f32` (`rows × neurons`, row-major),
    /// with the labels of those rows.
    pub fn features(
        &self,
        dataset: usize,
        layer: usize,
    ) -> Result<(Vec<f32>, Vec<i32>, usize), AnalysisError> {
        let store = self.store();
        let rows = store.committed(dataset).map_err(|e| self.store_error(e))?;
        let matrix = store
            .layer(dataset, layer)
            .map_err(|e| self.store_error(e))?;
        let (_, cols) = matrix.shape();
        let mut values = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                values.push(matrix.get(r, c));
            }
        }
        let labels = store.labels(dataset).map_err(|e| self.store_error(e))?;
        Ok((values, labels[..rows.min(labels.len())].to_vec(), cols))
    }

    /// Share of the committed images of `dataset` whose `argmax(W f + b)` on `features` equals
    /// the argmax of the stored logits.
    pub fn decision_agreement(
        &self,
        dataset: usize,
        linear: Linear<'_>,
        features: &[f32],
    ) -> Result<Option<f64>, AnalysisError> {
        let d = linear.features();
        let logits = self
            .store()
            .logits(dataset)
            .map_err(|e| self.store_error(e))?;
        let (_, k) = logits.shape();
        let (mut n, mut same) = (0usize, 0usize);
        for (r, row) in features.chunks_exact(d.max(1)).enumerate() {
            let stored: Vec<f64> = (0..k).map(|c| f64::from(logits.get(r, c))).collect();
            n += 1;
            same += usize::from(argmax(&stored) == argmax(&linear.logits(row)));
        }
        Ok((n > 0).then(|| same as f64 / n as f64))
    }

    /// The neurons of layer `layer` (the decision layer's input) responsible for `class`'s
    /// mistakes in each of `datasets`, with up to `top_images` top images per neuron.
    pub fn explain_class(
        &self,
        layer: usize,
        class: usize,
        datasets: &[usize],
        linear: Linear<'_>,
        params: &MistakeParams,
        top_images: usize,
    ) -> Result<Vec<DatasetMistakes>, AnalysisError> {
        let manifest = self.store().manifest();
        let mut out = Vec::new();
        for &dataset in datasets {
            let name = manifest
                .datasets
                .get(dataset)
                .map(|d| d.name.clone())
                .ok_or_else(|| self.invalid(format!("no dataset {dataset}")))?;
            let (features, labels, d) = self.features(dataset, layer)?;
            linear.check(d).map_err(|p| {
                self.invalid(format!(
                    "layer '{}': {p}",
                    manifest.layers.get(layer).map_or("?", |l| l.name.as_str())
                ))
            })?;
            let mistakes = class_mistakes(linear, &features, &labels, class, params)
                .map_err(|p| self.invalid(p))?;
            let agreement = self.decision_agreement(dataset, linear, &features)?;
            let mut tops = Vec::new();
            if top_images > 0 {
                for n in mistakes.insufficient.iter().chain(&mistakes.excessive) {
                    let view = self.neuron(NeuronId {
                        layer,
                        neuron: n.neuron,
                    })?;
                    let images: Vec<ImageId> = view
                        .top_images
                        .iter()
                        .flatten()
                        .filter(|(id, _, _)| id.dataset == dataset)
                        .take(top_images)
                        .map(|(id, _, _)| *id)
                        .collect();
                    tops.push((n.neuron, images));
                }
            }
            out.push(DatasetMistakes {
                dataset,
                name,
                mistakes,
                agreement,
                top_images: tops,
            });
        }
        Ok(out)
    }
}

/// One dataset's accuracy before and after a repair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetComparison {
    /// Dataset name.
    pub name: String,
    /// `id` or `ood`.
    pub role: String,
    /// Accuracy of the original model.
    pub before: Option<f64>,
    /// Accuracy of the repaired model.
    pub after: Option<f64>,
    /// Per class: (before, after).
    pub per_class: Vec<(Option<f64>, Option<f64>)>,
}

/// What a repair did and its accuracies before and after, side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepairReport {
    /// `train` or `zero`.
    pub method: RepairMethod,
    /// The features layer.
    pub layer: String,
    /// The neurons repaired.
    pub neurons: Vec<usize>,
    /// The store before (as given).
    pub store_before: String,
    /// The store recorded with the repaired model.
    pub store_after: String,
    /// The repaired model file.
    pub model_after: String,
    /// How the training went (epochs, why it stopped).
    pub note: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Per dataset, in the store's order.
    pub datasets: Vec<DatasetComparison>,
}

impl RepairReport {
    /// The report as pretty JSON (what `repair.json` holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a `repair.json`.
    pub fn from_json(text: &str) -> Result<RepairReport, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// Accuracy of every dataset (and class) of `before` next to the same-named dataset of
/// `after`.
pub fn compare_accuracy(
    before: &Analysis,
    after: &Analysis,
) -> Result<Vec<DatasetComparison>, AnalysisError> {
    let (acc_b, acc_a) = (before.accuracy()?, after.accuracy()?);
    let (cls_b, cls_a) = (before.class_accuracy()?, after.class_accuracy()?);
    let after_manifest = after.store().manifest();
    Ok(before
        .store()
        .manifest()
        .datasets
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let j = after_manifest
                .datasets
                .iter()
                .position(|x| x.name == d.name);
            let per_class = cls_b
                .get(i)
                .map(|classes| {
                    classes
                        .iter()
                        .enumerate()
                        .map(|(c, a)| {
                            let after = j
                                .and_then(|j| cls_a.get(j))
                                .and_then(|x| x.get(c))
                                .and_then(|x| x.accuracy);
                            (a.accuracy, after)
                        })
                        .collect()
                })
                .unwrap_or_default();
            DatasetComparison {
                name: d.name.clone(),
                role: match d.role {
                    shiftscope_store::Role::Id => "id",
                    shiftscope_store::Role::Ood => "ood",
                }
                .to_owned(),
                before: acc_b.get(i).and_then(|a| a.accuracy),
                after: j.and_then(|j| acc_a.get(j)).and_then(|a| a.accuracy),
                per_class,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 classes, 4 features: class c reads feature c, feature 3 adds to class 0.
    fn toy() -> (Vec<f32>, Vec<f32>) {
        let w = vec![
            1.0, 0.0, 0.0, 0.5, //
            0.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0,
        ];
        (w, vec![0.0, 0.25, 0.0])
    }

    #[test]
    fn logits_softmax_argmax_by_hand() {
        let (w, b) = toy();
        let lin = Linear {
            weights: &w,
            bias: &b,
        };
        let z = lin.logits(&[1.0, 2.0, 0.0, 2.0]);
        assert_eq!(z, vec![2.0, 2.25, 0.0]);
        assert_eq!(argmax(&z), 1);
        let p = softmax(&[0.0, (2.0f64).ln()]);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-12 && (p[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn counterfactual_first_step_is_the_hand_gradient() {
        // One SGD step from δ = 0: δ = −lr · Wᵀ(p − e_t) (the L1/L2 terms are 0 at δ = 0).
        let (w, b) = toy();
        let lin = Linear {
            weights: &w,
            bias: &b,
        };
        let f = [0.0f32, 1.0, 0.0, 0.0];
        let params = MistakeParams {
            max_steps: 1,
            ..MistakeParams::default()
        };
        let cf = counterfactual(lin, &f, 0, &params);
        let p = softmax(&[0.0, 1.25, 0.0]);
        let grad = [
            p[0] - 1.0,         // feature 0 feeds class 0 only
            p[1],               // feature 1 feeds class 1
            p[2],               // feature 2 feeds class 2
            0.5 * (p[0] - 1.0), // feature 3 feeds class 0 with 0.5
        ];
        for (j, (&got, g)) in cf.delta.iter().zip(grad).enumerate() {
            assert!(
                (f64::from(got) + 0.01 * g).abs() < 1e-6,
                "{j}: {got} vs {}",
                -0.01 * g
            );
        }
        assert_eq!(cf.steps, 1);
        assert!(!cf.flipped);
        // Without a cap it flips to the target, raising feature 0 and lowering feature 1.
        let cf = counterfactual(lin, &f, 0, &MistakeParams::default());
        assert!(cf.flipped);
        assert!(cf.delta[0] > 0.0 && cf.delta[1] < 0.0, "{:?}", cf.delta);
        assert!(
            argmax(&lin.logits(&[cf.delta[0], 1.0 + cf.delta[1], cf.delta[2], cf.delta[3]])) == 0
        );
        // Already right: no step.
        let cf = counterfactual(lin, &[3.0, 0.0, 0.0, 0.0], 0, &MistakeParams::default());
        assert_eq!((cf.steps, cf.flipped), (0, true));
    }

    #[test]
    fn votes_cut_and_both_lists() {
        // D = 6, 2 classes: class 0 reads features 0,1 (+), class 1 reads 2,3 (+); 4 and 5
        // are unused (their δ stays 0 and never votes).
        let w = vec![
            1.0, 1.0, 0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 1.0, 0.0, 0.0,
        ];
        let b = vec![0.0, 0.0];
        let lin = Linear {
            weights: &w,
            bias: &b,
        };
        // Three class-0 images: one right, two wrong (too much of 2/3).
        let features = vec![
            2.0, 2.0, 0.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 1.0, 0.0, 0.0, //
            0.5, 0.0, 2.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 3.0, 3.0, 0.0, 0.0, // class 1, right
        ];
        let labels = vec![0, 0, 0, 1];
        let params = MistakeParams {
            per_image: 2,
            ..MistakeParams::default()
        };
        let m = class_mistakes(lin, &features, &labels, 0, &params).unwrap();
        assert_eq!((m.images, m.mistakes, m.flipped), (3, 2, 2));
        let ins: Vec<usize> = m.insufficient.iter().map(|n| n.neuron).collect();
        let exc: Vec<usize> = m.excessive.iter().map(|n| n.neuron).collect();
        assert_eq!(ins, vec![0, 1]);
        assert_eq!(exc, vec![2, 3]);
        assert_eq!(m.insufficient[0].votes, 2);
        assert!((m.insufficient[0].percent - 100.0).abs() < 1e-9);
        // Importance by hand on the class-0 mean feature.
        let mean = [2.5f32 / 3.0, 2.0 / 3.0, 1.0, 1.0 / 3.0, 0.0, 0.0];
        let p = softmax(&lin.logits(&mean))[0];
        let mut ablated = mean;
        ablated[0] = 0.0;
        let q = softmax(&lin.logits(&ablated))[0];
        let imp = m.insufficient[0].importance.unwrap();
        assert!((imp - p / q).abs() < 1e-6, "{imp} vs {}", p / q);
        assert!(imp > 1.0);
        // A cut above every share keeps nothing.
        let strict = MistakeParams {
            min_share: 1.01,
            ..params
        };
        let m = class_mistakes(lin, &features, &labels, 0, &strict).unwrap();
        assert!(m.insufficient.is_empty() && m.excessive.is_empty());
        assert!(class_mistakes(lin, &features, &labels, 2, &params).is_err());
    }

    #[test]
    fn neurons_in_both_lists_are_dropped() {
        // Feature 0 feeds class 0 with 1 and class 1 with 2: a class-0 image taken for class 2
        // needs more of it, one taken for class 1 needs less of it.
        let w = vec![
            1.0, 0.0, 0.0, //
            2.0, 5.0, 0.0, //
            0.0, 0.0, 5.0,
        ];
        let b = vec![0.0; 3];
        let lin = Linear {
            weights: &w,
            bias: &b,
        };
        let features = vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let labels = vec![0, 0];
        let params = MistakeParams {
            per_image: 2,
            ..MistakeParams::default()
        };
        let m = class_mistakes(lin, &features, &labels, 0, &params).unwrap();
        assert_eq!(m.mistakes, 2);
        assert_eq!(m.dropped, vec![0]);
        assert!(m.insufficient.is_empty(), "{:?}", m.insufficient);
        let exc: Vec<(usize, usize)> = m.excessive.iter().map(|n| (n.neuron, n.votes)).collect();
        assert_eq!(exc, vec![(1, 2), (2, 1)]);
    }

    #[test]
    fn repair_gradient_matches_finite_differences() {
        let (w, b) = toy();
        let rows_data = [
            [1.0f32, 0.2, 0.1, 0.9],
            [0.1, 1.0, 0.3, 0.8],
            [0.2, 0.1, 1.1, 0.0],
        ];
        let rows: Vec<&[f32]> = rows_data.iter().map(|r| &r[..]).collect();
        let labels = [0usize, 1, 2];
        let params = RepairParams {
            lambda: 0.5,
            ..RepairParams::default()
        };
        let loss_at = |w: &[f32], b: &[f32]| {
            repair_loss(
                Linear {
                    weights: w,
                    bias: b,
                },
                &rows,
                &labels,
                &[3],
                &params,
            )
            .0
        };
        let (_, dw, db) = repair_loss(
            Linear {
                weights: &w,
                bias: &b,
            },
            &rows,
            &labels,
            &[3],
            &params,
        );
        let h = 1e-3f32;
        for i in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let num = (loss_at(&up, &b) - loss_at(&down, &b)) / (2.0 * f64::from(h));
            assert!((num - dw[i]).abs() < 2e-3, "dW[{i}]: {num} vs {}", dw[i]);
        }
        for i in 0..b.len() {
            let (mut up, mut down) = (b.clone(), b.clone());
            up[i] += h;
            down[i] -= h;
            let num = (loss_at(&w, &up) - loss_at(&w, &down)) / (2.0 * f64::from(h));
            assert!((num - db[i]).abs() < 2e-3, "db[{i}]: {num} vs {}", db[i]);
        }
    }

    #[test]
    fn zero_edit_and_training_reduce_reliance_on_a_spurious_feature() {
        // Feature 2 is a shortcut: on the training rows it equals the class (0 or 1) exactly;
        // features 0/1 carry the class with noise. Class 1's weight on the shortcut is large.
        let w = vec![1.0, 0.0, -2.0, 0.0, 1.0, 2.0];
        let b = vec![0.0, 0.0];
        let lin = Linear {
            weights: &w,
            bias: &b,
        };
        let mut rng = shiftscope_rng(3);
        let mut u = || (rng() >> 11) as f32 / (1u64 << 53) as f32;
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for i in 0..200i32 {
            let y = i % 2;
            let signal = 1.0 + u();
            let (a, c) = if y == 0 {
                (signal, u() * 0.3)
            } else {
                (u() * 0.3, signal)
            };
            features.extend([a, c, y as f32]);
            labels.push(y);
        }
        let zero = zero_outgoing(lin, &[2]).unwrap();
        assert_eq!(zero.weights, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(zero.bias, b);
        assert!(zero_outgoing(lin, &[3]).is_err());
        let params = RepairParams {
            lambda: 1.0,
            lr: 1e-2,
            ..RepairParams::default()
        };
        let trained = train_repair(lin, &features, &labels, &[2], &params).unwrap();
        let again = train_repair(lin, &features, &labels, &[2], &params).unwrap();
        assert_eq!(trained, again, "training is deterministic");
        // The ratio penalty pulls the shortcut's weights together (masking it changes less).
        let spread = |w: &[f32]| (w[5] - w[2]).abs();
        assert!(
            spread(&trained.weights) < spread(&w),
            "{:?} vs {w:?}",
            trained.weights
        );
        assert!(trained.epochs >= 1 && trained.train_accuracy[0] == 1.0);
    }
}
