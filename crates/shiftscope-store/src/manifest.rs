//! `manifest.json`: what the store holds. Written atomically (temp file, fsync, rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Version of the store layout this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Precision of the layer files.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats: half the size.
    F16,
}

/// Whether a dataset is the in-distribution reference or a shift of it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// In distribution.
    Id,
    /// Out of distribution.
    Ood,
}

/// The model the store was recorded from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ModelEntry {
    /// The model file as given.
    pub path: String,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// The adapter plugin.
    pub adapter: String,
    /// The preprocessing, as the config declared it.
    pub preprocessing: serde_json::Value,
    /// The model's input shape, `null` where dynamic.
    pub input_shape: Vec<Option<usize>>,
}

/// One recorded layer.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct LayerEntry {
    /// File stem under `layers/`.
    pub id: String,
    /// Tensor name in the model.
    pub name: String,
    /// Producing operator.
    pub op: String,
    /// `conv`, `tokens`, `dense` or `logits`.
    pub kind: String,
    /// Columns of the layer file.
    pub neurons: usize,
    /// How it was pooled (`mean`, `max`, `cls`, `none`).
    pub pooling: String,
}

/// Which shard of a sharded recording a store is.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

/// The rows of a dataset a shard holds: `len` rows from `first` of `total`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Part {
    /// First row of the whole dataset held here.
    pub first: usize,
    /// Rows of the whole dataset.
    pub total: usize,
}

/// One recorded dataset.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DatasetEntry {
    /// Folder name under `datasets/`.
    pub id: String,
    /// Dataset name, as its plugin calls it.
    pub name: String,
    /// The plugin that produced it.
    pub plugin: String,
    /// Parameters of the shift.
    pub params: BTreeMap<String, String>,
    /// ID or OOD.
    pub role: Role,
    /// Rows (images).
    pub len: usize,
    /// Whether every row is recorded.
    pub complete: bool,
    /// SHA-256 of each file (relative path → hex), written when complete.
    pub checksums: BTreeMap<String, String>,
    /// In a shard store: which rows of the whole dataset these are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// The store's manifest.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Manifest {
    /// Layout version.
    pub schema_version: u32,
    /// The shiftscope version that wrote it.
    pub tool_version: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// The model.
    pub model: ModelEntry,
    /// Recorded layers, in network order.
    pub layers: Vec<LayerEntry>,
    /// Class names; the logits' width.
    pub classes: Vec<String>,
    /// Thumbnail side in pixels.
    pub thumb: usize,
    /// Precision of the layer files.
    pub precision: Precision,
    /// Datasets, the ID one first.
    pub datasets: Vec<DatasetEntry>,
    /// Set in the store of one shard of a sharded recording (`shiftscope merge` joins them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Replaces `path` with `bytes` atomically: a reader sees the old or the new file, never a
/// part; after return the new content is on disk.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(StoreError::io(&tmp))?;
    file.write_all(bytes).map_err(StoreError::io(&tmp))?;
    file.sync_all().map_err(StoreError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io(path))?;
    if let Some(dir) = path.parent() {
        // The rename itself is durable once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io(dir))?;
    }
    Ok(())
}

impl Manifest {
    /// Reads `manifest.json` from a store folder.
    pub fn load(root: &Path) -> Result<Manifest, StoreError> {
        let path = root.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(StoreError::io(&path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::mismatch(&path, format!("not a shiftscope manifest: {e}")))?;
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(StoreError::mismatch(
                &path,
                format!(
                    "store layout version {} (this shiftscope reads version {SCHEMA_VERSION})",
                    manifest.schema_version
                ),
            ));
        }
        Ok(manifest)
    }

    /// Writes `manifest.json` atomically.
    pub fn save(&self, root: &Path) -> Result<(), StoreError> {
        let path = root.join("manifest.json");
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Invalid(format!("serialising the manifest: {e}")))?;
        bytes.push(b'\n');
        write_atomically(&path, &bytes)
    }

    /// The dataset with `name`.
    pub fn dataset(&self, name: &str) -> Option<(usize, &DatasetEntry)> {
        self.datasets
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == name)
    }
}

/// A file-name-safe form of a name: `[A-Za-z0-9._=-]` kept, everything else `_`.
pub(crate) fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_');
    let s: String = s.chars().take(80).collect();
    if s.is_empty() { "x".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("colored-mnist/drift=0.5"), "colored-mnist_drift=0.5");
        assert_eq!(
            slug("/layer1/layer1.0/relu/Relu_output_0"),
            "layer1_layer1.0_relu_Relu_output_0"
        );
        assert_eq!(slug("///"), "x");
    }
}
