//! The ID→OOD activation shift: Wasserstein-1 between a neuron's per-image distributions on
//! two datasets, from both columns sorted (an LSD radix sort on the `f32` bit patterns).

use std::sync::atomic::{AtomicUsize, Ordering};

use shiftscope_store::LayerMatrix;

use crate::pass::segment;

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

/// Order-preserving map of an `f32` bit pattern to a `u32`: negatives below `0x8000_0000`,
/// positives above, in `total_cmp` order.
#[inline]
pub(crate) fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

#[inline]
pub(crate) fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Bits per radix digit: three passes cover 32 bits, with 2,048 counters (8 KiB) each.
/// (Measured on 33,000-key columns: 8-bit digits in four passes are slower, and so are
/// split counters that break the chains of same-bucket updates.)
const DIGIT: u32 = 11;
const BUCKETS: usize = 1 << DIGIT;
const PASSES: usize = 3;
/// Below this many keys a comparison sort is cheaper than clearing the counters.
const SMALL: usize = 256;

/// Sorts `keys` ascending by an LSD radix sort over three 11-bit digits, skipping digits
/// that every key shares; `spare` (at least as long) is scratch. Returns the slice of
/// `keys` or of `spare` that holds the result.
pub(crate) fn radix_sort_keys<'a>(keys: &'a mut [u32], spare: &'a mut [u32]) -> &'a [u32] {
    let m = keys.len();
    if m < SMALL {
        keys.sort_unstable();
        return keys;
    }
    let spare = &mut spare[..m];
    let mask = (BUCKETS - 1) as u32;
    let mut hist = [[0u32; BUCKETS]; PASSES];
    for &k in keys.iter() {
        hist[0][(k & mask) as usize] += 1;
        hist[1][((k >> DIGIT) & mask) as usize] += 1;
        hist[2][(k >> (2 * DIGIT)) as usize] += 1;
    }
    let (mut from, mut to) = (keys, spare);
    for (pass, counts) in hist.iter_mut().enumerate() {
        let shift = pass as u32 * DIGIT;
        let digit = |k: u32| ((k >> shift) & mask) as usize;
        // A digit shared by every key orders nothing.
        if counts[digit(from[0])] as usize == m {
            continue;
        }
        let mut sum = 0u32;
        for c in counts.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        for &k in from.iter() {
            let d = digit(k);
            to[counts[d] as usize] = k;
            counts[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    from
}

/// One column of finite values: its non-zero values as sorted keys, and how many exact
/// zeros (either sign) it had. In ascending order the values are the negative keys, then
/// the zeros, then the positive keys.
#[derive(Clone, Copy)]
struct Column<'a> {
    /// Sorted keys of the non-zero finite values.
    keys: &'a [u32],
    /// Exact zeros.
    zeros: usize,
    /// Keys below this index are negative values.
    negatives: usize,
}

impl Column<'_> {
    fn len(&self) -> usize {
        self.keys.len() + self.zeros
    }

    /// The column's values in ascending order, zeros written as `+0.0`.
    fn extend_values(&self, out: &mut Vec<f32>) {
        out.extend(self.keys[..self.negatives].iter().map(|&k| unkey(k)));
        out.extend(std::iter::repeat_n(0.0f32, self.zeros));
        out.extend(self.keys[self.negatives..].iter().map(|&k| unkey(k)));
    }

    /// Where position `i` of the ascending order falls: the region (0 negatives, 1 zeros,
    /// 2 positives) and the region's first position.
    fn boundaries(&self) -> [usize; 2] {
        [self.negatives, self.negatives + self.zeros]
    }
}

/// `Σ |a_i − b_i|` over positions `range` where `a`'s values lie in region `ra` and `b`'s in
/// region `rb`, added in position order to `total`.
#[inline]
fn add_abs_differences(
    total: &mut f64,
    a: &Column<'_>,
    ra: usize,
    b: &Column<'_>,
    rb: usize,
    range: std::ops::Range<usize>,
) {
    match (ra, rb) {
        // Two zeros add exactly +0.0: nothing.
        (1, 1) => {}
        (1, _) => {
            let off = if rb == 0 { 0 } else { b.zeros };
            for &k in &b.keys[range.start - off..range.end - off] {
                *total += f64::from(unkey(k)).abs();
            }
        }
        (_, 1) => {
            let off = if ra == 0 { 0 } else { a.zeros };
            for &k in &a.keys[range.start - off..range.end - off] {
                *total += f64::from(unkey(k)).abs();
            }
        }
        _ => {
            let oa = if ra == 0 { 0 } else { a.zeros };
            let ob = if rb == 0 { 0 } else { b.zeros };
            let xs = &a.keys[range.start - oa..range.end - oa];
            let ys = &b.keys[range.start - ob..range.end - ob];
            for (&x, &y) in xs.iter().zip(ys) {
                *total += (f64::from(unkey(x)) - f64::from(unkey(y))).abs();
            }
        }
    }
}

/// W1 of two columns, exactly as [`wasserstein1_sorted`] computes it on their values in
/// ascending order; `None` when either is empty. `scratch` holds values for unequal sizes.
fn column_w1(a: &Column<'_>, b: &Column<'_>, scratch: &mut Vec<f32>) -> Option<f64> {
    let n = a.len();
    if n == 0 || b.len() == 0 {
        return None;
    }
    if n != b.len() {
        scratch.clear();
        a.extend_values(scratch);
        let split = scratch.len();
        b.extend_values(scratch);
        let (x, y) = scratch.split_at(split);
        return wasserstein1_sorted(x, y);
    }
    // Equal sizes: positions split into at most five ranges by the region boundaries of
    // both sides; within each the two regions are fixed. Adding in position order keeps
    // the sum bit for bit that of the plain loop (a skipped `+0.0` changes no sum).
    let mut cuts = [
        0,
        a.boundaries()[0],
        a.boundaries()[1],
        b.boundaries()[0],
        b.boundaries()[1],
        n,
    ];
    cuts.sort_unstable();
    let mut total = 0.0f64;
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        if lo == hi {
            continue;
        }
        let region = |c: &Column<'_>| {
            let [z, p] = c.boundaries();
            if lo < z {
                0
            } else if lo < p {
                1
            } else {
                2
            }
        };
        add_abs_differences(&mut total, a, region(a), b, region(b), lo..hi);
    }
    Some(total / n as f64)
}

