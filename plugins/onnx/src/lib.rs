//! `shiftscope-onnx`: the model adapter for any ONNX image classifier, through ONNX Runtime
//! (`ort`, loaded dynamically: no CDN, no build-time download). It owns: finding and starting
//! the runtime ([`runtime`]), decoding the model and editing it in memory to expose and pool
//! intermediate tensors ([`graph`]), layer discovery and the default selection
//! ([`discovery`]), sessions per device, built once per request shape and reused, and the
//! gradient of a layer objective through a backward graph it derives ([`backward`],
//! [`gradient`]).
//!
//! Config (RON): `(model: "resnet18.onnx", device: Cpu, threads: Some(2), ort_lib: None,
//! optimization: All)`; only `model` is required. `device` is `Cpu`, `Cuda(0)` (fails when
//! CUDA cannot be used: never a silent CPU fallback) or `Auto` (CUDA if it works, else CPU,
//! and the description's notes say which).

mod backward;
mod decision;
mod discovery;
mod external;
mod gradient;
mod graph;
mod names;
mod receptive;
mod runtime;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ort::ep;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef as OrtTensorRef, ValueType};
use serde::{Deserialize, Serialize};
use shiftscope_sdk::{
    ActivationSet, DecisionLayer, Gradient, GradientRequest, InputSpec, LayerKind, ModelAdapter,
    ModelAdapterPlugin, ModelDescription, NamedTensor, PluginError, Pooling, Tensor, TensorRef,
};

use crate::graph::{Exposed, Graph, show_dims};
pub use crate::runtime::ORT_VERSION;

/// The process's ONNX Runtime environment, started as the adapter starts it (library search
/// order and version check included): for tools and benchmarks that build their own bare
/// sessions next to the adapter's, since a process holds one environment.
pub fn environment(ort_lib: Option<&Path>) -> Result<ort::environment::Environment, PluginError> {
    runtime::runtime(ort_lib, false).map(|rt| rt.env)
}

/// The plugin's name.
pub const NAME: &str = "onnx";

/// Where a session runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU by index; an error when it cannot be used.
    Cuda(u32),
    /// CUDA device 0 when it works, else the CPU.
    Auto,
}

/// ONNX Runtime's graph optimisation level.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Optimization {
    /// No graph optimisation.
    Disable,
    /// Constant folding and redundant-node removal.
    Basic,
    /// Plus node fusions.
    Extended,
    /// Everything (the default).
    #[default]
    All,
}

/// The plugin's config, as RON: `(model: "model.onnx")` and optional fields.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The ONNX file. Read, never written.
    pub model: PathBuf,
    /// Where sessions run.
    #[serde(default)]
    pub device: Device,
    /// Intra-op threads; all cores when absent.
    #[serde(default)]
    pub threads: Option<usize>,
    /// The ONNX Runtime library to load, before `ORT_DYLIB_PATH`, the cache and the system.
    #[serde(default)]
    pub ort_lib: Option<PathBuf>,
    /// Graph optimisation level.
    #[serde(default)]
    pub optimization: Optimization,
    /// The graph output holding the logits, for models with several outputs; by default the
    /// only output, else the one named `logits`, else the only one of per-image rank 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Height and width for a model whose input size is symbolic (`[?, 3, ?, ?]`): what layer
    /// shapes are computed at; 224 × 224 by default. Ignored for fixed sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<[usize; 2]>,
}

impl Config {
    /// The config for `model` with every default.
    pub fn for_model(model: &Path) -> Config {
        Config {
            model: model.to_path_buf(),
            device: Device::Cpu,
            threads: None,
            ort_lib: None,
            optimization: Optimization::All,
            output: None,
            input_size: None,
        }
    }

    /// The config as the RON text the plugin's `create` takes.
    pub fn to_ron(&self) -> Result<String, PluginError> {
        ron::to_string(self).map_err(|e| PluginError::failed(format!("writing the config: {e}")))
    }
}

/// What a session is for: a set of exposed tensors.
type SessionKey = Vec<Exposed>;

