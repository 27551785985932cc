//! `example-model`: the template for model-adapter plugins, in pure Rust (no ONNX
//! Runtime). It owns a small network with fixed random weights drawn from a seed:
//!
//! ```text
//! image [B, 3, 32, 32] → conv1 3→8, 3×3, stride 2, pad 1, ReLU  [B, 8, 16, 16]  (conv)
//!                      → fc1 2048→32, ReLU                      [B, 32]         (dense)
//!                      → logits 32→4                            [B, 4]          (logits)
//! ```
//!
//! It exercises the whole model table: `describe`, pooled `run` (mean or max over conv
//! maps), `run_maps` for full maps, `gradient` (its backward pass written by hand), and
//! errors for unknown layers and wrong input shapes.
//! Config (RON, optional): `(seed: 1)`.

use serde::Deserialize;
use shiftscope_sdk::rng::SplitMix64;
use shiftscope_sdk::{
    ActivationSet, Gradient, GradientRequest, InputSpec, LayerInfo, LayerKind, ModelAdapter,
    ModelAdapterPlugin, ModelDescription, NamedTensor, PluginError, Pooling, ReceptiveField,
    Tensor, TensorRef, objective_seed, pool_map,
};

/// The plugin's name.
pub const NAME: &str = "example-model";
const IN_C: usize = 3;
const SIDE: usize = 32;
const CONV_C: usize = 8;
const CONV_SIDE: usize = 16;
const HIDDEN: usize = 32;
const CLASSES: [&str; 4] = ["horizontal", "vertical", "diagonal", "anti-diagonal"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    seed: u64,
}

/// The network and its weights.
#[derive(Debug)]
pub struct ExampleModel {
    conv_w: Vec<f32>,
    conv_b: Vec<f32>,
    fc1_w: Vec<f32>,
    fc1_b: Vec<f32>,
    fc2_w: Vec<f32>,
    fc2_b: Vec<f32>,
}

/// He-style uniform weights for a layer of `fan_in` inputs.
fn weights(rng: &mut SplitMix64, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / fan_in as f32).sqrt();
    (0..n).map(|_| rng.uniform(-bound, bound)).collect()
}

impl ModelAdapterPlugin for ExampleModel {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn create(config: &str) -> Result<ExampleModel, PluginError> {
        let config: Config = if config.trim().is_empty() {
            Config::default()
        } else {
            ron::from_str(config).map_err(|e| {
                PluginError::invalid_argument(format!(
                    "{NAME} config: {e} (expected e.g. `(seed: 1)`)"
                ))
            })?
        };
        let mut rng = SplitMix64::new(config.seed);
        let flat = CONV_C * CONV_SIDE * CONV_SIDE;
        Ok(ExampleModel {
            conv_w: weights(&mut rng, CONV_C * IN_C * 9, IN_C * 9),
            conv_b: weights(&mut rng, CONV_C, IN_C * 9),
            fc1_w: weights(&mut rng, HIDDEN * flat, flat),
            fc1_b: weights(&mut rng, HIDDEN, flat),
            fc2_w: weights(&mut rng, CLASSES.len() * HIDDEN, HIDDEN),
            fc2_b: weights(&mut rng, CLASSES.len(), HIDDEN),
        })
    }
}

/// All activations of one image.
struct Forward {
    conv1: Vec<f32>,
    fc1: Vec<f32>,
    logits: Vec<f32>,
}

fn dense(input: &[f32], w: &[f32], b: &[f32], relu: bool) -> Vec<f32> {
    w.chunks(input.len())
        .zip(b)
        .map(|(row, bias)| {
            let v = row.iter().zip(input).map(|(a, x)| a * x).sum::<f32>() + bias;
            if relu { v.max(0.0) } else { v }
        })
        .collect()
}

