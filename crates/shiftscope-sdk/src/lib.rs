//! The plugin author's side of the contract: the safe traits a model adapter or a
//! dataset-shift source implements ([`ModelAdapter`], [`DatasetSource`], [`Dataset`]), the
//! plain data types they exchange ([`Tensor`], [`ModelDescription`], [`Sample`], ...), and the
//! export macros [`export_model_adapter!`] and [`export_dataset_source!`] that turn an impl
//! into a dynamic library speaking the C ABI of `shiftscope-abi`.
//!
//! The host (`shiftscope-host`) wraps loaded libraries back into these same traits, so a
//! plugin linked into the binary and the same plugin loaded from a `.so` are
//! indistinguishable to the runtime.
//!
//! # Writing a plugin
//!
//! ```ignore
//! use shiftscope_sdk::{DatasetSource, DatasetSourcePlugin, PluginError};
//!
//! struct MySource;
//! impl DatasetSource for MySource { /* catalog, open */ }
//! impl DatasetSourcePlugin for MySource {
//!     const NAME: &'static str = "my-source";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn create(config: &str) -> Result<Self, PluginError> { Ok(MySource) }
//! }
//! shiftscope_sdk::export_dataset_source!(MySource);
//! ```
//!
//! The crate declares `crate-type = ["rlib", "cdylib"]` and a feature `builtin = []`. The
//! macros export the entry symbol only when `builtin` is off: a binary that links several
//! plugins statically enables `builtin` on each, so their identical entry symbols never
//! collide. Build the dynamic library on its own: `cargo build --release -p my-source`.

mod dataset;
mod error;
pub mod ffi;
mod gradient;
mod model;
pub mod rng;
mod select;
mod tensor;

pub use dataset::{Dataset, DatasetInfo, DatasetSource, DatasetSourcePlugin, Sample};
pub use error::{ErrorKind, PluginError};
pub use gradient::{Gradient, GradientRequest, Objective, objective_seed};
pub use model::{
    ActivationSet, ConvPooling, DecisionLayer, InputSpec, LayerInfo, LayerKind, ModelAdapter,
    ModelAdapterPlugin, ModelDescription, NamedTensor, Pooling, ReceptiveField, TokenPooling,
    pool_map,
};
pub use select::{LayerSelector, select_layers};
pub use shiftscope_abi as abi;
pub use tensor::{Tensor, TensorRef};

/// The compiler that built this SDK (and so the plugin linking it).
pub const RUSTC_VERSION: &str = env!("SHIFTSCOPE_SDK_RUSTC_VERSION");
/// This SDK's version.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exports a [`ModelAdapterPlugin`] as the library's plugin entry.
///
/// Emits `shiftscope_plugin_entry` unless the invoking crate's `builtin` feature is on.
#[macro_export]
macro_rules! export_model_adapter {
    ($ty:ty) => {
        $crate::__export_plugin!(
            $ty,
            ModelAdapterPlugin,
            ModelAdapterTable,
            model_table,
            MODEL_ADAPTER
        );
    };
}

/// Exports a [`DatasetSourcePlugin`] as the library's plugin entry.
///
/// Emits `shiftscope_plugin_entry` unless the invoking crate's `builtin` feature is on.
#[macro_export]
macro_rules! export_dataset_source {
    ($ty:ty) => {
        $crate::__export_plugin!(
            $ty,
            DatasetSourcePlugin,
            DatasetSourceTable,
            dataset_table,
            DATASET_SOURCE
        );
    };
}

/// The body of both export macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($ty:ty, $plugin_trait:ident, $table:ident, $table_fn:ident, $kind:ident) => {
        #[cfg(not(feature = "builtin"))]
        const _: () = {
            static TABLE: $crate::abi::$table = $crate::ffi::$table_fn::<$ty>();
            static HEADER: $crate::ffi::HeaderCell = $crate::ffi::HeaderCell::new();

            /// The plugin entry: see `shiftscope_abi::EntryFn`.
            #[unsafe(no_mangle)]
            pub extern "C" fn shiftscope_plugin_entry(
                host_abi_major: u32,
            ) -> *const $crate::abi::PluginHeader {
                HEADER.get(
                    host_abi_major,
                    $crate::abi::PluginKind::$kind,
                    <$ty as $crate::$plugin_trait>::NAME,
                    <$ty as $crate::$plugin_trait>::VERSION,
                    cfg!(debug_assertions),
                    (&raw const TABLE).cast(),
                )
            }
        };
    };
}
