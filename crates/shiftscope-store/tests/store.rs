//! The store written, resumed, reopened, verified and damaged, on real files.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use shiftscope_store::{
    LayerEntry, LayerMatrix, Manifest, ModelEntry, Precision, Role, Store, StoreWriter,
};

const K: usize = 3;
const T: usize = 4;
const NEURONS: [usize; 2] = [5, 2];

fn manifest(precision: Precision) -> Manifest {
    Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "m.onnx".into(),
            sha256: "00".into(),
            adapter: "onnx".into(),
            preprocessing: serde_json::json!({"crop": 28}),
            input_shape: vec![None, Some(3), Some(28), Some(28)],
        },
        layers: NEURONS
            .iter()
            .enumerate()
            .map(|(i, &n)| LayerEntry {
                id: String::new(),
                name: format!("/block{i}/Relu_output_0"),
                op: "Relu".into(),
                kind: "dense".into(),
                neurons: n,
                pooling: "mean".into(),
            })
            .collect(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        thumb: T,
        precision,
        datasets: vec![],
        shard: None,
    }
}

/// Deterministic rows `start..end` of dataset `d`.
fn rows(d: usize, start: usize, end: usize) -> (Vec<i32>, Vec<f32>, Vec<u8>, Vec<Vec<f32>>) {
    let labels = (start..end).map(|i| ((i + d) % K) as i32).collect();
    let logits = (start..end)
        .flat_map(|i| (0..K).map(move |k| (i * 10 + k + d * 100) as f32 * 0.5))
        .collect();
    let thumbs = (start..end)
        .flat_map(|i| (0..T * T * 3).map(move |p| ((i * 7 + p + d) % 256) as u8))
        .collect();
    let layers = NEURONS
        .iter()
        .enumerate()
        .map(|(l, &n)| {
            (start..end)
                .flat_map(|i| {
                    (0..n).map(move |c| (i as f32) - (c as f32) * 0.25 + l as f32 + d as f32)
                })
                .collect()
        })
        .collect();
    (labels, logits, thumbs, layers)
}

fn record(root: &Path, precision: Precision, interrupt_after: Option<usize>) {
    let lens = [10usize, 7];
    let mut store = if root.join("manifest.json").exists() {
        StoreWriter::open(root).unwrap()
    } else {
        StoreWriter::create(root, manifest(precision)).unwrap()
    };
    for (d, &len) in lens.iter().enumerate() {
        if store
            .manifest()
            .dataset(&format!("set/{d}"))
            .is_some_and(|(_, e)| e.complete)
        {
            continue;
        }
        let role = if d == 0 { Role::Id } else { Role::Ood };
        let mut writer = store
            .dataset(
                &format!("set/{d}"),
                "test-plugin",
                BTreeMap::new(),
                role,
                len,
            )
            .unwrap();
        let mut start = writer.committed();
        while start < len {
            let end = (start + 3).min(len);
            let (labels, logits, thumbs, layers) = rows(d, start, end);
            let layer_refs: Vec<&[f32]> = layers.iter().map(Vec::as_slice).collect();
            writer
                .write_rows(start, &labels, &logits, &thumbs, &layer_refs)
                .unwrap();
            writer.commit(end).unwrap();
            if interrupt_after == Some(end) && d == 1 {
                return; // as if killed right after this commit
            }
            start = end;
        }
        writer.finish(&mut store).unwrap();
    }
}

fn all_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn round_trip_in_both_precisions() {
    for precision in [Precision::F32, Precision::F16] {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), precision, None);
        let store = Store::open(dir.path()).unwrap();
        let m = store.manifest();
        assert_eq!(m.layers[0].id, "L000_block0_Relu_output_0");
        assert_eq!(m.datasets[1].id, "set_1");
        assert!(
            m.datasets
                .iter()
                .all(|d| d.complete && d.checksums.len() == 5)
        );
        for d in 0..2 {
            let len = m.datasets[d].len;
            let (labels, logits, thumbs, layers) = rows(d, 0, len);
            assert_eq!(store.labels(d).unwrap(), labels.as_slice());
            assert_eq!(store.thumbs(d).unwrap(), thumbs.as_slice());
            let LayerMatrix::F32 { data, .. } = store.logits(d).unwrap() else {
                panic!("logits are f32")
            };
            assert_eq!(data, logits.as_slice());
            for (l, want) in layers.iter().enumerate() {
                let matrix = store.layer(d, l).unwrap();
                assert_eq!(matrix.shape(), (len, NEURONS[l]));
                assert!(matches!(
                    (precision, matrix),
                    (Precision::F32, LayerMatrix::F32 { .. })
                        | (Precision::F16, LayerMatrix::F16 { .. })
                ));
                for r in 0..len {
                    for c in 0..NEURONS[l] {
                        let (got, w) = (matrix.get(r, c), want[r * NEURONS[l] + c]);
                        assert!((got - w).abs() <= w.abs() * 1e-3, "{got} vs {w}");
                    }
                }
            }
        }
        let report = store.verify().unwrap();
        assert_eq!((report.ok.len(), report.bad.len()), (10, 0));
    }
}

