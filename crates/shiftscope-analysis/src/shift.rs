//! The ID→OOD activation shift: Wasserstein-1 between a neuron's per-image distributions on
//! two datasets. Columns are gathered from the row-major layer in tiles; each pair is
//! integrated bucket by bucket from counts and sums, sorting ([`crate::keys`]) only the
//! buckets where the two CDFs cross.

use std::sync::atomic::{AtomicUsize, Ordering};

use shiftscope_store::LayerMatrix;

use crate::keys::{key, radix_sort_keys, unkey};
use crate::pass::segment;

/// W1 distance between two empirical distributions given sorted, by the plain merge; `None`
/// when either is empty. The reference [`column_w1`] is tested against.
#[cfg(test)]
fn wasserstein1_sorted(a: &[f32], b: &[f32]) -> Option<f64> {
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

/// The bucket of a key: its top 16 bits (sign, exponent, seven mantissa bits), so a bucket
/// is 1/128 of a binade, an interval of the real line, and buckets in index order tile it in
/// ascending order.
const BUCKET_SHIFT: u32 = 16;
const NBUCKETS: usize = 1 << (32 - BUCKET_SHIFT);
/// The first bucket of non-negative values: its lower edge is `+0.0` (key `0x8000_0000`).
const ZERO_BUCKET: usize = 1 << (31 - BUCKET_SHIFT);

/// The lower edge of `bucket` as a value; `±inf` past the finite buckets.
fn edge(bucket: usize) -> f64 {
    if bucket >= NBUCKETS {
        return f64::INFINITY;
    }
    let v = unkey((bucket as u32) << BUCKET_SHIFT);
    match v {
        _ if !v.is_nan() => f64::from(v),
        _ if bucket < ZERO_BUCKET => f64::NEG_INFINITY,
        _ => f64::INFINITY,
    }
}

/// Per-bucket counts and sums of one column's non-zero finite values, and a flag per group of
/// 64 buckets in use, so that a walk visits only those (a ReLU column's values skip over a
/// hundred binades between 0 and its smallest positive value). The flag is a plain byte
/// store: a bit set by read-modify-write would chain each value to the last one of its group.
struct Buckets {
    count: Box<[u32; NBUCKETS]>,
    sum: Box<[f64; NBUCKETS]>,
    used: Box<[u8; NBUCKETS / 64]>,
}

/// A zeroed array on the heap (`Box::new([0; N])` would build it on the stack first).
fn zeroed<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    vec![T::default(); N]
        .into_boxed_slice()
        .try_into()
        .unwrap_or_else(|_| Box::new([T::default(); N]))
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            count: zeroed(),
            sum: zeroed(),
            used: zeroed(),
        }
    }
}

impl Buckets {
    #[inline(always)]
    fn fill(&mut self, values: &[f32]) {
        for &v in values {
            let b = (key(v) >> BUCKET_SHIFT) as usize;
            self.count[b] += 1;
            self.sum[b] += f64::from(v);
            self.used[b / 64] = 1;
        }
    }

    /// Which buckets of group `word` hold values (a bit per bucket), clearing its flag.
    #[inline(always)]
    fn take_group(&mut self, word: usize) -> u64 {
        if std::mem::take(&mut self.used[word]) == 0 {
            return 0;
        }
        self.count[word * 64..][..64]
            .iter()
            .enumerate()
            .fold(0, |bits, (i, &c)| bits | (u64::from(c != 0) << i))
    }

    /// Takes bucket `b`'s count and sum, leaving it empty.
    #[inline(always)]
    fn take(&mut self, b: usize) -> (usize, f64) {
        let taken = (self.count[b] as usize, self.sum[b]);
        (self.count[b], self.sum[b]) = (0, 0.0);
        taken
    }
}

/// Scratch of [`column_w1`], reused across columns.
#[derive(Default)]
pub(crate) struct W1Scratch {
    a: Buckets,
    b: Buckets,
    /// Buckets that need their values in order, with the CDF difference at their lower edge.
    straddling: Vec<(usize, f64)>,
    mark: Vec<bool>,
    keys_a: Vec<u32>,
    keys_b: Vec<u32>,
    spare: Vec<u32>,
}

/// One column of one dataset: its non-zero finite values (any order), and how many exact
/// zeros (either sign) it had.
#[derive(Clone, Copy)]
struct Column<'a> {
    values: &'a [f32],
    zeros: usize,
}

