//! The plugin contract's binary layer: every `#[repr(C)]` type that crosses between the
//! shiftscope host and a plugin library, the ABI version numbers, status codes and the
//! entry symbol. It owns nothing else: no behaviour, no allocation, no dependencies.
//!
//! Plugin authors never use this crate directly; they write safe trait impls against
//! `shiftscope-sdk`, whose export macros generate the glue. The host (`shiftscope-host`)
//! reads these types back and wraps them into the same safe traits.
//!
//! # The handshake
//!
//! A plugin library exports one symbol, [`ENTRY_SYMBOL`], of type [`EntryFn`]. The host calls
//! it with its own [`ABI_MAJOR`]. The plugin returns a pointer to a static [`PluginHeader`]
//! (or null to refuse). The header names the plugin and points to the function table of its
//! [`PluginKind`]: [`ModelAdapterTable`] or [`DatasetSourceTable`].
//!
//! # What may change, and when
//!
//! Within one major version (`ABI_MAJOR`), changes are append-only:
//! - new fields are appended at the end of [`PluginHeader`], of a function table, or of a
//!   view that starts with a `size` field ([`ModelDescriptionView`], [`ActivationSetView`],
//!   [`CatalogView`], [`SampleView`]); readers check `size` / `header_size` before touching an
//!   appended field, so an older plugin keeps working with a newer host and the reverse;
//! - new constant values may be added to [`Status`], [`DType`], [`LayerKind`] and the pooling
//!   codes; a reader treats an unknown value as an error, never as undefined behaviour (that
//!   is why they are `u32`/`i32` newtypes and not Rust enums);
//! - function-table slots appended after 1.0 are nullable (`Option<fn>`): a host reads a
//!   table at least as long as its 1.0 form and treats a slot that is null or beyond the
//!   table's `size` as "not provided" (1.1 added the model adapter's `decision_layer` and
//!   `export_with_decision_layer`; 1.3 its `gradient`);
//! - `ABI_MINOR` counts these additions.
//!
//! Everything else is frozen for the major version: the order, types and meaning of existing
//! fields; the layout of array elements ([`InputView`], [`LayerView`], [`NamedTensorView`],
//! [`DatasetEntryView`], [`ParamView`], [`StrView`], [`TensorView`]), which carry no size
//! field (per-element additions go into a new parallel array appended to the parent view);
//! the ownership rules below. Removing or reordering anything is a new major version.
//!
//! The first seven fields of [`PluginHeader`] (up to and including `build_info`) are frozen
//! across *all* majors, so any host can name any plugin and both versions when it refuses it.
//!
//! # Ownership and threads
//!
//! - Inputs (`StrView`, `TensorView`, arrays) are borrowed from the caller for the duration of
//!   the call; a plugin copies what it keeps.
//! - Outputs live in plugin-owned memory behind an [`Output`] handle, valid until the host
//!   passes that handle to the table's `release`. Memory is never freed on the other side.
//! - Every fallible function returns a [`Status`]; after a non-OK status the message is read
//!   with `last_error(instance)` on the same thread, before the next call on that thread.
//! - Every exported body runs inside `catch_unwind`: a panic becomes [`Status::PANIC`] with the
//!   panic message as the last error. A plugin must be built with `panic = "unwind"`.
//! - A model adapter instance is used by one thread at a time (it may move between threads).
//!   A dataset source instance and its open datasets may be called from several threads at
//!   once: `get` is random access so that readers run in parallel.
//! - Libraries are loaded once and never unloaded.

use core::ffi::c_void;
use core::fmt;

/// The major version of this ABI. A host refuses any plugin whose major differs.
pub const ABI_MAJOR: u32 = 1;
/// The minor version: how many append-only additions were made within [`ABI_MAJOR`].
///
/// 1.1: the model adapter's `decision_layer` and `export_with_decision_layer` slots, and the
/// description's per-layer [`ModelDescriptionView::receptive_fields`].
/// 1.2: the description's per-layer [`ModelDescriptionView::layer_aliases`] and its
/// [`ModelDescriptionView::data_files`].
/// 1.3: the model adapter's `gradient` slot ([`GradientRequestView`], [`GradientView`]).
pub const ABI_MINOR: u32 = 3;
/// The size in bytes of [`ModelAdapterTable`] in ABI 1.0: its fields up to `outstanding`.
/// A host accepts a table of at least this size and treats the slots appended since as absent.
pub const MODEL_ADAPTER_TABLE_1_0_SIZE: usize =
    core::mem::offset_of!(ModelAdapterTable, decision_layer);
