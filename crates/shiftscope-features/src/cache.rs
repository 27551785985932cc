//! A layer's features on one dataset, on disk next to the analysis cache:
//! `<store>/analysis/<manifest sha256>/features/<layer id>.<dataset id>.top<N>.bin`, written
//! atomically (temp file, rename). A new manifest (a re-recorded store) lands in a new folder;
//! a file whose committed row count differs from the store's, or that cannot be read, is
//! ignored. Deleting `analysis/` is always safe.
//!
//! Layout: `SSFEAT1\n`, a little-endian `u64` length and that many bytes of JSON (everything
//! but the pixels), then the Neuron Features as 8-bit RGB, `neurons × height × width × 3`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shiftscope_sdk::ReceptiveField;
use shiftscope_store::Store;

use crate::{FeatureError, Rgb};

const MAGIC: &[u8] = b"SSFEAT1\n";

/// A receptive field as the cache writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldRecord {
    /// Size, height then width.
    pub size: [usize; 2],
    /// Jump, height then width.
    pub jump: [usize; 2],
    /// Offset, height then width.
    pub offset: [i64; 2],
}

impl From<ReceptiveField> for FieldRecord {
    fn from(f: ReceptiveField) -> FieldRecord {
        FieldRecord {
            size: f.size,
            jump: f.jump,
            offset: f.offset,
        }
    }
}

/// The colour selectivity and Neuron Features of every neuron of one layer on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerFeatures {
    /// The layer's id in the store (its file stem).
    pub layer_id: String,
    /// The layer's tensor name.
    pub layer: String,
    /// The dataset's id in the store.
    pub dataset_id: String,
    /// The dataset's index in the store.
    pub dataset: usize,
    /// N: top images per neuron asked for.
    pub top: usize,
    /// The dataset's committed rows when computed.
    pub rows: usize,
    /// Per neuron: `1 − Σ a'_j / Σ a_j`; `None` when undefined (no positive response).
    pub csi: Vec<Option<f32>>,
    /// Per neuron: `mean_j (1 − clamp(a'_j / a_j, 0, 1))`; `None` when undefined.
    pub csi_clipped: Vec<Option<f32>>,
    /// Per neuron: how many top images it had (≤ N; fewer when it is silent on the rest).
    pub images: Vec<u32>,
    /// The receptive field the crops used; `None`: whole images.
    pub receptive_field: Option<FieldRecord>,
    /// Neuron Feature height and width (the crop, shrunk to at most 64 pixels a side).
    pub nf_size: [usize; 2],
    /// Per neuron: whether it has a Neuron Feature.
    pub has_nf: Vec<bool>,
    /// Lines for people (whole-image crops and why, shrinking).
    pub notes: Vec<String>,
    /// The Neuron Features, 8-bit RGB, `neurons × height × width × 3` (black where absent).
    #[serde(skip)]
    pub nf: Vec<u8>,
}

/// The features folder of the store at `root` whose manifest hashes to `manifest_sha256`.
pub fn dir(root: &Path, manifest_sha256: &str) -> PathBuf {
    root.join("analysis").join(manifest_sha256).join("features")
}

fn manifest_sha(root: &Path) -> Result<String, FeatureError> {
    shiftscope_store::sha256_file(&root.join("manifest.json")).map_err(|e| FeatureError::Store {
        store: root.to_path_buf(),
        problem: e.to_string(),
    })
}

fn file_name(layer_id: &str, dataset_id: &str, top: usize) -> String {
    format!("{layer_id}.{dataset_id}.top{top}.bin")
}

impl LayerFeatures {
    /// Neurons.
    pub fn neurons(&self) -> usize {
        self.csi.len()
    }

    /// `neuron`'s Neuron Feature as 8-bit RGB (`nf_size`), when it has one.
    pub fn feature_bytes(&self, neuron: usize) -> Option<&[u8]> {
        let plane = self.nf_size[0] * self.nf_size[1] * 3;
        if !self.has_nf.get(neuron).copied().unwrap_or(false) {
            return None;
        }
        self.nf.get(neuron * plane..(neuron + 1) * plane)
    }

    /// `neuron`'s Neuron Feature, when it has one.
    pub fn feature(&self, neuron: usize) -> Option<Rgb> {
        self.feature_bytes(neuron)
            .map(|b| Rgb::from_bytes(self.nf_size[1], self.nf_size[0], b))
    }

