//! The ONNX adapter on the fixture models `tools/make_fixture_models.py` wrote (a CNN with a
//! residual block and a tiny vision transformer), run by the real ONNX Runtime.

use std::path::PathBuf;

use shiftscope_onnx::OnnxModel;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    ConvPooling, LayerKind, ModelAdapter, Pooling, ReceptiveField, Tensor, TokenPooling, pool_map,
    select_layers,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

fn batch(n: usize) -> Tensor {
    let mut rng = SplitMix64::new(3);
    Tensor::new(
        vec![n, 3, 16, 16],
        (0..n * 3 * 16 * 16)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect(),
    )
    .expect("batch tensor")
}

fn defaults(model: &mut OnnxModel) -> Vec<String> {
    select_layers(&model.describe().expect("describe"), &[]).expect("default selection")
}

#[test]
fn cnn_layers_kinds_and_default_selection() {
    let mut model = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let d = model.describe().unwrap();
    let kinds: Vec<(&str, LayerKind, usize)> = d
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.kind, l.neurons))
        .collect();
    assert!(
        kinds.contains(&("conv1_relu", LayerKind::Conv, 8)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("block1_add", LayerKind::Conv, 8)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("flatten", LayerKind::Dense, 8)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("logits", LayerKind::Logits, 10)),
        "{kinds:?}"
    );
    assert_eq!(d.layer("pool1").unwrap().shape, vec![8, 8, 8]);
    assert_eq!(
        defaults(&mut model),
        [
            "conv1_relu",
            "conv2_relu",
            "block1_relu",
            "flatten",
            "logits"
        ]
    );
    assert_eq!(
        select_layers(&d, &["blocks".to_owned()]).unwrap(),
        ["block1_relu"],
        "a residual block's output is a block"
    );
    assert_eq!(d.num_classes, 10);
    assert_eq!(d.class_names[3], "c3");
    assert_eq!(d.inputs[0].shape, vec![None, Some(3), Some(16), Some(16)]);
}

#[test]
fn cnn_receptive_fields_by_hand() {
    // conv1 k3 p1 → relu → pool1 k2 s2 → conv2 k3 p1 → relu → conv3 k3 p1 → add(·, pool1).
    // conv1: size 1 + 2 = 3, jump 1, offset −1; pool1: 3 + 1 = 4, jump 2, offset −1;
    // conv2: 4 + 2·2 = 8, jump 2, offset −1 − 1·2 = −3; conv3: 8 + 4 = 12, offset −5;
    // block1_add: the union of conv3's and pool1's windows = conv3's.
    let mut model = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let d = model.describe().unwrap();
    let field = |name: &str| d.layer(name).unwrap().receptive_field;
    let rf = |size, jump, offset| {
        Some(ReceptiveField {
            size: [size; 2],
            jump: [jump; 2],
            offset: [offset; 2],
        })
    };
    assert_eq!(field("conv1_relu"), rf(3, 1, -1));
    assert_eq!(field("pool1"), rf(4, 2, -1));
    assert_eq!(field("conv2_relu"), rf(8, 2, -3));
    assert_eq!(field("block1_add"), rf(12, 2, -5));
    assert_eq!(field("block1_relu"), rf(12, 2, -5));
    assert_eq!(field("flatten"), None, "dense layers see the whole image");
    assert_eq!(field("logits"), None);
}

#[test]
fn vit_layers_kinds_and_default_selection() {
    let mut model = OnnxModel::from_path(&fixture("vit.onnx")).unwrap();
    let d = model.describe().unwrap();
    assert_eq!(d.layer("block1_out").unwrap().kind, LayerKind::Tokens);
    assert_eq!(d.layer("block1_out").unwrap().shape, vec![17, 16]);
    assert_eq!(d.layer("block1_mlp_gelu").unwrap().neurons, 32);
    assert_eq!(d.layer("cls").unwrap().kind, LayerKind::Dense);
    assert_eq!(
        defaults(&mut model),
        [
            "block1_mlp_gelu",
            "block1_out",
            "block2_mlp_gelu",
            "block2_out",
            "final_norm",
            "cls",
            "logits"
        ]
    );
    let blocks = select_layers(&d, &["blocks".to_owned()]).unwrap();
    assert_eq!(blocks, ["block1_out", "block2_out"]);
}

