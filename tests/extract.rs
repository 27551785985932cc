//! `shiftscope extract` end to end: the real binary, the ONNX adapter on the fixture CNN,
//! colored MNIST, the store; and a run killed with SIGKILL at a random point and resumed,
//! which must give the same bytes as an uninterrupted run.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shiftscope_sdk::DatasetSourcePlugin;
use shiftscope_store::Store;

/// A study of `n` images per dataset on the fixture CNN (16×16 input).
fn study(dir: &Path, n: usize, batch: usize) -> PathBuf {
    let text = format!(
        r#"(
    store: "store",
    model: (
        path: {model:?},
        threads: 1,
        preprocessing: (resize: 16, crop: 16, mean: (0.5, 0.5, 0.5), std: (0.5, 0.5, 0.5)),
    ),
    datasets: [(name: "colored-mnist/id", limit: {n}), (name: "colored-mnist/permuted", limit: {n})],
    plugins: {{"colored-mnist": "(procedural: true)"}},
    recording: (batch_size: {batch}, readers: 2, thumb: 16, commit_seconds: 0),
)"#,
        model = common::model("cnn.onnx")
    );
    let path = dir.join("study.ron");
    std::fs::write(&path, text).unwrap();
    path
}

fn extract(config: &Path) -> std::process::Output {
    Command::new(common::binary())
        .args(["extract", config.to_str().unwrap()])
        .env_remove("SHIFTSCOPE_DATA")
        .output()
        .unwrap()
}

#[test]
fn extract_records_every_dataset_into_a_store_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = study(dir.path(), 100, 32);
    let out = extract(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("colored-mnist/id") && stdout.contains("100"),
        "{stdout}"
    );

    let store = Store::open(&dir.path().join("store")).unwrap();
    let m = store.manifest();
    assert_eq!(m.datasets.len(), 2);
    assert!(m.datasets.iter().all(|d| d.complete && d.len == 100));
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1_relu",
            "conv2_relu",
            "block1_relu",
            "flatten",
            "logits"
        ]
    );
    assert_eq!(m.classes.len(), 10);
    // Labels are the dataset's.
    let source = colored_mnist::ColoredMnist::create("(procedural: true)").unwrap();
    use shiftscope_sdk::DatasetSource;
    let dataset = source.open("colored-mnist/permuted").unwrap();
    let want: Vec<i32> = (0..100)
        .map(|i| dataset.get(i).unwrap().label as i32)
        .collect();
    assert_eq!(store.labels(1).unwrap(), want.as_slice());
    // Activations are real numbers, not zeros.
    let conv = store.layer(0, 0).unwrap();
    assert_eq!(conv.shape(), (100, 8));
    assert!((0..100).any(|r| conv.get(r, 3) > 0.0));
    assert_eq!(store.verify().unwrap().bad.len(), 0);

    // Run again: nothing to do.
    let again = extract(&config);
    assert!(String::from_utf8_lossy(&again.stdout).contains("complete already"));
}

fn data_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("datasets")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn manifest_without_time(root: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    m["created_unix"] = serde_json::Value::Null;
    m
}

