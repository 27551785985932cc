//! Numbers of the per-image and per-class views. Per-image numbers read one row of the
//! mapped store (nearest images read the layer of each dataset asked for); per-class numbers
//! read labels and logits only, plus a layer's class means for its top neurons.

use serde::{Deserialize, Serialize};
use shiftscope_store::LayerMatrix;

use crate::ids::{ClassId, ImageId, NeuronId};

/// A class with its softmax probability.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    /// The class.
    pub class: ClassId,
    /// Softmax probability.
    pub probability: f32,
}

/// A neuron with a value (raw or normalised activation, or class mean).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronValue {
    /// The neuron.
    pub neuron: NeuronId,
    /// Its value.
    pub value: f32,
}

/// An image with a score (a probability, a similarity).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredImage {
    /// The image.
    pub image: ImageId,
    /// Its score.
    pub score: f32,
}

/// The comparison mode of the image view: the lead image's top neurons, and their values on
/// the same image index in every other dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The lead image.
    pub lead: ImageId,
    /// Its top neurons with their values.
    pub neurons: Vec<NeuronValue>,
    /// Per other dataset holding that row: the image and the same neurons' values (NaN where
    /// a normalised value is undefined).
    pub followers: Vec<(ImageId, Vec<f32>)>,
}

/// Predicted class and its probability per image of a dataset (all committed rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// The dataset.
    pub dataset: usize,
    /// Labels (`-1` or out of range: unlabelled).
    pub labels: Vec<i32>,
    /// Argmax of the finite logits (`u32::MAX` when none is finite).
    pub predicted: Vec<u32>,
    /// Softmax probability of the predicted class.
    pub probability: Vec<f32>,
}

/// Accuracy of one dataset, overall or for one class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The dataset.
    pub dataset: usize,
    /// Labelled images counted.
    pub images: u64,
    /// Of them, correctly predicted.
    pub correct: u64,
    /// `correct / images`; `None` without images.
    pub accuracy: Option<f64>,
    /// Reference accuracy minus this one; `None` when either is undefined.
    pub drop_from_reference: Option<f64>,
}

/// Images confused with one other class, most confident first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionGroup {
    /// The other class: the predicted one for false negatives, the true one for false
    /// positives.
    pub confused_with: ClassId,
    /// The images, sorted by the top softmax probability, highest first.
    pub images: Vec<ScoredImage>,
}

/// One class on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassInDataset {
    /// Accuracy on this class's images and the drop from the reference dataset.
    pub accuracy: Accuracy,
    /// Images of this class predicted as another, grouped by the predicted class (largest
    /// group first).
    pub false_negatives: Vec<ConfusionGroup>,
    /// Images of other classes predicted as this one, grouped by their true class.
    pub false_positives: Vec<ConfusionGroup>,
}

/// The class view's numbers from labels and logits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassView {
    /// The class.
    pub class: ClassId,
    /// Per dataset, in manifest order.
    pub datasets: Vec<ClassInDataset>,
}

/// Two classes confused with each other on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseView {
    /// The dataset.
    pub dataset: usize,
    /// First class.
    pub a: ClassId,
    /// Second class.
    pub b: ClassId,
    /// Images of `a` predicted `a`, of `a` predicted `b`, of `b` predicted `b`, of `b`
    /// predicted `a`: counts.
    pub counts: [u64; 4],
    /// Images of `a` predicted as `b`, most confident first.
    pub a_as_b: Vec<ScoredImage>,
    /// Images of `b` predicted as `a`, most confident first.
    pub b_as_a: Vec<ScoredImage>,
}

/// Softmax of one row of logits (non-finite logits get probability 0).
pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits
        .iter()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if !max.is_finite() {
        return vec![0.0; logits.len()];
    }
    let exps: Vec<f64> = logits
        .iter()
        .map(|&v| {
            if v.is_finite() {
                (f64::from(v) - f64::from(max)).exp()
            } else {
                0.0
            }
        })
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// Lanes of the row reductions below: independent accumulators the compiler keeps in one
/// vector register.
const LANES: usize = 8;

/// The largest finite value of `row` and where it first is; `None` when none is finite.
/// Each lane keeps its maximum and the chunk it came from, so no second scan looks for it.
#[inline(always)]
fn max_finite(row: &[f32]) -> Option<(f32, usize)> {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut at = [0u32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for ((a, i), &v) in acc.iter_mut().zip(&mut at).zip(chunk) {
            // `&`, not `&&`: a short circuit is a branch, and the loop would not vectorise.
            let better = v.is_finite() & (v > *a);
            *a = if better { v } else { *a };
            *i = if better { c as u32 } else { *i };
        }
    }
    let lanes = acc
        .iter()
        .zip(&at)
        .enumerate()
        .map(|(l, (&v, &c))| (v, c as usize * LANES + l));
    let tail = rest
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, row.len() - rest.len() + i));
    // The largest finite value; among equals, the first position.
    lanes
        .chain(tail)
        .filter(|(v, _)| v.is_finite())
        .reduce(|a, b| {
            if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) {
                b
            } else {
                a
            }
        })
}

