//! The model-adapter function table for a [`ModelAdapterPlugin`] type.

use shiftscope_abi::{
    ActivationSetView, DecisionLayerView, GradientRequestView, GradientView, InputView, Instance,
    LayerView, ModelAdapterTable, ModelDescriptionView, NamedTensorView, Output, PoolingView,
    ReceptiveFieldView, Status, StrListView, StrView, TensorView,
};

use super::export::{
    check_out, create_instance, destroy_instance, guard, instance_mut, last_error, outstanding,
    publish, release,
};
use super::views::{
    layer_kind_to_abi, objective_from_code, pooling_from_view, read_f32_tensor, read_slice,
    read_str, receptive_field_view, shape_to_i64, tensor_view,
};
use crate::{
    ActivationSet, DecisionLayer, Gradient, GradientRequest, ModelAdapterPlugin, ModelDescription,
    NamedTensor, PluginError, TensorRef,
};

/// The table for `T`, for a `static` in the plugin crate.
pub const fn model_table<T: ModelAdapterPlugin>() -> ModelAdapterTable {
    ModelAdapterTable {
        size: size_of::<ModelAdapterTable>(),
        create: create::<T>,
        destroy: destroy_instance::<T>,
        last_error,
        describe: describe::<T>,
        run: run::<T>,
        run_maps: run_maps::<T>,
        release: release::<T>,
        outstanding: outstanding::<T>,
        decision_layer: Some(decision_layer::<T>),
        export_with_decision_layer: Some(export_with_decision_layer::<T>),
        gradient: Some(gradient::<T>),
    }
}

unsafe extern "C" fn create<T: ModelAdapterPlugin>(
    config: StrView,
    out: *mut *mut Instance,
) -> Status {
    // SAFETY: forwarded from the host.
    unsafe { create_instance(config, out, T::create) }
}

