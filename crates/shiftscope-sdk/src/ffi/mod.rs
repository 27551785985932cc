//! The glue between the safe traits and the C ABI, in both directions.
//!
//! Plugin side: [`model_table`] and [`dataset_table`] build a function table for a plugin
//! type, with every body inside `catch_unwind` ([`HeaderCell`] serves the header); the
//! export macros are thin wrappers around them. Host side: the `read_*` functions turn
//! views that crossed the boundary back into owned values, checking every pointer, length
//! and code first. Both sides use the same conversions, so they cannot drift apart.
//!
//! Plugin authors do not call anything here directly.

mod dataset;
mod export;
mod model;
mod views;

pub use dataset::dataset_table;
pub use export::HeaderCell;
pub use model::{GradientRequestKeep, gradient_request_view, model_table, read_gradient};
pub use views::{
    objective_from_code, objective_to_code, pooling_from_view, pooling_to_view,
    read_activation_set, read_catalog, read_decision_layer, read_description, read_f32_tensor,
    read_sample, read_slice, read_str, read_str_list, shape_to_i64, tensor_view,
};
