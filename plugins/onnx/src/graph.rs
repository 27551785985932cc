//! The ONNX graph as shiftscope needs it: decoded once from the user's bytes (never written
//! back), indexed by tensor name, and edited in memory to expose intermediate tensors and
//! to pool them inside the graph.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType,
};
use shiftscope_sdk::{ConvPooling, LayerKind, PluginError, Pooling, TokenPooling};

/// The image input of a model: `[N, C, H, W]`, `None` where dynamic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageInput {
    pub(crate) name: String,
    pub(crate) shape: [Option<usize>; 4],
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
    /// The classifier output: the graph's first output.
    pub(crate) logits: String,
    pub(crate) nodes: Vec<Node>,
    /// Tensor name → index of the node producing it.
    pub(crate) producer: HashMap<String, usize>,
    /// Tensor name → indices of the nodes reading it.
    pub(crate) consumers: HashMap<String, Vec<usize>>,
    /// Class names from the model's metadata (`class_names`: a JSON list), if any.
    pub(crate) class_names: Vec<String>,
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
    /// The graph output that carries this tensor after surgery.
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
        let logits = graph.output[0].name.clone();
        Ok(Graph {
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

    /// The decoded model, for readers of its initialisers (the decision layer).
    pub(crate) fn model(&self) -> &ModelProto {
        &self.model
    }

    /// The tensors worth recording: float node outputs other than constants and shape
    /// arithmetic (the dry run confirms dtype and rank).
    pub(crate) fn candidate_tensors(&self) -> Vec<(String, String)> {
        const SKIP: [&str; 12] = [
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
        self.nodes
            .iter()
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
                        && user.outputs.contains(&self.logits)
                })
            })
        })
    }

    /// The model's bytes with `exposed` added as graph outputs (after the existing ones),
    /// pooling nodes added where asked. The user's file is never touched.
    pub(crate) fn with_outputs(&self, exposed: &[Exposed]) -> Result<Vec<u8>, PluginError> {
        let mut model = self.model.clone();
        let opset = self.opset;
        let graph: &mut GraphProto = model.graph.mut_or_insert_default();
        let mut present: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        for item in exposed {
            let output = item.output_name();
            if !present.insert(output.clone()) {
                continue;
            }
            if let Exposed::Pooled {
                name,
                kind,
                pooling,
            } = item
                && !matches!(kind, LayerKind::Dense | LayerKind::Logits)
            {
                add_pooling(graph, opset, name, *kind, *pooling, &output);
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

fn parse_class_names(value: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(value)
        .map_err(|e| format!("metadata class_names is not a JSON list of strings: {e}"))
}

/// Finds the image input: the first graph input that is not an initializer, float, rank 4.
fn image_input(graph: &GraphProto, initializers: &HashSet<&str>) -> Result<ImageInput, String> {
    let real: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let Some(first) = real.first() else {
        return Err("the model has no input".to_owned());
    };
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
            "input '{}' has element type code {elem}; shiftscope feeds float32 images",
            first.name
        ));
    }
    match dims.as_slice() {
        [n, c, h, w] => {
            if c.is_some_and(|c| c != 1 && c != 3) {
                return Err(format!(
                    "input '{}' of shape {} is not an image input [N, C, H, W] with 1 or 3 channels",
                    first.name,
                    show_dims(&dims)
                ));
            }
            Ok(ImageInput {
                name: first.name.clone(),
                shape: [*n, *c, *h, *w],
            })
        }
        _ => Err(format!(
            "input '{}' of shape {} is not an image input [N, C, H, W]",
            first.name,
            show_dims(&dims)
        )),
    }
}

/// `[batch, 3, 224, 224]`-style rendering, `?` for dynamic dimensions.
pub(crate) fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_owned(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INT.into();
    a.i = value;
    a
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::INTS.into();
    a.ints = values.to_vec();
    a
}

fn int64_initializer(name: &str, values: &[i64], scalar: bool) -> TensorProto {
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