/// Columns gathered (and sorted) together: each row read is 256 contiguous bytes; rows
/// are transposed this many at a time.
const TILE: usize = 64;

/// Per-thread scratch of the gather: one block of rows, and a row converted from `f16`.
#[derive(Default)]
struct Scratch {
    block: Vec<f32>,
    buffer: Vec<f32>,
}

/// Per-thread buffers for one tile of columns of one dataset: column `j`'s non-zero finite
/// keys at `keys[j * rows..][..len[j]]`, in row order; finite values per column.
struct Tile {
    rows: usize,
    keys: Vec<u32>,
    len: [usize; TILE],
    finite: [usize; TILE],
}

impl Tile {
    fn new(rows: usize) -> Tile {
        Tile {
            rows,
            keys: vec![0; rows * TILE],
            len: [0; TILE],
            finite: [0; TILE],
        }
    }

    /// Reads columns `[c0, c1)` (at most [`TILE`]) of every row, keeping the non-zero finite
    /// values' keys per column and counting the finite ones. Rows are copied [`TILE`] at a
    /// time into `block` (the copies are independent, so their cache misses overlap) and
    /// transposed from there. Branch-free: every key is written, and the column's length
    /// advances only for a kept one.
    fn gather(&mut self, matrix: &LayerMatrix<'_>, c0: usize, c1: usize, scratch: &mut Scratch) {
        let w = c1 - c0;
        let rows = self.rows;
        let Scratch { block, buffer } = scratch;
        block.resize(TILE * TILE, 0.0);
        self.len = [0; TILE];
        self.finite = [0; TILE];
        for r0 in (0..rows).step_by(TILE) {
            let h = TILE.min(rows - r0);
            for r in 0..h {
                block[r * w..(r + 1) * w].copy_from_slice(segment(matrix, r0 + r, c0, c1, buffer));
            }
            for j in 0..w {
                let column = &mut self.keys[j * rows..(j + 1) * rows];
                let (mut len, mut finite) = (self.len[j], self.finite[j]);
                for r in 0..h {
                    let v = block[r * w + j];
                    let f = v.is_finite();
                    // `len ≤ r0 + r < rows`: the write stays inside the column.
                    column[len] = key(v);
                    len += usize::from(f & (v != 0.0));
                    finite += usize::from(f);
                }
                self.len[j] = len;
                self.finite[j] = finite;
            }
        }
    }

