//! One conformance suite, run against both example plugins in both forms: linked into this
//! test binary (static) and loaded from the `cdylib` cargo builds (dynamic).

mod common;

use shiftscope_host::{Origin, Plugin};
use shiftscope_sdk::{DatasetInfo, DatasetSource, ModelAdapter, Pooling, Tensor};
use shiftscope_testkit::{check_dataset_source, check_model_adapter};

/// Enough checks that a run which skipped most of the suite cannot pass.
const MIN_SOURCE_CHECKS: usize = 30;
/// Both model adapters here compute gradients, so their suite runs the gradient checks too
/// (shapes, determinism, batch independence, central differences for three objectives, map
/// vs pooled, errors), well above what an adapter without gradients runs.
const MIN_MODEL_CHECKS: usize = 45;

fn dynamic(name: &str) -> Plugin {
    Plugin::load(&common::library(name), Origin::CommandLine).expect("load plugin library")
}

#[test]
fn example_shift_static_conforms() {
    let plugin = Plugin::builtin_dataset::<example_shift::ExampleShift>();
    let source = plugin.create_dataset_source_unchecked("(len: 64)").unwrap();
    check_dataset_source(source.as_ref()).assert_passed(MIN_SOURCE_CHECKS);
    // The checked form the runtime gets passes too.
    let checked = plugin.create_dataset_source("(len: 64)").unwrap();
    check_dataset_source(checked.as_ref()).assert_passed(MIN_SOURCE_CHECKS);
}

#[test]
fn example_shift_dynamic_conforms() {
    let plugin = dynamic("example_shift");
    let source = plugin.create_dataset_source_unchecked("(len: 64)").unwrap();
    let report = check_dataset_source(source.as_ref());
    report.assert_passed(MIN_SOURCE_CHECKS);
    // Every output crossed the boundary and was released.
    assert_eq!(source.outstanding_outputs(), Some(0));
}

#[test]
fn example_model_static_conforms() {
    let plugin = Plugin::builtin_model::<example_model::ExampleModel>();
    let mut model = plugin.create_model_unchecked("(seed: 5)").unwrap();
    check_model_adapter(model.as_mut()).assert_passed(MIN_MODEL_CHECKS);
    let mut checked = plugin.create_model("(seed: 5)").unwrap();
    check_model_adapter(&mut checked).assert_passed(MIN_MODEL_CHECKS);
}

#[test]
fn example_model_dynamic_conforms() {
    let plugin = dynamic("example_model");
    let mut model = plugin.create_model_unchecked("(seed: 5)").unwrap();
    check_model_adapter(model.as_mut()).assert_passed(MIN_MODEL_CHECKS);
    assert_eq!(model.outstanding_outputs(), Some(0));
}

#[test]
fn static_and_dynamic_forms_give_identical_results() {
    let config = "(len: 16, seed: 11)";
    let a = Plugin::builtin_dataset::<example_shift::ExampleShift>()
        .create_dataset_source(config)
        .unwrap();
    let b = dynamic("example_shift")
        .create_dataset_source(config)
        .unwrap();
    assert_eq!(a.catalog().unwrap(), b.catalog().unwrap());
    for name in ["example-shift/id", "example-shift/noise=0.2"] {
        let (da, db) = (a.open(name).unwrap(), b.open(name).unwrap());
        assert_eq!(da.classes(), db.classes());
        for i in 0..16 {
            assert_eq!(da.get(i).unwrap(), db.get(i).unwrap(), "{name} sample {i}");
        }
    }

    let mut ma = Plugin::builtin_model::<example_model::ExampleModel>()
        .create_model("(seed: 2)")
        .unwrap();
    let mut mb = dynamic("example_model").create_model("(seed: 2)").unwrap();
    let (da, db) = (ma.describe().unwrap(), mb.describe().unwrap());
    assert_eq!(da, db);
    // The receptive field crosses the C ABI (1.1's parallel array): 3×3, stride 2, pad 1.
    let field = db.layer("conv1").unwrap().receptive_field.unwrap();
    assert_eq!(
        (field.size, field.jump, field.offset),
        ([3, 3], [2, 2], [-1, -1])
    );
    assert_eq!(db.layer("fc1").unwrap().receptive_field, None);
    let batch = Tensor::new(
        vec![3, 3, 32, 32],
        (0..3 * 3 * 32 * 32)
            .map(|i| ((i % 13) as f32 - 6.0) / 6.0)
            .collect(),
    )
    .unwrap();
    let layers = vec!["conv1".to_owned(), "fc1".to_owned(), "logits".to_owned()];
    let ra = ma.run(batch.view(), &layers, Pooling::default()).unwrap();
    let rb = mb.run(batch.view(), &layers, Pooling::default()).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(ra.layers[0].tensor.shape(), [3, 8]);
}

