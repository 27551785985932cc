//! The host's checks on every plugin, built in or loaded: outputs must have the shapes the
//! plugin itself declared, samples must be well-formed, and every error names the plugin
//! and the call. What the runtime receives from the registry is always wrapped here.

use shiftscope_sdk::{
    ActivationSet, Dataset, DatasetInfo, DatasetSource, DecisionLayer, Gradient, GradientRequest,
    LayerKind, ModelAdapter, ModelDescription, PluginError, Pooling, Sample, TensorRef,
};

/// A model adapter whose outputs are checked against its description, and whose NaN and
/// infinite values are counted per layer (and logged as a warning when they appear).
pub struct CheckedModel {
    inner: Box<dyn ModelAdapter>,
    who: String,
    description: Option<ModelDescription>,
    non_finite: Vec<(String, u64)>,
}

impl std::fmt::Debug for CheckedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedModel")
            .field("who", &self.who)
            .finish()
    }
}

/// Checks a description for internal consistency.
pub fn check_description(description: &ModelDescription) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for layer in &description.layers {
        if !names.insert(layer.name.as_str()) {
            return Err(format!("layer '{}' is listed twice", layer.name));
        }
        if layer.kind.neurons(&layer.shape) != Some(layer.neurons) {
            return Err(format!(
                "layer '{}' of kind {} and shape {:?} cannot have {} neurons",
                layer.name,
                layer.kind.as_str(),
                layer.shape,
                layer.neurons
            ));
        }
        if let Some(field) = &layer.receptive_field {
            if layer.kind != LayerKind::Conv {
                return Err(format!(
                    "layer '{}' is a {} layer with a receptive field (only conv layers have one)",
                    layer.name,
                    layer.kind.as_str()
                ));
            }
            if field.size.contains(&0) || field.jump.contains(&0) {
                return Err(format!(
                    "layer '{}' has a receptive field of size {:?} and jump {:?} (both must be \
                     at least 1)",
                    layer.name, field.size, field.jump
                ));
            }
        }
    }
    if description.inputs.is_empty() {
        return Err("the model declares no input".to_owned());
    }
    if description.num_classes == 0 {
        return Err("the model declares no classes".to_owned());
    }
    if !description.class_names.is_empty()
        && description.class_names.len() != description.num_classes
    {
        return Err(format!(
            "{} class names for {} classes",
            description.class_names.len(),
            description.num_classes
        ));
    }
    Ok(())
}

impl CheckedModel {
    /// Wraps `inner`; `who` names the plugin in every error.
    pub fn new(inner: Box<dyn ModelAdapter>, who: String) -> CheckedModel {
        CheckedModel {
            inner,
            who,
            description: None,
            non_finite: Vec::new(),
        }
    }

    /// NaN and infinite values seen so far in `run` outputs, per layer (the logits as
    /// `logits`), in the order first seen; layers without any are not listed.
    pub fn non_finite_counts(&self) -> &[(String, u64)] {
        &self.non_finite
    }

    fn count_non_finite(&mut self, set: &ActivationSet) {
        for (layer, n) in set.non_finite_counts() {
            if n == 0 {
                continue;
            }
            tracing::warn!(
                "{}: layer '{layer}' returned {n} NaN or infinite values",
                self.who
            );
            match self.non_finite.iter_mut().find(|(name, _)| name == layer) {
                Some((_, total)) => *total += n as u64,
                None => self.non_finite.push((layer.to_owned(), n as u64)),
            }
        }
    }

    fn err(&self, call: &str, error: PluginError) -> PluginError {
        error.context(format!("{}: {call}", self.who))
    }

    fn description(&mut self) -> Result<&ModelDescription, PluginError> {
        if self.description.is_none() {
            let description = self
                .inner
                .describe()
                .map_err(|e| e.context(format!("{}: describe", self.who)))?;
            check_description(&description).map_err(|problem| {
                PluginError::failed(format!(
                    "{}: describe returned a bad description: {problem}",
                    self.who
                ))
            })?;
            self.description = Some(description);
        }
        self.description
            .as_ref()
            .ok_or_else(|| PluginError::failed("description missing"))
    }

    /// Checks an activation set: the layers asked for, in order, each `[batch, per_image(layer)...]`.
    fn check_set(
        &mut self,
        set: &ActivationSet,
        layers: &[String],
        batch: usize,
        per_image: impl Fn(&shiftscope_sdk::LayerInfo) -> Vec<usize>,
    ) -> Result<(), PluginError> {
        let description = self.description()?;
        let bad = |problem: String| PluginError::failed(problem);
        let logits = [batch, description.num_classes];
        if set.logits.shape() != logits {
            return Err(bad(format!(
                "returned logits of shape {:?}, expected {logits:?}",
                set.logits.shape()
            )));
        }
        self.check_layers(&set.layers, layers, batch, per_image)
    }

