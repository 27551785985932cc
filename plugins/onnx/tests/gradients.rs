//! Gradients through the model, run by the real ONNX Runtime: d(Σ w·layer)/d(image) from the
//! backward graph checked against central finite differences of the forward pass, on the
//! fixture CNN (Conv, Relu, MaxPool, a residual Add, GlobalAveragePool, Flatten, Gemm) and
//! the demo CNN, and a tiny graph the tests build of the rules those do not reach.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use shiftscope_onnx::OnnxModel;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{GradientRequest, ModelAdapter, Pooling, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn demo_cnn() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/models/demo-cnn.onnx")
}

fn random(shape: &[usize], seed: u64, low: f32, high: f32) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..n).map(|_| rng.uniform(low, high)).collect(),
    )
    .expect("a tensor")
}

/// Σ_b Σ_i w[b, i] · layer[b, i] per image, from the forward pass as recorded.
fn objective(model: &mut OnnxModel, x: &Tensor, layer: &str, w: &Tensor) -> Vec<f64> {
    let set = model
        .run(x.view(), &[layer.to_owned()], Pooling::default())
        .expect("forward");
    let values = if layer == "logits" {
        &set.logits
    } else {
        &set.layers[0].tensor
    };
    let d = w.shape()[1];
    values
        .data()
        .chunks(d)
        .zip(w.data().chunks(d))
        .map(|(a, w)| {
            a.iter()
                .zip(w)
                .map(|(a, w)| f64::from(*a) * f64::from(*w))
                .sum()
        })
        .collect()
}

/// Checks the gradient of `layer`'s objective at 24 random pixels against central
/// differences; returns the largest relative difference seen.
fn check(model: &mut OnnxModel, shape: &[usize], layer: &str, seed: u64) -> f64 {
    check_pixels(model, shape, layer, seed, false)
}

/// [`check`] at 24 random pixels, or at every pixel (`every`, for the tiny graphs, whose
/// gradients may reach only a few).
fn check_pixels(
    model: &mut OnnxModel,
    shape: &[usize],
    layer: &str,
    seed: u64,
    every: bool,
) -> f64 {
    let neurons = model.describe().unwrap().layer(layer).unwrap().neurons;
    let x = random(shape, seed, -1.0, 1.0);
    let w = random(&[shape[0], neurons], seed + 1, -1.0, 1.0);
    let result = model
        .gradient(x.view(), &GradientRequest::pooled(layer, w.view()))
        .unwrap();
    let (value, grad) = (result.objective.data(), result.input);
    assert_eq!(grad.shape(), shape);
    let forward = objective(model, &x, layer, &w);
    for (v, f) in value.iter().zip(&forward) {
        assert!(
            (f64::from(*v) - f).abs() <= 1e-4 * (1.0 + f.abs()),
            "objective {v} vs {f}"
        );
    }
    let scale = grad
        .data()
        .iter()
        .fold(0f64, |m, g| m.max(f64::from(g.abs())))
        .max(1e-9);
    let per_image: usize = shape[1..].iter().product();
    let mut rng = SplitMix64::new(seed + 2);
    let eps = 1e-3f32;
    let mut worst = 0f64;
    let pixels: Vec<usize> = if every {
        (0..x.data().len()).collect()
    } else {
        (0..24)
            .map(|_| (rng.next_u64() % x.data().len() as u64) as usize)
            .collect()
    };
    for i in pixels {
        let image = i / per_image;
        let mut plus = x.clone();
        plus.data_mut()[i] += eps;
        let mut minus = x.clone();
        minus.data_mut()[i] -= eps;
        let fd = (objective(model, &plus, layer, &w)[image]
            - objective(model, &minus, layer, &w)[image])
            / (2.0 * f64::from(eps));
        let g = f64::from(grad.data()[i]);
        let rel = (fd - g).abs() / scale;
        worst = worst.max(rel);
        assert!(
            rel <= 2e-2,
            "{layer} pixel {i}: backward {g} vs finite difference {fd} (scale {scale})"
        );
    }
    worst
}

#[test]
fn fixture_cnn_gradients_match_finite_differences() {
    let mut model = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    for (layer, seed) in [
        ("conv2_relu", 10),
        ("block1_relu", 20),
        ("flatten", 30),
        ("logits", 40),
    ] {
        let worst = check(&mut model, &[2, 3, 16, 16], layer, seed);
        eprintln!("fixture {layer}: worst {worst:.2e}");
    }
}

#[test]
fn demo_cnn_gradients_match_finite_differences() {
    let mut model = OnnxModel::from_path(&demo_cnn()).unwrap();
    for (layer, seed) in [("conv2", 50), ("fc1", 60), ("logits", 70)] {
        let worst = check(&mut model, &[2, 3, 28, 28], layer, seed);
        eprintln!("demo {layer}: worst {worst:.2e}");
    }
}

#[test]
fn fixture_vit_gradients_match_finite_differences() {
    // Patch embedding (Conv), class token (Concat), positional embedding (Add), pre-norm
    // blocks (LayerNormalization, attention: MatMul, Transpose, Softmax), GELU written with
    // Erf, the class token's pick (Gather) and the head.
    let mut model = OnnxModel::from_path(&fixture("vit.onnx")).unwrap();
    for (layer, seed) in [
        ("block1_out", 120),
        ("block2_mlp_gelu", 130),
        ("cls", 140),
        ("logits", 150),
    ] {
        let worst = check(&mut model, &[2, 3, 16, 16], layer, seed);
        eprintln!("fixture vit {layer}: worst {worst:.2e}");
    }
}

