//! The model-adapter side of the contract: what a model says about itself, what one run
//! returns, and the trait an adapter implements.

use crate::{PluginError, Tensor, TensorRef};

/// What a neuron is in a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `[C, H, W]` per image: a neuron is a channel.
    Conv,
    /// `[T, D]` per image: a neuron is a hidden unit.
    Tokens,
    /// `[D]` per image: a neuron is a unit.
    Dense,
    /// `[K]` per image: the classifier output.
    Logits,
}

impl LayerKind {
    /// The short name used in tables and configs.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Tokens => "tokens",
            LayerKind::Dense => "dense",
            LayerKind::Logits => "logits",
        }
    }

    /// The number of neurons of a layer of this kind with per-image `shape`, or `None` when
    /// the shape's rank does not fit the kind.
    pub fn neurons(self, shape: &[usize]) -> Option<usize> {
        match (self, shape) {
            (LayerKind::Conv, [c, _, _]) => Some(*c),
            (LayerKind::Tokens, [_, d]) => Some(*d),
            (LayerKind::Dense | LayerKind::Logits, [d]) => Some(*d),
            _ => None,
        }
    }
}

/// One model input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Name in the model.
    pub name: String,
    /// Dimension sizes with the batch axis first; `None` where dynamic.
    pub shape: Vec<Option<usize>>,
}

/// One recordable layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's name: what `run` is asked for and what stores, reports and the viewer show.
    pub name: String,
    /// Other names that select the same layer (e.g. the graph's tensor name behind a PyTorch
    /// module path); `run` accepts them too.
    pub aliases: Vec<String>,
    /// The operator producing it.
    pub op: String,
    /// What a neuron is.
    pub kind: LayerKind,
    /// Per-image shape, without the batch axis.
    pub shape: Vec<usize>,
    /// Number of neurons (see [`LayerKind::neurons`]).
    pub neurons: usize,
    /// Whether the layer is recorded when the user names none.
    pub default_selected: bool,
    /// Why the layer matters, for selectors: `activation`, `block`, `pool`, `norm`,
    /// `features` (the classifier's input), `logits`, or empty.
    pub role: String,
    /// Where the layer's neurons look in the model input, for a spatial layer whose field
    /// the adapter computed from its graph; `None` means the whole image (dense and token
    /// layers, or an adapter that gives none).
    pub receptive_field: Option<ReceptiveField>,
}

/// The receptive field of a spatial layer, per axis (height, width): map position `i` along
/// an axis sees input pixels `offset + i * jump .. offset + i * jump + size` (coordinates in
/// the model input; negative or past the end where the window reaches into padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReceptiveField {
    /// Window size in input pixels.
    pub size: [usize; 2],
    /// Input pixels between neighbouring map positions (the product of the strides).
    pub jump: [usize; 2],
    /// Input coordinate of position 0's first pixel.
    pub offset: [i64; 2],
}

impl ReceptiveField {
    /// The field of the input itself: one pixel per position.
    pub const IDENTITY: ReceptiveField = ReceptiveField {
        size: [1, 1],
        jump: [1, 1],
        offset: [0, 0],
    };

    /// The top-left input pixel (row, column) of map position `(y, x)`'s window.
    pub fn origin(&self, y: usize, x: usize) -> [i64; 2] {
        [
            self.offset[0] + (y * self.jump[0]) as i64,
            self.offset[1] + (x * self.jump[1]) as i64,
        ]
    }
}

/// What a model says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDescription {
    /// Inputs; the first is the image.
    pub inputs: Vec<InputSpec>,
    /// Candidate layers in network order.
    pub layers: Vec<LayerInfo>,
    /// Class names; empty when the model carries none.
    pub class_names: Vec<String>,
    /// Width of the logits.
    pub num_classes: usize,
    /// Lines for people about how the model runs (runtime library, device, batching).
    pub notes: Vec<String>,
    /// Files besides the model file that the model reads (an ONNX model's external data),
    /// absolute: what a store's model identity covers with the model file.
    pub data_files: Vec<String>,
}

impl ModelDescription {
    /// The layer called `name`, by its name or else by one of its aliases.
    pub fn layer(&self, name: &str) -> Option<&LayerInfo> {
        self.layers.iter().find(|l| l.name == name).or_else(|| {
            self.layers
                .iter()
                .find(|l| l.aliases.iter().any(|a| a == name))
        })
    }
}

/// Reduction of a conv map to one value per channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvPooling {
    /// Spatial mean (the Deephys convention).
    #[default]
    Mean,
    /// Spatial max.
    Max,
}

/// Reduction of a token sequence to one value per hidden unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenPooling {
    /// Mean over tokens.
    #[default]
    Mean,
    /// Token 0.
    Cls,
    /// Max over tokens.
    Max,
}