/// An ONNX model ready to run.
pub struct OnnxModel {
    path: PathBuf,
    graph: Graph,
    runtime: runtime::Runtime,
    device: Device,
    threads: usize,
    optimization: Optimization,
    output: Option<String>,
    /// Height and width of the dry run where the input's are symbolic.
    input_size: [usize; 2],
    description: ModelDescription,
    /// Layer name → the graph tensor it reads.
    tensors: HashMap<String, String>,
    /// Per-image shapes from the dry run, by tensor (the image input's included).
    shapes: HashMap<String, Vec<usize>>,
    /// Every float tensor's whole shape at a batch of one, and which axes grow with the
    /// batch (learnt for the gradient rules).
    full_shapes: HashMap<String, (Vec<usize>, Vec<bool>)>,
    /// The int64 tensors computed from shapes alone (Shape, Gather, Concat, arithmetic),
    /// whatever the batch: the gradient rules read them as constants.
    shape_constants: HashMap<String, onnx_protobuf::TensorProto>,
    /// Gradient sessions, by the target layer's tensor.
    gradient_sessions: HashMap<gradient::GradientKey, Session>,
    sessions: HashMap<SessionKey, Session>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn ort_error(context: &str, error: impl std::fmt::Display) -> PluginError {
    PluginError::failed(format!("{context}: {error}"))
}

impl ModelAdapterPlugin for OnnxModel {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<OnnxModel, PluginError> {
        let config: Config = ron::from_str(config).map_err(|e| {
            PluginError::invalid_argument(format!(
                "{NAME} config: {e} (expected e.g. `(model: \"model.onnx\", device: Cpu)`)"
            ))
        })?;
        OnnxModel::open(&config)
    }
}

impl OnnxModel {
    /// Opens `path` with default settings (CPU, all cores, full optimisation).
    pub fn from_path(path: &Path) -> Result<OnnxModel, PluginError> {
        OnnxModel::open(&Config::for_model(path))
    }

    /// Opens a model with `config`.
    pub fn open(config: &Config) -> Result<OnnxModel, PluginError> {
        let path = config.model.clone();
        let bytes = std::fs::read(&path).map_err(|e| {
            PluginError::not_found(format!("{}: cannot read the model: {e}", path.display()))
        })?;
        let graph = Graph::parse(&bytes, &path)?;
        let data_files: Vec<String> = external::files(graph.model(), &graph.dir)
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let gpu = config.device != Device::Cpu;
        let runtime = runtime::runtime(config.ort_lib.as_deref(), gpu)?;
        let threads = config.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        let mut model = OnnxModel {
            path,
            graph,
            device: config.device,
            threads,
            optimization: config.optimization,
            output: config.output.clone(),
            input_size: config.input_size.unwrap_or([224, 224]),
            description: ModelDescription {
                inputs: Vec::new(),
                layers: Vec::new(),
                class_names: Vec::new(),
                num_classes: 0,
                notes: vec![format!(
                    "ONNX Runtime {} from {}",
                    runtime.version,
                    runtime.library.display()
                )],
                data_files,
            },
            runtime,
            tensors: HashMap::new(),
            shapes: HashMap::new(),
            full_shapes: HashMap::new(),
            shape_constants: HashMap::new(),
            gradient_sessions: HashMap::new(),
            sessions: HashMap::new(),
        };
        if let Some((count, bytes)) = model.graph.external {
            model.description.notes.push(format!(
                "external data: {count} tensors ({:.1} MB) read from side files in {}",
                bytes as f64 / 1e6,
                model.graph.dir.display()
            ));
        }
        model.dry_run()?;
        Ok(model)
    }

