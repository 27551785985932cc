//! Gradients through the model, as more ONNX: reverse-mode differentiation node by node,
//! appended to the forward graph, so that ONNX Runtime computes the forward pass and
//! d(objective)/d(image) in one session, on any device it runs.
//!
//! The objective is Σᵢ wᵢ·aᵢ over one layer `a`, pooled as it is recorded (conv maps by
//! their spatial mean, tokens by their mean, dense layers and logits as they are), with the
//! weights `w` (`[B, neurons]`) a graph input: one session serves every neuron and class.
//!
//! This first set of rules covers the convolutional networks' ops: Conv (groups, strides,
//! pads, dilations), Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish, Add, Sub and
//! Mul with broadcasting (the gradient summed back to each input's shape), Div by a constant,
//! MaxPool (through its indices), AveragePool (padding counted or none),
//! GlobalAveragePool and ReduceMean over constant axes, BatchNormalization (inference), Gemm,
//! MatMul (batched, broadcast, either operand the image's), Flatten, Reshape, Squeeze, Unsqueeze,
//! Transpose, Concat, Split, Slice, Gather of constant indices (the class token; lists and
//! tables of indices, repeats summed), Expand, Pad (constant, edge, reflect, wrap), Where,
//! ReduceMax and ReduceMin (ties share the gradient evenly, as torch.amax), ScatterND (none
//! or add), Einsum of one or two operands, Softmax, LayerNormalization, Gelu, Erf, Sqrt, Pow
//! by a constant, Neg, ReduceSum, Cast, Identity and Dropout; shape arithmetic is constant.
//! An op on the path from the image to the objective without a rule is an error naming the
//! op and the node, never a wrong gradient.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType,
};
use shiftscope_sdk::{LayerKind, Objective, PluginError};

use crate::graph::{int_attr, int64_initializer};

mod rules;
use rules::rule;

/// The graph input carrying the objective's weights (`[B, neurons]`, `[B, ...shape]` or
/// `[B]`, by objective).
pub(crate) const WEIGHTS: &str = "shiftscope/gradient/weights";
/// The graph output carrying the objective per image, `[B]`.
pub(crate) const OBJECTIVE: &str = "shiftscope/gradient/objective";
/// The graph output carrying d(objective)/d(image), the image's shape.
pub(crate) const INPUT_GRADIENT: &str = "shiftscope/gradient/input";

/// What the gradient is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The layer's tensor.
    pub(crate) tensor: String,
    /// Its kind: how it is pooled to one value per neuron.
    pub(crate) kind: LayerKind,
    /// The objective on it.
    pub(crate) objective: Objective,
    /// Forward tensors the graph outputs too, under their own names.
    pub(crate) maps: Vec<String>,
}

pub(super) fn bad(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::unsupported(format!("{}: gradients: {problem}", path.display()))
}

pub(super) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

pub(super) fn float_attr(name: &str, value: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::FLOAT.into();
    a.f = value;
    a
}

pub(super) fn string_attr(name: &str, value: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::STRING.into();
    a.s = value.as_bytes().to_vec();
    a
}

/// Appends nodes and constants with fresh names.
pub(super) struct Builder {
    nodes: Vec<NodeProto>,
    constants: Vec<TensorProto>,
    count: usize,
}

impl Builder {
    pub(super) fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("shiftscope/gradient/{}/{hint}", self.count)
    }

    pub(super) fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.node_into(op, inputs, attributes, &[&out]);
        out
    }

    pub(super) fn node_into(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        outputs: &[&str],
    ) {
        let mut n = NodeProto::new();
        n.op_type = op.to_owned();
        n.name = outputs
            .first()
            .map_or_else(String::new, |o| (*o).to_owned());
        n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
        n.output = outputs.iter().map(|s| (*s).to_owned()).collect();
        n.attribute = attributes;
        self.nodes.push(n);
    }

    pub(super) fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.constants.push(int64_initializer(&name, values, false));
        name
    }

    pub(super) fn floats(&mut self, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh("const");
        let mut t = TensorProto::new();
        t.name.clone_from(&name);
        t.data_type = DataType::FLOAT as i32;
        t.dims = dims.to_vec();
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constants.push(t);
        name
    }

    pub(super) fn scalar(&mut self, value: f32) -> String {
        self.floats(&[], &[value])
    }
}

