//! Receptive fields from the graph: for every tensor computed from the image through
//! convolutions, poolings and elementwise ops, the window of input pixels each map position
//! sees (size, jump, offset per axis), composed node by node in graph order.
//!
//! A node with kernel `k`, stride `s`, dilation `d` and leading padding `p` turns an input
//! field (size `r`, jump `j`, offset `o`) into size `r + (d·(k−1))·j`, jump `j·s` and offset
//! `o − p·j`. Elementwise ops (activations, normalisations, residual additions, channel
//! concatenations) keep the union of their spatial inputs' fields. Anything else (flatten,
//! global pooling, matmul, reshapes, resizes) ends the field: those layers see the whole
//! image.

use std::collections::HashMap;

use onnx_protobuf::{GraphProto, NodeProto};
use shiftscope_sdk::ReceptiveField;

/// Ops that map each position to the same position.
const ELEMENTWISE: [&str; 33] = [
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Softplus",
    "Softsign",
    "Gelu",
    "Erf",
    "Mish",
    "Clip",
    "BatchNormalization",
    "InstanceNormalization",
    "LRN",
    "Dropout",
    "Identity",
    "Cast",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Concat",
];

/// The receptive field of every tensor of `graph` that has one, keyed by tensor name.
/// `image` is the image input's name and `image_hw` its height and width; `shapes` holds
/// per-image shapes (`[C, H, W]`) where known, needed only for `auto_pad = SAME_*`.
pub(crate) fn receptive_fields(
    graph: &GraphProto,
    image: &str,
    image_hw: [usize; 2],
    shapes: &HashMap<String, Vec<usize>>,
) -> HashMap<String, ReceptiveField> {
    let weights: HashMap<&str, &[i64]> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.dims.as_slice()))
        .collect();
    let mut fields: HashMap<String, ReceptiveField> = HashMap::new();
    fields.insert(image.to_owned(), ReceptiveField::IDENTITY);
    let spatial_size = |tensor: &str| -> Option<[usize; 2]> {
        if tensor == image {
            return Some(image_hw);
        }
        match shapes.get(tensor)?.as_slice() {
            [_, h, w] => Some([*h, *w]),
            _ => None,
        }
    };
    for node in &graph.node {
        let op = node.op_type.as_str();
        let field = match op {
            "Conv" | "MaxPool" | "AveragePool" | "LpPool" => {
                let Some(input) = node.input.first() else {
                    continue;
                };
                let Some(previous) = fields.get(input) else {
                    continue;
                };
                let kernel = ints(node, "kernel_shape").or_else(|| {
                    // Conv may leave the kernel to its weight's shape `[M, C/g, kH, kW]`.
                    let weight = weights.get(node.input.get(1)?.as_str())?;
                    (weight.len() == 4).then(|| weight[2..].to_vec())
                });
                let Some(kernel) = kernel else { continue };
                let size = spatial_size(input);
                match windowed(node, previous, &kernel, size) {
                    Some(field) => field,
                    None => continue,
                }
            }
            _ if ELEMENTWISE.contains(&op) => {
                if op == "Concat" && int(node, "axis").is_some_and(|a| a != 1 && a != -3) {
                    continue;
                }
                // The union of the spatial inputs' windows; constants (no field) broadcast.
                let spatial: Vec<&ReceptiveField> =
                    node.input.iter().filter_map(|i| fields.get(i)).collect();
                let Some(first) = spatial.first() else {
                    continue;
                };
                if spatial.iter().any(|f| f.jump != first.jump) {
                    continue;
                }
                let mut union = **first;
                for f in &spatial[1..] {
                    for axis in 0..2 {
                        let start = union.offset[axis].min(f.offset[axis]);
                        let end = (union.offset[axis] + union.size[axis] as i64)
                            .max(f.offset[axis] + f.size[axis] as i64);
                        union.offset[axis] = start;
                        union.size[axis] = (end - start) as usize;
                    }
                }
                union
            }
            _ => continue,
        };
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            fields.insert(output.clone(), field);
        }
    }
    fields
}

/// The field after a 2-D windowed node (conv or pooling); `None` for other ranks or
/// `auto_pad = SAME_*` without a known input size.
fn windowed(
    node: &NodeProto,
    previous: &ReceptiveField,
    kernel: &[i64],
    input_hw: Option<[usize; 2]>,
) -> Option<ReceptiveField> {
    if kernel.len() != 2 || kernel.iter().any(|&k| k < 1) {
        return None;
    }
    let strides = ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let dilations = ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
    if strides.len() != 2
        || dilations.len() != 2
        || strides.iter().chain(&dilations).any(|&v| v < 1)
    {
        return None;
    }
    let auto_pad = node
        .attribute
        .iter()
        .find(|a| a.name == "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
        .unwrap_or_default();
    let mut field = *previous;
    for axis in 0..2 {
        let extent = dilations[axis] * (kernel[axis] - 1) + 1;
        let pad_begin = match auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let input = input_hw?[axis] as i64;
                let output = (input + strides[axis] - 1) / strides[axis];
                let total = ((output - 1) * strides[axis] + extent - input).max(0);
                if auto_pad == "SAME_UPPER" {
                    total / 2
                } else {
                    total - total / 2
                }
            }
            "VALID" => 0,
            _ => match ints(node, "pads") {
                Some(pads) if pads.len() == 4 => pads[axis],
                Some(_) => return None,
                None => 0,
            },
        };
        let jump = previous.jump[axis] as i64;
        field.size[axis] = previous.size[axis] + ((extent - 1) * jump) as usize;
        field.offset[axis] = previous.offset[axis] - pad_begin * jump;
        field.jump[axis] = previous.jump[axis] * strides[axis] as usize;
    }
    Some(field)
}

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

