//! The ONNX graph as shiftscope needs it: decoded once from the user's bytes (never written
//! back), indexed by tensor name, and edited in memory to expose intermediate tensors and
//! to pool them inside the graph.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType,
};
use protobuf::Enum;
use shiftscope_sdk::{ConvPooling, LayerKind, PluginError, Pooling, TokenPooling};

use crate::names::{LayerName, layer_names};

/// The image input of a model as shiftscope feeds it: `[N, C, H, W]`, `None` where dynamic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageInput {
    /// The name batches are fed under (for a channels-last model, the input shiftscope adds).
    pub(crate) name: String,
    pub(crate) shape: [Option<usize>; 4],
    /// For a channels-last model (`[N, H, W, C]`, as Keras and TensorFlow export), the
    /// model's own input, which a Transpose added to the graph fills from `name`.
    pub(crate) channels_last: Option<String>,
}

/// One node, reduced to what layer discovery reads.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) op: String,
    pub(crate) inputs: Vec<String>,
    pub(crate) outputs: Vec<String>,
}

/// A decoded model with its tensor-name indexes.
#[derive(Debug)]
pub(crate) struct Graph {
    model: ModelProto,
    /// Version of the default (`ai.onnx`) opset.
    opset: i64,
    pub(crate) input: ImageInput,
    /// The classifier output (see [`Graph::choose_logits`]).
    pub(crate) logits: String,
    /// Every graph output, in order.
    pub(crate) outputs: Vec<String>,
    pub(crate) nodes: Vec<Node>,
    /// Tensor name → index of the node producing it.
    pub(crate) producer: HashMap<String, usize>,
    /// Tensor name → indices of the nodes reading it.
    pub(crate) consumers: HashMap<String, Vec<usize>>,
    /// Class names from the model's metadata (`class_names`: a JSON list), if any.
    pub(crate) class_names: Vec<String>,
    /// The model file's folder (absolute), where its external data is resolved.
    pub(crate) dir: PathBuf,
    /// Tensors and bytes kept in side files (external data), if any.
    pub(crate) external: Option<(usize, u64)>,
    /// Layer names from module paths, by tensor (see [`crate::names`]).
    pub(crate) names: HashMap<String, LayerName>,
    /// Tensors of another float type (float16, bfloat16, float64) that are exposed through
    /// a Cast to float32, set once the dry run has seen their types.
    pub(crate) casts: HashSet<String>,
}

/// What the adapter asks a graph to return.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Exposed {
    /// The tensor as it is.
    Full(String),
    /// The tensor pooled to `[B, C]` by nodes added to the graph.
    Pooled {
        name: String,
        kind: LayerKind,
        pooling: Pooling,
    },
}

impl Exposed {
    /// The tensor exposed.
    pub(crate) fn tensor(&self) -> &str {
        match self {
            Exposed::Full(name) | Exposed::Pooled { name, .. } => name,
        }
    }

    /// The graph output that carries this tensor after surgery (before any cast).
    pub(crate) fn output_name(&self) -> String {
        match self {
            Exposed::Full(name) => name.clone(),
            Exposed::Pooled {
                name,
                kind,
                pooling,
            } => match kind {
                LayerKind::Conv => format!("shiftscope/{name}/{:?}", pooling.conv).to_lowercase(),
                LayerKind::Tokens => {
                    format!("shiftscope/{name}/{:?}", pooling.tokens).to_lowercase()
                }
                LayerKind::Dense | LayerKind::Logits => name.clone(),
            },
        }
    }
}

fn bad_model(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_argument(format!("{}: {problem}", path.display()))
}