    /// Runs one image with every candidate tensor exposed, to learn shapes and kinds; also
    /// settles the device (`Auto`).
    fn dry_run(&mut self) -> Result<(), PluginError> {
        let input = self.graph.input.clone();
        let [_, c, h, w] = input.shape;
        let Some(c) = c else {
            return Err(PluginError::invalid_argument(format!(
                "{}: input '{}' has shape {}; shiftscope needs a fixed number of channels",
                self.path.display(),
                input.name,
                show_dims(&input.shape)
            )));
        };
        let (h, w) = match (h, w) {
            (Some(h), Some(w)) => (h, w),
            _ => {
                let [dh, dw] = self.input_size;
                let (h, w) = (h.unwrap_or(dh), w.unwrap_or(dw));
                self.description.notes.push(format!(
                    "input size is symbolic: layer shapes shown for {h}×{w} (set `input_size` in \
                     the model config, or the preprocessing's crop, for another)"
                ));
                (h, w)
            }
        };
        if let Some(original) = &input.channels_last {
            self.description.notes.push(format!(
                "channels-last input '{original}' {}: fed channel-first as '{}' through a \
                 Transpose shiftscope adds",
                show_dims(&[
                    input.shape[0],
                    input.shape[2],
                    input.shape[3],
                    input.shape[1]
                ]),
                input.name
            ));
        }
        let candidates: Vec<(String, String)> = self.graph.candidate_tensors();
        let exposed: Vec<Exposed> = candidates
            .iter()
            .map(|(name, _)| Exposed::Full(name.clone()))
            .collect();
        let bytes = self.graph.with_outputs(&exposed)?;
        let session = match self.device {
            Device::Auto => {
                match self.build_session(&bytes, Device::Cuda(0), GraphOptimizationLevel::Disable) {
                    Ok(session) => {
                        self.device = Device::Cuda(0);
                        self.description
                            .notes
                            .push("device: CUDA 0 (auto)".to_owned());
                        session
                    }
                    Err(e) => {
                        self.device = Device::Cpu;
                        self.description
                            .notes
                            .push(format!("device: CPU (auto; CUDA unavailable: {e})"));
                        self.build_session(&bytes, Device::Cpu, GraphOptimizationLevel::Disable)?
                    }
                }
            }
            device => {
                self.description.notes.push(match device {
                    Device::Cuda(id) => format!("device: CUDA {id}"),
                    _ => format!("device: CPU, {} intra-op threads", self.threads),
                });
                self.build_session(&bytes, device, GraphOptimizationLevel::Disable)?
            }
        };
        let mut session = session;
        // Hidden layers of another float type (a float16 model keeps float32 only at its
        // inputs and outputs): exposed through a Cast, so they are recorded as float32.
        let other_floats: HashSet<String> = session
            .outputs()
            .iter()
            .filter(|o| {
                matches!(
                    o.dtype(),
                    ValueType::Tensor {
                        ty: TensorElementType::Float16
                            | TensorElementType::Bfloat16
                            | TensorElementType::Float64,
                        ..
                    }
                )
            })
            .map(|o| o.name().to_owned())
            .collect();
        if !other_floats.is_empty() {
            self.description.notes.push(format!(
                "{} hidden tensors are float16, bfloat16 or float64: recorded as float32",
                other_floats.len()
            ));
            self.graph.casts = other_floats;
            let bytes = self.graph.with_outputs(&exposed)?;
            session = self.build_session(&bytes, self.device, GraphOptimizationLevel::Disable)?;
        }
        let zeros = vec![0.0f32; c * h * w];
        let outputs = session
            .run(ort::inputs![input.name.as_str() => OrtTensorRef::from_array_view(([1usize, c, h, w], &zeros[..])).map_err(|e| ort_error("dry run input", e))?])
            .map_err(|e| ort_error(&format!("{}: dry run on one image", self.path.display()), e))?;
        let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
        for (name, value) in outputs.iter() {
            let Ok((shape, _)) = value.try_extract_tensor::<f32>() else {
                continue; // not a float tensor: not a layer
            };
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            if dims.first() == Some(&1) && dims.len() >= 2 {
                let tensor = name
                    .strip_prefix("shiftscope/")
                    .and_then(|n| n.strip_suffix("/f32"))
                    .unwrap_or(name);
                shapes.insert(tensor.to_owned(), dims[1..].to_vec());
            }
        }
        drop(outputs);
        self.graph
            .choose_logits(self.output.as_deref(), &shapes, &self.path)?;
        let num_classes = match shapes.get(&self.graph.logits).map(Vec::as_slice) {
            Some([k]) => *k,
            _ => return Err(PluginError::failed("the chosen logits lost their shape")),
        };
        if self.graph.outputs.len() > 1 {
            self.description.notes.push(format!(
                "classifier output: '{}' of {} outputs (set `output` in the model config to choose another)",
                self.graph.logits,
                self.graph.outputs.len()
            ));
        }
        let mut found = discovery::discover(&self.graph, &shapes);
        if let Some(proto) = self.graph.proto() {
            let fed = input.channels_last.as_ref().unwrap_or(&input.name);
            let fields = receptive::receptive_fields(proto, fed, [h, w], &shapes);
            for (layer, tensor) in found.iter_mut().filter(|(l, _)| l.kind == LayerKind::Conv) {
                layer.receptive_field = fields.get(tensor).copied();
            }
        }
        // `logits` selects the classifier's output in every model.
        if !found
            .iter()
            .any(|(l, _)| l.name == "logits" || l.aliases.iter().any(|a| a == "logits"))
            && let Some((layer, _)) = found.iter_mut().find(|(_, t)| *t == self.graph.logits)
        {
            layer.aliases.push("logits".to_owned());
        }
        // A QDQ model's layers are read after their dequantisation: the values the next layer
        // computes with.
        let mut quantised = 0;
        self.tensors = found
            .iter()
            .map(|(layer, tensor)| {
                let read = self
                    .graph
                    .dequantised(tensor)
                    .unwrap_or_else(|| tensor.clone());
                quantised += usize::from(read != *tensor);
                (layer.name.clone(), read)
            })
            .collect();
        if quantised > 0 {
            self.description.notes.push(format!(
                "{quantised} layers are quantised (QDQ): recorded as dequantised after their QuantizeLinear"
            ));
        }
        let layers: Vec<_> = found.into_iter().map(|(layer, _)| layer).collect();
        shapes.insert(input.name.clone(), vec![c, h, w]);
        self.shapes = shapes;
        if input.shape[0] == Some(1) {
            self.description
                .notes
                .push("the model has a fixed batch of 1: images run one at a time".to_owned());
        }
        let class_names = if self.graph.class_names.len() == num_classes {
            self.graph.class_names.clone()
        } else {
            Vec::new()
        };
        self.description.inputs = vec![InputSpec {
            name: input.name.clone(),
            shape: input.shape.to_vec(),
        }];
        self.description.layers = layers;
        self.description.class_names = class_names;
        self.description.num_classes = num_classes;
        Ok(())
    }