#[test]
fn a_killed_extraction_resumes_to_the_same_bytes() {
    let (n, batch) = (6000, 32);
    let whole = tempfile::tempdir().unwrap();
    let out = extract(&study(whole.path(), n, batch));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let killed = tempfile::tempdir().unwrap();
    let config = study(killed.path(), n, batch);
    // A random point after a few commits, in the first or the second dataset.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let target = 3 * batch + nanos % (n + n / 2);
    let mut child = Command::new(common::binary())
        .args(["extract", config.to_str().unwrap()])
        .env_remove("SHIFTSCOPE_DATA")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let committed = |name: &str| -> usize {
        let path = killed
            .path()
            .join("store/datasets")
            .join(name)
            .join("progress.json");
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["rows"].as_u64())
            .unwrap_or(0) as usize
    };
    let started = Instant::now();
    loop {
        let done = committed("colored-mnist_id") + committed("colored-mnist_permuted");
        if done >= target {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before the kill at {target} rows; make it longer"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at = committed("colored-mnist_id") + committed("colored-mnist_permuted");
    println!("killed after {at} committed rows (target {target})");
    assert!(at < 2 * n, "killed too late to test resuming");

    let out = extract(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (
        data_files(&whole.path().join("store")),
        data_files(&killed.path().join("store")),
    );
    assert_eq!(a.len(), b.len());
    for ((name_a, bytes_a), (name_b, bytes_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(bytes_a == bytes_b, "{name_a} differs after resuming");
    }
    assert_eq!(
        manifest_without_time(&whole.path().join("store")),
        manifest_without_time(&killed.path().join("store"))
    );
}

#[test]
fn shards_merge_into_the_store_of_an_unsharded_run() {
    let (n, batch) = (250, 32);
    let whole = tempfile::tempdir().unwrap();
    assert!(extract(&study(whole.path(), n, batch)).status.success());

    let sharded = tempfile::tempdir().unwrap();
    let config = study(sharded.path(), n, batch);
    let mut shard_stores = Vec::new();
    for k in [2, 0, 1] {
        let out = Command::new(common::binary())
            .args([
                "extract",
                config.to_str().unwrap(),
                "--shard",
                &format!("{k}/3"),
            ])
            .env_remove("SHIFTSCOPE_DATA")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = sharded.path().join(format!("store.shard-{k}-of-3"));
        let m = Store::open(&store).unwrap();
        let part = m.manifest().datasets[0].part.unwrap();
        assert_eq!(part.total, n);
        assert_eq!(part.first % batch, 0, "shards start at batch boundaries");
        shard_stores.push(store);
    }
    let merged = sharded.path().join("merged");
    let mut args = vec![
        "merge".to_owned(),
        "--out".to_owned(),
        merged.display().to_string(),
    ];
    args.extend(shard_stores.iter().map(|p| p.display().to_string()));
    let out = Command::new(common::binary()).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, b) = (data_files(&whole.path().join("store")), data_files(&merged));
    assert_eq!(a.len(), b.len());
    for ((name_a, bytes_a), (name_b, bytes_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(bytes_a == bytes_b, "{name_a} differs after merging");
    }
    assert_eq!(
        manifest_without_time(&whole.path().join("store")),
        manifest_without_time(&merged)
    );

    // A missing shard is refused.
    let out = Command::new(common::binary())
        .args([
            "merge",
            "--out",
            sharded.path().join("partial").to_str().unwrap(),
        ])
        .args(&shard_stores[..2])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs each of 0..3 once"));
}

/// Accuracy of the argmax of the logits against the labels, per dataset of a store.
fn accuracies(root: &Path) -> Vec<(String, f64)> {
    let store = Store::open(root).unwrap();
    let names: Vec<String> = store
        .manifest()
        .datasets
        .iter()
        .map(|d| d.name.clone())
        .collect();
    names
        .into_iter()
        .enumerate()
        .map(|(d, name)| {
            let labels = store.labels(d).unwrap();
            let logits = store.logits(d).unwrap();
            let (rows, classes) = logits.shape();
            let correct = (0..rows)
                .filter(|&i| {
                    let best = (0..classes)
                        .max_by(|&a, &b| logits.get(i, a).total_cmp(&logits.get(i, b)))
                        .unwrap();
                    best as i32 == labels[i]
                })
                .count();
            (name, correct as f64 / rows as f64)
        })
        .collect()
}

/// The accuracy that tools/train_demo_models.py measured in PyTorch, from the provenance file.
fn provenance_accuracy(model: &str, dataset: &str) -> f64 {
    let text = std::fs::read_to_string(common::workspace_file(&format!(
        "assets/models/{model}.provenance.ron"
    )))
    .unwrap();
    let key = format!("\"{dataset}\":");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&key))
        .unwrap();
    line.trim()
        .trim_start_matches(&key)
        .trim_end_matches(',')
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_demo_cnn_learned_the_colour_shortcut_and_records_as_pytorch_scored_it() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    let text = format!(
        r#"(
    store: "store",
    model: (
        path: {model:?},
        preprocessing: (resize: None, crop: None, mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)),
    ),
    datasets: [
        (name: "colored-mnist/id", role: Id, limit: {n}),
        (name: "colored-mnist/permuted", role: Ood, limit: {n}),
        (name: "colored-mnist/drifted", role: Ood, limit: {n}),
    ],
    // As the models were trained and scored: procedural digits, default seed.
    plugins: {{"colored-mnist": "(procedural: true)"}},
    recording: (batch_size: 256, thumb: 28),
)"#,
        model = common::workspace_file("assets/models/demo-cnn.onnx")
    );
    let config = dir.path().join("study.ron");
    std::fs::write(&config, text).unwrap();
    let out = extract(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = accuracies(&dir.path().join("store"));
    println!("demo CNN accuracy on the first {n} images: {found:?}");
    let acc = |name: &str| found.iter().find(|(n, _)| n == name).unwrap().1;
    // The paper's finding: near-perfect in distribution, collapse when colours are permuted.
    assert!(acc("colored-mnist/id") > 0.97, "{found:?}");
    assert!(acc("colored-mnist/permuted") < 0.5, "{found:?}");
    // What shiftscope records agrees with what PyTorch measured on the full test sets
    // (2,000 of 10,000 images: binomial noise is about 0.01).
    for (name, accuracy) in &found {
        let pytorch = provenance_accuracy("demo-cnn", name);
        assert!(
            (accuracy - pytorch).abs() < 0.04,
            "{name}: recorded {accuracy}, PyTorch {pytorch}"
        );
    }
}

