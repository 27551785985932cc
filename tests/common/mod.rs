//! Shared by the end-to-end tests: the plugin libraries, built once per test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every plugin package the tests load dynamically.
pub(crate) const PLUGIN_PACKAGES: [&str; 10] = [
    "cifar10",
    "imagenet",
    "colored-mnist",
    "example-shift",
    "example-model",
    "shiftscope-onnx",
    "fixture-wrong-abi",
    "fixture-no-entry",
    "fixture-panicking-source",
    "fixture-wrong-shape-model",
];

/// Builds every plugin library once (real `cargo build -p`) into a private folder and
/// returns the path of `name` (target name, e.g. `example_shift`).
pub(crate) fn library(name: &str) -> PathBuf {
    static LIBS: OnceLock<(tempfile::TempDir, HashMap<String, PathBuf>)> = OnceLock::new();
    let (_, libs) = LIBS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let libs = shiftscope_testkit::cargo::build_plugin_libraries(&PLUGIN_PACKAGES, dir.path())
            .expect("building the plugin libraries");
        (dir, libs)
    });
    libs.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no library {name} among {:?}", libs.keys()))
}

/// A fresh folder holding copies of the given libraries, for search-path tests.
#[allow(dead_code)]
pub(crate) fn folder_with(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let lib = library(name);
        let file = lib.file_name().expect("file name");
        std::fs::copy(&lib, dir.path().join(file)).expect("copy library");
    }
    dir
}

/// The `shiftscope` binary, built once per test binary (real `cargo build`).
#[allow(dead_code)]
pub(crate) fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let artifacts = shiftscope_testkit::cargo::build_binaries(&["shiftscope-cli"])
            .expect("build shiftscope");
        artifacts.binaries["shiftscope"].clone()
    })
    .clone()
}

/// A fixture ONNX model made by `tools/make_fixture_models.py`.
#[allow(dead_code)]
pub(crate) fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/models")
        .join(name)
}

/// A file of the repository.
#[allow(dead_code)]
pub(crate) fn workspace_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

/// The file name of a path, for messages.
#[allow(dead_code)]
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Records procedural colored MNIST on the demo CNN into `dir/store` with the real binary, as
/// the model was trained (28×28, values in [0, 1], unnormalised; default layers, mean-pooled
/// conv maps), and returns the store. `datasets`: (name, role, images).
#[allow(dead_code)]
pub(crate) fn demo_cnn_store(
    dir: &Path,
    datasets: &[(&str, &str, usize)],
    batch: usize,
) -> PathBuf {
    demo_cnn_store_of(
        dir,
        datasets,
        batch,
        &workspace_file("assets/models/demo-cnn.onnx"),
    )
}

/// [`demo_cnn_store`] recorded with `model`, a copy of the demo CNN.
#[allow(dead_code)]
pub(crate) fn demo_cnn_store_of(
    dir: &Path,
    datasets: &[(&str, &str, usize)],
    batch: usize,
    model: &Path,
) -> PathBuf {
    let datasets: Vec<String> = datasets
        .iter()
        .map(|(name, role, limit)| format!("(name: {name:?}, role: {role}, limit: {limit})"))
        .collect();
    let text = format!(
        r#"(
    store: "store",
    model: (
        path: {model:?},
        threads: 1,
        preprocessing: (resize: None, crop: None, mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)),
        layers: ["default"],
        pooling: (conv: Mean),
    ),
    datasets: [{datasets}],
    plugins: {{"colored-mnist": "(procedural: true)"}},
    recording: (batch_size: {batch}, thumb: 28, commit_seconds: 0),
)"#,
        datasets = datasets.join(", ")
    );
    let config = dir.join("study.ron");
    std::fs::write(&config, text).expect("write the study");
    let out = std::process::Command::new(binary())
        .args(["extract"])
        .arg(&config)
        .env_remove("SHIFTSCOPE_DATA")
        .output()
        .expect("run shiftscope extract");
    assert!(
        out.status.success(),
        "extract: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("store")
}

/// Writes an 8-bit RGB PNG of `width`×`height` (`rgb` row-major, 3 bytes a pixel).
#[allow(dead_code)] // not every test binary writes images
pub(crate) fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) {
    let file = std::fs::File::create(path).expect("create the PNG");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .expect("PNG header")
        .write_image_data(rgb)
        .expect("PNG data");
}