    fn build_session(
        &self,
        bytes: &[u8],
        device: Device,
        level: GraphOptimizationLevel,
    ) -> Result<Session, PluginError> {
        let context = format!("{}: building the ONNX Runtime session", self.path.display());
        let mut builder = Session::builder(&self.runtime.env)
            .map_err(|e| ort_error(&context, e))?
            .with_intra_threads(self.threads)
            .map_err(|e| ort_error(&context, e))?
            .with_optimization_level(level)
            .map_err(|e| ort_error(&context, e))?;
        if self.graph.external.is_some() {
            // The model comes from memory: its side files are found in its own folder.
            builder = builder
                .with_config_entry(
                    "session.model_external_initializers_file_folder_path",
                    self.graph.dir.to_string_lossy(),
                )
                .map_err(|e| ort_error(&context, e))?;
        }
        if let Device::Cuda(id) = device {
            builder = builder
                .with_execution_providers([ep::CUDA::default()
                    .with_device_id(id as i32)
                    .build()
                    .error_on_failure()])
                .map_err(|e| {
                    PluginError::failed(format!(
                        "CUDA device {id} was asked for but cannot be used: {}. The CPU library \
                         has no CUDA: fetch the GPU build with `tools/fetch-onnxruntime.sh --gpu`, \
                         or use `device: Cpu`",
                        e.to_string().trim_end_matches('.')
                    ))
                })?;
        }
        builder.commit_from_memory(bytes).map_err(|e| {
            let text = e.to_string();
            if text.contains("Could not find an implementation") {
                // ONNX Runtime's CPU provider has no kernel for an op at this element type
                // (bfloat16 ones, mostly).
                PluginError::unsupported(format!(
                    "{context}: {text}; the {} provider has no kernel for that operator at \
                         its element type (the CPU has none for most bfloat16 ops): convert the \
                         model to float32 or float16, or run it on CUDA",
                    if matches!(device, Device::Cpu) {
                        "CPU"
                    } else {
                        "chosen"
                    }
                ))
            } else {
                ort_error(&context, e)
            }
        })
    }

