//! Loading a plugin library and wrapping its function table back into the safe traits.

use std::path::Path;
use std::sync::Arc;

use libloading::Library;
use shiftscope_abi::{
    ABI_MAJOR, ABI_MINOR, ActivationSetView, CatalogView, DatasetHandle, DatasetSourceTable,
    DecisionLayerView, ENTRY_SYMBOL_NUL, EntryFn, GradientView, Instance,
    MODEL_ADAPTER_TABLE_1_0_SIZE, ModelAdapterTable, Output, PluginHeader, PluginKind, SampleView,
    Status, StrListView, StrView,
};
use shiftscope_sdk::ffi::{
    gradient_request_view, pooling_to_view, read_activation_set, read_catalog, read_decision_layer,
    read_description, read_gradient, read_sample, read_str_list, shape_to_i64, tensor_view,
};
use shiftscope_sdk::{
    ActivationSet, Dataset, DatasetInfo, DatasetSource, DecisionLayer, ErrorKind, Gradient,
    GradientRequest, ModelAdapter, ModelDescription, PluginError, Pooling, Sample, TensorRef,
};

use crate::{LoadError, Origin, PluginInfo, PluginKindName, PluginSource};

/// A checked function table of a loaded library.
pub(crate) enum LoadedTable {
    Model(ModelAdapterTable),
    Source(DatasetSourceTable),
}

/// The bytes of the header every major shares: up to and including `build_info`.
const FROZEN_PREFIX: usize = std::mem::offset_of!(PluginHeader, build_info) + size_of::<StrView>();

/// Longest name, version or build string accepted from a header.
const MAX_HEADER_STRING: usize = 4096;

