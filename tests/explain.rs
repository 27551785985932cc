//! `shiftscope explain` and `shiftscope repair` on a real store: the demo CNN recorded on
//! procedural colored MNIST (ID and permuted colours). The numbers printed are checked
//! against the store itself (mistake counts, accuracies before and after), the repaired
//! model against the edit asked for, and the user's model file against its own bytes.

// Helpers outside #[test] functions unwrap too: any failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shiftscope_sdk::ModelAdapter;
use shiftscope_store::Store;

fn cache_dir() -> PathBuf {
    std::env::var_os("SHIFTSCOPE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("shiftscope")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shiftscope")))
        .expect("HOME is set")
}

fn run(args: &[&str], home: &Path) -> Output {
    Command::new(common::binary())
        .args(args)
        .env("HOME", home)
        .env("SHIFTSCOPE_CACHE", cache_dir())
        .env_remove("SHIFTSCOPE_PLUGIN_PATH")
        .env_remove("SHIFTSCOPE_DATA")
        .output()
        .expect("run shiftscope")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn demo_model() -> PathBuf {
    common::workspace_file("assets/models/demo-cnn.onnx")
}

/// Records the demo CNN on 300 images of ID and permuted colored MNIST with `layers`.
fn record(dir: &Path, home: &Path, layers: &str) -> PathBuf {
    record_model(dir, home, layers, &demo_model())
}

/// Records `model` (the demo CNN or a copy) as [`record`] does.
fn record_model(dir: &Path, home: &Path, layers: &str, model: &Path) -> PathBuf {
    let config = dir.join("study.ron");
    std::fs::write(
        &config,
        format!(
            r#"(
    store: "store",
    model: (
        adapter: "onnx",
        path: "{}",
        preprocessing: (resize: None, crop: None, mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)),
        layers: [{layers}],
    ),
    datasets: [
        (name: "colored-mnist/id", role: Id, limit: 300),
        (name: "colored-mnist/permuted", role: Ood, limit: 300),
    ],
    recording: (batch_size: 100, thumb: 8),
)"#,
            model.display()
        ),
    )
    .unwrap();
    let out = run(&["extract", config.to_str().unwrap()], home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir.join("store")
}

/// Per dataset of a store: (images of `class`, of them misclassified, accuracy), from the
/// stored labels and logits.
fn from_store(store: &Path, class: i32) -> Vec<(String, usize, usize, f64)> {
    let store = Store::open(store).unwrap();
    let m = store.manifest().clone();
    (0..m.datasets.len())
        .map(|d| {
            let labels = store.labels(d).unwrap();
            let logits = store.logits(d).unwrap();
            let k = m.classes.len();
            let predicted = |r: usize| {
                (0..k)
                    .max_by(|&a, &b| {
                        logits
                            .get(r, a)
                            .total_cmp(&logits.get(r, b))
                            .then(b.cmp(&a))
                    })
                    .unwrap() as i32
            };
            let (mut images, mut wrong, mut right) = (0, 0, 0);
            for (r, &y) in labels.iter().enumerate() {
                right += usize::from(predicted(r) == y);
                if y == class {
                    images += 1;
                    wrong += usize::from(predicted(r) != y);
                }
            }
            (
                m.datasets[d].name.clone(),
                images,
                wrong,
                right as f64 / labels.len() as f64,
            )
        })
        .collect()
}

/// The decision layer of `copy` is `original`'s with the weights of `neurons` zeroed and
/// nothing else changed.
fn assert_only_zeroed(original: &Path, copy: &Path, neurons: &[usize]) {
    let layer = |p: &Path| {
        shiftscope_onnx::OnnxModel::from_path(p)
            .unwrap()
            .decision_layer()
            .unwrap()
    };
    let (before, after) = (layer(original), layer(copy));
    assert_eq!(after.weights.shape(), before.weights.shape());
    let d = before.weights.shape()[1];
    for (i, (b, a)) in before
        .weights
        .data()
        .iter()
        .zip(after.weights.data())
        .enumerate()
    {
        let want = if neurons.contains(&(i % d)) { 0.0 } else { *b };
        assert_eq!(*a, want, "weight {i}");
    }
    assert_eq!(after.bias, before.bias);
}

