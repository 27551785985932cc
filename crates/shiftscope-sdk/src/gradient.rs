//! Gradients through the model: what a caller asks for (an objective on one layer, with
//! its weights per image) and what comes back (the objective, d(objective)/d(image) and the
//! full maps of chosen layers), the optional capability of [`crate::ModelAdapter::gradient`].

use crate::{LayerInfo, LayerKind, NamedTensor, PluginError, Tensor, TensorRef};

/// The scalar objective, per image, whose gradient is asked for. `a` is the layer's
/// per-image map and `w` the request's weights for that image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Objective {
    /// `Σ w·pool(a)`, with `pool` as `run` pools by default (a conv channel's spatial mean,
    /// a token layer's mean over tokens, dense layers and logits as they are): weights
    /// `[B, neurons]`. A one-hot row is one neuron (one class, for the logits).
    Pooled,
    /// `Σ w·a` over the whole map: weights `[B, ...shape]`. A one-hot is one channel at one
    /// spatial position, or one unit of one token.
    Map,
    /// `w · Σ a²`, the layer's squared norm (DeepDream's objective): weights `[B]`.
    SquaredNorm,
}

impl Objective {
    /// The short name used in messages and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Pooled => "pooled",
            Objective::Map => "map",
            Objective::SquaredNorm => "squared-norm",
        }
    }

    /// The weights' shape for a batch of `batch` images on `layer`.
    pub fn weights_shape(self, layer: &LayerInfo, batch: usize) -> Vec<usize> {
        let mut shape = vec![batch];
        match self {
            Objective::Pooled => shape.push(layer.neurons),
            Objective::Map => shape.extend(&layer.shape),
            Objective::SquaredNorm => {}
        }
        shape
    }
}

/// What a gradient is of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradientRequest<'a> {
    /// The layer the objective reads (a name or alias the description lists; the logits'
    /// layer for a class objective).
    pub layer: &'a str,
    /// The objective on it.
    pub objective: Objective,
    /// Its weights per image (see [`Objective`] for the shape).
    pub weights: TensorRef<'a>,
    /// Layers whose full maps `[B, ...shape]` the same run returns (a visualisation's
    /// regularisers read them); may be empty.
    pub maps: &'a [String],
}

impl<'a> GradientRequest<'a> {
    /// `Σ w·pool(a)` on `layer`, with no maps: the common request (one class's logit, one
    /// neuron as recorded).
    pub fn pooled(layer: &'a str, weights: TensorRef<'a>) -> GradientRequest<'a> {
        GradientRequest {
            layer,
            objective: Objective::Pooled,
            weights,
            maps: &[],
        }
    }

    /// Checks the weights' shape against `layer` and a batch of `batch` images.
    pub fn check_weights(&self, layer: &LayerInfo, batch: usize) -> Result<(), PluginError> {
        let expected = self.objective.weights_shape(layer, batch);
        if self.weights.shape() != expected.as_slice() {
            return Err(PluginError::invalid_argument(format!(
                "{} objective on layer '{}' ({} {:?}) for a batch of {batch}: weights of shape {:?}, expected {expected:?}",
                self.objective.as_str(),
                layer.name,
                layer.kind.as_str(),
                layer.shape,
                self.weights.shape()
            )));
        }
        Ok(())
    }
}

/// What one gradient run returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    /// The objective's value per image, `[B]`.
    pub objective: Tensor,
    /// d(objective)/d(image), in the batch's shape `[B, C, H, W]`.
    pub input: Tensor,
    /// The requested maps, in request order, each `[B, ...shape]`.
    pub maps: Vec<NamedTensor>,
}

/// The gradient of an objective with respect to the layer's own per-image map `a`
/// (`shape`, row-major), for adapters that write their backward pass by hand.
pub fn objective_seed(
    kind: LayerKind,
    shape: &[usize],
    objective: Objective,
    weights: &[f32],
    a: &[f32],
) -> Result<(f32, Vec<f32>), PluginError> {
    let size: usize = shape.iter().product();
    let neurons = kind.neurons(shape).ok_or_else(|| {
        PluginError::invalid_argument(format!(
            "a {} layer cannot have per-image shape {shape:?}",
            kind.as_str()
        ))
    })?;
    let wanted = match objective {
        Objective::Pooled => neurons,
        Objective::Map => size,
        Objective::SquaredNorm => 1,
    };
    if a.len() != size || weights.len() != wanted {
        return Err(PluginError::invalid_argument(format!(
            "{} objective on a map of shape {shape:?}: {} values and {} weights, expected {size} and {wanted}",
            objective.as_str(),
            a.len(),
            weights.len()
        )));
    }
    Ok(match objective {
        Objective::Map => (
            a.iter().zip(weights).map(|(x, w)| x * w).sum(),
            weights.to_vec(),
        ),
        Objective::SquaredNorm => {
            let w = weights[0];
            (
                w * a.iter().map(|x| x * x).sum::<f32>(),
                a.iter().map(|x| 2.0 * w * x).collect(),
            )
        }
        Objective::Pooled => {
            // Every neuron's values: a conv channel's plane, a token layer's column.
            let per_neuron = size / neurons.max(1);
            let index = |i: usize| match kind {
                LayerKind::Tokens => i % neurons,
                _ => i / per_neuron.max(1),
            };
            let scale = 1.0 / per_neuron.max(1) as f32;
            let value = a
                .iter()
                .enumerate()
                .map(|(i, x)| x * weights[index(i)] * scale)
                .sum();
            let seed = (0..size).map(|i| weights[index(i)] * scale).collect();
            (value, seed)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_by_hand() {
        // Two channels of 2x2, pooled by their mean.
        let a = [1.0, 2.0, 3.0, 6.0, -1.0, -2.0, -3.0, -6.0];
        let (v, g) = objective_seed(
            LayerKind::Conv,
            &[2, 2, 2],
            Objective::Pooled,
            &[2.0, 1.0],
            &a,
        )
        .unwrap();
        assert_eq!(v, 2.0 * 3.0 - 3.0);
        assert_eq!(g, vec![0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]);
        // Three tokens of width 2.
        let t = [1.0, 10.0, 2.0, 20.0, 6.0, 0.0];
        let (v, g) = objective_seed(
            LayerKind::Tokens,
            &[3, 2],
            Objective::Pooled,
            &[0.0, 3.0],
            &t,
        )
        .unwrap();
        assert_eq!(v, 30.0);
        assert_eq!(g, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let (v, g) = objective_seed(
            LayerKind::Dense,
            &[3],
            Objective::SquaredNorm,
            &[0.5],
            &[1.0, 2.0, -2.0],
        )
        .unwrap();
        assert_eq!(v, 4.5);
        assert_eq!(g, vec![1.0, 2.0, -2.0]);
        let mut one_hot = vec![0.0; 8];
        one_hot[5] = 1.0;
        let (v, g) =
            objective_seed(LayerKind::Conv, &[2, 2, 2], Objective::Map, &one_hot, &a).unwrap();
        assert_eq!((v, g), (-2.0, one_hot));
        assert!(objective_seed(LayerKind::Conv, &[2, 2, 2], Objective::Map, &[1.0], &a).is_err());
    }
}
