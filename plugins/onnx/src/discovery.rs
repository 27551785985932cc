//! Layer discovery: which tensors of a graph are layers, of what kind, and which are
//! recorded by default.
//!
//! Kinds come from the per-image shape seen in a dry run: `[C, H, W]` conv, `[T, D]` tokens,
//! `[D]` dense, and the graph's first output is the logits. The default selection follows
//! the design: for CNNs the output of every non-linearity after a convolution, a linear layer
//! or a residual addition (the latter a block's output, role `block`), the global pool, and
//! the logits; for transformers every block's
//! residual-stream output, every MLP hidden activation, the final norm, the classifier's
//! input (the CLS embedding) and the logits.

use std::collections::{HashMap, HashSet};

use shiftscope_sdk::{LayerInfo, LayerKind};

use crate::graph::Graph;

/// Element-wise non-linearities.
const ACTIVATIONS: [&str; 13] = [
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Gelu",
    "Mish",
];

/// Ops a non-linearity may sit behind and still "follow" a linear layer.
const TRANSPARENT: [&str; 8] = [
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "Dropout",
    "Identity",
    "Flatten",
    "Reshape",
    "InstanceNormalization",
];

/// Ops that make a layer: what a non-linearity must follow.
const LINEAR: [&str; 6] = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sum"];

/// Ops that pass a pooled or token-picked feature vector to the head unchanged in meaning.
const HEAD_PATH: [&str; 8] = [
    "Gather",
    "Slice",
    "Squeeze",
    "Flatten",
    "Reshape",
    "Identity",
    "ReduceMean",
    "Dropout",
];

/// The quantisation pair of a QDQ model (ONNX Runtime's quantiser writes `x → Q → DQ`).
const QUANT: [&str; 2] = ["QuantizeLinear", "DequantizeLinear"];

impl Graph {
    /// `tensor` with any quantise/dequantise (or float16 Cast) pair before it walked back to
    /// the float tensor it carries.
    pub(crate) fn unquantised<'a>(&'a self, tensor: &'a str) -> &'a str {
        let mut current = tensor;
        for _ in 0..4 {
            match self.producer.get(current).map(|&i| &self.nodes[i]) {
                Some(node) if QUANT.contains(&node.op.as_str()) || node.op == "Cast" => {
                    match node.inputs.first() {
                        Some(input) => current = input,
                        None => break,
                    }
                }
                _ => break,
            }
        }
        current
    }

    /// In a QDQ model, the dequantised copy of `tensor` (`tensor → Q → DQ`): the values the
    /// next layer reads, and what is recorded for it.
    pub(crate) fn dequantised(&self, tensor: &str) -> Option<String> {
        let follow = |t: &str, op: &str| -> Option<String> {
            self.consumers.get(t)?.iter().find_map(|&u| {
                let node = &self.nodes[u];
                (node.op == op)
                    .then(|| node.outputs.first().cloned())
                    .flatten()
            })
        };
        follow(&follow(tensor, "QuantizeLinear")?, "DequantizeLinear")
    }

    /// The ops that read `tensor`, past a Q → DQ pair in a quantised model (empty when none).
    fn reader_ops(&self, tensor: &str) -> Vec<&str> {
        let read = self
            .dequantised(tensor)
            .unwrap_or_else(|| tensor.to_owned());
        self.consumers.get(&read).map_or_else(Vec::new, |users| {
            users.iter().map(|&u| self.nodes[u].op.as_str()).collect()
        })
    }

    fn producer_op(&self, tensor: &str) -> Option<&str> {
        self.producer
            .get(tensor)
            .map(|&i| self.nodes[i].op.as_str())
    }

    /// Walks back from `tensor` through transparent ops; true when a linear op is reached.
    fn follows_linear(&self, tensor: &str) -> bool {
        let mut current = tensor.to_owned();
        for _ in 0..8 {
            let Some(&i) = self.producer.get(&current) else {
                return false;
            };
            let node = &self.nodes[i];
            if LINEAR.contains(&node.op.as_str()) {
                return true;
            }
            if !TRANSPARENT.contains(&node.op.as_str()) && !QUANT.contains(&node.op.as_str()) {
                return false;
            }
            match node.inputs.first() {
                Some(input) => current.clone_from(input),
                None => return false,
            }
        }
        false
    }

