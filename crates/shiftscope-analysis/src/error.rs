//! What can go wrong in an analysis, always naming the store.

use std::path::PathBuf;

/// An analysis error; each names the store (or the file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The store could not be read.
    #[error("{}: {error}", store.display())]
    Store {
        /// The store folder.
        store: PathBuf,
        /// What the store crate said.
        error: shiftscope_store::StoreError,
    },
    /// The request does not fit the store (unknown layer, dataset, class or image, ...).
    #[error("{}: {problem}", store.display())]
    Invalid {
        /// The store folder.
        store: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// Writing the cache failed (the numbers themselves were computed; see `Analysis`).
    #[error("{}: {error}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The system's error.
        error: std::io::Error,
    },
}
