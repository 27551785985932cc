//! The runtime: study configs ([`StudyConfig`]), the extraction pipeline ([`extract`]:
//! readers → preprocessing → batches → adapter → store, on named threads joined by bounded
//! crossbeam channels, resumable), and preprocessing ([`Preprocessing`]): the per-model
//! declaration of size, resize, crop,
//! channel order, value range, mean and std, its check against the model's input before any
//! work, and its application to one sample (the pixels the model saw, and the normalised
//! input), contact sheets of dataset samples ([`contact_sheet`]), a store's study rebuilt with another
//! model file ([`study_from_store`], to re-record a repaired model), and live inference of a
//! store's model on an image file ([`LiveModel`], the viewer's live mode), and gradient
//! targets as people write them ([`GradientTarget`]: `logit:CLASS`, `LAYER:N@Y,X`). It never links
//! Bevy, egui or ort.

mod config;
mod deephys;
mod extract;
mod gradient;
mod live;
mod preprocess;
mod restudy;
mod sheet;

pub use config::{
    ConfigError, ConvPool, DatasetConfig, DatasetRole, Device, ModelConfig, PoolingConfig,
    RecordingConfig, StudyConfig, TokenPool,
};
pub use deephys::import_deephys;
pub use extract::{DatasetReport, ExtractError, ExtractReport, extract, shard_rows, shard_store};
pub use gradient::{GradientTarget, TargetError};
pub use live::{LiveError, LiveMaps, LiveModel, LiveOutput, read_image};
pub use preprocess::{Channels, Prepared, PreprocessError, Preprocessing, ValueRange};
pub use restudy::{store_decision_layer, store_model_file, store_preprocessing, study_from_store};
pub use sheet::{RgbImage, SheetBlock, contact_sheet};