fn sha(path: &Path) -> String {
    shiftscope_store::sha256_file(path).unwrap()
}

#[test]
fn explain_lists_the_responsible_neurons_per_dataset() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = record(dir.path(), home.path(), r#""default""#);
    let class = 3;
    let out = run(
        &["explain", store.to_str().unwrap(), "--class", "3"],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Neurons of fc1"), "{stdout}");
    assert!(stdout.contains("Gemm [10 × 50]"), "{stdout}");
    for (name, images, wrong, _) in from_store(&store, class) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
        assert!(
            line.contains(&format!(
                "{wrong} of {images} images of the class misclassified"
            )),
            "{line}"
        );
        // fc1 → Gemm reproduces the model's own predictions.
        assert!(line.contains("reproduces 100.0%"), "{line}");
    }
    // On permuted colours the digit-3 images are mostly wrong: neurons are listed with
    // their votes, share, importance and top images.
    let permuted = &stdout[stdout.find("colored-mnist/permuted: ").unwrap()..];
    assert!(
        permuted.contains("insufficient (needed more activation):"),
        "{permuted}"
    );
    assert!(permuted.contains("NEURON"), "{permuted}");
    let row = permuted
        .lines()
        .find(|l| l.trim_start().starts_with("fc1:"))
        .unwrap_or_else(|| panic!("no neuron row:\n{permuted}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let share: f64 = cells[2].trim_end_matches('%').parse().unwrap();
    assert!(share >= 3.0, "{row}");
    assert!(cells[3].parse::<f64>().is_ok(), "importance: {row}");
    assert!(cells[4].starts_with('#'), "top images: {row}");

    // One dataset only, by name; a class by name.
    let out = run(
        &[
            "explain",
            store.to_str().unwrap(),
            "--class",
            "7",
            "--dataset",
            "colored-mnist/id",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("colored-mnist/id: "), "{stdout}");
    assert!(!stdout.contains("colored-mnist/permuted: "), "{stdout}");
    let out = run(
        &["explain", store.to_str().unwrap(), "--class", "eleven"],
        home.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--class 'eleven'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn explain_says_which_layer_to_record_when_the_store_lacks_it() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = record(dir.path(), home.path(), r#""conv1""#);
    let out = run(
        &["explain", store.to_str().unwrap(), "--class", "0"],
        home.path(),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not hold 'fc1'"), "{stderr}");
    assert!(
        stderr.contains(r#"Add "fc1" to the config's model.layers"#),
        "{stderr}"
    );
}

#[test]
fn repair_writes_a_copy_re_records_and_reports_before_and_after() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = record(dir.path(), home.path(), r#""default""#);
    let model_sha = sha(&demo_model());
    let out_store = dir.path().join("zeroed");
    let out = run(
        &[
            "repair",
            store.to_str().unwrap(),
            "--top-spurious",
            "3",
            "--method",
            "zero",
            "--out",
            out_store.to_str().unwrap(),
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(sha(&demo_model()), model_sha, "the user's model changed");
    // The three neurons it names are zeroed in the copy, nothing else changed.
    let named = stdout
        .lines()
        .find(|l| {
            l.starts_with("the 3 most spurious neurons of fc1 against colored-mnist/permuted: ")
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    let neurons: Vec<usize> = named
        .rsplit(": ")
        .next()
        .unwrap()
        .split(", ")
        .map(|n| n.trim_start_matches("fc1:").parse().unwrap())
        .collect();
    assert_eq!(neurons.len(), 3);
    assert_only_zeroed(&demo_model(), &dir.path().join("zeroed.onnx"), &neurons);
    // The new store holds every dataset; the printed accuracies are the stores' own.
    let old = from_store(&store, 0);
    let new = from_store(&out_store, 0);
    assert_eq!(
        old.iter().map(|d| &d.0).collect::<Vec<_>>(),
        new.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    for ((name, _, _, b), (_, _, _, a)) in old.iter().zip(&new) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[2], format!("{:.1}%", 100.0 * b), "{line}");
        assert_eq!(cells[3], format!("{:.1}%", 100.0 * a), "{line}");
    }
    assert!(
        stdout.contains("Per class, accuracy before → after:"),
        "{stdout}"
    );
    assert!(out_store.join("repair.json").exists());
    // An existing output is refused unless --force.
    let again = |extra: &[&str]| {
        let mut args = vec![
            "repair",
            store.to_str().unwrap(),
            "--neurons",
            "fc1:1,fc1:2",
            "--epochs",
            "2",
            "--out",
            out_store.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args, home.path())
    };
    let out = again(&[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );
    // Training with --force replaces them; the ratio-penalty training reports its epochs.
    let out = again(&["--force"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("decision layer trained with the ratio penalty"),
        "{stdout}"
    );
    assert!(stdout.contains("training accuracy by epoch"), "{stdout}");
    assert_eq!(sha(&demo_model()), model_sha);
    // Neurons of another layer are refused.
    let out = run(
        &["repair", store.to_str().unwrap(), "--neurons", "conv1:1"],
        home.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("whose input is 'fc1'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_decision_layer_crosses_the_c_abi_and_a_plugin_without_one_says_so() {
    use shiftscope_host::{Origin, Plugin};
    let plugin = Plugin::load(&common::library("shiftscope_onnx"), Origin::CommandLine).unwrap();
    let config = format!("(model: {:?})", demo_model());
    let mut dynamic = plugin.create_model(&config).unwrap();
    let mut linked = shiftscope_onnx::OnnxModel::from_path(&demo_model()).unwrap();
    let layer = dynamic.decision_layer().unwrap();
    assert_eq!(layer, linked.decision_layer().unwrap());
    // The export through the library writes a copy that the linked adapter reads back.
    let dir = tempfile::tempdir().unwrap();
    let mut edited = layer.clone();
    edited.bias.data_mut()[0] = 42.0;
    let out = dir.path().join("edited.onnx");
    dynamic
        .export_with_decision_layer(&edited, &out, false)
        .unwrap();
    let back = shiftscope_onnx::OnnxModel::from_path(&out)
        .unwrap()
        .decision_layer()
        .unwrap();
    assert_eq!(back, edited);
    let e = dynamic
        .export_with_decision_layer(&edited, &out, false)
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(dynamic.outstanding_outputs(), Some(0));
    // A plugin that implements no decision layer reports it as not available.
    let plain = Plugin::load(
        &common::library("fixture_wrong_shape_model"),
        Origin::CommandLine,
    )
    .unwrap();
    let e = plain
        .create_model("")
        .unwrap()
        .decision_layer()
        .unwrap_err();
    assert_eq!(e.kind(), shiftscope_sdk::ErrorKind::Unsupported);
    assert!(
        e.to_string()
            .contains("does not provide the decision layer"),
        "{e}"
    );
}

#[test]
fn explain_and_repair_work_on_a_model_whose_weights_are_in_a_side_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let model = models.join("demo-cnn.onnx");
    let side = shiftscope_testkit::onnx::copy_with_external_data(&demo_model(), &model);
    let side_sha = sha(&side);
    let store = record_model(dir.path(), home.path(), r#""default""#, &model);

    let out = run(
        &["explain", store.to_str().unwrap(), "--class", "0"],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Neurons of fc1"), "{stdout}");

    let out_store = dir.path().join("zeroed");
    let out = run(
        &[
            "repair",
            store.to_str().unwrap(),
            "--neurons",
            "fc1:3,fc1:7",
            "--method",
            "zero",
            "--out",
            out_store.to_str().unwrap(),
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(sha(&side), side_sha, "the user's side file changed");
    // The copy carries its weights (inline: it is small) and has the edit.
    let copy = dir.path().join("zeroed.onnx");
    assert!(!dir.path().join("zeroed.onnx.data").exists());
    let mut repaired = shiftscope_onnx::OnnxModel::from_path(&copy).unwrap();
    assert!(repaired.describe().unwrap().data_files.is_empty());
    assert_only_zeroed(&model, &copy, &[3, 7]);
    assert!(out_store.join("repair.json").exists());
}
