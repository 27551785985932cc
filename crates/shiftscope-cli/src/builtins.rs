//! The first-party plugins linked into the binary, so `shiftscope` works without a separate
//! plugin build. Each is also built as a dynamic library from its own crate.

use shiftscope_host::{Plugin, Registry, SearchPath};

/// Every built-in plugin.
pub(crate) fn builtin_plugins() -> Vec<Plugin> {
    vec![
        Plugin::builtin_dataset::<cifar10::Cifar10>(),
        Plugin::builtin_dataset::<colored_mnist::ColoredMnist>(),
        Plugin::builtin_dataset::<example_shift::ExampleShift>(),
        Plugin::builtin_dataset::<imagenet::ImageNet>(),
        Plugin::builtin_model::<example_model::ExampleModel>(),
        Plugin::builtin_model::<shiftscope_onnx::OnnxModel>(),
    ]
}

/// The registry of a run: built-ins first, then the libraries on the search path.
pub(crate) fn registry(search: &SearchPath) -> anyhow::Result<Registry> {
    let mut registry = Registry::new();
    for plugin in builtin_plugins() {
        registry.add(plugin)?;
    }
    registry.load_search_path(search);
    Ok(registry)
}
