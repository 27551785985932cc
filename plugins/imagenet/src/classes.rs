//! The 1,000 ImageNet classes and the 200-class subsets of ImageNet-R and ImageNet-A, embedded
//! from `assets/imagenet/` (timm's data files), and synset mapping files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use shiftscope_sdk::PluginError;

const CLASSES_TSV: &str = include_str!("../../../assets/imagenet/classes.tsv");
const R_SUBSET_TSV: &str = include_str!("../../../assets/imagenet/imagenet-r-subset.tsv");
const A_SUBSET_TSV: &str = include_str!("../../../assets/imagenet/imagenet-a-subset.tsv");

/// Number of ImageNet-1k classes.
pub const NUM_CLASSES: usize = 1000;

/// The ImageNet-1k classes in index order.
#[derive(Debug)]
pub(crate) struct ImageNetClasses {
    /// Wnids by class index (sorted, as ImageNet's index order is).
    pub(crate) wnids: Vec<String>,
    /// Short names by class index (the first lemma; the few repeated ones get their wnid).
    pub(crate) names: Vec<String>,
    index: HashMap<String, u32>,
}

impl ImageNetClasses {
    /// The class index of a wnid.
    pub(crate) fn index_of(&self, wnid: &str) -> Option<u32> {
        self.index.get(wnid).copied()
    }
}

/// The embedded classes, parsed once.
pub(crate) fn imagenet() -> Result<&'static ImageNetClasses, PluginError> {
    static PARSED: OnceLock<Result<ImageNetClasses, String>> = OnceLock::new();
    PARSED
        .get_or_init(parse_classes)
        .as_ref()
        .map_err(|e| PluginError::failed(format!("embedded assets/imagenet/classes.tsv: {e}")))
}

fn parse_classes() -> Result<ImageNetClasses, String> {
    let mut wnids = Vec::with_capacity(NUM_CLASSES);
    let mut lemmas = Vec::with_capacity(NUM_CLASSES);
    for (n, line) in CLASSES_TSV.lines().enumerate().skip(1) {
        let mut fields = line.split('\t');
        let (Some(index), Some(wnid), Some(names)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("line {}: expected index, wnid, names", n + 1));
        };
        if index.parse::<usize>().ok() != Some(wnids.len()) {
            return Err(format!("line {}: index {index} out of order", n + 1));
        }
        wnids.push(wnid.to_owned());
        lemmas.push(names.split(',').next().unwrap_or(names).trim().to_owned());
    }
    if wnids.len() != NUM_CLASSES {
        return Err(format!("{} classes, expected {NUM_CLASSES}", wnids.len()));
    }
    let names = unique_names(&wnids, &lemmas);
    let index = wnids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i as u32))
        .collect();
    Ok(ImageNetClasses {
        wnids,
        names,
        index,
    })
}

/// `names` with every repeated one (ImageNet has two "crane"s and two "maillot"s) suffixed
/// by its key, so that class names stay unique.
pub(crate) fn unique_names(keys: &[String], names: &[String]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for name in names {
        *count.entry(name.as_str()).or_default() += 1;
    }
    names
        .iter()
        .zip(keys)
        .map(|(name, key)| {
            if name.is_empty() {
                key.clone()
            } else if count.get(name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{name} ({key})")
            } else {
                name.clone()
            }
        })
        .collect()
}

/// Which 200-class subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    /// ImageNet-R (renditions).
    R,
    /// ImageNet-A (natural adversarial examples).
    A,
}

impl Subset {
    /// The subset's class indices into the 1,000, ascending.
    pub fn indices(self) -> Result<&'static [u32], PluginError> {
        static R: OnceLock<Result<Vec<u32>, String>> = OnceLock::new();
        static A: OnceLock<Result<Vec<u32>, String>> = OnceLock::new();
        let (cell, text, file) = match self {
            Subset::R => (&R, R_SUBSET_TSV, "imagenet-r-subset.tsv"),
            Subset::A => (&A, A_SUBSET_TSV, "imagenet-a-subset.tsv"),
        };
        cell.get_or_init(|| parse_subset(text))
            .as_deref()
            .map_err(|e| PluginError::failed(format!("embedded assets/imagenet/{file}: {e}")))
    }
}

fn parse_subset(text: &str) -> Result<Vec<u32>, String> {
    let classes = parse_classes()?;
    let mut out = Vec::with_capacity(200);
    for (n, line) in text.lines().enumerate().skip(1) {
        let (index, wnid) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: expected index and wnid", n + 1))?;
        let index: u32 = index
            .parse()
            .map_err(|_| format!("line {}: bad index '{index}'", n + 1))?;
        if classes.wnids.get(index as usize).map(String::as_str) != Some(wnid.trim()) {
            return Err(format!(
                "line {}: index {index} is not {wnid} in classes.tsv",
                n + 1
            ));
        }
        out.push(index);
    }
    if out.len() != 200 || out.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("{} indices, expected 200 ascending", out.len()));
    }
    Ok(out)
}

/// A synset mapping file (`LOC_synset_mapping.txt` style: `n01440764 tench, Tinca tinca`,
/// one per line): wnid → first name.
pub(crate) fn read_synset_mapping(path: &Path) -> Result<HashMap<String, String>, PluginError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PluginError::not_found(format!(
            "{}: cannot read the synset mapping file: {e}",
            path.display()
        ))
    })?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (wnid, names) = line
            .split_once(|c: char| c.is_whitespace())
            .unwrap_or((line, ""));
        if !is_wnid(wnid) {
            return Err(PluginError::invalid_argument(format!(
                "{}: line {}: '{wnid}' is not a wnid (expected `n01440764 tench, Tinca tinca`)",
                path.display(),
                n + 1
            )));
        }
        let name = names.split(',').next().unwrap_or("").trim();
        out.insert(wnid.to_owned(), name.to_owned());
    }
    if out.is_empty() {
        return Err(PluginError::invalid_argument(format!(
            "{}: no `wnid name` lines in the synset mapping file",
            path.display()
        )));
    }
    Ok(out)
}

/// Whether `s` looks like a WordNet id: `n` and eight digits.
pub fn is_wnid(s: &str) -> bool {
    s.len() == 9 && s.starts_with('n') && s[1..].bytes().all(|b| b.is_ascii_digit())
}