    /// Every Neuron Feature in one 8-bit RGB picture: a grid of `columns` cells in neuron
    /// order, each feature scaled up `scale` times (nearest), 2 dark pixels between cells,
    /// neurons without a feature left dark. Returns width, height and pixels.
    pub fn grid(&self, columns: usize, scale: usize) -> (usize, usize, Vec<u8>) {
        const GAP: usize = 2;
        const DARK: [u8; 3] = [24, 24, 28];
        let (columns, scale) = (columns.max(1), scale.max(1));
        let [fh, fw] = self.nf_size;
        let (cw, ch) = (fw * scale, fh * scale);
        let rows = self.neurons().div_ceil(columns);
        let width = columns * (cw + GAP) + GAP;
        let height = rows * (ch + GAP) + GAP;
        let mut pixels = DARK.repeat(width * height);
        for n in 0..self.neurons() {
            let Some(bytes) = self.feature_bytes(n) else {
                continue;
            };
            let (x0, y0) = (
                GAP + (n % columns) * (cw + GAP),
                GAP + (n / columns) * (ch + GAP),
            );
            for y in 0..ch {
                for x in 0..cw {
                    let src = ((y / scale) * fw + x / scale) * 3;
                    let dst = ((y0 + y) * width + x0 + x) * 3;
                    pixels[dst..dst + 3].copy_from_slice(&bytes[src..src + 3]);
                }
            }
        }
        (width, height, pixels)
    }

    /// Where this lands in the store at `root`.
    pub fn path(&self, root: &Path) -> Result<PathBuf, FeatureError> {
        Ok(dir(root, &manifest_sha(root)?).join(file_name(
            &self.layer_id,
            &self.dataset_id,
            self.top,
        )))
    }

    /// Writes the file (atomically) under the store at `root`; returns its path.
    pub fn save(&self, root: &Path) -> Result<PathBuf, FeatureError> {
        let path = self.path(root)?;
        let fail = |problem: String| FeatureError::Cache {
            path: path.clone(),
            problem,
        };
        let plane = self.nf_size[0] * self.nf_size[1] * 3;
        if self.nf.len() != plane * self.neurons() || self.has_nf.len() != self.neurons() {
            return Err(fail(format!(
                "{} Neuron Feature bytes for {} neurons of {:?}",
                self.nf.len(),
                self.neurons(),
                self.nf_size
            )));
        }
        let json = serde_json::to_vec(self).map_err(|e| fail(e.to_string()))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + json.len() + self.nf.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&self.nf);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e.to_string()));
        }
        Ok(path)
    }

    /// Reads one file; `Err` names what is wrong with it.
    pub fn read(path: &Path) -> Result<LayerFeatures, FeatureError> {
        let fail = |problem: String| FeatureError::Cache {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| fail("not a shiftscope features file".into()))?;
        let (len, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| fail("truncated header".into()))?;
        let len = usize::try_from(u64::from_le_bytes(*len))
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| fail("truncated header".into()))?;
        let mut features: LayerFeatures =
            serde_json::from_slice(&rest[..len]).map_err(|e| fail(e.to_string()))?;
        let nf = &rest[len..];
        let n = features.neurons();
        let plane = features.nf_size[0] * features.nf_size[1] * 3;
        if nf.len() != plane * n
            || [features.csi_clipped.len(), features.images.len()]
                .iter()
                .chain([&features.has_nf.len()])
                .any(|&l| l != n)
        {
            return Err(fail(format!(
                "{} bytes of Neuron Features and per-neuron lists that disagree with {n} neurons",
                nf.len()
            )));
        }
        features.nf = nf.to_vec();
        Ok(features)
    }

    /// The cached features of layer `layer` on dataset `dataset` with N = `top`, when a
    /// readable file matches the store as it is now.
    pub fn load(
        store: &Store,
        root: &Path,
        layer: usize,
        dataset: usize,
        top: usize,
    ) -> Option<LayerFeatures> {
        let manifest = store.manifest();
        let (layer_entry, dataset_entry) =
            (manifest.layers.get(layer)?, manifest.datasets.get(dataset)?);
        let path = dir(root, &manifest_sha(root).ok()?).join(file_name(
            &layer_entry.id,
            &dataset_entry.id,
            top,
        ));
        let features = LayerFeatures::read(&path).ok()?;
        let fresh = store.committed(dataset).ok() == Some(features.rows)
            && features.neurons() == layer_entry.neurons;
        fresh.then_some(features)
    }

    /// Every cached computation for layer `layer` that matches the store as it is now (any
    /// dataset, any N), ordered by dataset then N.
    pub fn cached(store: &Store, root: &Path, layer: usize) -> Vec<LayerFeatures> {
        let manifest = store.manifest();
        let (Some(entry), Ok(sha)) = (manifest.layers.get(layer), manifest_sha(root)) else {
            return Vec::new();
        };
        let Ok(listing) = std::fs::read_dir(dir(root, &sha)) else {
            return Vec::new();
        };
        let prefix = format!("{}.", entry.id);
        let mut found: Vec<LayerFeatures> = listing
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".bin")
            })
            .filter_map(|e| LayerFeatures::read(&e.path()).ok())
            .filter(|f| {
                f.layer_id == entry.id
                    && f.neurons() == entry.neurons
                    && manifest
                        .datasets
                        .get(f.dataset)
                        .is_some_and(|d| d.id == f.dataset_id)
                    && store.committed(f.dataset).ok() == Some(f.rows)
            })
            .collect();
        found.sort_by_key(|f| (f.dataset, f.top));
        found
    }
}
