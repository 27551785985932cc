//! All plugins of a process: the built-in ones first, then those found on the search path,
//! with the reason for each library that was refused.

use std::path::PathBuf;

use shiftscope_sdk::{DatasetSource, PluginError};

use crate::checked::CheckedModel;

use crate::{LoadError, Plugin, PluginKindName, SearchPath};

/// A library that was not accepted, and why.
#[derive(Debug)]
pub struct LoadFailure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: LoadError,
}

/// The plugins of a process, by unique name. The first plugin to claim a name keeps it.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: Vec<Plugin>,
    failures: Vec<LoadFailure>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a plugin; a name already taken is refused (and recorded as a failure when the
    /// plugin came from a library).
    pub fn add(&mut self, plugin: Plugin) -> Result<(), LoadError> {
        if let Some(existing) = self.get(&plugin.info().name) {
            let error = LoadError::Duplicate {
                path: match &plugin.info().source {
                    crate::PluginSource::Library { path, .. } => path.clone(),
                    crate::PluginSource::Builtin => PathBuf::from("(built-in)"),
                },
                name: plugin.info().name.clone(),
                version: plugin.info().version.clone(),
                existing: existing.info().to_string(),
            };
            return Err(error);
        }
        tracing::debug!("registered {}", plugin.info());
        self.plugins.push(plugin);
        Ok(())
    }

    /// Loads every library on `search`, keeping the ones that pass and recording why each
    /// other one was refused. Returns how many were added.
    pub fn load_search_path(&mut self, search: &SearchPath) -> usize {
        let (candidates, problems) = search.candidates();
        for error in problems {
            self.record(error);
        }
        let mut added = 0;
        for (path, origin) in candidates {
            match Plugin::load(&path, origin).and_then(|plugin| self.add(plugin)) {
                Ok(()) => added += 1,
                Err(error) => self.record(error),
            }
        }
        added
    }

    fn record(&mut self, error: LoadError) {
        tracing::info!("plugin not loaded: {error}");
        self.failures.push(LoadFailure {
            path: error.path().to_path_buf(),
            error,
        });
    }

    /// The accepted plugins, built-in first, then in search order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The refused libraries, with reasons.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.info().name == name)
    }

    fn find(&self, name: &str, kind: PluginKindName) -> Result<&Plugin, PluginError> {
        let plugin = self.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .plugins
                .iter()
                .filter(|p| p.info().kind == kind)
                .map(|p| p.info().name.as_str())
                .collect();
            PluginError::not_found(format!(
                "no {kind} plugin named '{name}' (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        Ok(plugin)
    }

    /// A checked model adapter instance of the plugin `name`.
    pub fn create_model(&self, name: &str, config: &str) -> Result<CheckedModel, PluginError> {
        self.find(name, PluginKindName::ModelAdapter)?
            .create_model(config)
    }

    /// A checked dataset source instance of the plugin `name`.
    pub fn create_dataset_source(
        &self,
        name: &str,
        config: &str,
    ) -> Result<Box<dyn DatasetSource>, PluginError> {
        self.find(name, PluginKindName::DatasetSource)?
            .create_dataset_source(config)
    }
}
