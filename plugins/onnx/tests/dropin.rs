//! The ONNX files people have, in small: the fixture CNN rewritten the way today's exporters
//! and converters write models (weights in a side file, a channels-last or symbolic-size
//! input, several outputs, float16 hidden layers), each opened from another folder than its
//! own and checked against the plain fixture, run by the real ONNX Runtime.

use std::path::{Path, PathBuf};

use onnx_protobuf::{
    Message, ModelProto, NodeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType,
};
use shiftscope_onnx::{Config, OnnxModel};
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    ActivationSet, GradientRequest, ModelAdapter, Pooling, Tensor, select_layers,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn cnn() -> ModelProto {
    let bytes = std::fs::read(fixture("cnn.onnx")).expect("the fixture CNN");
    ModelProto::parse_from_bytes(&bytes).expect("an ONNX model")
}

fn batch(n: usize, seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    Tensor::new(
        vec![n, 3, 16, 16],
        (0..n * 3 * 16 * 16)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect(),
    )
    .expect("batch tensor")
}

fn save(model: &ModelProto, path: &Path) {
    let bytes = model.write_to_bytes().expect("encode the model");
    std::fs::write(path, bytes).expect("write the model");
}

use shiftscope_testkit::onnx::save_with_external_data;

fn everything(model: &mut OnnxModel, input: &Tensor) -> ActivationSet {
    let d = model.describe().expect("describe");
    let names: Vec<String> = d.layers.iter().map(|l| l.name.clone()).collect();
    model
        .run(input.view(), &names, Pooling::default())
        .expect("run every layer")
}

fn assert_same(got: &ActivationSet, want: &ActivationSet, tol: f32) {
    assert_eq!(got.layers.len(), want.layers.len());
    let pairs = got
        .layers
        .iter()
        .zip(&want.layers)
        .map(|(g, w)| (w.name.as_str(), &g.tensor, &w.tensor))
        .chain([("logits", &got.logits, &want.logits)]);
    for (name, g, w) in pairs {
        assert_eq!(g.shape(), w.shape(), "{name}");
        let scale = w.data().iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (a, b) in g.data().iter().zip(w.data()) {
            assert!((a - b).abs() <= tol * scale, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn external_data_resolves_beside_the_model_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.onnx");
    save_with_external_data(cnn(), &path);
    // The test runs in the package's folder: the side file is only found through the model's.
    assert_ne!(std::env::current_dir().unwrap(), dir.path());
    let mut external = OnnxModel::from_path(&path).unwrap();
    let d = external.describe().unwrap();
    assert!(
        d.notes.iter().any(|n| n.contains("external data")),
        "{:?}",
        d.notes
    );
    assert_eq!(
        d.data_files,
        [path.with_file_name("cnn.onnx.data").display().to_string()]
    );
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    assert_eq!(d.layers, plain.describe().unwrap().layers);
    assert!(plain.describe().unwrap().data_files.is_empty());
    let x = batch(3, 1);
    assert_same(
        &everything(&mut external, &x),
        &everything(&mut plain, &x),
        0.0,
    );
    let names = vec!["conv2_relu".to_owned()];
    let maps = external.run_maps(batch(1, 2).view(), &names).unwrap();
    assert_eq!(maps.layers[0].tensor.shape(), [1, 8, 8, 8]);

    // Gradients run on the side file's weights too.
    let weights =
        Tensor::new(vec![3, 10], (0..30).map(|i| (i % 7) as f32 - 3.0).collect()).unwrap();
    let request = GradientRequest::pooled("logits", weights.view());
    let got = external.gradient(x.view(), &request).unwrap();
    assert_eq!(got, plain.gradient(x.view(), &request).unwrap());

    // The decision layer reads its weights from the side file, and a repaired copy carries
    // its weights inline, running from anywhere.
    let mut layer = external.decision_layer().unwrap();
    assert_eq!(layer, plain.decision_layer().unwrap());
    layer.bias.data_mut()[0] += 1.0;
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("repaired.onnx");
    external
        .export_with_decision_layer(&layer, &copy, false)
        .unwrap();
    let proto = ModelProto::parse_from_bytes(&std::fs::read(&copy).unwrap()).unwrap();
    assert!(
        proto
            .graph
            .initializer
            .iter()
            .all(|t| t.external_data.is_empty()),
        "the copy carries its weights"
    );
    assert!(!elsewhere.path().join("repaired.onnx.data").exists());
    let mut repaired = OnnxModel::from_path(&copy).unwrap();
    assert_eq!(repaired.decision_layer().unwrap(), layer);
    let before = plain.run(x.view(), &[], Pooling::default()).unwrap();
    let after = repaired.run(x.view(), &[], Pooling::default()).unwrap();
    for (row, (a, b)) in after
        .logits
        .data()
        .chunks(10)
        .zip(before.logits.data().chunks(10))
        .enumerate()
    {
        assert!(
            (a[0] - b[0] - 1.0).abs() < 1e-4,
            "image {row}: {} vs {}",
            a[0],
            b[0]
        );
        assert!((a[1] - b[1]).abs() < 1e-5);
    }
}

#[test]
fn a_missing_or_short_side_file_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.onnx");
    save_with_external_data(cnn(), &path);
    let side = dir.path().join("cnn.onnx.data");
    let bytes = std::fs::read(&side).unwrap();

    std::fs::write(&side, &bytes[..bytes.len() - 10]).unwrap();
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains(&side.display().to_string()) && e.contains("truncated"),
        "{e}"
    );

    std::fs::remove_file(&side).unwrap();
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&path.display().to_string())
            && e.contains(&side.display().to_string())
            && e.contains("cannot be read"),
        "{e}"
    );
}

