//! What a gradient is of, as people write it: `logit:CLASS`, `LAYER:N` (a neuron pooled as
//! recorded), `LAYER:N@Y,X` (a channel at one position) or `LAYER:N@T` (a unit of one
//! token), `norm:LAYER` (the layer's squared norm); checked against a model's description
//! and turned into the objective and per-image weights of a
//! [`shiftscope_sdk::GradientRequest`].

use shiftscope_sdk::{LayerKind, ModelDescription, Objective, PluginError, Tensor};

/// A target that cannot be parsed or does not exist in the model.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--target '{target}': {problem}")]
pub struct TargetError {
    /// The target as written.
    pub target: String,
    /// What was wrong.
    pub problem: String,
}

/// A gradient target resolved against a model.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientTarget {
    /// The layer's name in the description.
    pub layer: String,
    /// The objective on it.
    pub objective: Objective,
    /// One image's weights (see [`Objective`]).
    pub weights: Vec<f32>,
    /// The objective for people: `logit 3 (cat)`, `conv1 channel 2 at (4, 5)`.
    pub describe: String,
}

impl GradientTarget {
    /// Parses `text` and resolves it against `description`.
    pub fn parse(
        text: &str,
        description: &ModelDescription,
    ) -> Result<GradientTarget, TargetError> {
        let bad = |problem: String| TargetError {
            target: text.to_owned(),
            problem,
        };
        let syntax =
            "write logit:CLASS, LAYER:N, LAYER:N@Y,X (conv), LAYER:N@T (tokens) or norm:LAYER";
        if let Some(class) = text.strip_prefix("logit:") {
            let layer = description
                .layers
                .iter()
                .find(|l| l.kind == LayerKind::Logits)
                .ok_or_else(|| bad("the model lists no logits layer".to_owned()))?;
            let index = match class.parse::<usize>() {
                Ok(i) => i,
                Err(_) => description
                    .class_names
                    .iter()
                    .position(|c| c == class)
                    .ok_or_else(|| {
                        bad(format!(
                            "'{class}' is neither a class index (0..{}) nor a class name of the model",
                            layer.neurons
                        ))
                    })?,
            };
            if index >= layer.neurons {
                return Err(bad(format!(
                    "class {index} does not exist: the model has {} classes (0..{})",
                    layer.neurons, layer.neurons
                )));
            }
            let mut weights = vec![0.0; layer.neurons];
            weights[index] = 1.0;
            let name = description
                .class_names
                .get(index)
                .filter(|c| **c != index.to_string())
                .map_or_else(String::new, |c| format!(" ({c})"));
            return Ok(GradientTarget {
                layer: layer.name.clone(),
                objective: Objective::Pooled,
                weights,
                describe: format!("logit {index}{name}"),
            });
        }
        let find = |name: &str| {
            description.layer(name).ok_or_else(|| {
                bad(format!(
                    "the model has no layer '{name}' (see `shiftscope layers MODEL`)"
                ))
            })
        };
        if let Some(name) = text.strip_prefix("norm:") {
            let layer = find(name)?;
            return Ok(GradientTarget {
                layer: layer.name.clone(),
                objective: Objective::SquaredNorm,
                weights: vec![1.0],
                describe: format!("squared norm of {}", layer.name),
            });
        }
        let Some((name, rest)) = text.rsplit_once(':') else {
            return Err(bad(syntax.to_owned()));
        };
        let layer = find(name)?;
        let (neuron, position) = match rest.split_once('@') {
            Some((n, p)) => (n, Some(p)),
            None => (rest, None),
        };
        let neuron: usize = neuron
            .parse()
            .map_err(|_| bad(format!("'{neuron}' is not a neuron index; {syntax}")))?;
        if neuron >= layer.neurons {
            return Err(bad(format!(
                "layer '{}' has {} neurons (0..{}), not {neuron}",
                layer.name, layer.neurons, layer.neurons
            )));
        }
        let Some(position) = position else {
            let mut weights = vec![0.0; layer.neurons];
            weights[neuron] = 1.0;
            let what = match layer.kind {
                LayerKind::Conv => "channel (spatial mean)",
                LayerKind::Tokens => "unit (mean over tokens)",
                LayerKind::Dense | LayerKind::Logits => "unit",
            };
            return Ok(GradientTarget {
                layer: layer.name.clone(),
                objective: Objective::Pooled,
                weights,
                describe: format!("{} {what} {neuron}", layer.name),
            });
        };
        let coords: Vec<usize> = position
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad(format!("'{position}' is not a position; {syntax}")))?;
        let (index, describe) = match (layer.kind, layer.shape.as_slice(), coords.as_slice()) {
            (LayerKind::Conv, &[_, h, w], &[y, x]) => {
                if y >= h || x >= w {
                    return Err(bad(format!(
                        "position ({y}, {x}) is outside layer '{}' of {h}×{w}",
                        layer.name
                    )));
                }
                (
                    (neuron * h + y) * w + x,
                    format!("{} channel {neuron} at ({y}, {x})", layer.name),
                )
            }
            (LayerKind::Tokens, &[t, d], &[token]) => {
                if token >= t {
                    return Err(bad(format!(
                        "token {token} is outside layer '{}' of {t} tokens",
                        layer.name
                    )));
                }
                (
                    token * d + neuron,
                    format!("{} unit {neuron} of token {token}", layer.name),
                )
            }
            (LayerKind::Conv, _, _) => {
                return Err(bad(format!(
                    "a conv layer's position is Y,X (layer '{}' is {:?})",
                    layer.name, layer.shape
                )));
            }
            (LayerKind::Tokens, _, _) => {
                return Err(bad(format!(
                    "a token layer's position is one token index (layer '{}' is {:?})",
                    layer.name, layer.shape
                )));
            }
            (kind, _, _) => {
                return Err(bad(format!(
                    "layer '{}' is a {} layer: it has no positions",
                    layer.name,
                    kind.as_str()
                )));
            }
        };
        let mut weights = vec![0.0; layer.shape.iter().product()];
        weights[index] = 1.0;
        Ok(GradientTarget {
            layer: layer.name.clone(),
            objective: Objective::Map,
            weights,
            describe,
        })
    }

    /// The weights for a batch of `n` images, each image's the same.
    pub fn batch_weights(
        &self,
        description: &ModelDescription,
        n: usize,
    ) -> Result<Tensor, PluginError> {
        let layer = description
            .layer(&self.layer)
            .ok_or_else(|| PluginError::not_found(format!("no layer '{}'", self.layer)))?;
        Tensor::new(
            self.objective.weights_shape(layer, n),
            self.weights.repeat(n),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiftscope_sdk::{InputSpec, LayerInfo};

    fn description() -> ModelDescription {
        let layer = |name: &str, kind, shape: Vec<usize>| LayerInfo {
            name: name.into(),
            aliases: vec![format!("{name}.alias")],
            op: "Relu".into(),
            kind,
            neurons: kind.neurons(&shape).unwrap(),
            shape,
            default_selected: true,
            role: String::new(),
            receptive_field: None,
        };
        ModelDescription {
            inputs: vec![InputSpec {
                name: "x".into(),
                shape: vec![None, Some(3), Some(8), Some(8)],
            }],
            layers: vec![
                layer("conv", LayerKind::Conv, vec![4, 3, 2]),
                layer("blocks.0", LayerKind::Tokens, vec![5, 6]),
                layer("fc", LayerKind::Dense, vec![7]),
                layer("out", LayerKind::Logits, vec![3]),
            ],
            class_names: vec!["cat".into(), "dog".into(), "cow".into()],
            num_classes: 3,
            notes: vec![],
            data_files: vec![],
        }
    }

    #[test]
    fn targets_resolve_to_objectives_and_one_hot_weights() {
        let d = description();
        let t = GradientTarget::parse("logit:dog", &d).unwrap();
        assert_eq!((t.layer.as_str(), t.objective), ("out", Objective::Pooled));
        assert_eq!(t.weights, [0.0, 1.0, 0.0]);
        assert_eq!(t.describe, "logit 1 (dog)");
        assert_eq!(
            GradientTarget::parse("logit:2", &d).unwrap().weights,
            [0.0, 0.0, 1.0]
        );
        let t = GradientTarget::parse("conv:2", &d).unwrap();
        assert_eq!(
            (t.objective, t.weights.len(), t.weights[2]),
            (Objective::Pooled, 4, 1.0)
        );
        // Channel 1 at (y 2, x 1) of a 4×3×2 map: index (1·3 + 2)·2 + 1 = 11.
        let t = GradientTarget::parse("conv.alias:1@2,1", &d).unwrap();
        assert_eq!((t.layer.as_str(), t.objective), ("conv", Objective::Map));
        assert_eq!(t.weights.iter().position(|w| *w == 1.0), Some(11));
        assert_eq!(t.weights.iter().sum::<f32>(), 1.0);
        // Unit 4 of token 3 of a [5, 6] layer: 3·6 + 4.
        let t = GradientTarget::parse("blocks.0:4@3", &d).unwrap();
        assert_eq!(t.weights.iter().position(|w| *w == 1.0), Some(22));
        let t = GradientTarget::parse("norm:fc", &d).unwrap();
        assert_eq!(
            (t.objective, t.weights.as_slice()),
            (Objective::SquaredNorm, &[1.0][..])
        );
        let w = t.batch_weights(&d, 3).unwrap();
        assert_eq!(w.shape(), [3]);
        let w = GradientTarget::parse("conv:1@0,0", &d)
            .unwrap()
            .batch_weights(&d, 2)
            .unwrap();
        assert_eq!(w.shape(), [2, 4, 3, 2]);
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        let d = description();
        for (text, wanted) in [
            ("logit:7", "the model has 3 classes"),
            ("logit:horse", "neither a class index"),
            ("nope:1", "no layer 'nope'"),
            ("conv:4", "has 4 neurons"),
            ("conv:x", "not a neuron index"),
            ("conv:1@3,0", "outside layer 'conv' of 3×2"),
            ("conv:1@1", "position is Y,X"),
            ("blocks.0:1@5", "token 5 is outside"),
            ("fc:1@0", "no positions"),
            ("conv", "write logit:CLASS"),
            ("norm:zzz", "no layer 'zzz'"),
        ] {
            let e = GradientTarget::parse(text, &d).unwrap_err().to_string();
            assert!(e.contains(wanted) && e.contains(text), "{text}: {e}");
        }
    }
}
