//! The adapter's gradients: the backward graph of a layer objective built once per layer
//! ([`crate::backward`]), after one run that learns every tensor's shape, and run by the
//! adapter's sessions, image by image for a model with a fixed batch of 1.

use std::collections::HashMap;

use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef as OrtTensorRef;
use shiftscope_sdk::{
    Gradient, GradientRequest, NamedTensor, Objective, PluginError, Tensor, TensorRef,
};

use crate::graph::Exposed;
use crate::{OnnxModel, backward, decision, ort_error};

impl OnnxModel {
    /// Learns every float tensor's whole shape (the rules need the shapes of reshaped and
    /// transposed tensors too, whatever their layout): a run of one image, and one of two to
    /// see which axes grow with the batch. Once per model.
    fn learn_every_shape(&mut self) -> Result<(), PluginError> {
        if !self.full_shapes.is_empty() {
            return Ok(());
        }
        let all: Vec<Exposed> = self
            .graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter())
            .filter(|o| !o.is_empty())
            .map(|o| Exposed::Full(o.clone()))
            .collect();
        let Some(image) = self.shapes.get(&self.graph.input.name).cloned() else {
            return Err(PluginError::failed("the image's shape was not recorded"));
        };
        let bytes = self.graph.with_outputs(&all)?;
        let mut session =
            self.build_session(&bytes, self.device, GraphOptimizationLevel::Disable)?;
        let input_name = self.graph.input.name.clone();
        let path = self.path.display().to_string();
        type Ints = HashMap<String, (Vec<i64>, Vec<i64>)>;
        let mut run = |n: usize| -> Result<(HashMap<String, Vec<usize>>, Ints), PluginError> {
            let mut dims = vec![n];
            dims.extend_from_slice(&image);
            let zeros = vec![0.0f32; n * image.iter().product::<usize>()];
            let input = OrtTensorRef::from_array_view((dims, &zeros[..]))
                .map_err(|e| ort_error("shape run input", e))?;
            let outputs = session
                .run(ort::inputs![input_name.as_str() => input])
                .map_err(|e| ort_error(&format!("{path}: shape run"), e))?;
            let mut found = HashMap::new();
            let mut ints = HashMap::new();
            for (name, value) in outputs.iter() {
                if let Ok((shape, _)) = value.try_extract_tensor::<f32>() {
                    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                    found.insert(name.to_owned(), dims);
                } else if let Ok((shape, values)) = value.try_extract_tensor::<i64>() {
                    ints.insert(name.to_owned(), (shape.to_vec(), values.to_vec()));
                }
            }
            Ok((found, ints))
        };
        let (one, ints_one) = run(1)?;
        let two = if self.graph.input.shape[0] == Some(1) {
            None
        } else {
            Some(run(2)?)
        };
        // An int64 tensor none of whose inputs reads the image's values (only its shape,
        // through Shape or Size) is a function of the shapes; one that is the same at a
        // batch of one and of two is a constant of the model.
        let from_shapes = shape_only_tensors(self.graph.model(), &input_name);
        let mut constants = HashMap::new();
        for (name, (dims, values)) in ints_one {
            let same = match two.as_ref().map(|(_, ints)| ints.get(&name)) {
                None => true,
                Some(other) => other.is_some_and(|(d, v)| *d == dims && *v == values),
            };
            if same && from_shapes.contains(&name) {
                constants.insert(name.clone(), int64_tensor(&name, &dims, &values));
            }
        }
        self.shape_constants = constants;
        let two = two.map(|(found, _)| found);
        let mut full = HashMap::new();
        for (name, dims) in one {
            let batched = match two.as_ref().and_then(|t| t.get(&name)) {
                Some(other) if other.len() == dims.len() => {
                    dims.iter().zip(other).map(|(a, b)| a != b).collect()
                }
                _ => vec![false; dims.len()],
            };
            full.insert(name, (dims, batched));
        }
        let mut image_dims = vec![1];
        image_dims.extend_from_slice(&image);
        let mut image_batched = vec![false; image_dims.len()];
        image_batched[0] = two.is_some();
        full.insert(input_name, (image_dims, image_batched));
        self.full_shapes = full;
        Ok(())
    }

    /// The adapter's [`shiftscope_sdk::ModelAdapter::gradient`]: the backward graph of the
    /// request's layer, objective and maps is built once and kept; one session serves every
    /// weight (neuron, channel, position, class) since the weights are its input.
    pub(crate) fn gradient_run(
        &mut self,
        batch: TensorRef<'_>,
        request: &GradientRequest<'_>,
    ) -> Result<Gradient, PluginError> {
        let n = self.check_input(batch)?;
        let (tensor, kind) = self.layer_tensor(request.layer)?;
        let Some(layer) = self.description.layer(request.layer) else {
            return Err(PluginError::not_found(format!(
                "{}: no layer '{}'",
                self.path.display(),
                request.layer
            )));
        };
        request.check_weights(layer, n)?;
        if self.graph.input.channels_last.is_some() || !self.graph.casts.is_empty() {
            return Err(PluginError::unsupported(format!(
                "{}: gradients of channels-last or float16 models are not supported yet",
                self.path.display()
            )));
        }
        // Each requested map's tensor, output once however often it is asked.
        let mut map_tensors: Vec<String> = Vec::new();
        let mut map_index = Vec::with_capacity(request.maps.len());
        for name in request.maps {
            let (t, _) = self.layer_tensor(name)?;
            let i = match map_tensors.iter().position(|m| *m == t) {
                Some(i) => i,
                None => {
                    map_tensors.push(t);
                    map_tensors.len() - 1
                }
            };
            map_index.push(i);
        }
        let key = GradientKey {
            tensor: tensor.clone(),
            objective: request.objective,
            maps: map_tensors.clone(),
        };
        if !self.gradient_sessions.contains_key(&key) {
            self.learn_every_shape()?;
            let dir = self.graph.dir.clone();
            let path = self.path.clone();
            let floats = move |t: &onnx_protobuf::TensorProto| {
                decision::read_floats(t, &path, &dir).map(|(_, v)| v)
            };
            let forward = backward::Forward {
                model: self.graph.model(),
                path: &self.path,
                input: &self.graph.input.name,
                shapes: &self.shapes,
                full: &self.full_shapes,
                shape_constants: &self.shape_constants,
                floats: &floats,
            };
            let target = backward::Target {
                tensor: tensor.clone(),
                kind,
                objective: request.objective,
                maps: map_tensors.clone(),
            };
            let bytes = backward::gradient_model(&forward, &target)?;
            // Full optimisation: the backward graph is complete before ONNX Runtime sees
            // it, so its rewrites (fusions, the blocked NCHWc convolution layout) only
            // speed up what the rules built (1.1× on ResNet-18 against level 1).
            let session = self.build_session(&bytes, self.device, GraphOptimizationLevel::All)?;
            self.gradient_sessions.insert(key.clone(), session);
        }
        let input_name = self.graph.input.name.clone();
        let path = self.path.display().to_string();
        let session = self
            .gradient_sessions
            .get_mut(&key)
            .ok_or_else(|| PluginError::failed("gradient session cache lost an entry"))?;
        // A model with a fixed batch of 1 runs image by image.
        let chunk = if self.graph.input.shape[0] == Some(1) {
            1
        } else {
            n.max(1)
        };
        let per_image: usize = batch.shape()[1..].iter().product();
        let w_per_image: usize = request.weights.shape()[1..].iter().product();
        let mut objective = Vec::with_capacity(n);
        let mut grad = Vec::with_capacity(n * per_image);
        let mut maps: Vec<(Vec<usize>, Vec<f32>)> =
            vec![(Vec::new(), Vec::new()); map_tensors.len()];
        for (start, images) in (0..n)
            .step_by(chunk)
            .zip(batch.data().chunks(per_image * chunk))
        {
            let count = images.len() / per_image.max(1);
            let mut dims = vec![count];
            dims.extend_from_slice(&batch.shape()[1..]);
            let image = OrtTensorRef::from_array_view((dims, images))
                .map_err(|e| ort_error("gradient input", e))?;
            let mut w_dims = vec![count];
            w_dims.extend_from_slice(&request.weights.shape()[1..]);
            let w = &request.weights.data()[start * w_per_image..(start + count) * w_per_image];
            let w = OrtTensorRef::from_array_view((w_dims, w))
                .map_err(|e| ort_error("gradient weights", e))?;
            let result = session
                .run(ort::inputs![input_name.as_str() => image, backward::WEIGHTS => w])
                .map_err(|e| ort_error(&format!("{path}: gradient run"), e))?;
            let read = |name: &str| -> Result<(Vec<usize>, &[f32]), PluginError> {
                let value = result
                    .get(name)
                    .ok_or_else(|| PluginError::failed(format!("{path}: no '{name}'")))?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| ort_error(&format!("{path}: '{name}'"), e))?;
                Ok((shape.iter().map(|&d| d.max(0) as usize).collect(), data))
            };
            objective.extend_from_slice(read(backward::OBJECTIVE)?.1);
            grad.extend_from_slice(read(backward::INPUT_GRADIENT)?.1);
            for (name, (shape, data)) in map_tensors.iter().zip(maps.iter_mut()) {
                let (dims, values) = read(name)?;
                if shape.is_empty() {
                    *shape = dims;
                } else if let Some(first) = shape.first_mut() {
                    *first += count;
                }
                data.extend_from_slice(values);
            }
        }
        if grad.len() != n * per_image || objective.len() != n {
            return Err(PluginError::failed(format!(
                "{path}: the gradient run returned {} values for {n} images",
                grad.len()
            )));
        }
        let maps = request
            .maps
            .iter()
            .zip(map_index)
            .map(|(name, i)| {
                let (shape, data) = maps[i].clone();
                Ok(NamedTensor {
                    name: name.clone(),
                    tensor: Tensor::new(shape, data)?,
                })
            })
            .collect::<Result<_, PluginError>>()?;
        Ok(Gradient {
            objective: Tensor::new(vec![n], objective)?,
            input: Tensor::new(batch.shape().to_vec(), grad)?,
            maps,
        })
    }
}

