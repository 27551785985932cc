//! `cifar10`: CIFAR-10 and its published shifts as a dataset-shift plugin. It owns the
//! readers of their on-disk layouts, the procedural stand-in used when none is there, and
//! the names under which they are offered.
//!
//! Names (each listed in the catalog only when its files exist, except the first two):
//! - `cifar10/test`, `cifar10/train`: the CIFAR-10 binary version
//!   (`cifar-10-batches-bin/test_batch.bin`, `data_batch_1..5.bin`, 3,073-byte records,
//!   class names from `batches.meta.txt`), or, when no CIFAR-10 binary files exist (or
//!   `procedural: true`), procedural 32×32 shapes and textures with their own ten class
//!   names, described as such in every catalog entry;
//! - `cifar10-c/<corruption>/<severity>`: CIFAR-10-C (`CIFAR-10-C/<corruption>.npy`,
//!   (N, 32, 32, 3) uint8, and `labels.npy`), severity s in 1..5 being rows
//!   (s−1)·N/5 .. s·N/5;
//! - `cifar10.1`: CIFAR-10.1 v6 (`cifar10.1_v6_data.npy`, `cifar10.1_v6_labels.npy`);
//! - `cifar10.2`, `cifar10.2/train`: CIFAR-10.2 (`cifar102_test.npz`, `cifar102_train.npz`,
//!   arrays `images` and `labels`).
//!
//! Any of them corrupted on the fly: `<name>+<corruption>/<severity>`, e.g.
//! `cifar10/test+fog/3`, through `shiftscope-corrupt` (the 18 Hendrycks & Dietterich
//! families at severities 1–5, CIFAR-10-C parameters at this size).
//!
//! Config (RON, all optional): `(data: Some("/data"), seed: 0, train_len: 50000,
//! test_len: 10000, procedural: false)`; the lengths and seed are those of the procedural
//! set. Files are looked for in `data`, else `$SHIFTSCOPE_DATA`, else
//! `~/.cache/shiftscope/data`, directly and in the folders the official archives extract to
//! (`cifar-10-batches-bin`, `CIFAR-10-C`, `CIFAR-10.1` or `CIFAR-10.1/datasets`,
//! `cifar-10.2`). Headers and sizes are checked when the plugin is created; pixels are read
//! one image at a time when asked for, so the 150 MB CIFAR-10-C files are never loaded
//! whole. A broken file is one error naming the file, what was expected and what was found.

mod binary;
mod npy;
mod shapes;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use shiftscope_sdk::{
    Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, PluginError, Sample,
};

use crate::binary::{BinarySet, Records};
use crate::npy::{Kind, NpyArray, NpyRows, bad};
use crate::shapes::SIDE;

/// The plugin's name and the prefix of its ID dataset names.
pub const NAME: &str = "cifar10";
/// The class names of the procedural set, by label.
pub const PROCEDURAL_CLASSES: [&str; 10] = shapes::CLASSES;
/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub const CIFAR_CLASSES: [&str; 10] = binary::CIFAR_CLASSES;
/// Severities of CIFAR-10-C.
pub const SEVERITIES: usize = 5;

const C_LABELS: &str = "labels.npy";
const V1_DATA: &str = "cifar10.1_v6_data.npy";
const V1_LABELS: &str = "cifar10.1_v6_labels.npy";
const V2_FILES: [(&str, &str); 2] = [
    ("test", "cifar102_test.npz"),
    ("train", "cifar102_train.npz"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    data: Option<PathBuf>,
    seed: u64,
    train_len: usize,
    test_len: usize,
    procedural: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data: None,
            seed: 0,
            train_len: 50_000,
            test_len: 10_000,
            procedural: false,
        }
    }
}

/// Reads `buf.len()` bytes at `offset` without moving a shared cursor, so that several
/// threads can read one file.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// The data folder: config, else `$SHIFTSCOPE_DATA`, else `~/.cache/shiftscope/data`.
fn data_dir(config: &Config) -> Option<PathBuf> {
    config
        .data
        .clone()
        .or_else(|| std::env::var_os("SHIFTSCOPE_DATA").map(PathBuf::from))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shiftscope/data"))
        })
}

/// CIFAR-10-C: the labels and each corruption's images, all of the same length.
#[derive(Debug)]
struct CorruptionSet {
    labels: Arc<Vec<u8>>,
    corruptions: Vec<(String, NpyArray)>,
}

