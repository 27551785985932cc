//! Writing a store: files preallocated at their final size, rows written in place, progress
//! committed atomically after the data is flushed, checksums when a dataset completes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{slug, write_atomically};
use crate::npy::{self, Elem};
use crate::{DatasetEntry, Manifest, Part, Precision, Role, StoreError};

#[derive(Debug, Deserialize, Serialize)]
struct Progress {
    rows: usize,
}

/// A store open for recording.
#[derive(Debug)]
pub struct StoreWriter {
    root: PathBuf,
    manifest: Manifest,
}

/// One file of a dataset: where its data starts and how wide a row is in bytes.
#[derive(Debug)]
struct Column {
    path: PathBuf,
    file: File,
    offset: u64,
    row_bytes: usize,
}

/// A dataset being recorded.
#[derive(Debug)]
pub struct DatasetWriter {
    index: usize,
    dir: PathBuf,
    len: usize,
    committed: usize,
    precision: Precision,
    labels: Column,
    logits: Column,
    thumbs: Column,
    layers: Vec<Column>,
}

impl StoreWriter {
    /// Creates a store in `root` (absent or empty) with `manifest`, which must list no datasets
    /// yet. Layer ids left empty are assigned (`L000_<name>`).
    pub fn create(root: &Path, mut manifest: Manifest) -> Result<StoreWriter, StoreError> {
        if root.join("manifest.json").exists() {
            return Err(StoreError::Invalid(format!(
                "{} already holds a store; add datasets to it instead of creating it again",
                root.display()
            )));
        }
        if !manifest.datasets.is_empty() {
            return Err(StoreError::Invalid(
                "a new store starts without datasets".to_owned(),
            ));
        }
        for (i, layer) in manifest.layers.iter_mut().enumerate() {
            if layer.id.is_empty() {
                layer.id = format!("L{i:03}_{}", slug(&layer.name));
            }
        }
        std::fs::create_dir_all(root.join("datasets")).map_err(StoreError::io(root))?;
        manifest.save(root)?;
        Ok(StoreWriter {
            root: root.to_path_buf(),
            manifest,
        })
    }

    /// Opens an existing store to add datasets or resume one.
    pub fn open(root: &Path) -> Result<StoreWriter, StoreError> {
        Ok(StoreWriter {
            manifest: Manifest::load(root)?,
            root: root.to_path_buf(),
        })
    }

    /// The manifest as it stands.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Starts recording dataset `name` of `len` rows, or resumes it from its committed rows
    /// when it was started before. A complete dataset is an error (nothing to do).
    pub fn dataset(
        &mut self,
        name: &str,
        plugin: &str,
        params: BTreeMap<String, String>,
        role: Role,
        len: usize,
    ) -> Result<DatasetWriter, StoreError> {
        self.dataset_part(name, plugin, params, role, len, None)
    }

    /// [`StoreWriter::dataset`] for a shard store: `len` rows from `part.first` of the whole.
    pub fn dataset_part(
        &mut self,
        name: &str,
        plugin: &str,
        params: BTreeMap<String, String>,
        role: Role,
        len: usize,
        part: Option<Part>,
    ) -> Result<DatasetWriter, StoreError> {
        let index = match self.manifest.dataset(name) {
            Some((i, entry)) => {
                if entry.complete {
                    return Err(StoreError::Invalid(format!(
                        "dataset '{name}' is already complete"
                    )));
                }
                if entry.len != len || entry.plugin != plugin || entry.part != part {
                    return Err(StoreError::Invalid(format!(
                        "dataset '{name}' was started with {} rows from '{}', now {len} rows from '{plugin}'",
                        entry.len, entry.plugin
                    )));
                }
                i
            }
            None => {
                let mut id = slug(name);
                let base = id.clone();
                let mut n = 1;
                while self.manifest.datasets.iter().any(|d| d.id == id) {
                    n += 1;
                    id = format!("{base}-{n}");
                }
                self.manifest.datasets.push(DatasetEntry {
                    id,
                    name: name.to_owned(),
                    plugin: plugin.to_owned(),
                    params,
                    role,
                    len,
                    complete: false,
                    checksums: BTreeMap::new(),
                    part,
                });
                self.manifest.datasets.len() - 1
            }
        };
        let entry = self.manifest.datasets[index].clone();
        let dir = self.root.join("datasets").join(&entry.id);
        let fresh = !dir.join("progress.json").exists();
        let writer = self.open_files(index, &dir, fresh)?;
        if fresh {
            // Files exist at full size before the manifest names the dataset as started.
            write_progress(&dir, 0)?;
            self.manifest.save(&self.root)?;
        }
        Ok(writer)
    }