    fn level(&self) -> GraphOptimizationLevel {
        match self.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        }
    }

    /// The session exposing `key`, built on first use and kept.
    fn session(&mut self, key: &SessionKey) -> Result<&mut Session, PluginError> {
        if !self.sessions.contains_key(key) {
            let bytes = self.graph.with_outputs(key)?;
            let session = self.build_session(&bytes, self.device, self.level())?;
            // Every requested output must have survived optimisation.
            let present: Vec<&str> = session
                .outputs()
                .iter()
                .map(ort::value::Outlet::name)
                .collect();
            for exposed in key {
                let name = self.graph.output_name(exposed);
                if !present.contains(&name.as_str()) {
                    return Err(PluginError::failed(format!(
                        "{}: output '{name}' is missing from the optimised session (ONNX Runtime's \
                         graph optimisation removed it); set `optimization: Disable` in the model config",
                        self.path.display()
                    )));
                }
            }
            self.sessions.insert(key.clone(), session);
        }
        self.sessions
            .get_mut(key)
            .ok_or_else(|| PluginError::failed("session cache lost an entry"))
    }

    /// Checks an input batch against the model's input, naming both shapes.
    fn check_input(&self, input: TensorRef<'_>) -> Result<usize, PluginError> {
        let expected = self.graph.input.shape;
        let shape = input.shape();
        let fits = shape.len() == 4
            && expected
                .iter()
                .zip(shape)
                .skip(1)
                .all(|(e, &s)| e.is_none_or(|e| e == s));
        if !fits {
            return Err(PluginError::invalid_argument(format!(
                "input of shape {shape:?} does not fit the model's input '{}' {}",
                self.graph.input.name,
                show_dims(&expected)
            )));
        }
        Ok(shape[0])
    }

    /// The graph tensor and kind of the layer `name` (its name or an alias).
    fn layer_tensor(&self, name: &str) -> Result<(String, LayerKind), PluginError> {
        self.description
            .layer(name)
            .and_then(|l| Some((self.tensors.get(&l.name)?.clone(), l.kind)))
            .ok_or_else(|| {
                PluginError::not_found(format!(
                    "{}: no layer '{name}' (see `shiftscope layers {}`)",
                    self.path.display(),
                    self.path.display()
                ))
            })
    }

    /// Runs `input` through the session for `key` and returns the outputs for `names`
    /// (each `[B, ...]`) plus the logits. A model with a fixed batch of 1 runs image by image.
    fn execute(
        &mut self,
        key: &SessionKey,
        input: TensorRef<'_>,
        names: &[String],
    ) -> Result<ActivationSet, PluginError> {
        let batch = self.check_input(input)?;
        let per_image: usize = input.shape()[1..].iter().product();
        let chunk = if self.graph.input.shape[0] == Some(1) {
            1
        } else {
            batch.max(1)
        };
        let input_name = self.graph.input.name.clone();
        let logits_name = self.graph.logits.clone();
        let path = self.path.display().to_string();
        let outputs: Vec<String> = key.iter().map(|e| self.graph.output_name(e)).collect();
        let mut collected: Vec<(Vec<usize>, Vec<f32>)> =
            vec![(Vec::new(), Vec::new()); outputs.len() + 1];
        let session = self.session(key)?;
        for (start, images) in input.data().chunks(per_image * chunk).enumerate() {
            let n = images.len() / per_image.max(1);
            let mut shape = vec![n];
            shape.extend_from_slice(&input.shape()[1..]);
            let tensor = OrtTensorRef::from_array_view((shape, images))
                .map_err(|e| ort_error("input tensor", e))?;
            let result = session
                .run(ort::inputs![input_name.as_str() => tensor])
                .map_err(|e| {
                    ort_error(&format!("{path}: run (images from {})", start * chunk), e)
                })?;
            for (slot, name) in collected
                .iter_mut()
                .zip(outputs.iter().chain([&logits_name]))
            {
                let value = result.get(name.as_str()).ok_or_else(|| {
                    PluginError::failed(format!("{path}: the session returned no '{name}'"))
                })?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ort_error(&format!("{path}: output '{name}'"), e))?;
                if slot.0.is_empty() {
                    slot.0 = shape.iter().map(|&d| d.max(0) as usize).collect();
                    slot.0[0] = 0;
                }
                slot.0[0] += shape.first().map_or(0, |&d| d.max(0) as usize);
                slot.1.extend_from_slice(data);
            }
        }
        let mut tensors = collected
            .into_iter()
            .map(|(shape, data)| Tensor::new(shape, data))
            .collect::<Result<Vec<_>, _>>()?;
        let logits = tensors
            .pop()
            .ok_or_else(|| PluginError::failed("no logits"))?;
        Ok(ActivationSet {
            layers: names
                .iter()
                .cloned()
                .zip(tensors)
                .map(|(name, tensor)| NamedTensor { name, tensor })
                .collect(),
            logits,
        })
    }
}