/// How `run` pools each kind of layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pooling {
    /// For conv layers.
    pub conv: ConvPooling,
    /// For token layers.
    pub tokens: TokenPooling,
}

/// A tensor with the name of its layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Layer name.
    pub name: String,
    /// Values.
    pub tensor: Tensor,
}

/// What one run returns.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationSet {
    /// One tensor per requested layer, in request order.
    pub layers: Vec<NamedTensor>,
    /// Classifier output, `[B, K]`.
    pub logits: Tensor,
}

impl ActivationSet {
    /// How many NaN or infinite values each layer holds (the logits last, named `logits`),
    /// for the recorder to count and report per layer instead of storing them silently.
    pub fn non_finite_counts(&self) -> Vec<(&str, usize)> {
        let count = |t: &Tensor| t.data().iter().filter(|v| !v.is_finite()).count();
        self.layers
            .iter()
            .map(|l| (l.name.as_str(), count(&l.tensor)))
            .chain([("logits", count(&self.logits))])
            .collect()
    }
}

/// The model's final linear classifier, `logits = W f + b`, where `f` is the per-image value
/// of the recordable layer `input` (its pooled value, for a conv layer whose maps are 1×1).
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionLayer {
    /// The recordable layer whose values are `f` (role `features`).
    pub input: String,
    /// The operator(s) it is made of, for people: `Gemm`, `MatMul+Add`.
    pub op: String,
    /// `W`, `[K, D]`: row `k` holds class `k`'s weights (any transpose or scale in the
    /// model already applied).
    pub weights: Tensor,
    /// `b`, `[K]` (any scale already applied; zeros when the model has no bias).
    pub bias: Tensor,
}

impl DecisionLayer {
    /// `(K, D)`, after checking that `weights` is `[K, D]` and `bias` is `[K]`.
    pub fn dims(&self) -> Result<(usize, usize), PluginError> {
        match (self.weights.shape(), self.bias.shape()) {
            ([k, d], [kb]) if k == kb => Ok((*k, *d)),
            (w, b) => Err(PluginError::invalid_argument(format!(
                "a decision layer needs weights [K, D] and bias [K]; got weights {w:?} and bias {b:?}"
            ))),
        }
    }
}

/// A model that can be run on image batches while its layers are recorded.
///
/// An instance is used by one thread at a time; it may move between threads.
pub trait ModelAdapter: Send {
    /// Inputs, candidate layers and class names.
    fn describe(&mut self) -> Result<ModelDescription, PluginError>;

    /// Runs `batch` (`[B, C, H, W]`, normalised `f32`) and returns each layer of `layers`
    /// pooled to `[B, neurons]`, in the order asked, plus the logits `[B, K]`.
    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        pooling: Pooling,
    ) -> Result<ActivationSet, PluginError>;

    /// Runs one image (`[1, C, H, W]`) and returns each layer's full map `[1, ...shape]`, plus
    /// the logits.
    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError>;

    /// The model's final linear classifier and the layer that feeds it. The default says
    /// the adapter does not provide it ([`crate::ErrorKind::Unsupported`]); an adapter that
    /// does, but whose model ends otherwise, says why with the same kind.
    fn decision_layer(&mut self) -> Result<DecisionLayer, PluginError> {
        Err(PluginError::unsupported(
            "this model adapter does not provide the decision layer (it implements no `decision_layer`)",
        ))
    }

    /// Writes a copy of the model whose decision layer has `layer`'s weights and bias to
    /// `path` (the model itself is never modified). Refuses an existing `path` unless
    /// `overwrite`. The default says the adapter cannot.
    fn export_with_decision_layer(
        &mut self,
        layer: &DecisionLayer,
        path: &std::path::Path,
        overwrite: bool,
    ) -> Result<(), PluginError> {
        let _ = (layer, path, overwrite);
        Err(PluginError::unsupported(
            "this model adapter cannot export a model with an edited decision layer",
        ))
    }

    /// Runs `batch` (`[B, C, H, W]`, normalised `f32`) forward and back: the objective of
    /// `request` per image, its gradient with respect to the batch, and the maps the request
    /// names. Optional: the default says the adapter computes no gradients
    /// ([`crate::ErrorKind::Unsupported`]).
    fn gradient(
        &mut self,
        batch: TensorRef<'_>,
        request: &crate::GradientRequest<'_>,
    ) -> Result<crate::Gradient, PluginError> {
        let _ = (batch, request);
        Err(PluginError::unsupported(
            "no gradients: this model adapter implements no `gradient`",
        ))
    }

    /// Outputs handed out by a dynamically loaded plugin and not yet released; `None` for a
    /// plugin linked into the binary, where Rust ownership rules out leaks.
    fn outstanding_outputs(&self) -> Option<u64> {
        None
    }
}

