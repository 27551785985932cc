//! What the benchmarks share: settings from the environment, interleaved best-of rounds,
//! and the `key=value` fields of a reference process's replies.

use std::time::Duration;

/// The environment variable `name` as a number, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best images/s of each run over `rounds`, the runs taking turns within a round, so that a
/// slow spell of this shared machine falls on every side of a ratio. A pause before each run
/// lets the last one's spinning worker threads go idle.
pub(crate) fn best_of_interleaved(rounds: usize, runs: &mut [&mut dyn FnMut() -> f64]) -> Vec<f64> {
    let mut best = vec![0.0_f64; runs.len()];
    for _ in 0..rounds {
        for (run, best) in runs.iter_mut().zip(&mut best) {
            std::thread::sleep(Duration::from_millis(300));
            *best = best.max(run());
        }
    }
    best
}

/// The number after `name=` in a reply line.
pub(crate) fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