/// The one symbol a plugin library exports, as it appears in the symbol table.
pub const ENTRY_SYMBOL: &str = "shiftscope_plugin_entry";
/// [`ENTRY_SYMBOL`] with its trailing NUL, as dynamic loaders want it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"shiftscope_plugin_entry\0";

/// `shiftscope_plugin_entry(host_abi_major) -> *const PluginHeader`.
///
/// Returns the plugin's static header, which stays valid for the life of the process, or
/// null when the plugin refuses to serve that host. A plugin built for another major still
/// returns its header, so the host can name it in its refusal; the host reads only the
/// frozen prefix of such a header and never its table.
pub type EntryFn = unsafe extern "C" fn(host_abi_major: u32) -> *const PluginHeader;

/// A borrowed UTF-8 string: pointer and length in bytes, no terminating NUL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StrView {
    /// First byte; may be null only when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl StrView {
    /// The empty string.
    pub const EMPTY: StrView = StrView {
        ptr: core::ptr::null(),
        len: 0,
    };

    /// Borrows `s`; the view is valid as long as `s` is.
    pub const fn new(s: &str) -> StrView {
        StrView {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Reads the view back as `&str`.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unchanged for `'a`.
    pub unsafe fn to_str<'a>(self) -> Result<&'a str, AbiError> {
        if self.len == 0 {
            return Ok("");
        }
        if self.ptr.is_null() {
            return Err(AbiError::NullPointer("string"));
        }
        // SAFETY: non-null, and the caller guarantees `len` readable bytes for 'a.
        let bytes = unsafe { core::slice::from_raw_parts(self.ptr, self.len) };
        core::str::from_utf8(bytes).map_err(|_| AbiError::InvalidUtf8)
    }
}

/// What a reader found wrong with a view that crossed the boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbiError {
    /// A pointer that must not be null was null; names the field.
    NullPointer(&'static str),
    /// A string was not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbiError::NullPointer(what) => write!(f, "null pointer for {what}"),
            AbiError::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
        }
    }
}

impl std::error::Error for AbiError {}

/// Which function table a header points to.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PluginKind(pub u32);

impl PluginKind {
    /// The table is a [`ModelAdapterTable`].
    pub const MODEL_ADAPTER: PluginKind = PluginKind(1);
    /// The table is a [`DatasetSourceTable`].
    pub const DATASET_SOURCE: PluginKind = PluginKind(2);
}

/// Result code of every fallible table function. After a non-OK code, `last_error` tells why.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub i32);

impl Status {
    /// Success.
    pub const OK: Status = Status(0);
    /// Any failure without a more specific code.
    pub const ERROR: Status = Status(1);
    /// An argument was malformed (wrong tensor shape or dtype, null pointer, bad config).
    pub const INVALID_ARGUMENT: Status = Status(2);
    /// An index was past the end.
    pub const OUT_OF_RANGE: Status = Status(3);
    /// A named thing (dataset, layer) does not exist.
    pub const NOT_FOUND: Status = Status(4);
    /// The plugin panicked; `last_error` carries the panic message.
    pub const PANIC: Status = Status(5);
    /// The plugin does not support the request.
    pub const UNSUPPORTED: Status = Status(6);
}

/// Element type of a [`TensorView`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DType(pub u32);

impl DType {
    /// 32-bit IEEE float.
    pub const F32: DType = DType(1);
    /// 16-bit IEEE float.
    pub const F16: DType = DType(2);
    /// Unsigned byte.
    pub const U8: DType = DType(3);
    /// 32-bit signed integer.
    pub const I32: DType = DType(4);
    /// 64-bit signed integer.
    pub const I64: DType = DType(5);

    /// Bytes per element, or `None` for a code this ABI version does not know.
    pub const fn size_bytes(self) -> Option<usize> {
        match self.0 {
            1 | 4 => Some(4),
            2 => Some(2),
            3 => Some(1),
            5 => Some(8),
            _ => None,
        }
    }
}

/// The kind of a recordable layer, which fixes what one neuron is.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerKind(pub u32);

impl LayerKind {
    /// Rank-4 NCHW feature map: a neuron is a channel.
    pub const CONV: LayerKind = LayerKind(1);
    /// Rank-3 B×T×D token sequence: a neuron is a hidden unit.
    pub const TOKENS: LayerKind = LayerKind(2);
    /// Rank-2 B×D: a neuron is a unit.
    pub const DENSE: LayerKind = LayerKind(3);
    /// The classifier output, B×K.
    pub const LOGITS: LayerKind = LayerKind(4);
}

