//! The host side of the plugin contract. It owns: the plugin search path
//! ([`SearchPath`]), loading shared libraries with libloading and checking their header,
//! ABI version and function tables ([`Plugin::load`]), wrapping a loaded table back into the
//! SDK's safe traits, checking every plugin's outputs against what it declared
//! ([`checked`]), and the [`Registry`] of built-in and discovered plugins with the reason
//! each refused library was refused.
//!
//! Libraries are loaded once and never unloaded: a `Plugin` keeps its library for the life
//! of the process. Built-in and loaded plugins come out of the registry as the same
//! `Box<dyn ModelAdapter>` / `Box<dyn DatasetSource>`, so callers cannot tell them apart.

pub mod checked;
mod dynamic;
mod error;
mod plugin;
mod registry;
mod search;

pub use error::LoadError;
pub use plugin::{Plugin, PluginInfo, PluginKindName, PluginSource};
pub use registry::{LoadFailure, Registry};
pub use search::{Origin, PLUGIN_PATH_ENV, SearchPath};