pub(crate) fn load(path: &Path, origin: Origin) -> Result<(PluginInfo, LoadedTable), LoadError> {
    // SAFETY: loading a library runs its initialisers. That is the nature of native plugins;
    // only files from the documented search path or named by the user get here.
    let library = unsafe { Library::new(path) }.map_err(|e| LoadError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Never unloaded: plugin code may have left thread-locals, threads or callbacks behind.
    let library: &'static Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry: EntryFn = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL_NUL) }
        .map(|symbol| *symbol)
        .map_err(|_| LoadError::NoEntry {
            path: path.to_path_buf(),
        })?;
    // SAFETY: the ABI's entry; the SDK's implementation never unwinds.
    let header_ptr = unsafe { entry(ABI_MAJOR) };
    if header_ptr.is_null() {
        return Err(LoadError::Refused {
            path: path.to_path_buf(),
            host_major: ABI_MAJOR,
        });
    }
    let bad_header = |problem: String| LoadError::BadHeader {
        path: path.to_path_buf(),
        problem,
    };
    if !header_ptr.is_aligned() {
        return Err(bad_header("misaligned header pointer".to_owned()));
    }
    // SAFETY: the entry returned a non-null, aligned pointer to its static header. Only the
    // frozen prefix is read until the size and major are known.
    let (abi_major, abi_minor, header_size, kind) = unsafe {
        (
            (*header_ptr).abi_major,
            (*header_ptr).abi_minor,
            (*header_ptr).header_size,
            (*header_ptr).kind,
        )
    };
    if (header_size as usize) < FROZEN_PREFIX {
        return Err(bad_header(format!(
            "header_size {header_size} is smaller than the {FROZEN_PREFIX}-byte prefix every plugin has"
        )));
    }
    let read = |view: StrView, what: &str| -> Result<String, LoadError> {
        if view.len > MAX_HEADER_STRING {
            return Err(bad_header(format!("{what} is {} bytes long", view.len)));
        }
        // SAFETY: a header string of bounded length from the plugin's static data.
        unsafe { view.to_str() }
            .map(str::to_owned)
            .map_err(|e| bad_header(format!("{what}: {e}")))
    };
    // SAFETY: within the frozen prefix, checked above.
    let (name_view, version_view, build_view) = unsafe {
        (
            (*header_ptr).name,
            (*header_ptr).version,
            (*header_ptr).build_info,
        )
    };
    let name = read(name_view, "name")?;
    let version = read(version_view, "version")?;
    let build_info = read(build_view, "build info")?;
    if abi_major != ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            path: path.to_path_buf(),
            name,
            version,
            plugin_major: abi_major,
            plugin_minor: abi_minor,
            host_major: ABI_MAJOR,
            host_minor: ABI_MINOR,
        });
    }
    let bad_plugin = |problem: String| LoadError::BadPlugin {
        path: path.to_path_buf(),
        name: name.clone(),
        version: version.clone(),
        abi: format!("{abi_major}.{abi_minor}"),
        problem,
    };
    if name.is_empty() {
        return Err(bad_plugin("the plugin has an empty name".to_owned()));
    }
    if (header_size as usize) < size_of::<PluginHeader>() {
        return Err(bad_plugin(format!(
            "header of {header_size} bytes is shorter than the {} this host reads",
            size_of::<PluginHeader>()
        )));
    }
    // SAFETY: the full header is present (size checked).
    let table_ptr = unsafe { (*header_ptr).table };
    let (kind_name, table) = match kind {
        PluginKind::MODEL_ADAPTER => {
            // SAFETY: the header says the table is a model-adapter table.
            let table = unsafe {
                read_table::<ModelAdapterTable>(
                    table_ptr,
                    "model-adapter",
                    MODEL_ADAPTER_TABLE_1_0_SIZE,
                )
            };
            (
                PluginKindName::ModelAdapter,
                LoadedTable::Model(table.map_err(&bad_plugin)?),
            )
        }
        PluginKind::DATASET_SOURCE => {
            // SAFETY: the header says the table is a dataset-source table.
            let table = unsafe {
                read_table::<DatasetSourceTable>(
                    table_ptr,
                    "dataset-source",
                    size_of::<DatasetSourceTable>(),
                )
            };
            (
                PluginKindName::DatasetSource,
                LoadedTable::Source(table.map_err(&bad_plugin)?),
            )
        }
        other => return Err(bad_plugin(format!("unknown plugin kind code {}", other.0))),
    };
    let info = PluginInfo {
        kind: kind_name,
        name,
        version,
        abi_major,
        abi_minor,
        build_info,
        source: PluginSource::Library {
            path: path.to_path_buf(),
            origin,
        },
    };
    Ok((info, table))
}

/// Copies a function table after checking its size and that none of its first `required`
/// bytes' entries is null. Slots past `required` were appended in later minors: they are
/// `Option<fn>`, read when the plugin's table is long enough and `None` (zero) otherwise.
///
/// # Safety
/// `ptr` must be null or point to a table of kind `T` that starts with its `size: usize`,
/// whose fields past `required` are all nullable function pointers.
unsafe fn read_table<T: Copy>(
    ptr: *const std::ffi::c_void,
    what: &str,
    required: usize,
) -> Result<T, String> {
    if ptr.is_null() {
        return Err(format!("the {what} table pointer is null"));
    }
    if !ptr.cast::<usize>().is_aligned() {
        return Err(format!("the {what} table pointer is misaligned"));
    }
    // SAFETY: every table starts with its size.
    let size = unsafe { *ptr.cast::<usize>() };
    if size < required {
        return Err(format!(
            "its {what} table is {size} bytes, but this host (plugin ABI {ABI_MAJOR}.{ABI_MINOR}) \
             needs {required}: the plugin lacks functions this host calls"
        ));
    }
    // Every table is `size` followed by function pointers, all word-sized: check none of the
    // required ones is null before a non-nullable fn type is made from it.
    let words = required / size_of::<usize>();
    // SAFETY: the table is at least `required` bytes (checked) and word-aligned.
    let slots = unsafe { std::slice::from_raw_parts(ptr.cast::<usize>(), words) };
    if let Some(i) = slots.iter().skip(1).position(|&w| w == 0) {
        return Err(format!("entry {} of its {what} table is null", i + 1));
    }
    let copied = size.min(size_of::<T>());
    let mut table = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the plugin's table holds `copied` readable bytes; the destination is `T`-sized.
    // The bytes not copied stay zero, which is `None` for the appended `Option<fn>` slots,
    // and every required slot was checked non-null.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), table.as_mut_ptr().cast::<u8>(), copied);
        Ok(table.assume_init())
    }
}