/// How conv maps and token sequences are reduced to one value per neuron.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolingView {
    /// [`PoolingView::CONV_MEAN`] or [`PoolingView::CONV_MAX`].
    pub conv: u32,
    /// [`PoolingView::TOKENS_MEAN`], [`PoolingView::TOKENS_CLS`] or [`PoolingView::TOKENS_MAX`].
    pub tokens: u32,
}

impl PoolingView {
    /// Spatial mean of a conv map.
    pub const CONV_MEAN: u32 = 0;
    /// Spatial max of a conv map.
    pub const CONV_MAX: u32 = 1;
    /// Mean over tokens.
    pub const TOKENS_MEAN: u32 = 0;
    /// Token 0 (the CLS token).
    pub const TOKENS_CLS: u32 = 1;
    /// Max over tokens.
    pub const TOKENS_MAX: u32 = 2;
}

/// A borrowed, CPU-resident, C-contiguous tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TensorView {
    /// Element type.
    pub dtype: DType,
    /// Number of dimensions.
    pub rank: u32,
    /// `rank` dimension sizes.
    pub shape: *const i64,
    /// First element.
    pub data: *const c_void,
    /// Length of `data` in bytes: the product of `shape` times the element size.
    pub byte_len: usize,
}

/// The header a plugin's entry returns. Static for the life of the process.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PluginHeader {
    /// The ABI major the plugin was built against. Frozen across all majors.
    pub abi_major: u32,
    /// The ABI minor the plugin was built against. Frozen across all majors.
    pub abi_minor: u32,
    /// `size_of::<PluginHeader>()` as the plugin was built. Frozen across all majors.
    pub header_size: u32,
    /// Which table `table` points to. Frozen across all majors.
    pub kind: PluginKind,
    /// The plugin's name, e.g. `colored-mnist`. Frozen across all majors.
    pub name: StrView,
    /// The plugin's own version, e.g. `0.3.1`. Frozen across all majors.
    pub version: StrView,
    /// How it was built: compiler version and profile. Frozen across all majors.
    pub build_info: StrView,
    /// The kind's function table: [`ModelAdapterTable`] or [`DatasetSourceTable`].
    pub table: *const c_void,
}

/// Opaque plugin instance, made by `create` and freed by `destroy`.
#[repr(C)]
#[derive(Debug)]
pub struct Instance {
    _private: [u8; 0],
}

/// Opaque plugin-owned output, freed by the table's `release`.
#[repr(C)]
#[derive(Debug)]
pub struct Output {
    _private: [u8; 0],
}

/// Opaque open dataset, made by `open` and freed by `close`.
#[repr(C)]
#[derive(Debug)]
pub struct DatasetHandle {
    _private: [u8; 0],
}

/// One model input.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InputView {
    /// Input name in the model.
    pub name: StrView,
    /// Dimension sizes, `-1` where dynamic (typically the batch axis).
    pub shape: *const i64,
    /// Number of dimensions.
    pub rank: u32,
}

/// One recordable layer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LayerView {
    /// Tensor name; what `run` is asked for.
    pub name: StrView,
    /// The operator that produces it (`Relu`, `Gemm`, ...).
    pub op: StrView,
    /// What a neuron is in this layer.
    pub kind: LayerKind,
    /// Per-image shape (no batch axis), e.g. `[C, H, W]`, `[T, D]`, `[D]`.
    pub shape: *const i64,
    /// Number of dimensions of `shape`.
    pub rank: u32,
    /// Neurons in the layer: channels, hidden units or units.
    pub neurons: u64,
    /// 1 when the layer is in the default selection, else 0.
    pub default_selected: u32,
    /// Why the layer matters, for selectors: `activation`, `block`, `pool`, `norm`,
    /// `features` (the classifier's input), `logits`, or empty.
    pub role: StrView,
}