    fn open_files(
        &self,
        index: usize,
        dir: &Path,
        fresh: bool,
    ) -> Result<DatasetWriter, StoreError> {
        let m = &self.manifest;
        let len = m.datasets[index].len;
        let layer_elem = match m.precision {
            Precision::F32 => Elem::F32,
            Precision::F16 => Elem::F16,
        };
        std::fs::create_dir_all(dir.join("layers")).map_err(StoreError::io(dir))?;
        let column = |path: PathBuf, elem: Elem, row: &[usize]| -> Result<Column, StoreError> {
            let mut shape = vec![len];
            shape.extend_from_slice(row);
            let header = npy::header(elem, &shape);
            let row_bytes = row.iter().product::<usize>() * elem.size();
            let total = header.len() as u64 + (len * row_bytes) as u64;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(fresh)
                .truncate(fresh)
                .open(&path)
                .map_err(StoreError::io(&path))?;
            if fresh {
                file.write_all_at(&header, 0)
                    .map_err(StoreError::io(&path))?;
                file.set_len(total).map_err(StoreError::io(&path))?;
            } else {
                let mut existing = vec![0u8; header.len()];
                file.read_exact_at(&mut existing, 0)
                    .map_err(StoreError::io(&path))?;
                let size = file.metadata().map_err(StoreError::io(&path))?.len();
                if existing != header || size != total {
                    return Err(StoreError::mismatch(
                        &path,
                        "header or size differ from what the manifest implies; cannot resume",
                    ));
                }
            }
            Ok(Column {
                path,
                file,
                offset: header.len() as u64,
                row_bytes,
            })
        };
        let layers = m
            .layers
            .iter()
            .map(|l| {
                column(
                    dir.join("layers").join(format!("{}.npy", l.id)),
                    layer_elem,
                    &[l.neurons],
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let committed = if fresh { 0 } else { read_progress(dir)? };
        if committed > len {
            return Err(StoreError::mismatch(
                dir.join("progress.json"),
                format!("{committed} rows committed of {len}"),
            ));
        }
        Ok(DatasetWriter {
            index,
            dir: dir.to_path_buf(),
            len,
            committed,
            precision: m.precision,
            labels: column(dir.join("labels.npy"), Elem::I32, &[])?,
            logits: column(dir.join("logits.npy"), Elem::F32, &[m.classes.len()])?,
            thumbs: column(dir.join("thumbs.npy"), Elem::U8, &[m.thumb, m.thumb, 3])?,
            layers,
        })
    }
}

fn write_progress(dir: &Path, rows: usize) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&Progress { rows })
        .map_err(|e| StoreError::Invalid(format!("serialising progress: {e}")))?;
    write_atomically(&dir.join("progress.json"), &bytes)
}

pub(crate) fn read_progress(dir: &Path) -> Result<usize, StoreError> {
    let path = dir.join("progress.json");
    let bytes = std::fs::read(&path).map_err(StoreError::io(&path))?;
    let progress: Progress = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::mismatch(&path, format!("unreadable progress: {e}")))?;
    Ok(progress.rows)
}

impl Column {
    fn write(&self, start: usize, bytes: &[u8]) -> Result<(), StoreError> {
        let at = self.offset + (start * self.row_bytes) as u64;
        self.file
            .write_all_at(bytes, at)
            .map_err(StoreError::io(&self.path))
    }
}

