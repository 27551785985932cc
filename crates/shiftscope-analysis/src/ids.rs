//! Ids by which views ask for their numbers: indices into the manifest's lists.

use serde::{Deserialize, Serialize};

/// One neuron: a column of one layer (`layer` indexes the manifest's layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NeuronId {
    /// Index into the manifest's layers.
    pub layer: usize,
    /// Column of the layer file.
    pub neuron: usize,
}

/// One image: a row of one dataset (`dataset` indexes the manifest's datasets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageId {
    /// Index into the manifest's datasets.
    pub dataset: usize,
    /// Row of the dataset's files.
    pub index: usize,
}

/// One class: an index into the manifest's class names (and a column of the logits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClassId(pub usize);