/// What `describe` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModelDescriptionView {
    /// `size_of::<ModelDescriptionView>()` as the plugin was built.
    pub size: usize,
    /// Model inputs.
    pub inputs: *const InputView,
    /// Number of inputs.
    pub n_inputs: usize,
    /// Candidate layers in network order.
    pub layers: *const LayerView,
    /// Number of layers.
    pub n_layers: usize,
    /// Class names, empty when the model carries none.
    pub class_names: *const StrView,
    /// Number of class names: 0 or `num_classes`.
    pub n_class_names: usize,
    /// Width of the logits.
    pub num_classes: u64,
    /// Lines for people about how the model runs (runtime, device, batching).
    pub notes: *const StrView,
    /// Number of notes.
    pub n_notes: usize,
    /// ABI minor 1: `n_layers` receptive fields parallel to `layers`, or null when the
    /// adapter computes none. Read only when `size` covers this field.
    pub receptive_fields: *const ReceptiveFieldView,
    /// ABI minor 2: `n_layers` lists parallel to `layers`, each the other names a layer is
    /// selected by (the tensor name behind a module path, say), or null when the adapter
    /// gives none. Read only when `size` covers this field.
    pub layer_aliases: *const StrListView,
    /// ABI minor 2: the files besides the model file that the model reads (its weights' side
    /// files), as absolute paths; part of the model's identity. Read only when `size` covers
    /// this field.
    pub data_files: StrListView,
}

/// Where a spatial layer's neurons look in the model input, per axis (height, width): the
/// window of map position `i` along an axis is `offset + i * jump .. + size` input pixels
/// (`offset` is negative where the window starts in padding). An element of the parallel
/// array [`ModelDescriptionView::receptive_fields`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceptiveFieldView {
    /// 1 when the adapter computed the layer's field, else 0 (dense and token layers, or
    /// ops it cannot follow): then the whole image is the field.
    pub known: u32,
    /// Window size in input pixels, height then width.
    pub size: [u32; 2],
    /// Input pixels between neighbouring map positions, height then width.
    pub jump: [u32; 2],
    /// Input coordinate of map position 0's first pixel, height then width.
    pub offset: [i32; 2],
}

/// A tensor with the name of the layer it came from.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NamedTensorView {
    /// Layer name.
    pub name: StrView,
    /// Its values.
    pub tensor: TensorView,
}

/// What `run` and `run_maps` return.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ActivationSetView {
    /// `size_of::<ActivationSetView>()` as the plugin was built.
    pub size: usize,
    /// One tensor per requested layer, in request order.
    pub layers: *const NamedTensorView,
    /// Number of layer tensors.
    pub n_layers: usize,
    /// The classifier output, `[B, K]`.
    pub logits: TensorView,
}

/// What a gradient is asked of: the objective on one layer, with its weights per image.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GradientRequestView {
    /// `size_of::<GradientRequestView>()` as the host was built.
    pub size: usize,
    /// The layer the objective reads (a name or alias the description lists).
    pub layer: StrView,
    /// [`GradientRequestView::POOLED`], [`GradientRequestView::MAP`] or
    /// [`GradientRequestView::SQUARED_NORM`].
    pub objective: u32,
    /// The weights, `f32`: `[B, neurons]` (pooled), `[B, ...shape]` (map) or `[B]` (squared
    /// norm).
    pub weights: TensorView,
    /// Layers whose full maps the same run returns, in this order.
    pub maps: *const StrView,
    /// Number of `maps`.
    pub n_maps: usize,
}

impl GradientRequestView {
    /// `Σ w·pool(a)`, pooled by the default pooling (spatial mean, token mean).
    pub const POOLED: u32 = 0;
    /// `Σ w·a` over the whole per-image map.
    pub const MAP: u32 = 1;
    /// `w · Σ a²`.
    pub const SQUARED_NORM: u32 = 2;
}

/// What `gradient` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GradientView {
    /// `size_of::<GradientView>()` as the plugin was built.
    pub size: usize,
    /// The objective per image, `f32` `[B]`.
    pub objective: TensorView,
    /// d(objective)/d(batch), `f32`, the batch's shape.
    pub input: TensorView,
    /// The requested maps `[B, ...shape]`, in request order.
    pub maps: *const NamedTensorView,
    /// Number of `maps`.
    pub n_maps: usize,
}