/// What a backward graph was built for: the target tensor, the objective, the maps it
/// outputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GradientKey {
    tensor: String,
    objective: Objective,
    maps: Vec<String>,
}

/// The tensors of `model` that do not depend on the values of `image`: every tensor but
/// those computed, through any chain of nodes, from the image, where Shape and Size read
/// only its shape. Nodes with subgraphs count as reading the image.
fn shape_only_tensors(
    model: &onnx_protobuf::ModelProto,
    image: &str,
) -> std::collections::HashSet<String> {
    let mut valued = std::collections::HashSet::from([image.to_owned()]);
    let mut shaped = std::collections::HashSet::new();
    let Some(graph) = model.graph.as_ref() else {
        return shaped;
    };
    // ONNX lists nodes in topological order.
    for node in &graph.node {
        let subgraph = node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty());
        let reads_values = match node.op_type.as_str() {
            "Shape" | "Size" => false,
            _ => subgraph || node.input.iter().any(|i| valued.contains(i)),
        };
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            if reads_values {
                valued.insert(output.clone());
            } else {
                shaped.insert(output.clone());
            }
        }
    }
    shaped
}

fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> onnx_protobuf::TensorProto {
    let mut t = onnx_protobuf::TensorProto::new();
    t.name = name.to_owned();
    t.data_type = onnx_protobuf::tensor_proto::DataType::INT64 as i32;
    t.dims = dims.to_vec();
    t.int64_data = values.to_vec();
    t
}
