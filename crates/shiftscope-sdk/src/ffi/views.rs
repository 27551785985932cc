//! Conversions between owned values and the ABI's views. Readers check every pointer,
//! length and code before touching memory, and copy what they return.

use std::ffi::c_void;

use shiftscope_abi::{
    ActivationSetView, CatalogView, DType, DecisionLayerView, LayerKind as AbiLayerKind,
    ModelDescriptionView, PoolingView, ReceptiveFieldView, SampleView, StrListView, StrView,
    TensorView,
};

use crate::tensor::element_count;
use crate::{
    ActivationSet, ConvPooling, DatasetInfo, DecisionLayer, InputSpec, LayerInfo, LayerKind,
    ModelDescription, NamedTensor, PluginError, Pooling, ReceptiveField, Sample, Tensor,
    TokenPooling,
};

/// Most dimensions a tensor may have.
const MAX_RANK: usize = 16;

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::invalid_argument(message)
}

/// Reads a borrowed string.
///
/// # Safety
/// The view must point to `len` readable bytes valid for `'a`.
pub unsafe fn read_str<'a>(view: StrView, what: &str) -> Result<&'a str, PluginError> {
    // SAFETY: forwarded from the caller.
    unsafe { view.to_str() }.map_err(|e| bad(format!("{what}: {e}")))
}

/// Reads a borrowed array of `n` elements.
///
/// # Safety
/// When non-null, `ptr` must point to `n` initialised elements valid for `'a`.
pub unsafe fn read_slice<'a, T>(
    ptr: *const T,
    n: usize,
    what: &str,
) -> Result<&'a [T], PluginError> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(bad(format!("{what}: null pointer for {n} elements")));
    }
    if !ptr.is_aligned() {
        return Err(bad(format!("{what}: misaligned pointer")));
    }
    if n.checked_mul(size_of::<T>().max(1))
        .is_none_or(|bytes| bytes > isize::MAX as usize)
    {
        return Err(bad(format!("{what}: {n} elements is too many")));
    }
    // SAFETY: non-null, aligned, size in range; the caller guarantees validity.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

fn dims_from_i64(dims: &[i64], what: &str) -> Result<Vec<usize>, PluginError> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("{what}: negative dimension {d}"))))
        .collect()
}

/// Converts a shape for a view.
pub fn shape_to_i64(shape: &[usize]) -> Result<Vec<i64>, PluginError> {
    shape
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| bad(format!("dimension {d} is too large"))))
        .collect()
}

/// A view of `data` with `shape` (both borrowed: keep them alive while the view is used).
pub fn tensor_view(shape: &[i64], data: &[f32]) -> TensorView {
    TensorView {
        dtype: DType::F32,
        rank: shape.len() as u32,
        shape: shape.as_ptr(),
        data: data.as_ptr().cast::<c_void>(),
        byte_len: size_of_val(data),
    }
}

/// Reads an `f32` tensor view: dtype, rank, dimensions, byte length and alignment checked.
///
/// # Safety
/// The view's pointers must be valid for the sizes the view states, for `'a`.
pub unsafe fn read_f32_tensor<'a>(
    view: &TensorView,
    what: &str,
) -> Result<(Vec<usize>, &'a [f32]), PluginError> {
    if view.dtype != DType::F32 {
        return Err(bad(format!(
            "{what}: dtype code {} where f32 ({}) is required",
            view.dtype.0,
            DType::F32.0
        )));
    }
    let rank = view.rank as usize;
    if rank > MAX_RANK {
        return Err(bad(format!("{what}: rank {rank} exceeds {MAX_RANK}")));
    }
    // SAFETY: forwarded from the caller.
    let dims = unsafe { read_slice(view.shape, rank, what) }?;
    let shape = dims_from_i64(dims, what)?;
    let count = element_count(&shape)
        .filter(|n| n.checked_mul(4).is_some())
        .ok_or_else(|| bad(format!("{what}: shape {shape:?} overflows")))?;
    if view.byte_len != count * 4 {
        return Err(bad(format!(
            "{what}: shape {shape:?} needs {} bytes of f32 but the view holds {}",
            count * 4,
            view.byte_len
        )));
    }
    // SAFETY: forwarded from the caller; length checked against the shape.
    let data = unsafe { read_slice(view.data.cast::<f32>(), count, what) }?;
    Ok((shape, data))
}