/// Whether a `.npy` in a CIFAR-10-C folder is a corruption's images.
fn is_corruption_file(name: &str) -> bool {
    name.ends_with(".npy") && name != C_LABELS && !name.starts_with("cifar10.1")
}

/// CIFAR-10-C in `dir`: `None` when there is no `labels.npy` (and, for a folder named
/// `CIFAR-10-C`, no corruption file either).
fn find_corruptions(dir: &Path) -> Result<Option<CorruptionSet>, PluginError> {
    let labels_path = dir.join(C_LABELS);
    let named_c = dir.file_name().is_some_and(|n| n == "CIFAR-10-C");
    if !dir.is_dir() || (!labels_path.is_file() && !named_c) {
        return Ok(None);
    }
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_corruption_file(n))
            .collect(),
        Err(e) => return Err(bad(dir, format!("cannot list the folder: {e}"))),
    };
    names.sort_unstable();
    if !labels_path.is_file() {
        if names.is_empty() {
            return Ok(None);
        }
        return Err(bad(
            &labels_path,
            format!(
                "missing: the CIFAR-10-C folder holds {} but no labels",
                names.join(", ")
            ),
        ));
    }
    let labels_array = npy::open_npy(&labels_path, Kind::Labels)?;
    let rows = labels_array.rows;
    if rows == 0 || rows % SEVERITIES != 0 {
        return Err(bad(
            &labels_path,
            format!(
                "{rows} labels is not a positive multiple of 5: CIFAR-10-C stacks five \
                 severities of the same test images (50000 = 5 x 10000)"
            ),
        ));
    }
    let labels = labels_array.labels()?;
    if names.is_empty() {
        return Err(bad(
            dir,
            "a CIFAR-10-C labels.npy but no <corruption>.npy beside it",
        ));
    }
    let mut corruptions = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let array = npy::open_npy(&path, Kind::Images)?;
        if array.rows != rows {
            return Err(bad(
                &path,
                format!(
                    "{} images but {} holds {rows} labels: the arrays differ in length",
                    array.rows,
                    labels_path.display()
                ),
            ));
        }
        let corruption = name.trim_end_matches(".npy").to_owned();
        corruptions.push((corruption, array));
    }
    Ok(Some(CorruptionSet {
        labels: Arc::new(labels),
        corruptions,
    }))
}

/// Checked images and their labels.
type Labelled = (NpyArray, Arc<Vec<u8>>);

/// CIFAR-10.1 v6 in `dir`: the checked images and the labels.
fn find_v1(dir: &Path) -> Result<Option<Labelled>, PluginError> {
    let (data, labels) = (dir.join(V1_DATA), dir.join(V1_LABELS));
    match (data.is_file(), labels.is_file()) {
        (false, false) => Ok(None),
        (true, false) | (false, true) => {
            let (missing, present) = if data.is_file() {
                (&labels, &data)
            } else {
                (&data, &labels)
            };
            Err(bad(
                missing,
                format!("missing, though {} is there", present.display()),
            ))
        }
        (true, true) => {
            let images = npy::open_npy(&data, Kind::Images)?;
            let labels_array = npy::open_npy(&labels, Kind::Labels)?;
            if labels_array.rows != images.rows {
                return Err(bad(
                    &labels,
                    format!(
                        "{} labels but {} holds {} images: the arrays differ in length",
                        labels_array.rows,
                        data.display(),
                        images.rows
                    ),
                ));
            }
            Ok(Some((images, Arc::new(labels_array.labels()?))))
        }
    }
}

/// How a catalog entry is opened.
#[derive(Clone, Debug)]
enum Base {
    Procedural { seed: u64, len: usize },
    Binary { train: bool },
    Corruption { index: usize, severity: usize },
    V1,
    V2 { path: PathBuf },
}

/// Where the pixels of an open split come from.
#[derive(Debug)]
enum Pixels {
    Records(Records),
    Npy { rows: NpyRows, first: usize },
    Memory(Vec<u8>),
    Procedural { seed: u64 },
}

/// An open split: pixels, labels, classes.
#[derive(Debug)]
struct Split {
    pixels: Pixels,
    /// All labels of the underlying file and the first one of this split; `None` for the
    /// procedural set, whose labels follow from the index.
    labels: Option<(Arc<Vec<u8>>, usize)>,
    len: usize,
    classes: Vec<String>,
}