/// Reads the thread's last error from the plugin and builds the error for `status`.
fn plugin_error(
    last_error: unsafe extern "C" fn(*const Instance) -> StrView,
    instance: *const Instance,
    status: Status,
) -> PluginError {
    // SAFETY: the table's own function; the view is valid until the next call on this thread
    // and copied at once.
    let message = unsafe { last_error(instance).to_str() }.map_or_else(
        |_| "(the plugin's error message is not UTF-8)".to_owned(),
        str::to_owned,
    );
    let message = if message.is_empty() {
        format!("failed with status {} and no message", status.0)
    } else {
        message
    };
    PluginError::new(ErrorKind::from_status(status), message)
}

/// Releases a plugin output when dropped, also on early returns.
struct OutputGuard {
    release: unsafe extern "C" fn(*mut Instance, *mut Output),
    instance: *mut Instance,
    handle: *mut Output,
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: a handle this instance produced, released once.
            unsafe { (self.release)(self.instance, self.handle) };
        }
    }
}

fn null_view(call: &str) -> PluginError {
    PluginError::failed(format!("{call} reported success but returned no output"))
}

/// Calls a table's `create`, turning failure into the plugin's error.
fn create_instance(
    create: unsafe extern "C" fn(StrView, *mut *mut Instance) -> Status,
    last_error: unsafe extern "C" fn(*const Instance) -> StrView,
    config: &str,
) -> Result<*mut Instance, PluginError> {
    let mut instance = std::ptr::null_mut();
    // SAFETY: the config is borrowed for the call; `instance` is a writable slot.
    let status = unsafe { create(StrView::new(config), &raw mut instance) };
    if status != Status::OK {
        return Err(plugin_error(last_error, std::ptr::null(), status));
    }
    if instance.is_null() {
        return Err(null_view("create"));
    }
    Ok(instance)
}

/// One live plugin instance and the two table functions every call needs afterwards.
#[derive(Clone, Copy)]
struct Boundary {
    instance: *mut Instance,
    release: unsafe extern "C" fn(*mut Instance, *mut Output),
    last_error: unsafe extern "C" fn(*const Instance) -> StrView,
}

impl Boundary {
    fn fail(&self, status: Status) -> PluginError {
        plugin_error(self.last_error, self.instance, status)
    }

    /// Calls a function that hands out a view behind an output handle, reads the view
    /// with `read`, and releases the output on every path.
    fn fetch<V, R>(
        &self,
        call: &str,
        invoke: impl FnOnce(*mut *const V, *mut *mut Output) -> Status,
        read: impl FnOnce(&V) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let mut out: *const V = std::ptr::null();
        let mut handle = std::ptr::null_mut();
        let status = invoke(&raw mut out, &raw mut handle);
        let _release = OutputGuard {
            release: self.release,
            instance: self.instance,
            handle,
        };
        if status != Status::OK {
            return Err(self.fail(status));
        }
        // SAFETY: on success the plugin returned a view valid until the release above.
        let view = unsafe { out.as_ref() }.ok_or_else(|| null_view(call))?;
        read(view).map_err(|e| e.context(format!("{call} output")))
    }
}

/// A model adapter from a loaded library.
pub(crate) struct DynModelAdapter {
    table: ModelAdapterTable,
    boundary: Boundary,
    _info: Arc<PluginInfo>,
}

// SAFETY: the ABI lets a model adapter instance move between threads; `&mut self` on every
// call keeps it to one thread at a time.
unsafe impl Send for DynModelAdapter {}

