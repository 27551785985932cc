//! The model's decision layer: the final linear classifier found in the graph (a `Gemm`, or a
//! `MatMul` followed by an `Add` of a bias) with its weights read from the initialisers, and
//! the copy of the model with those initialisers replaced. The user's file is never written.

use std::io::Write;
use std::path::Path;

use crate::external;

use onnx_protobuf::{
    AttributeProto, Message, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};
use shiftscope_sdk::{DecisionLayer, PluginError, Tensor};

/// Where the decision layer sits in the graph, and how its initialisers encode `W` and `b`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Located {
    /// Index of the `Gemm` or `MatMul` node.
    matmul: usize,
    /// Index of the bias `Add` node (MatMul form only).
    add: Option<usize>,
    /// The features tensor (the node's first input).
    input: String,
    /// Initialiser holding the weights.
    weights: String,
    /// Whether the weights initialiser is `[K, D]` (Gemm with transB = 1) rather than `[D, K]`.
    k_major: bool,
    /// Gemm's `alpha` and `beta` (1 for MatMul + Add).
    alpha: f32,
    beta: f32,
    /// Initialiser holding the bias, if any.
    bias: Option<String>,
}

fn unsupported(path: &Path, problem: impl std::fmt::Display) -> PluginError {
    PluginError::unsupported(format!(
        "{}: no decision layer shiftscope can read: {problem}",
        path.display()
    ))
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn float_attr(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

/// The float values and dims of an initialiser (`float_data`, little-endian `raw_data`, or
/// external data in a side file in `dir`).
pub(crate) fn read_floats(
    t: &TensorProto,
    path: &Path,
    dir: &Path,
) -> Result<(Vec<usize>, Vec<f32>), PluginError> {
    if t.data_type != DataType::FLOAT as i32 {
        return Err(unsupported(
            path,
            format!(
                "initialiser '{}' has element type code {} (float32 is read)",
                t.name, t.data_type
            ),
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| unsupported(path, format!("initialiser '{}' has a negative dim", t.name)))?;
    let little_endian = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let values: Vec<f32> = if external::is_external(t) {
        little_endian(&external::read(t, dir, path)?)
    } else if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        little_endian(&t.raw_data)
    };
    if values.len() != dims.iter().product::<usize>() {
        return Err(unsupported(
            path,
            format!(
                "initialiser '{}' of dims {dims:?} holds {} values",
                t.name,
                values.len()
            ),
        ));
    }
    Ok((dims, values))
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> Option<&'a TensorProto> {
    model
        .graph
        .as_ref()?
        .initializer
        .iter()
        .find(|t| t.name == name)
}

/// Finds the decision layer of `model` whose classifier output is `logits`.
pub(crate) fn locate(
    model: &ModelProto,
    logits: &str,
    path: &Path,
) -> Result<Located, PluginError> {
    let nodes = model
        .graph
        .as_ref()
        .map(|g| g.node.as_slice())
        .unwrap_or_default();
    let producer = |t: &str| nodes.iter().position(|n| n.output.iter().any(|o| o == t));
    let users = |t: &str| {
        nodes
            .iter()
            .filter(|n| n.input.iter().any(|i| i == t))
            .count()
    };
    let is_init = |t: &str| initializer(model, t).is_some();
    let Some(head) = producer(logits) else {
        return Err(unsupported(
            path,
            format!("no node produces the output '{logits}'"),
        ));
    };
    let node = &nodes[head];
    let located = match node.op_type.as_str() {
        "Gemm" => {
            if int_attr(node, "transA", 0) != 0 {
                return Err(unsupported(path, "its final Gemm has transA = 1"));
            }
            let (Some(a), Some(b)) = (node.input.first(), node.input.get(1)) else {
                return Err(unsupported(path, "its final Gemm has fewer than 2 inputs"));
            };
            Located {
                matmul: head,
                add: None,
                input: a.clone(),
                weights: b.clone(),
                k_major: int_attr(node, "transB", 0) != 0,
                alpha: float_attr(node, "alpha", 1.0),
                beta: float_attr(node, "beta", 1.0),
                bias: node.input.get(2).filter(|c| !c.is_empty()).cloned(),
            }
        }
        "Add" => {
            let mm = node.input.iter().enumerate().find_map(|(i, t)| {
                producer(t)
                    .filter(|&p| nodes[p].op_type == "MatMul")
                    .map(|p| (i, p))
            });
            let Some((slot, mm)) = mm else {
                return Err(unsupported(
                    path,
                    "the logits come from an Add that does not add a bias to a MatMul",
                ));
            };
            let Some(bias) = node.input.get(1 - slot.min(1)) else {
                return Err(unsupported(path, "the final Add has one input"));
            };
            let (Some(a), Some(b)) = (nodes[mm].input.first(), nodes[mm].input.get(1)) else {
                return Err(unsupported(
                    path,
                    "its final MatMul has fewer than 2 inputs",
                ));
            };
            Located {
                matmul: mm,
                add: Some(head),
                input: a.clone(),
                weights: b.clone(),
                k_major: false,
                alpha: 1.0,
                beta: 1.0,
                bias: Some(bias.clone()),
            }
        }
        "MatMul" => {
            let (Some(a), Some(b)) = (node.input.first(), node.input.get(1)) else {
                return Err(unsupported(
                    path,
                    "its final MatMul has fewer than 2 inputs",
                ));
            };
            Located {
                matmul: head,
                add: None,
                input: a.clone(),
                weights: b.clone(),
                k_major: false,
                alpha: 1.0,
                beta: 1.0,
                bias: None,
            }
        }
        other => {
            return Err(unsupported(
                path,
                format!(
                    "the logits '{logits}' come from a {other} node, not a Gemm or MatMul (+ Add)"
                ),
            ));
        }
    };
    for t in std::iter::once(&located.weights).chain(located.bias.as_ref()) {
        if !is_init(t) {
            return Err(unsupported(
                path,
                format!("'{t}' of the final linear layer is computed, not an initialiser"),
            ));
        }
        if users(t) > 1 {
            return Err(unsupported(
                path,
                format!(
                    "the initialiser '{t}' of the final linear layer is shared with other nodes"
                ),
            ));
        }
    }
    Ok(located)
}

/// Reads `W` (`[K, D]`, alpha applied) and `b` (`[K]`, beta applied) of a located layer.
pub(crate) fn read(
    model: &ModelProto,
    located: &Located,
    path: &Path,
    dir: &Path,
) -> Result<DecisionLayer, PluginError> {
    let missing = |t: &str| unsupported(path, format!("initialiser '{t}' is missing"));
    let w_init = initializer(model, &located.weights).ok_or_else(|| missing(&located.weights))?;
    let (dims, values) = read_floats(w_init, path, dir)?;
    let [r, c] = dims[..] else {
        return Err(unsupported(
            path,
            format!("weights '{}' have dims {dims:?}, not 2", located.weights),
        ));
    };
    let (k, d) = if located.k_major { (r, c) } else { (c, r) };
    let mut w = vec![0.0f32; k * d];
    for row in 0..r {
        for col in 0..c {
            let v = values[row * c + col] * located.alpha;
            if located.k_major {
                w[row * d + col] = v;
            } else {
                w[col * d + row] = v;
            }
        }
    }
    let b = match &located.bias {
        None => vec![0.0; k],
        Some(name) => {
            let init = initializer(model, name).ok_or_else(|| missing(name))?;
            let (_, values) = read_floats(init, path, dir)?;
            match values.len() {
                1 => vec![values[0] * located.beta; k],
                n if n == k => values.iter().map(|v| v * located.beta).collect(),
                n => {
                    return Err(unsupported(
                        path,
                        format!("bias '{name}' has {n} values for {k} classes"),
                    ));
                }
            }
        }
    };
    let op = if located.add.is_some() {
        "MatMul+Add"
    } else if located.bias.is_none() && located.alpha == 1.0 && !located.k_major {
        "MatMul"
    } else {
        "Gemm"
    };
    Ok(DecisionLayer {
        input: located.input.clone(),
        op: op.to_owned(),
        weights: Tensor::new(vec![k, d], w)?,
        bias: Tensor::new(vec![k], b)?,
    })
}

fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_owned();
    t.data_type = DataType::FLOAT as i32;
    t.dims = dims.iter().map(|&d| d as i64).collect();
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

fn set_float_attr(node: &mut NodeProto, name: &str, value: f32) {
    node.attribute.retain(|a| a.name != name);
    let mut a = AttributeProto::new();
    a.name = name.to_owned();
    a.type_ = AttributeType::FLOAT.into();
    a.f = value;
    node.attribute.push(a);
}

/// The model with the located layer's initialisers replaced by `layer`'s `W` and `b` (in the
/// initialisers' own layouts; Gemm's alpha and beta set to 1; a bias added where the layer had
/// none). Its other external tensors still point into the side files in `dir`.
pub(crate) fn edited(
    model: &ModelProto,
    located: &Located,
    layer: &DecisionLayer,
    path: &Path,
    dir: &Path,
) -> Result<ModelProto, PluginError> {
    let current = read(model, located, path, dir)?;
    let (k, d) = layer.dims()?;
    if current.dims()? != (k, d) {
        return Err(PluginError::invalid_argument(format!(
            "{}: the decision layer is {:?}; the new weights are [{k}, {d}]",
            path.display(),
            current.weights.shape()
        )));
    }
    let w = layer.weights.data();
    let (w_dims, w_values): (Vec<usize>, Vec<f32>) = if located.k_major {
        (vec![k, d], w.to_vec())
    } else {
        let mut t = vec![0.0; k * d];
        for kk in 0..k {
            for dd in 0..d {
                t[dd * k + kk] = w[kk * d + dd];
            }
        }
        (vec![d, k], t)
    };
    let mut model = model.clone();
    let graph = model.graph.mut_or_insert_default();
    let mut bias_name = located.bias.clone();
    if bias_name.is_none() {
        // A Gemm (or bare MatMul) without bias: give it one.
        let name = format!("{}/shiftscope_bias", located.weights);
        let Some(node) = graph.node.get_mut(located.matmul) else {
            return Err(PluginError::failed("the decision layer's node vanished"));
        };
        // A bare MatMul becomes a Gemm (the same maths for 2-D features: Y = A · B + C).
        node.op_type = "Gemm".to_owned();
        node.input.truncate(2);
        node.input.push(name.clone());
        graph
            .initializer
            .push(float_tensor(&name, &[k], &vec![0.0; k]));
        bias_name = Some(name);
    }
    if let Some(node) = graph.node.get_mut(located.matmul)
        && node.op_type == "Gemm"
    {
        set_float_attr(node, "alpha", 1.0);
        set_float_attr(node, "beta", 1.0);
    }
    for init in &mut graph.initializer {
        if init.name == located.weights {
            *init = float_tensor(&located.weights, &w_dims, &w_values);
        } else if Some(&init.name) == bias_name.as_ref() {
            let dims: Vec<usize> = if init.dims.iter().product::<i64>() == k as i64 {
                init.dims.iter().map(|&x| x as usize).collect()
            } else {
                vec![k]
            };
            *init = float_tensor(&init.name.clone(), &dims, layer.bias.data());
        }
    }
    Ok(model)
}

/// Writes `model` to `out` (a new file unless `overwrite`), refusing the model's own path.
/// External data (resolved in `dir`) goes inline below [`external::INLINE_LIMIT`], else into
/// `<out>.data`; the model's own side files are never written.
pub(crate) fn write_copy(
    mut model: ModelProto,
    out: &Path,
    model_path: &Path,
    dir: &Path,
    overwrite: bool,
) -> Result<(), PluginError> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(out, model_path) {
        return Err(PluginError::invalid_argument(format!(
            "{}: refusing to write over the model itself; choose another path",
            out.display()
        )));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PluginError::invalid_argument(format!(
                "{}: already exists; refusing to overwrite it",
                out.display()
            ))
        } else {
            PluginError::failed(format!("{}: cannot create: {e}", out.display()))
        }
    })?;
    let written = external::materialise(&mut model, dir, model_path, out, external::INLINE_LIMIT);
    let bytes = written.and_then(|_| {
        model
            .write_to_bytes()
            .map_err(|e| PluginError::failed(format!("re-encoding the edited model: {e}")))
    });
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => {
            // Leave no empty file that looks like a model.
            drop(file);
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PluginError::failed(format!("{}: writing: {e}", out.display())))
}