    /// Whether node `i` is the last `Mul` of a GELU written with `Erf`
    /// (`0.5 * x * (1 + erf(x / sqrt 2))`, as PyTorch exports it before opset 20).
    fn is_erf_gelu_end(&self, i: usize) -> bool {
        let has_erf_near = |i: usize| -> bool {
            let mut frontier = vec![(i, 0)];
            while let Some((n, depth)) = frontier.pop() {
                if self.nodes[n].op == "Erf" {
                    return true;
                }
                if depth < 3 {
                    for input in &self.nodes[n].inputs {
                        if let Some(&p) = self.producer.get(input) {
                            frontier.push((p, depth + 1));
                        }
                    }
                }
            }
            false
        };
        let node = &self.nodes[i];
        if node.op != "Mul" || !has_erf_near(i) {
            return false;
        }
        // The last such Mul: no consumer is another Mul of the same GELU.
        !node.outputs.iter().any(|o| {
            self.consumers.get(o).is_some_and(|users| {
                users
                    .iter()
                    .any(|&u| self.nodes[u].op == "Mul" && has_erf_near(u))
            })
        })
    }

    /// For a residual `Add` of a pre-norm transformer (`x + f(norm(x))`): `Some(true)` when
    /// `f` is the MLP (the block's output), `Some(false)` when `f` is attention, `None` when
    /// the node is no residual-stream addition.
    fn residual_branch_is_mlp(&self, i: usize) -> Option<bool> {
        let node = &self.nodes[i];
        if node.op != "Add" || node.inputs.len() != 2 {
            return None;
        }
        let feeds_norm = |t: &str| {
            self.consumers.get(t).is_some_and(|users| {
                users
                    .iter()
                    .any(|&u| self.nodes[u].op == "LayerNormalization")
            })
        };
        let (stream, branch) = if feeds_norm(&node.inputs[0]) {
            (&node.inputs[0], &node.inputs[1])
        } else if feeds_norm(&node.inputs[1]) {
            (&node.inputs[1], &node.inputs[0])
        } else {
            return None;
        };
        // Walk the branch back to the stream; a Softmax on the way means attention.
        let mut seen = HashSet::new();
        let mut frontier = vec![branch.clone()];
        let mut softmax = false;
        while let Some(t) = frontier.pop() {
            if &t == stream || !seen.insert(t.clone()) || seen.len() > 200 {
                continue;
            }
            if let Some(&p) = self.producer.get(&t) {
                let op = self.nodes[p].op.as_str();
                softmax |= op == "Softmax";
                if op != "LayerNormalization" {
                    frontier.extend(self.nodes[p].inputs.iter().cloned());
                }
            }
        }
        Some(!softmax)
    }

    /// The tensors on the path into the classifier: its input, and what feeds that through
    /// head-path ops (flatten, token pick, pooling), ending at a norm or a pool.
    fn head_inputs(&self) -> Vec<String> {
        let Some(&head) = self.producer.get(&self.logits) else {
            return Vec::new();
        };
        let mut head = head;
        // A float16 model's float32 output, or a QDQ model's dequantised one: the head is
        // behind the Cast or the Q → DQ pair.
        if let Some(&inner) = self.producer.get(self.unquantised(&self.logits)) {
            head = inner;
        }
        // A head written as MatMul + Add(bias): the features are the MatMul's input.
        if self.nodes[head].op == "Add"
            && let Some(&matmul) = self.nodes[head].inputs.iter().find_map(|i| {
                self.producer
                    .get(i)
                    .filter(|&&p| self.nodes[p].op == "MatMul")
            })
        {
            head = matmul;
        }
        let mut found = Vec::new();
        let mut current = self.nodes[head].inputs.first().cloned();
        for _ in 0..6 {
            let Some(tensor) = current else { break };
            let tensor = self.unquantised(&tensor).to_owned();
            found.push(tensor.clone());
            match self.producer.get(&tensor) {
                Some(&p) if HEAD_PATH.contains(&self.nodes[p].op.as_str()) => {
                    current = self.nodes[p].inputs.first().cloned();
                }
                _ => break,
            }
        }
        found
    }
}