#[test]
fn an_op_without_a_rule_and_bad_weights_are_named() {
    // A quantised model: quantisation has no gradient.
    let mut qdq = OnnxModel::from_path(&fixture("cnn_qdq.onnx")).unwrap();
    let x = random(&[1, 3, 16, 16], 1, -1.0, 1.0);
    let w = random(&[1, 10], 2, -1.0, 1.0);
    let e = qdq
        .gradient(x.view(), &GradientRequest::pooled("logits", w.view()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cnn_qdq.onnx") && e.contains("no backward rule for DequantizeLinear"),
        "{e}"
    );
    let mut cnn = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let e = cnn
        .gradient(
            x.view(),
            &GradientRequest::pooled("logits", random(&[1, 9], 3, 0.0, 1.0).view()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected [1, 10]"), "{e}");
    let e = cnn
        .gradient(x.view(), &GradientRequest::pooled("nope", w.view()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no layer 'nope'"), "{e}");
}

mod tiny {
    //! Small graphs the tests write, one rule family each.
    use std::path::{Path, PathBuf};

    use onnx_protobuf::{
        AttributeProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
    };
    use shiftscope_sdk::rng::SplitMix64;

    pub(crate) fn floats(name: &str, dims: &[i64], seed: u64, low: f32, high: f32) -> TensorProto {
        let n: i64 = dims.iter().product();
        let mut rng = SplitMix64::new(seed);
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = DataType::FLOAT as i32;
        t.dims = dims.to_vec();
        t.raw_data = (0..n)
            .flat_map(|_| rng.uniform(low, high).to_le_bytes())
            .collect();
        t
    }

    pub(crate) fn int64s(name: &str, values: &[i64]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = DataType::INT64 as i32;
        t.dims = vec![values.len() as i64];
        t.int64_data = values.to_vec();
        t
    }

    pub(crate) fn node(
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.to_owned();
        n.name = output.to_owned();
        n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
        n.output = vec![output.to_owned()];
        n.attribute = attrs;
        n
    }

    pub(crate) fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.to_owned();
        a.type_ = AttributeType::INTS.into();
        a.ints = values.to_vec();
        a
    }

    pub(crate) fn int_attr(name: &str, value: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.to_owned();
        a.type_ = AttributeType::INT.into();
        a.i = value;
        a
    }

    fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
        let mut v = ValueInfoProto::new();
        v.name = name.to_owned();
        let t = v.type_.mut_or_insert_default().mut_tensor_type();
        t.elem_type = DataType::FLOAT as i32;
        let s = t.shape.mut_or_insert_default();
        for d in dims {
            let mut dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
            match d {
                Some(v) => dim.set_dim_value(*v),
                None => dim.set_dim_param("batch".to_owned()),
            }
            s.dim.push(dim);
        }
        v
    }

    /// An int64 tensor of any shape (`[]` for a scalar).
    pub(crate) fn int64s_shaped(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
        let mut t = int64s(name, values);
        t.dims = dims.to_vec();
        t
    }

    /// An int32 tensor of `dims`, in raw little-endian bytes as exporters write them.
    pub(crate) fn int32s_shaped(name: &str, dims: &[i64], values: &[i32]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.to_owned();
        t.data_type = DataType::INT32 as i32;
        t.dims = dims.to_vec();
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    }

    /// A float scalar.
    pub(crate) fn scalar(name: &str, value: f32) -> TensorProto {
        let mut t = floats(name, &[], 0, 0.0, 0.0);
        t.raw_data = value.to_le_bytes().to_vec();
        t
    }

    pub(crate) fn string_attr(name: &str, value: &str) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.to_owned();
        a.type_ = AttributeType::STRING.into();
        a.s = value.as_bytes().to_vec();
        a
    }

    /// Writes a model of `nodes` from `image` `[N, 3, 8, 8]` to `logits` `[N, classes]`.
    pub(crate) fn write(
        dir: &Path,
        name: &str,
        nodes: Vec<NodeProto>,
        initializers: Vec<TensorProto>,
        classes: i64,
    ) -> PathBuf {
        write_at(dir, name, nodes, initializers, classes, 18)
    }

    /// [`write`] at another opset.
    pub(crate) fn write_at(
        dir: &Path,
        name: &str,
        nodes: Vec<NodeProto>,
        initializers: Vec<TensorProto>,
        classes: i64,
        version: i64,
    ) -> PathBuf {
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut opset = OperatorSetIdProto::new();
        opset.version = version;
        model.opset_import.push(opset);
        let graph = model.graph.mut_or_insert_default();
        graph.name = name.to_owned();
        graph.node = nodes;
        graph.initializer = initializers;
        graph.input = vec![value("image", &[None, Some(3), Some(8), Some(8)])];
        graph.output = vec![value("logits", &[None, Some(classes)])];
        let path = dir.join(format!("{name}.onnx"));
        std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
        path
    }
}

/// A tiny graph of the rules the CNNs above do not reach: BatchNormalization, AveragePool, ReduceMean
/// (axes as an input, keepdims 0), Reshape, Identity, MatMul by a constant and a bias Add.
fn tiny_graph(dir: &std::path::Path) -> PathBuf {
    use tiny::{floats, int_attr, int64s, ints_attr, node};
    tiny::write(
        dir,
        "tiny",
        vec![
            node(
                "BatchNormalization",
                &["image", "s", "b", "m", "v"],
                "bn",
                vec![],
            ),
            node(
                "AveragePool",
                &["bn"],
                "avg",
                vec![
                    ints_attr("kernel_shape", &[2, 2]),
                    ints_attr("strides", &[2, 2]),
                ],
            ),
            node(
                "ReduceMean",
                &["avg", "axes"],
                "mean",
                vec![int_attr("keepdims", 0)],
            ),
            node("Reshape", &["mean", "shape"], "flat", vec![]),
            node("Identity", &["flat"], "features", vec![]),
            node("MatMul", &["features", "w"], "mm", vec![]),
            node("Add", &["mm", "bias"], "logits", vec![]),
        ],
        vec![
            floats("s", &[3], 1, 0.5, 2.0),
            floats("b", &[3], 2, -1.0, 1.0),
            floats("m", &[3], 3, -1.0, 1.0),
            floats("v", &[3], 4, 0.5, 2.0),
            floats("w", &[3, 4], 5, -1.0, 1.0),
            floats("bias", &[4], 6, -1.0, 1.0),
            int64s("axes", &[2, 3]),
            int64s("shape", &[-1, 3]),
        ],
        4,
    )
}

/// The element-wise rules of MobileNet and EfficientNet: Sigmoid, x·σ(x) (Mul of two
/// image-dependent inputs), HardSwish, a squeeze-and-excitation HardSigmoid broadcast back
/// by Mul, Clip (ReLU6), Sub and Div by constants, Tanh, LeakyRelu.
fn elementwise_graph(dir: &std::path::Path) -> PathBuf {
    use tiny::{floats, int_attr, int64s, node};
    let mut six = floats("six", &[], 0, 6.0, 6.0);
    six.raw_data = 6.0f32.to_le_bytes().to_vec();
    let mut zero = floats("zero", &[], 0, 0.0, 0.0);
    zero.raw_data = 0.0f32.to_le_bytes().to_vec();
    tiny::write(
        dir,
        "elementwise",
        vec![
            node("Sigmoid", &["image"], "sig", vec![]),
            node("Mul", &["image", "sig"], "silu", vec![]),
            node("HardSwish", &["silu"], "hswish", vec![]),
            node("GlobalAveragePool", &["hswish"], "squeeze", vec![]),
            node("HardSigmoid", &["squeeze"], "excite", vec![]),
            node("Mul", &["hswish", "excite"], "se", vec![]),
            node("Clip", &["se", "zero", "six"], "relu6", vec![]),
            node("Sub", &["relu6", "centre"], "centred", vec![]),
            node("Div", &["centred", "spread"], "scaled", vec![]),
            node("Tanh", &["scaled"], "tanh", vec![]),
            node("LeakyRelu", &["tanh"], "leaky", vec![]),
            node(
                "ReduceMean",
                &["leaky", "axes"],
                "pooled",
                vec![int_attr("keepdims", 0)],
            ),
            node("Add", &["pooled", "bias"], "logits", vec![]),
        ],
        vec![
            floats("centre", &[3, 1, 1], 7, 0.0, 0.5),
            floats("spread", &[], 8, 0.3, 0.6),
            floats("bias", &[3], 9, -1.0, 1.0),
            int64s("axes", &[2, 3]),
            six,
            zero,
        ],
        3,
    )
}

#[test]
fn elementwise_gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = OnnxModel::from_path(&elementwise_graph(dir.path())).unwrap();
    for (layer, seed) in [("se", 100), ("logits", 110)] {
        let worst = check(&mut model, &[2, 3, 8, 8], layer, seed);
        eprintln!("elementwise {layer}: worst {worst:.2e}");
    }
}

#[test]
fn batch_norm_reduce_mean_reshape_and_matmul_gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = OnnxModel::from_path(&tiny_graph(dir.path())).unwrap();
    for (layer, seed) in [("mean", 80), ("logits", 90)] {
        let worst = check(&mut model, &[3, 3, 8, 8], layer, seed);
        eprintln!("tiny {layer}: worst {worst:.2e}");
    }
}