/// The fixture with its input `image` [N, 3, 16, 16] replaced by `image_nhwc` [N, 16, 16, 3]
/// and a Transpose, as a Keras/TensorFlow export reads images.
fn channels_last() -> ModelProto {
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    let input = &mut graph.input[0];
    input.name = "image_nhwc".to_owned();
    let dims = &mut input
        .type_
        .mut_or_insert_default()
        .mut_tensor_type()
        .shape
        .mut_or_insert_default()
        .dim;
    let c = dims.remove(1);
    dims.push(c);
    let mut node = NodeProto::new();
    node.op_type = "Transpose".to_owned();
    node.input.push("image_nhwc".to_owned());
    node.output.push("image".to_owned());
    let mut perm = onnx_protobuf::AttributeProto::new();
    perm.name = "perm".to_owned();
    perm.type_ = AttributeType::INTS.into();
    perm.ints = vec![0, 3, 1, 2];
    node.attribute.push(perm);
    graph.node.insert(0, node);
    model
}

#[test]
fn channels_last_inputs_are_fed_channel_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nhwc.onnx");
    save(&channels_last(), &path);
    let mut model = OnnxModel::from_path(&path).unwrap();
    let d = model.describe().unwrap();
    assert_eq!(d.inputs[0].shape, [None, Some(3), Some(16), Some(16)]);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("channels-last input 'image_nhwc'")),
        "{:?}",
        d.notes
    );
    assert_eq!(d.layer("conv1_relu").unwrap().shape, [8, 16, 16]);
    let x = batch(2, 3);
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    assert_same(
        &everything(&mut model, &x),
        &everything(&mut plain, &x),
        0.0,
    );
    // The user's file is still channels-last.
    let back = ModelProto::parse_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back.graph.input[0].name, "image_nhwc");
}

#[test]
fn symbolic_height_and_width_take_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dynamic.onnx");
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    let dims = &mut graph.input[0]
        .type_
        .mut_or_insert_default()
        .mut_tensor_type()
        .shape
        .mut_or_insert_default()
        .dim;
    dims[2].set_dim_param("height".to_owned());
    dims[3].set_dim_param("width".to_owned());
    graph.value_info.clear();
    save(&model, &path);

    let mut at_224 = OnnxModel::from_path(&path).unwrap();
    let d = at_224.describe().unwrap();
    assert_eq!(d.inputs[0].shape, [None, Some(3), None, None]);
    assert_eq!(d.layer("conv1_relu").unwrap().shape, [8, 224, 224]);
    assert!(
        d.notes.iter().any(|n| n.contains("symbolic")),
        "{:?}",
        d.notes
    );

    let mut config = Config::for_model(&path);
    config.input_size = Some([16, 16]);
    let mut at_16 = OnnxModel::open(&config).unwrap();
    assert_eq!(
        at_16.describe().unwrap().layer("conv1_relu").unwrap().shape,
        [8, 16, 16]
    );
    let x = batch(2, 4);
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    assert_same(
        &everything(&mut at_16, &x),
        &everything(&mut plain, &x),
        0.0,
    );
}