/// For every discovered layer and every pooling, the in-graph pooled values equal the full
/// maps of the same graph pooled here in plain Rust, image by image, to 1e-5.
#[test]
fn in_graph_pooling_equals_pooling_the_full_maps() {
    for file in ["cnn.onnx", "vit.onnx"] {
        let mut model = OnnxModel::from_path(&fixture(file)).unwrap();
        let d = model.describe().unwrap();
        let names: Vec<String> = d.layers.iter().map(|l| l.name.clone()).collect();
        let input = batch(3);
        let poolings = [
            Pooling::default(),
            Pooling {
                conv: ConvPooling::Max,
                tokens: TokenPooling::Max,
            },
            Pooling {
                conv: ConvPooling::Mean,
                tokens: TokenPooling::Cls,
            },
        ];
        let mut compared = 0;
        for pooling in poolings {
            let pooled = model.run(input.view(), &names, pooling).unwrap();
            for image in 0..3 {
                let per = 3 * 16 * 16;
                let one = Tensor::new(
                    vec![1, 3, 16, 16],
                    input.data()[image * per..(image + 1) * per].to_vec(),
                )
                .unwrap();
                let maps = model.run_maps(one.view(), &names).unwrap();
                for ((map, row), info) in maps.layers.iter().zip(&pooled.layers).zip(&d.layers) {
                    let reference =
                        pool_map(info.kind, &info.shape, map.tensor.data(), pooling).unwrap();
                    let got = &row.tensor.data()[image * info.neurons..(image + 1) * info.neurons];
                    for (g, r) in got.iter().zip(&reference) {
                        assert!(
                            (g - r).abs() <= 1e-5 * (1.0 + r.abs()),
                            "{file} {} {pooling:?} image {image}: {g} vs {r}",
                            info.name
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 500, "{file}: only {compared} values compared");
    }
}

#[test]
fn wrong_input_size_names_both_shapes() {
    let mut model = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let wrong = Tensor::zeros(vec![2, 3, 32, 32]).unwrap();
    let e = model
        .run(wrong.view(), &[], Pooling::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[2, 3, 32, 32]") && e.contains("[?, 3, 16, 16]"),
        "{e}"
    );
}

#[test]
fn malformed_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("cnn.onnx")).unwrap();

    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = OnnxModel::from_path(&truncated).unwrap_err().to_string();
    assert!(e.starts_with(&truncated.display().to_string()), "{e}");

    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "this is a text file, not a model\n").unwrap();
    let e = OnnxModel::from_path(&text).unwrap_err().to_string();
    assert!(e.contains("notes.onnx") && e.contains("not"), "{e}");

    let missing = dir.path().join("missing.onnx");
    let e = OnnxModel::from_path(&missing).unwrap_err().to_string();
    assert!(
        e.contains("missing.onnx") && e.contains("cannot read"),
        "{e}"
    );

    // The CNN with its image input turned into a [batch, 768] vector.
    use onnx_protobuf::{Message, ModelProto};
    let mut proto = ModelProto::parse_from_bytes(&bytes).unwrap();
    let graph = proto.graph.mut_or_insert_default();
    let dims = &mut graph.input[0]
        .type_
        .mut_or_insert_default()
        .mut_tensor_type()
        .shape
        .mut_or_insert_default()
        .dim;
    dims.truncate(2);
    dims[1].set_dim_value(768);
    let flat = dir.path().join("flat_input.onnx");
    std::fs::write(&flat, proto.write_to_bytes().unwrap()).unwrap();
    let e = OnnxModel::from_path(&flat).unwrap_err().to_string();
    assert!(
        e.contains("flat_input.onnx") && e.contains("is not an image input [N, C, H, W]"),
        "{e}"
    );
}

#[test]
fn the_user_file_is_never_modified() {
    let path = fixture("vit.onnx");
    let before = std::fs::read(&path).unwrap();
    let mut model = OnnxModel::from_path(&path).unwrap();
    let names = defaults(&mut model);
    model
        .run(batch(2).view(), &names, Pooling::default())
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn conformance_static() {
    for file in ["cnn.onnx", "vit.onnx"] {
        let mut model = OnnxModel::from_path(&fixture(file)).unwrap();
        shiftscope_testkit::check_model_adapter(&mut model).assert_passed(15);
    }
}

#[test]
fn a_model_with_a_fixed_batch_of_one_runs_image_by_image() {
    use onnx_protobuf::{Message, ModelProto};
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("cnn.onnx")).unwrap();
    let mut proto = ModelProto::parse_from_bytes(&bytes).unwrap();
    let graph = proto.graph.mut_or_insert_default();
    for value in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        let tensor = value.type_.mut_or_insert_default().mut_tensor_type();
        tensor.shape.mut_or_insert_default().dim[0].set_dim_value(1);
    }
    let fixed = dir.path().join("fixed_batch.onnx");
    std::fs::write(&fixed, proto.write_to_bytes().unwrap()).unwrap();

    let mut fixed_model = OnnxModel::from_path(&fixed).unwrap();
    let d = fixed_model.describe().unwrap();
    assert_eq!(d.inputs[0].shape[0], Some(1));
    assert!(
        d.notes.iter().any(|n| n.contains("fixed batch of 1")),
        "{:?}",
        d.notes
    );
    let names = defaults(&mut fixed_model);
    let input = batch(3);
    let got = fixed_model
        .run(input.view(), &names, Pooling::default())
        .unwrap();
    let mut dynamic = OnnxModel::from_path(&fixture("cnn.onnx")).unwrap();
    let want = dynamic
        .run(input.view(), &names, Pooling::default())
        .unwrap();
    assert_eq!(got.logits.shape(), [3, 10]);
    let pairs = got
        .layers
        .iter()
        .map(|l| (l.name.as_str(), &l.tensor))
        .zip(want.layers.iter().map(|l| &l.tensor))
        .chain([(("logits", &got.logits), &want.logits)]);
    for ((name, g), w) in pairs {
        assert_eq!(g.shape(), w.shape(), "{name}");
        for (a, b) in g.data().iter().zip(w.data()) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{name}: {a} vs {b}"
            );
        }
    }
}