/// What the rules may read of the forward graph.
pub(crate) struct Forward<'a> {
    pub(crate) model: &'a ModelProto,
    pub(crate) path: &'a Path,
    /// The image input fed by batches.
    pub(crate) input: &'a str,
    /// Per-image shapes of the layers, from the dry run (the objective's).
    pub(crate) shapes: &'a HashMap<String, Vec<usize>>,
    /// Every float tensor's whole shape at a batch of one, with which axes grow with the
    /// batch (as `N·heads` does in a sequence-first attention): what the rules read.
    pub(crate) full: &'a HashMap<String, (Vec<usize>, Vec<bool>)>,
    /// The int64 tensors the model computes from shapes alone, at their values (which do
    /// not change with the batch).
    pub(crate) shape_constants: &'a HashMap<String, TensorProto>,
    /// Reads an initialiser's float values (inline or external data).
    pub(crate) floats: &'a dyn Fn(&TensorProto) -> Result<Vec<f32>, PluginError>,
}

impl Forward<'_> {
    fn graph(&self) -> Result<&GraphProto, PluginError> {
        self.model
            .graph
            .as_ref()
            .ok_or_else(|| bad(self.path, "the model has no graph"))
    }

    /// The initialiser `name` holds, looking through Identity nodes (the legacy exporter
    /// routes weights through them).
    pub(super) fn initializer(&self, name: &str) -> Option<&TensorProto> {
        let graph = self.model.graph.as_ref()?;
        let mut name = name;
        for _ in 0..4 {
            if let Some(t) = graph.initializer.iter().find(|t| t.name == name) {
                return Some(t);
            }
            name = graph
                .node
                .iter()
                .find(|n| n.op_type == "Identity" && n.output.first().is_some_and(|o| o == name))
                .and_then(|n| n.input.first())?;
        }
        None
    }

    /// A constant tensor: an initialiser, a Constant node's value, or an int64 tensor
    /// computed from shapes alone.
    pub(super) fn constant(&self, name: &str) -> Option<&TensorProto> {
        let graph = self.model.graph.as_ref()?;
        graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .or_else(|| {
                graph
                    .node
                    .iter()
                    .find(|n| {
                        n.op_type == "Constant" && n.output.first().is_some_and(|o| o == name)
                    })
                    .and_then(|n| attr(n, "value"))
                    .and_then(|a| a.t.as_ref())
            })
            .or_else(|| self.shape_constants.get(name))
    }

    /// The values of a constant int64 or int32 tensor (Gather's indices may be either).
    pub(super) fn int64s(&self, name: &str) -> Option<Vec<i64>> {
        let t = self.constant(name)?;
        if t.data_type == DataType::INT32 as i32 {
            if !t.int32_data.is_empty() {
                return Some(t.int32_data.iter().map(|&v| i64::from(v)).collect());
            }
            return Some(
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            );
        }
        if t.data_type != DataType::INT64 as i32 {
            return None;
        }
        if !t.int64_data.is_empty() {
            return Some(t.int64_data.clone());
        }
        Some(
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        )
    }

    /// `tensor`'s whole shape at a batch of one and which of its axes grow with the batch.
    pub(super) fn dims(
        &self,
        tensor: &str,
        node: &NodeProto,
    ) -> Result<(&[usize], &[bool]), PluginError> {
        self.full
            .get(tensor)
            .map(|(d, b)| (d.as_slice(), b.as_slice()))
            .ok_or_else(|| {
                bad(
                    self.path,
                    format!(
                        "the shape of '{tensor}' (read by {} node '{}') is unknown",
                        node.op_type, node.name
                    ),
                )
            })
    }

    /// The size of `tensor` along `axis`, which must not grow with the batch.
    pub(super) fn size(
        &self,
        tensor: &str,
        axis: usize,
        node: &NodeProto,
    ) -> Result<usize, PluginError> {
        let (dims, batched) = self.dims(tensor, node)?;
        match (dims.get(axis), batched.get(axis)) {
            (Some(&d), Some(false)) => Ok(d),
            (Some(_), _) => Err(bad(
                self.path,
                format!(
                    "{} node '{}' works along axis {axis} of '{tensor}', which holds the batch",
                    node.op_type, node.name
                ),
            )),
            _ => Err(bad(
                self.path,
                format!(
                    "{} node '{}': '{tensor}' has no axis {axis}",
                    node.op_type, node.name
                ),
            )),
        }
    }

    pub(super) fn rank(&self, tensor: &str, node: &NodeProto) -> Result<usize, PluginError> {
        self.dims(tensor, node).map(|(d, _)| d.len())
    }
}

