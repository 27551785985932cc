//! What can go wrong computing or reading features; each names the store, file or model.

use std::path::PathBuf;

/// A feature error.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The store could not be read or does not fit the request.
    #[error("{}: {problem}", store.display())]
    Store {
        /// The store folder.
        store: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// The model could not be opened or run.
    #[error("model {model}: {problem}")]
    Model {
        /// The model (file or adapter).
        model: String,
        /// What was wrong.
        problem: String,
    },
    /// A dataset image could not be read or preprocessed.
    #[error("dataset {dataset}, image {row}: {problem}")]
    Image {
        /// The dataset's id in the store.
        dataset: String,
        /// The row.
        row: usize,
        /// What was wrong.
        problem: String,
    },
    /// A cache file could not be written or read.
    #[error("{}: {problem}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
}
