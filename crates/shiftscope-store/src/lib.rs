//! The activation store: one directory per study, written once by extraction and read many
//! times by the analysis, the viewer and people's notebooks. It owns the on-disk layout of
//! design/store.md: `manifest.json`; per dataset `labels.npy`, `logits.npy`, `thumbs.npy` and
//! `layers/<layer-id>.npy` with correct `.npy` headers, preallocated and filled in place;
//! `progress.json` replaced atomically after the data is flushed; checksums when a dataset
//! completes; `f32` or `f16` layers. Reading memory-maps the files after checking every size
//! and header against the manifest, and refuses a mismatch naming the file.
//!
//! Python reads a store with numpy alone:
//! `np.load(f"{store}/datasets/{id}/layers/{layer}.npy", mmap_mode="r")` and
//! `json.load(open(f"{store}/manifest.json"))`.

mod error;
mod manifest;
mod merge;
mod npy;
mod reader;
mod writer;

pub use error::StoreError;
pub use manifest::{
    DatasetEntry, LayerEntry, Manifest, ModelEntry, Part, Precision, Role, SCHEMA_VERSION, Shard,
};
pub use merge::merge;
pub use npy::write_f32 as write_f32_npy;
pub use reader::{LayerMatrix, Store, VerifyReport, now_unix, sha256_bytes, sha256_file};
pub use writer::{DatasetWriter, StoreWriter};
