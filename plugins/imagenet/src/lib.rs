//! `imagenet`: ImageNet and its shift benchmarks, image folders and CSV image lists as a
//! dataset-shift plugin. It owns the layouts of those folders, their mapping into the 1,000
//! ImageNet classes (embedded from `assets/imagenet/`), and JPEG/PNG decoding (at reduced
//! DCT scale when the model's resize allows it). Resizing and cropping to the model's input
//! stay in the runtime's preprocessing: this plugin hands out images at their decoded size.
//!
//! Nothing is listed until roots are configured. The config (RON) names each root by the
//! dataset name it is offered under; the name's first segment says the layout:
//!
//! ```ron
//! (
//!     roots: {
//!         "imagenet/val": "/data/imagenet/val",          // <root>/<wnid>/*.JPEG, 1,000 classes
//!         "imagenet-v2": "/data/imagenetv2-matched-frequency-format-val", // folders 0..999
//!         "imagenet-sketch": "/data/sketch",             // wnid folders
//!         "stylized-imagenet": "/data/stylized/val",     // wnid folders
//!         "imagenet-r": "/data/imagenet-r",              // the 200 ImageNet-R wnids
//!         "imagenet-a": "/data/imagenet-a",              // the 200 ImageNet-A wnids
//!         "imagenet-c": "/data/ImageNet-C",              // <corruption>/<1..5>/<wnid>/*.JPEG
//!         "folder/pets": "/data/pets",                   // any class folders, sorted names
//!         "folder/waterbirds": (csv: "/data/waterbirds/list.csv"), // path,label[,group]
//!     },
//!     synsets: Some("/data/LOC_synset_mapping.txt"),     // class names (optional)
//!     on_error: Stop,                                    // or Skip
//!     decode_min_side: Some(256),
//! )
//! ```
//!
//! - Wnid layouts (`imagenet`, `imagenet/*`, `imagenet-sketch*`, `stylized-imagenet*`) map
//!   each wnid folder to its ImageNet-1k index; an unknown wnid is an error naming the folder.
//! - `imagenet-v2*`: folder names are class indices, read as integers (folder `10` is class
//!   10, whatever a string sort says).
//! - `imagenet-r*`, `imagenet-a*`: labels are ImageNet-1k indices; the catalog entry carries
//!   the 200 indices as the `class_subset` parameter
//!   ([`shiftscope_sdk::DatasetInfo::CLASS_SUBSET`]) so accuracy is taken over those logits.
//! - `imagenet-c*`: one entry `<name>/<corruption>/<severity>` per folder found.
//! - `folder/*`: class folders in sorted order (names from `synsets` when they are wnids), or
//!   `(csv: "list.csv", classes: Some(["landbird", "waterbird"]))`: `path,label[,group]` lines,
//!   paths relative to the CSV, labels class indices (or names of `classes`); each group is
//!   also offered alone as `<name>/group/<group>`.
//!   `(path: "...", layout: Wnid)` gives any other name a layout (`Wnid`, `ClassIndex`,
//!   `ImageNetR`, `ImageNetA`, `ImageNetC`, `Folder`).
//!
//! Any dataset corrupted on the fly: `<name>+<corruption>/<severity>` through
//! `shiftscope-corrupt`, at the decoded size. An unreadable image stops the run with an error
//! naming the file (`on_error: Stop`); with `on_error: Skip` every file is decoded when the
//! set is first listed (with the decoder and options reading it uses), and the files that do
//! not decode are left out and named in the catalog description, so reading never fails on
//! them.

mod classes;
mod decode;
mod tree;

#[cfg(any(test, feature = "testdata"))]
pub mod testdata;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use shiftscope_sdk::{
    Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, PluginError, Sample,
};

pub use crate::classes::{NUM_CLASSES, Subset, is_wnid};
pub use crate::decode::{DecodeOptions, Decoded, decode, jpeg_scale};
use crate::tree::{ClassMap, ImageFile, Listing, bad};

/// The plugin's name.
pub const NAME: &str = "imagenet";

/// The ImageNet-1k wnids in class-index order and their short names.
pub fn imagenet_classes() -> Result<(Vec<String>, Vec<String>), PluginError> {
    let c = classes::imagenet()?;
    Ok((c.wnids.clone(), c.names.clone()))
}