    /// Checks returned layer tensors: the layers asked for, in order, each
    /// `[batch, per_image(layer)...]`.
    fn check_layers(
        &mut self,
        got: &[shiftscope_sdk::NamedTensor],
        layers: &[String],
        batch: usize,
        per_image: impl Fn(&shiftscope_sdk::LayerInfo) -> Vec<usize>,
    ) -> Result<(), PluginError> {
        let description = self.description()?;
        let bad = |problem: String| PluginError::failed(problem);
        if got.len() != layers.len() {
            return Err(bad(format!(
                "returned {} layer tensors for {} layers asked",
                got.len(),
                layers.len()
            )));
        }
        for (got, asked) in got.iter().zip(layers) {
            if &got.name != asked {
                return Err(bad(format!(
                    "returned layer '{}' where '{asked}' was asked",
                    got.name
                )));
            }
            let info = description
                .layer(asked)
                .ok_or_else(|| bad(format!("returned undeclared layer '{asked}'")))?;
            let mut expected = vec![batch];
            expected.extend(per_image(info));
            if got.tensor.shape() != expected.as_slice() {
                return Err(bad(format!(
                    "returned layer '{asked}' of shape {:?}, expected {expected:?}",
                    got.tensor.shape()
                )));
            }
        }
        Ok(())
    }

    fn check_request(
        &mut self,
        input: TensorRef<'_>,
        layers: &[String],
    ) -> Result<usize, PluginError> {
        let description = self.description()?;
        for layer in layers {
            if description.layer(layer).is_none() {
                return Err(PluginError::not_found(format!(
                    "the model has no layer '{layer}'"
                )));
            }
        }
        input
            .shape()
            .first()
            .copied()
            .ok_or_else(|| PluginError::invalid_argument("input has rank 0"))
    }
}

impl ModelAdapter for CheckedModel {
    fn describe(&mut self) -> Result<ModelDescription, PluginError> {
        self.description().cloned()
    }

    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        pooling: Pooling,
    ) -> Result<ActivationSet, PluginError> {
        let n = self
            .check_request(batch, layers)
            .map_err(|e| self.err("run", e))?;
        let set = self
            .inner
            .run(batch, layers, pooling)
            .map_err(|e| self.err("run", e))?;
        self.check_set(&set, layers, n, |layer| vec![layer.neurons])
            .map_err(|e| self.err("run", e))?;
        self.count_non_finite(&set);
        Ok(set)
    }

    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        let n = self
            .check_request(image, layers)
            .map_err(|e| self.err("run_maps", e))?;
        if n != 1 {
            return Err(self.err(
                "run_maps",
                PluginError::invalid_argument(format!("takes one image, got a batch of {n}")),
            ));
        }
        let set = self
            .inner
            .run_maps(image, layers)
            .map_err(|e| self.err("run_maps", e))?;
        self.check_set(&set, layers, 1, |layer| layer.shape.clone())
            .map_err(|e| self.err("run_maps", e))?;
        Ok(set)
    }

    fn decision_layer(&mut self) -> Result<DecisionLayer, PluginError> {
        let layer = self
            .inner
            .decision_layer()
            .map_err(|e| self.err("decision_layer", e))?;
        let check = |this: &mut CheckedModel| -> Result<(), PluginError> {
            let (k, d) = layer.dims()?;
            let description = this.description()?;
            let Some(input) = description.layer(&layer.input) else {
                return Err(PluginError::failed(format!(
                    "names '{}' as the classifier's input, a layer the model does not describe",
                    layer.input
                )));
            };
            if input.neurons != d || description.num_classes != k {
                return Err(PluginError::failed(format!(
                    "returned weights [{k}, {d}] but the model has {} classes and its layer '{}' \
                     has {} neurons",
                    description.num_classes, layer.input, input.neurons
                )));
            }
            let finite = |t: &shiftscope_sdk::Tensor| t.data().iter().all(|v| v.is_finite());
            if !finite(&layer.weights) || !finite(&layer.bias) {
                return Err(PluginError::failed(
                    "returned a decision layer with NaN or infinite values",
                ));
            }
            Ok(())
        };
        check(self).map_err(|e| self.err("decision_layer", e))?;
        Ok(layer)
    }

    fn export_with_decision_layer(
        &mut self,
        layer: &DecisionLayer,
        path: &std::path::Path,
        overwrite: bool,
    ) -> Result<(), PluginError> {
        self.inner
            .export_with_decision_layer(layer, path, overwrite)
            .map_err(|e| self.err("export_with_decision_layer", e))
    }

    fn gradient(
        &mut self,
        batch: TensorRef<'_>,
        request: &GradientRequest<'_>,
    ) -> Result<Gradient, PluginError> {
        let n = self
            .check_request(batch, request.maps)
            .map_err(|e| self.err("gradient", e))?;
        let check_request = |this: &mut CheckedModel| -> Result<(), PluginError> {
            let description = this.description()?;
            let layer = description.layer(request.layer).ok_or_else(|| {
                PluginError::not_found(format!(
                    "the model has no layer '{}' to take a gradient of",
                    request.layer
                ))
            })?;
            request.check_weights(layer, n)
        };
        check_request(self).map_err(|e| self.err("gradient", e))?;
        let gradient = self
            .inner
            .gradient(batch, request)
            .map_err(|e| self.err("gradient", e))?;
        let check = |this: &mut CheckedModel| -> Result<(), PluginError> {
            if gradient.objective.shape() != [n] {
                return Err(PluginError::failed(format!(
                    "returned an objective of shape {:?} for a batch of {n}",
                    gradient.objective.shape()
                )));
            }
            if gradient.input.shape() != batch.shape() {
                return Err(PluginError::failed(format!(
                    "returned an input gradient of shape {:?} for a batch of shape {:?}",
                    gradient.input.shape(),
                    batch.shape()
                )));
            }
            this.check_layers(&gradient.maps, request.maps, n, |layer| layer.shape.clone())
        };
        check(self).map_err(|e| self.err("gradient", e))?;
        Ok(gradient)
    }

    fn outstanding_outputs(&self) -> Option<u64> {
        self.inner.outstanding_outputs()
    }
}