impl DynModelAdapter {
    pub(crate) fn create(
        table: ModelAdapterTable,
        info: Arc<PluginInfo>,
        config: &str,
    ) -> Result<DynModelAdapter, PluginError> {
        let instance = create_instance(table.create, table.last_error, config)?;
        Ok(DynModelAdapter {
            boundary: Boundary {
                instance,
                release: table.release,
                last_error: table.last_error,
            },
            table,
            _info: info,
        })
    }

    /// `run` or `run_maps`: lends the tensor and the layer names, reads the activations.
    fn activation_call(
        &mut self,
        call: &str,
        tensor: TensorRef<'_>,
        layers: &[String],
        invoke: impl FnOnce(
            *const shiftscope_abi::TensorView,
            *const StrView,
            usize,
            *mut *const ActivationSetView,
            *mut *mut Output,
        ) -> Status,
    ) -> Result<ActivationSet, PluginError> {
        let shape = shape_to_i64(tensor.shape())?;
        let view = tensor_view(&shape, tensor.data());
        let names: Vec<StrView> = layers.iter().map(|l| StrView::new(l)).collect();
        self.boundary.fetch(
            call,
            |out, handle| invoke(&raw const view, names.as_ptr(), names.len(), out, handle),
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |set| unsafe { read_activation_set(set) },
        )
    }
}

impl Drop for DynModelAdapter {
    fn drop(&mut self) {
        // SAFETY: made by this table's create, destroyed once; outputs were released.
        unsafe { (self.table.destroy)(self.boundary.instance) };
    }
}

impl ModelAdapter for DynModelAdapter {
    fn describe(&mut self) -> Result<ModelDescription, PluginError> {
        let (describe, instance) = (self.table.describe, self.boundary.instance);
        self.boundary.fetch(
            "describe",
            // SAFETY: live instance, writable out-slots.
            |out, handle| unsafe { describe(instance, out, handle) },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view| unsafe { read_description(view) },
        )
    }

    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        pooling: Pooling,
    ) -> Result<ActivationSet, PluginError> {
        let pooling = pooling_to_view(pooling);
        let (run, instance) = (self.table.run, self.boundary.instance);
        self.activation_call("run", batch, layers, |batch, names, n, out, handle| {
            // SAFETY: live instance; inputs borrowed for the call; writable out-slots.
            unsafe { run(instance, batch, names, n, pooling, out, handle) }
        })
    }

    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        let (run_maps, instance) = (self.table.run_maps, self.boundary.instance);
        self.activation_call("run_maps", image, layers, |image, names, n, out, handle| {
            // SAFETY: live instance; inputs borrowed for the call; writable out-slots.
            unsafe { run_maps(instance, image, names, n, out, handle) }
        })
    }

    fn decision_layer(&mut self) -> Result<DecisionLayer, PluginError> {
        let Some(decision_layer) = self.table.decision_layer else {
            return Err(PluginError::unsupported(
                "the plugin does not provide the decision layer (built before plugin ABI 1.1)",
            ));
        };
        let instance = self.boundary.instance;
        self.boundary.fetch(
            "decision_layer",
            // SAFETY: live instance, writable out-slots.
            |out, handle| unsafe { decision_layer(instance, out, handle) },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view: &DecisionLayerView| unsafe { read_decision_layer(view) },
        )
    }

    fn export_with_decision_layer(
        &mut self,
        layer: &DecisionLayer,
        path: &Path,
        overwrite: bool,
    ) -> Result<(), PluginError> {
        let Some(export) = self.table.export_with_decision_layer else {
            return Err(PluginError::unsupported(
                "the plugin cannot export an edited decision layer (built before plugin ABI 1.1)",
            ));
        };
        layer.dims()?;
        let path = path.to_str().ok_or_else(|| {
            PluginError::invalid_argument(format!("{}: path is not UTF-8", path.display()))
        })?;
        let w_shape = shape_to_i64(layer.weights.shape())?;
        let b_shape = shape_to_i64(layer.bias.shape())?;
        let weights = tensor_view(&w_shape, layer.weights.data());
        let bias = tensor_view(&b_shape, layer.bias.data());
        // SAFETY: live instance; the tensors and the path are borrowed for the call.
        let status = unsafe {
            export(
                self.boundary.instance,
                &raw const weights,
                &raw const bias,
                StrView::new(path),
                u32::from(overwrite),
            )
        };
        if status != Status::OK {
            return Err(self.boundary.fail(status));
        }
        Ok(())
    }

    fn gradient(
        &mut self,
        batch: TensorRef<'_>,
        request: &GradientRequest<'_>,
    ) -> Result<Gradient, PluginError> {
        let Some(gradient) = self.table.gradient else {
            return Err(PluginError::unsupported(
                "no gradients: the plugin provides no `gradient` (built before plugin ABI 1.3)",
            ));
        };
        let shape = shape_to_i64(batch.shape())?;
        let batch = tensor_view(&shape, batch.data());
        let request = gradient_request_view(request)?;
        let instance = self.boundary.instance;
        self.boundary.fetch(
            "gradient",
            // SAFETY: live instance; the batch and the request are borrowed for the call.
            |out, handle| unsafe {
                gradient(
                    instance,
                    &raw const batch,
                    &raw const request.view,
                    out,
                    handle,
                )
            },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view: &GradientView| unsafe { read_gradient(view) },
        )
    }

    fn outstanding_outputs(&self) -> Option<u64> {
        // SAFETY: live instance.
        Some(unsafe { (self.table.outstanding)(self.boundary.instance) })
    }
}