/// The fixture with the head's input exposed as a first output (named `features_name`) and
/// its logits output renamed, as Hugging Face models return `(pooler_output, logits)`.
fn two_outputs(features_name: &str, logits_name: &str) -> ModelProto {
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    for node in &mut graph.node {
        for t in node.output.iter_mut().chain(node.input.iter_mut()) {
            if t == "logits" {
                *t = logits_name.to_owned();
            } else if t == "flatten" {
                *t = features_name.to_owned();
            }
        }
    }
    graph.output[0].name = logits_name.to_owned();
    let mut features = ValueInfoProto::new();
    features.name = features_name.to_owned();
    graph.output.insert(0, features);
    graph.value_info.clear();
    model
}

#[test]
fn the_classifier_output_is_found_among_several_or_named() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf.onnx");
    save(&two_outputs("pooler_output", "logits"), &hf);
    let mut model = OnnxModel::from_path(&hf).unwrap();
    let d = model.describe().unwrap();
    assert_eq!(d.num_classes, 10);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("classifier output: 'logits'")),
        "{:?}",
        d.notes
    );
    let x = batch(2, 5);
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let want = plain.run(x.view(), &[], Pooling::default()).unwrap();
    let got = model.run(x.view(), &[], Pooling::default()).unwrap();
    assert_eq!(got.logits, want.logits);

    // Two vectors and no name that says which: an error naming both and the way out.
    let ambiguous = dir.path().join("ambiguous.onnx");
    save(&two_outputs("features", "scores"), &ambiguous);
    let e = OnnxModel::from_path(&ambiguous).unwrap_err().to_string();
    assert!(
        e.contains("ambiguous.onnx")
            && e.contains("'features' [8]")
            && e.contains("'scores' [10]")
            && e.contains("output"),
        "{e}"
    );
    let mut config = Config::for_model(&ambiguous);
    config.output = Some("scores".to_owned());
    let mut named = OnnxModel::open(&config).unwrap();
    assert_eq!(named.describe().unwrap().num_classes, 10);
    let got = named.run(x.view(), &[], Pooling::default()).unwrap();
    assert_eq!(got.logits, want.logits);

    // Naming an output that is not there says what is.
    config.output = Some("nope".to_owned());
    let e = OnnxModel::open(&config).unwrap_err().to_string();
    assert!(
        e.contains("'nope' is not an output") && e.contains("'scores' [10]"),
        "{e}"
    );
}

/// A Cast of `from` to `to` of type `ty`.
fn cast(from: &str, to: &str, ty: DataType) -> NodeProto {
    let mut node = NodeProto::new();
    node.op_type = "Cast".to_owned();
    node.input.push(from.to_owned());
    node.output.push(to.to_owned());
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = "to".to_owned();
    a.type_ = AttributeType::INT.into();
    a.i = ty as i64;
    node.attribute.push(a);
    node
}

/// The fixture as a float16 model with float32 inputs and outputs (what
/// `convert_float_to_float16(model, keep_io_types=True)` writes): float16 weights, a Cast
/// after the input and one before the output.
fn float16() -> ModelProto {
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    for t in &mut graph.initializer {
        if t.data_type == DataType::FLOAT as i32 {
            let halves: Vec<u8> = t
                .raw_data
                .chunks_exact(4)
                .flat_map(|c| {
                    half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()
                })
                .collect();
            t.raw_data = halves;
            t.data_type = DataType::FLOAT16 as i32;
        }
    }
    for node in &mut graph.node {
        for t in node.input.iter_mut().chain(node.output.iter_mut()) {
            if t == "image" {
                *t = "image_f16".to_owned();
            } else if t == "logits" {
                *t = "logits_f16".to_owned();
            }
        }
    }
    graph
        .node
        .insert(0, cast("image", "image_f16", DataType::FLOAT16));
    graph
        .node
        .push(cast("logits_f16", "logits", DataType::FLOAT));
    graph.value_info.clear();
    model
}

