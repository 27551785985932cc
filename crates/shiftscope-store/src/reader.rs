//! Reading a store: every file memory-mapped after its header and size were checked against
//! the manifest, so opening parses nothing in bulk and a view touches only what it reads.

use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::npy::{self, Elem};
use crate::{Manifest, Precision, StoreError};

/// A memory-mapped `.npy` file and where its data starts.
#[derive(Debug)]
struct Mapped {
    map: Mmap,
    offset: usize,
}

impl Mapped {
    fn open(path: &Path, elem: Elem, shape: &[usize]) -> Result<Mapped, StoreError> {
        let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
        // SAFETY: the store's files are only written by shiftscope, which never shrinks them
        // (they are preallocated); a file truncated by someone else while mapped is the one
        // case memory mapping cannot defend against.
        let map = unsafe { Mmap::map(&file) }.map_err(StoreError::io(path))?;
        let offset = npy::check(path, &map, elem, shape)?;
        Ok(Mapped { map, offset })
    }

    fn bytes(&self) -> &[u8] {
        &self.map[self.offset..]
    }
}

#[derive(Debug)]
struct DatasetFiles {
    committed: usize,
    labels: Mapped,
    logits: Mapped,
    thumbs: Mapped,
    layers: Vec<Mapped>,
}

/// The values of one layer of one dataset: `rows` × `cols`, row-major.
#[derive(Clone, Copy, Debug)]
pub enum LayerMatrix<'a> {
    /// Single precision.
    F32 {
        /// Rows (images).
        rows: usize,
        /// Columns (neurons).
        cols: usize,
        /// Values.
        data: &'a [f32],
    },
    /// Half precision.
    F16 {
        /// Rows (images).
        rows: usize,
        /// Columns (neurons).
        cols: usize,
        /// Values.
        data: &'a [half::f16],
    },
}

impl LayerMatrix<'_> {
    /// Rows and columns.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            LayerMatrix::F32 { rows, cols, .. } | LayerMatrix::F16 { rows, cols, .. } => {
                (*rows, *cols)
            }
        }
    }

    /// One value as `f32`.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        match self {
            LayerMatrix::F32 { cols, data, .. } => data[row * cols + col],
            LayerMatrix::F16 { cols, data, .. } => data[row * cols + col].to_f32(),
        }
    }
}

/// A store open for reading.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    manifest: Manifest,
    datasets: Vec<DatasetFiles>,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Files whose checksum matched.
    pub ok: Vec<PathBuf>,
    /// Files whose checksum differs, with both digests.
    pub bad: Vec<(PathBuf, String, String)>,
    /// Datasets not complete (no checksums to check yet).
    pub incomplete: Vec<String>,
}

/// SHA-256 of a file, hex, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut file = std::fs::File::open(path).map_err(StoreError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(StoreError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes, hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Now, in seconds since the Unix epoch (a manifest's `created_unix`).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens a store: reads the manifest and maps every dataset file after checking its
    /// header and size against the manifest. A mismatch is an error naming the file.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let manifest = Manifest::load(root)?;
        let layer_elem = match manifest.precision {
            Precision::F32 => Elem::F32,
            Precision::F16 => Elem::F16,
        };
        let mut datasets = Vec::new();
        for entry in &manifest.datasets {
            let dir = root.join("datasets").join(&entry.id);
            let n = entry.len;
            let committed = crate::writer::read_progress(&dir)?;
            let layers = manifest
                .layers
                .iter()
                .map(|l| {
                    Mapped::open(
                        &dir.join("layers").join(format!("{}.npy", l.id)),
                        layer_elem,
                        &[n, l.neurons],
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            datasets.push(DatasetFiles {
                committed,
                labels: Mapped::open(&dir.join("labels.npy"), Elem::I32, &[n])?,
                logits: Mapped::open(
                    &dir.join("logits.npy"),
                    Elem::F32,
                    &[n, manifest.classes.len()],
                )?,
                thumbs: Mapped::open(
                    &dir.join("thumbs.npy"),
                    Elem::U8,
                    &[n, manifest.thumb, manifest.thumb, 3],
                )?,
                layers,
            });
        }
        Ok(Store {
            root: root.to_path_buf(),
            manifest,
            datasets,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn files(&self, dataset: usize) -> Result<&DatasetFiles, StoreError> {
        self.datasets.get(dataset).ok_or_else(|| {
            StoreError::Invalid(format!(
                "no dataset {dataset} ({} in the store)",
                self.datasets.len()
            ))
        })
    }

    /// Rows recorded so far (all of them when the dataset is complete).
    pub fn committed(&self, dataset: usize) -> Result<usize, StoreError> {
        Ok(self.files(dataset)?.committed)
    }

    /// Labels of a dataset.
    pub fn labels(&self, dataset: usize) -> Result<&[i32], StoreError> {
        cast(self.files(dataset)?.labels.bytes())
    }

    /// Logits `[N, K]` of a dataset.
    pub fn logits(&self, dataset: usize) -> Result<LayerMatrix<'_>, StoreError> {
        let data = cast(self.files(dataset)?.logits.bytes())?;
        Ok(LayerMatrix::F32 {
            rows: self.manifest.datasets[dataset].len,
            cols: self.manifest.classes.len(),
            data,
        })
    }

    /// Thumbnails `[N, T, T, 3]` of a dataset, flat.
    pub fn thumbs(&self, dataset: usize) -> Result<&[u8], StoreError> {
        Ok(self.files(dataset)?.thumbs.bytes())
    }

    /// Layer `layer` (index into the manifest's layers) of a dataset.
    pub fn layer(&self, dataset: usize, layer: usize) -> Result<LayerMatrix<'_>, StoreError> {
        let files = self.files(dataset)?;
        let mapped = files.layers.get(layer).ok_or_else(|| {
            StoreError::Invalid(format!(
                "no layer {layer} ({} in the store)",
                files.layers.len()
            ))
        })?;
        let (rows, cols) = (
            self.manifest.datasets[dataset].len,
            self.manifest.layers[layer].neurons,
        );
        Ok(match self.manifest.precision {
            Precision::F32 => LayerMatrix::F32 {
                rows,
                cols,
                data: cast(mapped.bytes())?,
            },
            Precision::F16 => LayerMatrix::F16 {
                rows,
                cols,
                data: cast(mapped.bytes())?,
            },
        })
    }

    /// Recomputes the checksum of every file of every complete dataset.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for entry in &self.manifest.datasets {
            if !entry.complete {
                report.incomplete.push(entry.name.clone());
                continue;
            }
            let dir = self.root.join("datasets").join(&entry.id);
            for (file, want) in &entry.checksums {
                let path = dir.join(file);
                let got = sha256_file(&path)?;
                if &got == want {
                    report.ok.push(path);
                } else {
                    report.bad.push((path, want.clone(), got));
                }
            }
        }
        Ok(report)
    }
}

fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&[T], StoreError> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| StoreError::Invalid(format!("mapped data cannot be read as values: {e:?}")))
}