impl Graph {
    /// Decodes a model. Errors name the file: not ONNX, truncated, no graph, no image input.
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Graph, PluginError> {
        let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
            bad_model(
                path,
                format!("not a readable ONNX model (protobuf decoding failed: {e})"),
            )
        })?;
        let Some(graph) = model.graph.as_ref() else {
            return Err(bad_model(path, "not an ONNX model: it has no graph"));
        };
        if graph.node.is_empty() || graph.output.is_empty() {
            return Err(bad_model(
                path,
                "not an ONNX model (or a truncated one): the graph has no nodes or no outputs",
            ));
        }
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        if opset < 7 {
            return Err(bad_model(
                path,
                format!("default opset {opset} is too old (shiftscope reads opset 7 and newer)"),
            ));
        }
        let initializers: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input =
            image_input(graph, &initializers).map_err(|problem| bad_model(path, problem))?;
        let nodes: Vec<Node> = graph
            .node
            .iter()
            .map(|n| Node {
                op: n.op_type.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
            })
            .collect();
        let mut producer = HashMap::new();
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            for out in &node.outputs {
                producer.insert(out.clone(), i);
            }
            for inp in node.inputs.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.clone()).or_default().push(i);
            }
        }
        let class_names = model
            .metadata_props
            .iter()
            .find(|p| p.key == "class_names")
            .map(|p| parse_class_names(&p.value))
            .transpose()
            .map_err(|problem| bad_model(path, problem))?
            .unwrap_or_default();
        let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        let logits = provisional_logits(&outputs);
        let names = layer_names(&graph.node, &outputs);
        let dir = model_dir(path);
        let external = crate::external::summary(&model);
        if external.is_some() {
            crate::external::check(&model, &dir, path)?;
        }
        Ok(Graph {
            dir,
            external,
            names,
            casts: HashSet::new(),
            outputs,
            opset,
            input,
            logits,
            nodes,
            producer,
            consumers,
            class_names,
            model,
        })
    }

    /// The decoded graph (present once parsed).
    pub(crate) fn proto(&self) -> Option<&GraphProto> {
        self.model.graph.as_ref()
    }

    /// The layer name of `tensor`: its module path where the exporter recorded one, else the
    /// tensor name.
    pub(crate) fn layer_name(&self, tensor: &str) -> LayerName {
        self.names
            .get(tensor)
            .cloned()
            .unwrap_or_else(|| LayerName {
                name: tensor.to_owned(),
                aliases: Vec::new(),
            })
    }

    /// The decoded model, for readers of its initialisers (the decision layer).
    pub(crate) fn model(&self) -> &ModelProto {
        &self.model
    }

    /// The tensors worth recording: float node outputs other than constants and shape
    /// arithmetic (the dry run confirms dtype and rank).
    pub(crate) fn candidate_tensors(&self) -> Vec<(String, String)> {
        const SKIP: [&str; 14] = [
            "QuantizeLinear",
            "DequantizeLinear",
            "Constant",
            "ConstantOfShape",
            "Shape",
            "Size",
            "Range",
            "NonZero",
            "Cast",
            "Unsqueeze",
            "Squeeze",
            "Reshape",
            "Expand",
            "Identity",
        ];
        let mut seen = HashSet::new();
        let fed = self
            .input
            .channels_last
            .as_ref()
            .unwrap_or(&self.input.name);
        // A layout change of the image itself (a channels-last model's Transpose) is no layer.
        let relayout = |n: &Node| n.op == "Transpose" && n.inputs.first() == Some(fed);
        self.nodes
            .iter()
            .filter(|n| !relayout(n))
            .filter(|n| !SKIP.contains(&n.op.as_str()) || self.feeds_head(n))
            .flat_map(|n| n.outputs.iter().map(move |o| (o.clone(), n.op.clone())))
            .filter(|(name, _)| !name.is_empty() && seen.insert(name.clone()))
            .collect()
    }

    /// A reshaping node whose output is the classifier's input is still worth a look (the
    /// flattened global pool of a CNN).
    fn feeds_head(&self, node: &Node) -> bool {
        node.outputs.iter().any(|o| {
            self.consumers.get(o).is_some_and(|users| {
                users.iter().any(|&u| {
                    let user = &self.nodes[u];
                    matches!(user.op.as_str(), "Gemm" | "MatMul")
                        && user.outputs.iter().any(|o| self.outputs.contains(o))
                })
            })
        })
    }

    /// The graph output that carries `exposed`, as float32, after surgery.
    pub(crate) fn output_name(&self, exposed: &Exposed) -> String {
        let pooled_in_graph = matches!(
            exposed,
            Exposed::Pooled {
                kind: LayerKind::Conv | LayerKind::Tokens,
                ..
            }
        );
        if self.casts.contains(exposed.tensor()) && !pooled_in_graph {
            cast_name(exposed.tensor())
        } else {
            exposed.output_name()
        }
    }

    /// The model's bytes with `exposed` added as graph outputs (after the existing ones),
    /// pooling nodes added where asked, tensors of other float types cast to float32 first.
    /// The user's file is never touched.
    pub(crate) fn with_outputs(&self, exposed: &[Exposed]) -> Result<Vec<u8>, PluginError> {
        let mut model = self.model.clone();
        let opset = self.opset;
        let graph: &mut GraphProto = model.graph.mut_or_insert_default();
        if let Some(original) = &self.input.channels_last {
            feed_channels_first(graph, original, &self.input);
        }
        let mut present: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        let mut cast_done: HashSet<String> = HashSet::new();
        for item in exposed {
            let output = self.output_name(item);
            if !present.insert(output.clone()) {
                continue;
            }
            let mut source = item.tensor().to_owned();
            if self.casts.contains(&source) {
                let cast = cast_name(&source);
                if cast_done.insert(source.clone()) {
                    let mut node = NodeProto::new();
                    node.name = cast.clone();
                    node.op_type = "Cast".to_owned();
                    node.input.push(source.clone());
                    node.output.push(cast.clone());
                    node.attribute.push(int_attr("to", DataType::FLOAT as i64));
                    graph.node.push(node);
                }
                source = cast;
            }
            if let Exposed::Pooled { kind, pooling, .. } = item
                && !matches!(kind, LayerKind::Dense | LayerKind::Logits)
            {
                add_pooling(graph, opset, &source, *kind, *pooling, &output);
            }
            let mut info = ValueInfoProto::new();
            info.name = output;
            graph.output.push(info);
        }
        model
            .write_to_bytes()
            .map_err(|e| PluginError::failed(format!("re-encoding the edited model: {e}")))
    }
}