impl ExampleModel {
    fn forward(&self, image: &[f32]) -> Forward {
        let mut conv1 = vec![0.0f32; CONV_C * CONV_SIDE * CONV_SIDE];
        for o in 0..CONV_C {
            for y in 0..CONV_SIDE {
                for x in 0..CONV_SIDE {
                    let mut acc = self.conv_b[o];
                    for c in 0..IN_C {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (2 * y + ky) as isize - 1;
                                let ix = (2 * x + kx) as isize - 1;
                                if (0..SIDE as isize).contains(&iy)
                                    && (0..SIDE as isize).contains(&ix)
                                {
                                    let w = self.conv_w[((o * IN_C + c) * 3 + ky) * 3 + kx];
                                    acc += w * image[(c * SIDE + iy as usize) * SIDE + ix as usize];
                                }
                            }
                        }
                    }
                    conv1[(o * CONV_SIDE + y) * CONV_SIDE + x] = acc.max(0.0);
                }
            }
        }
        let fc1 = dense(&conv1, &self.fc1_w, &self.fc1_b, true);
        let logits = dense(&fc1, &self.fc2_w, &self.fc2_b, false);
        Forward { conv1, fc1, logits }
    }

    /// d(objective)/d(image) for one image, from the layer's seed d(objective)/d(layer),
    /// back through logits (Gemm), fc1 (ReLU, Gemm) and conv1 (ReLU, Conv).
    fn backward(&self, image: &[f32], forward: &Forward, layer: &str, seed: &[f32]) -> Vec<f32> {
        let hidden_in = CONV_C * CONV_SIDE * CONV_SIDE;
        // Through the logits' Gemm: d fc1 = W2ᵀ d logits.
        let mut d_fc1 = vec![0.0f32; HIDDEN];
        match layer {
            "logits" => {
                for (row, d) in self.fc2_w.chunks(HIDDEN).zip(seed) {
                    for (acc, w) in d_fc1.iter_mut().zip(row) {
                        *acc += w * d;
                    }
                }
            }
            "fc1" => d_fc1.copy_from_slice(seed),
            _ => {}
        }
        // Through fc1's ReLU and Gemm: d conv1 = W1ᵀ (d fc1 · [fc1 > 0]).
        let mut d_conv = if layer == "conv1" {
            seed.to_vec()
        } else {
            vec![0.0f32; hidden_in]
        };
        for ((row, d), out) in self.fc1_w.chunks(hidden_in).zip(&d_fc1).zip(&forward.fc1) {
            if *out > 0.0 {
                for (acc, w) in d_conv.iter_mut().zip(row) {
                    *acc += w * d;
                }
            }
        }
        // Through conv1's ReLU and the convolution (3×3, stride 2, pad 1), transposed.
        let mut d_image = vec![0.0f32; image.len()];
        for o in 0..CONV_C {
            for y in 0..CONV_SIDE {
                for x in 0..CONV_SIDE {
                    let at = (o * CONV_SIDE + y) * CONV_SIDE + x;
                    if forward.conv1[at] <= 0.0 || d_conv[at] == 0.0 {
                        continue;
                    }
                    let d = d_conv[at];
                    for c in 0..IN_C {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (2 * y + ky) as isize - 1;
                                let ix = (2 * x + kx) as isize - 1;
                                if (0..SIDE as isize).contains(&iy)
                                    && (0..SIDE as isize).contains(&ix)
                                {
                                    let w = self.conv_w[((o * IN_C + c) * 3 + ky) * 3 + kx];
                                    d_image[(c * SIDE + iy as usize) * SIDE + ix as usize] += w * d;
                                }
                            }
                        }
                    }
                }
            }
        }
        d_image
    }

    fn layers() -> Vec<LayerInfo> {
        let layer = |name: &str, op: &str, kind, shape: Vec<usize>, role: &str| LayerInfo {
            name: name.to_owned(),
            op: op.to_owned(),
            kind,
            neurons: shape[0],
            shape,
            default_selected: true,
            role: role.to_owned(),
            receptive_field: None,
            aliases: Vec::new(),
        };
        let conv_shape = vec![CONV_C, CONV_SIDE, CONV_SIDE];
        vec![
            LayerInfo {
                // 3×3, stride 2, pad 1: position i sees input pixels 2i − 1 ..= 2i + 1.
                receptive_field: Some(ReceptiveField {
                    size: [3, 3],
                    jump: [2, 2],
                    offset: [-1, -1],
                }),
                ..layer("conv1", "Relu", LayerKind::Conv, conv_shape, "activation")
            },
            layer("fc1", "Relu", LayerKind::Dense, vec![HIDDEN], "features"),
            layer(
                "logits",
                "Gemm",
                LayerKind::Logits,
                vec![CLASSES.len()],
                "logits",
            ),
        ]
    }

    /// Runs every image of `input` and hands each image's forward pass to `emit`.
    fn each_image(
        &self,
        input: TensorRef<'_>,
        layers: &[String],
        maps: bool,
        mut emit: impl FnMut(&LayerInfo, &Forward) -> Result<Vec<f32>, PluginError>,
    ) -> Result<ActivationSet, PluginError> {
        let batch = match input.shape() {
            [b, IN_C, SIDE, SIDE] => *b,
            other => {
                return Err(PluginError::invalid_argument(format!(
                    "input of shape {other:?}: {NAME} takes [N, {IN_C}, {SIDE}, {SIDE}]"
                )));
            }
        };
        let infos = ExampleModel::layers();
        let chosen: Vec<&LayerInfo> = layers
            .iter()
            .map(|name| {
                infos.iter().find(|l| &l.name == name).ok_or_else(|| {
                    PluginError::not_found(format!(
                        "{NAME} has no layer '{name}' (it has conv1, fc1, logits)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let mut values: Vec<Vec<f32>> = vec![Vec::new(); chosen.len()];
        let mut logits = Vec::with_capacity(batch * CLASSES.len());
        for image in input.data().chunks(IN_C * SIDE * SIDE) {
            let forward = self.forward(image);
            for (layer, out) in chosen.iter().zip(&mut values) {
                out.extend(emit(layer, &forward)?);
            }
            logits.extend_from_slice(&forward.logits);
        }
        let layers = chosen
            .iter()
            .zip(values)
            .map(|(layer, data)| {
                let mut shape = vec![batch];
                if maps {
                    shape.extend(&layer.shape);
                } else {
                    shape.push(layer.neurons);
                }
                Ok(NamedTensor {
                    name: layer.name.clone(),
                    tensor: Tensor::new(shape, data)?,
                })
            })
            .collect::<Result<_, PluginError>>()?;
        Ok(ActivationSet {
            layers,
            logits: Tensor::new(vec![batch, CLASSES.len()], logits)?,
        })
    }
}

fn layer_values<'a>(layer: &LayerInfo, forward: &'a Forward) -> &'a [f32] {
    match layer.name.as_str() {
        "conv1" => &forward.conv1,
        "fc1" => &forward.fc1,
        _ => &forward.logits,
    }
}

impl ModelAdapter for ExampleModel {
    fn describe(&mut self) -> Result<ModelDescription, PluginError> {
        Ok(ModelDescription {
            inputs: vec![InputSpec {
                name: "image".to_owned(),
                shape: vec![None, Some(IN_C), Some(SIDE), Some(SIDE)],
            }],
            layers: ExampleModel::layers(),
            class_names: CLASSES.iter().map(|&c| c.to_owned()).collect(),
            num_classes: CLASSES.len(),
            notes: vec!["pure-Rust example network with fixed random weights".to_owned()],
            data_files: Vec::new(),
        })
    }

    fn run(
        &mut self,
        batch: TensorRef<'_>,
        layers: &[String],
        pooling: Pooling,
    ) -> Result<ActivationSet, PluginError> {
        self.each_image(batch, layers, false, |layer, forward| {
            pool_map(
                layer.kind,
                &layer.shape,
                layer_values(layer, forward),
                pooling,
            )
        })
    }

    fn run_maps(
        &mut self,
        image: TensorRef<'_>,
        layers: &[String],
    ) -> Result<ActivationSet, PluginError> {
        if image.shape().first() != Some(&1) {
            return Err(PluginError::invalid_argument(format!(
                "run_maps takes one image [1, {IN_C}, {SIDE}, {SIDE}], got {:?}",
                image.shape()
            )));
        }
        self.each_image(image, layers, true, |layer, forward| {
            Ok(layer_values(layer, forward).to_vec())
        })
    }

    fn gradient(
        &mut self,
        batch: TensorRef<'_>,
        request: &GradientRequest<'_>,
    ) -> Result<Gradient, PluginError> {
        let infos = ExampleModel::layers();
        let Some(target) = infos.iter().find(|l| l.name == request.layer) else {
            return Err(PluginError::not_found(format!(
                "{NAME} has no layer '{}' (it has conv1, fc1, logits)",
                request.layer
            )));
        };
        let n = match batch.shape() {
            [b, IN_C, SIDE, SIDE] => *b,
            other => {
                return Err(PluginError::invalid_argument(format!(
                    "input of shape {other:?}: {NAME} takes [N, {IN_C}, {SIDE}, {SIDE}]"
                )));
            }
        };
        request.check_weights(target, n)?;
        let per_weights = request.weights.data().len() / n.max(1);
        let mut objective = Vec::with_capacity(n);
        let mut input = Vec::with_capacity(batch.data().len());
        // The maps by the same per-image path as `run_maps`.
        let maps = if request.maps.is_empty() {
            Vec::new()
        } else {
            self.each_image(batch, request.maps, true, |layer, forward| {
                Ok(layer_values(layer, forward).to_vec())
            })?
            .layers
        };
        for (image, w) in batch
            .data()
            .chunks(IN_C * SIDE * SIDE)
            .zip(request.weights.data().chunks(per_weights.max(1)))
        {
            let forward = self.forward(image);
            let a = layer_values(target, &forward);
            let (value, seed) =
                objective_seed(target.kind, &target.shape, request.objective, w, a)?;
            objective.push(value);
            input.extend(self.backward(image, &forward, &target.name, &seed));
        }
        Ok(Gradient {
            objective: Tensor::new(vec![n], objective)?,
            input: Tensor::new(batch.shape().to_vec(), input)?,
            maps,
        })
    }
}

shiftscope_sdk::export_model_adapter!(ExampleModel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_by_hand_at_one_position() {
        let model = ExampleModel::create("(seed: 3)").unwrap();
        let image: Vec<f32> = (0..IN_C * SIDE * SIDE)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let forward = model.forward(&image);
        // Output (o=2, y=5, x=4) reads input rows 9..=11, cols 7..=9 (stride 2, pad 1).
        let (o, y, x) = (2, 5, 4);
        let mut acc = model.conv_b[o];
        for c in 0..IN_C {
            for ky in 0..3 {
                for kx in 0..3 {
                    acc += model.conv_w[((o * IN_C + c) * 3 + ky) * 3 + kx]
                        * image[(c * SIDE + 2 * y + ky - 1) * SIDE + 2 * x + kx - 1];
                }
            }
        }
        let got = forward.conv1[(o * CONV_SIDE + y) * CONV_SIDE + x];
        assert!((got - acc.max(0.0)).abs() < 1e-5, "{got} vs {acc}");
    }

    #[test]
    fn wrong_input_and_unknown_layer_are_errors() {
        let mut model = ExampleModel::create("").unwrap();
        let data = vec![0.0f32; 3 * 28 * 28];
        let t = TensorRef::new(&[1, 3, 28, 28], &data).unwrap();
        let e = model.run(t, &[], Pooling::default()).err().unwrap();
        assert!(e.to_string().contains("[N, 3, 32, 32]"), "{e}");
        let data = vec![0.0f32; 3 * 32 * 32];
        let t = TensorRef::new(&[1, 3, 32, 32], &data).unwrap();
        let e = model
            .run(t, &["fc9".to_owned()], Pooling::default())
            .err()
            .unwrap();
        assert_eq!(e.kind(), shiftscope_sdk::ErrorKind::NotFound);
    }
}
