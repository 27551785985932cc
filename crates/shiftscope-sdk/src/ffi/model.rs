//! The model-adapter function table for a [`ModelAdapterPlugin`] type.

use std::sync::atomic::{AtomicU64, Ordering};

use shiftscope_abi::{
    ActivationSetView, InputView, Instance, LayerView, ModelAdapterTable, ModelDescriptionView,
    NamedTensorView, Output, PoolingView, Status, StrView, TensorView,
};

use super::export::{check_out, guard, guard_void, last_error, publish, release_output};
use super::views::{
    layer_kind_to_abi, pooling_from_view, read_f32_tensor, read_slice, read_str, shape_to_i64,
    tensor_view,
};
use crate::{ActivationSet, ModelAdapterPlugin, ModelDescription, PluginError, TensorRef};

struct ModelInstance<T> {
    adapter: T,
    outstanding: AtomicU64,
}

/// # Safety
/// `instance` must be null or come from this table's `create` and not be destroyed.
unsafe fn instance<'a, T>(
    instance: *mut Instance,
) -> Result<&'a mut ModelInstance<T>, PluginError> {
    // SAFETY: forwarded from the caller.
    unsafe { instance.cast::<ModelInstance<T>>().as_mut() }
        .ok_or_else(|| PluginError::invalid_argument("null instance"))
}

/// The table for `T`, for a `static` in the plugin crate.
pub const fn model_table<T: ModelAdapterPlugin>() -> ModelAdapterTable {
    ModelAdapterTable {
        size: size_of::<ModelAdapterTable>(),
        create: create::<T>,
        destroy: destroy::<T>,
        last_error,
        describe: describe::<T>,
        run: run::<T>,
        run_maps: run_maps::<T>,
        release: release::<T>,
        outstanding: outstanding::<T>,
    }
}

unsafe extern "C" fn create<T: ModelAdapterPlugin>(
    config: StrView,
    out: *mut *mut Instance,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(PluginError::invalid_argument("null output pointer"));
        }
        // SAFETY: the host lends the config for the call.
        let config = unsafe { read_str(config, "config") }?;
        let adapter = T::create(config)?;
        let boxed = Box::new(ModelInstance {
            adapter,
            outstanding: AtomicU64::new(0),
        });
        // SAFETY: checked non-null; the host passes a writable slot.
        unsafe { *out = Box::into_raw(boxed).cast() };
        Ok(())
    })
}

unsafe extern "C" fn destroy<T: ModelAdapterPlugin>(instance: *mut Instance) {
    guard_void(|| {
        if !instance.is_null() {
            // SAFETY: made by `create` with `Box::into_raw`, destroyed once.
            drop(unsafe { Box::from_raw(instance.cast::<ModelInstance<T>>()) });
        }
    });
}

/// Owned storage behind a [`ModelDescriptionView`].
struct DescriptionKeep {
    _description: ModelDescription,
    _shapes: Vec<Vec<i64>>,
    _inputs: Vec<InputView>,
    _layers: Vec<LayerView>,
    _class_names: Vec<StrView>,
}

