//! Rafegas et al.'s colour selectivity index (CSI) and Neuron Feature (NF) for one layer of
//! a store on one of its datasets (design/analyses.md). Both need model runs, so they are
//! computed on demand for a chosen layer and cached next to the analysis:
//!
//! - [`colour`]: the opponent colour space, an image's grey version (its projection on its
//!   first principal component in that space, mapped back to RGB) and both CSI variants;
//! - [`nf`]: receptive-field crops around a map position and their activation-weighted mean;
//! - [`cache`]: [`LayerFeatures`] on disk under `<store>/analysis/<manifest sha256>/features/`,
//!   keyed by layer, dataset and N, read by the viewer and the report without the model;
//! - [`run`]: the driver: the layer's top-N images per neuron from the store, the store's
//!   model and datasets opened through the plugin registry, one `run_maps` per image (argmax
//!   location, crop) and batched pooled runs of the grey versions.
//!
//! It owns no model code: the adapter computes receptive fields from its graph
//! ([`shiftscope_sdk::ReceptiveField`]); a layer without one (dense, tokens, or an adapter
//! that gives none) uses the whole image.

pub mod cache;
pub mod colour;
mod error;
pub mod nf;
pub mod run;

pub use cache::LayerFeatures;
pub use colour::{
    ColourSelectivity, colour_selectivity, grey_version, opponent, rgb_from_opponent,
};
pub use error::FeatureError;
pub use nf::{NfAccumulator, crop};
pub use run::{DEFAULT_TOP, FeatureModel, compute, compute_and_save, open_dataset, top_images};

/// An RGB image with values in `[0, 1]`, HWC, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` values.
    pub data: Vec<f32>,
}

impl Rgb {
    /// From 8-bit RGB pixels.
    pub fn from_bytes(width: usize, height: usize, pixels: &[u8]) -> Rgb {
        Rgb {
            width,
            height,
            data: pixels.iter().map(|&v| f32::from(v) / 255.0).collect(),
        }
    }

    /// As 8-bit RGB pixels (rounded, clamped).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    }
}
