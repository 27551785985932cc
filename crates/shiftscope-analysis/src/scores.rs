//! The per-neuron formulas of design/analyses.md on one neuron's numbers: Spearman (average
//! ranks), the two class selectivity indexes, top classes. Undefined results are `None`.

use serde::{Deserialize, Serialize};

/// Classes listed as a neuron's top classes.
pub const TOP_CLASSES: usize = 5;

/// Average ranks (1-based) of `values`; tied values (`==`, so `-0.0` ties `0.0`) share the
/// mean of their positions. Sorts `(order-preserving key, index)` packed in one `u64`.
pub(crate) fn average_ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<u64> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (u64::from(crate::keys::key(v)) << 32) | i as u64)
        .collect();
    order.sort_unstable();
    let value = |p: u64| crate::keys::unkey((p >> 32) as u32);
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && value(order[j]) == value(order[i]) {
            j += 1;
        }
        // Positions i..j (0-based) share rank mean(i+1..=j).
        let rank = (i + j + 1) as f64 / 2.0;
        for &o in &order[i..j] {
            ranks[o as u32 as usize] = rank;
        }
        i = j;
    }
    ranks
}

/// Pearson correlation; `None` when either side is constant or there are fewer than 2 pairs.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's ρ of two profiles over the entries finite in both (average ranks for ties);
/// `None` when either profile is constant there, or fewer than two entries remain.
pub fn spearman(x: &[f32], y: &[f32]) -> Option<f64> {
    let (a, b): (Vec<f32>, Vec<f32>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(&a, &b)| (a, b))
        .unzip();
    pearson(&average_ranks(&a), &average_ranks(&b))
}

/// Rafegas et al.'s class selectivity index over a neuron's top images (`values` best first,
/// `labels` their classes): weights `w_j = a_j / a_1`, class frequencies `f_c` sorted
/// descending, `M` the fewest classes whose cumulative frequency reaches `threshold` (within
/// 1e-9), index `(N − M) / (N − 1)`. Only positive activations count (the weights are
/// meaningless otherwise); `None` with fewer than two of them.
pub fn rafegas_selectivity(values: &[f32], labels: &[u32], threshold: f64) -> Option<f64> {
    let positive: Vec<(f64, u32)> = values
        .iter()
        .zip(labels)
        .filter(|(v, _)| v.is_finite() && **v > 0.0)
        .map(|(&v, &c)| (f64::from(v), c))
        .collect();
    let n = positive.len();
    if n < 2 {
        return None;
    }
    let first = positive.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    let mut per_class: Vec<(u32, f64)> = Vec::new();
    for &(v, c) in &positive {
        let w = v / first;
        match per_class.iter_mut().find(|(k, _)| *k == c) {
            Some((_, sum)) => *sum += w,
            None => per_class.push((c, w)),
        }
    }
    let total: f64 = per_class.iter().map(|p| p.1).sum();
    let mut frequencies: Vec<f64> = per_class.iter().map(|p| p.1 / total).collect();
    frequencies.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let mut m = frequencies.len();
    for (i, f) in frequencies.iter().enumerate() {
        cumulative += f;
        if cumulative >= threshold - 1e-9 {
            m = i + 1;
            break;
        }
    }
    Some((n - m) as f64 / (n - 1) as f64)
}

/// Morcos et al.'s class selectivity index from a neuron's raw class means (undefined ones
/// NaN and left out): `(μ_max − μ_rest) / (μ_max + μ_rest)`; `None` with fewer than two
/// defined classes or a zero denominator.
pub fn morcos_selectivity(class_means: impl Iterator<Item = f32>) -> Option<f64> {
    let means: Vec<f64> = class_means
        .filter(|m| m.is_finite())
        .map(f64::from)
        .collect();
    if means.len() < 2 {
        return None;
    }
    let (best, max) =
        means.iter().enumerate().fold(
            (0, f64::NEG_INFINITY),
            |acc, (i, &m)| if m > acc.1 { (i, m) } else { acc },
        );
    let rest = means
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != best)
        .map(|(_, &m)| m)
        .sum::<f64>()
        / (means.len() - 1) as f64;
    let denominator = max + rest;
    (denominator != 0.0).then(|| (max - rest) / denominator)
}

/// Indices of the (up to) `count` highest finite values, highest first, ties by index.
/// The finite scores of `values` with their indices, highest first (ties: lower index
/// first): a ranking of neurons by a score, e.g. the most spurious.
pub fn ranked(values: &[f32]) -> Vec<(usize, f32)> {
    let mut out: Vec<(usize, f32)> = values
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

pub(crate) fn top_indices(values: impl Iterator<Item = f32>, count: usize) -> Vec<u32> {
    let mut all: Vec<(f32, u32)> = values
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (v, i as u32))
        .collect();
    let by_value = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if all.len() > count && count > 0 {
        all.select_nth_unstable_by(count - 1, by_value);
        all.truncate(count);
    }
    all.sort_unstable_by(by_value);
    all.truncate(count);
    all.into_iter().map(|p| p.1).collect()
}

/// A histogram of a score over a layer's neurons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub min: f64,
    /// Upper edge of the last bin.
    pub max: f64,
    /// Neurons per bin (equal widths).
    pub counts: Vec<u64>,
    /// Neurons whose score is undefined.
    pub undefined: u64,
}

impl Histogram {
    /// `bins` equal bins over the finite values' range (NaN counted as undefined).
    pub fn of(values: &[f32], bins: usize) -> Histogram {
        let bins = bins.max(1);
        let finite = values.iter().filter(|v| v.is_finite());
        let min = finite
            .clone()
            .fold(f64::INFINITY, |m, &v| m.min(f64::from(v)));
        let max = finite
            .clone()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let mut counts = vec![0u64; bins];
        let width = (max - min) / bins as f64;
        for &v in finite {
            let b = if width > 0.0 {
                (((f64::from(v) - min) / width) as usize).min(bins - 1)
            } else {
                0
            };
            counts[b] += 1;
        }
        let defined: u64 = counts.iter().sum();
        Histogram {
            min: if defined > 0 { min } else { 0.0 },
            max: if defined > 0 { max } else { 0.0 },
            counts,
            undefined: values.len() as u64 - defined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_skips_undefined_scores_and_breaks_ties_by_index() {
        let r = ranked(&[0.2, f32::NAN, 0.9, 0.2, f32::INFINITY]);
        assert_eq!(r, vec![(2, 0.9), (0, 0.2), (3, 0.2)]);
    }

    #[test]
    fn average_ranks_share_ties_including_signed_zeros() {
        let ranks = average_ranks(&[3.0, -0.0, 0.0, 1.0, 1.0, -2.0, f32::MIN_POSITIVE / 4.0]);
        assert_eq!(ranks, vec![7.0, 2.5, 2.5, 5.5, 5.5, 1.0, 4.0]);
        assert!(average_ranks(&[]).is_empty());
    }
}