/// The output named like a classifier's (`logits`, `output_logits`; any case), else the first.
fn provisional_logits(outputs: &[String]) -> String {
    outputs
        .iter()
        .find(|o| o.to_lowercase().ends_with("logits"))
        .or(outputs.first())
        .cloned()
        .unwrap_or_default()
}

impl Graph {
    /// Settles which output is the classifier's, from the dry run's per-image `shapes`:
    /// `wanted` when the config names one; else the only output; else the one named like
    /// logits; else the only output of per-image rank 1. Several candidates and no name is an
    /// error listing them, never a silent pick.
    pub(crate) fn choose_logits(
        &mut self,
        wanted: Option<&str>,
        shapes: &HashMap<String, Vec<usize>>,
        path: &Path,
    ) -> Result<(), PluginError> {
        let show = |o: &String| match shapes.get(o) {
            Some(s) => format!("'{o}' {s:?}"),
            None => format!("'{o}' (not a float tensor)"),
        };
        let listed = || self.outputs.iter().map(show).collect::<Vec<_>>().join(", ");
        let chosen = if let Some(wanted) = wanted {
            if !self.outputs.iter().any(|o| o == wanted) {
                return Err(bad_model(
                    path,
                    format!(
                        "the config's output '{wanted}' is not an output of the model; it has {}",
                        listed()
                    ),
                ));
            }
            wanted.to_owned()
        } else if self.outputs.len() == 1 {
            self.outputs[0].clone()
        } else if let Some(named) = self
            .outputs
            .iter()
            .find(|o| o.to_lowercase().ends_with("logits"))
        {
            named.clone()
        } else {
            let vectors: Vec<&String> = self
                .outputs
                .iter()
                .filter(|o| shapes.get(*o).is_some_and(|s| s.len() == 1))
                .collect();
            match vectors[..] {
                [one] => one.clone(),
                _ => {
                    return Err(bad_model(
                        path,
                        format!(
                            "it has several outputs ({}) and none is named logits; name the \
                             classifier's in the model config, e.g. `output: Some(\"{}\")`",
                            listed(),
                            self.outputs[self.outputs.len() - 1]
                        ),
                    ));
                }
            }
        };
        let shape = shapes.get(&chosen);
        if !matches!(shape.map(Vec::as_slice), Some([k]) if *k > 0) {
            return Err(bad_model(
                path,
                format!(
                    "the output {} is not a classifier's: its per-image shape should be [classes]{}",
                    show(&chosen),
                    if self.outputs.len() > 1 {
                        format!("; the model's outputs are {}", listed())
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        self.logits = chosen;
        Ok(())
    }
}

/// The folder of the model file `path`, absolute, so that a later change of working
/// directory does not move the model's side files.
fn model_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(&parent))
            .unwrap_or(parent)
    })
}

/// The output a float32 copy of `tensor` is exposed under.
fn cast_name(tensor: &str) -> String {
    format!("shiftscope/{tensor}/f32")
}

fn parse_class_names(value: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(value)
        .map_err(|e| format!("metadata class_names is not a JSON list of strings: {e}"))
}

/// Replaces the channels-last input `original` by `input` (`[N, C, H, W]`) and a Transpose
/// from it to `original`, so that the graph reads channel-first batches.
fn feed_channels_first(graph: &mut GraphProto, original: &str, input: &ImageInput) {
    let Some(position) = graph.input.iter().position(|i| i.name == original) else {
        return;
    };
    let mut info = graph.input[position].clone();
    info.name.clone_from(&input.name);
    let tensor = info.type_.mut_or_insert_default().mut_tensor_type();
    let shape = tensor.shape.mut_or_insert_default();
    if shape.dim.len() == 4 {
        // [N, H, W, C] → [N, C, H, W].
        let c = shape.dim.remove(3);
        shape.dim.insert(1, c);
    }
    graph.input[position] = info;
    let mut node = NodeProto::new();
    node.name = "shiftscope/channels_last".to_owned();
    node.op_type = "Transpose".to_owned();
    node.input.push(input.name.clone());
    node.output.push(original.to_owned());
    node.attribute.push(ints_attr("perm", &[0, 2, 3, 1]));
    graph.node.insert(0, node);
}

/// Finds the image input: the one graph input that is not an initializer, float, rank 4,
/// channel-first (`[N, C, H, W]`) or channels-last (`[N, H, W, C]`) with 1 or 3 channels.
fn image_input(graph: &GraphProto, initializers: &HashSet<&str>) -> Result<ImageInput, String> {
    let real: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let Some(first) = real.first() else {
        return Err("the model has no input".to_owned());
    };
    if real.len() > 1 {
        let names: Vec<String> = real.iter().map(|i| format!("'{}'", i.name)).collect();
        return Err(format!(
            "the model has {} inputs ({}); shiftscope feeds one image input",
            real.len(),
            names.join(", ")
        ));
    }
    let tensor = first.type_.tensor_type();
    let dims: Vec<Option<usize>> = tensor
        .shape
        .dim
        .iter()
        .map(|d| {
            if d.has_dim_value() {
                usize::try_from(d.dim_value()).ok().filter(|&v| v > 0)
            } else {
                None
            }
        })
        .collect();
    let elem = tensor.elem_type;
    if elem != DataType::FLOAT as i32 {
        return Err(format!(
            "input '{}' has element type {}; shiftscope feeds float32 images (a float16 model \
             converted with keep_io_types=True keeps a float32 input)",
            first.name,
            type_name(elem)
        ));
    }
    let image = |c: &Option<usize>| matches!(c, Some(1 | 3));
    match dims.as_slice() {
        [n, c, h, w] if image(c) || (c.is_none() && !image(w)) => Ok(ImageInput {
            name: first.name.clone(),
            shape: [*n, *c, *h, *w],
            channels_last: None,
        }),
        [n, h, w, c] if image(c) => Ok(ImageInput {
            name: format!("{}_nchw", first.name),
            shape: [*n, *c, *h, *w],
            channels_last: Some(first.name.clone()),
        }),
        [_, _, _, _] => Err(format!(
            "input '{}' of shape {} is not an image input [N, C, H, W] or [N, H, W, C] with 1 or \
             3 channels",
            first.name,
            show_dims(&dims)
        )),
        _ => Err(format!(
            "input '{}' of shape {} is not an image input [N, C, H, W]",
            first.name,
            show_dims(&dims)
        )),
    }
}

/// An ONNX element type's name, for messages.
pub(crate) fn type_name(code: i32) -> String {
    DataType::from_i32(code).map_or_else(
        || format!("code {code}"),
        |t| format!("{t:?}").to_lowercase(),
    )
}

/// `[batch, 3, 224, 224]`-style rendering, `?` for dynamic dimensions.
pub(crate) fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_owned(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

pub(crate) fn int_attr(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INT.into();
    a.i = value;
    a
}

pub(crate) fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INTS.into();
    a.ints = values.to_vec();
    a
}

pub(crate) fn int64_initializer(name: &str, values: &[i64], scalar: bool) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_owned();
    t.data_type = DataType::INT64 as i32;
    if !scalar {
        t.dims = vec![values.len() as i64];
    }
    t.int64_data = values.to_vec();
    t
}