/// The model with the gradient of the objective on `target` appended: inputs the image and
/// [`WEIGHTS`], outputs [`OBJECTIVE`] and [`INPUT_GRADIENT`] (the model's own outputs are
/// dropped).
pub(crate) fn gradient_model(
    forward: &Forward<'_>,
    target: &Target,
) -> Result<Vec<u8>, PluginError> {
    let graph = forward.graph()?;
    let opset = forward
        .model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    if opset < 16 {
        return Err(bad(
            forward.path,
            format!("opset {opset} is below 16, the first with the scatter the rules need"),
        ));
    }
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    // Tensors that depend on the image.
    // Tensors that depend on the image, as floats: shape arithmetic (Shape, Size, casts to
    // integers, comparisons) is constant for the gradient.
    let mut live: HashSet<&str> = HashSet::from([forward.input]);
    for n in &graph.node {
        let integer = match n.op_type.as_str() {
            "Shape" | "Size" | "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual"
            | "Not" | "And" | "Or" | "ArgMax" | "ArgMin" | "NonZero" => true,
            "Cast" => !matches!(
                int(n, "to", 0),
                1 | 10 | 11 | 16 // float, float16, double, bfloat16
            ),
            _ => false,
        };
        if !integer && n.input.iter().any(|i| live.contains(i.as_str())) {
            live.extend(n.output.iter().map(String::as_str));
        }
    }
    if !live.contains(target.tensor.as_str()) {
        return Err(bad(
            forward.path,
            format!("'{}' does not depend on the image", target.tensor),
        ));
    }
    let mut b = Builder {
        nodes: Vec::new(),
        constants: Vec::new(),
        count: 0,
    };
    let seed = objective(&mut b, forward, target)?;
    // Gradient contributions per tensor, summed when a tensor is read more than once.
    let mut grads: HashMap<String, Vec<String>> =
        HashMap::from([(target.tensor.clone(), vec![seed])]);
    let Some(&last) = producer.get(target.tensor.as_str()) else {
        return Err(bad(
            forward.path,
            format!("'{}' is not computed by the graph", target.tensor),
        ));
    };
    for node in graph.node[..=last].iter().rev() {
        // The gradient of each output (several for Split), summed over its readers.
        let mut dys: Vec<Option<String>> = Vec::with_capacity(node.output.len());
        for out in &node.output {
            dys.push(
                grads
                    .remove(out)
                    .map(|contributions| match contributions.as_slice() {
                        [one] => one.clone(),
                        many => {
                            let inputs: Vec<&str> = many.iter().map(String::as_str).collect();
                            b.node("Sum", &inputs, vec![])
                        }
                    }),
            );
        }
        if dys.iter().all(Option::is_none) {
            continue;
        }
        // Constants (no input depends on the image) need no gradient.
        if !node.input.iter().any(|i| live.contains(i.as_str())) {
            continue;
        }
        let dy = match &dys[0] {
            Some(dy) => dy.clone(),
            None if node.op_type == "Split" => String::new(),
            None => {
                return Err(bad(
                    forward.path,
                    format!(
                        "{} node '{}': its first output has no gradient but another has",
                        node.op_type, node.name
                    ),
                ));
            }
        };
        for (input, dx) in rule(&mut b, forward, node, &dy, &dys, &live)? {
            grads.entry(input).or_default().push(dx);
        }
    }
    let input_grads = grads.remove(forward.input).unwrap_or_default();
    let inputs: Vec<&str> = input_grads.iter().map(String::as_str).collect();
    match inputs.as_slice() {
        [] => {
            return Err(bad(forward.path, "the objective does not reach the image"));
        }
        [one] => b.node_into("Identity", &[one], vec![], &[INPUT_GRADIENT]),
        many => b.node_into("Sum", many, vec![], &[INPUT_GRADIENT]),
    }

    let mut model = forward.model.clone();
    let g = model.graph.mut_or_insert_default();
    g.node.extend(b.nodes);
    g.initializer.extend(b.constants);
    let mut weights = ValueInfoProto::new();
    weights.name = WEIGHTS.to_owned();
    let tensor = weights.type_.mut_or_insert_default().mut_tensor_type();
    tensor.elem_type = DataType::FLOAT as i32;
    let rank = match target.objective {
        Objective::Pooled => 2,
        Objective::Map => target_rank(forward, &target.tensor)?,
        Objective::SquaredNorm => 1,
    };
    let shape = tensor.shape.mut_or_insert_default();
    for _ in 0..rank {
        shape.dim.push(Default::default());
    }
    g.input.push(weights);
    g.output.clear();
    let outputs = [OBJECTIVE, INPUT_GRADIENT]
        .into_iter()
        .chain(target.maps.iter().map(String::as_str));
    for name in outputs {
        let mut info = ValueInfoProto::new();
        info.name = name.to_owned();
        g.output.push(info);
    }
    model
        .write_to_bytes()
        .map_err(|e| PluginError::failed(format!("encoding the gradient graph: {e}")))
}

