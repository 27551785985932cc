//! Sorting `f32`s as integers: the order-preserving map of a value's bit pattern to a
//! `u32` key, and an LSD radix sort of keys (the W1 shift's crossing buckets, and ranks).

/// Order-preserving map of an `f32` bit pattern to a `u32`: negatives below `0x8000_0000`,
/// positives above, in `total_cmp` order.
#[inline(always)]
pub(crate) fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

#[inline(always)]
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One step of the tests' 64-bit linear congruential generator (Knuth's MMIX constants):
    /// the new state, whose high bits are the random ones.
    pub(crate) fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state
    }

    /// Random `f32`s of every kind W1 meets: signed values over many magnitudes, runs of
    /// exact zeros of both signs, subnormals, ties.
    pub(crate) fn awkward(n: usize, seed: u64, zeros_in_8: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                let state = lcg(&mut state);
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
}
