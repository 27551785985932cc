//! Live inference (`shiftscope_runtime::LiveModel`, the viewer's live mode) against the store:
//! a colored-MNIST store recorded with the real binary on the demo CNN, then the store's first
//! image written as a PNG file and run live through the store's model. The live activations
//! of every recorded layer and the logits must equal the recorded row, and the full maps of a
//! conv layer must pool to its recorded values.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use shiftscope_host::{Plugin, Registry};
use shiftscope_runtime::LiveModel;
use shiftscope_sdk::{DatasetSource, DatasetSourcePlugin};
use shiftscope_store::Store;

use common::write_png;

#[test]
fn live_activations_equal_the_recorded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = common::demo_cnn_store(dir.path(), &[("colored-mnist/id", "Id", 8)], 8);
    check_live(dir.path(), &store_path);
}

#[test]
fn live_mode_runs_a_model_whose_weights_are_in_a_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/demo-cnn.onnx");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    shiftscope_testkit::onnx::copy_with_external_data(
        &common::workspace_file("assets/models/demo-cnn.onnx"),
        &model,
    );
    let store_path =
        common::demo_cnn_store_of(dir.path(), &[("colored-mnist/id", "Id", 8)], 8, &model);
    check_live(dir.path(), &store_path);
}

/// Runs the store's first image live through the store's model and checks the activations,
/// logits and maps against what the store recorded.
fn check_live(dir: &Path, store_path: &Path) {
    // The store's first image, as the plugin made it, written as a PNG file.
    let source = colored_mnist::ColoredMnist::create("(procedural: true)").unwrap();
    let sample = source.open("colored-mnist/id").unwrap().get(0).unwrap();
    let png_path = dir.join("digit.png");
    write_png(&png_path, sample.width, sample.height, &sample.pixels);

    let mut registry = Registry::new();
    registry
        .add(Plugin::builtin_model::<shiftscope_onnx::OnnxModel>())
        .unwrap();
    let mut live = LiveModel::open(store_path, &registry, None).unwrap();
    let store = Store::open(store_path).unwrap();
    let layers = &store.manifest().layers;
    let conv = layers.iter().position(|l| l.kind == "conv").unwrap();
    let out = live.run_file(&png_path, Some(conv)).unwrap();

    assert_eq!((out.width, out.height), (28, 28));
    assert_eq!(out.pixels, sample.pixels);
    assert_eq!(out.layers.len(), layers.len());
    for (l, values) in out.layers.iter().enumerate() {
        let recorded = store.layer(0, l).unwrap();
        assert_eq!(values.len(), layers[l].neurons);
        for (n, &v) in values.iter().enumerate() {
            let r = recorded.get(0, n);
            assert!(
                (v - r).abs() <= 1e-5 * r.abs().max(1.0),
                "{} {n}: live {v} recorded {r}",
                layers[l].name
            );
        }
    }
    let logits = store.logits(0).unwrap();
    for (k, &v) in out.logits.iter().enumerate() {
        assert!((v - logits.get(0, k)).abs() <= 1e-4, "logit {k}");
    }
    // The conv layer's full maps pool (spatial mean) to its recorded values.
    let maps = out.maps.unwrap();
    assert_eq!(maps.layer, conv);
    assert_eq!(maps.channels, layers[conv].neurons);
    let area = maps.height * maps.width;
    assert!(area > 1, "a conv layer has spatial maps");
    for c in 0..maps.channels {
        let mean: f32 = maps.values[c * area..(c + 1) * area].iter().sum::<f32>() / area as f32;
        assert!((mean - out.layers[conv][c]).abs() <= 1e-5, "channel {c}");
    }

    // A file that is not an image is named in the error; nothing panics.
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not a picture").unwrap();
    let e = live.run_file(&text, None).unwrap_err().to_string();
    assert!(e.contains("notes.jpg"), "{e}");
}
