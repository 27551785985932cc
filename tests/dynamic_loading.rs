//! Real dynamic loading: plugin libraries built by cargo and loaded by path, including the
//! broken ones. Every refusal names the file, the plugin and both versions where it can.

mod common;

use shiftscope_abi::{ABI_MAJOR, ABI_MINOR};
use shiftscope_host::{
    LoadError, Origin, Plugin, PluginKindName, PluginSource, Registry, SearchPath,
};
use shiftscope_sdk::{ErrorKind, ModelAdapter, Pooling, Tensor};

#[test]
fn example_plugins_load_with_their_identity() {
    let path = common::library("example_shift");
    let plugin = Plugin::load(&path, Origin::CommandLine).unwrap();
    let info = plugin.info();
    assert_eq!(info.name, "example-shift");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.kind, PluginKindName::DatasetSource);
    assert_eq!((info.abi_major, info.abi_minor), (ABI_MAJOR, ABI_MINOR));
    assert!(info.build_info.starts_with("rustc "), "{}", info.build_info);
    assert_eq!(
        info.source,
        PluginSource::Library {
            path: path.clone(),
            origin: Origin::CommandLine
        }
    );
    let model = Plugin::load(&common::library("example_model"), Origin::Environment).unwrap();
    assert_eq!(model.info().kind, PluginKindName::ModelAdapter);
    // A kind mismatch is an error, not a crash.
    let e = plugin.create_model("").err().unwrap();
    assert!(
        e.to_string()
            .contains("is a dataset source, not a model adapter"),
        "{e}"
    );
}

