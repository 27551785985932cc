//! What can go wrong with a store, always naming the file.

use std::path::PathBuf;

/// A store error; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error (in the message; not chained, so it is said once).
        error: std::io::Error,
    },
    /// A file disagrees with the manifest or is malformed.
    #[error("{}: {problem}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        problem: String,
    },
    /// The request does not fit the store (unknown dataset, rows out of range, ...).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |error| StoreError::Io { path, error }
    }

    pub(crate) fn mismatch(path: impl Into<PathBuf>, problem: impl Into<String>) -> StoreError {
        StoreError::Mismatch {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
