//! The decision layer of real ONNX models: `W` and `b` read from the initialisers reproduce
//! the logits from the recorded features (Gemm with transB = 1, Gemm with transB = 0 and
//! alpha/beta, MatMul + Add), the edited copy runs with the new weights, the user's file
//! stays byte-identical, an existing output is refused, and a model without a linear head
//! says so.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use onnx_protobuf::{
    AttributeProto, Message, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};
use shiftscope_onnx::OnnxModel;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{DecisionLayer, ErrorKind, ModelAdapter, Pooling, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn demo_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/models/demo-cnn.onnx")
}

fn batch(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..n).map(|_| rng.uniform(0.0, 1.0)).collect(),
    )
    .unwrap()
}

/// `W f + b` for every row of `features` (`[B, D]`), by hand.
fn apply(layer: &DecisionLayer, features: &Tensor) -> Vec<f32> {
    let (k, d) = layer.dims().unwrap();
    let (w, b) = (layer.weights.data(), layer.bias.data());
    features
        .data()
        .chunks(d)
        .flat_map(|f| (0..k).map(move |c| b[c] + (0..d).map(|j| w[c * d + j] * f[j]).sum::<f32>()))
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

/// The logits are `W f + b` on the features the adapter records.
fn check_reproduces(model: &mut OnnxModel, shape: &[usize]) -> DecisionLayer {
    let layer = model.decision_layer().unwrap();
    let x = batch(shape, 11);
    let set = model
        .run(
            x.view(),
            std::slice::from_ref(&layer.input),
            Pooling::default(),
        )
        .unwrap();
    assert_close(
        &apply(&layer, &set.layers[0].tensor),
        set.logits.data(),
        1e-4,
    );
    layer
}

#[test]
fn demo_cnn_head_is_fc2_on_fc1() {
    let mut model = OnnxModel::from_path(&demo_model()).unwrap();
    let layer = check_reproduces(&mut model, &[4, 3, 28, 28]);
    assert_eq!(layer.input, "fc1");
    assert_eq!(layer.op, "Gemm");
    assert_eq!(layer.weights.shape(), &[10, 50]);
    assert_eq!(layer.bias.shape(), &[10]);
}

#[test]
fn fixture_cnn_head_after_flatten() {
    let mut model = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let layer = check_reproduces(&mut model, &[3, 3, 16, 16]);
    assert_eq!(layer.input, "flatten");
    assert_eq!(layer.weights.shape(), &[10, 8]);
}

#[test]
fn edited_copy_runs_with_the_new_weights_and_the_original_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let original = demo_model();
    let before = std::fs::read(&original).unwrap();
    let mut model = OnnxModel::from_path(&original).unwrap();
    let mut layer = model.decision_layer().unwrap();
    // Zero neuron 3's outgoing weights and shift the bias.
    let d = layer.weights.shape()[1];
    for c in 0..10 {
        layer.weights.data_mut()[c * d + 3] = 0.0;
        layer.bias.data_mut()[c] += c as f32 * 0.25;
    }
    let out = dir.path().join("repaired.onnx");
    model
        .export_with_decision_layer(&layer, &out, false)
        .unwrap();
    assert_eq!(
        std::fs::read(&original).unwrap(),
        before,
        "the user's file changed"
    );
    let mut copy = OnnxModel::from_path(&out).unwrap();
    assert_eq!(copy.decision_layer().unwrap(), layer);
    let x = batch(&[5, 3, 28, 28], 5);
    let set = copy
        .run(x.view(), &["fc1".to_owned()], Pooling::default())
        .unwrap();
    assert_close(
        &apply(&layer, &set.layers[0].tensor),
        set.logits.data(),
        1e-4,
    );
    // An existing output is refused unless told; the model's own path always.
    let e = model
        .export_with_decision_layer(&layer, &out, false)
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    model
        .export_with_decision_layer(&layer, &out, true)
        .unwrap();
    let e = model
        .export_with_decision_layer(&layer, &original, true)
        .unwrap_err();
    assert!(e.to_string().contains("the model itself"), "{e}");
    assert_eq!(std::fs::read(&original).unwrap(), before);
}

