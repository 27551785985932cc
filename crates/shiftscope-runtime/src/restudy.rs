//! A store's study rebuilt from its manifest: the same datasets (names, plugins, plugin
//! configs, roles, lengths), layers, pooling, preprocessing, thumbnails and precision, with
//! another model file and another store folder. This is how a repaired model is re-recorded
//! on every dataset of the store it was repaired from. Also the store model's decision layer
//! ([`store_decision_layer`]), for explanation and repair.

use std::path::{Path, PathBuf};

use shiftscope_host::Registry;
use shiftscope_sdk::{DecisionLayer, ModelAdapter};
use shiftscope_store::{Manifest, Role};

use crate::{
    ConvPool, DatasetConfig, DatasetRole, ModelConfig, PoolingConfig, Preprocessing,
    RecordingConfig, StudyConfig, TokenPool,
};

/// The model file a store was recorded from: the manifest's path when it exists as written
/// (absolute, or relative to the working folder), else the same path relative to the store's
/// parent folder. The error names the manifest and what was tried.
pub fn store_model_file(store: &Path, manifest: &Manifest) -> Result<PathBuf, String> {
    let named = PathBuf::from(&manifest.model.path);
    let where_ = store.join("manifest.json");
    if named.as_os_str().is_empty() {
        return Err(format!(
            "{}: the store names no model file (adapter '{}')",
            where_.display(),
            manifest.model.adapter
        ));
    }
    if named.exists() {
        return Ok(named);
    }
    if named.is_relative()
        && let Some(parent) = store.parent()
    {
        let beside = parent.join(&named);
        if beside.exists() {
            return Ok(beside);
        }
    }
    Err(format!(
        "{}: the model file '{}' does not exist (tried as written and next to the store); \
         pass the model with --model",
        where_.display(),
        named.display()
    ))
}

/// The preprocessing a store's manifest records.
pub fn store_preprocessing(store: &Path, manifest: &Manifest) -> Result<Preprocessing, String> {
    serde_json::from_value(manifest.model.preprocessing.clone()).map_err(|e| {
        format!(
            "{}: model.preprocessing: {e}",
            store.join("manifest.json").display()
        )
    })
}

/// The decision layer of the model a store was recorded from (or of `model`, which replaces
/// the manifest's file), through the store's adapter in `registry`, with the model file used
/// and the adapter (for exporting an edited copy). Errors name the model and say why the
/// layer is not available.
pub fn store_decision_layer(
    store: &Path,
    manifest: &Manifest,
    registry: &Registry,
    model: Option<&Path>,
) -> Result<(PathBuf, DecisionLayer, Box<dyn ModelAdapter>), String> {
    let model_path = match model {
        Some(m) => m.to_path_buf(),
        None => store_model_file(store, manifest)?,
    };
    let preprocessing = store_preprocessing(store, manifest)?;
    let config = ModelConfig::for_file(&manifest.model.adapter, &model_path, preprocessing)
        .adapter_config()?;
    let mut adapter: Box<dyn ModelAdapter> = Box::new(
        registry
            .create_model(&manifest.model.adapter, &config)
            .map_err(|e| format!("{}: {e}", model_path.display()))?,
    );
    let layer = adapter.decision_layer().map_err(|e| {
        format!(
            "{}: the model's decision layer is not available: {e}",
            model_path.display()
        )
    })?;
    Ok((model_path, layer, adapter))
}

/// The study that re-records the store at `store` (manifest `manifest`) with the model file
/// `model` into `out`.
pub fn study_from_store(
    store: &Path,
    manifest: &Manifest,
    model: &Path,
    out: &Path,
) -> Result<StudyConfig, String> {
    let preprocessing = store_preprocessing(store, manifest)?;
    let mut pooling = PoolingConfig::default();
    for layer in &manifest.layers {
        match (layer.kind.as_str(), layer.pooling.as_str()) {
            ("conv", "max") => pooling.conv = ConvPool::Max,
            ("tokens", "cls") => pooling.tokens = TokenPool::Cls,
            ("tokens", "max") => pooling.tokens = TokenPool::Max,
            _ => {}
        }
    }
    let mut model_config = ModelConfig::for_file(&manifest.model.adapter, model, preprocessing);
    model_config.layers = manifest
        .layers
        .iter()
        .filter(|l| l.kind != "logits")
        .map(|l| l.name.clone())
        .collect();
    model_config.pooling = pooling;
    let mut plugins = std::collections::BTreeMap::new();
    let datasets = manifest
        .datasets
        .iter()
        .map(|d| {
            if let Some(config) = d.params.get("plugin_config") {
                plugins.insert(d.plugin.clone(), config.clone());
            }
            DatasetConfig {
                name: d.name.clone(),
                plugin: Some(d.plugin.clone()),
                role: Some(match d.role {
                    Role::Id => DatasetRole::Id,
                    Role::Ood => DatasetRole::Ood,
                }),
                limit: Some(d.len),
            }
        })
        .collect();
    Ok(StudyConfig {
        store: out.to_path_buf(),
        model: model_config,
        datasets,
        plugins,
        recording: RecordingConfig {
            thumb: manifest.thumb,
            precision: manifest.precision,
            ..RecordingConfig::default()
        },
    })
}
