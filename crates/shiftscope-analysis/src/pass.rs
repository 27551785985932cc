//! The hot path: one streaming pass over one layer of one dataset computing, per neuron, the
//! maximum, the class sums, the non-finite counts and a bounded top-k.
//!
//! Columns are split into one block per thread; each thread reads its block of every row.
//! Rows are visited grouped by class (a counting sort of the labels), so a class's sums
//! stay in one small accumulator instead of being scattered over a `K × C` matrix; the top-k
//! therefore breaks ties by image index explicitly rather than by visiting order. The inner
//! loop is branch-free (sum, max, and one "needs a closer look" flag per chunk of columns);
//! only chunks holding a non-finite value or a top-k candidate take the slow path.

use shiftscope_store::LayerMatrix;

use crate::simd::prefetch;

/// Columns per inner-loop chunk: the slow path is taken per chunk.
const CHUNK: usize = 32;
/// Rows ahead whose blocks are prefetched.
const AHEAD: usize = 4;
/// Column blocks are aligned to this many columns (a cache line of `f32`s, times four).
const ALIGN: usize = 16;

/// What one pass over a layer of a dataset found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassOutput {
    /// Maximum finite value per neuron; NaN when a neuron has no finite value.
    pub(crate) max: Vec<f32>,
    /// Raw class means `K × C`, row-major; NaN where a class has no finite value.
    pub(crate) means: Vec<f32>,
    /// Images per class.
    pub(crate) class_counts: Vec<u32>,
    /// Rows whose label is not a class index.
    pub(crate) unlabelled: u64,
    /// Top-k entries per neuron (≤ k).
    pub(crate) top_len: Vec<u32>,
    /// Image indices, `C × k`, best first.
    pub(crate) top_images: Vec<u32>,
    /// Values, `C × k`, best first.
    pub(crate) top_values: Vec<f32>,
    /// NaN values in the layer.
    pub(crate) nan: u64,
    /// `+inf` values.
    pub(crate) pos_inf: u64,
    /// `-inf` values.
    pub(crate) neg_inf: u64,
    /// Non-finite values per neuron.
    pub(crate) non_finite: Vec<u32>,
}

/// Reads the segment `[c0, c1)` of a row as `f32` (a borrowed slice for `f32` stores).
#[inline(always)]
pub(crate) fn segment<'a>(
    matrix: &'a LayerMatrix<'_>,
    row: usize,
    c0: usize,
    c1: usize,
    buffer: &'a mut Vec<f32>,
) -> &'a [f32] {
    match matrix {
        LayerMatrix::F32 { cols, data, .. } => &data[row * cols + c0..row * cols + c1],
        LayerMatrix::F16 { cols, data, .. } => {
            buffer.clear();
            buffer.extend(
                data[row * cols + c0..row * cols + c1]
                    .iter()
                    .map(|h| h.to_f32()),
            );
            buffer
        }
    }
}

/// Column blocks for `threads` workers, aligned to [`ALIGN`].
pub(crate) fn column_blocks(cols: usize, threads: usize) -> Vec<(usize, usize)> {
    let units = cols.div_ceil(ALIGN).max(1);
    let threads = threads.clamp(1, units);
    (0..threads)
        .map(|t| {
            let c0 = (units * t / threads * ALIGN).min(cols);
            let c1 = (units * (t + 1) / threads * ALIGN).min(cols);
            (c0, c1)
        })
        .filter(|(c0, c1)| c1 > c0)
        .collect()
}

/// `f(i)` for `i` in `0..n`, split in contiguous ranges over `threads` scoped threads.
pub(crate) fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let chunk = n.div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(f)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Threads to use: what the machine offers.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Row indices grouped by label: `order[starts[g]..starts[g + 1]]` are the rows of class `g`
/// in increasing index; group `classes` holds the rows whose label is not a class.
fn group_rows(labels: &[i32], classes: usize) -> (Vec<u32>, Vec<usize>) {
    let group = |y: i32| {
        usize::try_from(y)
            .ok()
            .filter(|&c| c < classes)
            .unwrap_or(classes)
    };
    let mut starts = vec![0usize; classes + 2];
    for &y in labels {
        starts[group(y) + 1] += 1;
    }
    for g in 0..=classes {
        starts[g + 1] += starts[g];
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; labels.len()];
    for (i, &y) in labels.iter().enumerate() {
        let g = group(y);
        order[next[g]] = i as u32;
        next[g] += 1;
    }
    (order, starts)
}