/// The instance of a loaded dataset source, shared by the source and its open datasets.
struct SourceInstance {
    table: DatasetSourceTable,
    boundary: Boundary,
    _info: Arc<PluginInfo>,
}

// SAFETY: the ABI requires dataset sources and their datasets to be callable from several
// threads at once.
unsafe impl Send for SourceInstance {}
// SAFETY: as above.
unsafe impl Sync for SourceInstance {}

impl Drop for SourceInstance {
    fn drop(&mut self) {
        // SAFETY: made by this table's create, destroyed once, after every dataset closed
        // (each holds an `Arc` of this).
        unsafe { (self.table.destroy)(self.boundary.instance) };
    }
}

/// A dataset source from a loaded library.
pub(crate) struct DynDatasetSource {
    shared: Arc<SourceInstance>,
}

impl DynDatasetSource {
    pub(crate) fn create(
        table: DatasetSourceTable,
        info: Arc<PluginInfo>,
        config: &str,
    ) -> Result<DynDatasetSource, PluginError> {
        let instance = create_instance(table.create, table.last_error, config)?;
        Ok(DynDatasetSource {
            shared: Arc::new(SourceInstance {
                boundary: Boundary {
                    instance,
                    release: table.release,
                    last_error: table.last_error,
                },
                table,
                _info: info,
            }),
        })
    }
}

impl DatasetSource for DynDatasetSource {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        let s = &self.shared;
        let (catalog, instance) = (s.table.catalog, s.boundary.instance);
        s.boundary.fetch(
            "catalog",
            // SAFETY: live instance, writable out-slots.
            |out: *mut *const CatalogView, handle| unsafe { catalog(instance, out, handle) },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view| unsafe { read_catalog(view) },
        )
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        let s = &self.shared;
        let instance = s.boundary.instance;
        let mut handle: *mut DatasetHandle = std::ptr::null_mut();
        // SAFETY: live instance; the name is borrowed for the call.
        let status = unsafe { (s.table.open)(instance, StrView::new(name), &raw mut handle) };
        if status != Status::OK {
            return Err(s.boundary.fail(status));
        }
        if handle.is_null() {
            return Err(null_view("open"));
        }
        // From here on the dataset is closed on every path, by `DynDataset`'s drop.
        let mut dataset = DynDataset {
            shared: Arc::clone(s),
            handle,
            len: 0,
            classes: Vec::new(),
        };
        let mut len = 0u64;
        // SAFETY: live instance and dataset, writable slot.
        let status = unsafe { (s.table.len)(instance, handle, &raw mut len) };
        if status != Status::OK {
            return Err(s.boundary.fail(status).context("len"));
        }
        dataset.len = usize::try_from(len)
            .map_err(|_| PluginError::failed(format!("len {len} does not fit this machine")))?;
        let classes = s.table.classes;
        dataset.classes = s.boundary.fetch(
            "classes",
            // SAFETY: live instance and dataset, writable out-slots.
            |out: *mut *const StrListView, list| unsafe { classes(instance, handle, out, list) },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view| unsafe { read_str_list(view, "class names") },
        )?;
        Ok(Box::new(dataset))
    }

    fn outstanding_outputs(&self) -> Option<u64> {
        // SAFETY: live instance.
        Some(unsafe { (self.shared.table.outstanding)(self.shared.boundary.instance) })
    }
}