/// Owned storage behind a [`ModelDescriptionView`].
struct DescriptionKeep {
    _description: ModelDescription,
    _shapes: Vec<Vec<i64>>,
    _inputs: Vec<InputView>,
    _layers: Vec<LayerView>,
    _receptive_fields: Vec<ReceptiveFieldView>,
    _alias_items: Vec<Vec<StrView>>,
    _aliases: Vec<StrListView>,
    _data_files: Vec<StrView>,
    _class_names: Vec<StrView>,
    _notes: Vec<StrView>,
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
            role: StrView::new(&layer.role),
        })
        .collect();
    let receptive_fields = description
        .layers
        .iter()
        .map(|layer| receptive_field_view(&layer.name, layer.receptive_field.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let alias_items: Vec<Vec<StrView>> = description
        .layers
        .iter()
        .map(|layer| layer.aliases.iter().map(|a| StrView::new(a)).collect())
        .collect();
    let aliases: Vec<StrListView> = alias_items
        .iter()
        .map(|items| StrListView {
            items: items.as_ptr(),
            n_items: items.len(),
        })
        .collect();
    let class_names: Vec<StrView> = description
        .class_names
        .iter()
        .map(|s| StrView::new(s))
        .collect();
    let notes: Vec<StrView> = description.notes.iter().map(|s| StrView::new(s)).collect();
    let data_files: Vec<StrView> = description
        .data_files
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
        notes: notes.as_ptr(),
        n_notes: notes.len(),
        receptive_fields: receptive_fields.as_ptr(),
        layer_aliases: aliases.as_ptr(),
        data_files: StrListView {
            items: data_files.as_ptr(),
            n_items: data_files.len(),
        },
    };
    // Moving the vectors into the keep struct moves no heap data: the view stays valid.
    Ok((
        DescriptionKeep {
            _description: description,
            _shapes: shapes,
            _inputs: inputs,
            _layers: layers,
            _receptive_fields: receptive_fields,
            _alias_items: alias_items,
            _aliases: aliases,
            _data_files: data_files,
            _class_names: class_names,
            _notes: notes,
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
        let inst = unsafe { instance_mut::<T>(instance_ptr) }?;
        let (keep, view) = description_view(inst.inner.describe()?)?;
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

/// The shared body of `run` and `run_maps`: read the input tensor and the layer names,
/// call `compute`, publish the activation set.
///
/// # Safety
/// Every pointer must be valid as the ABI states for `run`.
#[allow(clippy::too_many_arguments)]
unsafe fn activation_call<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    input: *const TensorView,
    what: &str,
    layers: *const StrView,
    n_layers: usize,
    out: *mut *const ActivationSetView,
    handle: *mut *mut Output,
    compute: impl FnOnce(&mut T, TensorRef<'_>, &[String]) -> Result<ActivationSet, PluginError>,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_mut::<T>(instance_ptr) }?;
        // SAFETY: the host lends the input for the call.
        let input = unsafe { input.as_ref() }
            .ok_or_else(|| PluginError::invalid_argument(format!("null {what}")))?;
        // SAFETY: as above.
        let (shape, data) = unsafe { read_f32_tensor(input, what) }?;
        // SAFETY: the host lends the names for the call.
        let layers = unsafe { layer_names(layers, n_layers) }?;
        let set = compute(&mut inst.inner, TensorRef::new(&shape, data)?, &layers)?;
        let (keep, view) = activation_view(set)?;
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
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
    // SAFETY: forwarded from the host.
    unsafe {
        activation_call::<T>(
            instance_ptr,
            batch,
            "batch",
            layers,
            n_layers,
            out,
            handle,
            |model, batch, layers| model.run(batch, layers, pooling_from_view(pooling)?),
        )
    }
}

unsafe extern "C" fn run_maps<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    image: *const TensorView,
    layers: *const StrView,
    n_layers: usize,
    out: *mut *const ActivationSetView,
    handle: *mut *mut Output,
) -> Status {
    // SAFETY: forwarded from the host.
    unsafe {
        activation_call::<T>(
            instance_ptr,
            image,
            "image",
            layers,
            n_layers,
            out,
            handle,
            T::run_maps,
        )
    }
}

/// Owned storage behind a [`DecisionLayerView`].
struct DecisionKeep {
    _layer: DecisionLayer,
    _shapes: [Vec<i64>; 2],
}

unsafe extern "C" fn decision_layer<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    out: *mut *const DecisionLayerView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_mut::<T>(instance_ptr) }?;
        let layer = inst.inner.decision_layer()?;
        layer.dims()?;
        let shapes = [
            shape_to_i64(layer.weights.shape())?,
            shape_to_i64(layer.bias.shape())?,
        ];
        let view = DecisionLayerView {
            size: size_of::<DecisionLayerView>(),
            input: StrView::new(&layer.input),
            op: StrView::new(&layer.op),
            weights: tensor_view(&shapes[0], layer.weights.data()),
            bias: tensor_view(&shapes[1], layer.bias.data()),
        };
        // Moving the layer and shapes moves no heap data: the view stays valid.
        let keep = DecisionKeep {
            _layer: layer,
            _shapes: shapes,
        };
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

unsafe extern "C" fn export_with_decision_layer<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    weights: *const TensorView,
    bias: *const TensorView,
    path: StrView,
    overwrite: u32,
) -> Status {
    guard(|| {
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_mut::<T>(instance_ptr) }?;
        let read = |view: *const TensorView, what: &str| -> Result<crate::Tensor, PluginError> {
            // SAFETY: the host lends the tensor for the call.
            let view = unsafe { view.as_ref() }
                .ok_or_else(|| PluginError::invalid_argument(format!("null {what}")))?;
            // SAFETY: as above.
            let (shape, data) = unsafe { read_f32_tensor(view, what) }?;
            crate::Tensor::new(shape, data.to_vec())
        };
        let weights = read(weights, "decision layer weights")?;
        let bias = read(bias, "decision layer bias")?;
        // SAFETY: the host lends the path for the call.
        let path = unsafe { read_str(path, "export path") }?;
        let current = inst.inner.decision_layer()?;
        let layer = DecisionLayer {
            weights,
            bias,
            ..current
        };
        layer.dims()?;
        inst.inner
            .export_with_decision_layer(&layer, std::path::Path::new(path), overwrite != 0)
    })
}