/// Runs the pass over the first `rows` rows (`labels` has at least `rows` entries).
pub(crate) fn layer_pass(
    matrix: &LayerMatrix<'_>,
    rows: usize,
    labels: &[i32],
    classes: usize,
    k: usize,
    threads: usize,
) -> PassOutput {
    let (_, cols) = matrix.shape();
    let (order, starts) = group_rows(&labels[..rows], classes);
    let blocks = column_blocks(cols, threads);
    let results: Vec<BlockOutput> = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(t, &(c0, c1))| {
                let (order, starts) = (&order, &starts);
                std::thread::Builder::new()
                    .name(format!("analysis-pass-{t}"))
                    .spawn_scoped(scope, move || {
                        block_pass(matrix, order, starts, classes, k, c0, c1)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                // Could not start a thread: do the block here.
                Err(_) => BlockOutput::default(),
            })
            .collect()
    });
    let mut out = PassOutput {
        max: vec![f32::NAN; cols],
        means: vec![f32::NAN; classes * cols],
        class_counts: (0..classes)
            .map(|c| (starts[c + 1] - starts[c]) as u32)
            .collect(),
        unlabelled: (starts[classes + 1] - starts[classes]) as u64,
        top_len: vec![0; cols],
        top_images: vec![0; cols * k],
        top_values: vec![0.0; cols * k],
        nan: 0,
        pos_inf: 0,
        neg_inf: 0,
        non_finite: vec![0; cols],
    };
    for (&(c0, c1), mut block) in blocks.iter().zip(results) {
        if block.max.is_empty() && c1 > c0 {
            // The thread could not be started: run the block on this one.
            block = block_pass(matrix, &order, &starts, classes, k, c0, c1);
        }
        let w = c1 - c0;
        out.max[c0..c1].copy_from_slice(&block.max);
        for c in 0..classes {
            out.means[c * cols + c0..c * cols + c1].copy_from_slice(&block.means[c * w..][..w]);
        }
        out.top_len[c0..c1].copy_from_slice(&block.heaps.len);
        out.top_images[c0 * k..c1 * k].copy_from_slice(&block.heaps.images);
        out.top_values[c0 * k..c1 * k].copy_from_slice(&block.heaps.values);
        out.non_finite[c0..c1].copy_from_slice(&block.non_finite);
        out.nan += block.nan;
        out.pos_inf += block.pos_inf;
        out.neg_inf += block.neg_inf;
    }
    out
}

#[derive(Debug, Default)]
struct BlockOutput {
    max: Vec<f32>,
    means: Vec<f32>,
    heaps: Heaps,
    non_finite: Vec<u32>,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
}

/// Bounded min-heaps, one per column, of (value, image) with the worst entry at the root:
/// "worse" is a lower value, or the same value and a higher image index.
#[derive(Debug, Default)]
struct Heaps {
    k: usize,
    len: Vec<u32>,
    values: Vec<f32>,
    images: Vec<u32>,
}

#[inline]
fn worse(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 > b.1)
}

impl Heaps {
    fn new(cols: usize, k: usize) -> Heaps {
        Heaps {
            k,
            len: vec![0; cols],
            values: vec![0.0; cols * k],
            images: vec![0; cols * k],
        }
    }