/// `e^x` for `x ≤ 0`, branch-free so that row loops vectorise (`f32::exp` is a libm call):
/// `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, Cephes's degree-7 polynomial for `e^r`, and
/// `2^n` from the exponent bits. Within 2 ulp of `exp`; 0 below `−87` (where `exp` is below
/// `f32`'s normal range anyway).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer, kept in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.max(-87.0);
    // A plain multiply-add: `mul_add` is a library call without a target FMA.
    let t = clamped * LOG2_E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r)
        + r
        + 1.0;
    // n ∈ [−126, 0]: 2^n is a normal f32 built from its exponent bits.
    let exponent = (t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) as u32;
    let e = p * f32::from_bits(exponent << 23);
    if x < -87.0 { 0.0 } else { e }
}

/// `Σ e^(v − m)` over the finite values of `row` (`m`: their maximum).
#[inline(always)]
fn exp_sum(row: &[f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            let e = exp_nonpositive(v - m);
            *a += if v.is_finite() { e } else { 0.0 };
        }
    }
    let tail: f32 = rest
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| exp_nonpositive(v - m))
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// The most probable class of one row of logits (the first of equal maxima) and its softmax
/// probability over the finite logits; `None` when no logit is finite.
#[inline(always)]
fn top_prediction(row: &[f32]) -> Option<(usize, f32)> {
    let (m, class) = max_finite(row)?;
    Some((class, 1.0 / exp_sum(row, m)))
}

/// Argmax and its probability for every row of `logits`, rows split over `threads`. With a
/// class `subset` (a dataset whose images belong to some of the model's classes, e.g.
/// ImageNet-R's 200 of 1,000) only those logits compete, and the softmax is over them.
pub(crate) fn predictions(
    dataset: usize,
    labels: &[i32],
    logits: &LayerMatrix<'_>,
    rows: usize,
    threads: usize,
    subset: Option<&[u32]>,
) -> Predictions {
    const ROWS: usize = 1024;
    let (_, k) = logits.shape();
    // The competing classes that the logits have, in the subset's order.
    let competing: Option<Vec<usize>> = subset.map(|classes| {
        classes
            .iter()
            .map(|&c| c as usize)
            .filter(|&c| c < k)
            .collect()
    });
    let parts = crate::pass::parallel_map(rows.div_ceil(ROWS), threads, |part| {
        crate::simd::wide(
            #[inline(always)]
            || {
                let (mut buffer, mut gathered) = (Vec::new(), Vec::new());
                let mut out = Vec::with_capacity(ROWS);
                for i in part * ROWS..((part + 1) * ROWS).min(rows) {
                    let row = crate::pass::segment(logits, i, 0, k, &mut buffer);
                    let best = match &competing {
                        None => top_prediction(row),
                        Some(classes) => {
                            gathered.clear();
                            gathered.extend(classes.iter().map(|&c| row[c]));
                            top_prediction(&gathered).map(|(j, p)| (classes[j], p))
                        }
                    };
                    out.push(best.map_or((u32::MAX, 0.0), |(c, p)| (c as u32, p)));
                }
                out
            },
        )
    });
    let (predicted, probability) = parts.into_iter().flatten().unzip();
    Predictions {
        dataset,
        labels: labels[..rows].to_vec(),
        predicted,
        probability,
    }
}

fn class_of(label: i32, classes: usize) -> Option<usize> {
    usize::try_from(label).ok().filter(|&c| c < classes)
}

/// Overall accuracy over labelled rows.
pub(crate) fn accuracy(p: &Predictions, classes: usize, only: Option<usize>) -> Accuracy {
    let (mut images, mut correct) = (0u64, 0u64);
    for (&y, &pred) in p.labels.iter().zip(&p.predicted) {
        let Some(c) = class_of(y, classes) else {
            continue;
        };
        if only.is_some_and(|o| o != c) {
            continue;
        }
        images += 1;
        correct += u64::from(c as u32 == pred);
    }
    Accuracy {
        dataset: p.dataset,
        images,
        correct,
        accuracy: (images > 0).then(|| correct as f64 / images as f64),
        drop_from_reference: None,
    }
}