/// Appends the nodes that pool `tensor` into `output` (`[B, C]`).
fn add_pooling(
    graph: &mut GraphProto,
    opset: i64,
    tensor: &str,
    kind: LayerKind,
    pooling: Pooling,
    output: &str,
) {
    if kind != LayerKind::Tokens {
        add_map_pooling(graph, tensor, pooling.conv, output);
        return;
    }
    let mut node = NodeProto::new();
    node.name = output.to_owned();
    node.input.push(tensor.to_owned());
    node.output.push(output.to_owned());
    let op = match pooling.tokens {
        TokenPooling::Cls => {
            let index = format!("{output}/index");
            graph
                .initializer
                .push(int64_initializer(&index, &[0], true));
            node.op_type = "Gather".to_owned();
            node.input.push(index);
            node.attribute.push(int_attr("axis", 1));
            graph.node.push(node);
            return;
        }
        TokenPooling::Max => "ReduceMax",
        TokenPooling::Mean => "ReduceMean",
    };
    node.op_type = op.to_owned();
    node.attribute.push(int_attr("keepdims", 0));
    // Axes became an input in opset 18; before, an attribute.
    if opset >= 18 {
        let axes_name = format!("{output}/axes");
        graph
            .initializer
            .push(int64_initializer(&axes_name, &[1], false));
        node.input.push(axes_name);
    } else {
        node.attribute.push(ints_attr("axes", &[1]));
    }
    graph.node.push(node);
}

