//! The cache: `<store>/analysis/<manifest sha256>/<layer id>.bin`, one file per layer written
//! atomically (temp file, rename). A file whose key (format, manifest hash, parameters,
//! committed rows) or shape disagrees, or that cannot be read, is ignored and recomputed;
//! deleting `analysis/` is always safe.
//!
//! Layout: `SSANA1\n`, a little-endian `u64` length and that many bytes of JSON ([`Meta`]),
//! then arrays in a fixed order, each a `u64` element count and its little-endian elements.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layer::{
    AnalysisParams, ClassMeans, DatasetLayer, LayerScores, NonFinite, ShiftScores, TopK, is_silent,
};
use crate::scores::TOP_CLASSES;

const MAGIC: &[u8] = b"SSANA1\n";
pub(crate) const FORMAT: u32 = 1;

/// What a cache file must match to be used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Key {
    pub(crate) format: u32,
    pub(crate) manifest_sha256: String,
    pub(crate) layer_id: String,
    pub(crate) params: AnalysisParams,
    pub(crate) reference: usize,
    pub(crate) normaliser: usize,
    /// Committed rows per dataset (an incomplete dataset grows without its manifest changing).
    pub(crate) rows: Vec<usize>,
    pub(crate) neurons: usize,
    pub(crate) classes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    key: Key,
    layer: usize,
    non_finite: Vec<NonFinite>,
    unlabelled: Vec<u64>,
    shifts: Vec<usize>,
}

/// Where a layer's cache file lives.
pub(crate) fn path(store: &Path, manifest_sha256: &str, layer_id: &str) -> PathBuf {
    store
        .join("analysis")
        .join(manifest_sha256)
        .join(format!("{layer_id}.bin"))
}

fn put_f32(out: &mut Vec<u8>, values: &[f32]) {
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_u32(out: &mut Vec<u8>, values: &[u32]) {
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Writes a layer's numbers atomically.
pub(crate) fn save(file: &Path, key: &Key, scores: &LayerScores) -> std::io::Result<()> {
    let meta = Meta {
        key: key.clone(),
        layer: scores.layer,
        non_finite: scores
            .datasets
            .iter()
            .map(|d| d.non_finite.clone())
            .collect(),
        unlabelled: scores.datasets.iter().map(|d| d.unlabelled).collect(),
        shifts: scores.shifts.iter().map(|s| s.dataset).collect(),
    };
    let json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    put_f32(&mut out, &scores.normaliser_max);
    for d in &scores.datasets {
        put_f32(&mut out, &d.max);
        put_f32(&mut out, &d.class_means.means);
        put_u32(&mut out, &d.class_means.counts);
        put_u32(&mut out, &d.top_k.len);
        put_u32(&mut out, &d.top_k.images);
        put_f32(&mut out, &d.top_k.values);
        put_u32(&mut out, &d.non_finite.per_neuron);
        put_f32(&mut out, &d.rafegas);
        put_f32(&mut out, &d.morcos);
        put_u32(&mut out, &d.top_classes);
    }
    for s in &scores.shifts {
        put_f32(&mut out, &s.spurious);
        put_f32(&mut out, &s.novelty);
        put_f32(&mut out, &s.shift);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// An array that must have exactly `len` elements.
    fn words(&mut self, len: usize) -> Option<&[u8]> {
        if usize::try_from(self.u64()?).ok()? != len {
            return None;
        }
        self.take(len.checked_mul(4)?)
    }

    fn f32s(&mut self, len: usize) -> Option<Vec<f32>> {
        Some(
            self.words(len)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    fn u32s(&mut self, len: usize) -> Option<Vec<u32>> {
        Some(
            self.words(len)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

/// Reads a layer's numbers if the file exists, is whole and matches `key`.
pub(crate) fn load(file: &Path, key: &Key) -> Option<LayerScores> {
    let bytes = std::fs::read(file).ok()?;
    let mut r = Reader {
        bytes: bytes.strip_prefix(MAGIC)?,
    };
    let json_len = usize::try_from(r.u64()?).ok()?;
    let meta: Meta = serde_json::from_slice(r.take(json_len)?).ok()?;
    if &meta.key != key
        || meta.non_finite.len() != key.rows.len()
        || meta.unlabelled.len() != key.rows.len()
    {
        return None;
    }
    let (c, k, classes) = (key.neurons, key.params.top_k, key.classes);
    let normaliser_max = r.f32s(c)?;
    let mut datasets = Vec::new();
    for (d, (&rows, mut non_finite)) in key.rows.iter().zip(meta.non_finite).enumerate() {
        let max = r.f32s(c)?;
        let means = r.f32s(classes * c)?;
        let counts = r.u32s(classes)?;
        let top_len = r.u32s(c)?;
        if top_len.iter().any(|&l| l as usize > k) {
            return None;
        }
        let top_images = r.u32s(c * k)?;
        let top_values = r.f32s(c * k)?;
        non_finite.per_neuron = r.u32s(c)?;
        datasets.push(DatasetLayer {
            dataset: d,
            rows,
            unlabelled: meta.unlabelled[d],
            max,
            class_means: ClassMeans {
                classes,
                neurons: c,
                means,
                counts,
            },
            top_k: TopK {
                k,
                len: top_len,
                images: top_images,
                values: top_values,
            },
            non_finite,
            rafegas: r.f32s(c)?,
            morcos: r.f32s(c)?,
            top_classes: r.u32s(c * TOP_CLASSES)?,
        });
    }
    let mut shifts = Vec::new();
    for &dataset in &meta.shifts {
        shifts.push(ShiftScores {
            dataset,
            spurious: r.f32s(c)?,
            novelty: r.f32s(c)?,
            shift: r.f32s(c)?,
        });
    }
    if !r.bytes.is_empty() {
        return None;
    }
    let silent = normaliser_max.iter().map(|&m| is_silent(m)).collect();
    Some(LayerScores {
        layer: meta.layer,
        neurons: c,
        classes,
        reference: key.reference,
        normaliser: key.normaliser,
        normaliser_max,
        silent,
        datasets,
        shifts,
    })
}
