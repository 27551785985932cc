//! Deephys exports written here in their CBOR layout, imported, and read back; malformed ones
//! refused with the file named.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ciborium::Value;
use shiftscope_store::{LayerMatrix, Store};

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

fn write(path: &Path, value: &Value) {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn model(dir: &Path) -> PathBuf {
    let layer = |id: &str, n: usize| {
        map(vec![
            ("layerID", Value::Text(id.into())),
            ("neurons", Value::Array(vec![map(vec![]); n])),
        ])
    };
    let path = dir.join("net.model");
    write(
        &path,
        &map(vec![
            ("name", Value::Text("net".into())),
            (
                "layers",
                Value::Array(vec![layer("fc1", 4), layer("out", 3)]),
            ),
            ("classification_layer", Value::Text("out".into())),
        ]),
    );
    path
}

/// Activation of image `i`, layer `l`, neuron `j`.
fn act(i: usize, l: usize, j: usize) -> f64 {
    i as f64 * 1.5 - j as f64 + l as f64 * 10.0 + 0.25
}

fn test_file(dir: &Path, name: &str, images: usize, f64s: bool) -> PathBuf {
    let image = |i: usize| {
        let data: Vec<Value> = (0..3)
            .map(|c| {
                Value::Array(
                    (0..8)
                        .map(|y| {
                            Value::Bytes(
                                (0..8)
                                    .map(|x| (i * 31 + c * 50 + y * 8 + x) as u8)
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        let block = |l: usize, n: usize| {
            Value::Bytes(
                (0..n)
                    .flat_map(|j| {
                        if f64s {
                            act(i, l, j).to_be_bytes().to_vec()
                        } else {
                            (act(i, l, j) as f32).to_be_bytes().to_vec()
                        }
                    })
                    .collect(),
            )
        };
        map(vec![
            ("imageID", Value::Integer(i.into())),
            ("categoryID", Value::Integer((i % 3).into())),
            ("category", Value::Text(["a", "b", "c"][i % 3].into())),
            ("data", Value::Array(data)),
            ("features", Value::Array(vec![])),
            (
                "activations",
                map(vec![(
                    "activations",
                    Value::Array(vec![block(0, 4), block(1, 3)]),
                )]),
            ),
        ])
    };
    let path = dir.join(format!("{name}.test"));
    write(
        &path,
        &map(vec![
            ("name", Value::Text(name.into())),
            (
                "dtype",
                Value::Text(if f64s { "float64" } else { "float32" }.into()),
            ),
            (
                "classes",
                Value::Array(
                    ["a", "b", "c"]
                        .iter()
                        .map(|c| Value::Text((*c).into()))
                        .collect(),
                ),
            ),
            ("images", Value::Array((0..images).map(image).collect())),
        ]),
    );
    path
}

#[test]
fn a_deephys_export_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let tests = [
        test_file(dir.path(), "cifar10", 5, false),
        test_file(dir.path(), "cifar10.1", 4, true),
    ];
    let out = dir.path().join("store");
    shiftscope_runtime::import_deephys(&model, &tests, &out, 16).unwrap();
    let store = Store::open(&out).unwrap();
    let m = store.manifest();
    assert_eq!(m.classes, ["a", "b", "c"]);
    assert_eq!(
        m.layers
            .iter()
            .map(|l| (l.name.as_str(), l.neurons))
            .collect::<Vec<_>>(),
        [("fc1", 4), ("out", 3)]
    );
    assert_eq!(
        m.datasets
            .iter()
            .map(|d| (d.name.as_str(), d.len))
            .collect::<Vec<_>>(),
        [("cifar10", 5), ("cifar10.1", 4)]
    );
    assert_eq!(store.labels(1).unwrap(), &[0, 1, 2, 0]);
    for d in 0..2 {
        let fc1 = store.layer(d, 0).unwrap();
        let LayerMatrix::F32 { data: logits, .. } = store.logits(d).unwrap() else {
            panic!()
        };
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(fc1.get(i, j), act(i, 0, j) as f32);
            }
            assert_eq!(
                &logits[i * 3..i * 3 + 3],
                &[
                    act(i, 1, 0) as f32,
                    act(i, 1, 1) as f32,
                    act(i, 1, 2) as f32
                ]
            );
        }
    }
    // 8x8 images become 16x16 thumbnails.
    assert_eq!(store.thumbs(0).unwrap().len(), 5 * 16 * 16 * 3);
    assert_eq!(store.verify().unwrap().bad.len(), 0);
}

#[test]
fn malformed_exports_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path());
    let good = test_file(dir.path(), "good", 2, false);
    let junk = dir.path().join("junk.test");
    std::fs::write(&junk, b"\x00\x01 not cbor").unwrap();
    let e = shiftscope_runtime::import_deephys(
        &model,
        std::slice::from_ref(&junk),
        &dir.path().join("s1"),
        16,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&junk.display().to_string()) && e.contains("not a Deephys test file"),
        "{e}"
    );

    // An activation block of the wrong length.
    let bad = dir.path().join("bad.test");
    let mut value: Value = ciborium::from_reader(std::fs::read(&good).unwrap().as_slice()).unwrap();
    if let Value::Map(entries) = &mut value {
        for (k, v) in entries.iter_mut() {
            if k == &Value::Text("dtype".into()) {
                *v = Value::Text("float64".into());
            }
        }
    }
    write(&bad, &value);
    let e = shiftscope_runtime::import_deephys(
        &model,
        std::slice::from_ref(&bad),
        &dir.path().join("s2"),
        16,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("bad.test")
            && e.contains("image 0, layer 'fc1': 16 bytes where 4 neurons of 8 bytes need 32"),
        "{e}"
    );

    let e = shiftscope_runtime::import_deephys(
        &good,
        std::slice::from_ref(&good),
        &dir.path().join("s3"),
        16,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("good.test") && e.contains("not a Deephys model file"),
        "{e}"
    );
}
