//! Random variates on top of the SDK's SplitMix64: uniform doubles, normals (Box–Muller,
//! both values used), integers in a half-open range (numpy `randint`), Poisson.

use shiftscope_sdk::rng::SplitMix64;

/// A random stream for one purpose of one call (`seed`, `stream`).
#[derive(Debug)]
pub(crate) struct Rng {
    inner: SplitMix64,
    spare: Option<f64>,
}

impl Rng {
    /// Stream `stream` of `seed`; different streams are independent.
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        Rng {
            inner: SplitMix64::for_item(seed, stream),
            spare: None,
        }
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[low, high)`.
    pub(crate) fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.f64()
    }

    /// Integer uniform in `low..high` (`high > low`), like numpy's `randint(low, high)`.
    pub(crate) fn randint(&mut self, low: i64, high: i64) -> i64 {
        let span = (high - low).max(1) as u64;
        low + ((u128::from(self.inner.next_u64()) * u128::from(span)) >> 64) as i64
    }

    /// Standard normal, Box–Muller; the second value of each pair is kept for the next call.
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = (1.0 - self.f64()).max(f64::MIN_POSITIVE); // (0, 1]
        let u2 = self.f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// Poisson with mean `lambda` (≥ 0): inversion below 10, Hörmann's transformed
    /// rejection (PTRS, exact) above.
    #[cfg(test)]
    pub(crate) fn poisson(&mut self, lambda: f64) -> f64 {
        self.poisson_with(lambda, (-lambda).exp())
    }

    /// [`Rng::poisson`] with `exp(−lambda)` supplied (callers with few distinct means
    /// compute it once per mean).
    pub(crate) fn poisson_with(&mut self, lambda: f64, exp_neg_lambda: f64) -> f64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0.0;
        }
        if lambda < 10.0 {
            // Sequential search of the CDF: one uniform, about λ steps. The cap only
            // guards against a uniform within rounding of 1.
            let u = self.f64();
            let mut k = 0.0;
            let mut p = exp_neg_lambda;
            let mut cdf = p;
            while u > cdf && k < 1000.0 {
                k += 1.0;
                p *= lambda / k;
                cdf += p;
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.f64() - 0.5;
            let v = self.f64();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
                <= -lambda + k * loglam - ln_factorial(k)
            {
                return k;
            }
        }
    }
}

/// `ln(k!)`: exact sum below 16, Stirling's series above (error < 1e-12).
fn ln_factorial(k: f64) -> f64 {
    if k < 16.0 {
        let mut s = 0.0;
        let mut i = 2.0;
        while i <= k {
            s += f64::ln(i);
            i += 1.0;
        }
        return s;
    }
    let x = k + 1.0;
    let x2 = x * x;
    (x - 0.5) * x.ln() - x + 0.5 * (std::f64::consts::TAU).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x * x2 * x2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn poisson_mean_and_variance_match_lambda() {
        let mut r = Rng::new(3, 0);
        for lambda in [0.5, 3.0, 9.9, 10.0, 37.5, 250.0, 500.0] {
            let xs: Vec<f64> = (0..40_000).map(|_| r.poisson(lambda)).collect();
            let (m, v) = moments(&xs);
            assert!(
                (m - lambda).abs() < 0.03 * lambda + 0.03,
                "λ {lambda}: mean {m}"
            );
            assert!(
                (v - lambda).abs() < 0.06 * lambda + 0.05,
                "λ {lambda}: var {v}"
            );
            assert!(xs.iter().all(|&x| x >= 0.0 && x.fract() == 0.0));
        }
    }

    #[test]
    fn normal_and_randint() {
        let mut r = Rng::new(5, 1);
        let xs: Vec<f64> = (0..40_000).map(|_| r.normal()).collect();
        let (m, v) = moments(&xs);
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "{m} {v}");
        let ks: Vec<i64> = (0..10_000).map(|_| r.randint(-2, 2)).collect();
        assert!(ks.iter().all(|k| (-2..2).contains(k)));
        for k in -2..2 {
            assert!(ks.iter().filter(|&&x| x == k).count() > 2_200);
        }
    }

    #[test]
    fn ln_factorial_is_continuous_at_the_switch() {
        let exact: f64 = (2..=20).map(|i| f64::ln(f64::from(i))).sum();
        assert!((ln_factorial(20.0) - exact).abs() < 1e-9);
    }
}