/// Every form of Conv the rule handles, on both of its paths: stride-1 convolutions as the
/// adjoint Conv (padded, dilated with asymmetric pads, depthwise, grouped with a
/// non-square kernel and auto_pad SAME_LOWER, VALID) and the rest as ConvTranspose (more
/// padding than the kernel reaches, stride 2 with SAME_UPPER).
fn conv_graph(dir: &std::path::Path) -> PathBuf {
    use tiny::{floats, int_attr, int64s, ints_attr, node};
    let auto_pad = |value: &str| {
        let mut a = onnx_protobuf::AttributeProto::new();
        a.name = "auto_pad".to_owned();
        a.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
        a.s = value.as_bytes().to_vec();
        a
    };
    tiny::write(
        dir,
        "convs",
        vec![
            node(
                "Conv",
                &["image", "w1", "b1"],
                "padded",
                vec![ints_attr("pads", &[1, 1, 1, 1])],
            ),
            node(
                "Conv",
                &["padded", "w2"],
                "depthwise",
                vec![
                    int_attr("group", 6),
                    ints_attr("dilations", &[2, 2]),
                    ints_attr("pads", &[2, 1, 2, 3]),
                ],
            ),
            node(
                "Conv",
                &["depthwise", "w3"],
                "grouped",
                vec![int_attr("group", 2), auto_pad("SAME_LOWER")],
            ),
            node(
                "Conv",
                &["grouped", "w4"],
                "overpadded",
                vec![ints_attr("pads", &[1, 0, 1, 2])],
            ),
            node(
                "Conv",
                &["overpadded", "w5"],
                "strided",
                vec![ints_attr("strides", &[2, 2]), auto_pad("SAME_UPPER")],
            ),
            node("Conv", &["strided", "w6"], "valid", vec![auto_pad("VALID")]),
            node(
                "ReduceMean",
                &["valid", "axes"],
                "logits",
                vec![int_attr("keepdims", 0)],
            ),
        ],
        vec![
            floats("w1", &[6, 3, 3, 3], 201, -0.5, 0.5),
            floats("b1", &[6], 202, -0.5, 0.5),
            floats("w2", &[6, 1, 3, 3], 203, -0.5, 0.5),
            floats("w3", &[4, 3, 3, 2], 204, -0.5, 0.5),
            floats("w4", &[4, 4, 1, 1], 205, -0.5, 0.5),
            floats("w5", &[4, 4, 3, 3], 206, -0.5, 0.5),
            floats("w6", &[5, 4, 2, 2], 207, -0.5, 0.5),
            int64s("axes", &[2, 3]),
        ],
        5,
    )
}