/// What to do with an image that cannot be read.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum OnError {
    /// Stop with an error naming the file.
    #[default]
    Stop,
    /// Leave it out and name it in the catalog description.
    Skip,
}

/// The layout of a root.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Layout {
    /// `<root>/<wnid>/*`, into the 1,000 classes.
    Wnid,
    /// `<root>/<0..999>/*` (ImageNet-V2).
    ClassIndex,
    /// ImageNet-R's 200 wnids.
    ImageNetR,
    /// ImageNet-A's 200 wnids.
    ImageNetA,
    /// `<root>/<corruption>/<severity>/<wnid>/*` (ImageNet-C).
    ImageNetC,
    /// Any class folders, in sorted order.
    Folder,
    /// A CSV list.
    Csv,
}

impl Layout {
    /// The layout a root name implies.
    fn from_name(name: &str) -> Option<Layout> {
        let first = name.split('/').next().unwrap_or(name);
        let starts = |p: &str| first == p || first.starts_with(&format!("{p}-"));
        Some(
            if first == "imagenet" || starts("imagenet-sketch") || starts("stylized-imagenet") {
                Layout::Wnid
            } else if starts("imagenet-v2") || first == "imagenetv2" {
                Layout::ClassIndex
            } else if starts("imagenet-r") {
                Layout::ImageNetR
            } else if starts("imagenet-a") {
                Layout::ImageNetA
            } else if starts("imagenet-c") {
                Layout::ImageNetC
            } else if first == "folder" {
                Layout::Folder
            } else {
                return None;
            },
        )
    }
}

/// A root: a folder, or a spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Root {
    Path(PathBuf),
    Spec(RootSpec),
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RootSpec {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    csv: Option<PathBuf>,
    #[serde(default)]
    layout: Option<Layout>,
    #[serde(default)]
    classes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    roots: BTreeMap<String, Root>,
    synsets: Option<PathBuf>,
    on_error: OnError,
    decode_min_side: Option<u32>,
    max_pixels: u64,
    seed: u64,
}

impl Default for Config {
    fn default() -> Config {
        let d = DecodeOptions::default();
        Config {
            roots: BTreeMap::new(),
            synsets: None,
            on_error: OnError::Stop,
            decode_min_side: d.min_side,
            max_pixels: d.max_pixels,
            seed: 0,
        }
    }
}

const CONFIG_EXAMPLE: &str = "(roots: {\"imagenet/val\": \"/data/imagenet/val\", \
     \"folder/waterbirds\": (csv: \"/data/waterbirds/list.csv\")}, synsets: None, \
     on_error: Stop, decode_min_side: Some(256))";

/// How an entry is opened.
#[derive(Clone, Debug)]
enum Base {
    /// A listing made at creation.
    Listed {
        listing: Arc<Listing>,
        group: Option<u32>,
        classes: Arc<Vec<String>>,
    },
    /// An ImageNet-C folder, listed when first opened.
    Lazy { dir: PathBuf },
}

/// The plugin: the configured roots, listed.
#[derive(Debug)]
pub struct ImageNet {
    entries: Vec<(DatasetInfo, Base)>,
    imagenet_names: Arc<Vec<String>>,
    lazy: Mutex<HashMap<PathBuf, Arc<Listing>>>,
    options: DecodeOptions,
    on_error: OnError,
    seed: u64,
}