/// W1 of two columns, `∫ |F_a(x) − F_b(x)| dx`, without sorting them whole; `None` when
/// either is empty.
///
/// The line is cut into buckets (1/128 of a binade, [`BUCKET_SHIFT`]). Where the CDF
/// difference `D` keeps one sign over a bucket, `∫ |D| = |∫ D|`, and `∫ D` over the bucket
/// `[lo, hi)` needs only each side's count and sum there:
/// `D(lo)·(hi − lo) + (c_a·hi − S_a)/n − (c_b·hi − S_b)/m`. `D` moves within the bucket
/// between `D(lo) − c_b/m` and `D(lo) + c_a/n`; only when that range holds zero are the
/// bucket's values sorted and the integral walked point by point. Equal to the sorted merge
/// ([`wasserstein1_sorted`]) up to rounding.
#[inline(always)]
fn column_w1(a: Column<'_>, b: Column<'_>, scratch: &mut W1Scratch) -> Option<f64> {
    let (na, nb) = (a.values.len() + a.zeros, b.values.len() + b.zeros);
    if na == 0 || nb == 0 {
        return None;
    }
    let (n, m) = (na as f64, nb as f64);
    let W1Scratch {
        a: ha,
        b: hb,
        straddling,
        mark,
        keys_a,
        keys_b,
        spare,
    } = scratch;
    ha.fill(a.values);
    hb.fill(b.values);
    straddling.clear();
    let (mut ia, mut ib) = (0usize, 0usize);
    let mut total = 0.0f64;
    // Counts are integers, so D is exactly 0 before the first value and after the last.
    let d = |ia: usize, ib: usize| ia as f64 / n - ib as f64 / m;
    // The upper edge of the last bucket visited: D is constant from there to the next.
    let mut previous: Option<f64> = None;
    for word in 0..NBUCKETS / 64 {
        let mut bits = ha.take_group(word) | hb.take_group(word);
        if word == ZERO_BUCKET / 64 {
            bits |= 1 << (ZERO_BUCKET % 64);
        }
        while bits != 0 {
            let bucket = word * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (lo, hi) = (edge(bucket), edge(bucket + 1));
            if let Some(p) = previous {
                total += d(ia, ib).abs() * (lo - p);
            }
            if bucket == ZERO_BUCKET {
                // The zeros sit on this bucket's lower edge.
                ia += a.zeros;
                ib += b.zeros;
            }
            let ((ca, sa), (cb, sb)) = (ha.take(bucket), hb.take(bucket));
            let d0 = d(ia, ib);
            let (fa, fb) = (ca as f64 / n, cb as f64 / m);
            if hi.is_finite() && (d0 - fb >= 0.0 || d0 + fa <= 0.0) {
                total += (d0 * (hi - lo) + (fa * hi - sa / n) - (fb * hi - sb / m)).abs();
            } else {
                straddling.push((bucket, d0));
            }
            ia += ca;
            ib += cb;
            previous = Some(hi);
        }
    }
    if straddling.is_empty() {
        return Some(total);
    }
    // The straddling buckets' values, in order (sorting by key groups them by bucket).
    mark.resize(NBUCKETS, false);
    for &(bucket, _) in straddling.iter() {
        mark[bucket] = true;
    }
    // Straddling buckets come in increasing order; most keys fall outside their span.
    let (low, high) = (straddling[0].0, straddling[straddling.len() - 1].0);
    let mut sorted = |column: Column<'_>, keys: &mut Vec<u32>| -> Vec<u32> {
        keys.clear();
        keys.extend(column.values.iter().map(|&v| key(v)).filter(|&k| {
            let bucket = (k >> BUCKET_SHIFT) as usize;
            bucket.wrapping_sub(low) <= high - low && mark[bucket]
        }));
        spare.resize(keys.len(), 0);
        radix_sort_keys(keys, spare).to_vec()
    };
    let xs = sorted(a, keys_a);
    let ys = sorted(b, keys_b);
    for &(bucket, _) in straddling.iter() {
        mark[bucket] = false;
    }
    let (mut i, mut j) = (0usize, 0usize);
    for &(bucket, d0) in straddling.iter() {
        let (lo, hi) = (edge(bucket), edge(bucket + 1));
        let in_bucket = |k: u32| (k >> BUCKET_SHIFT) as usize == bucket;
        let (mut ca, mut cb) = (0usize, 0usize);
        let mut previous = lo;
        let step = |ca: usize, cb: usize| d0 + ca as f64 / n - cb as f64 / m;
        loop {
            let next_a = xs.get(i).copied().filter(|&k| in_bucket(k));
            let next_b = ys.get(j).copied().filter(|&k| in_bucket(k));
            let take_a = match (next_a, next_b) {
                (Some(x), Some(y)) => x <= y,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let x = f64::from(unkey(if take_a { xs[i] } else { ys[j] }));
            total += step(ca, cb).abs() * (x - previous);
            previous = x;
            if take_a {
                ca += 1;
                i += 1;
            } else {
                cb += 1;
                j += 1;
            }
        }
        let after = step(ca, cb);
        if after != 0.0 && hi.is_finite() {
            total += after.abs() * (hi - previous);
        }
    }
    Some(total)
}