/// Accuracy of every class in one pass.
pub(crate) fn class_accuracy(p: &Predictions, classes: usize) -> Vec<Accuracy> {
    let mut images = vec![0u64; classes];
    let mut correct = vec![0u64; classes];
    for (&y, &pred) in p.labels.iter().zip(&p.predicted) {
        if let Some(c) = class_of(y, classes) {
            images[c] += 1;
            correct[c] += u64::from(c as u32 == pred);
        }
    }
    images
        .iter()
        .zip(&correct)
        .map(|(&images, &correct)| Accuracy {
            dataset: p.dataset,
            images,
            correct,
            accuracy: (images > 0).then(|| correct as f64 / images as f64),
            drop_from_reference: None,
        })
        .collect()
}

fn sort_by_score(images: &mut [ScoredImage]) {
    images.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.image.index.cmp(&b.image.index))
    });
}

fn groups(mut pairs: Vec<(usize, ScoredImage)>) -> Vec<ConfusionGroup> {
    pairs.sort_by_key(|p| p.0);
    let mut out: Vec<ConfusionGroup> = Vec::new();
    for (c, image) in pairs {
        match out.last_mut() {
            Some(g) if g.confused_with.0 == c => g.images.push(image),
            _ => out.push(ConfusionGroup {
                confused_with: ClassId(c),
                images: vec![image],
            }),
        }
    }
    for g in &mut out {
        sort_by_score(&mut g.images);
    }
    out.sort_by(|a, b| {
        b.images
            .len()
            .cmp(&a.images.len())
            .then(a.confused_with.cmp(&b.confused_with))
    });
    out
}

/// One class on one dataset (drop filled in by the caller).
pub(crate) fn class_in_dataset(p: &Predictions, classes: usize, class: usize) -> ClassInDataset {
    let mut false_negatives = Vec::new();
    let mut false_positives = Vec::new();
    for (i, (&y, &pred)) in p.labels.iter().zip(&p.predicted).enumerate() {
        let Some(truth) = class_of(y, classes) else {
            continue;
        };
        let pred = pred as usize;
        if truth == pred {
            continue;
        }
        let image = ScoredImage {
            image: ImageId {
                dataset: p.dataset,
                index: i,
            },
            score: p.probability[i],
        };
        if truth == class && pred < classes {
            false_negatives.push((pred, image));
        } else if pred == class {
            false_positives.push((truth, image));
        }
    }
    ClassInDataset {
        accuracy: accuracy(p, classes, Some(class)),
        false_negatives: groups(false_negatives),
        false_positives: groups(false_positives),
    }
}

/// The pairwise view of classes `a` and `b` on one dataset.
pub(crate) fn pairwise(p: &Predictions, classes: usize, a: usize, b: usize) -> PairwiseView {
    let mut counts = [0u64; 4];
    let (mut a_as_b, mut b_as_a) = (Vec::new(), Vec::new());
    for (i, (&y, &pred)) in p.labels.iter().zip(&p.predicted).enumerate() {
        let Some(truth) = class_of(y, classes) else {
            continue;
        };
        let pred = pred as usize;
        let image = ScoredImage {
            image: ImageId {
                dataset: p.dataset,
                index: i,
            },
            score: p.probability[i],
        };
        match (truth == a, truth == b, pred == a, pred == b) {
            (true, _, true, _) => counts[0] += 1,
            (true, _, _, true) => {
                counts[1] += 1;
                a_as_b.push(image);
            }
            (_, true, _, true) => counts[2] += 1,
            (_, true, true, _) => {
                counts[3] += 1;
                b_as_a.push(image);
            }
            _ => {}
        }
    }
    sort_by_score(&mut a_as_b);
    sort_by_score(&mut b_as_a);
    PairwiseView {
        dataset: p.dataset,
        a: ClassId(a),
        b: ClassId(b),
        counts,
        a_as_b,
        b_as_a,
    }
}