    /// Offers `(value, image)` to column `j`'s heap; returns the new admission threshold
    /// (the root's value once the heap is full).
    fn offer(&mut self, j: usize, value: f32, image: u32) -> f32 {
        let k = self.k;
        let vs = &mut self.values[j * k..(j + 1) * k];
        let is = &mut self.images[j * k..(j + 1) * k];
        let len = self.len[j] as usize;
        if len < k {
            // Push and sift up.
            let mut at = len;
            while at > 0 {
                let parent = (at - 1) / 2;
                if worse((value, image), (vs[parent], is[parent])) {
                    vs[at] = vs[parent];
                    is[at] = is[parent];
                    at = parent;
                } else {
                    break;
                }
            }
            vs[at] = value;
            is[at] = image;
            self.len[j] += 1;
            return if len + 1 == k {
                vs[0]
            } else {
                f32::NEG_INFINITY
            };
        }
        if !worse((vs[0], is[0]), (value, image)) {
            return vs[0];
        }
        // Replace the root and sift down.
        let mut at = 0;
        loop {
            let left = 2 * at + 1;
            if left >= k {
                break;
            }
            let right = left + 1;
            let child = if right < k && worse((vs[right], is[right]), (vs[left], is[left])) {
                right
            } else {
                left
            };
            if worse((vs[child], is[child]), (value, image)) {
                vs[at] = vs[child];
                is[at] = is[child];
                at = child;
            } else {
                break;
            }
        }
        vs[at] = value;
        is[at] = image;
        vs[0]
    }

    /// Sorts every heap best first.
    fn finish(&mut self) {
        let k = self.k;
        for j in 0..self.len.len() {
            let len = self.len[j] as usize;
            let mut pairs: Vec<(f32, u32)> = (0..len)
                .map(|e| (self.values[j * k + e], self.images[j * k + e]))
                .collect();
            pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (e, (v, i)) in pairs.into_iter().enumerate() {
                self.values[j * k + e] = v;
                self.images[j * k + e] = i;
            }
        }
    }
}

/// Adds one chunk of a row (at most [`CHUNK`] values) to the class sums and maxima; returns
/// a bit mask of the values that are non-finite or may enter the top-k (the caller looks at
/// those alone).
#[inline(always)]
fn kernel(x: &[f32], acc: &mut [f64], max: &mut [f32], threshold: &[f32]) -> u32 {
    let mut flags = [0u8; CHUNK];
    for ((((&v, a), m), &t), f) in x.iter().zip(acc).zip(max).zip(threshold).zip(&mut flags) {
        let finite = v.is_finite();
        *a += f64::from(if finite { v } else { 0.0 });
        let vm = if finite { v } else { f32::NEG_INFINITY };
        // Neither side is NaN, so `max` is the plain maximum; written as a select, the AVX2
        // build turns it into a masked store, which AMD cores run in microcode.
        *m = m.max(vm);
        *f = u8::from(!finite | ((v >= t) & (v != 0.0)));
    }
    // Eight 0/1 bytes to eight bits: the multiply moves byte i's bit to bit 56 + i.
    let mut mask = 0u32;
    for (i, bytes) in flags.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        let packed = (u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
        mask |= packed << (8 * i);
    }
    mask
}

fn block_pass(
    matrix: &LayerMatrix<'_>,
    order: &[u32],
    starts: &[usize],
    classes: usize,
    k: usize,
    c0: usize,
    c1: usize,
) -> BlockOutput {
    crate::simd::wide(
        #[inline(always)]
        || block_pass_body(matrix, order, starts, classes, k, c0, c1),
    )
}