#[test]
fn float16_models_record_their_hidden_layers_as_float32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f16.onnx");
    save(&float16(), &path);
    let mut model = OnnxModel::from_path(&path).unwrap();
    let d = model.describe().unwrap();
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let want_layers = plain.describe().unwrap();
    // The same hidden layers as the float32 model, not just the logits.
    let defaults = select_layers(&d, &[]).unwrap();
    assert_eq!(defaults, select_layers(&want_layers, &[]).unwrap());
    assert!(
        d.notes.iter().any(|n| n.contains("recorded as float32")),
        "{:?}",
        d.notes
    );
    let x = batch(2, 6);
    let got = model.run(x.view(), &defaults, Pooling::default()).unwrap();
    let want = plain.run(x.view(), &defaults, Pooling::default()).unwrap();
    // float16 arithmetic: a few parts in a thousand.
    assert_same(&got, &want, 1e-2);
    let maps = model
        .run_maps(batch(1, 7).view(), &["conv1_relu".to_owned()])
        .unwrap();
    assert_eq!(maps.layers[0].tensor.shape(), [1, 8, 16, 16]);
}

#[test]
fn inputs_that_are_no_single_image_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    let mut second = graph.input[0].clone();
    second.name = "mask".to_owned();
    graph.input.push(second);
    let path = dir.path().join("two_inputs.onnx");
    save(&model, &path);
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains("two_inputs.onnx") && e.contains("2 inputs ('image', 'mask')"),
        "{e}"
    );

    let mut model = cnn();
    model.graph.mut_or_insert_default().input[0]
        .type_
        .mut_or_insert_default()
        .mut_tensor_type()
        .elem_type = DataType::UINT8 as i32;
    let path = dir.path().join("bytes.onnx");
    save(&model, &path);
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains("bytes.onnx") && e.contains("'image' has element type uint8"),
        "{e}"
    );
}

#[test]
fn int8_qdq_models_record_their_dequantised_activations() {
    // `cnn.onnx` through ONNX Runtime's quantiser (tools/make_fixture_models.py): every Relu
    // folded into the quantisation range of the op before it.
    let mut model = OnnxModel::from_path(&fixture("cnn_qdq.onnx")).unwrap();
    let d = model.describe().unwrap();
    assert!(
        d.notes.iter().any(|n| n.contains("quantised (QDQ)")),
        "{:?}",
        d.notes
    );
    let mut plain = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let names = select_layers(&d, &[]).unwrap();
    assert_eq!(
        names,
        select_layers(&plain.describe().unwrap(), &[]).unwrap()
    );
    let x = batch(4, 8);
    let got = model.run(x.view(), &names, Pooling::default()).unwrap();
    let want = plain.run(x.view(), &names, Pooling::default()).unwrap();
    // uint8 activations: a step is 1/255 of a layer's calibrated range.
    assert_same(&got, &want, 0.05);
    // Not the float tensor before quantisation: the values are on the uint8 grid.
    assert!(
        got.layers
            .iter()
            .zip(&want.layers)
            .any(|(g, w)| g.tensor != w.tensor)
    );
}

#[test]
fn an_output_that_is_no_classifier_and_a_kernel_the_cpu_lacks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // The only output is a feature map: no classifier.
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    graph.output[0].name = "block1_relu".to_owned();
    graph.output[0].type_.clear();
    let path = dir.path().join("maps.onnx");
    save(&model, &path);
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains("maps.onnx") && e.contains("'block1_relu' [8, 8, 8] is not a classifier's"),
        "{e}"
    );

    // bfloat16 Relus: ONNX Runtime's CPU provider has no kernel for them.
    let mut model = cnn();
    let graph = model.graph.mut_or_insert_default();
    let relu = graph
        .node
        .iter()
        .position(|n| n.output[0] == "conv1_relu")
        .unwrap();
    graph.node[relu].input[0] = "conv1_bf16".to_owned();
    graph.node[relu].output[0] = "conv1_relu_bf16".to_owned();
    graph.node.insert(
        relu + 1,
        cast("conv1_relu_bf16", "conv1_relu", DataType::FLOAT),
    );
    graph
        .node
        .insert(relu, cast("conv1", "conv1_bf16", DataType::BFLOAT16));
    graph.value_info.clear();
    let path = dir.path().join("bf16.onnx");
    save(&model, &path);
    let e = OnnxModel::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains("bf16.onnx") && e.contains("no kernel for that operator"),
        "{e}"
    );
}