/// Cosine similarity of `query` (already normalised, silent dimensions 0) to every row of
/// `matrix` scaled by `scale` (1/max, 0 for silent); the best `count`, skipping `skip`.
#[allow(clippy::too_many_arguments)] // one call site, all plain inputs
pub(crate) fn nearest_in(
    dataset: usize,
    matrix: &LayerMatrix<'_>,
    rows: usize,
    query: &[f32],
    scale: &[f32],
    skip: Option<usize>,
    count: usize,
    threads: usize,
) -> Vec<ScoredImage> {
    let query_norm = query
        .iter()
        .map(|&q| f64::from(q) * f64::from(q))
        .sum::<f64>()
        .sqrt();
    if query_norm == 0.0 || count == 0 {
        return Vec::new();
    }
    let threads = threads.clamp(1, rows.max(1));
    let chunk = rows.div_ceil(threads).max(1);
    let mut found: Vec<ScoredImage> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    let mut best = Vec::new();
                    let cols = query.len();
                    for row in t * chunk..((t + 1) * chunk).min(rows) {
                        if skip == Some(row) {
                            continue;
                        }
                        let x = crate::pass::segment(matrix, row, 0, cols, &mut buffer);
                        let (mut dot, mut norm) = (0f64, 0f64);
                        for ((&v, &s), &q) in x.iter().zip(scale).zip(query) {
                            let v = if v.is_finite() { v * s } else { 0.0 };
                            dot += f64::from(v * q);
                            norm += f64::from(v * v);
                        }
                        if norm > 0.0 {
                            best.push(ScoredImage {
                                image: ImageId {
                                    dataset,
                                    index: row,
                                },
                                score: (dot / (norm.sqrt() * query_norm)) as f32,
                            });
                        }
                        if best.len() >= 4 * count + 64 {
                            sort_by_score(&mut best);
                            best.truncate(count);
                        }
                    }
                    best
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    sort_by_score(&mut found);
    found.truncate(count);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_nonpositive_is_within_two_ulp_of_exp() {
        let mut x = 0.0f32;
        while x > -87.0 {
            let expected = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            assert!(
                (got - expected).abs() <= 2.5 * f64::from(f32::EPSILON) * expected,
                "x = {x}: {got} vs {expected}"
            );
            x -= 0.0137;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    /// The AVX2 build ([`predictions`]) and the baseline build (`top_prediction` called from
    /// here) give the same classes and probability bits.
    #[test]
    fn wide_and_baseline_builds_agree() {
        let (rows, k) = (50, 1003);
        let mut logits = crate::keys::tests::awkward(rows * k, 23, 1);
        for v in &mut logits {
            *v = v.clamp(-60.0, 60.0);
        }
        logits[7] = f32::NAN;
        logits[k + 3] = f32::INFINITY;
        let matrix = LayerMatrix::F32 {
            rows,
            cols: k,
            data: &logits,
        };
        let labels = vec![0; rows];
        let wide = predictions(0, &labels, &matrix, rows, 2, None);
        for (r, row) in logits.chunks_exact(k).enumerate() {
            let (class, p) = top_prediction(row).expect("finite logits");
            assert_eq!(wide.predicted[r], class as u32, "row {r}");
            assert_eq!(wide.probability[r].to_bits(), p.to_bits(), "row {r}");
        }
    }

    #[test]
    fn top_prediction_against_a_plain_softmax() {
        let mut state = 17u64;
        for len in [1usize, 3, 8, 9, 100, 1000] {
            let row: Vec<f32> = (0..len)
                .map(|i| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    match i % 17 {
                        5 => f32::NAN,
                        11 => f32::INFINITY,
                        13 => f32::NEG_INFINITY,
                        _ => ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0,
                    }
                })
                .collect();
            let finite: Vec<(usize, f64)> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i, f64::from(v)))
                .collect();
            let (class, m) =
                finite
                    .iter()
                    .fold((usize::MAX, f64::NEG_INFINITY), |best, &(i, v)| {
                        if v > best.1 { (i, v) } else { best }
                    });
            let z: f64 = finite.iter().map(|&(_, v)| (v - m).exp()).sum();
            let (got_class, p) = top_prediction(&row).expect("a finite logit");
            assert_eq!(got_class, class, "len {len}");
            assert!(
                (f64::from(p) - 1.0 / z).abs() < 1e-6,
                "len {len}: {p} vs {}",
                1.0 / z
            );
        }
        assert_eq!(top_prediction(&[f32::NAN, f32::INFINITY]), None);
        assert_eq!(top_prediction(&[2.0, 2.0, 1.0]).map(|p| p.0), Some(0));
        // Equal maxima in different lanes, and in the tail after the last full chunk: the
        // first position wins.
        let mut row = vec![0.0f32; 20];
        (row[13], row[5]) = (3.0, 3.0);
        assert_eq!(top_prediction(&row).map(|p| p.0), Some(5));
        (row[17], row[9]) = (4.0, 4.0);
        assert_eq!(top_prediction(&row).map(|p| p.0), Some(9));
        row[18] = 5.0;
        assert_eq!(top_prediction(&row).map(|p| p.0), Some(18));
        row[2] = f32::INFINITY;
        assert_eq!(top_prediction(&row).map(|p| p.0), Some(18));
    }
}