#[test]
fn conv_gradients_match_finite_differences_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = OnnxModel::from_path(&conv_graph(dir.path())).unwrap();
    for (layer, seed) in [
        ("padded", 210),
        ("depthwise", 220),
        ("grouped", 230),
        ("overpadded", 240),
        ("strided", 250),
        ("logits", 260),
    ] {
        let worst = check(&mut model, &[2, 3, 8, 8], layer, seed);
        eprintln!("convs {layer}: worst {worst:.2e}");
    }
}

/// Slice bounds computed from the image's shape (Shape, Gather, Div, Unsqueeze: the
/// legacy exporter's Swin windows) are constants of the model; bounds computed from the
/// image's values (an ArgMax) are not, and get the rule's error.
#[test]
fn bounds_computed_from_shapes_are_constants_and_from_values_are_not() {
    use tiny::{int_attr, int64s, node};
    let dir = tempfile::tempdir().unwrap();
    let mut two = int64s("two", &[2]);
    two.dims = vec![];
    let mut axis = int64s("axis", &[0]);
    axis.dims = vec![];
    let shaped = tiny::write(
        dir.path(),
        "shaped",
        vec![
            node("Shape", &["image"], "shape", vec![]),
            node(
                "Gather",
                &["shape", "axis3"],
                "width",
                vec![int_attr("axis", 0)],
            ),
            node("Div", &["width", "two"], "half", vec![]),
            node("Unsqueeze", &["half", "axis"], "end", vec![]),
            node("Slice", &["image", "zero", "end", "axes"], "left", vec![]),
            node("Mul", &["left", "left"], "square", vec![]),
            node(
                "ReduceMean",
                &["square", "pool"],
                "logits",
                vec![int_attr("keepdims", 0)],
            ),
        ],
        vec![
            {
                let mut t = int64s("axis3", &[3]);
                t.dims = vec![];
                t
            },
            two,
            axis,
            int64s("zero", &[0]),
            int64s("axes", &[3]),
            int64s("pool", &[2, 3]),
        ],
        3,
    );
    let mut model = OnnxModel::from_path(&shaped).unwrap();
    let worst = check(&mut model, &[2, 3, 8, 8], "logits", 300);
    eprintln!("shape-computed slice: worst {worst:.2e}");
    // Half the columns: the gradient of the others is exactly zero.
    let x = random(&[1, 3, 8, 8], 301, -1.0, 1.0);
    let w = random(&[1, 3], 302, -1.0, 1.0);
    let g = model
        .gradient(x.view(), &GradientRequest::pooled("logits", w.view()))
        .unwrap()
        .input;
    for (i, v) in g.data().iter().enumerate() {
        assert_eq!(*v != 0.0, i % 8 < 4, "pixel {i}: {v}");
    }

    let valued = tiny::write(
        dir.path(),
        "valued",
        vec![
            node(
                "ArgMax",
                &["image"],
                "argmax",
                vec![int_attr("axis", 3), int_attr("keepdims", 1)],
            ),
            node("Slice", &["argmax", "zero4", "one4"], "first", vec![]),
            node("Reshape", &["first", "one"], "picked", vec![]),
            node("Add", &["picked", "four"], "end", vec![]),
            node("Slice", &["image", "zero", "end", "axes"], "left", vec![]),
            node(
                "ReduceMean",
                &["left", "pool"],
                "logits",
                vec![int_attr("keepdims", 0)],
            ),
        ],
        vec![
            int64s("zero4", &[0, 0, 0, 0]),
            int64s("one4", &[1, 1, 1, 1]),
            int64s("one", &[1]),
            int64s("four", &[4]),
            int64s("zero", &[0]),
            int64s("axes", &[3]),
            int64s("pool", &[2, 3]),
        ],
        3,
    );
    let mut model = OnnxModel::from_path(&valued).unwrap();
    let e = model
        .gradient(x.view(), &GradientRequest::pooled("logits", w.view()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no backward rule for Slice node 'left'") && e.contains("computed"),
        "{e}"
    );
}

/// `input` flattened and multiplied by a random `[features, classes]` matrix into `logits`:
/// every element of `input` reaches the objective with its own weight.
fn head(
    input: &str,
    features: i64,
    classes: i64,
    seed: u64,
) -> (Vec<onnx_protobuf::NodeProto>, onnx_protobuf::TensorProto) {
    use tiny::{int_attr, node};
    (
        vec![
            node("Flatten", &[input], "head_flat", vec![int_attr("axis", 1)]),
            node("MatMul", &["head_flat", "head_w"], "logits", vec![]),
        ],
        tiny::floats("head_w", &[features, classes], seed, -1.0, 1.0),
    )
}

/// Writes `nodes` then [`head`] on `last` (`features` per image) at `opset`, and checks the
/// logits' gradient against finite differences at every pixel.
fn check_graph(
    dir: &std::path::Path,
    name: &str,
    mut nodes: Vec<onnx_protobuf::NodeProto>,
    mut initializers: Vec<onnx_protobuf::TensorProto>,
    (last, features): (&str, i64),
    opset: i64,
    seed: u64,
) {
    let (tail, w) = head(last, features, 4, seed);
    nodes.extend(tail);
    initializers.push(w);
    let path = tiny::write_at(dir, name, nodes, initializers, 4, opset);
    let mut model = OnnxModel::from_path(&path).unwrap();
    let worst = check_pixels(&mut model, &[2, 3, 8, 8], "logits", seed, true);
    eprintln!("{name}: worst {worst:.2e}");
}

/// The error of the logits' gradient of a model [`head`] ends.
fn refusal(
    dir: &std::path::Path,
    name: &str,
    mut nodes: Vec<onnx_protobuf::NodeProto>,
    mut initializers: Vec<onnx_protobuf::TensorProto>,
    (last, features): (&str, i64),
) -> String {
    let (tail, w) = head(last, features, 4, 1);
    nodes.extend(tail);
    initializers.push(w);
    let path = tiny::write(dir, name, nodes, initializers, 4);
    let mut model = OnnxModel::from_path(&path).unwrap();
    let x = random(&[1, 3, 8, 8], 1, -1.0, 1.0);
    let w = random(&[1, 4], 2, -1.0, 1.0);
    model
        .gradient(x.view(), &GradientRequest::pooled("logits", w.view()))
        .unwrap_err()
        .to_string()
}

/// Concatenates the flattened `parts` (each `[N, features]`) into `output`.
fn flat_concat(parts: &[&str], output: &str) -> Vec<onnx_protobuf::NodeProto> {
    use tiny::{int_attr, node};
    let mut nodes: Vec<_> = parts
        .iter()
        .map(|p| {
            node(
                "Flatten",
                &[p],
                &format!("{p}_flat"),
                vec![int_attr("axis", 1)],
            )
        })
        .collect();
    let flats: Vec<String> = parts.iter().map(|p| format!("{p}_flat")).collect();
    let flats: Vec<&str> = flats.iter().map(String::as_str).collect();
    nodes.push(node("Concat", &flats, output, vec![int_attr("axis", 1)]));
    nodes
}

#[test]
fn gather_of_several_indices_gradients_match_finite_differences() {
    use tiny::{int_attr, int64s_shaped, node};
    let dir = tempfile::tempdir().unwrap();
    // Repeats (summed), negative indices, index tensors of rank 0, 1 and 2.
    // Name, axis, the indices' shape and values, the features gathered per image.
    type Case = (&'static str, i64, &'static [i64], &'static [i64], i64);
    let cases: [Case; 6] = [
        ("gather_list", 1, &[4], &[2, 0, 2, -1], 256),
        ("gather_matrix", 3, &[2, 2], &[1, -1, 1, 5], 96),
        ("gather_scalar", 2, &[], &[-2], 24),
        ("gather_one", 2, &[1], &[3], 24),
        ("gather_one_matrix", -1, &[1, 1], &[4], 24),
        ("gather_repeated_matrix", 2, &[3, 1], &[7, 7, 0], 72),
    ];
    for (k, (name, axis, dims, values, features)) in cases.into_iter().enumerate() {
        check_graph(
            dir.path(),
            name,
            vec![
                node("Tanh", &["image"], "t", vec![]),
                node("Gather", &["t", "i"], "g", vec![int_attr("axis", axis)]),
            ],
            vec![int64s_shaped("i", dims, values)],
            ("g", features),
            18,
            200 + 10 * k as u64,
        );
    }
    // int32 indices (ONNX allows them; some exporters write them) read like int64 ones.
    check_graph(
        dir.path(),
        "gather_int32",
        vec![
            node("Tanh", &["image"], "t", vec![]),
            node("Gather", &["t", "i"], "g", vec![int_attr("axis", 1)]),
        ],
        vec![tiny::int32s_shaped("i", &[3], &[2, 0, 2])],
        ("g", 192),
        18,
        300,
    );
    // Indices computed from the image's values are refused, naming the op (indices
    // computed from constants alone are constants, and differentiated like them).
    let e = refusal(
        dir.path(),
        "gather_computed",
        vec![
            node("ArgMax", &["image"], "i", argmax()),
            node("ReduceMax", &["i"], "most", vec![int_attr("keepdims", 0)]),
            node("Gather", &["image", "most"], "g", vec![int_attr("axis", 1)]),
        ],
        vec![],
        ("g", 8 * 8),
    );
    assert!(
        e.contains("no backward rule for Gather node 'g' with computed indices"),
        "{e}"
    );
}

/// ArgMax over the channels without keeping the axis: int64 values that follow the image's.
fn argmax() -> Vec<onnx_protobuf::AttributeProto> {
    vec![tiny::int_attr("axis", 1), tiny::int_attr("keepdims", 0)]
}

#[test]
fn expand_gradients_match_finite_differences() {
    use tiny::{int64s, ints_attr, node};
    let dir = tempfile::tempdir().unwrap();
    check_graph(
        dir.path(),
        "expand",
        vec![
            // To the image's shape read by Shape (the channel mean broadcast back).
            node("ReduceMean", &["image", "one"], "mean", vec![]),
            node("Shape", &["image"], "shape", vec![]),
            node("Expand", &["mean", "shape"], "wide", vec![]),
            node("Mul", &["wide", "image"], "product", vec![]),
            // To a constant shape of higher rank, the batch last: a new leading axis and a
            // size-1 axis broadcast (the batch's 1 keeps the batch).
            node(
                "Transpose",
                &["image"],
                "last",
                vec![ints_attr("perm", &[1, 2, 3, 0])],
            ),
            node("ReduceMean", &["last", "two"], "row", vec![]),
            node("Expand", &["row", "to"], "grown", vec![]),
            node(
                "Transpose",
                &["grown"],
                "first",
                vec![ints_attr("perm", &[4, 0, 1, 2, 3])],
            ),
            node("Reshape", &["first", "flat"], "first_flat", vec![]),
            node("Reshape", &["product", "flat"], "product_flat", vec![]),
            node(
                "Concat",
                &["first_flat", "product_flat"],
                "both",
                vec![tiny::int_attr("axis", 1)],
            ),
        ],
        vec![
            int64s("one", &[1]),
            int64s("two", &[2]),
            int64s("to", &[2, 1, 8, 4, 1]),
            int64s("flat", &[0, -1]),
        ],
        ("both", 192 + 192),
        18,
        300,
    );
}

#[test]
fn pad_gradients_match_finite_differences() {
    use tiny::{int_attr, int64s, node, scalar, string_attr};
    let dir = tempfile::tempdir().unwrap();
    let mode = |m: &str| vec![string_attr("mode", m)];
    // Opset 17: pads of every axis, a pad value, a crop (negative pad), reflect and edge.
    check_graph(
        dir.path(),
        "pad17",
        vec![
            node("Tanh", &["image"], "t", vec![]),
            node("Pad", &["t", "p1", "value"], "constant", vec![]),
            node("Pad", &["constant", "p2"], "reflect", mode("reflect")),
            node("Pad", &["reflect", "p3"], "edge", mode("edge")),
        ],
        vec![
            int64s("p1", &[0, 0, 1, 2, 0, 0, 3, -1]),
            int64s("p2", &[0, 0, 2, 1, 0, 0, 1, 3]),
            int64s("p3", &[0, 1, 0, 2, 0, 0, 1, 0]),
            scalar("value", 0.5),
        ],
        ("edge", 4 * 16 * 15),
        17,
        400,
    );
    // Opset 19: pads of some axes (negative axes too), crops and pads mixed, and wrap
    // (wider than the axis).
    check_graph(
        dir.path(),
        "pad19",
        vec![
            node("Tanh", &["image"], "t", vec![]),
            node("Pad", &["t", "p1", "", "a1"], "constant", vec![]),
            node("Pad", &["constant", "p2", "", "a2"], "wrap", mode("wrap")),
            node("Pad", &["wrap", "p3", "", "a3"], "reflect", mode("reflect")),
        ],
        vec![
            int64s("p1", &[-2, 3, 1, -1]),
            int64s("a1", &[-1, 2]),
            int64s("p2", &[9, 2]),
            int64s("a2", &[3]),
            int64s("p3", &[2, 0]),
            int64s("a3", &[1]),
        ],
        ("reflect", 5 * 10 * 18),
        19,
        410,
    );
    // Computed pads are refused, naming the op.
    let e = refusal(
        dir.path(),
        "pad_computed",
        vec![
            node("ArgMax", &["image"], "i", argmax()),
            node("ReduceMax", &["i"], "most", vec![int_attr("keepdims", 0)]),
            node("Sub", &["most", "most"], "nought", vec![]),
            node("Add", &["p", "nought"], "pp", vec![]),
            node("Pad", &["image", "pp"], "padded", vec![]),
        ],
        vec![int64s("p", &[0, 0, 1, 1, 0, 0, 1, 1])],
        ("padded", 3 * 10 * 10),
    );
    assert!(
        e.contains("no backward rule for Pad node 'padded' with computed pads"),
        "{e}"
    );
    // So are crops in the other modes (which ONNX Runtime runs, in some order of its own).
    let e = refusal(
        dir.path(),
        "pad_edge_crop",
        vec![node("Pad", &["image", "p"], "padded", mode("edge"))],
        vec![int64s("p", &[0, 0, 2, 0, 0, 0, -1, 0])],
        ("padded", 3 * 9 * 8),
    );
    assert!(
        e.contains("no backward rule for Pad node 'padded' in mode 'edge' with negative pads"),
        "{e}"
    );
}

#[test]
fn where_gradients_match_finite_differences() {
    use tiny::{int64s, node, scalar};
    let dir = tempfile::tempdir().unwrap();
    check_graph(
        dir.path(),
        "where",
        vec![
            node("Greater", &["image", "zero"], "positive", vec![]),
            node("ReduceMean", &["image", "one"], "mean", vec![]),
            node("Mul", &["image", "image"], "square", vec![]),
            // Both branches image-dependent, the second broadcast along the channels.
            node("Where", &["positive", "square", "mean"], "w1", vec![]),
            // A broadcast condition, a constant second branch.
            node("Less", &["mean", "tenth"], "low", vec![]),
            node("Where", &["low", "image", "half"], "w2", vec![]),
            // The image in the second branch only.
            node("Where", &["positive", "half", "mean"], "w3", vec![]),
            node("Add", &["w1", "w2"], "w12", vec![]),
            node("Add", &["w12", "w3"], "sum", vec![]),
        ],
        vec![
            scalar("zero", 0.0),
            scalar("tenth", 0.1),
            scalar("half", 0.5),
            int64s("one", &[1]),
        ],
        ("sum", 192),
        18,
        500,
    );
}

#[test]
fn reduce_max_and_min_gradients_match_finite_differences() {
    use tiny::{int_attr, int64s, ints_attr, node};
    let dir = tempfile::tempdir().unwrap();
    // Opset 18: axes as an input, keepdims 0 and 1, negative axes, the no-op of no axes.
    let mut nodes = vec![
        node("Tanh", &["image"], "t", vec![]),
        node(
            "ReduceMax",
            &["t", "last"],
            "max",
            vec![int_attr("keepdims", 0)],
        ),
        node("ReduceMin", &["t", "two"], "min", vec![]),
        node(
            "ReduceMax",
            &["t"],
            "same",
            vec![int_attr("noop_with_empty_axes", 1)],
        ),
    ];
    nodes.extend(flat_concat(&["max", "min", "same"], "all"));
    check_graph(
        dir.path(),
        "reduce_max18",
        nodes,
        vec![int64s("last", &[3]), int64s("two", &[-3, 2])],
        ("all", 24 + 8 + 192),
        18,
        600,
    );
    // Opset 17: axes as an attribute.
    let mut nodes = vec![
        node("Tanh", &["image"], "t", vec![]),
        node("ReduceMax", &["t"], "max", vec![ints_attr("axes", &[1, 3])]),
        node(
            "ReduceMin",
            &["t"],
            "min",
            vec![ints_attr("axes", &[2]), int_attr("keepdims", 0)],
        ),
    ];
    nodes.extend(flat_concat(&["max", "min"], "all"));
    check_graph(
        dir.path(),
        "reduce_max17",
        nodes,
        vec![],
        ("all", 8 + 24),
        17,
        610,
    );
}

#[test]
fn reduce_max_splits_the_gradient_evenly_among_ties() {
    use tiny::{int_attr, int64s, node};
    let dir = tempfile::tempdir().unwrap();
    let path = tiny::write(
        dir.path(),
        "reduce_max_ties",
        vec![node(
            "ReduceMax",
            &["image", "axes"],
            "logits",
            vec![int_attr("keepdims", 0)],
        )],
        vec![int64s("axes", &[2, 3])],
        3,
    );
    let mut model = OnnxModel::from_path(&path).unwrap();
    // Below 1 everywhere but at two, three and one positions of the three channels.
    let mut x = random(&[1, 3, 8, 8], 7, -1.0, 0.5);
    let peaks: [&[usize]; 3] = [&[3, 40], &[0, 9, 63], &[17]];
    for (c, at) in peaks.iter().enumerate() {
        for &p in *at {
            x.data_mut()[c * 64 + p] = 1.0;
        }
    }
    let w = Tensor::new(vec![1, 3], vec![0.6, -0.9, 2.0]).unwrap();
    let grad = model
        .gradient(x.view(), &GradientRequest::pooled("logits", w.view()))
        .unwrap()
        .input;
    for (c, at) in peaks.iter().enumerate() {
        for p in 0..64 {
            let expected = if at.contains(&p) {
                w.data()[c] / at.len() as f32
            } else {
                0.0
            };
            let g = grad.data()[c * 64 + p];
            assert!((g - expected).abs() < 1e-6, "channel {c} pixel {p}: {g}");
        }
    }
}

#[test]
fn scatter_nd_gradients_match_finite_differences() {
    use tiny::{int_attr, int64s, int64s_shaped, ints_attr, node, string_attr};
    let dir = tempfile::tempdir().unwrap();
    // ScatterND indexes from the first axis: the batch goes last first.
    let prelude = || {
        vec![
            node(
                "Transpose",
                &["image"],
                "last",
                vec![ints_attr("perm", &[1, 2, 3, 0])],
            ),
            node(
                "ReduceMean",
                &["last", "one"],
                "row",
                vec![int_attr("keepdims", 0)],
            ),
            node("Mul", &["row", "row"], "updates", vec![]),
        ]
    };
    let mut nodes = prelude();
    nodes.extend([
        // Constant indices (one negative), reduction none.
        node("ScatterND", &["last", "at", "updates"], "s1", vec![]),
        // Repeated indices added.
        node("Slice", &["updates", "zero", "two", "zero"], "some", vec![]),
        node(
            "ScatterND",
            &["s1", "twice", "some"],
            "s2",
            vec![string_attr("reduction", "add")],
        ),
        // Indices the graph computes (shape arithmetic).
        node("Add", &["at", "nought"], "computed", vec![]),
        node("Tanh", &["last"], "bent", vec![]),
        node("ScatterND", &["bent", "computed", "updates"], "s3", vec![]),
        node("Add", &["s2", "s3"], "s", vec![]),
        node(
            "Transpose",
            &["s"],
            "back",
            vec![ints_attr("perm", &[3, 0, 1, 2])],
        ),
    ]);
    let initializers = || {
        vec![
            int64s("one", &[1]),
            int64s("zero", &[0]),
            int64s("two", &[2]),
            int64s_shaped("nought", &[], &[0]),
            int64s_shaped("at", &[3, 2], &[0, 1, 2, 5, -1, 7]),
            int64s_shaped("twice", &[2, 2], &[1, 1, 1, 1]),
        ]
    };
    check_graph(
        dir.path(),
        "scatter_nd",
        nodes,
        initializers(),
        ("back", 192),
        18,
        700,
    );
    // Reduction mul, and repeated indices overwritten, are refused naming the op.
    for (name, indices, reduction, why) in [
        ("scatter_mul", "at", "mul", "with reduction 'mul'"),
        ("scatter_repeats", "twice", "none", "with repeated indices"),
    ] {
        let mut nodes = prelude();
        nodes.extend([
            node("Slice", &["updates", "zero", "two", "zero"], "some", vec![]),
            node(
                "ScatterND",
                &[
                    "last",
                    indices,
                    if indices == "at" { "updates" } else { "some" },
                ],
                "s",
                vec![string_attr("reduction", reduction)],
            ),
            node(
                "Transpose",
                &["s"],
                "back",
                vec![ints_attr("perm", &[3, 0, 1, 2])],
            ),
        ]);
        let e = refusal(dir.path(), name, nodes, initializers(), ("back", 192));
        assert!(
            e.contains(&format!("no backward rule for ScatterND node 's' {why}")),
            "{e}"
        );
    }
}

#[test]
fn einsum_gradients_match_finite_differences() {
    use tiny::{floats, int_attr, node, string_attr};
    let dir = tempfile::tempdir().unwrap();
    let einsum = |inputs: &[&str], output: &str, equation: &str| {
        node(
            "Einsum",
            inputs,
            output,
            vec![string_attr("equation", equation)],
        )
    };
    let mut nodes = vec![
        // MaxViT's attention: scores, softmax, the weighted values.
        einsum(&["image", "image"], "scores", "bhid,bhjd->bhij"),
        node(
            "Softmax",
            &["scores"],
            "attention",
            vec![int_attr("axis", -1)],
        ),
        einsum(&["attention", "image"], "attended", "bhij,bhjd->bhid"),
        // A transpose, a projection under an ellipsis, a sum and transpose of one operand.
        einsum(&["attended"], "swapped", "bhij->bhji"),
        einsum(&["swapped", "w1"], "projected", "...ij,jk->...ik"),
        einsum(&["projected"], "summed", "bhik->bki"),
        // The implicit output (bkl), a label only in the image's operand (i), ellipses in
        // both operands.
        einsum(&["summed", "w2"], "implicit", "bki,il"),
        einsum(&["image", "w3"], "rows", "bcij,jk->bck"),
        einsum(&["image", "attended"], "both", "...ij,...jk->...ik"),
    ];
    nodes.extend(flat_concat(&["implicit", "rows", "both"], "all"));
    check_graph(
        dir.path(),
        "einsum",
        nodes,
        vec![
            floats("w1", &[8, 5], 1, -1.0, 1.0),
            floats("w2", &[8, 2], 2, -1.0, 1.0),
            floats("w3", &[8, 4], 3, -1.0, 1.0),
        ],
        ("all", 10 + 12 + 192),
        18,
        800,
    );
    // A diagonal and three operands are refused, naming the op.
    for (name, inputs, equation, features, why) in [
        (
            "einsum_diagonal",
            &["image"][..],
            "bcii->bci",
            24,
            "label 'i' repeats within a term",
        ),
        (
            "einsum_three",
            &["image", "image", "image"][..],
            "bcij,bcij,bcij->bc",
            3,
            "has 3 operands",
        ),
    ] {
        let e = refusal(
            dir.path(),
            name,
            vec![einsum(inputs, "e", equation)],
            vec![],
            ("e", features),
        );
        assert!(
            e.contains("no backward rule for Einsum node 'e'") && e.contains(why),
            "{e}"
        );
    }
}