#[test]
fn features_of_a_recorded_layer_print_csi_write_the_nf_grid_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    assert!(extract(&study(dir.path(), 60, 32)).status.success());
    let store = dir.path().join("store");
    let png = dir.path().join("nf.png");
    let features = |extra: &[&str]| {
        let out = Command::new(common::binary())
            .args(["features", store.to_str().unwrap(), "--layer", "conv2_relu"])
            .args(["--top", "7", "--rows", "3"])
            .args(extra)
            .env_remove("SHIFTSCOPE_DATA")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = features(&["--png", png.to_str().unwrap()]);
    assert!(first.contains("cached: "), "{first}");
    assert!(
        first.contains("layer conv2_relu (8 neurons), dataset colored-mnist/id, top 7"),
        "{first}"
    );
    assert!(first.contains("most colour-selective") && first.contains("CSI CLIPPED"));
    // Three rows at each end, named layer:index.
    assert_eq!(first.matches("conv2_relu:").count(), 6, "{first}");
    // The fixture CNN's conv2 sees 8×8 windows (hand-computed in the ONNX adapter's tests):
    // 8 features of 8×8 scaled 6× in a 3-column grid with 2-pixel gaps.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (3 * 50 + 2, 3 * 50 + 2));
    // Again: read from the cache, same table.
    let again = features(&[]);
    assert!(again.contains("from the cache"), "{again}");
    let table = |s: &str| s[s.find("most").unwrap()..].to_owned();
    assert_eq!(
        table(&first[..first.find("Neuron Features:").unwrap()]),
        table(&again)
    );
    // The report reads the cache: neurons.csv gains both CSI columns for the ID set, filled
    // for conv2_relu and empty for the layers not computed.
    let report = dir.path().join("report");
    let out = Command::new(common::binary())
        .args(["report", store.to_str().unwrap(), "--out"])
        .arg(&report)
        .arg("--no-figures")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(report.join("neurons.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let csi = header
        .iter()
        .position(|h| *h == "csi[colored-mnist/id]")
        .unwrap_or_else(|| panic!("{header:?}"));
    assert_eq!(header[csi + 1], "csi_clipped[colored-mnist/id]");
    let cell = |layer: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|r| r[1] == layer)
            .map(|r| r[csi].to_owned())
            .collect()
    };
    assert!(
        cell("conv2_relu").iter().any(|v| v.parse::<f32>().is_ok()),
        "{csv}"
    );
    assert!(cell("conv1_relu").iter().all(String::is_empty), "{csv}");
    // A layer that is not there is a clear error naming the layers.
    let out = Command::new(common::binary())
        .args(["features", store.to_str().unwrap(), "--layer", "nope"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no layer 'nope'")
            && stderr.contains("conv1_relu"),
        "{stderr}"
    );
}

/// `CSI over N neurons: mean M, ...` of `shiftscope features` on `layer`, and the count of
/// neurons above 0.5.
fn csi_summary(store: &Path, layer: &str) -> (f64, usize) {
    let out = Command::new(common::binary())
        .args(["features", store.to_str().unwrap(), "--layer", layer])
        .args(["--top", "50"])
        .env_remove("SHIFTSCOPE_DATA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CSI over"))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let mean = line
        .split("mean ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let above = line.split("; ").nth(1).unwrap().split(' ').next().unwrap();
    (mean.parse().unwrap(), above.parse().unwrap())
}

#[test]
fn the_demo_cnns_colour_following_units_lose_their_response_on_grey_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::demo_cnn_store(dir.path(), &[("colored-mnist/id", "Id", 400)], 100);
    // The demo CNN learned colour as a shortcut: its logits lose about half their response
    // on the grey versions of their top images (0.54 measured), fc1 holds a group of
    // colour-selective units (10 of 48 above 0.5) and conv1, the edges and blobs under them,
    // is the least colour-selective (0.23).
    let (logits, _) = csi_summary(&store, "logits");
    let (fc1_mean, fc1_above) = csi_summary(&store, "fc1");
    let (conv1, _) = csi_summary(&store, "conv1");
    assert!(logits > 0.4, "logits mean CSI {logits}");
    assert!(
        fc1_above >= 5,
        "fc1: {fc1_above} neurons above 0.5 (mean {fc1_mean})"
    );
    assert!(conv1 < logits, "conv1 {conv1} vs logits {logits}");
}