/// [`block_pass`], inlined into its AVX2 build ([`crate::simd::wide`]).
#[inline(always)]
fn block_pass_body(
    matrix: &LayerMatrix<'_>,
    order: &[u32],
    starts: &[usize],
    classes: usize,
    k: usize,
    c0: usize,
    c1: usize,
) -> BlockOutput {
    let w = c1 - c0;
    let mut out = BlockOutput {
        max: vec![f32::NEG_INFINITY; w],
        means: vec![f32::NAN; classes * w],
        heaps: Heaps::new(w, k),
        non_finite: vec![0; w],
        ..BlockOutput::default()
    };
    let start_threshold = if k == 0 {
        f32::INFINITY
    } else {
        f32::NEG_INFINITY
    };
    let mut threshold = vec![start_threshold; w];
    let mut acc = vec![0f64; w];
    let mut class_non_finite = vec![0u32; w];
    let mut buffer = Vec::with_capacity(w);
    for g in 0..=classes {
        acc.fill(0.0);
        class_non_finite.fill(0);
        for (p, &image) in order.iter().enumerate().take(starts[g + 1]).skip(starts[g]) {
            // Rows come in label order, scattered over the file: fetch a later one's block
            // while this one is added.
            if let Some(&ahead) = order.get(p + AHEAD) {
                let r = ahead as usize;
                match matrix {
                    LayerMatrix::F32 { cols, data, .. } => prefetch(&data[r * cols + c0..][..w]),
                    LayerMatrix::F16 { cols, data, .. } => prefetch(&data[r * cols + c0..][..w]),
                }
            }
            let x = segment(matrix, image as usize, c0, c1, &mut buffer);
            let mut o = 0;
            while o < w {
                let e = (o + CHUNK).min(w);
                let mut mask = kernel(
                    &x[o..e],
                    &mut acc[o..e],
                    &mut out.max[o..e],
                    &threshold[o..e],
                );
                while mask != 0 {
                    let j = o + mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let v = x[j];
                    if v.is_finite() {
                        if k > 0 {
                            threshold[j] = out.heaps.offer(j, v, image);
                        }
                    } else {
                        if v.is_nan() {
                            out.nan += 1;
                        } else if v > 0.0 {
                            out.pos_inf += 1;
                        } else {
                            out.neg_inf += 1;
                        }
                        out.non_finite[j] += 1;
                        class_non_finite[j] += 1;
                    }
                }
                o = e;
            }
        }
        if g < classes {
            let count = (starts[g + 1] - starts[g]) as u32;
            for j in 0..w {
                let n = count - class_non_finite[j];
                out.means[g * w + j] = if n > 0 {
                    (acc[j] / f64::from(n)) as f32
                } else {
                    f32::NAN
                };
            }
        }
    }
    for m in &mut out.max {
        if *m == f32::NEG_INFINITY {
            *m = f32::NAN;
        }
    }
    out.heaps.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_columns_once() {
        for cols in [0, 1, 15, 16, 17, 100, 2048] {
            for threads in 1..5 {
                let blocks = column_blocks(cols, threads);
                let mut next = 0;
                for (c0, c1) in blocks {
                    assert_eq!(c0, next);
                    assert!(c1 > c0);
                    next = c1;
                }
                assert_eq!(next, cols);
            }
        }
    }

    /// The AVX2 build ([`crate::simd::wide`], through `block_pass`) and the baseline build
    /// (`block_pass_body` called from here) give the same bits, non-finite values included.
    #[test]
    fn wide_and_baseline_builds_agree() {
        let (rows, cols, classes, k) = (300, 77, 4, 5);
        let mut data = crate::keys::tests::awkward(rows * cols, 17, 3);
        data[5] = f32::NAN;
        data[cols + 6] = f32::INFINITY;
        data[2 * cols + 7] = f32::NEG_INFINITY;
        let matrix = LayerMatrix::F32 {
            rows,
            cols,
            data: &data,
        };
        let labels: Vec<i32> = (0..rows).map(|r| (r * 7 % 5) as i32 - 1).collect();
        let (order, starts) = group_rows(&labels, classes);
        let wide = block_pass(&matrix, &order, &starts, classes, k, 3, 70);
        let plain = block_pass_body(&matrix, &order, &starts, classes, k, 3, 70);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&wide.max), bits(&plain.max));
        assert_eq!(bits(&wide.means), bits(&plain.means));
        assert_eq!(bits(&wide.heaps.values), bits(&plain.heaps.values));
        assert_eq!(wide.heaps.images, plain.heaps.images);
        assert_eq!(wide.heaps.len, plain.heaps.len);
        assert_eq!(wide.non_finite, plain.non_finite);
        assert_eq!(
            (wide.nan, wide.pos_inf, wide.neg_inf),
            (plain.nan, plain.pos_inf, plain.neg_inf)
        );
        assert_eq!((plain.nan, plain.pos_inf, plain.neg_inf), (1, 1, 1));
    }

    #[test]
    fn rows_group_by_label_in_index_order() {
        let (order, starts) = group_rows(&[2, 0, -1, 2, 0, 7], 3);
        assert_eq!(order, vec![1, 4, 0, 3, 2, 5]);
        assert_eq!(starts, vec![0, 2, 2, 4, 6]);
    }
}
