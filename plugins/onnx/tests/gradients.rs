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

/// Checks the gradient of `layer`'s objective at `coordinates` pixels against central
/// differences; returns the largest relative difference seen.
fn check(model: &mut OnnxModel, shape: &[usize], layer: &str, seed: u64) -> f64 {
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
    for _ in 0..24 {
        let i = (rng.next_u64() % x.data().len() as u64) as usize;
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

    /// Writes a model of `nodes` from `image` `[N, 3, 8, 8]` to `logits` `[N, classes]`.
    pub(crate) fn write(
        dir: &Path,
        name: &str,
        nodes: Vec<NodeProto>,
        initializers: Vec<TensorProto>,
        classes: i64,
    ) -> PathBuf {
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut opset = OperatorSetIdProto::new();
        opset.version = 18;
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
