//! Runtime dispatch of the hot loops to an AVX2 + FMA build.
//!
//! Release builds target baseline x86-64 (SSE2), so a binary runs on any x86-64 machine.
//! The loops that dominate an analysis (the streaming pass, the W1 gather and buckets, the
//! softmax over the logits) are written as plain lane-wise Rust; [`wide`] compiles them a
//! second time with AVX2 and FMA enabled and picks that build when the CPU has both. The
//! arithmetic is the same IEEE operations either way (Rust never fuses a multiply and an
//! add on its own), so both builds give bit-identical numbers.

/// Runs `f`, compiled for AVX2 and FMA when this CPU has them, else as built.
///
/// Only what is inlined into `f` gets the wider build: pass `#[inline(always)] || …`, keep
/// the hot loop in its body, and make the functions it calls in the loop `#[inline(always)]`.
/// The modules' tests check that both builds agree (e.g. `pass::tests`).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above; `avx2` needs nothing else.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Asks the CPU to bring `data` into the cache ahead of use, for reads whose address the
/// hardware prefetcher cannot guess (rows visited in label order, not in memory order).
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..size_of_val(data)).step_by(64) {
            // SAFETY: a prefetch reads nothing into the program and never faults; the address
            // is inside `data` anyway.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    start.add(offset),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_returns_what_the_closure_returns() {
        let data: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let plain: f32 = data.iter().map(|v| v * v).sum();
        let got = wide(|| data.iter().map(|v| v * v).sum::<f32>());
        assert_eq!(got.to_bits(), plain.to_bits());
    }
}