/// The model-adapter function table. Append-only within a major version.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModelAdapterTable {
    /// `size_of::<ModelAdapterTable>()` as the plugin was built.
    pub size: usize,
    /// Makes an instance from a plugin-specific config string (RON; may be empty).
    pub create: unsafe extern "C" fn(config: StrView, out: *mut *mut Instance) -> Status,
    /// Frees an instance. The host releases its outputs first.
    pub destroy: unsafe extern "C" fn(instance: *mut Instance),
    /// Message of the last failure on this thread (`instance` may be null after `create`).
    pub last_error: unsafe extern "C" fn(instance: *const Instance) -> StrView,
    /// Inputs, candidate layers, class names.
    pub describe: unsafe extern "C" fn(
        instance: *mut Instance,
        out: *mut *const ModelDescriptionView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Runs a batch (`f32`, NCHW) and returns each requested layer pooled to `[B, C]`, plus logits.
    pub run: unsafe extern "C" fn(
        instance: *mut Instance,
        batch: *const TensorView,
        layers: *const StrView,
        n_layers: usize,
        pooling: PoolingView,
        out: *mut *const ActivationSetView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Runs one image (`[1, C, H, W]`) and returns each requested layer's full map `[1, ...]`.
    pub run_maps: unsafe extern "C" fn(
        instance: *mut Instance,
        image: *const TensorView,
        layers: *const StrView,
        n_layers: usize,
        out: *mut *const ActivationSetView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Frees an output handle.
    pub release: unsafe extern "C" fn(instance: *mut Instance, handle: *mut Output),
    /// How many outputs of this instance are not released yet (for leak checks).
    pub outstanding: unsafe extern "C" fn(instance: *const Instance) -> u64,
    /// Since ABI 1.1; null (or beyond `size`) when the plugin does not provide it. The model's
    /// final linear classifier, `logits = W f + b` (see [`DecisionLayerView`]);
    /// [`Status::UNSUPPORTED`] when the model has none.
    pub decision_layer: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            out: *mut *const DecisionLayerView,
            handle: *mut *mut Output,
        ) -> Status,
    >,
    /// Since ABI 1.1; null (or beyond `size`) when the plugin does not provide it. Writes a
    /// copy of the model whose decision layer has the given weights (`[K, D]`) and bias
    /// (`[K]`), both `f32`, to `path`; the model the instance was made from is never
    /// modified. An existing `path` is refused unless `overwrite` is 1.
    pub export_with_decision_layer: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            weights: *const TensorView,
            bias: *const TensorView,
            path: StrView,
            overwrite: u32,
        ) -> Status,
    >,
    /// Since ABI 1.3; null (or beyond `size`) when the plugin computes no gradients. Runs a
    /// batch (`f32`, NCHW) forward and back for the objective of `request`;
    /// [`Status::UNSUPPORTED`] when the model cannot be differentiated (the message says
    /// why).
    pub gradient: Option<
        unsafe extern "C" fn(
            instance: *mut Instance,
            batch: *const TensorView,
            request: *const GradientRequestView,
            out: *mut *const GradientView,
            handle: *mut *mut Output,
        ) -> Status,
    >,
}

/// What `decision_layer` returns: the model's final linear classifier, `logits = W f + b`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DecisionLayerView {
    /// `size_of::<DecisionLayerView>()` as the plugin was built.
    pub size: usize,
    /// The recordable layer whose per-image values are `f` (the classifier's input).
    pub input: StrView,
    /// The operator(s) it is made of, for people: `Gemm`, `MatMul+Add`.
    pub op: StrView,
    /// `W`: `f32`, `[K, D]`, row `k` the weights of class `k`.
    pub weights: TensorView,
    /// `b`: `f32`, `[K]`.
    pub bias: TensorView,
}

/// One `key = value` parameter of a catalog entry.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ParamView {
    /// Parameter name, e.g. `severity`.
    pub key: StrView,
    /// Its value as text, e.g. `3`.
    pub value: StrView,
}

/// One dataset a source offers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DatasetEntryView {
    /// Name to `open`, e.g. `cifar10-c/fog/3`.
    pub name: StrView,
    /// Shift family, e.g. `id`, `corruption`, `colour`.
    pub family: StrView,
    /// One line for people, including where the data comes from.
    pub description: StrView,
    /// Parameters of the shift.
    pub params: *const ParamView,
    /// Number of parameters.
    pub n_params: usize,
}

/// What `catalog` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CatalogView {
    /// `size_of::<CatalogView>()` as the plugin was built.
    pub size: usize,
    /// The entries.
    pub entries: *const DatasetEntryView,
    /// Number of entries.
    pub n_entries: usize,
}

/// A list of strings (class names).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StrListView {
    /// The strings.
    pub items: *const StrView,
    /// Number of strings.
    pub n_items: usize,
}

