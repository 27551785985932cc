//! Listing image trees and CSV lists: which file is which image, with which label.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use shiftscope_sdk::PluginError;

use crate::classes::{ImageNetClasses, NUM_CLASSES};
use crate::decode::{DecodeOptions, check_header};

/// One image file and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageFile {
    /// The file.
    pub(crate) path: PathBuf,
    /// Class index.
    pub(crate) label: u32,
    /// Group index into [`Listing::groups`] (CSV lists only).
    pub(crate) group: Option<u32>,
}

/// What a tree or list holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    /// Images in dataset order.
    pub(crate) files: Vec<ImageFile>,
    /// Class folders with no image in them.
    pub(crate) empty_classes: Vec<String>,
    /// Images left out (`on_error: Skip`) and why.
    pub(crate) skipped: Vec<(PathBuf, String)>,
    /// Files that are not `.jpg`, `.jpeg` or `.png`, ignored.
    pub(crate) ignored: usize,
    /// Group names of a CSV list, by group index.
    pub(crate) groups: Vec<String>,
    /// Class folder names (generic folders) in label order.
    pub(crate) folders: Vec<String>,
}

/// How class folders map to labels.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClassMap<'a> {
    /// Wnid folders into the 1,000 ImageNet classes, optionally only those of a subset.
    Wnid {
        /// The 1,000 classes.
        classes: &'a ImageNetClasses,
        /// The allowed class indices and the subset's name, for ImageNet-R/A.
        subset: Option<(&'a [u32], &'a str)>,
    },
    /// Folders named by class index `0`..`999` (ImageNet-V2), compared as integers.
    ClassIndex,
    /// Any folder names, in sorted order (torchvision's ImageFolder).
    Sorted,
}

pub(crate) fn bad(path: &Path, what: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_argument(format!("{}: {what}", path.display()))
}

fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")
}

/// Sorted `(name, is_dir)` entries of a folder, hidden ones left out.
fn entries(dir: &Path) -> Result<Vec<(String, bool)>, PluginError> {
    let read = std::fs::read_dir(dir).map_err(|e| bad(dir, format!("cannot list: {e}")))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| bad(dir, format!("cannot list: {e}")))?;
        let Ok(name) = entry.file_name().into_string() else {
            return Err(bad(
                &entry.path(),
                "the name is not UTF-8; rename it or leave it out of the tree",
            ));
        };
        if name.starts_with('.') {
            continue;
        }
        // Follows symbolic links, as class folders are often links.
        let is_dir = entry.path().is_dir();
        out.push((name, is_dir));
    }
    out.sort_unstable();
    Ok(out)
}

/// Lists `<root>/<class>/<image>` with the labels `map` gives the class folders.
pub(crate) fn scan_folders(root: &Path, map: ClassMap<'_>) -> Result<Listing, PluginError> {
    if !root.is_dir() {
        return Err(bad(
            root,
            "not a folder (expected <root>/<class>/<image files>)",
        ));
    }
    let mut classes: Vec<(u32, String)> = Vec::new();
    let mut stray = 0;
    for (name, is_dir) in entries(root)? {
        if !is_dir {
            stray += 1;
            continue;
        }
        let label = match map {
            ClassMap::Wnid {
                classes: all,
                subset,
            } => {
                let Some(index) = all.index_of(&name) else {
                    return Err(bad(
                        &root.join(&name),
                        format!("unknown wnid '{name}': not one of the 1,000 ImageNet classes"),
                    ));
                };
                if let Some((allowed, subset_name)) = subset
                    && allowed.binary_search(&index).is_err()
                {
                    return Err(bad(
                        &root.join(&name),
                        format!(
                            "wnid '{name}' (class {index}) is not one of the 200 classes of \
                             {subset_name}"
                        ),
                    ));
                }
                index
            }
            ClassMap::ClassIndex => match name.parse::<u32>() {
                Ok(i) if (i as usize) < NUM_CLASSES && (name == "0" || !name.starts_with('0')) => i,
                _ => {
                    return Err(bad(
                        &root.join(&name),
                        format!(
                            "folder '{name}' is not a class index: ImageNet-V2 folders are \
                             named 0..999"
                        ),
                    ));
                }
            },
            ClassMap::Sorted => classes.len() as u32,
        };
        classes.push((label, name));
    }
    if classes.is_empty() {
        return Err(bad(
            root,
            format!(
                "no class folders ({stray} files directly inside): expected \
                 <root>/<class>/<image files>"
            ),
        ));
    }
    // Integer folder names sort as integers, not as strings.
    classes.sort_unstable();
    let mut listing = Listing::default();
    for (label, name) in &classes {
        let dir = root.join(name);
        let mut any = false;
        for (file, is_dir) in entries(&dir)? {
            if is_dir || !is_image(&file) {
                listing.ignored += 1;
                continue;
            }
            any = true;
            listing.files.push(ImageFile {
                path: dir.join(file),
                label: *label,
                group: None,
            });
        }
        if !any {
            listing.empty_classes.push(name.clone());
        }
    }
    listing.folders = classes.into_iter().map(|(_, n)| n).collect();
    if listing.files.is_empty() {
        return Err(bad(
            root,
            format!(
                "no .jpg, .jpeg or .png images in its {} class folders",
                listing.folders.len()
            ),
        ));
    }
    Ok(listing)
}