/// The view of a pooling choice.
pub fn pooling_to_view(pooling: Pooling) -> PoolingView {
    PoolingView {
        conv: match pooling.conv {
            ConvPooling::Mean => PoolingView::CONV_MEAN,
            ConvPooling::Max => PoolingView::CONV_MAX,
        },
        tokens: match pooling.tokens {
            TokenPooling::Mean => PoolingView::TOKENS_MEAN,
            TokenPooling::Cls => PoolingView::TOKENS_CLS,
            TokenPooling::Max => PoolingView::TOKENS_MAX,
        },
    }
}

/// Reads a pooling choice; unknown codes are errors.
pub fn pooling_from_view(view: PoolingView) -> Result<Pooling, PluginError> {
    let conv = match view.conv {
        PoolingView::CONV_MEAN => ConvPooling::Mean,
        PoolingView::CONV_MAX => ConvPooling::Max,
        other => return Err(bad(format!("unknown conv pooling code {other}"))),
    };
    let tokens = match view.tokens {
        PoolingView::TOKENS_MEAN => TokenPooling::Mean,
        PoolingView::TOKENS_CLS => TokenPooling::Cls,
        PoolingView::TOKENS_MAX => TokenPooling::Max,
        other => return Err(bad(format!("unknown token pooling code {other}"))),
    };
    Ok(Pooling { conv, tokens })
}

/// The ABI code of an objective.
pub fn objective_to_code(objective: crate::Objective) -> u32 {
    match objective {
        crate::Objective::Pooled => shiftscope_abi::GradientRequestView::POOLED,
        crate::Objective::Map => shiftscope_abi::GradientRequestView::MAP,
        crate::Objective::SquaredNorm => shiftscope_abi::GradientRequestView::SQUARED_NORM,
    }
}

/// The objective of an ABI code; an unknown code is an error.
pub fn objective_from_code(code: u32) -> Result<crate::Objective, PluginError> {
    use shiftscope_abi::GradientRequestView as V;
    match code {
        V::POOLED => Ok(crate::Objective::Pooled),
        V::MAP => Ok(crate::Objective::Map),
        V::SQUARED_NORM => Ok(crate::Objective::SquaredNorm),
        other => Err(bad(format!("unknown gradient objective code {other}"))),
    }
}

pub(crate) fn layer_kind_to_abi(kind: LayerKind) -> AbiLayerKind {
    match kind {
        LayerKind::Conv => AbiLayerKind::CONV,
        LayerKind::Tokens => AbiLayerKind::TOKENS,
        LayerKind::Dense => AbiLayerKind::DENSE,
        LayerKind::Logits => AbiLayerKind::LOGITS,
    }
}

fn layer_kind_from_abi(kind: AbiLayerKind) -> Result<LayerKind, PluginError> {
    match kind {
        AbiLayerKind::CONV => Ok(LayerKind::Conv),
        AbiLayerKind::TOKENS => Ok(LayerKind::Tokens),
        AbiLayerKind::DENSE => Ok(LayerKind::Dense),
        AbiLayerKind::LOGITS => Ok(LayerKind::Logits),
        other => Err(bad(format!("unknown layer kind code {}", other.0))),
    }
}

fn check_size(size: usize, needed: usize, what: &str) -> Result<(), PluginError> {
    if size < needed {
        return Err(bad(format!(
            "{what}: view of {size} bytes is shorter than the {needed} this host reads"
        )));
    }
    Ok(())
}

/// The ABI form of a layer's receptive field (`known: 0` for `None`); errors when a number
/// does not fit the view's 32-bit fields.
pub(crate) fn receptive_field_view(
    layer: &str,
    field: Option<&ReceptiveField>,
) -> Result<ReceptiveFieldView, PluginError> {
    let Some(field) = field else {
        return Ok(ReceptiveFieldView::default());
    };
    let too_large = || {
        bad(format!(
            "layer {layer}: receptive field {field:?} too large"
        ))
    };
    let u = |v: usize| u32::try_from(v).map_err(|_| too_large());
    let i = |v: i64| i32::try_from(v).map_err(|_| too_large());
    Ok(ReceptiveFieldView {
        known: 1,
        size: [u(field.size[0])?, u(field.size[1])?],
        jump: [u(field.jump[0])?, u(field.jump[1])?],
        offset: [i(field.offset[0])?, i(field.offset[1])?],
    })
}