#[test]
fn another_abi_major_is_refused_naming_file_plugin_and_both_versions() {
    let path = common::library("fixture_wrong_abi");
    let error = Plugin::load(&path, Origin::CommandLine).unwrap_err();
    assert!(matches!(error, LoadError::AbiMismatch { .. }), "{error:?}");
    let message = error.to_string();
    for needle in [
        path.display().to_string(),
        "plugin 'fixture-future-abi' 9.1.0".to_owned(),
        format!("plugin ABI {}.3", ABI_MAJOR + 1),
        format!("speaks plugin ABI {ABI_MAJOR}.{ABI_MINOR}"),
    ] {
        assert!(
            message.contains(&needle),
            "'{needle}' missing from: {message}"
        );
    }
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let path = common::library("fixture_no_entry");
    let error = Plugin::load(&path, Origin::CommandLine).unwrap_err();
    assert!(matches!(error, LoadError::NoEntry { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("exports no `shiftscope_plugin_entry` symbol"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_no_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(format!("libfake{}", std::env::consts::DLL_SUFFIX));
    std::fs::write(&path, b"this is not an ELF file").unwrap();
    let error = Plugin::load(&path, Origin::CommandLine).unwrap_err();
    assert!(matches!(error, LoadError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn a_panicking_get_becomes_an_error_and_the_host_keeps_running() {
    let path = common::library("fixture_panicking_source");
    let plugin = Plugin::load(&path, Origin::CommandLine).unwrap();
    let source = plugin.create_dataset_source("").unwrap();
    let dataset = source.open("panicking/id").unwrap();
    let error = dataset.get(3).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Panic);
    let message = error.to_string();
    for needle in [
        "panicked: fixture: sample 3 is cursed",
        "plugin 'fixture-panicking' 0.0.1",
        &path.display().to_string(),
        "get(3)",
    ] {
        assert!(
            message.contains(needle),
            "'{needle}' missing from: {message}"
        );
    }
    // The plugin and the host both carry on.
    for i in [0, 2, 4, 7] {
        assert_eq!(dataset.get(i).unwrap().pixels, vec![i as u8; 12]);
    }
    assert!(dataset.get(3).is_err());
    assert_eq!(source.outstanding_outputs(), Some(0));
}

#[test]
fn a_tensor_of_the_wrong_shape_is_rejected() {
    let path = common::library("fixture_wrong_shape_model");
    let plugin = Plugin::load(&path, Origin::CommandLine).unwrap();
    let mut model = plugin.create_model("").unwrap();
    let batch = Tensor::zeros(vec![2, 3, 4, 4]).unwrap();
    let error = model
        .run(batch.view(), &["fc".to_owned()], Pooling::default())
        .unwrap_err();
    let message = error.to_string();
    for needle in [
        "plugin 'fixture-wrong-shape' 0.0.1",
        &path.display().to_string(),
        "run: returned layer 'fc' of shape [2, 7], expected [2, 5]",
    ] {
        assert!(
            message.contains(needle),
            "'{needle}' missing from: {message}"
        );
    }
    // Asking only for the logits works: the host stays usable.
    let ok = model.run(batch.view(), &[], Pooling::default()).unwrap();
    assert_eq!(ok.logits.shape(), [2, 2]);
}

#[test]
fn the_registry_loads_folders_and_reports_each_refusal() {
    let good = common::folder_with(&["example_shift", "fixture_panicking_source"]);
    let bad = common::folder_with(&["fixture_wrong_abi", "fixture_no_entry"]);
    let again = common::folder_with(&["example_shift"]);
    let search = SearchPath::from_parts(
        &[good.path().to_path_buf(), bad.path().to_path_buf()],
        Some(again.path().as_os_str()),
        None,
        None,
    );
    let mut registry = Registry::new();
    registry
        .add(Plugin::builtin_model::<example_model::ExampleModel>())
        .unwrap();
    let added = registry.load_search_path(&search);
    assert_eq!(added, 2);
    let names: Vec<&str> = registry
        .plugins()
        .iter()
        .map(|p| p.info().name.as_str())
        .collect();
    assert_eq!(
        names,
        ["example-model", "example-shift", "fixture-panicking"]
    );
    let failures: Vec<String> = registry
        .failures()
        .iter()
        .map(|f| f.error.to_string())
        .collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures.iter().any(|f| f.contains("fixture-future-abi")));
    assert!(
        failures
            .iter()
            .any(|f| f.contains("no `shiftscope_plugin_entry`"))
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("already taken by plugin 'example-shift'")),
        "{failures:#?}"
    );
    // Registry lookups by kind.
    assert!(registry.create_dataset_source("example-shift", "").is_ok());
    let e = registry.create_model("example-shift", "").err().unwrap();
    assert!(e.to_string().contains("not a model adapter"), "{e}");
    let e = registry.create_model("nope", "").err().unwrap();
    assert!(e.to_string().contains("known: example-model"), "{e}");
}

#[test]
fn instances_outlive_their_registry_because_libraries_are_never_unloaded() {
    let dataset = {
        let plugin = Plugin::load(&common::library("example_shift"), Origin::CommandLine).unwrap();
        let source = plugin.create_dataset_source("(len: 4)").unwrap();
        source.open("example-shift/id").unwrap()
    };
    assert_eq!(dataset.get(1).unwrap().label, 1);
}

#[test]
fn imagenet_reads_trees_through_the_library_and_its_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("val");
    let (wnids, _) = imagenet::imagenet_classes().unwrap();
    imagenet::testdata::jpeg_tree(&root, &[&wnids[3]], 1).unwrap();
    std::fs::write(root.join(&wnids[3]).join("zz.JPEG"), b"").unwrap();
    let plugin = Plugin::load(&common::library("imagenet"), Origin::CommandLine).unwrap();
    assert_eq!(plugin.info().name, "imagenet");
    assert_eq!(plugin.info().kind, PluginKindName::DatasetSource);
    let config = format!(
        "(roots: {{\"imagenet/val\": {:?}}})",
        root.display().to_string()
    );
    let source = plugin.create_dataset_source(&config).unwrap();
    let d = source.open("imagenet/val").unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.get(0).unwrap().label, 3);
    let e = d.get(1).unwrap_err();
    assert!(
        e.to_string().contains("zz.JPEG: empty file (0 bytes)"),
        "{e}"
    );
    // A bad config is an error from the library, not a crash.
    let e = plugin.create_dataset_source("(roots: 3)").err().unwrap();
    assert!(e.to_string().contains("imagenet config"), "{e}");
    drop(d);
    assert_eq!(source.outstanding_outputs(), Some(0));
}