/// The rank of the target's tensor, batch axis included.
fn target_rank(forward: &Forward<'_>, tensor: &str) -> Result<usize, PluginError> {
    forward
        .shapes
        .get(tensor)
        .map(|shape| shape.len() + 1)
        .ok_or_else(|| {
            bad(
                forward.path,
                format!("the shape of the target '{tensor}' is unknown"),
            )
        })
}

/// Appends the objective (output [`OBJECTIVE`], `[B]`) and returns the name of
/// d(objective)/d(a).
fn objective(
    b: &mut Builder,
    forward: &Forward<'_>,
    target: &Target,
) -> Result<String, PluginError> {
    let a = target.tensor.as_str();
    if target.objective != Objective::Pooled {
        // Σ w·a or w·Σ a² over every axis but the batch.
        let rank = target_rank(forward, a)?;
        let image_axes: Vec<i64> = (1..rank as i64).collect();
        let image_axes = b.ints(&image_axes);
        if target.objective == Objective::Map {
            let product = b.node("Mul", &[a, WEIGHTS], vec![]);
            b.node_into(
                "ReduceSum",
                &[&product, &image_axes],
                vec![int_attr("keepdims", 0)],
                &[OBJECTIVE],
            );
            return Ok(WEIGHTS.to_owned());
        }
        let square = b.node("Mul", &[a, a], vec![]);
        let norm = b.node(
            "ReduceSum",
            &[&square, &image_axes],
            vec![int_attr("keepdims", 0)],
        );
        b.node_into("Mul", &[&norm, WEIGHTS], vec![], &[OBJECTIVE]);
        // d/da of w·Σ a² = 2·w·a.
        let w = b.node("Unsqueeze", &[WEIGHTS, &image_axes], vec![]);
        let two = b.scalar(2.0);
        let twice = b.node("Mul", &[&w, &two], vec![]);
        return Ok(b.node("Mul", &[a, &twice], vec![]));
    }
    let axes = b.ints(&[1]);
    let shape = forward.shapes.get(a).ok_or_else(|| {
        bad(
            forward.path,
            format!("the shape of the target '{a}' is unknown"),
        )
    })?;
    let (pooled, seed) = match target.kind {
        LayerKind::Dense | LayerKind::Logits => (a.to_owned(), WEIGHTS.to_owned()),
        LayerKind::Conv => {
            let [_, h, w] = shape[..] else {
                return Err(bad(
                    forward.path,
                    format!("conv layer '{a}' has shape {shape:?}"),
                ));
            };
            let mean = b.node("GlobalAveragePool", &[a], vec![]);
            let pooled = b.node("Flatten", &[&mean], vec![int_attr("axis", 1)]);
            // d/da of Σ w · mean(a) = w / (H·W) at every position.
            let spatial = b.ints(&[2, 3]);
            let w4 = b.node("Unsqueeze", &[WEIGHTS, &spatial], vec![]);
            let area = b.scalar(1.0 / (h * w) as f32);
            let scaled = b.node("Mul", &[&w4, &area], vec![]);
            let full = b.node("Shape", &[a], vec![]);
            (pooled, b.node("Expand", &[&scaled, &full], vec![]))
        }
        LayerKind::Tokens => {
            let [t, _] = shape[..] else {
                return Err(bad(
                    forward.path,
                    format!("token layer '{a}' has shape {shape:?}"),
                ));
            };
            let sum = b.node("ReduceSum", &[a, &axes], vec![int_attr("keepdims", 0)]);
            let mean = b.scalar(1.0 / t as f32);
            let pooled = b.node("Mul", &[&sum, &mean], vec![]);
            let w3 = b.node("Unsqueeze", &[WEIGHTS, &axes], vec![]);
            let count = b.scalar(1.0 / t as f32);
            let scaled = b.node("Mul", &[&w3, &count], vec![]);
            let full = b.node("Shape", &[a], vec![]);
            (pooled, b.node("Expand", &[&scaled, &full], vec![]))
        }
    };
    let product = b.node("Mul", &[&pooled, WEIGHTS], vec![]);
    b.node_into(
        "ReduceSum",
        &[&product, &axes],
        vec![int_attr("keepdims", 0)],
        &[OBJECTIVE],
    );
    Ok(seed)
}