/// Owned storage behind a [`GradientView`].
struct GradientKeep {
    _gradient: Gradient,
    _shapes: Vec<Vec<i64>>,
    _named: Vec<NamedTensorView>,
}

/// The view of a [`Gradient`], with the storage that keeps it valid.
fn gradient_view(gradient: Gradient) -> Result<(GradientKeep, GradientView), PluginError> {
    let mut shapes = vec![
        shape_to_i64(gradient.objective.shape())?,
        shape_to_i64(gradient.input.shape())?,
    ];
    for map in &gradient.maps {
        shapes.push(shape_to_i64(map.tensor.shape())?);
    }
    let named: Vec<NamedTensorView> = gradient
        .maps
        .iter()
        .zip(&shapes[2..])
        .map(|(n, dims)| NamedTensorView {
            name: StrView::new(&n.name),
            tensor: tensor_view(dims, n.tensor.data()),
        })
        .collect();
    let view = GradientView {
        size: size_of::<GradientView>(),
        objective: tensor_view(&shapes[0], gradient.objective.data()),
        input: tensor_view(&shapes[1], gradient.input.data()),
        maps: named.as_ptr(),
        n_maps: named.len(),
    };
    Ok((
        GradientKeep {
            _gradient: gradient,
            _shapes: shapes,
            _named: named,
        },
        view,
    ))
}

unsafe extern "C" fn gradient<T: ModelAdapterPlugin>(
    instance_ptr: *mut Instance,
    batch: *const TensorView,
    request: *const GradientRequestView,
    out: *mut *const GradientView,
    handle: *mut *mut Output,
) -> Status {
    guard(|| {
        check_out(out, handle)?;
        // SAFETY: the host passes its live instance.
        let inst = unsafe { instance_mut::<T>(instance_ptr) }?;
        // SAFETY: the host lends the batch and the request for the call.
        let (batch, request) = unsafe { (batch.as_ref(), request.as_ref()) };
        let batch = batch.ok_or_else(|| PluginError::invalid_argument("null batch"))?;
        let request =
            request.ok_or_else(|| PluginError::invalid_argument("null gradient request"))?;
        if request.size < size_of::<GradientRequestView>() {
            return Err(PluginError::invalid_argument(format!(
                "gradient request of {} bytes, expected at least {}",
                request.size,
                size_of::<GradientRequestView>()
            )));
        }
        // SAFETY: as above.
        let (shape, data) = unsafe { read_f32_tensor(batch, "batch") }?;
        // SAFETY: as above.
        let (w_shape, w) = unsafe { read_f32_tensor(&request.weights, "gradient weights") }?;
        // SAFETY: as above.
        let layer = unsafe { read_str(request.layer, "gradient layer") }?.to_owned();
        // SAFETY: as above.
        let maps = unsafe { layer_names(request.maps, request.n_maps) }?;
        let request = GradientRequest {
            layer: &layer,
            objective: objective_from_code(request.objective)?,
            weights: TensorRef::new(&w_shape, w)?,
            maps: &maps,
        };
        let result = inst
            .inner
            .gradient(TensorRef::new(&shape, data)?, &request)?;
        let (keep, view) = gradient_view(result)?;
        // SAFETY: out-pointers checked above.
        unsafe { publish(keep, view, out, handle, &inst.outstanding) };
        Ok(())
    })
}

/// The request as the host lends it: the view and the storage it points into.
#[derive(Debug)]
pub struct GradientRequestKeep {
    _names: Vec<StrView>,
    _shape: Vec<i64>,
    /// The view, valid while this value lives.
    pub view: GradientRequestView,
}

/// The view of `request` for a plugin's `gradient`.
pub fn gradient_request_view(
    request: &GradientRequest<'_>,
) -> Result<GradientRequestKeep, PluginError> {
    let names: Vec<StrView> = request.maps.iter().map(|m| StrView::new(m)).collect();
    let shape = shape_to_i64(request.weights.shape())?;
    let view = GradientRequestView {
        size: size_of::<GradientRequestView>(),
        layer: StrView::new(request.layer),
        objective: super::views::objective_to_code(request.objective),
        weights: tensor_view(&shape, request.weights.data()),
        maps: names.as_ptr(),
        n_maps: names.len(),
    };
    Ok(GradientRequestKeep {
        _names: names,
        _shape: shape,
        view,
    })
}

