//! Study configs: RON files naming the model, its preprocessing and layers, the datasets
//! with their roles, the store and the recording options. Parsed into typed structs with
//! unknown fields refused; every error names the file, the line and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shiftscope_sdk::{ConvPooling, InputSpec, Pooling, TokenPooling};
use shiftscope_store::{Precision, Role};

use crate::Preprocessing;

/// Where a model runs (the ONNX adapter's devices).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU by index; an error when it cannot be used.
    Cuda(u32),
    /// CUDA 0 when it works, else the CPU.
    Auto,
}

/// Pooling of conv maps.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum ConvPool {
    /// Spatial mean.
    #[default]
    Mean,
    /// Spatial max.
    Max,
}

/// Pooling of token sequences.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum TokenPool {
    /// Mean over tokens.
    #[default]
    Mean,
    /// Token 0.
    Cls,
    /// Max over tokens.
    Max,
}

/// How layers are pooled to one value per neuron.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolingConfig {
    /// For conv layers.
    pub conv: ConvPool,
    /// For token layers.
    pub tokens: TokenPool,
}

impl PoolingConfig {
    /// The SDK's pooling.
    pub fn to_pooling(self) -> Pooling {
        Pooling {
            conv: match self.conv {
                ConvPool::Mean => ConvPooling::Mean,
                ConvPool::Max => ConvPooling::Max,
            },
            tokens: match self.tokens {
                TokenPool::Mean => TokenPooling::Mean,
                TokenPool::Cls => TokenPooling::Cls,
                TokenPool::Max => TokenPooling::Max,
            },
        }
    }
}

fn onnx() -> String {
    "onnx".to_owned()
}

/// The model entry of a study.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model-adapter plugin.
    #[serde(default = "onnx")]
    pub adapter: String,
    /// The model file (relative to the config file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Device.
    #[serde(default)]
    pub device: Device,
    /// Intra-op threads; all cores when absent.
    #[serde(default)]
    pub threads: Option<usize>,
    /// The ONNX Runtime library.
    #[serde(default)]
    pub ort_lib: Option<PathBuf>,
    /// The graph output holding the logits, for an ONNX model with several outputs (by
    /// default the only one, else the one named `logits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The adapter's own config (RON), for adapters other than `onnx`; replaces the fields
    /// above when given.
    #[serde(default)]
    pub options: Option<String>,
    /// How images become model inputs; when absent, the default for the model's input size
    /// ([`Preprocessing::for_input`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
    /// Layer selectors (see `shiftscope layers --help`); the default selection when empty.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Pooling.
    #[serde(default)]
    pub pooling: PoolingConfig,
}

/// The role of a dataset, as configs spell it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum DatasetRole {
    /// In distribution.
    Id,
    /// Out of distribution.
    Ood,
}

/// One dataset of a study.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name, as `shiftscope datasets` lists it.
    pub name: String,
    /// The plugin offering it; the name's first segment when absent.
    #[serde(default)]
    pub plugin: Option<String>,
    /// `Id` or `Ood`; the first dataset is `Id` and the others `Ood` when absent.
    #[serde(default)]
    pub role: Option<DatasetRole>,
    /// Record only the first `limit` images.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl DatasetConfig {
    /// The plugin that offers the dataset.
    pub fn plugin(&self) -> &str {
        self.plugin
            .as_deref()
            .unwrap_or_else(|| self.name.split('/').next().unwrap_or(&self.name))
    }
}

/// How recording runs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Images per model run.
    pub batch_size: usize,
    /// Reader threads (reading and preprocessing); half the cores when absent.
    pub readers: Option<usize>,
    /// Thumbnail side in pixels.
    pub thumb: usize,
    /// Precision of layer files.
    pub precision: Precision,
    /// Record at most this many images of every dataset.
    pub limit: Option<usize>,
    /// Seconds between commits (each commit syncs every file); 0 commits after every batch.
    /// An interrupted run loses at most this much work.
    pub commit_seconds: f64,
}

impl Default for RecordingConfig {
    fn default() -> RecordingConfig {
        RecordingConfig {
            batch_size: 64,
            readers: None,
            thumb: 64,
            precision: Precision::F32,
            limit: None,
            commit_seconds: 1.0,
        }
    }
}

/// A study: what `shiftscope extract` records.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// The store folder (relative to the config file).
    pub store: PathBuf,
    /// The model.
    pub model: ModelConfig,
    /// The datasets, in the order they are recorded (the ID one is recorded first).
    pub datasets: Vec<DatasetConfig>,
    /// Plugin configs by plugin name (RON text each).
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
    /// Recording options.
    #[serde(default)]
    pub recording: RecordingConfig,
}

/// `path` as seen from `base` (absolute paths stay as they are).
fn relative_to(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// A config that cannot be used; the message names the file, and line and field where known.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// What is wrong, with the line where known.
    pub message: String,
}