fn description_view(
    description: ModelDescription,
) -> Result<(DescriptionKeep, ModelDescriptionView), PluginError> {
    let mut shapes = Vec::new();
    for input in &description.inputs {
        let dims = input
            .shape
            .iter()
            .map(|d| d.map_or(Ok(-1), i64::try_from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| PluginError::invalid_argument("input dimension too large"))?;
        shapes.push(dims);
    }
    for layer in &description.layers {
        shapes.push(shape_to_i64(&layer.shape)?);
    }
    let (input_shapes, layer_shapes) = shapes.split_at(description.inputs.len());
    let inputs: Vec<InputView> = description
        .inputs
        .iter()
        .zip(input_shapes)
        .map(|(input, dims)| InputView {
            name: StrView::new(&input.name),
            shape: dims.as_ptr(),
            rank: dims.len() as u32,
        })
        .collect();
    let layers: Vec<LayerView> = description
        .layers
        .iter()
        .zip(layer_shapes)
        .map(|(layer, dims)| LayerView {
            name: StrView::new(&layer.name),
            op: StrView::new(&layer.op),
            kind: layer_kind_to_abi(layer.kind),
            shape: dims.as_ptr(),
            rank: dims.len() as u32,
            neurons: layer.neurons as u64,
            default_selected: u32::from(layer.default_selected),
        })
        .collect();
    let class_names: Vec<StrView> = description
        .class_names
        .iter()
        .map(|s| StrView::new(s))
        .collect();
    let view = ModelDescriptionView {
        size: size_of::<ModelDescriptionView>(),
        inputs: inputs.as_ptr(),
        n_inputs: inputs.len(),
        layers: layers.as_ptr(),
        n_layers: layers.len(),
        class_names: class_names.as_ptr(),
        n_class_names: class_names.len(),
        num_classes: description.num_classes as u64,
    };
    // Moving the vectors into the keep struct moves no heap data: the view stays valid.
    Ok((
        DescriptionKeep {
            _description: description,
            _shapes: shapes,
            _inputs: inputs,
            _layers: layers,
            _class_names: class_names,
        },
        view,
    ))
}

/// Owned storage behind an [`ActivationSetView`].
struct ActivationKeep {
    _set: ActivationSet,
    _shapes: Vec<Vec<i64>>,
    _named: Vec<NamedTensorView>,
}

fn activation_view(set: ActivationSet) -> Result<(ActivationKeep, ActivationSetView), PluginError> {
    let mut shapes = Vec::with_capacity(set.layers.len() + 1);
    for named in &set.layers {
        shapes.push(shape_to_i64(named.tensor.shape())?);
    }
    shapes.push(shape_to_i64(set.logits.shape())?);
    let named: Vec<NamedTensorView> = set
        .layers
        .iter()
        .zip(&shapes)
        .map(|(n, dims)| NamedTensorView {
            name: StrView::new(&n.name),
            tensor: tensor_view(dims, n.tensor.data()),
        })
        .collect();
    let logits_shape = shapes.last().map_or(&[][..], Vec::as_slice);
    let view = ActivationSetView {
        size: size_of::<ActivationSetView>(),
        layers: named.as_ptr(),
        n_layers: named.len(),
        logits: tensor_view(logits_shape, set.logits.data()),
    };
    Ok((
        ActivationKeep {
            _set: set,
            _shapes: shapes,
            _named: named,
        },
        view,
    ))
}

unsafe extern "C" fn describe<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    out: *mut *const ModelDescriptionView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance::<T>(instance_ptr) }?;
        let (keep, view) = description_view(inst.adapter.describe()?)?;
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

/// # Safety
/// `layers` must point to `n` string views valid for the call.
unsafe fn layer_names(layers: *const StrView, n: usize) -> Result<Vec<String>, PluginError> {
    // SAFETY: forwarded from the caller.
    let views = unsafe { read_slice(layers, n, "layer names") }?;
    views
        .iter()
        // SAFETY: forwarded from the caller.
        .map(|v| unsafe { read_str(*v, "layer name") }.map(str::to_owned))
        .collect()
}

unsafe extern "C" fn run<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    batch: *const TensorView,
    layers: *const StrView,
    n_layers: usize,
    pooling: PoolingView,
    out: *mut *const ActivationSetView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance::<T>(instance_ptr) }?;
        // SAFETY: the host lends the batch for the call.
        let batch =
            unsafe { batch.as_ref() }.ok_or_else(|| PluginError::invalid_argument("null batch"))?;
        // SAFETY: as above.
        let (shape, data) = unsafe { read_f32_tensor(batch, "batch") }?;
        // SAFETY: the host lends the names for the call.
        let layers = unsafe { layer_names(layers, n_layers) }?;
        let pooling = pooling_from_view(pooling)?;
        let set = inst
            .adapter
            .run(TensorRef::new(&shape, data)?, &layers, pooling)?;
        let (keep, view) = activation_view(set)?;
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

unsafe extern "C" fn run_maps<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    image: *const TensorView,
    layers: *const StrView,
    n_layers: usize,
    out: *mut *const ActivationSetView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance::<T>(instance_ptr) }?;
        // SAFETY: the host lends the image for the call.
        let image =
            unsafe { image.as_ref() }.ok_or_else(|| PluginError::invalid_argument("null image"))?;
        // SAFETY: as above.
        let (shape, data) = unsafe { read_f32_tensor(image, "image") }?;
        // SAFETY: the host lends the names for the call.
        let layers = unsafe { layer_names(layers, n_layers) }?;
        let set = inst
            .adapter
            .run_maps(TensorRef::new(&shape, data)?, &layers)?;
        let (keep, view) = activation_view(set)?;
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

unsafe extern "C" fn release<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    handle: *mut Output,
) {
    guard_void(|| {
        // SAFETY: the host passes its live instance, or null.
        let inst = unsafe { instance_ptr.cast::<ModelInstance<T>>().as_ref() };
        // SAFETY: the handle came from this instance and is released once.
        unsafe { release_output(handle, inst.map(|i| &i.outstanding)) };
    });
}

unsafe extern "C" fn outstanding<T: ModelAdapterPlugin>(instance_ptr: *const Instance) -> u64 {
    // SAFETY: the host passes its live instance, or null.
    unsafe { instance_ptr.cast::<ModelInstance<T>>().as_ref() }
        .map_or(0, |i| i.outstanding.load(Ordering::Relaxed))
}