/// Appends GlobalAveragePool / GlobalMaxPool of the feature map `tensor`, then Flatten to
/// `output` (`[B, C]`). Not ReduceMean over axes 2, 3: with all optimisations ONNX Runtime
/// runs convolutions in its blocked NCHWc layout, where the global pools run too, so only the
/// pooled `[B, C, 1, 1]` is reordered back; a ReduceMean needs the whole map reordered to NCHW
/// first, a full copy of every recorded layer.
fn add_map_pooling(graph: &mut GraphProto, tensor: &str, pooling: ConvPooling, output: &str) {
    let pooled = format!("{output}/pooled");
    let mut pool = NodeProto::new();
    pool.name = output.to_owned();
    pool.op_type = match pooling {
        ConvPooling::Mean => "GlobalAveragePool",
        ConvPooling::Max => "GlobalMaxPool",
    }
    .to_owned();
    pool.input.push(tensor.to_owned());
    pool.output.push(pooled.clone());
    graph.node.push(pool);
    let mut flatten = NodeProto::new();
    flatten.name = format!("{output}/flatten");
    flatten.op_type = "Flatten".to_owned();
    flatten.input.push(pooled);
    flatten.output.push(output.to_owned());
    flatten.attribute.push(int_attr("axis", 1));
    graph.node.push(flatten);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_from_metadata() {
        assert_eq!(
            parse_class_names(r#"["tench", "goldfish", "a \"quoted\" one"]"#).unwrap(),
            vec!["tench", "goldfish", "a \"quoted\" one"]
        );
        assert_eq!(parse_class_names("[]").unwrap(), Vec::<String>::new());
        assert!(parse_class_names("tench, goldfish").is_err());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let path = Path::new("/data/model.onnx");
        let e = Graph::parse(b"definitely not protobuf \xff\xff\xff", path).unwrap_err();
        assert!(e.to_string().starts_with("/data/model.onnx: "), "{e}");
        let e = Graph::parse(b"", path).unwrap_err();
        assert!(e.to_string().contains("no graph"), "{e}");
    }
}
