//! The runtime: turning dataset samples into model inputs and, with the recording issue,
//! the extraction pipeline (readers → preprocessing → batches → adapter → store). Today it
//! owns preprocessing ([`Preprocessing`]): the per-model declaration of size, resize, crop,
//! channel order, value range, mean and std, its check against the model's input before any
//! work, and its application to one sample (the pixels the model saw, and the normalised
//! input), and contact sheets of dataset samples ([`contact_sheet`]). It never links Bevy,
//! egui or ort.

mod preprocess;
mod sheet;

pub use preprocess::{Channels, Prepared, PreprocessError, Preprocessing, ValueRange};
pub use sheet::{RgbImage, SheetBlock, contact_sheet};