/// Builds the layer list from the dry run's per-image shapes (tensors not in `shapes` are
/// not float tensors of rank 1–3 per image and are skipped), in network order, each with the
/// tensor it reads.
pub(crate) fn discover(
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
) -> Vec<(LayerInfo, String)> {
    let head_inputs = graph.head_inputs();
    let mut layers = Vec::new();
    let mut seen = HashSet::new();
    let mut push =
        |name: &str, op: &str, layers: &mut Vec<(LayerInfo, String)>, role: &str, default: bool| {
            let Some(shape) = shapes.get(name) else {
                return;
            };
            let kind = if name == graph.logits {
                LayerKind::Logits
            } else {
                match shape.len() {
                    3 => LayerKind::Conv,
                    2 => LayerKind::Tokens,
                    1 => LayerKind::Dense,
                    _ => return,
                }
            };
            let Some(neurons) = kind.neurons(shape) else {
                return;
            };
            if neurons == 0 || !seen.insert(name.to_owned()) {
                return;
            }
            let named = graph.layer_name(name);
            let info = LayerInfo {
                name: named.name,
                aliases: named.aliases,
                op: op.to_owned(),
                kind,
                shape: shape.clone(),
                neurons,
                default_selected: default,
                role: role.to_owned(),
                receptive_field: None,
            };
            layers.push((info, name.to_owned()));
        };
    for (i, node) in graph.nodes.iter().enumerate() {
        let op = node.op.as_str();
        for output in &node.outputs {
            let after_residual = ACTIVATIONS.contains(&op)
                && node
                    .inputs
                    .first()
                    .and_then(|input| graph.producer_op(graph.unquantised(input)))
                    .is_some_and(|p| matches!(p, "Add" | "Sum"));
            // A QDQ model whose quantiser folded the ReLU into the output range: the
            // quantised output of a linear layer or residual Add is the layer.
            let dequantised = graph.dequantised(output);
            let quantised_layer = matches!(op, "Conv" | "Gemm" | "MatMul" | "Add")
                && dequantised
                    .as_ref()
                    .is_some_and(|d| !graph.outputs.contains(d))
                && {
                    // Not the input of a non-linearity (that is the layer then), nor only of
                    // a residual Add (the end of a block's branch).
                    let readers = graph.reader_ops(output);
                    !readers.iter().any(|r| ACTIVATIONS.contains(r))
                        && (op == "Add"
                            || readers.is_empty()
                            || !readers.iter().all(|r| matches!(*r, "Add" | "Sum")))
                };
            let (role, default) = if *output == graph.logits {
                ("logits", true)
            } else if after_residual || (quantised_layer && op == "Add") {
                // A residual CNN block's output (ResNet's relu after the skip's Add).
                ("block", true)
            } else if (quantised_layer && head_inputs.first() != Some(output))
                || (ACTIVATIONS.contains(&op)
                    && node
                        .inputs
                        .first()
                        .is_some_and(|input| graph.follows_linear(input)))
                || graph.is_erf_gelu_end(i)
            {
                ("activation", true)
            } else if graph.residual_branch_is_mlp(i) == Some(true) {
                ("block", true)
            } else if matches!(op, "GlobalAveragePool" | "GlobalMaxPool")
                || (matches!(op, "ReduceMean" | "ReduceMax")
                    && shapes
                        .get(output)
                        .is_some_and(|s| matches!(s[..], [_, 1, 1])))
            {
                // A global pool, as the legacy exporter writes it or as a spatial
                // ReduceMean with kept dimensions (the dynamo exporter's AdaptiveAvgPool2d).
                // Selected unless the head reads a flattened copy, which is selected instead.
                let flattened = head_inputs.iter().any(|h| {
                    h != output
                        && graph
                            .producer_op(h)
                            .is_some_and(|p| matches!(p, "Flatten" | "Reshape" | "Squeeze"))
                });
                ("pool", !flattened)
            } else if head_inputs.first() == Some(output) {
                ("features", true)
            } else if op == "LayerNormalization" && head_inputs.contains(output) {
                ("norm", true)
            } else if head_inputs.contains(output) {
                ("features", false)
            } else {
                ("", false)
            };
            push(output, op, &mut layers, role, default);
        }
    }
    layers
}