impl Split {
    fn sample(&self, index: usize) -> Result<Sample, PluginError> {
        if index >= self.len {
            return Err(PluginError::out_of_range(format!(
                "index {index} is past the end ({} images)",
                self.len
            )));
        }
        let (pixels, label) = match &self.pixels {
            Pixels::Procedural { seed } => {
                let label = shapes::label(*seed, index);
                (shapes::render(label, *seed, index as u64), label)
            }
            Pixels::Records(records) => (records.image(index)?, self.label(index)),
            Pixels::Npy { rows, first } => (rows.row(first + index)?, self.label(index)),
            Pixels::Memory(images) => {
                let start = index * shapes::IMAGE_BYTES;
                let pixels = images
                    .get(start..start + shapes::IMAGE_BYTES)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        PluginError::failed(format!("image {index} is missing from memory"))
                    })?;
                (pixels, self.label(index))
            }
        };
        Ok(Sample {
            width: SIDE as u32,
            height: SIDE as u32,
            label: u32::from(label),
            pixels,
        })
    }

    fn label(&self, index: usize) -> u8 {
        self.labels
            .as_ref()
            .and_then(|(all, first)| all.get(first + index).copied())
            .unwrap_or(0)
    }
}

/// The plugin: what was found at creation, and the splits opened so far.
#[derive(Debug)]
pub struct Cifar10 {
    entries: Vec<(DatasetInfo, Base)>,
    binary: Option<BinarySet>,
    corruptions: Option<CorruptionSet>,
    v1: Option<Labelled>,
    /// Splits read whole on first use (binary labels, `.npz` arrays), by name.
    loaded: Mutex<HashMap<String, Arc<Split>>>,
    /// Seed of on-the-fly corruptions (and of the procedural set).
    seed: u64,
}

