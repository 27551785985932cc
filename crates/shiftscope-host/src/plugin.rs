//! One plugin, built in or loaded from a library, and how instances are made from it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shiftscope_abi::{ABI_MAJOR, ABI_MINOR};
use shiftscope_sdk::{
    DatasetSource, DatasetSourcePlugin, ModelAdapter, ModelAdapterPlugin, PluginError,
};

use crate::checked::{CheckedModel, CheckedSource};
use crate::dynamic::{self, LoadedTable};
use crate::{LoadError, Origin};

/// The two kinds of plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginKindName {
    /// Runs a model and records its layers.
    ModelAdapter,
    /// Offers an in-distribution dataset and its shifts.
    DatasetSource,
}

impl fmt::Display for PluginKindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKindName::ModelAdapter => "model-adapter",
            PluginKindName::DatasetSource => "dataset-source",
        })
    }
}

/// Where a plugin comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into the binary.
    Builtin,
    /// Loaded from a shared library.
    Library {
        /// The file.
        path: PathBuf,
        /// Why the file was on the search path.
        origin: Origin,
    },
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Builtin => f.write_str("built-in"),
            PluginSource::Library { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// What is known about a plugin without running it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Model adapter or dataset source.
    pub kind: PluginKindName,
    /// Unique name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// ABI major it was built for.
    pub abi_major: u32,
    /// ABI minor it was built for.
    pub abi_minor: u32,
    /// Compiler and profile.
    pub build_info: String,
    /// Built in, or the library file.
    pub source: PluginSource,
}

impl fmt::Display for PluginInfo {
    /// `plugin 'name' version (source)`: how every message names a plugin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin '{}' {} ({})",
            self.name, self.version, self.source
        )
    }
}

type ModelFactory = dyn Fn(&str) -> Result<Box<dyn ModelAdapter>, PluginError> + Send + Sync;
type SourceFactory = dyn Fn(&str) -> Result<Box<dyn DatasetSource>, PluginError> + Send + Sync;

#[derive(Clone)]
enum Factory {
    Model(Arc<ModelFactory>),
    Source(Arc<SourceFactory>),
}

/// A plugin that instances can be made from.
#[derive(Clone)]
pub struct Plugin {
    info: Arc<PluginInfo>,
    factory: Factory,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("info", &self.info).finish()
    }
}

fn builtin_info(kind: PluginKindName, name: &str, version: &str) -> PluginInfo {
    PluginInfo {
        kind,
        name: name.to_owned(),
        version: version.to_owned(),
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        build_info: format!(
            "linked into this binary ({})",
            shiftscope_sdk::RUSTC_VERSION
        ),
        source: PluginSource::Builtin,
    }
}

impl Plugin {
    /// A model adapter linked into the binary.
    pub fn builtin_model<T: ModelAdapterPlugin>() -> Plugin {
        Plugin {
            info: Arc::new(builtin_info(
                PluginKindName::ModelAdapter,
                T::NAME,
                T::VERSION,
            )),
            factory: Factory::Model(Arc::new(|config: &str| {
                T::create(config).map(|m| Box::new(m) as Box<dyn ModelAdapter>)
            })),
        }
    }

    /// A dataset source linked into the binary.
    pub fn builtin_dataset<T: DatasetSourcePlugin>() -> Plugin {
        Plugin {
            info: Arc::new(builtin_info(
                PluginKindName::DatasetSource,
                T::NAME,
                T::VERSION,
            )),
            factory: Factory::Source(Arc::new(|config: &str| {
                T::create(config).map(|s| Box::new(s) as Box<dyn DatasetSource>)
            })),
        }
    }

    /// Loads a plugin from a shared library: opens it, calls its entry, checks the ABI
    /// version, the kind and the function table. The library is never unloaded.
    pub fn load(path: &Path, origin: Origin) -> Result<Plugin, LoadError> {
        let (info, table) = dynamic::load(path, origin)?;
        let info = Arc::new(info);
        let factory = match table {
            LoadedTable::Model(table) => {
                let info = Arc::clone(&info);
                Factory::Model(Arc::new(move |config: &str| {
                    dynamic::DynModelAdapter::create(table, Arc::clone(&info), config)
                        .map(|m| Box::new(m) as Box<dyn ModelAdapter>)
                }))
            }
            LoadedTable::Source(table) => {
                let info = Arc::clone(&info);
                Factory::Source(Arc::new(move |config: &str| {
                    dynamic::DynDatasetSource::create(table, Arc::clone(&info), config)
                        .map(|s| Box::new(s) as Box<dyn DatasetSource>)
                }))
            }
        };
        Ok(Plugin { info, factory })
    }

    /// What is known about the plugin.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// A model adapter instance whose outputs are checked against its own description:
    /// what the runtime uses.
    pub fn create_model(&self, config: &str) -> Result<CheckedModel, PluginError> {
        let inner = self.create_model_unchecked(config)?;
        Ok(CheckedModel::new(inner, self.info.to_string()))
    }

    /// A dataset source instance whose datasets' samples are checked: what the runtime uses.
    pub fn create_dataset_source(
        &self,
        config: &str,
    ) -> Result<Box<dyn DatasetSource>, PluginError> {
        let inner = self.create_dataset_source_unchecked(config)?;
        Ok(Box::new(CheckedSource::new(inner, self.info.to_string())))
    }

    /// The plugin's own instance without the host's output checks, for conformance tests.
    pub fn create_model_unchecked(
        &self,
        config: &str,
    ) -> Result<Box<dyn ModelAdapter>, PluginError> {
        match &self.factory {
            Factory::Model(make) => {
                make(config).map_err(|e| e.context(format!("{}: create", self.info)))
            }
            Factory::Source(_) => Err(PluginError::invalid_argument(format!(
                "{} is a dataset source, not a model adapter",
                self.info
            ))),
        }
    }

    /// The plugin's own instance without the host's sample checks, for conformance tests.
    pub fn create_dataset_source_unchecked(
        &self,
        config: &str,
    ) -> Result<Box<dyn DatasetSource>, PluginError> {
        match &self.factory {
            Factory::Source(make) => {
                make(config).map_err(|e| e.context(format!("{}: create", self.info)))
            }
            Factory::Model(_) => Err(PluginError::invalid_argument(format!(
                "{} is a model adapter, not a dataset source",
                self.info
            ))),
        }
    }
}
