//! The plugin conformance suite. It owns the list of promises every plugin keeps, checked
//! through the SDK's safe traits only, so the same suite runs against a plugin linked into
//! the binary and the same plugin loaded from a shared library:
//!
//! - dataset sources: a non-empty catalog of unique names that all open; positive lengths;
//!   class names; well-formed samples whose labels index the classes; `get` deterministic and
//!   safe from several threads at once; out-of-range indices and unknown names are errors;
//!   every output released;
//! - model adapters: a consistent description; `run` returns `[B, neurons]` per layer and
//!   `[B, K]` logits, finite, deterministic, independent of the batch an image is in; pooled
//!   values equal the pooling of `run_maps`' full maps; unknown layers, wrong input shapes
//!   and batches given to `run_maps` are errors; every output released; where the adapter
//!   computes gradients, they have the batch's shape, are deterministic, independent of the
//!   batch, agree with central differences along a random direction, the objective equals
//!   Σ w·run, the map objective with pooling's weights equals the pooled one, the squared
//!   norm and the maps returned agree with `run_maps`, and unknown layers and wrong weights
//!   are errors (an adapter without gradients says so with `Unsupported`).
//!
//! [`cargo`] builds plugin libraries and the binary from inside tests, for the tests that
//! load them by path or run them; [`store`] writes synthetic activation stores for tests and
//! benchmarks of the analysis, the report and the viewer.
//!
//! A check returns a [`Conformance`] report (how many checks ran, which failed) rather than
//! panicking, so a caller can list every broken promise at once.

pub mod cargo;
mod dataset;
mod gradient;
mod model;
pub mod onnx;
pub mod store;

pub use dataset::check_dataset_source;
pub use model::check_model_adapter;

/// The outcome of a conformance run.
#[derive(Debug, Default)]
pub struct Conformance {
    /// Number of individual checks made.
    pub checks: usize,
    /// What failed, one line each.
    pub violations: Vec<String>,
}

impl Conformance {
    /// Records one check.
    fn check(&mut self, ok: bool, violation: impl FnOnce() -> String) -> bool {
        self.checks += 1;
        if !ok {
            self.violations.push(violation());
        }
        ok
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Panics with every violation listed unless all checks passed and at least `min_checks`
    /// ran (a suite that checked nothing has not passed). For tests.
    #[track_caller]
    pub fn assert_passed(&self, min_checks: usize) {
        assert!(
            self.passed() && self.checks >= min_checks,
            "conformance: {} of {} checks failed (at least {min_checks} expected to run):\n  {}",
            self.violations.len(),
            self.checks,
            self.violations.join("\n  ")
        );
    }
}