impl StudyConfig {
    /// Reads and checks a config file; relative paths in it are made relative to its folder.
    pub fn load(path: &Path) -> Result<StudyConfig, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        // `implicit_some`: optional fields take plain values (`path: "m.onnx"`; `Some(..)` works too).
        let options = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let mut config: StudyConfig = options.from_str(&text).map_err(|e| {
            fail(format!(
                "line {}, column {}: {}",
                e.span.start.line, e.span.start.col, e.code
            ))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.store = relative_to(base, &config.store);
        config.model.path = config.model.path.as_deref().map(|p| relative_to(base, p));
        config.model.ort_lib = config
            .model
            .ort_lib
            .as_deref()
            .map(|p| relative_to(base, p));
        config.check().map_err(fail)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.datasets.is_empty() {
            return Err("field `datasets`: no dataset to record".to_owned());
        }
        let ids = self.roles().iter().filter(|r| **r == Role::Id).count();
        if ids != 1 {
            return Err(format!(
                "field `datasets`: exactly one dataset must have role Id, {ids} have"
            ));
        }
        if self.model.adapter == "onnx" && self.model.path.is_none() && self.model.options.is_none()
        {
            return Err("field `model.path`: the onnx adapter needs the model file".to_owned());
        }
        let commit = self.recording.commit_seconds;
        if !commit.is_finite() || !(0.0..=1e9).contains(&commit) {
            return Err(
                "field `recording.commit_seconds` must be a number of seconds, 0 or more"
                    .to_owned(),
            );
        }
        if self.recording.batch_size == 0 || self.recording.thumb == 0 {
            return Err("field `recording`: batch_size and thumb must be at least 1".to_owned());
        }
        let mut names: Vec<&str> = self.datasets.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("field `datasets`: a dataset is listed twice".to_owned());
        }
        Ok(())
    }

    /// Each dataset's role, with the defaults applied.
    pub fn roles(&self) -> Vec<Role> {
        self.datasets
            .iter()
            .enumerate()
            .map(|(i, d)| match d.role {
                Some(DatasetRole::Id) => Role::Id,
                Some(DatasetRole::Ood) => Role::Ood,
                None if i == 0 => Role::Id,
                None => Role::Ood,
            })
            .collect()
    }

    /// The adapter's config text.
    pub fn adapter_config(&self) -> Result<String, String> {
        self.model.adapter_config()
    }
}

impl ModelConfig {
    /// The `onnx` adapter's config for the model file at `path`, on the CPU with every
    /// core, with the given preprocessing (what a store's manifest records).
    pub fn for_file(adapter: &str, path: &Path, preprocessing: Preprocessing) -> ModelConfig {
        ModelConfig {
            adapter: adapter.to_owned(),
            path: Some(path.to_path_buf()),
            device: Device::default(),
            threads: None,
            ort_lib: None,
            output: None,
            options: None,
            preprocessing: Some(preprocessing),
            layers: Vec::new(),
            pooling: PoolingConfig::default(),
        }
    }

    /// The preprocessing for a model whose input is `input`: the declared one, else the
    /// default for the input's size.
    pub fn preprocessing_for(&self, input: Option<&InputSpec>) -> Preprocessing {
        self.preprocessing
            .clone()
            .unwrap_or_else(|| Preprocessing::for_input(input))
    }

    /// The adapter's config text.
    pub fn adapter_config(&self) -> Result<String, String> {
        if let Some(options) = &self.options {
            return Ok(options.clone());
        }
        #[derive(Serialize)]
        struct OnnxConfig<'a> {
            model: &'a Path,
            device: Device,
            threads: Option<usize>,
            ort_lib: Option<&'a Path>,
            #[serde(skip_serializing_if = "Option::is_none")]
            input_size: Option<[usize; 2]>,
            #[serde(skip_serializing_if = "Option::is_none")]
            output: Option<&'a str>,
        }
        let model = self.path.as_deref().unwrap_or(Path::new(""));
        // A model of symbolic input size runs at the declared crop.
        let input_size = self
            .preprocessing
            .as_ref()
            .and_then(|p| p.crop)
            .map(|c| [c as usize; 2]);
        ron::to_string(&OnnxConfig {
            model,
            device: self.device,
            threads: self.threads,
            ort_lib: self.ort_lib.as_deref(),
            input_size,
            output: self.output.as_deref(),
        })
        .map_err(|e| format!("writing the adapter config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("study.ron");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_small_config_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"(
                store: "out/store",
                model: (path: "m.onnx", preprocessing: (resize: None, crop: Some(28))),
                datasets: [(name: "colored-mnist/id"), (name: "colored-mnist/permuted", limit: Some(10))],
                plugins: {"colored-mnist": "(procedural: true)"},
            )"#,
        );
        let config = StudyConfig::load(&path).unwrap();
        assert_eq!(config.store, dir.path().join("out/store"));
        assert_eq!(config.model.path, Some(dir.path().join("m.onnx")));
        assert_eq!(config.model.adapter, "onnx");
        assert_eq!(config.roles(), vec![Role::Id, Role::Ood]);
        assert_eq!(config.datasets[1].plugin(), "colored-mnist");
        assert_eq!(config.recording.batch_size, 64);
        let adapter = config.adapter_config().unwrap();
        assert!(
            adapter.contains("m.onnx") && adapter.contains("device:Cpu"),
            "{adapter}"
        );
        assert!(!adapter.contains("output"), "{adapter}");
        let mut named = config.model.clone();
        named.output = Some("logits".into());
        let adapter = named.adapter_config().unwrap();
        assert!(adapter.contains(r#"output:Some("logits")"#), "{adapter}");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "(\n  store: \"s\",\n  modle: (),\n)");
        let e = StudyConfig::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(e.contains("line 3") && e.contains("modle"), "{e}");

        let path = write(
            dir.path(),
            "(store: \"s\", model: (path: \"m.onnx\", pooling: (conv: Median)), datasets: [(name: \"a/b\")])",
        );
        let e = StudyConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("Median"), "{e}");

        let path = write(
            dir.path(),
            "(store: \"s\", model: (path: \"m.onnx\"), datasets: [(name: \"a/b\", role: Some(Ood))])",
        );
        let e = StudyConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("exactly one dataset must have role Id"), "{e}");
        let missing = dir.path().join("nope.ron");
        assert!(
            StudyConfig::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
