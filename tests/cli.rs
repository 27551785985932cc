//! The `shiftscope` binary, run as a user runs it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// shiftscope's cache of the real user (where setup put ONNX Runtime), kept when HOME moves.
fn cache_dir() -> PathBuf {
    std::env::var_os("SHIFTSCOPE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("shiftscope")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shiftscope")))
        .expect("HOME is set")
}

/// Runs the binary with a private HOME and no inherited plugin path.
fn run(args: &[&str], home: &std::path::Path) -> Output {
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

#[test]
fn plugins_lists_builtin_and_dynamic_plugins_and_refusals() {
    let home = tempfile::tempdir().unwrap();
    let folder = common::folder_with(&["fixture_panicking_source", "fixture_wrong_abi"]);
    let out = run(
        &["plugins", "--plugin", folder.path().to_str().unwrap()],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let row = |name: &str| stdout.lines().find(|l| l.contains(name)).map(str::to_owned);
    let shift = row("example-shift").expect("example-shift row");
    assert!(
        shift.starts_with("dataset-source") && shift.contains("built-in"),
        "{shift}"
    );
    let model = row("example-model").expect("example-model row");
    assert!(
        model.starts_with("model-adapter") && model.contains("0.1.0"),
        "{model}"
    );
    let dynamic = row("fixture-panicking").expect("dynamic plugin row");
    let lib = common::library("fixture_panicking_source");
    assert!(
        dynamic.contains("0.0.1")
            && dynamic.contains(&format!(
                "{}.{}",
                shiftscope_abi::ABI_MAJOR,
                shiftscope_abi::ABI_MINOR
            )),
        "{dynamic}"
    );
    assert!(dynamic.contains(&common::file_name(&lib)), "{dynamic}");
    assert!(dynamic.contains("(from command line)"), "{dynamic}");
    assert!(stdout.contains("Refused (1):"), "{stdout}");
    assert!(
        stdout.contains("plugin 'fixture-future-abi' 9.1.0 was built for plugin ABI 2.3"),
        "{stdout}"
    );
}

#[test]
fn plugins_are_found_through_the_environment_and_the_user_folder() {
    let home = tempfile::tempdir().unwrap();
    let user_dir = home.path().join(".local/share/shiftscope/plugins");
    std::fs::create_dir_all(&user_dir).unwrap();
    let lib = common::library("fixture_wrong_shape_model");
    std::fs::copy(&lib, user_dir.join(common::file_name(&lib))).unwrap();
    let env_dir = common::folder_with(&["fixture_panicking_source"]);
    let out = Command::new(common::binary())
        .arg("plugins")
        .env("HOME", home.path())
        .env("SHIFTSCOPE_PLUGIN_PATH", env_dir.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("fixture-wrong-shape").contains("(from user dir)"),
        "{stdout}"
    );
    assert!(
        line("fixture-panicking").contains("(from SHIFTSCOPE_PLUGIN_PATH)"),
        "{stdout}"
    );
    assert!(stdout.contains("Refused: none"), "{stdout}");
}

#[test]
fn a_missing_plugin_path_is_reported() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        &["plugins", "--plugin", "/nonexistent/libx.so"],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("/nonexistent/libx.so: plugin path from the command line cannot be read"),
        "{stdout}"
    );
}