/// An open dataset of a loaded library; length and class names read once at open.
struct DynDataset {
    shared: Arc<SourceInstance>,
    handle: *mut DatasetHandle,
    len: usize,
    classes: Vec<String>,
}

// SAFETY: the ABI requires open datasets to be callable from several threads at once.
unsafe impl Send for DynDataset {}
// SAFETY: as above.
unsafe impl Sync for DynDataset {}

impl Drop for DynDataset {
    fn drop(&mut self) {
        // SAFETY: opened by this instance, closed once.
        unsafe { (self.shared.table.close)(self.shared.boundary.instance, self.handle) };
    }
}

impl Dataset for DynDataset {
    fn len(&self) -> usize {
        self.len
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        let s = &self.shared;
        let (get, instance, dataset) = (s.table.get, s.boundary.instance, self.handle);
        s.boundary.fetch(
            "get",
            // SAFETY: live instance and dataset, writable out-slots.
            |out: *mut *const SampleView, handle| unsafe {
                get(instance, dataset, index as u64, out, handle)
            },
            // SAFETY: a view the plugin returned; every length is checked by the reader.
            |view| unsafe { read_sample(view) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftscope_sdk::{ModelAdapterPlugin, Tensor};

    /// A model whose table is built by the sdk; its decision layer is fixed.
    struct Tiny;

    impl ModelAdapter for Tiny {
        fn describe(&mut self) -> Result<ModelDescription, PluginError> {
            Err(PluginError::unsupported("not needed here"))
        }

        fn run(
            &mut self,
            _: TensorRef<'_>,
            _: &[String],
            _: Pooling,
        ) -> Result<ActivationSet, PluginError> {
            Err(PluginError::unsupported("not needed here"))
        }

        fn run_maps(
            &mut self,
            _: TensorRef<'_>,
            _: &[String],
        ) -> Result<ActivationSet, PluginError> {
            Err(PluginError::unsupported("not needed here"))
        }

        fn decision_layer(&mut self) -> Result<DecisionLayer, PluginError> {
            Ok(DecisionLayer {
                input: "fc1".into(),
                op: "Gemm".into(),
                weights: Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?,
                bias: Tensor::new(vec![2], vec![0.5, -0.5])?,
            })
        }

        fn gradient(
            &mut self,
            batch: TensorRef<'_>,
            request: &GradientRequest<'_>,
        ) -> Result<Gradient, PluginError> {
            // The weights as the objective, the batch doubled as its gradient, and each map
            // named back: enough to see every field cross the boundary.
            Ok(Gradient {
                objective: Tensor::new(vec![batch.shape()[0]], request.weights.data().to_vec())?,
                input: Tensor::new(
                    batch.shape().to_vec(),
                    batch.data().iter().map(|x| 2.0 * x).collect(),
                )?,
                maps: request
                    .maps
                    .iter()
                    .map(|name| {
                        Ok(shiftscope_sdk::NamedTensor {
                            name: format!("{name}/{}", request.layer),
                            tensor: Tensor::new(vec![1, 1], vec![1.0])?,
                        })
                    })
                    .collect::<Result<_, PluginError>>()?,
            })
        }
    }

    impl ModelAdapterPlugin for Tiny {
        const NAME: &'static str = "tiny";
        const VERSION: &'static str = "0.0.1";
        fn create(_: &str) -> Result<Tiny, PluginError> {
            Ok(Tiny)
        }
    }

    fn info() -> Arc<PluginInfo> {
        Arc::new(PluginInfo {
            kind: PluginKindName::ModelAdapter,
            name: "tiny".into(),
            version: "0.0.1".into(),
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            build_info: String::new(),
            source: PluginSource::Builtin,
        })
    }

    fn read(table: &ModelAdapterTable) -> Result<ModelAdapterTable, String> {
        // SAFETY: a real table whose `size` is at most its true size.
        unsafe {
            read_table::<ModelAdapterTable>(
                (table as *const ModelAdapterTable).cast(),
                "model-adapter",
                MODEL_ADAPTER_TABLE_1_0_SIZE,
            )
        }
    }

    #[test]
    fn a_1_0_table_loads_and_reports_the_decision_layer_as_not_provided() {
        let full = shiftscope_sdk::ffi::model_table::<Tiny>();
        // The 1.1 table: the decision layer crosses the boundary intact.
        let table = read(&full).unwrap();
        assert!(table.decision_layer.is_some() && table.export_with_decision_layer.is_some());
        let mut model = DynModelAdapter::create(table, info(), "").unwrap();
        let layer = model.decision_layer().unwrap();
        assert_eq!(layer.input, "fc1");
        assert_eq!(layer.weights.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(layer.bias.data(), &[0.5, -0.5]);
        assert_eq!(model.outstanding_outputs(), Some(0));
        // Tiny implements no export: the default says so through the ABI.
        let e = model
            .export_with_decision_layer(&layer, Path::new("/nonexistent/x.onnx"), false)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        // The same table as a 1.0 plugin builds it: shorter, without the 1.1 slots.
        let mut old = full;
        old.size = MODEL_ADAPTER_TABLE_1_0_SIZE;
        let table = read(&old).unwrap();
        assert!(table.decision_layer.is_none() && table.export_with_decision_layer.is_none());
        let mut model = DynModelAdapter::create(table, info(), "").unwrap();
        let e = model.decision_layer().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("before plugin ABI 1.1"), "{e}");
        // A 1.2 table: everything but the gradient.
        let mut one_two = full;
        one_two.size = std::mem::offset_of!(ModelAdapterTable, gradient);
        let table = read(&one_two).unwrap();
        assert!(table.decision_layer.is_some() && table.gradient.is_none());
        let mut model = DynModelAdapter::create(table, info(), "").unwrap();
        let batch = Tensor::new(vec![1, 1, 1, 2], vec![1.0, -3.0]).unwrap();
        let w = Tensor::new(vec![1], vec![0.25]).unwrap();
        let request = GradientRequest {
            layer: "fc1",
            objective: shiftscope_sdk::Objective::SquaredNorm,
            weights: w.view(),
            maps: &["conv1".to_owned(), "fc1".to_owned()],
        };
        let e = model.gradient(batch.view(), &request).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("no gradients"), "{e}");
        assert!(e.to_string().contains("before plugin ABI 1.3"), "{e}");
        // The 1.3 table: the request and the result cross the boundary intact.
        let mut model = DynModelAdapter::create(read(&full).unwrap(), info(), "").unwrap();
        let g = model.gradient(batch.view(), &request).unwrap();
        assert_eq!(g.objective.data(), &[0.25]);
        assert_eq!(
            (g.input.shape(), g.input.data()),
            (&[1, 1, 1, 2][..], &[2.0, -6.0][..])
        );
        let names: Vec<&str> = g.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["conv1/fc1", "fc1/fc1"]);
        assert_eq!(model.outstanding_outputs(), Some(0));
        // Shorter than 1.0 is refused.
        let mut short = full;
        short.size = MODEL_ADAPTER_TABLE_1_0_SIZE - size_of::<usize>();
        assert!(read(&short).unwrap_err().contains("lacks functions"));
    }
}