/// A dataset source whose datasets are checked.
pub struct CheckedSource {
    inner: Box<dyn DatasetSource>,
    who: String,
}

impl std::fmt::Debug for CheckedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedSource")
            .field("who", &self.who)
            .finish()
    }
}

impl CheckedSource {
    /// Wraps `inner`; `who` names the plugin in every error.
    pub fn new(inner: Box<dyn DatasetSource>, who: String) -> CheckedSource {
        CheckedSource { inner, who }
    }
}

impl DatasetSource for CheckedSource {
    fn catalog(&self) -> Result<Vec<DatasetInfo>, PluginError> {
        self.inner
            .catalog()
            .map_err(|e| e.context(format!("{}: catalog", self.who)))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Dataset>, PluginError> {
        let who = format!("{}: dataset '{name}'", self.who);
        let inner = self
            .inner
            .open(name)
            .map_err(|e| e.context(format!("{}: open '{name}'", self.who)))?;
        if inner.classes().is_empty() {
            return Err(PluginError::failed(format!("{who}: has no class names")));
        }
        Ok(Box::new(CheckedDataset { inner, who }))
    }

    fn outstanding_outputs(&self) -> Option<u64> {
        self.inner.outstanding_outputs()
    }
}

struct CheckedDataset {
    inner: Box<dyn Dataset>,
    who: String,
}

impl Dataset for CheckedDataset {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn classes(&self) -> &[String] {
        self.inner.classes()
    }

    fn get(&self, index: usize) -> Result<Sample, PluginError> {
        let who = || format!("{}: get({index})", self.who);
        let len = self.inner.len();
        if index >= len {
            return Err(PluginError::out_of_range(format!(
                "{}: index {index} is past the end ({len} samples)",
                who()
            )));
        }
        let sample = self.inner.get(index).map_err(|e| e.context(who()))?;
        let expected = (sample.width as usize) * (sample.height as usize) * 3;
        if sample.width == 0 || sample.height == 0 || sample.pixels.len() != expected {
            return Err(PluginError::failed(format!(
                "{}: returned a {}x{} sample with {} bytes of pixels (RGB needs {expected})",
                who(),
                sample.width,
                sample.height,
                sample.pixels.len()
            )));
        }
        if sample.label as usize >= self.inner.classes().len() {
            return Err(PluginError::failed(format!(
                "{}: returned label {} but the dataset has {} classes",
                who(),
                sample.label,
                self.inner.classes().len()
            )));
        }
        Ok(sample)
    }
}

#[cfg(test)]
mod receptive_field_tests {
    use shiftscope_sdk::{InputSpec, LayerInfo, ReceptiveField};

    use super::*;

    fn description(kind: LayerKind, shape: Vec<usize>, field: ReceptiveField) -> ModelDescription {
        ModelDescription {
            inputs: vec![InputSpec {
                name: "x".into(),
                shape: vec![None, Some(3), Some(8), Some(8)],
            }],
            layers: vec![LayerInfo {
                name: "a".into(),
                op: "Conv".into(),
                kind,
                shape,
                neurons: 2,
                default_selected: true,
                role: String::new(),
                receptive_field: Some(field),
                aliases: Vec::new(),
            }],
            class_names: vec![],
            num_classes: 2,
            notes: vec![],
            data_files: vec![],
        }
    }

    #[test]
    fn receptive_fields_belong_to_conv_layers_and_are_not_empty() {
        let ok = ReceptiveField {
            size: [3, 3],
            jump: [2, 2],
            offset: [-1, -1],
        };
        assert_eq!(
            check_description(&description(LayerKind::Conv, vec![2, 4, 4], ok)),
            Ok(())
        );
        let e = check_description(&description(LayerKind::Dense, vec![2], ok)).unwrap_err();
        assert!(e.contains("dense layer with a receptive field"), "{e}");
        let empty = ReceptiveField { jump: [0, 1], ..ok };
        let e = check_description(&description(LayerKind::Conv, vec![2, 4, 4], empty)).unwrap_err();
        assert!(e.contains("jump [0, 1]"), "{e}");
    }
}