#[test]
fn an_interrupted_store_resumes_to_the_same_bytes() {
    let whole = tempfile::tempdir().unwrap();
    record(whole.path(), Precision::F32, None);
    let resumed = tempfile::tempdir().unwrap();
    record(resumed.path(), Precision::F32, Some(3));
    let partial = Store::open(resumed.path()).unwrap();
    assert_eq!(partial.committed(1).unwrap(), 3);
    assert!(!partial.manifest().datasets[1].complete);
    drop(partial);
    record(resumed.path(), Precision::F32, None);
    let (a, b) = (all_files(whole.path()), all_files(resumed.path()));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs");
    }
}

#[test]
fn damaged_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), Precision::F32, None);
    let layer = dir
        .path()
        .join("datasets/set_0/layers/L001_block1_Relu_output_0.npy");
    // One flipped byte: opens (sizes agree) but verify names the file.
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, &bytes).unwrap();
    let report = Store::open(dir.path()).unwrap().verify().unwrap();
    assert_eq!(report.bad.len(), 1);
    assert_eq!(report.bad[0].0, layer);
    // Truncated: refused at open.
    std::fs::write(&layer, &bytes[..bytes.len() - 4]).unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.starts_with(&layer.display().to_string()) && e.contains("bytes where"),
        "{e}"
    );
    // A manifest that disagrees with the files.
    std::fs::write(&layer, &bytes).unwrap();
    let manifest_path = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap()
        .replace("\"neurons\": 2", "\"neurons\": 3");
    std::fs::write(&manifest_path, text).unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("L001_block1_Relu_output_0.npy")
            && e.contains("shape [10, 2] where the manifest implies [10, 3]"),
        "{e}"
    );
    // Not a manifest at all.
    std::fs::write(&manifest_path, "{}").unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("manifest.json: not a shiftscope manifest"),
        "{e}"
    );
}

#[test]
fn a_store_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    StoreWriter::create(dir.path(), manifest(Precision::F32)).unwrap();
    let e = StoreWriter::create(dir.path(), manifest(Precision::F32)).unwrap_err();
    assert!(e.to_string().contains("already holds a store"));
}

/// The README's Python snippet, run with python3 and numpy on a store written here.
#[test]
fn the_documented_python_snippet_reads_the_store() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let snippet = readme
        .split("<!-- python-store-snippet -->")
        .nth(1)
        .and_then(|s| s.split("```python").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README has the python-store-snippet block");
    let dir = tempfile::tempdir().unwrap();
    record(dir.path(), Precision::F16, None);
    let program = format!(
        "{}\nprint(json.dumps({{'name': dataset['name'], 'shape': list(acts.shape), 'dtype': str(acts.dtype), \
         'sum': float(acts.astype('float64').sum()), 'labels': [int(v) for v in labels]}}))\n",
        snippet.replace("path/to/store", &dir.path().display().to_string())
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&program)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the snippet failed (tools/setup.sh installs numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let matrix = store.layer(0, 0).unwrap();
    let (r, c) = matrix.shape();
    let sum: f64 = (0..r)
        .flat_map(|i| (0..c).map(move |j| (i, j)))
        .map(|(i, j)| f64::from(matrix.get(i, j)))
        .sum();
    assert_eq!(result["name"], "set/0");
    assert_eq!(result["shape"], serde_json::json!([r, c]));
    assert_eq!(result["dtype"], "float16");
    assert!(
        (result["sum"].as_f64().unwrap() - sum).abs() < 1e-6,
        "{result} vs {sum}"
    );
    let labels: Vec<i64> = store
        .labels(0)
        .unwrap()
        .iter()
        .map(|&l| i64::from(l))
        .collect();
    assert_eq!(result["labels"], serde_json::json!(labels));
}