fn info(name: &str, family: &str, description: String, params: Vec<(&str, String)>) -> DatasetInfo {
    DatasetInfo {
        name: name.to_owned(),
        family: family.to_owned(),
        description,
        params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// "; 2 unreadable images skipped: a.JPEG (empty file), ..." or "".
fn skipped_note(listing: &Listing) -> String {
    let mut note = String::new();
    if !listing.skipped.is_empty() {
        let shown: Vec<String> = listing
            .skipped
            .iter()
            .take(3)
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        let more = listing.skipped.len().saturating_sub(3);
        note.push_str(&format!(
            "; {} unreadable images skipped: {}{}",
            listing.skipped.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if !listing.empty_classes.is_empty() {
        note.push_str(&format!(
            "; {} empty class folders ({})",
            listing.empty_classes.len(),
            listing.empty_classes.join(", ")
        ));
    }
    note
}

fn subset_param(indices: &[u32]) -> String {
    let parts: Vec<String> = indices.iter().map(u32::to_string).collect();
    parts.join(",")
}

impl ImageNet {
    fn names_for_folders(
        folders: &[String],
        synsets: Option<&HashMap<String, String>>,
    ) -> Vec<String> {
        match synsets {
            Some(map) if folders.iter().all(|f| map.contains_key(f)) => {
                let names: Vec<String> = folders
                    .iter()
                    .map(|f| map.get(f).cloned().unwrap_or_default())
                    .collect();
                classes::unique_names(folders, &names)
            }
            _ => folders.to_vec(),
        }
    }

    fn check(&self, listing: &mut Listing) {
        if self.on_error == OnError::Skip {
            tree::skip_unreadable(listing, self.options);
        }
    }

    fn add_root(
        &mut self,
        name: &str,
        root: &Root,
        synsets: Option<&HashMap<String, String>>,
    ) -> Result<(), PluginError> {
        let spec = match root {
            Root::Path(path) => RootSpec {
                path: Some(path.clone()),
                ..RootSpec::default()
            },
            Root::Spec(spec) => spec.clone(),
        };
        let in_config = |what: &str| {
            PluginError::invalid_argument(format!("{NAME} config: root '{name}': {what}"))
        };
        if name.is_empty() || name.contains('+') || name.split('/').any(str::is_empty) {
            return Err(in_config(
                "a root name is segments separated by '/', without '+'",
            ));
        }
        let layout = match (spec.layout, &spec.csv) {
            (Some(layout), _) => layout,
            (None, Some(_)) => Layout::Csv,
            (None, None) => Layout::from_name(name).ok_or_else(|| {
                in_config(
                    "the name does not say its layout (imagenet/..., imagenet-v2, \
                     imagenet-sketch, stylized-imagenet, imagenet-r, imagenet-a, imagenet-c, \
                     folder/...): give one, e.g. (path: \"/data/x\", layout: Folder)",
                )
            })?,
        };
        let path = match (layout, &spec.path, &spec.csv) {
            (Layout::Csv, _, Some(csv)) => csv.clone(),
            (Layout::Csv, _, None) => return Err(in_config("layout Csv needs csv: \"list.csv\"")),
            (_, Some(path), None) => path.clone(),
            (_, None, _) | (_, _, Some(_)) => {
                return Err(in_config("give either path (a folder) or csv (a list)"));
            }
        };
        let imagenet = classes::imagenet()?;
        let source = path.display().to_string();
        let mut params = vec![("layout", format!("{layout:?}")), ("root", source.clone())];
        let (family, what) = match layout {
            Layout::Wnid => ("natural", "wnid folders"),
            Layout::ClassIndex => ("natural", "ImageNet-V2 class-index folders"),
            Layout::ImageNetR => ("rendition", "ImageNet-R"),
            Layout::ImageNetA => ("adversarial", "ImageNet-A"),
            Layout::ImageNetC => ("corruption", "ImageNet-C"),
            Layout::Folder => ("folder", "class folders"),
            Layout::Csv => ("list", "CSV list"),
        };
        if name == "imagenet" || name.starts_with("imagenet/") {
            params.push(("split", name.rsplit('/').next().unwrap_or(name).to_owned()));
        }
        match layout {
            Layout::Wnid | Layout::ClassIndex | Layout::ImageNetR | Layout::ImageNetA => {
                let subset = match layout {
                    Layout::ImageNetR => Some((Subset::R.indices()?, "ImageNet-R")),
                    Layout::ImageNetA => Some((Subset::A.indices()?, "ImageNet-A")),
                    _ => None,
                };
                let map = if layout == Layout::ClassIndex {
                    ClassMap::ClassIndex
                } else {
                    ClassMap::Wnid {
                        classes: imagenet,
                        subset,
                    }
                };
                let mut listing = tree::scan_folders(&path, map)?;
                self.check(&mut listing);
                let mut description = format!(
                    "{what}: {} images in {} class folders of {source}",
                    listing.files.len(),
                    listing.folders.len()
                );
                if let Some((indices, subset_name)) = subset {
                    description.push_str(&format!(
                        "; labels are ImageNet-1k indices, accuracy over the {} logits of \
                         {subset_name}'s classes (class_subset)",
                        indices.len()
                    ));
                    params.push((DatasetInfo::CLASS_SUBSET, subset_param(indices)));
                }
                description.push_str(&skipped_note(&listing));
                params.push(("skipped", listing.skipped.len().to_string()));
                let entry = info(name, family, description, params);
                self.entries.push((
                    entry,
                    Base::Listed {
                        listing: Arc::new(listing),
                        group: None,
                        classes: Arc::clone(&self.imagenet_names),
                    },
                ));
            }
            Layout::ImageNetC => {
                let corruptions = std::fs::read_dir(&path)
                    .map_err(|e| bad(&path, format!("cannot list the ImageNet-C folder: {e}")))?;
                let mut found: Vec<(String, u8, PathBuf)> = Vec::new();
                for corruption in corruptions.filter_map(Result::ok) {
                    let Ok(c) = corruption.file_name().into_string() else {
                        continue;
                    };
                    if c.starts_with('.') || !corruption.path().is_dir() {
                        continue;
                    }
                    for severity in 1..=5u8 {
                        let dir = corruption.path().join(severity.to_string());
                        if dir.is_dir() {
                            found.push((c.clone(), severity, dir));
                        }
                    }
                }
                if found.is_empty() {
                    return Err(bad(
                        &path,
                        "no <corruption>/<severity 1..5> folders: expected the ImageNet-C \
                         layout <root>/<corruption>/<severity>/<wnid>/*.JPEG",
                    ));
                }
                found.sort();
                for (corruption, severity, dir) in found {
                    let mut params = params.clone();
                    params.push(("corruption", corruption.clone()));
                    params.push(("severity", severity.to_string()));
                    let entry = info(
                        &format!("{name}/{corruption}/{severity}"),
                        family,
                        format!(
                            "ImageNet-C {corruption} at severity {severity}: wnid folders of {}",
                            dir.display()
                        ),
                        params,
                    );
                    self.entries.push((entry, Base::Lazy { dir }));
                }
            }
            Layout::Folder | Layout::Csv => {
                let mut listing = if layout == Layout::Csv {
                    tree::read_csv(
                        &path,
                        spec.classes.as_deref(),
                        self.on_error == OnError::Skip,
                    )?
                } else {
                    tree::scan_folders(&path, ClassMap::Sorted)?
                };
                self.check(&mut listing);
                let classes: Vec<String> = match (&spec.classes, layout) {
                    (Some(names), _) => {
                        if layout == Layout::Folder && names.len() != listing.folders.len() {
                            return Err(in_config(&format!(
                                "{} classes listed for {} class folders",
                                names.len(),
                                listing.folders.len()
                            )));
                        }
                        names.clone()
                    }
                    (None, Layout::Folder) => Self::names_for_folders(&listing.folders, synsets),
                    (None, _) => {
                        let max = listing.files.iter().map(|f| f.label).max().unwrap_or(0);
                        (0..=max).map(|i| i.to_string()).collect()
                    }
                };
                let classes = Arc::new(classes);
                let listing = Arc::new(listing);
                let description = format!(
                    "{what}: {} images in {} classes from {source}{}",
                    listing.files.len(),
                    classes.len(),
                    skipped_note(&listing)
                );
                params.push(("skipped", listing.skipped.len().to_string()));
                self.entries.push((
                    info(name, family, description, params.clone()),
                    Base::Listed {
                        listing: Arc::clone(&listing),
                        group: None,
                        classes: Arc::clone(&classes),
                    },
                ));
                for (g, group) in listing.groups.iter().enumerate() {
                    let n = listing
                        .files
                        .iter()
                        .filter(|f| f.group == Some(g as u32))
                        .count();
                    let mut params = params.clone();
                    params.push(("group", group.clone()));
                    self.entries.push((
                        info(
                            &format!("{name}/group/{group}"),
                            "group",
                            format!("group '{group}' of {name}: {n} images from {source}"),
                            params,
                        ),
                        Base::Listed {
                            listing: Arc::clone(&listing),
                            group: Some(g as u32),
                            classes: Arc::clone(&classes),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// The listing of an ImageNet-C folder, made once.
    fn lazy_listing(&self, dir: &Path) -> Result<Arc<Listing>, PluginError> {
        let mut lazy = self.lazy.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(listing) = lazy.get(dir) {
            return Ok(Arc::clone(listing));
        }
        let mut listing = tree::scan_folders(
            dir,
            ClassMap::Wnid {
                classes: classes::imagenet()?,
                subset: None,
            },
        )?;
        self.check(&mut listing);
        let listing = Arc::new(listing);
        lazy.insert(dir.to_owned(), Arc::clone(&listing));
        Ok(listing)
    }

    fn open_base(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        let Some((_, base)) = self.entries.iter().find(|(info, _)| info.name == name) else {
            let offered: Vec<&str> = self.entries.iter().map(|(i, _)| i.name.as_str()).collect();
            return Err(PluginError::not_found(if offered.is_empty() {
                format!(
                    "no dataset '{name}': the {NAME} plugin has no roots configured \
                     (e.g. {CONFIG_EXAMPLE})"
                )
            } else {
                format!("no dataset '{name}' (offered: {})", offered.join(", "))
            }));
        };
        let (files, classes) = match base {
            Base::Listed {
                listing,
                group,
                classes,
            } => {
                let files: Vec<ImageFile> = match group {
                    None => listing.files.clone(),
                    Some(g) => listing
                        .files
                        .iter()
                        .filter(|f| f.group == Some(*g))
                        .cloned()
                        .collect(),
                };
                (files, Arc::clone(classes))
            }
            Base::Lazy { dir } => (
                self.lazy_listing(dir)?.files.clone(),
                Arc::clone(&self.imagenet_names),
            ),
        };
        if files.is_empty() {
            return Err(PluginError::not_found(format!(
                "{name}: no readable images"
            )));
        }
        Ok(Box::new(Images {
            files,
            classes,
            options: self.options,
        }))
    }
}

impl DatasetSourcePlugin for ImageNet {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<ImageNet, PluginError> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            ron::from_str(config).map_err(|e| {
                PluginError::invalid_argument(format!(
                    "{NAME} config: {e} (expected e.g. `{CONFIG_EXAMPLE}`)"
                ))
            })?
        };
        let synsets = config
            .synsets
            .as_deref()
            .map(classes::read_synset_mapping)
            .transpose()?;
        let imagenet = classes::imagenet()?;
        let names = match &synsets {
            Some(map) => {
                let names: Vec<String> = imagenet
                    .wnids
                    .iter()
                    .zip(&imagenet.names)
                    .map(|(w, n)| map.get(w).cloned().unwrap_or_else(|| n.clone()))
                    .collect();
                classes::unique_names(&imagenet.wnids, &names)
            }
            None => imagenet.names.clone(),
        };
        if config.max_pixels == 0 || config.decode_min_side == Some(0) {
            return Err(PluginError::invalid_argument(format!(
                "{NAME} config: max_pixels and decode_min_side must be positive"
            )));
        }
        let mut plugin = ImageNet {
            entries: Vec::new(),
            imagenet_names: Arc::new(names),
            lazy: Mutex::new(HashMap::new()),
            options: DecodeOptions {
                min_side: config.decode_min_side,
                max_pixels: config.max_pixels,
            },
            on_error: config.on_error,
            seed: config.seed,
        };
        for (name, root) in &config.roots {
            plugin.add_root(name, root, synsets.as_ref())?;
        }
        Ok(plugin)
    }
}

impl DatasetSource for ImageNet {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        Ok(self.entries.iter().map(|(info, _)| info.clone()).collect())
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        shiftscope_corrupt::open_corrupted(name, self.seed, |base| self.open_base(base))
    }
}

/// An open list of image files.
#[derive(Debug)]
struct Images {
    files: Vec<ImageFile>,
    classes: Arc<Vec<String>>,
    options: DecodeOptions,
}

impl Dataset for Images {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        let file = self.files.get(index).ok_or_else(|| {
            PluginError::out_of_range(format!(
                "index {index} is past the end ({} images)",
                self.files.len()
            ))
        })?;
        let bytes = std::fs::read(&file.path).map_err(|e| {
            PluginError::failed(format!("{}: cannot read: {e}", file.path.display()))
        })?;
        let image = decode(&bytes, self.options)
            .map_err(|e| PluginError::failed(format!("{}: {e}", file.path.display())))?;
        Ok(Sample {
            width: image.width,
            height: image.height,
            label: file.label,
            pixels: image.pixels,
        })
    }
}

shiftscope_sdk::export_dataset_source!(ImageNet);

#[cfg(test)]
mod tests;