#[test]
fn version_help_and_log_levels() {
    let home = tempfile::tempdir().unwrap();
    let out = run(&["--version"], home.path());
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "shiftscope {} (plugin ABI {}.{})",
            env!("CARGO_PKG_VERSION"),
            shiftscope_abi::ABI_MAJOR,
            shiftscope_abi::ABI_MINOR
        )
    );

    let out = run(&["--help"], home.path());
    let help = text(&out.stdout);
    assert!(out.status.success(), "{help}");
    // Every subcommand listed under "Commands:" answers --help.
    let subcommands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|s| s != "help")
        .collect();
    assert!(subcommands.contains(&"plugins".to_owned()), "{help}");
    for sub in &subcommands {
        let out = run(&[sub, "--help"], home.path());
        assert!(out.status.success(), "{sub} --help failed");
        assert!(
            text(&out.stdout).contains(&format!("Usage: shiftscope {sub}")),
            "{sub}"
        );
    }

    let folder = common::folder_with(&["fixture_wrong_abi"]);
    let path = folder.path().to_str().unwrap();
    let debug = run(&["-vv", "plugins", "--plugin", path], home.path());
    assert!(
        text(&debug.stderr).contains("registered plugin 'example-shift'"),
        "{}",
        text(&debug.stderr)
    );
    let quiet = run(&["-q", "plugins", "--plugin", path], home.path());
    assert!(quiet.status.success());
    assert_eq!(text(&quiet.stderr), "");

    let bad = run(&["no-such-command"], home.path());
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("unrecognized subcommand"));
}