impl DatasetWriter {
    /// Rows committed so far: where recording continues.
    pub fn committed(&self) -> usize {
        self.committed
    }

    /// Total rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the dataset has no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes rows `start..start + n` in place (not yet committed): labels `[n]`, logits
    /// `[n, K]`, thumbnails `[n, T, T, 3]`, and per layer `[n, C]` (converted to `f16` when
    /// the store is half precision).
    pub fn write_rows(
        &mut self,
        start: usize,
        labels: &[i32],
        logits: &[f32],
        thumbs: &[u8],
        layers: &[&[f32]],
    ) -> Result<(), StoreError> {
        let n = labels.len();
        let bad = |what: &str, got: usize, want: usize| {
            StoreError::Invalid(format!(
                "{what}: {got} bytes for {n} rows where {want} are needed"
            ))
        };
        if start + n > self.len {
            return Err(StoreError::Invalid(format!(
                "rows {start}..{} are past the end ({} rows)",
                start + n,
                self.len
            )));
        }
        if layers.len() != self.layers.len() {
            return Err(StoreError::Invalid(format!(
                "{} layer blocks for {} layers",
                layers.len(),
                self.layers.len()
            )));
        }
        let logits_bytes: &[u8] = bytemuck::cast_slice(logits);
        if logits_bytes.len() != n * self.logits.row_bytes {
            return Err(bad("logits", logits_bytes.len(), n * self.logits.row_bytes));
        }
        if thumbs.len() != n * self.thumbs.row_bytes {
            return Err(bad("thumbnails", thumbs.len(), n * self.thumbs.row_bytes));
        }
        self.labels.write(start, bytemuck::cast_slice(labels))?;
        self.logits.write(start, logits_bytes)?;
        self.thumbs.write(start, thumbs)?;
        for (column, values) in self.layers.iter().zip(layers) {
            let converted: Vec<half::f16>;
            let bytes: &[u8] = match self.precision {
                Precision::F32 => bytemuck::cast_slice(values),
                Precision::F16 => {
                    converted = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                    bytemuck::cast_slice(&converted)
                }
            };
            if bytes.len() != n * column.row_bytes {
                return Err(bad(
                    &column.path.display().to_string(),
                    bytes.len(),
                    n * column.row_bytes,
                ));
            }
            column.write(start, bytes)?;
        }
        Ok(())
    }

    /// Declares the first `rows` rows recorded: flushes every file to disk, then replaces
    /// `progress.json` atomically. A crash at any point leaves a store that resumes from
    /// the last commit.
    pub fn commit(&mut self, rows: usize) -> Result<(), StoreError> {
        if rows > self.len || rows < self.committed {
            return Err(StoreError::Invalid(format!(
                "cannot commit {rows} rows (committed {}, total {})",
                self.committed, self.len
            )));
        }
        for column in [&self.labels, &self.logits, &self.thumbs]
            .into_iter()
            .chain(&self.layers)
        {
            column
                .file
                .sync_data()
                .map_err(StoreError::io(&column.path))?;
        }
        write_progress(&self.dir, rows)?;
        self.committed = rows;
        Ok(())
    }

    /// Completes the dataset once every row is committed: checksums every file and marks it
    /// complete in the manifest.
    pub fn finish(self, store: &mut StoreWriter) -> Result<(), StoreError> {
        if self.committed != self.len {
            return Err(StoreError::Invalid(format!(
                "only {} of {} rows are committed",
                self.committed, self.len
            )));
        }
        let mut checksums = BTreeMap::new();
        for column in [&self.labels, &self.logits, &self.thumbs]
            .into_iter()
            .chain(&self.layers)
        {
            let relative = column.path.strip_prefix(&self.dir).map_or_else(
                |_| column.path.display().to_string(),
                |p| p.display().to_string(),
            );
            checksums.insert(relative, crate::reader::sha256_file(&column.path)?);
        }
        let entry = &mut store.manifest.datasets[self.index];
        entry.checksums = checksums;
        entry.complete = true;
        store.manifest.save(&store.root)
    }
}