/// Reads a CSV list `path,label[,group]` (paths relative to the CSV's folder; a first line
/// `path,label...` is a header). A label is a class index, or a class name of `classes`. A
/// listed file that does not exist is an error, or with `skip_missing` left out and named.
pub(crate) fn read_csv(
    csv: &Path,
    classes: Option<&[String]>,
    skip_missing: bool,
) -> Result<Listing, PluginError> {
    let text = std::fs::read_to_string(csv)
        .map_err(|e| bad(csv, format!("cannot read the CSV list: {e}")))?;
    let base = csv.parent().unwrap_or(Path::new("."));
    let mut listing = Listing::default();
    let mut groups: BTreeMap<String, u32> = BTreeMap::new();
    let mut rows: Vec<(PathBuf, u32, Option<String>, usize)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if n == 0
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("path"))
        {
            continue;
        }
        let at = |what: String| bad(csv, format!("line {line_no}: {what}"));
        if !(2..=3).contains(&fields.len()) || fields[0].is_empty() {
            return Err(at(format!(
                "expected `path,label[,group]`, found {} fields: '{line}'",
                fields.len()
            )));
        }
        let label_text = fields[1];
        let label = match (label_text.parse::<u32>(), classes) {
            (Ok(i), Some(names)) if (i as usize) < names.len() => i,
            (Ok(i), Some(names)) => {
                return Err(at(format!(
                    "bad label {i}: the config lists {} classes",
                    names.len()
                )));
            }
            (Ok(i), None) if (i as usize) < NUM_CLASSES * 1000 => i,
            (_, Some(names)) => names
                .iter()
                .position(|c| c == label_text)
                .map(|i| i as u32)
                .ok_or_else(|| {
                    at(format!(
                        "bad label '{label_text}': neither a class index nor one of the \
                         configured classes"
                    ))
                })?,
            (_, None) => {
                return Err(at(format!(
                    "bad label '{label_text}': expected a class index (0, 1, ...), or class \
                     names listed in the config's `classes`"
                )));
            }
        };
        let path = base.join(fields[0]);
        let group = fields.get(2).map(|g| (*g).to_owned());
        if let Some(g) = &group {
            let next = groups.len() as u32;
            groups.entry(g.clone()).or_insert(next);
        }
        rows.push((path, label, group, line_no));
    }
    // Groups numbered in sorted order.
    for (i, index) in groups.values_mut().enumerate() {
        *index = i as u32;
    }
    listing.groups = groups.keys().cloned().collect();
    for (path, label, group, line_no) in rows {
        if !path.is_file() && skip_missing {
            listing
                .skipped
                .push((path, format!("missing, listed on line {line_no}")));
            continue;
        }
        if !path.is_file() {
            return Err(bad(
                csv,
                format!("line {line_no}: missing file {}", path.display()),
            ));
        }
        listing.files.push(ImageFile {
            path,
            label,
            group: group.and_then(|g| groups.get(&g).copied()),
        });
    }
    if listing.files.is_empty() {
        return Err(bad(csv, "no `path,label[,group]` rows"));
    }
    Ok(listing)
}

/// Reads at most `limit` bytes of `path`.
fn read_head(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The header of an image file is readable (the pixels are not decoded): reads the first
/// 64 KiB, and the whole file when the header is longer.
pub(crate) fn check_file(path: &Path, options: DecodeOptions) -> Result<(), String> {
    const HEAD: u64 = 64 * 1024;
    let head = read_head(path, HEAD).map_err(|e| format!("cannot read: {e}"))?;
    match check_header(&head, options) {
        Ok(_) => Ok(()),
        Err(_) if head.len() as u64 == HEAD => {
            let all = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
            check_header(&all, options).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// `on_error: Skip`: leaves out the files that do not decode, and says which. Each file is
/// decoded here with the decoder and options reading it later uses, so a set that skipped
/// its unreadable files cannot fail on one when it is read (at the price of one decode per
/// image when the set is first listed).
pub(crate) fn skip_unreadable(listing: &mut Listing, options: DecodeOptions) {
    let files = std::mem::take(&mut listing.files);
    for file in files {
        let readable = check_file(&file.path, options).and_then(|()| {
            let bytes = std::fs::read(&file.path).map_err(|e| format!("cannot read: {e}"))?;
            crate::decode::decode(&bytes, options).map(|_| ())
        });
        match readable {
            Ok(()) => listing.files.push(file),
            Err(why) => listing.skipped.push((file.path, why)),
        }
    }
}