#[test]
fn layers_prints_the_table_and_the_selection() {
    let home = tempfile::tempdir().unwrap();
    let cnn = common::model("cnn.onnx");
    let out = run(&["layers", cnn.to_str().unwrap()], home.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("NAME"), "{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        row("conv1_relu"),
        [
            "conv1_relu",
            "Relu",
            "conv",
            "[8,",
            "16,",
            "16]",
            "8",
            "yes"
        ]
    );
    assert_eq!(
        row("pool1"),
        ["pool1", "MaxPool", "conv", "[8,", "8,", "8]", "8"]
    );
    assert_eq!(
        row("logits"),
        ["logits", "Gemm", "logits", "[10]", "10", "yes"]
    );
    assert!(
        stdout.contains("11 candidate layers; 5 selected, 42 neurons per image recorded"),
        "{stdout}"
    );

    let out = run(
        &[
            "layers",
            cnn.to_str().unwrap(),
            "-s",
            "all-relu",
            "--selected-only",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    let names: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("yes"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["conv1_relu", "conv2_relu", "block1_relu"],
        "{stdout}"
    );

    let vit = common::model("vit.onnx");
    let out = run(
        &[
            "layers",
            vit.to_str().unwrap(),
            "--select",
            "blocks",
            "--selected-only",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("block1_out") && stdout.contains("block2_out"),
        "{stdout}"
    );
    assert!(stdout.contains("2 selected"), "{stdout}");
}

#[test]
fn layers_errors_name_the_file_and_what_was_wrong() {
    let home = tempfile::tempdir().unwrap();
    let readme = common::workspace_file("README.md");
    let out = run(&["layers", readme.to_str().unwrap()], home.path());
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("README.md: not a readable ONNX model"),
        "{stderr}"
    );

    let cnn = common::model("cnn.onnx");
    let out = run(
        &[
            "layers",
            cnn.to_str().unwrap(),
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
        ],
        home.path(),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so")
            && stderr.contains("tools/fetch-onnxruntime.sh"),
        "{stderr}"
    );

    let out = run(&["layers", cnn.to_str().unwrap(), "-s", "fc9"], home.path());
    assert!(text(&out.stderr).contains("no layer named 'fc9'"));
    let out = run(
        &["layers", cnn.to_str().unwrap(), "--device", "tpu"],
        home.path(),
    );
    assert!(text(&out.stderr).contains("unknown device 'tpu'"));
}

#[test]
fn datasets_lists_every_catalog_entry_with_size_classes_and_source() {
    let home = tempfile::tempdir().unwrap();
    let out = run(&["datasets"], home.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_default()
            .to_owned()
    };
    let id = row("colored-mnist/id");
    assert!(id.contains("10000") && id.contains(" 10 "), "{id}");
    // With a private HOME and no SHIFTSCOPE_DATA there are no MNIST files: said so.
    assert!(id.contains("procedural digits"), "{id}");
    assert!(
        row("colored-mnist/permuted/train").contains("60000"),
        "{stdout}"
    );
    assert!(row("example-shift/noisy").contains("noise"), "{stdout}");
    assert!(
        stdout.contains("NAME+<corruption>/<severity 1-5>"),
        "{stdout}"
    );
    let only = run(&["datasets", "--only", "example-shift"], home.path());
    assert_eq!(
        text(&only.stdout).lines().count(),
        3,
        "{}",
        text(&only.stdout)
    );
    let none = run(&["datasets", "--only", "nope"], home.path());
    assert!(!none.status.success());
}

#[test]
fn datasets_preview_writes_a_contact_sheet() {
    let home = tempfile::tempdir().unwrap();
    let sheet = home.path().join("sheet.png");
    let out = run(
        &[
            "datasets",
            "preview",
            "colored-mnist/id",
            "colored-mnist/permuted",
            "--count",
            "8",
            "--out",
            sheet.to_str().unwrap(),
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("2 datasets"), "{stdout}");
    let bytes = std::fs::read(&sheet).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    // IHDR: width and height, big-endian, at bytes 16..24: 8 cells of 84 px plus gaps.
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    assert_eq!(width, 6 + 8 * (84 + 6));

    let bad = run(
        &[
            "datasets",
            "preview",
            "nope/nothing",
            "--out",
            sheet.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("no dataset plugin opens 'nope/nothing'"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn datasets_export_writes_the_pixels_and_labels_the_plugin_gives() {
    use shiftscope_sdk::{DatasetSource, DatasetSourcePlugin};

    let home = tempfile::tempdir().unwrap();
    let out_path = home.path().join("train.npz");
    let out = run(
        &[
            "datasets",
            "export",
            "colored-mnist/permuted/train",
            "--limit",
            "37",
            "--out",
            out_path.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("37 images of 28x28, 10 classes"));

    let source = colored_mnist::ColoredMnist::create("").unwrap();
    let dataset = source.open("colored-mnist/permuted/train").unwrap();
    let mut npz = npyz::npz::NpzArchive::open(&out_path).unwrap();
    let images = npz.by_name("images").unwrap().unwrap();
    assert_eq!(images.shape(), &[37, 28, 28, 3]);
    let images: Vec<u8> = images.into_vec().unwrap();
    let labels = npz.by_name("labels").unwrap().unwrap();
    assert_eq!(labels.shape(), &[37]);
    let labels: Vec<i64> = labels.into_vec().unwrap();
    for i in [0, 1, 17, 36] {
        let sample = dataset.get(i).unwrap();
        assert_eq!(
            &images[i * 2352..(i + 1) * 2352],
            sample.pixels.as_slice(),
            "image {i}"
        );
        assert_eq!(labels[i], i64::from(sample.label));
    }
    let classes = npz.by_name("classes").unwrap().unwrap();
    assert_eq!(classes.shape(), &[10]);
    assert!(!home.path().join("train.npz.partial").exists());

    let bad = run(
        &[
            "datasets",
            "export",
            "colored-mnist/sepia",
            "--out",
            out_path.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(!bad.status.success());
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("no variant 'sepia'"), "{stderr}");
    // The plugin named by the prefix answers alone: no unrelated plugins' refusals.
    assert!(!stderr.contains("example-shift"), "{stderr}");
}

#[test]
fn verify_checks_a_store_and_names_a_damaged_file() {
    use shiftscope_store::{LayerEntry, Manifest, ModelEntry, Precision, Role, StoreWriter};
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("store");
    let manifest = Manifest {
        schema_version: shiftscope_store::SCHEMA_VERSION,
        tool_version: "test".into(),
        created_unix: 0,
        model: ModelEntry {
            path: "m.onnx".into(),
            sha256: String::new(),
            adapter: "onnx".into(),
            preprocessing: serde_json::Value::Null,
            input_shape: vec![],
        },
        layers: vec![LayerEntry {
            id: String::new(),
            name: "fc1".into(),
            op: "Relu".into(),
            kind: "dense".into(),
            neurons: 2,
            pooling: "none".into(),
        }],
        classes: vec!["a".into(), "b".into()],
        thumb: 2,
        precision: Precision::F32,
        datasets: vec![],
        shard: None,
    };
    let mut store = StoreWriter::create(&root, manifest).unwrap();
    let mut writer = store
        .dataset("d/id", "p", Default::default(), Role::Id, 2)
        .unwrap();
    writer
        .write_rows(0, &[0, 1], &[0.0; 4], &[7; 24], &[&[1.0, 2.0, 3.0, 4.0]])
        .unwrap();
    writer.commit(2).unwrap();
    writer.finish(&mut store).unwrap();

    let out = run(&["verify", root.to_str().unwrap()], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("4 files verified, 0 mismatched"),
        "{}",
        text(&out.stdout)
    );

    let labels = root.join("datasets/d_id/labels.npy");
    let mut bytes = std::fs::read(&labels).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&labels, &bytes).unwrap();
    let out = run(&["verify", root.to_str().unwrap()], home.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains(&format!("MISMATCH {}", labels.display())),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn report_writes_the_summary_tables_and_figures_of_an_extracted_store() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A small study with the built-in example model on stripes and their noisy shift.
    let config = dir.path().join("study.ron");
    std::fs::write(
        &config,
        r#"(
    store: "store",
    model: (
        adapter: "example-model",
        options: "(seed: 1)",
        preprocessing: (resize: None, crop: 32, mean: (0.5, 0.5, 0.5), std: (0.25, 0.25, 0.25)),
        layers: ["default"],
        pooling: (conv: Mean),
    ),
    datasets: [
        (name: "example-shift/id", role: Id),
        (name: "example-shift/noisy", role: Ood),
    ],
    plugins: {"example-shift": "(len: 96, seed: 7)"},
    recording: (batch_size: 32, thumb: 8),
)"#,
    )
    .unwrap();
    let out = run(&["extract", config.to_str().unwrap()], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = dir.path().join("store");
    let report = dir.path().join("report");
    let out = run(
        &[
            "report",
            store.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
            "--top",
            "5",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("analysing layer 1/"), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let neurons: u64 = layers.iter().map(|l| l["neurons"].as_u64().unwrap()).sum();
    assert!(
        stdout.contains(&format!(
            "{} layers, {neurons} neurons, 192 images",
            layers.len()
        )),
        "{stdout}"
    );
    for name in [
        "summary.md",
        "neurons.csv",
        "images.csv",
        "layer_profile.png",
        "hist_spurious.png",
        "hist_novelty.png",
        "hist_shift.png",
    ] {
        let path = report.join(name);
        assert!(stdout.contains(&path.display().to_string()), "{stdout}");
        let bytes = std::fs::read(&path).unwrap();
        if name.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        }
    }
    let heatmaps = std::fs::read_dir(&report)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("heatmap_layer")
        })
        .count();
    assert!(heatmaps >= 1, "no heatmap written");

    let csv = std::fs::read_to_string(report.join("neurons.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with(
            "layer,layer_name,neuron,normaliser_max,silent,spurious[example-shift/noisy]"
        ),
        "{header}"
    );
    assert_eq!(lines.count() as u64, neurons);
    let images = std::fs::read_to_string(report.join("images.csv")).unwrap();
    assert_eq!(images.lines().count(), 1 + 2 * 96);
    assert!(
        images
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("example-shift/id,0,"),
        "{images}"
    );
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    for needle in [
        "## Datasets and accuracy",
        "`example-shift/noisy` | OOD",
        "## The 5 most spurious neurons",
        "## The 5 most novel neurons",
        "![Layer shift profile](layer_profile.png)",
    ] {
        assert!(md.contains(needle), "{needle} missing:\n{md}");
    }

    // The store itself is untouched apart from the analysis cache.
    let out = run(&["verify", store.to_str().unwrap()], home.path());
    assert!(out.status.success(), "{}", text(&out.stdout));

    // An unknown store is an error naming it.
    let missing = dir.path().join("nowhere");
    let out = run(
        &[
            "report",
            missing.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nowhere"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_shows_the_colour_shortcut_and_its_spurious_neurons() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("demo");
    let out = run(
        &[
            "demo",
            "--headless",
            "--models",
            "cnn",
            "--limit",
            "1000",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let accuracy = |name: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no accuracy line for {name}:\n{stdout}"));
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    // The paper's finding: high in distribution, collapse when the colours are permuted.
    assert!(accuracy("colored-mnist/id") > 97.0, "{stdout}");
    assert!(accuracy("colored-mnist/permuted") < 50.0, "{stdout}");
    assert!(accuracy("colored-mnist/arbitrary") < 60.0, "{stdout}");

    // The top of the spurious ranking is not random: far above the layer's median, and
    // most of those neurons follow the colour, not the digit.
    let spurious: Vec<f64> = stdout
        .lines()
        .filter(|l| l.starts_with("fc1:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(spurious.len(), 10, "{stdout}");
    let median: f64 = stdout
        .split("median spurious score is ")
        .nth(1)
        .unwrap()
        .trim_start()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap()
        .trim_end_matches('.')
        .parse()
        .unwrap();
    assert!(
        spurious[0] > median + 0.2,
        "top {} vs median {median}",
        spurious[0]
    );
    let colour: usize = stdout
        .split(" of these 10 follow the colour")
        .next()
        .unwrap()
        .rsplit('\n')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(colour >= 7, "{stdout}");

    // The repair of the top spurious fc1 neurons: before (the accuracy table's own numbers)
    // and after both edits, on every dataset, re-recorded.
    let repair = &stdout[stdout
        .find("\nRepair of demo-cnn's fc1:")
        .unwrap_or_else(|| panic!("no repair:\n{stdout}"))..];
    for name in ["colored-mnist/id", "colored-mnist/permuted"] {
        let row: Vec<&str> = repair
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no repair row for {name}:\n{repair}"))
            .split_whitespace()
            .collect();
        assert_eq!(row.len(), 4, "{row:?}");
        let before: f64 = row[1].trim_end_matches('%').parse().unwrap();
        assert!((before - accuracy(name)).abs() < 0.05, "{row:?}");
        for after in &row[2..] {
            let a: f64 = after.trim_end_matches('%').parse().unwrap();
            assert!((0.0..=100.0).contains(&a), "{row:?}");
        }
    }
    assert!(repair.contains("Permuted accuracy changes by "), "{repair}");

    // What it wrote: the study config (re-runnable), the store, the report.
    for file in [
        "demo-cnn.ron",
        "models/demo-cnn.onnx",
        "demo-cnn/store/manifest.json",
        "demo-cnn/report/summary.md",
        "demo-cnn/repaired-zero/manifest.json",
        "demo-cnn/repaired-zero.onnx",
        "demo-cnn/repaired-train/repair.json",
        "demo-cnn/repaired-train.onnx",
    ] {
        assert!(out_dir.join(file).exists(), "{file}");
    }
}

#[test]
fn datasets_lists_and_previews_imagenet_layouts_from_a_config() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let config = imagenet::testdata::all_layouts(&data).unwrap();
    let file = home.path().join("imagenet.ron");
    std::fs::write(&file, &config).unwrap();
    let given = format!("imagenet={}", file.display());
    // Without a config the plugin lists nothing, says so, and the others are still listed.
    let out = run(&["datasets"], home.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("cifar10/test"), "{stdout}");
    assert!(
        stdout
            .contains("imagenet: no datasets with this config (none given: --config imagenet=FILE"),
        "{stdout}"
    );
    let out = run(
        &["datasets", "--only", "imagenet", "--config", &given],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for name in [
        "imagenet/val",
        "imagenet-v2",
        "imagenet-sketch",
        "stylized-imagenet",
        "imagenet-r",
        "imagenet-a",
        "imagenet-c/fog/3",
        "folder/pets",
        "folder/birds/group/water",
    ] {
        assert!(stdout.contains(name), "{name} missing from\n{stdout}");
    }
    // imagenet/val: 6 images, 1000 classes.
    let val = stdout
        .lines()
        .find(|l| l.starts_with("imagenet/val "))
        .unwrap();
    let cells: Vec<&str> = val.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["natural", "6", "1000"], "{val}");
    // Preview, with a corruption on the fly, the config given after the subcommand.
    let sheet = home.path().join("sheet.png");
    let out = run(
        &[
            "datasets",
            "preview",
            "imagenet-v2",
            "imagenet-r+fog/3",
            "folder/birds",
            "--config",
            &given,
            "--out",
            sheet.to_str().unwrap(),
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("3 datasets"), "{stdout}");
    assert!(std::fs::read(&sheet).unwrap().starts_with(b"\x89PNG"));
    // A broken image stops the preview with an error naming the file.
    let broken = data.join("pets/cat/img_0.JPEG");
    std::fs::write(&broken, b"").unwrap();
    let out = run(
        &[
            "datasets",
            "--config",
            &given,
            "preview",
            "folder/pets",
            "--out",
            sheet.to_str().unwrap(),
        ],
        home.path(),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("img_0.JPEG: empty file (0 bytes)"),
        "{stderr}"
    );
    let bad = run(
        &["datasets", "--config", "imagenet=nothing.ron"],
        home.path(),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("no such file"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_model_with_external_data_lists_and_records_from_another_folder() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    let study_dir = root.path().join("study");
    let elsewhere = root.path().join("elsewhere");
    for d in [&models, &study_dir, &elsewhere] {
        std::fs::create_dir_all(d).unwrap();
    }
    let model = models.join("cnn.onnx");
    shiftscope_testkit::onnx::copy_with_external_data(&common::model("cnn.onnx"), &model);
    let in_elsewhere = |args: &[&str]| {
        Command::new(common::binary())
            .args(args)
            .current_dir(&elsewhere)
            .env("HOME", home.path())
            .env("SHIFTSCOPE_CACHE", cache_dir())
            .env_remove("SHIFTSCOPE_PLUGIN_PATH")
            .env_remove("SHIFTSCOPE_DATA")
            .output()
            .expect("run shiftscope")
    };
    let out = in_elsewhere(&["layers", "../models/cnn.onnx"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("external data: "), "{stdout}");
    assert!(
        stdout.contains("11 candidate layers; 5 selected"),
        "{stdout}"
    );

    std::fs::write(
        study_dir.join("study.ron"),
        r#"(
    store: "store",
    model: (path: "../models/cnn.onnx", preprocessing: (resize: Some(16), crop: Some(16))),
    datasets: [(name: "example-shift/id"), (name: "example-shift/noisy")],
    plugins: {"example-shift": "(len: 40, seed: 3)"},
    recording: (batch_size: 16, thumb: 8),
)"#,
    )
    .unwrap();
    let out = in_elsewhere(&["extract", "../study/study.ron"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = in_elsewhere(&["verify", "../study/store"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Other weights in the side file make another model, though the .onnx is the same file.
    let side = models.join("cnn.onnx.data");
    let mut weights = std::fs::read(&side).unwrap();
    weights[0] ^= 0x40;
    std::fs::write(&side, &weights).unwrap();
    let out = in_elsewhere(&["extract", "../study/study.ron"]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("another model"),
        "{stderr}"
    );

    // Without its side file the model is refused with the file named, whatever the folder.
    std::fs::remove_file(&side).unwrap();
    let out = in_elsewhere(&["layers", "../models/cnn.onnx"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cnn.onnx.data") && stderr.contains("cannot be read"),
        "{stderr}"
    );
}

#[test]
fn a_one_channel_model_records_colour_images_as_their_luminance() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("grey.onnx");
    shiftscope_testkit::onnx::copy_as_single_channel(&common::model("cnn.onnx"), &model);
    let out = run(&["layers", model.to_str().unwrap()], home.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("input image: [?, 1, 16, 16]"), "{stdout}");
    assert!(
        stdout.contains(
            "default preprocessing (when a study declares none): resize 18, centre crop 16, grey (ITU-R 601 luminance of colour images)"
        ),
        "{stdout}"
    );
    // No preprocessing declared: the default for a 16-pixel one-channel input.
    let config = dir.path().join("study.ron");
    std::fs::write(
        &config,
        r#"(
    store: "store",
    model: (path: "grey.onnx"),
    datasets: [(name: "example-shift/id"), (name: "example-shift/noisy")],
    plugins: {"example-shift": "(len: 12, seed: 2)"},
    recording: (batch_size: 6, thumb: 8),
)"#,
    )
    .unwrap();
    let out = run(&["extract", config.to_str().unwrap()], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("store/manifest.json")).unwrap(),
    )
    .unwrap();
    let p = &manifest["model"]["preprocessing"];
    assert_eq!(p["channels"], "Grey", "{p}");
    assert_eq!(
        (p["resize"].as_u64(), p["crop"].as_u64()),
        (Some(18), Some(16)),
        "{p}"
    );
}

#[test]
fn gradient_writes_the_input_gradients_of_each_image_in_order() {
    use shiftscope_sdk::{GradientRequest, ModelAdapter, Objective, Tensor};
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("images");
    std::fs::create_dir_all(images.join("b")).unwrap();
    // Three images of other sizes than the model's 16×16, in a folder tree (sorted by path:
    // a.png, b/c.png, b/d.png) and one given alone after it.
    let mut paths = Vec::new();
    for (i, (name, side)) in [("a.png", 20u32), ("b/c.png", 24), ("b/d.png", 16)]
        .iter()
        .enumerate()
    {
        let rgb: Vec<u8> = (0..side * side * 3)
            .map(|p| ((p as usize * (7 + 5 * i) + 31 * i) % 251) as u8)
            .collect();
        let path = images.join(name);
        common::write_png(&path, *side, *side, &rgb);
        paths.push(path);
    }
    let alone = root.path().join("alone.png");
    std::fs::copy(&paths[1], &alone).unwrap();
    paths.push(alone.clone());
    let model = common::model("cnn.onnx");
    let preprocessing = "(resize: Some(16), crop: Some(16))";
    let out_npy = root.path().join("grad.npy");
    let (m, dir, a) = (
        model.to_str().unwrap(),
        images.to_str().unwrap(),
        alone.to_str().unwrap(),
    );
    for (target, layer, objective) in [
        ("logit:1", "logits", Objective::Pooled),
        ("conv2_relu:3@2,5", "conv2_relu", Objective::Map),
    ] {
        let out = run(
            &[
                "gradient",
                m,
                dir,
                a,
                "--target",
                target,
                "--out",
                out_npy.to_str().unwrap(),
                "--preprocessing",
                preprocessing,
                "--batch",
                "3",
            ],
            home.path(),
        );
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        assert!(stdout.contains("of 4 images"), "{stdout}");
        assert!(
            stdout.contains("wrote ") && stdout.contains("[4, 3, 16, 16]"),
            "{stdout}"
        );

        // The same images through the library: preprocessing, then the adapter's gradient.
        let pre: shiftscope_runtime::Preprocessing = ron_preprocessing();
        let mut data = Vec::new();
        for p in &paths {
            let sample = shiftscope_runtime::read_image(p).unwrap();
            data.extend(pre.apply(&sample).unwrap().input);
        }
        let batch = Tensor::new(vec![4, 3, 16, 16], data).unwrap();
        let mut adapter = shiftscope_onnx::OnnxModel::from_path(&model).unwrap();
        let info = adapter.describe().unwrap().layer(layer).unwrap().clone();
        let mut w = vec![0.0f32; objective.weights_shape(&info, 1)[1..].iter().product()];
        match objective {
            Objective::Pooled => w[1] = 1.0,
            _ => w[(3 * info.shape[1] + 2) * info.shape[2] + 5] = 1.0,
        }
        let weights = Tensor::new(objective.weights_shape(&info, 4), w.repeat(4)).unwrap();
        let want = adapter
            .gradient(
                batch.view(),
                &GradientRequest {
                    layer,
                    objective,
                    weights: weights.view(),
                    maps: &[],
                },
            )
            .unwrap();
        let file = std::fs::read(&out_npy).unwrap();
        let array = npyz::NpyFile::new(&file[..]).unwrap();
        assert_eq!(array.shape(), [4, 3, 16, 16]);
        let got: Vec<f32> = array.into_vec().unwrap();
        let scale = want.input.data().iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0, "{target}: a zero gradient");
        for (g, w) in got.iter().zip(want.input.data()) {
            assert!((g - w).abs() <= 1e-6 * scale, "{target}: {g} vs {w}");
        }
        // Each image's objective is printed in order.
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("objective")).collect();
        assert_eq!(lines.len(), 4, "{stdout}");
        for ((line, p), v) in lines.iter().zip(&paths).zip(want.objective.data()) {
            assert!(line.contains(p.to_str().unwrap()), "{line}");
            assert!(line.contains(&format!("{v:.6}")), "{line} vs {v}");
        }
    }
}

fn ron_preprocessing() -> shiftscope_runtime::Preprocessing {
    shiftscope_runtime::Preprocessing {
        resize: Some(16),
        crop: Some(16),
        ..shiftscope_runtime::Preprocessing::imagenet()
    }
}

#[test]
fn gradient_errors_name_what_was_wrong() {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let image = root.path().join("x.png");
    common::write_png(&image, 20, 20, &[90; 20 * 20 * 3]);
    let not_image = root.path().join("notes.png");
    std::fs::write(&not_image, "not a picture").unwrap();
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let model = common::model("cnn.onnx");
    let (m, i) = (model.to_str().unwrap(), image.to_str().unwrap());
    for (args, wanted) in [
        (vec![m, i, "--target", "nope:1"], "no layer 'nope'"),
        (vec![m, i, "--target", "conv2_relu:99"], "has 8 neurons"),
        (
            vec![m, i, "--target", "logit:10"],
            "the model has 10 classes",
        ),
        (
            vec![m, i, "--target", "conv2_relu:1@9,0"],
            "outside layer 'conv2_relu'",
        ),
        (
            vec![m, not_image.to_str().unwrap(), "--target", "logit:0"],
            "notes.png",
        ),
        (
            vec![m, empty.to_str().unwrap(), "--target", "logit:0"],
            "holds no PNG or JPEG images",
        ),
        (
            vec![m, "/nonexistent/y.png", "--target", "logit:0"],
            "no such image or folder",
        ),
        (
            vec![
                m,
                i,
                "--target",
                "logit:0",
                "--preprocessing",
                "(resize: None, crop: None)",
            ],
            "preprocessed to [3, 20, 20], but the model's input",
        ),
        (
            vec![
                common::model("cnn_qdq.onnx").to_str().unwrap(),
                i,
                "--target",
                "logit:0",
            ],
            "no backward rule for DequantizeLinear",
        ),
    ] {
        let mut full = vec!["gradient"];
        full.extend(&args);
        let out = run(&full, home.path());
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
    // Where no GPU can be used, `--device cuda` is an error naming CUDA, never a quiet CPU
    // run; where one can, the run says nothing of the CPU.
    let out = run(
        &["gradient", m, i, "--target", "logit:0", "--device", "cuda"],
        home.path(),
    );
    let stderr = text(&out.stderr);
    if out.status.success() {
        assert!(!text(&out.stdout).contains("CPU"), "{}", text(&out.stdout));
    } else {
        assert!(stderr.contains("CUDA"), "{stderr}");
    }
}
