//! The dataset-shift side of the contract: a catalog of named datasets, each random access.

use crate::PluginError;

/// One dataset a source offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Name to open, e.g. `cifar10-c/fog/3`.
    pub name: String,
    /// Shift family, e.g. `id`, `noise`, `colour`, `corruption`.
    pub family: String,
    /// One line for people, including where the data comes from.
    pub description: String,
    /// Parameters of the shift as `(key, value)` text pairs.
    pub params: Vec<(String, String)>,
}

impl DatasetInfo {
    /// The parameter under which a dataset whose images belong to a subset of the model's
    /// classes (ImageNet-R and -A: 200 of the 1,000) lists the class indices of that subset,
    /// comma-separated and ascending (`"1,2,4"`). Labels stay indices into all the model's
    /// classes; accuracy is then taken over these logits only.
    pub const CLASS_SUBSET: &'static str = "class_subset";

    /// The class subset this entry declares, if any.
    pub fn class_subset(&self) -> Option<Result<Vec<u32>, String>> {
        self.params
            .iter()
            .find(|(k, _)| k == Self::CLASS_SUBSET)
            .map(|(_, v)| Self::parse_class_subset(v))
    }

    /// Parses a [`DatasetInfo::CLASS_SUBSET`] value: ascending class indices, comma-separated.
    pub fn parse_class_subset(text: &str) -> Result<Vec<u32>, String> {
        let indices = text
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{}: '{part}' is not a class index", Self::CLASS_SUBSET))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        if indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "{}: the class indices are not strictly ascending",
                Self::CLASS_SUBSET
            ));
        }
        Ok(indices)
    }
}

/// One image and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Class index into [`Dataset::classes`].
    pub label: u32,
    /// RGB, 8 bits per channel, HWC, row-major: `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// An open dataset: random access, deterministic, callable from several threads.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names; labels index into them.
    fn classes(&self) -> &[String];

    /// Sample `index`; the same index always gives the same sample. An index at or past
    /// [`Dataset::len`] is an [`crate::ErrorKind::OutOfRange`] error.
    fn get(&self, index: usize) -> Result<Sample, PluginError>;
}

/// A source of named datasets: an in-distribution set and its shifted variants.
pub trait DatasetSource: Send + Sync {
    /// The datasets offered.
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError>;

    /// Opens a dataset by catalog name, or a parameterised name the source accepts.
    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError>;

    /// Outputs handed out by a dynamically loaded plugin and not yet released; `None` for a
    /// plugin linked into the binary, where Rust ownership rules out leaks.
    fn outstanding_outputs(&self) -> Option<u64> {
        None
    }
}

/// A [`DatasetSource`] that can be exported as a plugin.
pub trait DatasetSourcePlugin: DatasetSource + Sized + 'static {
    /// Plugin name, unique among plugins.
    const NAME: &'static str;
    /// Plugin version.
    const VERSION: &'static str;
    /// Makes an instance from the plugin's config (RON text; may be empty).
    fn create(config: &str) -> Result<Self, PluginError>;
}