    /// Sorts column `j` and describes it (`spare` is scratch of at least `rows`).
    fn sorted<'a>(&'a mut self, j: usize, spare: &'a mut [u32]) -> Column<'a> {
        let (len, finite, rows) = (self.len[j], self.finite[j], self.rows);
        let keys = radix_sort_keys(&mut self.keys[j * rows..j * rows + len], spare);
        Column {
            keys,
            zeros: finite - len,
            negatives: keys.partition_point(|&k| k < 0x8000_0000),
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
    let tiles = cols.div_ceil(TILE);
    let next = AtomicUsize::new(0);
    let mut out = vec![f32::NAN; cols];
    let parts: Vec<Vec<(usize, f32)>> = std::thread::scope(|scope| {
        let worker = || {
            let mut found = Vec::new();
            let (mut tile_a, mut tile_b) = (Tile::new(rows_a), Tile::new(rows_b));
            let mut spare_a = vec![0u32; rows_a];
            let mut spare_b = vec![0u32; rows_b];
            let (mut gather, mut scratch) = (Scratch::default(), Vec::new());
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= tiles {
                    break;
                }
                let c0 = t * TILE;
                let c1 = (c0 + TILE).min(cols);
                tile_a.gather(a, c0, c1, &mut gather);
                tile_b.gather(b, c0, c1, &mut gather);
                for j in 0..c1 - c0 {
                    let x = tile_a.sorted(j, &mut spare_a);
                    let y = tile_b.sorted(j, &mut spare_b);
                    let w = column_w1(&x, &y, &mut scratch).map_or(f32::NAN, |w| w as f32);
                    found.push((c0 + j, w));
                }
            }
            found
        };
        let handles: Vec<_> = (0..threads.clamp(1, tiles.max(1)))
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

    /// Random `f32`s of every kind W1 meets: signed values over many magnitudes, runs of
    /// exact zeros of both signs, subnormals, ties.
    fn awkward(n: usize, seed: u64, zeros_in_8: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                match (state >> 20) % 8 {
                    z if z < zeros_in_8 => {
                        if i % 2 == 0 {
                            0.0
                        } else {
                            -0.0
                        }
                    }
                    _ => match i % 5 {
                        0 => r * 1e-40,                                          // subnormal
                        1 => r * 1e30,                                           // large
                        2 => (r * 8.0).round() / 4.0,                            // ties
                        3 => f32::from_bits((state >> 32) as u32 & 0x7f7f_ffff), // any finite
                        _ => r,
                    },
                }
            })
            .filter(|v| v.is_finite())
            .collect()
    }

    #[test]
    fn radix_sort_orders_like_total_cmp() {
        for (n, zeros) in [(5000, 2), (100, 1), (300, 0), (20_000, 7), (1, 0), (0, 0)] {
            let values = awkward(n, 12345 + n as u64, zeros);
            let mut keys: Vec<u32> = values.iter().map(|&v| key(v)).collect();
            let mut spare = vec![0; keys.len()];
            let sorted: Vec<f32> = radix_sort_keys(&mut keys, &mut spare)
                .iter()
                .map(|&k| unkey(k))
                .collect();
            let mut expected = values.clone();
            expected.sort_by(f32::total_cmp);
            assert_eq!(
                sorted.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }

    #[test]
    fn radix_sort_skips_shared_digits() {
        // Every key shares its top and bottom digits: only the middle pass runs.
        let mut keys: Vec<u32> = (0..1000u32)
            .rev()
            .map(|i| (7 << 22) | (i << 11) | 5)
            .collect();
        let mut spare = vec![0; keys.len()];
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(radix_sort_keys(&mut keys, &mut spare), &expected[..]);
    }

    /// Columns of a row-major matrix, gathered as tiles, sorted, read back as values.
    #[test]
    fn tiles_gather_sort_and_count_zeros() {
        let (rows, cols) = (700, 70);
        let mut data = awkward(rows * cols * 2, 99, 5);
        data.truncate(rows * cols);
        data[3] = f32::NAN;
        data[cols + 3] = f32::INFINITY;
        data[2 * cols + 69] = f32::NEG_INFINITY;
        let matrix = LayerMatrix::F32 {
            rows,
            cols,
            data: &data,
        };
        let mut tile = Tile::new(rows);
        let mut spare = vec![0; rows];
        let mut scratch = Scratch::default();
        for (c0, c1) in [(0, TILE), (TILE, cols)] {
            tile.gather(&matrix, c0, c1, &mut scratch);
            for j in 0..c1 - c0 {
                let column = tile.sorted(j, &mut spare);
                let mut values = Vec::new();
                column.extend_values(&mut values);
                let mut expected: Vec<f32> = (0..rows)
                    .map(|r| data[r * cols + c0 + j])
                    .filter(|v| v.is_finite())
                    .map(|v| if v == 0.0 { 0.0 } else { v })
                    .collect();
                expected.sort_by(f32::total_cmp);
                assert_eq!(values, expected, "column {}", c0 + j);
            }
        }
    }

    /// `column_w1` against `wasserstein1_sorted` on the full sorted values: bit for bit.
    #[test]
    fn column_w1_matches_the_plain_merge() {
        for (n, m, zeros_a, zeros_b) in [
            (4000, 4000, 6, 2),
            (4000, 4000, 0, 7),
            (3000, 3000, 8, 8),
            (3000, 2999, 5, 3),
            (500, 4000, 7, 0),
            (1, 1, 8, 0),
        ] {
            let a = awkward(n, 7 + n as u64, zeros_a);
            let b = awkward(m, 1000 + m as u64, zeros_b);
            let (n, m) = (a.len(), b.len());
            let column = |values: &[f32], keys: &mut Vec<u32>, spare: &mut Vec<u32>| {
                keys.clear();
                keys.extend(values.iter().filter(|&&v| v != 0.0).map(|&v| key(v)));
                spare.resize(keys.len(), 0);
                let zeros = values.len() - keys.len();
                let sorted = radix_sort_keys(keys, spare).to_vec();
                let negatives = sorted.partition_point(|&k| k < 0x8000_0000);
                (sorted, zeros, negatives)
            };
            let (ka, za, na) = column(&a, &mut Vec::new(), &mut Vec::new());
            let (kb, zb, nb) = column(&b, &mut Vec::new(), &mut Vec::new());
            let ca = Column {
                keys: &ka,
                zeros: za,
                negatives: na,
            };
            let cb = Column {
                keys: &kb,
                zeros: zb,
                negatives: nb,
            };
            let mut sa = a.clone();
            sa.sort_by(f32::total_cmp);
            let mut sb = b.clone();
            sb.sort_by(f32::total_cmp);
            let expected = wasserstein1_sorted(&sa, &sb).unwrap();
            let got = column_w1(&ca, &cb, &mut Vec::new()).unwrap();
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{n} vs {m}: {got} {expected}"
            );
        }
    }

    /// Mostly zeros on both sides, small enough for a quadratic reference.
    #[test]
    fn w1_with_many_zeros_against_a_direct_reference() {
        let direct = |a: &[f32], b: &[f32]| {
            let mut points: Vec<f64> = a.iter().chain(b).map(|&v| f64::from(v)).collect();
            points.sort_by(f64::total_cmp);
            let cdf = |s: &[f32], x: f64| {
                s.iter().filter(|&&v| f64::from(v) <= x).count() as f64 / s.len() as f64
            };
            points
                .windows(2)
                .map(|w| (cdf(a, w[0]) - cdf(b, w[0])).abs() * (w[1] - w[0]))
                .sum::<f64>()
        };
        for (rows_a, rows_b) in [(600, 600), (600, 450)] {
            let cols = 3;
            let make = |rows: usize, seed: u64| {
                let mut v = awkward(rows * cols * 2, seed, 7);
                v.truncate(rows * cols);
                // Column 0: only zeros and small values; column 2: negatives too.
                for r in 0..rows {
                    v[r * cols] = if r % 9 == 0 {
                        (r % 13) as f32 / 13.0
                    } else {
                        0.0
                    };
                    v[r * cols + 1] = v[r * cols + 1].clamp(-3.0, 3.0).max(0.0);
                    v[r * cols + 2] = v[r * cols + 2].clamp(-3.0, 3.0);
                }
                v
            };
            let (da, db) = (make(rows_a, 5), make(rows_b, 6));
            let ma = LayerMatrix::F32 {
                rows: rows_a,
                cols,
                data: &da,
            };
            let mb = LayerMatrix::F32 {
                rows: rows_b,
                cols,
                data: &db,
            };
            let w = layer_w1(&ma, rows_a, &mb, rows_b, 2);
            for j in 0..cols {
                let ca: Vec<f32> = (0..rows_a).map(|r| da[r * cols + j]).collect();
                let cb: Vec<f32> = (0..rows_b).map(|r| db[r * cols + j]).collect();
                let expected = direct(&ca, &cb);
                assert!(
                    (f64::from(w[j]) - expected).abs() <= 1e-5 * (1.0 + expected),
                    "column {j}: {} vs {expected}",
                    w[j]
                );
            }
        }
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