#[test]
fn imagenet_folders_record_by_name_alone_and_on_the_fly_shifts_keep_their_base_params() {
    let dir = tempfile::tempdir().unwrap();
    imagenet::testdata::jpeg_tree(&dir.path().join("pets"), &["cat", "dog"], 3).unwrap();
    let imagenet_config = format!(
        "(roots: {{\"folder/pets\": {:?}}})",
        dir.path().join("pets").display().to_string()
    );
    // No `plugin:` given: `folder/pets` is found in the imagenet plugin's catalog.
    let text = format!(
        r#"(
    store: "store",
    model: (
        path: {model:?},
        threads: 1,
        preprocessing: (resize: 16, crop: 16, mean: (0.5, 0.5, 0.5), std: (0.5, 0.5, 0.5)),
    ),
    datasets: [(name: "folder/pets"), (name: "folder/pets+fog/2")],
    plugins: {{"imagenet": {imagenet_config:?}}},
    recording: (batch_size: 4, readers: 1, thumb: 16, commit_seconds: 0),
)"#,
        model = common::model("cnn.onnx")
    );
    let config = dir.path().join("study.ron");
    std::fs::write(&config, text).unwrap();
    let out = extract(&config);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&dir.path().join("store")).unwrap();
    let m = store.manifest();
    assert_eq!(m.datasets.len(), 2);
    assert!(m.datasets.iter().all(|d| d.complete && d.len == 6));
    assert_eq!(m.datasets[0].plugin, "imagenet");
    assert_eq!(store.labels(0).unwrap(), [0, 0, 0, 1, 1, 1]);
    let shifted = &m.datasets[1].params;
    assert_eq!(shifted.get("layout").map(String::as_str), Some("Folder"));
    assert_eq!(shifted.get("on_the_fly").map(String::as_str), Some("fog/2"));
}