/// A [`ModelAdapter`] that can be exported as a plugin.
pub trait ModelAdapterPlugin: ModelAdapter + Sized + 'static {
    /// Plugin name, unique among plugins.
    const NAME: &'static str;
    /// Plugin version.
    const VERSION: &'static str;
    /// Makes an instance from the plugin's config (RON text; may be empty).
    fn create(config: &str) -> Result<Self, PluginError>;
}

/// Pools one image's map of a layer (`shape` per image, values row-major) to one value per
/// neuron, the way [`ModelAdapter::run`] must.
pub fn pool_map(
    kind: LayerKind,
    shape: &[usize],
    values: &[f32],
    pooling: Pooling,
) -> Result<Vec<f32>, PluginError> {
    let expected: usize = shape.iter().product();
    if values.len() != expected {
        return Err(PluginError::invalid_argument(format!(
            "map of shape {shape:?} cannot hold {} values",
            values.len()
        )));
    }
    let reduce = |chunks: &mut dyn Iterator<Item = &[f32]>, max: bool| -> Vec<f32> {
        chunks
            .map(|c| {
                if max {
                    c.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                } else {
                    c.iter().sum::<f32>() / c.len().max(1) as f32
                }
            })
            .collect()
    };
    match (kind, shape) {
        (LayerKind::Conv, [_, h, w]) => {
            let plane = (h * w).max(1);
            Ok(reduce(
                &mut values.chunks(plane),
                pooling.conv == ConvPooling::Max,
            ))
        }
        (LayerKind::Tokens, [t, d]) => {
            let (t, d) = (*t, *d);
            if t == 0 {
                return Ok(vec![0.0; d]);
            }
            Ok((0..d)
                .map(|j| {
                    let col = (0..t).map(|i| values[i * d + j]);
                    match pooling.tokens {
                        TokenPooling::Mean => col.sum::<f32>() / t as f32,
                        TokenPooling::Cls => values[j],
                        TokenPooling::Max => col.fold(f32::NEG_INFINITY, f32::max),
                    }
                })
                .collect())
        }
        (LayerKind::Dense | LayerKind::Logits, [_]) => Ok(values.to_vec()),
        _ => Err(PluginError::invalid_argument(format!(
            "a {} layer cannot have per-image shape {shape:?}",
            kind.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_by_hand() {
        // Two channels of 2x2.
        let map = [1.0, 2.0, 3.0, 6.0, -1.0, -2.0, -3.0, -6.0];
        let mean = pool_map(LayerKind::Conv, &[2, 2, 2], &map, Pooling::default()).unwrap();
        assert_eq!(mean, vec![3.0, -3.0]);
        let max = Pooling {
            conv: ConvPooling::Max,
            ..Pooling::default()
        };
        assert_eq!(
            pool_map(LayerKind::Conv, &[2, 2, 2], &map, max).unwrap(),
            vec![6.0, -1.0]
        );
        // Three tokens of width 2.
        let tokens = [1.0, 10.0, 2.0, 20.0, 6.0, 0.0];
        let p = |tokens_pooling| Pooling {
            tokens: tokens_pooling,
            ..Pooling::default()
        };
        assert_eq!(
            pool_map(LayerKind::Tokens, &[3, 2], &tokens, p(TokenPooling::Mean)).unwrap(),
            vec![3.0, 10.0]
        );
        assert_eq!(
            pool_map(LayerKind::Tokens, &[3, 2], &tokens, p(TokenPooling::Cls)).unwrap(),
            vec![1.0, 10.0]
        );
        assert_eq!(
            pool_map(LayerKind::Tokens, &[3, 2], &tokens, p(TokenPooling::Max)).unwrap(),
            vec![6.0, 20.0]
        );
        assert!(pool_map(LayerKind::Conv, &[2, 2], &map, Pooling::default()).is_err());
        assert!(pool_map(LayerKind::Dense, &[3], &map, Pooling::default()).is_err());
    }

    #[test]
    fn non_finite_values_are_counted_per_layer() {
        let set = ActivationSet {
            layers: vec![NamedTensor {
                name: "fc1".into(),
                tensor: Tensor::new(vec![2, 2], vec![1.0, f32::NAN, f32::INFINITY, 0.0]).unwrap(),
            }],
            logits: Tensor::new(vec![1, 2], vec![f32::NEG_INFINITY, 2.0]).unwrap(),
        };
        assert_eq!(set.non_finite_counts(), vec![("fc1", 2), ("logits", 1)]);
    }

    #[test]
    fn neurons_per_kind() {
        assert_eq!(LayerKind::Conv.neurons(&[8, 4, 4]), Some(8));
        assert_eq!(LayerKind::Tokens.neurons(&[17, 64]), Some(64));
        assert_eq!(LayerKind::Dense.neurons(&[50]), Some(50));
        assert_eq!(LayerKind::Conv.neurons(&[50]), None);
    }
}