/// The first folder of `dirs` where `find` finds something.
fn first_found<T>(
    dirs: &[PathBuf],
    find: impl Fn(&Path) -> Result<Option<T>, PluginError>,
) -> Result<Option<T>, PluginError> {
    for dir in dirs {
        if let Some(found) = find(dir)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn info(name: String, family: &str, description: String, params: &[(&str, String)]) -> DatasetInfo {
    DatasetInfo {
        name,
        family: family.to_owned(),
        description,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

impl DatasetSourcePlugin for Cifar10 {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<Cifar10, PluginError> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            ron::from_str(config).map_err(|e| {
                PluginError::invalid_argument(format!(
                    "{NAME} config: {e} (expected e.g. `(data: Some(\"/data\"), seed: 0, \
                     train_len: 50000, test_len: 10000, procedural: false)`)"
                ))
            })?
        };
        let base = data_dir(&config);
        let under = |subs: &[&str]| -> Vec<PathBuf> {
            base.iter()
                .flat_map(|b| {
                    subs.iter()
                        .map(move |s| if s.is_empty() { b.clone() } else { b.join(s) })
                })
                .collect()
        };
        let (binary, corruptions, v1, v2) = if config.procedural {
            (None, None, None, Vec::new())
        } else {
            let v2: Vec<(&str, PathBuf, usize)> = {
                let dirs = under(&["cifar-10.2", "CIFAR-10.2", ""]);
                let mut found = Vec::new();
                for (split, file) in V2_FILES {
                    if let Some(path) = dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()) {
                        let rows = npy::read_npz(&path, false)?.rows;
                        found.push((split, path, rows));
                    }
                }
                found
            };
            (
                first_found(&under(&["cifar-10-batches-bin", ""]), binary::find)?,
                first_found(&under(&["CIFAR-10-C", ""]), find_corruptions)?,
                first_found(&under(&["CIFAR-10.1", "CIFAR-10.1/datasets", ""]), find_v1)?,
                v2,
            )
        };

        let mut entries = Vec::new();
        let train_seed = config.seed.wrapping_mul(2).wrapping_add(1);
        let test_seed = config.seed.wrapping_mul(2).wrapping_add(2);
        for (split, train) in [("test", false), ("train", true)] {
            let name = format!("{NAME}/{split}");
            match &binary {
                Some(set) => {
                    let files: &[binary::BatchFile] = if train {
                        &set.train
                    } else {
                        std::slice::from_ref(&set.test)
                    };
                    let n: usize = files.iter().map(|f| f.records).sum();
                    entries.push((
                        info(
                            name,
                            "id",
                            format!(
                                "CIFAR-10 {split} split, {n} images from {}",
                                set.dir.display()
                            ),
                            &[
                                ("split", split.to_owned()),
                                ("source", "cifar-10-binary".to_owned()),
                            ],
                        ),
                        Base::Binary { train },
                    ));
                }
                None => {
                    let (seed, len) = if train {
                        (train_seed, config.train_len)
                    } else {
                        (test_seed, config.test_len)
                    };
                    let why = if config.procedural {
                        "procedural: true in the config".to_owned()
                    } else {
                        format!(
                            "no CIFAR-10 files in {}",
                            match &base {
                                Some(b) => format!(
                                    "{} or {}",
                                    b.join("cifar-10-batches-bin").display(),
                                    b.display()
                                ),
                                None => "any data folder (no data, $SHIFTSCOPE_DATA or $HOME)"
                                    .to_owned(),
                            }
                        )
                    };
                    entries.push((
                        info(
                            name,
                            "id",
                            format!(
                                "procedural shapes and textures ({why}); {split} split, {len} \
                                 images, seed {seed}"
                            ),
                            &[
                                ("split", split.to_owned()),
                                ("source", "procedural".to_owned()),
                            ],
                        ),
                        Base::Procedural { seed, len },
                    ));
                }
            }
        }
        if let Some(set) = &corruptions {
            let per = set.labels.len() / SEVERITIES;
            for (index, (corruption, array)) in set.corruptions.iter().enumerate() {
                for severity in 1..=SEVERITIES {
                    entries.push((
                        info(
                            format!("cifar10-c/{corruption}/{severity}"),
                            "corruption",
                            format!(
                                "CIFAR-10-C {corruption} at severity {severity}: rows {}..{} of {}",
                                (severity - 1) * per,
                                severity * per,
                                array.path.display()
                            ),
                            &[
                                ("corruption", corruption.clone()),
                                ("severity", severity.to_string()),
                                ("source", "cifar-10-c".to_owned()),
                            ],
                        ),
                        Base::Corruption { index, severity },
                    ));
                }
            }
        }
        if let Some((images, _)) = &v1 {
            entries.push((
                info(
                    "cifar10.1".to_owned(),
                    "natural",
                    format!(
                        "CIFAR-10.1 v6, a new test set drawn like CIFAR-10's: {} images from {}",
                        images.rows,
                        images.path.display()
                    ),
                    &[
                        ("split", "test".to_owned()),
                        ("source", "cifar-10.1".to_owned()),
                    ],
                ),
                Base::V1,
            ));
        }
        for (split, path, rows) in v2 {
            let name = if split == "test" {
                "cifar10.2".to_owned()
            } else {
                format!("cifar10.2/{split}")
            };
            entries.push((
                info(
                    name,
                    "natural",
                    format!(
                        "CIFAR-10.2, a new set drawn like CIFAR-10's: {split} split, {rows} \
                         images from {}",
                        path.display()
                    ),
                    &[
                        ("split", split.to_owned()),
                        ("source", "cifar-10.2".to_owned()),
                    ],
                ),
                Base::V2 { path },
            ));
        }
        Ok(Cifar10 {
            seed: config.seed,
            entries,
            binary,
            corruptions,
            v1,
            loaded: Mutex::new(HashMap::new()),
        })
    }
}

impl Cifar10 {
    /// The class names of the CIFAR files: `batches.meta.txt`'s when the binary set has
    /// one, else CIFAR-10's.
    fn cifar_classes(&self) -> Vec<String> {
        match &self.binary {
            Some(set) => set.classes.clone(),
            None => CIFAR_CLASSES.iter().map(|&c| c.to_owned()).collect(),
        }
    }

    /// A split that is read whole once (labels of the binary batches, `.npz` arrays) and
    /// kept for later opens.
    fn loaded(
        &self,
        name: &str,
        load: impl FnOnce() -> Result<Split, PluginError>,
    ) -> Result<Arc<Split>, PluginError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(split) = loaded.get(name) {
            return Ok(Arc::clone(split));
        }
        let split = Arc::new(load()?);
        loaded.insert(name.to_owned(), Arc::clone(&split));
        Ok(split)
    }

    /// The unshifted data behind a catalog name. On-the-fly shifts of a base set (e.g.
    /// `cifar10/test+fog/3`) wrap what this returns.
    fn open_base(&self, name: &str) -> Result<Arc<Split>, PluginError> {
        let base = self
            .entries
            .iter()
            .find(|(info, _)| info.name == name)
            .map(|(_, base)| base.clone())
            .ok_or_else(|| self.unknown(name))?;
        Ok(match base {
            Base::Procedural { seed, len } => Arc::new(Split {
                pixels: Pixels::Procedural { seed },
                labels: None,
                len,
                classes: PROCEDURAL_CLASSES.iter().map(|&c| c.to_owned()).collect(),
            }),
            Base::Binary { train } => {
                let set = self
                    .binary
                    .as_ref()
                    .ok_or_else(|| PluginError::failed("the binary set is gone"))?;
                self.loaded(name, || {
                    let files = if train {
                        set.train.clone()
                    } else {
                        vec![set.test.clone()]
                    };
                    let (records, labels) = Records::open(&files)?;
                    Ok(Split {
                        pixels: Pixels::Records(records),
                        len: labels.len(),
                        labels: Some((Arc::new(labels), 0)),
                        classes: set.classes.clone(),
                    })
                })?
            }
            Base::Corruption { index, severity } => {
                let set = self
                    .corruptions
                    .as_ref()
                    .ok_or_else(|| PluginError::failed("CIFAR-10-C is gone"))?;
                let (_, array) = set
                    .corruptions
                    .get(index)
                    .ok_or_else(|| PluginError::failed("a CIFAR-10-C corruption is gone"))?;
                let per = set.labels.len() / SEVERITIES;
                let first = (severity - 1) * per;
                Arc::new(Split {
                    pixels: Pixels::Npy {
                        rows: array.open_rows()?,
                        first,
                    },
                    labels: Some((Arc::clone(&set.labels), first)),
                    len: per,
                    classes: self.cifar_classes(),
                })
            }
            Base::V1 => {
                let (images, labels) = self
                    .v1
                    .as_ref()
                    .ok_or_else(|| PluginError::failed("CIFAR-10.1 is gone"))?;
                Arc::new(Split {
                    pixels: Pixels::Npy {
                        rows: images.open_rows()?,
                        first: 0,
                    },
                    labels: Some((Arc::clone(labels), 0)),
                    len: images.rows,
                    classes: self.cifar_classes(),
                })
            }
            Base::V2 { path } => self.loaded(name, || {
                let arrays = npy::read_npz(&path, true)?;
                Ok(Split {
                    pixels: Pixels::Memory(arrays.images),
                    len: arrays.rows,
                    labels: Some((Arc::new(arrays.labels), 0)),
                    classes: self.cifar_classes(),
                })
            })?,
        })
    }

    /// The error for a name not in the catalog, saying what there is.
    fn unknown(&self, name: &str) -> PluginError {
        let mut offered = vec![format!("{NAME}/test"), format!("{NAME}/train")];
        match &self.corruptions {
            Some(set) => {
                let names: Vec<&str> = set.corruptions.iter().map(|(n, _)| n.as_str()).collect();
                offered.push(format!("cifar10-c/<{}>/<1..5>", names.join("|")));
            }
            None if name.starts_with("cifar10-c/") => {
                return PluginError::not_found(format!(
                    "no dataset '{name}': no CIFAR-10-C files were found (CIFAR-10-C/labels.npy \
                     and CIFAR-10-C/<corruption>.npy in the data folder)"
                ));
            }
            None => {}
        }
        offered.extend(
            self.entries
                .iter()
                .map(|(info, _)| info.name.clone())
                .filter(|n| n.starts_with("cifar10.")),
        );
        PluginError::not_found(format!(
            "no dataset '{name}' (offered: {})",
            offered.join(", ")
        ))
    }
}

impl DatasetSource for Cifar10 {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        Ok(self.entries.iter().map(|(info, _)| info.clone()).collect())
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        shiftscope_corrupt::open_corrupted(name, self.seed, |base| {
            Ok(Box::new(CifarDataset {
                split: self.open_base(base)?,
            }))
        })
    }
}

/// An open dataset of this plugin.
#[derive(Debug)]
struct CifarDataset {
    split: Arc<Split>,
}

impl Dataset for CifarDataset {
    fn len(&self) -> usize {
        self.split.len
    }

    fn classes(&self) -> &[String] {
        &self.split.classes
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        self.split.sample(index)
    }
}

shiftscope_sdk::export_dataset_source!(Cifar10);

#[cfg(test)]
mod tests;