#[test]
fn a_model_without_a_linear_head_says_so() {
    // The ViT fixture's head is a Gemm on the CLS token: it has one. Make a model whose
    // logits come from a Softmax-free Relu instead.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relu-head.onnx");
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(demo_model()).unwrap()).unwrap();
    let g = m.graph.mut_or_insert_default();
    let last = g.node.len() - 1;
    g.node[last].output[0] = "pre_logits".to_owned();
    g.node.push(node("Relu", &["pre_logits"], "logits", &[]));
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    let mut model = OnnxModel::from_path(&path).unwrap();
    let e = model.decision_layer().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("not a Gemm or MatMul"), "{e}");
    assert!(e.to_string().contains("relu-head.onnx"), "{e}");
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: &[(&str, AttributeProto)]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_owned();
    n.name = output.to_owned();
    n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    n.output = vec![output.to_owned()];
    n.attribute = attrs
        .iter()
        .map(|(name, a)| {
            let mut a = a.clone();
            a.name = (*name).to_owned();
            a
        })
        .collect();
    n
}

fn float_attr(v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

fn int_attr(v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

fn init(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_owned();
    t.data_type = DataType::FLOAT as i32;
    t.dims = dims.to_vec();
    t.float_data = values.to_vec();
    t
}

/// The demo CNN with its head rewritten: `fc2.weight` stored as `[D, K]` (transB = 0) with
/// alpha 0.5 and beta 2, or as MatMul + Add.
fn rewrite_head(dir: &Path, form: &str) -> PathBuf {
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(demo_model()).unwrap()).unwrap();
    let g = m.graph.mut_or_insert_default();
    let wi = g
        .initializer
        .iter()
        .position(|t| t.name == "fc2.weight")
        .unwrap();
    let bi = g
        .initializer
        .iter()
        .position(|t| t.name == "fc2.bias")
        .unwrap();
    let read = |t: &TensorProto| -> Vec<f32> {
        if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    };
    let w = read(&g.initializer[wi]); // [10, 50]
    let b = read(&g.initializer[bi]);
    let mut wt = vec![0.0; 500];
    for k in 0..10 {
        for d in 0..50 {
            wt[d * 10 + k] = w[k * 50 + d];
        }
    }
    let last = g.node.len() - 1;
    match form {
        "gemm" => {
            g.initializer[wi] = init("fc2.weight", &[50, 10], &wt);
            g.initializer[bi] = init("fc2.bias", &[1, 10], &b);
            g.node[last] = node(
                "Gemm",
                &["fc1", "fc2.weight", "fc2.bias"],
                "logits",
                &[
                    ("alpha", float_attr(0.5)),
                    ("beta", float_attr(2.0)),
                    ("transB", int_attr(0)),
                ],
            );
        }
        _ => {
            g.initializer[wi] = init("fc2.weight", &[50, 10], &wt);
            g.node[last] = node("MatMul", &["fc1", "fc2.weight"], "head_mm", &[]);
            g.node
                .push(node("Add", &["fc2.bias", "head_mm"], "logits", &[]));
        }
    }
    let path = dir.join(format!("{form}.onnx"));
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    path
}

#[test]
fn gemm_trans_b_0_with_alpha_beta_and_matmul_add() {
    let dir = tempfile::tempdir().unwrap();
    let reference = OnnxModel::from_path(&demo_model())
        .unwrap()
        .decision_layer()
        .unwrap();
    for (form, op) in [("gemm", "Gemm"), ("matmul", "MatMul+Add")] {
        let path = rewrite_head(dir.path(), form);
        let mut model = OnnxModel::from_path(&path).unwrap();
        let layer = check_reproduces(&mut model, &[3, 3, 28, 28]);
        assert_eq!(layer.op, op);
        // alpha 0.5 and beta 2 are folded in: W = 0.5 B^T, b = 2 C.
        let (sw, sb) = if form == "gemm" {
            (0.5, 2.0)
        } else {
            (1.0, 1.0)
        };
        let expect_w: Vec<f32> = reference.weights.data().iter().map(|v| v * sw).collect();
        let expect_b: Vec<f32> = reference.bias.data().iter().map(|v| v * sb).collect();
        assert_close(layer.weights.data(), &expect_w, 1e-6);
        assert_close(layer.bias.data(), &expect_b, 1e-6);
        // Exporting the reference weights into this layout gives the reference logits back.
        let out = dir.path().join(format!("{form}-edited.onnx"));
        model
            .export_with_decision_layer(&reference, &out, false)
            .unwrap();
        let mut copy = OnnxModel::from_path(&out).unwrap();
        let edited = check_reproduces(&mut copy, &[2, 3, 28, 28]);
        assert_close(edited.weights.data(), reference.weights.data(), 1e-6);
        assert_close(edited.bias.data(), reference.bias.data(), 1e-6);
    }
}