impl ModelAdapter for OnnxModel {
    fn describe(&mut self) -> Result<ModelDescription, PluginError> {
        Ok(self.description.clone())
    }

    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        pooling: Pooling,
    ) -> Result<ActivationSet, PluginError> {
        let key = layers
            .iter()
            .map(|name| {
                let (tensor, kind) = self.layer_tensor(name)?;
                Ok(Exposed::Pooled {
                    name: tensor,
                    kind,
                    pooling,
                })
            })
            .collect::<Result<SessionKey, PluginError>>()?;
        self.execute(&key, batch, layers)
    }

    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        if image.shape().first() != Some(&1) {
            return Err(PluginError::invalid_argument(format!(
                "run_maps takes one image, got a batch of shape {:?}",
                image.shape()
            )));
        }
        let key = layers
            .iter()
            .map(|name| Ok(Exposed::Full(self.layer_tensor(name)?.0)))
            .collect::<Result<SessionKey, PluginError>>()?;
        self.execute(&key, image, layers)
    }

    fn decision_layer(&mut self) -> Result<DecisionLayer, PluginError> {
        let model = self.graph.model();
        let located = decision::locate(model, &self.graph.logits, &self.path)?;
        let mut layer = decision::read(model, &located, &self.path, &self.graph.dir)?;
        // The features are named as the layer that records them.
        let Some(name) = self
            .description
            .layers
            .iter()
            .find(|l| self.tensors.get(&l.name) == Some(&layer.input))
            .map(|l| l.name.clone())
        else {
            return Err(PluginError::unsupported(format!(
                "{}: the classifier's input '{}' is not a recordable layer of this model",
                self.path.display(),
                layer.input
            )));
        };
        layer.input = name;
        Ok(layer)
    }

    fn export_with_decision_layer(
        &mut self,
        layer: &DecisionLayer,
        path: &Path,
        overwrite: bool,
    ) -> Result<(), PluginError> {
        let model = self.graph.model();
        let located = decision::locate(model, &self.graph.logits, &self.path)?;
        let edited = decision::edited(model, &located, layer, &self.path, &self.graph.dir)?;
        decision::write_copy(edited, path, &self.path, &self.graph.dir, overwrite)
    }

    fn gradient(
        &mut self,
        batch: TensorRef<'_>,
        request: &GradientRequest<'_>,
    ) -> Result<Gradient, PluginError> {
        self.gradient_run(batch, request)
    }
}

shiftscope_sdk::export_model_adapter!(OnnxModel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_ron_and_refuses_unknown_fields() {
        let mut config = Config::for_model(Path::new("/m/a \"b\".onnx"));
        config.device = Device::Cuda(1);
        let text = config.to_ron().unwrap();
        let back: Config = ron::from_str(&text).unwrap();
        assert_eq!(back.model, config.model);
        assert_eq!(back.device, Device::Cuda(1));
        let e = OnnxModel::create("(model: \"x.onnx\", devise: Cpu)").unwrap_err();
        assert!(e.to_string().contains("devise"), "{e}");
    }
}
