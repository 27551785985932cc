//! The ID→OOD activation shift: Wasserstein-1 between a neuron's per-image distributions on
//! two datasets, from both columns sorted (an LSD radix sort on the `f32` bit patterns).

use std::sync::atomic::{AtomicUsize, Ordering};

use shiftscope_store::LayerMatrix;

use crate::pass::segment;

/// Columns gathered together: 512 bytes per row read, so strided reads cost few page walks.
const GATHER: usize = 128;

/// W1 distance between two empirical distributions given sorted; `None` when either is empty.
pub(crate) fn wasserstein1_sorted(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.len() == b.len() {
        // Equal sizes: the quantile functions are step functions on the same grid.
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
            .sum();
        return Some(sum / a.len() as f64);
    }
    // ∫ |F_a(x) − F_b(x)| dx, the CDFs being constant between consecutive sample points.
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut previous = f64::from(a[0].min(b[0]));
    let mut total = 0.0;
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i] <= b[j]);
        let x = f64::from(if take_a { a[i] } else { b[j] });
        total += (i as f64 / n - j as f64 / m).abs() * (x - previous);
        previous = x;
        if take_a {
            i += 1;
        } else {
            j += 1;
        }
    }
    Some(total)
}

#[inline]
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

#[inline]
fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Sorts finite `f32`s ascending: exact zeros (common after a ReLU) are counted and put back
/// in place; the rest by an LSD radix sort over the four bytes of the order-preserving bit
/// pattern, skipping bytes that every value shares.
pub(crate) fn radix_sort(values: &mut Vec<f32>, keys: &mut Vec<u32>, spare: &mut Vec<u32>) {
    let n = values.len();
    if n < 256 {
        values.sort_unstable_by(f32::total_cmp);
        return;
    }
    keys.clear();
    keys.extend(values.iter().filter(|&&v| v != 0.0).map(|&v| key(v)));
    let zeros = n - keys.len();
    let m = keys.len();
    spare.resize(m, 0);
    let mut hist = [[0u32; 256]; 4];
    for &k in keys.iter() {
        hist[0][(k & 0xff) as usize] += 1;
        hist[1][((k >> 8) & 0xff) as usize] += 1;
        hist[2][((k >> 16) & 0xff) as usize] += 1;
        hist[3][(k >> 24) as usize] += 1;
    }
    for (pass, counts) in hist.iter_mut().enumerate() {
        if m == 0 {
            break;
        }
        let shift = pass * 8;
        let digit = |k: u32| ((k >> shift) & 0xff) as usize;
        if counts[digit(keys[0])] as usize == m {
            continue;
        }
        let mut sum = 0u32;
        for c in counts.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for &k in keys.iter() {
            let d = digit(k);
            spare[counts[d] as usize] = k;
            counts[d] += 1;
        }
        std::mem::swap(keys, spare);
    }
    // Negative keys sort below 0x8000_0000, positive ones above: zeros go between.
    let negatives = keys.partition_point(|&k| k < 0x8000_0000);
    values.clear();
    values.extend(keys[..negatives].iter().map(|&k| unkey(k)));
    values.extend(std::iter::repeat_n(0.0f32, zeros));
    values.extend(keys[negatives..].iter().map(|&k| unkey(k)));
}

/// Gathers the finite values of columns `[c0, c1)` (at most [`GATHER`]) of the first `rows`
/// rows into `columns`, one vector per column.
fn gather(
    matrix: &LayerMatrix<'_>,
    rows: usize,
    c0: usize,
    c1: usize,
    columns: &mut [Vec<f32>],
    buffer: &mut Vec<f32>,
) {
    for c in columns.iter_mut() {
        c.clear();
    }
    for row in 0..rows {
        let x = segment(matrix, row, c0, c1, buffer);
        for (column, &v) in columns.iter_mut().zip(x) {
            if v.is_finite() {
                column.push(v);
            }
        }
    }
}

/// Raw (unnormalised) W1 per neuron between the first `rows_a` rows of `a` and the first
/// `rows_b` rows of `b`; NaN where either side has no finite value.
pub(crate) fn layer_w1(
    a: &LayerMatrix<'_>,
    rows_a: usize,
    b: &LayerMatrix<'_>,
    rows_b: usize,
    threads: usize,
) -> Vec<f32> {
    let (_, cols) = a.shape();
    let groups = cols.div_ceil(GATHER);
    let next = AtomicUsize::new(0);
    let mut out = vec![f32::NAN; cols];
    let parts: Vec<Vec<(usize, f32)>> = std::thread::scope(|scope| {
        let worker = || {
            let mut found = Vec::new();
            let mut col_a: Vec<Vec<f32>> =
                (0..GATHER).map(|_| Vec::with_capacity(rows_a)).collect();
            let mut col_b: Vec<Vec<f32>> =
                (0..GATHER).map(|_| Vec::with_capacity(rows_b)).collect();
            let (mut keys, mut spare, mut buffer) = (Vec::new(), Vec::new(), Vec::new());
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed);
                if g >= groups {
                    break;
                }
                let c0 = g * GATHER;
                let c1 = (c0 + GATHER).min(cols);
                gather(a, rows_a, c0, c1, &mut col_a[..c1 - c0], &mut buffer);
                gather(b, rows_b, c0, c1, &mut col_b[..c1 - c0], &mut buffer);
                for (j, (x, y)) in col_a
                    .iter_mut()
                    .zip(col_b.iter_mut())
                    .take(c1 - c0)
                    .enumerate()
                {
                    radix_sort(x, &mut keys, &mut spare);
                    radix_sort(y, &mut keys, &mut spare);
                    let w = wasserstein1_sorted(x, y).map_or(f32::NAN, |w| w as f32);
                    found.push((c0 + j, w));
                }
            }
            found
        };
        let handles: Vec<_> = (0..threads.max(1))
            .filter_map(|t| {
                std::thread::Builder::new()
                    .name(format!("analysis-w1-{t}"))
                    .spawn_scoped(scope, worker)
                    .ok()
            })
            .collect();
        // With no thread started, this one does the work.
        let mut parts = if handles.is_empty() {
            vec![worker()]
        } else {
            Vec::new()
        };
        for h in handles {
            parts.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        parts
    });
    for (j, w) in parts.into_iter().flatten() {
        out[j] = w;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_like_total_cmp() {
        let mut state = 12345u64;
        let mut values: Vec<f32> = (0..5000)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 1e3;
                if i % 7 == 0 {
                    0.0
                } else if i % 11 == 0 {
                    -0.0
                } else {
                    r
                }
            })
            .collect();
        let mut expected = values.clone();
        expected.sort_by(f32::total_cmp);
        radix_sort(&mut values, &mut Vec::new(), &mut Vec::new());
        // −0.0 comes back as 0.0: equal as numbers, which is all W1 needs.
        assert_eq!(values, expected);
    }

    #[test]
    fn w1_of_shifted_samples_is_the_shift() {
        let a = [0.0, 1.0, 2.0];
        let b = [0.5, 1.5, 2.5];
        assert!((wasserstein1_sorted(&a, &b).unwrap() - 0.5).abs() < 1e-12);
        // Unequal sizes: {0, 1} vs {0}: half the mass moves by 1.
        assert!((wasserstein1_sorted(&[0.0, 1.0], &[0.0]).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(wasserstein1_sorted(&[], &[1.0]), None);
    }
}