/// One image with its label.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SampleView {
    /// `size_of::<SampleView>()` as the plugin was built.
    pub size: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Class index into `classes`.
    pub label: u32,
    /// RGB, 8 bits per channel, HWC, row-major: `width * height * 3` bytes.
    pub pixels: *const u8,
    /// Length of `pixels` in bytes.
    pub byte_len: usize,
}

/// The dataset-shift source function table. Append-only within a major version.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DatasetSourceTable {
    /// `size_of::<DatasetSourceTable>()` as the plugin was built.
    pub size: usize,
    /// Makes an instance from a plugin-specific config string (RON; may be empty).
    pub create: unsafe extern "C" fn(config: StrView, out: *mut *mut Instance) -> Status,
    /// Frees an instance. The host closes its datasets and releases its outputs first.
    pub destroy: unsafe extern "C" fn(instance: *mut Instance),
    /// Message of the last failure on this thread (`instance` may be null after `create`).
    pub last_error: unsafe extern "C" fn(instance: *const Instance) -> StrView,
    /// The named datasets this source offers.
    pub catalog: unsafe extern "C" fn(
        instance: *mut Instance,
        out: *mut *const CatalogView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Opens a dataset by name (a catalog name, or a parameterised one the source accepts).
    pub open: unsafe extern "C" fn(
        instance: *mut Instance,
        name: StrView,
        out: *mut *mut DatasetHandle,
    ) -> Status,
    /// Closes an open dataset.
    pub close: unsafe extern "C" fn(instance: *mut Instance, dataset: *mut DatasetHandle),
    /// Number of samples.
    pub len: unsafe extern "C" fn(
        instance: *mut Instance,
        dataset: *mut DatasetHandle,
        out: *mut u64,
    ) -> Status,
    /// Class names; labels index into them.
    pub classes: unsafe extern "C" fn(
        instance: *mut Instance,
        dataset: *mut DatasetHandle,
        out: *mut *const StrListView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Sample `index` (random access, deterministic, callable from several threads).
    pub get: unsafe extern "C" fn(
        instance: *mut Instance,
        dataset: *mut DatasetHandle,
        index: u64,
        out: *mut *const SampleView,
        handle: *mut *mut Output,
    ) -> Status,
    /// Frees an output handle.
    pub release: unsafe extern "C" fn(instance: *mut Instance, handle: *mut Output),
    /// How many outputs of this instance are not released yet (for leak checks).
    pub outstanding: unsafe extern "C" fn(instance: *const Instance) -> u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_view_round_trips_and_rejects_bad_input() {
        let s = String::from("colored-mnist/id");
        let v = StrView::new(&s);
        // SAFETY: `s` outlives the read.
        assert_eq!(unsafe { v.to_str() }, Ok("colored-mnist/id"));
        let bad = [0xffu8, 0xfe];
        let v = StrView {
            ptr: bad.as_ptr(),
            len: 2,
        };
        // SAFETY: two readable bytes.
        assert_eq!(unsafe { v.to_str() }, Err(AbiError::InvalidUtf8));
        let v = StrView {
            ptr: core::ptr::null(),
            len: 3,
        };
        // SAFETY: the null check comes first.
        assert_eq!(unsafe { v.to_str() }, Err(AbiError::NullPointer("string")));
    }

    #[test]
    fn dtype_sizes() {
        assert_eq!(DType::F32.size_bytes(), Some(4));
        assert_eq!(DType::F16.size_bytes(), Some(2));
        assert_eq!(DType::U8.size_bytes(), Some(1));
        assert_eq!(DType::I64.size_bytes(), Some(8));
        assert_eq!(DType(99).size_bytes(), None);
    }

    #[test]
    fn frozen_header_prefix_layout() {
        // The prefix every host of every major reads to name a plugin.
        assert_eq!(core::mem::offset_of!(PluginHeader, abi_major), 0);
        assert_eq!(core::mem::offset_of!(PluginHeader, abi_minor), 4);
        assert_eq!(core::mem::offset_of!(PluginHeader, header_size), 8);
        assert_eq!(core::mem::offset_of!(PluginHeader, kind), 12);
        assert_eq!(core::mem::offset_of!(PluginHeader, name), 16);
    }

    #[test]
    fn model_table_1_0_prefix_is_nine_words() {
        // size + eight function pointers; the 1.1 and 1.3 slots come after.
        assert_eq!(MODEL_ADAPTER_TABLE_1_0_SIZE, 9 * size_of::<usize>());
        assert_eq!(size_of::<ModelAdapterTable>(), 12 * size_of::<usize>());
    }
}