/// Reads what `gradient` returned (shapes are the host's to check against the request).
///
/// # Safety
/// The view's pointers must be valid for the sizes it states.
pub unsafe fn read_gradient(view: &GradientView) -> Result<Gradient, PluginError> {
    if view.size < size_of::<GradientView>() {
        return Err(PluginError::failed(format!(
            "malformed plugin output: gradient view of {} bytes, expected at least {}",
            view.size,
            size_of::<GradientView>()
        )));
    }
    // SAFETY: every pointer is forwarded from the caller with its stated size.
    unsafe {
        let read = |t: &TensorView, what: &str| -> Result<crate::Tensor, PluginError> {
            let (shape, data) = read_f32_tensor(t, what)?;
            crate::Tensor::new(shape, data.to_vec())
        };
        let maps = read_slice(view.maps, view.n_maps, "gradient maps")?
            .iter()
            .map(|named| {
                let name = read_str(named.name, "map name")?.to_owned();
                Ok(NamedTensor {
                    tensor: read(&named.tensor, &format!("map {name}"))?,
                    name,
                })
            })
            .collect::<Result<_, PluginError>>()?;
        Ok(Gradient {
            objective: read(&view.objective, "gradient objective")?,
            input: read(&view.input, "input gradient")?,
            maps,
        })
    }
}

#[cfg(test)]
mod receptive_field_tests {
    use super::*;
    use crate::ffi::read_description;
    use crate::{LayerInfo, LayerKind, ReceptiveField};

    fn description() -> ModelDescription {
        let layer = |name: &str, field| LayerInfo {
            name: name.into(),
            op: "Relu".into(),
            kind: LayerKind::Conv,
            shape: vec![2, 4, 4],
            neurons: 2,
            default_selected: true,
            role: String::new(),
            receptive_field: field,
            aliases: vec![format!("/{name}/Relu_output_0"), format!("{name}.relu")],
        };
        ModelDescription {
            inputs: vec![],
            layers: vec![
                layer(
                    "a",
                    Some(ReceptiveField {
                        size: [5, 3],
                        jump: [2, 1],
                        offset: [-2, -1],
                    }),
                ),
                layer("b", None),
            ],
            class_names: vec![],
            num_classes: 2,
            notes: vec![],
            data_files: vec!["/models/m.onnx.data".into()],
        }
    }

    #[test]
    fn receptive_fields_cross_the_view_and_a_1_0_view_has_none() {
        let d = description();
        let (_keep, mut view) = description_view(d.clone()).unwrap();
        // SAFETY: the view points into `_keep`, alive for the whole test.
        let back = unsafe { read_description(&view) }.unwrap();
        assert_eq!(back.layers, d.layers);
        assert_eq!(back.data_files, d.data_files);
        // A plugin built against ABI 1.0: its view ends before `receptive_fields`.
        view.size = std::mem::offset_of!(ModelDescriptionView, receptive_fields);
        // SAFETY: as above; the reader must not touch the field past `size`.
        let old = unsafe { read_description(&view) }.unwrap();
        assert!(old.layers.iter().all(|l| l.receptive_field.is_none()));
        assert!(old.layers.iter().all(|l| l.aliases.is_empty()));
        // A plugin built against ABI 1.1: receptive fields but no aliases.
        view.size = std::mem::offset_of!(ModelDescriptionView, layer_aliases);
        // SAFETY: as above.
        let one_one = unsafe { read_description(&view) }.unwrap();
        assert_eq!(
            one_one.layers[0].receptive_field,
            d.layers[0].receptive_field
        );
        assert!(one_one.layers.iter().all(|l| l.aliases.is_empty()));
        assert!(one_one.data_files.is_empty());
        view.size = std::mem::offset_of!(ModelDescriptionView, receptive_fields);
        // Shorter than 1.0 is refused.
        view.size -= 1;
        // SAFETY: as above.
        assert!(unsafe { read_description(&view) }.is_err());
    }
}