/// Reads one element of [`ModelDescriptionView::receptive_fields`] back.
pub(crate) fn receptive_field_from_view(view: &ReceptiveFieldView) -> Option<ReceptiveField> {
    (view.known != 0).then(|| ReceptiveField {
        size: view.size.map(|v| v as usize),
        jump: view.jump.map(|v| v as usize),
        offset: view.offset.map(i64::from),
    })
}

/// Reads a list of strings.
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_str_list(view: &StrListView, what: &str) -> Result<Vec<String>, PluginError> {
    // SAFETY: forwarded from the caller.
    let items = unsafe { read_slice(view.items, view.n_items, what) }?;
    items
        .iter()
        // SAFETY: forwarded from the caller.
        .map(|s| unsafe { read_str(*s, what) }.map(str::to_owned))
        .collect()
}

/// Reads what `describe` returned.
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_description(
    view: &ModelDescriptionView,
) -> Result<ModelDescription, PluginError> {
    // Fields appended after ABI 1.0 are read only when the plugin's view has them.
    let base = std::mem::offset_of!(ModelDescriptionView, receptive_fields);
    check_size(view.size, base, "model description")?;
    let has_fields = view.size >= base + size_of::<*const ReceptiveFieldView>();
    let has_aliases = view.size
        >= std::mem::offset_of!(ModelDescriptionView, layer_aliases)
            + size_of::<*const StrListView>();
    let has_data_files = view.size
        >= std::mem::offset_of!(ModelDescriptionView, data_files) + size_of::<StrListView>();
    // SAFETY: every pointer is forwarded from the caller with its stated size.
    unsafe {
        let inputs = read_slice(view.inputs, view.n_inputs, "inputs")?
            .iter()
            .map(|input| {
                let name = read_str(input.name, "input name")?.to_owned();
                let dims = read_slice(input.shape, input.rank as usize, "input shape")?;
                let shape = dims
                    .iter()
                    .map(|&d| match d {
                        -1 => Ok(None),
                        d => usize::try_from(d)
                            .map(Some)
                            .map_err(|_| bad(format!("input {name}: dimension {d}"))),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(InputSpec { name, shape })
            })
            .collect::<Result<_, PluginError>>()?;
        let fields = if has_fields && !view.receptive_fields.is_null() {
            read_slice(view.receptive_fields, view.n_layers, "receptive fields")?
        } else {
            &[]
        };
        let aliases = if has_aliases && !view.layer_aliases.is_null() {
            read_slice(view.layer_aliases, view.n_layers, "layer aliases")?
        } else {
            &[]
        };
        let layers = read_slice(view.layers, view.n_layers, "layers")?
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let name = read_str(layer.name, "layer name")?.to_owned();
                let dims = read_slice(layer.shape, layer.rank as usize, "layer shape")?;
                Ok(LayerInfo {
                    op: read_str(layer.op, "layer op")?.to_owned(),
                    kind: layer_kind_from_abi(layer.kind)?,
                    shape: dims_from_i64(dims, &format!("layer {name}"))?,
                    neurons: usize::try_from(layer.neurons)
                        .map_err(|_| bad(format!("layer {name}: neuron count")))?,
                    default_selected: layer.default_selected != 0,
                    role: read_str(layer.role, "layer role")?.to_owned(),
                    receptive_field: fields.get(i).and_then(receptive_field_from_view),
                    aliases: match aliases.get(i) {
                        Some(list) => read_str_list(list, "layer aliases")?,
                        None => Vec::new(),
                    },
                    name,
                })
            })
            .collect::<Result<_, PluginError>>()?;
        let class_names = read_str_list(
            &StrListView {
                items: view.class_names,
                n_items: view.n_class_names,
            },
            "class names",
        )?;
        let notes = read_str_list(
            &StrListView {
                items: view.notes,
                n_items: view.n_notes,
            },
            "notes",
        )?;
        let data_files = if has_data_files {
            read_str_list(&view.data_files, "data files")?
        } else {
            Vec::new()
        };
        Ok(ModelDescription {
            inputs,
            layers,
            class_names,
            notes,
            data_files,
            num_classes: usize::try_from(view.num_classes)
                .map_err(|_| bad("class count does not fit this machine"))?,
        })
    }
}