#[cfg(test)]
mod tests {
    use onnx_protobuf::{AttributeProto, attribute_proto::AttributeType};

    use super::*;

    fn node(op: &str, input: &[&str], output: &str, attrs: &[(&str, &[i64])]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: input.iter().map(|s| (*s).into()).collect(),
            output: vec![output.into()],
            attribute: attrs
                .iter()
                .map(|(name, values)| AttributeProto {
                    name: (*name).into(),
                    ints: values.to_vec(),
                    type_: AttributeType::INTS.into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<NodeProto>) -> GraphProto {
        GraphProto {
            node: nodes,
            ..Default::default()
        }
    }

    #[test]
    fn conv_dilated_conv_pool_by_hand() {
        // conv k3 s1 p1 → relu → conv k3 s2 p0 dil 2 → maxpool k2 s2, by hand:
        // a: size 1 + 2·1 = 3, jump 1, offset 0 − 1·1 = −1
        // c: extent 2·2 + 1 = 5: size 3 + 4·1 = 7, jump 1·2 = 2, offset −1 − 0 = −1
        // p: extent 2: size 7 + 1·2 = 9, jump 2·2 = 4, offset −1
        let g = graph(vec![
            node(
                "Conv",
                &["image", "w1"],
                "a",
                &[("kernel_shape", &[3, 3]), ("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", &["a"], "r", &[]),
            node(
                "Conv",
                &["r", "w2"],
                "c",
                &[
                    ("kernel_shape", &[3, 3]),
                    ("strides", &[2, 2]),
                    ("dilations", &[2, 2]),
                ],
            ),
            node(
                "MaxPool",
                &["c"],
                "p",
                &[("kernel_shape", &[2, 2]), ("strides", &[2, 2])],
            ),
            node("GlobalAveragePool", &["p"], "gap", &[]),
        ]);
        let fields = receptive_fields(&g, "image", [32, 32], &HashMap::new());
        let rf = |size, jump, offset| ReceptiveField {
            size: [size; 2],
            jump: [jump; 2],
            offset: [offset; 2],
        };
        assert_eq!(fields["a"], rf(3, 1, -1));
        assert_eq!(fields["r"], rf(3, 1, -1));
        assert_eq!(fields["c"], rf(7, 2, -1));
        assert_eq!(fields["p"], rf(9, 4, -1));
        assert!(
            !fields.contains_key("gap"),
            "global pooling sees the whole image"
        );
        // Position (1, 2) of p starts at (−1 + 4, −1 + 8).
        assert_eq!(fields["p"].origin(1, 2), [3, 7]);
    }

    #[test]
    fn per_axis_kernel_from_weight_same_padding_and_residual_union() {
        // Conv without kernel_shape: the weight's [M, C, 5, 1] gives it; pads only on rows.
        let mut g = graph(vec![
            node("Conv", &["image", "w"], "a", &[("pads", &[2, 0, 2, 0])]),
            // SAME_UPPER, k3 s2 on a 7-wide map: out 4, total pad (4−1)·2 + 3 − 7 = 2, begin 1.
            node(
                "Conv",
                &["a", "w3"],
                "b",
                &[("kernel_shape", &[3, 3]), ("strides", &[2, 2])],
            ),
            node("Add", &["b", "bias"], "c", &[]),
        ]);
        g.node[1].attribute.push(AttributeProto {
            name: "auto_pad".into(),
            s: b"SAME_UPPER".to_vec(),
            type_: AttributeType::STRING.into(),
            ..Default::default()
        });
        g.initializer.push(onnx_protobuf::TensorProto {
            name: "w".into(),
            dims: vec![4, 3, 5, 1],
            ..Default::default()
        });
        let shapes = HashMap::from([("a".to_owned(), vec![4, 7, 7])]);
        let fields = receptive_fields(&g, "image", [7, 7], &shapes);
        assert_eq!(
            fields["a"],
            ReceptiveField {
                size: [5, 1],
                jump: [1, 1],
                offset: [-2, 0],
            }
        );
        // b: size a + 2·1, jump 2, offset a − 1·1.
        let b = ReceptiveField {
            size: [7, 3],
            jump: [2, 2],
            offset: [-3, -1],
        };
        assert_eq!(fields["b"], b);
        assert_eq!(fields["c"], b, "a constant operand keeps the field");

        // A residual add of a wider branch takes the union of both windows.
        let g = graph(vec![
            node("Conv", &["image", "w"], "x", &[("kernel_shape", &[1, 1])]),
            node(
                "Conv",
                &["x", "w"],
                "y",
                &[("kernel_shape", &[3, 3]), ("pads", &[1, 1, 1, 1])],
            ),
            node("Add", &["x", "y"], "z", &[]),
            node("Flatten", &["z"], "f", &[]),
        ]);
        let fields = receptive_fields(&g, "image", [8, 8], &HashMap::new());
        assert_eq!(fields["z"], fields["y"]);
        assert_eq!(fields["z"].size, [3, 3]);
        assert!(!fields.contains_key("f"));
    }
}