#[test]
fn onnx_adapter_dynamic_conforms_on_both_fixture_models() {
    let plugin = dynamic("shiftscope_onnx");
    for file in ["cnn.onnx", "vit.onnx"] {
        // RON strings escape like Rust's Debug for the paths used here.
        let config = format!("(model: {:?})", common::model(file));
        let mut model = plugin.create_model_unchecked(&config).unwrap();
        check_model_adapter(model.as_mut()).assert_passed(MIN_MODEL_CHECKS);
        assert_eq!(model.outstanding_outputs(), Some(0));
        // The checked form the runtime gets passes too.
        let mut checked = plugin.create_model(&config).unwrap();
        check_model_adapter(&mut checked).assert_passed(MIN_MODEL_CHECKS);
    }
}

#[test]
fn colored_mnist_conforms_in_both_forms_and_they_agree() {
    let config = "(procedural: true, train_len: 40, test_len: 30)";
    let builtin = Plugin::builtin_dataset::<colored_mnist::ColoredMnist>();
    let a = builtin.create_dataset_source_unchecked(config).unwrap();
    check_dataset_source(a.as_ref()).assert_passed(100);
    let loaded = dynamic("colored_mnist");
    let b = loaded.create_dataset_source_unchecked(config).unwrap();
    check_dataset_source(b.as_ref()).assert_passed(100);
    assert_eq!(b.outstanding_outputs(), Some(0));
    for name in [
        "colored-mnist/id",
        "colored-mnist/permuted/train",
        "colored-mnist/random",
    ] {
        let (da, db) = (a.open(name).unwrap(), b.open(name).unwrap());
        for i in [0, 7, 29] {
            assert_eq!(da.get(i).unwrap(), db.get(i).unwrap(), "{name} {i}");
        }
    }
}

#[test]
fn nan_and_inf_are_counted_per_layer() {
    let plugin = dynamic("shiftscope_onnx");
    let config = format!("(model: {:?})", common::model("cnn.onnx"));
    let mut model = plugin.create_model(&config).unwrap();
    let layers = vec!["conv1_relu".to_owned(), "flatten".to_owned()];
    let clean = Tensor::new(vec![2, 3, 16, 16], vec![0.5; 2 * 3 * 16 * 16]).unwrap();
    model
        .run(clean.view(), &layers, Pooling::default())
        .unwrap();
    assert!(model.non_finite_counts().is_empty());
    // One NaN pixel in the second image spreads through every layer of that image.
    let mut data = vec![0.5; 2 * 3 * 16 * 16];
    data[3 * 16 * 16 + 40] = f32::NAN;
    let poisoned = Tensor::new(vec![2, 3, 16, 16], data).unwrap();
    model
        .run(poisoned.view(), &layers, Pooling::default())
        .unwrap();
    let counts = model.non_finite_counts().to_vec();
    let count = |name: &str| {
        counts
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    assert!(
        count("conv1_relu") >= 1 && count("conv1_relu") <= 8,
        "{counts:?}"
    );
    assert_eq!(count("flatten"), 8, "{counts:?}");
    assert_eq!(count("logits"), 10, "{counts:?}");
}

/// Tiny CIFAR files in `dir`: the binary batches (2 records per train file, 3 test records)
/// and CIFAR-10-C with one corruption of 5 rows.
fn write_cifar_files(dir: &std::path::Path) {
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).expect("folder");
    let record = |label: u8, seed: usize| -> Vec<u8> {
        std::iter::once(label)
            .chain((0..3072).map(|i| ((i * 7 + seed * 13) % 256) as u8))
            .collect()
    };
    for f in 1..=5 {
        let bytes: Vec<u8> = (0..2)
            .flat_map(|i| record((f + i) as u8 % 10, f * 2 + i))
            .collect();
        std::fs::write(bin.join(format!("data_batch_{f}.bin")), bytes).expect("write batch");
    }
    let test: Vec<u8> = (0..3).flat_map(|i| record(9 - i as u8, 100 + i)).collect();
    std::fs::write(bin.join("test_batch.bin"), test).expect("write batch");

    let npy = |descr: &str, shape: &str, data: &[u8]| -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    };
    let c = dir.join("CIFAR-10-C");
    std::fs::create_dir_all(&c).expect("folder");
    std::fs::write(c.join("labels.npy"), npy("|u1", "(5,)", &[3, 1, 4, 1, 5])).expect("write");
    let images: Vec<u8> = (0..5 * 3072).map(|i| (i % 253) as u8).collect();
    std::fs::write(c.join("fog.npy"), npy("|u1", "(5, 32, 32, 3)", &images)).expect("write");
}