/// `dy` (the gradient of `node`'s output) summed over the axes along which `input` was
/// broadcast, in `input`'s shape. Both are batched (they depend on the image).
pub(super) fn unbroadcast(
    b: &mut Builder,
    forward: &Forward<'_>,
    node: &NodeProto,
    dy: &str,
    input: &str,
) -> Result<String, PluginError> {
    let y = node.output.first().map(String::as_str).unwrap_or_default();
    let (x_dims, x_batched) = forward.dims(input, node)?;
    let (y_dims, y_batched) = forward.dims(y, node)?;
    if x_dims == y_dims && x_batched == y_batched {
        return Ok(dy.to_owned());
    }
    // Right-aligned, as ONNX broadcasts.
    let offset = y_dims.len().checked_sub(x_dims.len()).ok_or_else(|| {
        bad(
            forward.path,
            format!(
                "{} node '{}': input '{input}' outranks the output",
                node.op_type, node.name
            ),
        )
    })?;
    let axes: Vec<i64> = (0..y_dims.len())
        .filter(|&a| {
            a < offset || {
                let (xd, xb) = (x_dims[a - offset], x_batched[a - offset]);
                (xd == 1 && !xb) && (y_dims[a] != 1 || y_batched[a])
            }
        })
        .map(|a| a as i64)
        .collect();
    if axes.is_empty() {
        return Ok(dy.to_owned());
    }
    let axes = b.ints(&axes);
    let summed = b.node("ReduceSum", &[dy, &axes], vec![int_attr("keepdims", 1)]);
    let shape = b.node("Shape", &[input], vec![]);
    Ok(b.node("Reshape", &[&summed, &shape], vec![]))
}
