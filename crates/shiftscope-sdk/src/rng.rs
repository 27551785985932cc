//! A small deterministic random generator (SplitMix64), so that a plugin's data and
//! weights are the same on every machine and every run for the same seed and index.

/// SplitMix64: 64 bits of state, good statistical quality, fully portable.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for item `index` of a stream seeded with `seed`: independent streams for
    /// neighbouring indices, so random access needs no sequential state.
    pub fn for_item(seed: u64, index: u64) -> SplitMix64 {
        let mut mixer = SplitMix64::new(seed ^ 0x6a09_e667_f3bc_c909);
        let base = mixer.next_u64();
        SplitMix64::new(base ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.next_f32()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for data generation, and branch-free.
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = f64::from(self.next_f32()).max(1e-12);
        let u2 = f64::from(self.next_f32());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Balanced labels in a shuffled order for procedural datasets: each block of `classes`
/// consecutive indices holds every class once, in an order drawn from `(seed, block)`.
/// `classes` is at most 256.
pub fn balanced_label(seed: u64, index: usize, classes: usize) -> usize {
    let classes = classes.clamp(1, 256);
    let mut order = [0u8; 256];
    for (c, slot) in order.iter_mut().enumerate().take(classes) {
        *slot = c as u8;
    }
    let mut rng = SplitMix64::for_item(seed, (index / classes) as u64);
    for i in (1..classes).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    usize::from(order[index % classes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_spread() {
        let a: Vec<u64> = (0..4)
            .map(|i| SplitMix64::for_item(7, i).next_u64())
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|i| SplitMix64::for_item(7, i).next_u64())
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        assert_ne!(SplitMix64::for_item(8, 0).next_u64(), a[0]);
        let mut r = SplitMix64::new(1);
        let xs: Vec<f32> = (0..10_000).map(|_| r.next_f32()).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let ns: Vec<f32> = (0..10_000).map(|_| r.normal()).collect();
        let m = ns.iter().sum::<f32>() / ns.len() as f32;
        let v = ns.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / ns.len() as f32;
        assert!(m.abs() < 0.05 && (v - 1.0).abs() < 0.05, "mean {m} var {v}");
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