/// One dataset-source config through the built-in plugin (unchecked and checked) and the
/// loaded library: each passes the suite with at least `min_checks` checks, the library
/// leaves no output outstanding, and both forms list the same catalog and read the same
/// classes and first and last image of every dataset. Returns the library's source and the
/// catalog.
fn both_forms_agree(
    builtin: &Plugin,
    loaded: &Plugin,
    config: &str,
    min_checks: usize,
) -> (Box<dyn DatasetSource>, Vec<DatasetInfo>) {
    let a = builtin
        .create_dataset_source_unchecked(config)
        .expect("built-in source");
    check_dataset_source(a.as_ref()).assert_passed(min_checks);
    let checked = builtin
        .create_dataset_source(config)
        .expect("checked source");
    check_dataset_source(checked.as_ref()).assert_passed(min_checks);
    let b = loaded
        .create_dataset_source_unchecked(config)
        .expect("library source");
    check_dataset_source(b.as_ref()).assert_passed(min_checks);
    assert_eq!(b.outstanding_outputs(), Some(0));
    let catalog = a.catalog().expect("catalog");
    assert_eq!(catalog, b.catalog().expect("library catalog"));
    for entry in &catalog {
        let da = a.open(&entry.name).expect("open built-in");
        let db = b.open(&entry.name).expect("open library");
        assert_eq!(da.classes(), db.classes());
        for i in [0, da.len() - 1] {
            let (x, y) = (
                da.get(i).expect("built-in image"),
                db.get(i).expect("library image"),
            );
            assert_eq!(x, y, "{} {i}", entry.name);
        }
    }
    (b, catalog)
}

#[test]
fn cifar10_conforms_in_both_forms_over_procedural_and_real_layout_files_and_they_agree() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_files(dir.path());
    let files = format!("(data: Some({:?}))", dir.path());
    let builtin = Plugin::builtin_dataset::<cifar10::Cifar10>();
    let loaded = dynamic("cifar10");
    for (config, min_checks) in [
        ("(procedural: true, train_len: 40, test_len: 30)", 30),
        (files.as_str(), 90),
    ] {
        both_forms_agree(&builtin, &loaded, config, min_checks);
    }
    // Through the library too, a broken file is one clear error naming it.
    std::fs::write(
        dir.path().join("cifar-10-batches-bin/test_batch.bin"),
        vec![0u8; 3073 + 5],
    )
    .unwrap();
    let e = loaded
        .create_dataset_source(&files)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("test_batch.bin: 3078 bytes is not a whole number of 3073-byte"),
        "{e}"
    );
}

#[test]
fn imagenet_conforms_in_both_forms_over_every_layout_and_they_agree() {
    let dir = tempfile::tempdir().unwrap();
    let config = imagenet::testdata::all_layouts(dir.path()).unwrap();
    let builtin = Plugin::builtin_dataset::<imagenet::ImageNet>();
    let loaded = dynamic("imagenet");
    let (b, catalog) = both_forms_agree(&builtin, &loaded, &config, 150);
    assert_eq!(catalog.len(), 12);
    // The class subset crosses the ABI with the catalog.
    let r = catalog.iter().find(|e| e.name == "imagenet-r").unwrap();
    assert_eq!(
        r.class_subset().unwrap().unwrap(),
        imagenet::Subset::R.indices().unwrap()
    );
    // On-the-fly corruption through the library.
    let fog = b.open("imagenet/val+fog/2").unwrap();
    assert_ne!(
        fog.get(0).unwrap(),
        b.open("imagenet/val").unwrap().get(0).unwrap()
    );
    // Without roots the plugin offers nothing and says why when asked for a name.
    let bare = loaded.create_dataset_source("").unwrap();
    assert!(bare.catalog().unwrap().is_empty());
    let e = bare.open("imagenet/val").err().unwrap().to_string();
    assert!(e.contains("no roots configured"), "{e}");
}