/// Columns gathered together: each row read is 256 contiguous bytes; rows
/// are transposed this many at a time.
const TILE: usize = 64;

/// Per-thread scratch of the gather: one block of rows, and a row converted from `f16`.
#[derive(Default)]
struct Scratch {
    block: Vec<f32>,
    buffer: Vec<f32>,
}

/// Per-thread buffers for one tile of columns of one dataset: column `j`'s non-zero finite
/// values at `values[j * rows..][..len[j]]`, in row order; finite values per column.
struct Tile {
    rows: usize,
    values: Vec<f32>,
    len: [usize; TILE],
    finite: [usize; TILE],
}

impl Tile {
    fn new(rows: usize) -> Tile {
        Tile {
            rows,
            values: vec![0.0; rows * TILE],
            len: [0; TILE],
            finite: [0; TILE],
        }
    }

    /// Reads columns `[c0, c1)` (at most [`TILE`]) of every row, keeping the non-zero finite
    /// values per column and counting the finite ones. Rows are copied [`TILE`] at a
    /// time into `block` (the copies are independent, so their cache misses overlap) and
    /// transposed from there. Branch-free: every value is written, and the column's length
    /// advances only for a kept one.
    #[inline(always)]
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
            let block = &block[..h * w];
            for (j, column) in self.values.chunks_exact_mut(rows).take(w).enumerate() {
                let (mut len, mut finite) = (self.len[j], self.finite[j]);
                // `len ≤ r0 + r < rows`: the writes stay inside the column.
                let column = &mut column[..r0 + h];
                for row in block.chunks_exact(w) {
                    let v = row[j];
                    // On the magnitude bits: finite below the infinity pattern; non-zero and
                    // finite when `magnitude − 1` (wrapping) is below the largest finite.
                    let magnitude = v.to_bits() & 0x7fff_ffff;
                    column[len] = v;
                    len += usize::from(magnitude.wrapping_sub(1) < 0x7f7f_ffff);
                    finite += usize::from(magnitude < 0x7f80_0000);
                }
                self.len[j] = len;
                self.finite[j] = finite;
            }
        }
    }

    /// Column `j`: its non-zero finite values and its zeros.
    fn column(&self, j: usize) -> Column<'_> {
        let (len, finite, rows) = (self.len[j], self.finite[j], self.rows);
        Column {
            values: &self.values[j * rows..j * rows + len],
            zeros: finite - len,
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
        // The whole worker in one AVX2 build: gather, buckets and walk inline into it.
        let worker = || {
            crate::simd::wide(
                #[inline(always)]
                || {
                    let mut found = Vec::new();
                    let (mut tile_a, mut tile_b) = (Tile::new(rows_a), Tile::new(rows_b));
                    let (mut gather, mut scratch) = (Scratch::default(), W1Scratch::default());
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
                            let (x, y) = (tile_a.column(j), tile_b.column(j));
                            let w = column_w1(x, y, &mut scratch).map_or(f32::NAN, |w| w as f32);
                            found.push((c0 + j, w));
                        }
                    }
                    found
                },
            )
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
    use crate::keys::tests::{awkward, lcg};

    /// Columns of a row-major matrix, gathered as tiles: each column's non-zero finite
    /// values and its zeros.
    #[test]
    fn tiles_gather_columns_and_count_zeros() {
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
        let mut scratch = Scratch::default();
        for (c0, c1) in [(0, TILE), (TILE, cols)] {
            tile.gather(&matrix, c0, c1, &mut scratch);
            for j in 0..c1 - c0 {
                let column = tile.column(j);
                let values: Vec<u32> = column.values.iter().map(|v| v.to_bits()).collect();
                let finite: Vec<f32> = (0..rows)
                    .map(|r| data[r * cols + c0 + j])
                    .filter(|v| v.is_finite())
                    .collect();
                let expected: Vec<u32> = finite
                    .iter()
                    .filter(|&&v| v != 0.0)
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(values, expected, "column {}", c0 + j);
                assert_eq!(column.zeros, finite.len() - expected.len());
            }
        }
    }

    /// A column from values: the non-zero ones in the given order, zeros counted.
    fn column_of(values: &[f32]) -> (Vec<f32>, usize) {
        let kept: Vec<f32> = values.iter().copied().filter(|&v| v != 0.0).collect();
        let zeros = values.len() - kept.len();
        (kept, zeros)
    }

    fn bucketed(a: &[f32], b: &[f32], scratch: &mut W1Scratch) -> Option<f64> {
        let (va, za) = column_of(a);
        let (vb, zb) = column_of(b);
        let ca = Column {
            values: &va,
            zeros: za,
        };
        let cb = Column {
            values: &vb,
            zeros: zb,
        };
        column_w1(ca, cb, scratch)
    }

    fn merged(a: &[f32], b: &[f32]) -> Option<f64> {
        let mut sa = a.to_vec();
        sa.sort_by(f32::total_cmp);
        let mut sb = b.to_vec();
        sb.sort_by(f32::total_cmp);
        wasserstein1_sorted(&sa, &sb)
    }

    /// ReLU-like samples: `zeros_in_8` eighths exact zeros, the rest `scale·u² + offset`.
    fn relu_like(n: usize, seed: u64, zeros_in_8: u64, scale: f32, offset: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                let state = lcg(&mut state);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                if (state >> 20) % 8 < zeros_in_8 {
                    0.0
                } else {
                    scale * u * u + offset
                }
            })
            .collect()
    }

    /// The bucketed W1 against the sorted merge, on awkward values (every magnitude, both
    /// signs, zeros of both signs, subnormals, ties), on identical and on shifted
    /// distributions (the one-sign buckets and the point-by-point ones), equal and unequal
    /// sizes, with one scratch reused throughout.
    #[test]
    fn column_w1_matches_the_sorted_merge() {
        let mut scratch = W1Scratch::default();
        let mut cases: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
        for (n, m, zeros_a, zeros_b) in [
            (4000, 4000, 6, 2),
            (4000, 4000, 0, 7),
            (3000, 3000, 8, 8),
            (3000, 2999, 5, 3),
            (500, 4000, 7, 0),
            (1, 1, 8, 0),
        ] {
            cases.push((
                awkward(n, 7 + n as u64, zeros_a),
                awkward(m, 1000 + m as u64, zeros_b),
            ));
        }
        let same = relu_like(5000, 3, 4, 2.0, 0.0);
        cases.push((same.clone(), same));
        cases.push((
            relu_like(5000, 3, 4, 2.0, 0.0),
            relu_like(5000, 4, 4, 2.0, 0.0),
        ));
        cases.push((
            relu_like(5000, 5, 4, 2.0, 0.0),
            relu_like(4000, 6, 2, 3.0, 0.5),
        ));
        cases.push((
            relu_like(6000, 7, 0, 1.0, -0.5),
            relu_like(6000, 8, 0, 1.0, -0.25),
        ));
        cases.push((
            relu_like(300, 9, 8, 1.0, 0.0),
            relu_like(300, 10, 7, 1.0, 0.0),
        ));
        for (a, b) in &cases {
            let expected = merged(a, b).unwrap();
            let got = bucketed(a, b, &mut scratch).unwrap();
            assert!(
                (got - expected).abs() <= 1e-9 * expected.abs().max(1e-30),
                "{} vs {}: {got} {expected}",
                a.len(),
                b.len()
            );
        }
        // Both ways of integrating a bucket are taken: identical samples cross in every
        // bucket they fill; samples shifted apart cross in only a few.
        let same = relu_like(5000, 11, 4, 2.0, 0.0);
        bucketed(&same, &same, &mut scratch);
        let filled = scratch.straddling.len();
        assert!(filled > 20, "{filled} buckets walked point by point");
        bucketed(&same, &relu_like(5000, 12, 2, 2.0, 0.5), &mut scratch);
        let crossing = scratch.straddling.len();
        assert!(crossing <= 3, "{crossing} buckets walked point by point");
        assert_eq!(bucketed(&[], &[1.0], &mut scratch), None);
        assert_eq!(bucketed(&[0.0, 0.0], &[0.0], &mut scratch), Some(0.0));
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