/// Reads what `run` or `run_maps` returned.
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_activation_set(view: &ActivationSetView) -> Result<ActivationSet, PluginError> {
    check_size(view.size, size_of::<ActivationSetView>(), "activation set")?;
    // SAFETY: every pointer is forwarded from the caller with its stated size.
    unsafe {
        let layers = read_slice(view.layers, view.n_layers, "layer tensors")?
            .iter()
            .map(|named| {
                let name = read_str(named.name, "layer name")?.to_owned();
                let (shape, data) = read_f32_tensor(&named.tensor, &format!("layer {name}"))?;
                Ok(NamedTensor {
                    tensor: Tensor::new(shape, data.to_vec())?,
                    name,
                })
            })
            .collect::<Result<_, PluginError>>()?;
        let (shape, data) = read_f32_tensor(&view.logits, "logits")?;
        Ok(ActivationSet {
            layers,
            logits: Tensor::new(shape, data.to_vec())?,
        })
    }
}

/// Reads what `decision_layer` returned: both tensors checked (`[K, D]` and `[K]`).
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_decision_layer(view: &DecisionLayerView) -> Result<DecisionLayer, PluginError> {
    check_size(view.size, size_of::<DecisionLayerView>(), "decision layer")?;
    // SAFETY: every pointer is forwarded from the caller with its stated size.
    unsafe {
        let (w_shape, w) = read_f32_tensor(&view.weights, "decision layer weights")?;
        let (b_shape, b) = read_f32_tensor(&view.bias, "decision layer bias")?;
        let layer = DecisionLayer {
            input: read_str(view.input, "decision layer input")?.to_owned(),
            op: read_str(view.op, "decision layer op")?.to_owned(),
            weights: Tensor::new(w_shape, w.to_vec())?,
            bias: Tensor::new(b_shape, b.to_vec())?,
        };
        layer.dims()?;
        Ok(layer)
    }
}

/// Reads what `catalog` returned.
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_catalog(view: &CatalogView) -> Result<Vec<DatasetInfo>, PluginError> {
    check_size(view.size, size_of::<CatalogView>(), "catalog")?;
    // SAFETY: every pointer is forwarded from the caller with its stated size.
    unsafe {
        read_slice(view.entries, view.n_entries, "catalog entries")?
            .iter()
            .map(|entry| {
                let params = read_slice(entry.params, entry.n_params, "parameters")?
                    .iter()
                    .map(|p| {
                        Ok((
                            read_str(p.key, "parameter key")?.to_owned(),
                            read_str(p.value, "parameter value")?.to_owned(),
                        ))
                    })
                    .collect::<Result<_, PluginError>>()?;
                Ok(DatasetInfo {
                    name: read_str(entry.name, "dataset name")?.to_owned(),
                    family: read_str(entry.family, "dataset family")?.to_owned(),
                    description: read_str(entry.description, "dataset description")?.to_owned(),
                    params,
                })
            })
            .collect()
    }
}

/// Reads what `get` returned; the pixel count must match width × height × 3.
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_sample(view: &SampleView) -> Result<Sample, PluginError> {
    check_size(view.size, size_of::<SampleView>(), "sample")?;
    let expected = (view.width as usize)
        .checked_mul(view.height as usize)
        .and_then(|n| n.checked_mul(3));
    if expected != Some(view.byte_len) {
        return Err(bad(format!(
            "sample of {}x{} RGB needs {} bytes but holds {}",
            view.width,
            view.height,
            expected.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
            view.byte_len
        )));
    }
    // SAFETY: forwarded from the caller; length checked.
    let pixels = unsafe { read_slice(view.pixels, view.byte_len, "pixels") }?.to_vec();
    Ok(Sample {
        width: view.width,
        height: view.height,
        label: view.label,
        pixels,
    })
}
